// loss.wgsl — per-row log p_T(y) = Σ_i log N(u_i; 0, 1) + logdet.
//
// Entry point: log_prob — thread per row.
// Bindings: 0 uniform Loss; 1 u (N, Q); 2 logdet (N); 3 logp (N).
// Twin: src/reference/loss.rs

struct Loss {
    n: u32, q: u32, _p0: u32, _p1: u32,
}

const HALF_LOG_2PI: f32 = 0.91893853320467274;

@group(0) @binding(0) var<uniform> p: Loss;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> logdet: array<f32>;
@group(0) @binding(3) var<storage, read_write> logp: array<f32>;

@compute @workgroup_size(64)
fn log_prob(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= p.n) {
        return;
    }
    var ss = 0.0;
    for (var i = 0u; i < p.q; i++) {
        let v = u[row * p.q + i];
        ss += v * v;
    }
    logp[row] = -0.5 * ss - f32(p.q) * HALF_LOG_2PI + logdet[row];
}
