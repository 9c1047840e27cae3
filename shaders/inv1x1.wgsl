// inv1x1.wgsl — Glow's invertible 1×1 convolution over (n, C, h·w) planes (as conv.wgsl's):
// u[s, o, p] = Σ_k W[o, k] y[s, k, p], W = P L (U + diag(sign ⊙ exp(log_s))), the factors
// packed in one C×C tensor `lu` of the parameters (strictly lower: L, unit diagonal implied;
// strictly upper: U; diagonal: log_s); log|det| = h·w·Σ log_s.
// `fixed` holds, per model, perm[C] (W's row i is (L U')'s row perm[i]) then sign[C] (1 for
// +1, 0 for −1).
//
// Entry points:
//   inv1x1_weights — invocation per (i, j): W[i, j] into mats[0..C²]; invocations j < C also
//                    solve column j of W⁻¹ (L U' x = e_{perm[j]}, forward then back
//                    substitution) into mats[C²..2C²]. Dispatch (⌈C²/64⌉, 1, models).
//   inv1x1_apply   — thread per element: out = M x per pixel, M = W, W⁻¹ (INVERSE) or Wᵀ
//                    (TRANSPOSE, the data gradient); LOGDET: thread (s, 0, 0) adds h·w·Σ log_s.
//   inv1x1_wgrad   — workgroup per (o, k): dW[o, k] = Σ_{s,p} du[s, o, p]·y[s, k, p] into
//                    mats[2C²..3C²]. Dispatch (C, C, models).
//   inv1x1_lu_grad — invocation per (i, j): the packed tensor's gradient (=) from dW and Σ dld:
//                    dM = Pᵀ dW, dL = dM U'ᵀ below the diagonal, dU' = Lᵀ dM on and above it
//                    (the diagonal times sign·exp(log_s), plus h·w·Σ dld).
// Bindings: weights 0 uniform; 1 params; 2 fixed; 3 mats (rw).
//           apply   0 uniform; 1 params; 2 mats; 3 x (at x_off/x_rs); 4 out (y_off/y_rs, rw);
//                   5 logdet (rw; bound always, written with LOGDET).
//           wgrad   0 uniform; 1 du (y_off/y_rs); 2 y (x_off/x_rs); 3 mats (rw).
//           lu_grad 0 uniform; 1 params; 2 fixed; 3 mats; 4 dld; 5 grads (rw).
// z is the model: params and grads z·ps further, fixed 2C, mats 3C², planes x_ms/y_ms.
// Twin: src/reference/inv1x1.rs

struct Inv1x1 {
    n: u32, c: u32, hw: u32, flags: u32,
    lu: u32, ps: u32, x_off: u32, x_rs: u32,
    y_off: u32, y_rs: u32, x_ms: u32, y_ms: u32,
    _p0: u32, _p1: u32, _p2: u32, _p3: u32,
}

const INVERSE: u32 = 1u;
const TRANSPOSE: u32 = 2u;
const LOGDET: u32 = 4u;
// The largest C (one column's solve lives in a private array).
const MAX_C: u32 = 256u;

@group(0) @binding(0) var<uniform> iv: Inv1x1;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> fixed: array<u32>;
@group(0) @binding(3) var<storage, read_write> mats: array<f32>;

fn lu_at(z: u32, i: u32, j: u32) -> f32 {
    return params[z * iv.ps + iv.lu + i * iv.c + j];
}

fn sgn(z: u32, j: u32) -> f32 {
    return select(-1.0, 1.0, fixed[z * 2u * iv.c + iv.c + j] != 0u);
}

// U'[k, j]: U above the diagonal, sign·exp(log_s) on it, 0 below.
fn u_at(z: u32, k: u32, j: u32) -> f32 {
    if (k == j) {
        return sgn(z, j) * exp(lu_at(z, j, j));
    }
    return select(0.0, lu_at(z, k, j), k < j);
}

// L[i, k]: 1 on the diagonal, the packed values below, 0 above.
fn l_at(z: u32, i: u32, k: u32) -> f32 {
    if (i == k) {
        return 1.0;
    }
    return select(0.0, lu_at(z, i, k), k < i);
}

@compute @workgroup_size(64)
fn inv1x1_weights(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = iv.c;
    let e = gid.x;
    let z = gid.z;
    if (e >= c * c) {
        return;
    }
    let m0 = z * 3u * c * c;
    let i = e / c;
    let j = e % c;
    let r = fixed[z * 2u * c + i];
    var w = 0.0;
    for (var k = 0u; k <= min(r, j); k++) {
        w += l_at(z, r, k) * u_at(z, k, j);
    }
    mats[m0 + i * c + j] = w;
    if (e < c) {
        // Column e of W⁻¹: L U' x = e_{perm[e]}.
        var x: array<f32, MAX_C>;
        let col = e;
        let hot = fixed[z * 2u * c + col];
        for (var a = 0u; a < c; a++) {
            var v = select(0.0, 1.0, a == hot);
            for (var k = 0u; k < a; k++) {
                v -= lu_at(z, a, k) * x[k];
            }
            x[a] = v;
        }
        for (var t = 0u; t < c; t++) {
            let a = c - 1u - t;
            var v = x[a];
            for (var k = a + 1u; k < c; k++) {
                v -= lu_at(z, a, k) * x[k];
            }
            x[a] = v / (sgn(z, a) * exp(lu_at(z, a, a)));
        }
        for (var a = 0u; a < c; a++) {
            mats[m0 + c * c + a * c + col] = x[a];
        }
    }
}

@group(0) @binding(2) var<storage, read> mats_in: array<f32>;
@group(0) @binding(3) var<storage, read> x_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> logdet: array<f32>;

@compute @workgroup_size(64)
fn inv1x1_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    let c = iv.c;
    if (e >= iv.n * c * iv.hw) {
        return;
    }
    let z = gid.z;
    let s = e / (c * iv.hw);
    let o = (e / iv.hw) % c;
    let p = e % iv.hw;
    let m0 = z * 3u * c * c + select(0u, c * c, (iv.flags & INVERSE) != 0u);
    let transpose = (iv.flags & TRANSPOSE) != 0u;
    let x0 = iv.x_off + z * iv.x_ms + s * iv.x_rs + p;
    var v = 0.0;
    for (var k = 0u; k < c; k++) {
        let m = select(mats_in[m0 + o * c + k], mats_in[m0 + k * c + o], transpose);
        v += m * x_in[x0 + k * iv.hw];
    }
    x_out[iv.y_off + z * iv.y_ms + s * iv.y_rs + o * iv.hw + p] = v;
    if ((iv.flags & LOGDET) != 0u && o == 0u && p == 0u) {
        var ld = 0.0;
        for (var k = 0u; k < c; k++) {
            ld += lu_at(z, k, k);
        }
        logdet[z * iv.n + s] += f32(iv.hw) * ld;
    }
}

var<workgroup> part: array<f32, 64>;

@group(0) @binding(1) var<storage, read> du: array<f32>;
@group(0) @binding(2) var<storage, read> y_in: array<f32>;

@compute @workgroup_size(64)
fn inv1x1_wgrad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = iv.c;
    let o = wg.x;
    let k = wg.y;
    let z = wg.z;
    var acc = 0.0;
    for (var e = lid; e < iv.n * iv.hw; e += 64u) {
        let s = e / iv.hw;
        let p = e % iv.hw;
        acc += du[iv.y_off + z * iv.y_ms + s * iv.y_rs + o * iv.hw + p]
            * y_in[iv.x_off + z * iv.x_ms + s * iv.x_rs + k * iv.hw + p];
    }
    part[lid] = acc;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            part[lid] += part[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        mats[z * 3u * c * c + 2u * c * c + o * c + k] = part[0];
    }
}

@group(0) @binding(3) var<storage, read> mats_lu: array<f32>;
@group(0) @binding(4) var<storage, read> dld: array<f32>;
@group(0) @binding(5) var<storage, read_write> grads: array<f32>;

// dM[r, j] = dW[i, j] where perm[i] = r.
fn dm_at(z: u32, r: u32, j: u32) -> f32 {
    let c = iv.c;
    var i = 0u;
    for (var t = 0u; t < c; t++) {
        if (fixed[z * 2u * c + t] == r) {
            i = t;
        }
    }
    return mats_lu[z * 3u * c * c + 2u * c * c + i * c + j];
}

@compute @workgroup_size(64)
fn inv1x1_lu_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = iv.c;
    let e = gid.x;
    let z = gid.z;
    if (e >= c * c) {
        return;
    }
    let i = e / c;
    let j = e % c;
    var g = 0.0;
    if (i > j) {
        for (var k = 0u; k < c; k++) {
            g += dm_at(z, i, k) * u_at(z, j, k);
        }
    } else {
        for (var k = 0u; k < c; k++) {
            g += l_at(z, k, i) * dm_at(z, k, j);
        }
        if (i == j) {
            var sum_dld = 0.0;
            for (var s = 0u; s < iv.n; s++) {
                sum_dld += dld[z * iv.n + s];
            }
            g = g * u_at(z, j, j) + f32(iv.hw) * sum_dld;
        }
    }
    grads[z * iv.ps + iv.lu + e] = g;
}
