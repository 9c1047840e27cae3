// actnorm.wgsl — ActNorm(Q): u_i = (y_i − β_i) / (exp(a_i) + γ), γ = 1e-6,
// log|det| = −Σ_i log(exp(a_i) + γ) added to every row's logdet.
//
// Entry points:
//   actnorm_forward — thread per element of (N, Q); thread (row, 0) also adds the log-det.
//   actnorm_inverse — y_i = u_i (exp(a_i) + γ) + β_i.
//   actnorm_init    — data-dependent initialisation, thread per dimension: β = mean,
//                     exp(a) = population std of the batch; a = 0 where std < 1e-6.
// Bindings: 0 uniform ActNorm; 1 params (β at beta_off, a at a_off); 2 input (N, Q);
//           3 output (N, Q); 4 logdet (N) (forward only).
// Dispatch: 1-D grid of 64-wide workgroups, folded into y past 65535 (see grid_index); z is
// the model: model z's params and grads start at z·ps, its rows at z·N·Q, logdet at z·N.
// Twin: src/reference/actnorm.rs

struct ActNorm {
    n: u32, q: u32, beta_off: u32, a_off: u32,
    ps: u32, _p0: u32, _p1: u32, _p2: u32,
}

const GAMMA: f32 = 1e-6;

@group(0) @binding(0) var<uniform> p: ActNorm;
// read_write because actnorm_init writes β and a; the other entry points only read.
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> x_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> logdet: array<f32>;

fn grid_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

fn scale(z: u32, i: u32) -> f32 {
    return exp(params[z * p.ps + p.a_off + i]) + GAMMA;
}

@compute @workgroup_size(64)
fn actnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = grid_index(gid, nwg);
    if (e >= p.n * p.q) {
        return;
    }
    let z = gid.z;
    let i = e % p.q;
    let x = z * p.n * p.q + e;
    x_out[x] = (x_in[x] - params[z * p.ps + p.beta_off + i]) / scale(z, i);
    if (i == 0u) {
        var ld = 0.0;
        for (var j = 0u; j < p.q; j++) {
            ld -= log(scale(z, j));
        }
        logdet[z * p.n + e / p.q] += ld;
    }
}

@compute @workgroup_size(64)
fn actnorm_inverse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = grid_index(gid, nwg);
    if (e >= p.n * p.q) {
        return;
    }
    let z = gid.z;
    let i = e % p.q;
    let x = z * p.n * p.q + e;
    x_out[x] = x_in[x] * scale(z, i) + params[z * p.ps + p.beta_off + i];
}

@compute @workgroup_size(64)
fn actnorm_init(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.q) {
        return;
    }
    let x0 = gid.z * p.n * p.q + i;
    // Two passes (mean, then squared deviations) keep f32 variance accurate.
    var mean = 0.0;
    for (var r = 0u; r < p.n; r++) {
        mean += x_in[x0 + r * p.q];
    }
    mean /= f32(p.n);
    var var_ = 0.0;
    for (var r = 0u; r < p.n; r++) {
        let d = x_in[x0 + r * p.q] - mean;
        var_ += d * d;
    }
    let sd = sqrt(var_ / f32(p.n));
    params[gid.z * p.ps + p.beta_off + i] = mean;
    params[gid.z * p.ps + p.a_off + i] = select(0.0, log(sd), sd >= 1e-6);
}

// ---- backward -------------------------------------------------------------------------
// With σ_i = exp(a_i) + γ and u = (y − β)/σ:
//   dy = du / σ                                        (thread per element, written =)
//   dβ_i = −Σ_rows du_i / σ_i
//   da_i = Σ_rows du_i · (−(y_i − β_i) / σ_i²) · exp(a_i) − Σ_rows dld · exp(a_i) / σ_i
// The parameter gradients are reduced over rows by the threads of row 0 (one per
// dimension) and written (=) into grads at the parameters' own offsets.
// Bindings: 0 uniform ActNorm; 1 params; 2 x_in (the forward's y) (N, Q); 3 du (N, Q);
//           4 dld (N); 5 dx (N, Q) out; 6 grads (flat, the layout of params).
@group(0) @binding(3) var<storage, read> du: array<f32>;
@group(0) @binding(4) var<storage, read> dld: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn actnorm_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = grid_index(gid, nwg);
    if (e >= p.n * p.q) {
        return;
    }
    let z = gid.z;
    let i = e % p.q;
    let sigma = scale(z, i);
    let x0 = z * p.n * p.q;
    dx[x0 + e] = du[x0 + e] / sigma;
    if (e < p.q) {
        let beta = params[z * p.ps + p.beta_off + i];
        let ea = exp(params[z * p.ps + p.a_off + i]);
        var dbeta = 0.0;
        var da = 0.0;
        for (var r = 0u; r < p.n; r++) {
            let g = du[x0 + r * p.q + i];
            dbeta -= g;
            da -= g * (x_in[x0 + r * p.q + i] - beta) / sigma + dld[z * p.n + r];
        }
        grads[z * p.ps + p.beta_off + i] = dbeta / sigma;
        grads[z * p.ps + p.a_off + i] = da * ea / sigma;
    }
}
