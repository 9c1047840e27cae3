// loss.wgsl — per-row log p_T(y) = Σ_i log N(u_i; 0, 1) + logdet, and the training loss
// L = −(1/N) Σ_rows log p_T with its gradient.
//
// Entry points:
//   log_prob        — thread per row. Bindings: 1 u (N, Q); 2 logdet (N); 3 logp (N).
//   loss_backward   — thread per element: du = u / N, and dld = −1/N per row.
//                     Bindings: 1 u (N, Q); 2 du (N, Q) out; 3 dld (N) out.
//   loss_accumulate — one workgroup: metrics[0] += L, metrics[1] += 1 (steps summed), and
//                     metrics[2] += 1 when L is not finite. Bindings: 1 logp (N); 2 metrics (4).
// Binding 0 is the uniform Loss everywhere. Grid z is the model: its rows follow model
// z − 1's (strides N·Q and N) and its metrics are metrics[4z..4z + 4].
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
    let r = gid.z * p.n + row;
    var ss = 0.0;
    for (var i = 0u; i < p.q; i++) {
        let v = u[r * p.q + i];
        ss += v * v;
    }
    logp[r] = -0.5 * ss - f32(p.q) * HALF_LOG_2PI + logdet[r];
}

@group(0) @binding(2) var<storage, read_write> du: array<f32>;
@group(0) @binding(3) var<storage, read_write> dld: array<f32>;

@compute @workgroup_size(64)
fn loss_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= p.n * p.q) {
        return;
    }
    let inv_n = 1.0 / f32(p.n);
    let x = gid.z * p.n * p.q + e;
    du[x] = u[x] * inv_n;
    if (e % p.q == 0u) {
        dld[gid.z * p.n + e / p.q] = -inv_n;
    }
}

@group(0) @binding(1) var<storage, read> logp_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> metrics: array<f32>;
var<workgroup> partial: array<f32, 64>;

fn is_finite(x: f32) -> bool {
    // NaN fails every comparison; ±inf exceeds the largest finite f32.
    return abs(x) <= 3.4028235e38;
}

@compute @workgroup_size(64)
fn loss_accumulate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    for (var r = li; r < p.n; r += 64u) {
        acc += logp_in[wg.z * p.n + r];
    }
    partial[li] = acc;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        if (li < stride) {
            partial[li] += partial[li + stride];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        let loss = -partial[0] / f32(p.n);
        let m = 4u * wg.z;
        if (is_finite(loss)) {
            metrics[m] += loss;
        } else {
            metrics[m + 2u] += 1.0;
        }
        metrics[m + 1u] += 1.0;
    }
}
