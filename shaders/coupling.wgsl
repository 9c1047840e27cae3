// coupling.wgsl — the affine part of AffineCoupling(Q), h = ⌊Q/2⌋.
// The conditioner MLP (GEMMs in gemm.wgsl) has already written rm = (r, m), (N, 2(Q−h)):
// r in the first Q−h columns, m in the last Q−h.
//   forward: u_a = y_a, u_b = y_b ⊙ exp(s) + m, s = tanh(r), logdet += Σ s
//   inverse: y_a = u_a, y_b = (u_b − m) ⊙ exp(−s)
// The scale bound s = bound(r) is written once, below, for every entry point.
//
// Entry points: coupling_forward, coupling_inverse — thread per element of (N, Q); in the
// forward, thread (row, 0) also adds the row's Σ s to logdet.
// PERMUTED (flags): the permutation layer that follows the coupling (Reverse or Shuffle,
// u'_j = u_{π(j)}) is folded in: the forward stores element i at position inv[i] (inv = π⁻¹,
// Q per model), and the backward reads ∂L/∂u_i at ∂L/∂u'_{inv[i]}, so neither the layer's
// gather nor its backward is a dispatch of its own. The inverse is unchanged (its gather
// stays: the conditioner must read u_a contiguous).
// Bindings: 0 uniform Coupling; 1 x_in (N, Q); 2 rm (N, 2(Q−h)); 3 x_out (N, Q);
//           4 logdet (N) (forward only); 5 inv (Q per model) (forward, PERMUTED).
// Dispatch: 1-D grid folded into y past 65535; z is the model, whose copy of every
// binding follows model z − 1's (strides N·Q, N·2(Q−h), N).
// Twin: src/reference/coupling.rs

struct Coupling {
    n: u32, q: u32, h: u32, flags: u32,
}

const PERMUTED: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Coupling;
@group(0) @binding(1) var<storage, read> x_in: array<f32>;
@group(0) @binding(2) var<storage, read> rm: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> logdet: array<f32>;
@group(0) @binding(5) var<storage, read> inv_f: array<u32>;

fn grid_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// s = tanh(r). The clamp keeps tanh's exp from overflowing on drivers that evaluate it
// as a ratio of exponentials; tanh(15) is 1 to f32 precision, so the result is unchanged.
fn bound(r: f32) -> f32 {
    return tanh(clamp(r, -15.0, 15.0));
}

@compute @workgroup_size(64)
fn coupling_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = grid_index(gid, nwg);
    if (e >= p.n * p.q) {
        return;
    }
    let row = e / p.q;
    let i = e % p.q;
    let nb = p.q - p.h;
    let x = gid.z * p.n * p.q + e;
    let rm0 = (gid.z * p.n + row) * 2u * nb;
    var dst = x;
    if ((p.flags & PERMUTED) != 0u) {
        dst = x - i + inv_f[gid.z * p.q + i];
    }
    if (i < p.h) {
        x_out[dst] = x_in[x];
    } else {
        let j = i - p.h;
        x_out[dst] = x_in[x] * exp(bound(rm[rm0 + j])) + rm[rm0 + nb + j];
    }
    if (i == 0u) {
        var ld = 0.0;
        for (var j = 0u; j < nb; j++) {
            ld += bound(rm[rm0 + j]);
        }
        logdet[gid.z * p.n + row] += ld;
    }
}

@compute @workgroup_size(64)
fn coupling_inverse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = grid_index(gid, nwg);
    if (e >= p.n * p.q) {
        return;
    }
    let row = e / p.q;
    let i = e % p.q;
    let nb = p.q - p.h;
    let x = gid.z * p.n * p.q + e;
    let rm0 = (gid.z * p.n + row) * 2u * nb;
    if (i < p.h) {
        x_out[x] = x_in[x];
    } else {
        let j = i - p.h;
        x_out[x] = (x_in[x] - rm[rm0 + nb + j]) * exp(-bound(rm[rm0 + j]));
    }
}

// ---- backward -------------------------------------------------------------------------
// Given du = ∂L/∂u (N, Q) and dld = ∂L/∂logdet (N):
//   dy_a = du_a (the conditioner's share is added afterwards by its GEMMs, ACCUM),
//   dy_b = du_b ⊙ exp(s), ds = du_b ⊙ y_b ⊙ exp(s) + dld, dr = ds ⊙ bound'(r), dm = du_b.
// Activation gradients are written (=), never accumulated.
// Bindings: 0 uniform Coupling; 1 x_in (the forward's y) (N, Q); 2 rm (N, 2(Q−h));
//           3 du (N, Q) (PERMUTED: ∂L/∂u', read through inv); 4 dld (N); 5 dx (N, Q) out;
//           6 drm (N, 2(Q−h)) out; 7 inv (Q per model).
@group(0) @binding(3) var<storage, read> du: array<f32>;
@group(0) @binding(4) var<storage, read> dld: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> drm: array<f32>;
@group(0) @binding(7) var<storage, read> inv_b: array<u32>;

// d bound / dr: 1 − tanh² inside the clamp, 0 outside it (where the clamp is flat).
fn bound_grad(r: f32) -> f32 {
    if (abs(r) > 15.0) {
        return 0.0;
    }
    let s = tanh(r);
    return 1.0 - s * s;
}

@compute @workgroup_size(64)
fn coupling_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = grid_index(gid, nwg);
    if (e >= p.n * p.q) {
        return;
    }
    let row = e / p.q;
    let i = e % p.q;
    let nb = p.q - p.h;
    let x = gid.z * p.n * p.q + e;
    let rm0 = (gid.z * p.n + row) * 2u * nb;
    var src = x;
    if ((p.flags & PERMUTED) != 0u) {
        src = x - i + inv_b[gid.z * p.q + i];
    }
    let g = du[src];
    if (i < p.h) {
        dx[x] = g;
        return;
    }
    let j = i - p.h;
    let r = rm[rm0 + j];
    let es = exp(bound(r));
    dx[x] = g * es;
    let ds = g * x_in[x] * es + dld[gid.z * p.n + row];
    drm[rm0 + j] = ds * bound_grad(r);
    drm[rm0 + nb + j] = g;
}
