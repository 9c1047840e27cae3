// marginal.wgsl — thesis eq. 8 per point, from the S rows that share its x:
//   log p(x) ≈ logsumexp_s [log p_T(x, ε_s) − log N(ε_s; 0, I_B)] − log S,
// in log space (max subtracted first), never as a ratio of densities. log N(ε_s) is
// recomputed from the ε columns of y, which the forward left untouched in acts[0].
//
// Entry point: marginal_reduce — thread per point. Bindings: 0 uniform Marginal;
//   1 y (P·S, Q); 2 logp (P·S); 3 out (P).
// Twin: src/reference/marginal.rs

struct Marginal {
    points: u32, s: u32, d: u32, q: u32,
}

const HALF_LOG_2PI: f32 = 0.91893853320467274;

@group(0) @binding(0) var<uniform> p: Marginal;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> logp: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn term(row: u32) -> f32 {
    var ss = 0.0;
    for (var i = p.d; i < p.q; i++) {
        let e = y[row * p.q + i];
        ss += e * e;
    }
    return logp[row] + 0.5 * ss + f32(p.q - p.d) * HALF_LOG_2PI;
}

@compute @workgroup_size(64)
fn marginal_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pt = gid.x + gid.y * nwg.x * 64u;
    if (pt >= p.points) {
        return;
    }
    var mx = -3.4028235e38;
    for (var k = 0u; k < p.s; k++) {
        mx = max(mx, term(pt * p.s + k));
    }
    var sum = 0.0;
    for (var k = 0u; k < p.s; k++) {
        sum += exp(term(pt * p.s + k) - mx);
    }
    out[pt] = mx + log(sum) - log(f32(p.s));
}
