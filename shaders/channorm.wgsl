// channorm.wgsl — CONV.md's per-channel ActNorm over (n, c, h·w) tensors:
// u = (x − β_c) / σ_c, σ_c = exp(a_c) + γ, γ = 1e-6; log|det| = −h·w·Σ_c log σ_c per sample.
// Tensors are planes as in conv.wgsl: element (s, c, p) of model z at off + z·ms + s·rs + c·hw + p.
// flags: RELU clamps the output at 0 (a conditioner's hidden layers); LOGDET adds the
// log-det to logdet[s] (the flow's own ActNorms; a conditioner's have none).
//
// Entry points:
//   channorm_forward  — thread per element; the thread of (s, c = 0, p = 0) adds the log-det.
//   channorm_inverse  — x = u σ_c + β_c, thread per element.
//   channorm_init     — workgroup per channel: β = mean, exp(a) = population std over
//                       (n, i, j) (two passes: mean, then squared deviations), a = 0 where the
//                       std is below 1e-6.
//   channorm_backward — workgroup per channel, from the forward's output `out` and dout:
//                       g = dout (0 where a ReLU clamped), dx (=) g/σ_c,
//                       ∂β_c (=) −Σ g/σ_c, ∂a_c (=) −Σ g·u·e^a/σ_c (− h·w·Σ_s dld[s]·e^a/σ_c
//                       with LOGDET), u = out wherever g ≠ 0.
// Bindings: forward/inverse 0 uniform; 1 params; 2 x (at x_off/x_rs); 3 y (at y_off/y_rs);
//           4 logdet (forward). init 0 uniform; 1 params (read_write); 2 x.
//           backward 0 uniform; 1 params; 2 out (at y_off/y_rs); 3 dout (the same layout);
//           4 dld; 5 dx (at x_off/x_rs); 6 grads.
// Dispatch: element-wise entries a 1-D grid of 64-wide workgroups folded into y; the
// per-channel ones (c, 1, models). z is the model.
// Twin: src/reference/channorm.rs

struct ChanNorm {
    n: u32, c: u32, hw: u32, flags: u32,
    x_off: u32, x_rs: u32, y_off: u32, y_rs: u32,
    beta: u32, a: u32, x_ms: u32, y_ms: u32,
    p_ms: u32, ld_ms: u32, _p0: u32, _p1: u32,
}

const GAMMA: f32 = 1e-6;
const RELU: u32 = 1u;
const LOGDET: u32 = 2u;

@group(0) @binding(0) var<uniform> cn: ChanNorm;
// read_write because channorm_init writes β and a; the other entry points only read.
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> x_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> y_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> logdet: array<f32>;

fn sigma(z: u32, c: u32) -> f32 {
    return exp(params[z * cn.p_ms + cn.a + c]) + GAMMA;
}

fn x_at(z: u32, s: u32, c: u32, p: u32) -> u32 {
    return cn.x_off + z * cn.x_ms + s * cn.x_rs + c * cn.hw + p;
}

fn y_at(z: u32, s: u32, c: u32, p: u32) -> u32 {
    return cn.y_off + z * cn.y_ms + s * cn.y_rs + c * cn.hw + p;
}

fn element(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

@compute @workgroup_size(64)
fn channorm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= cn.n * cn.c * cn.hw) {
        return;
    }
    let z = gid.z;
    let s = e / (cn.c * cn.hw);
    let c = (e / cn.hw) % cn.c;
    let p = e % cn.hw;
    var u = (x_in[x_at(z, s, c, p)] - params[z * cn.p_ms + cn.beta + c]) / sigma(z, c);
    if ((cn.flags & RELU) != 0u) {
        u = max(u, 0.0);
    }
    y_out[y_at(z, s, c, p)] = u;
    if ((cn.flags & LOGDET) != 0u && c == 0u && p == 0u) {
        var ld = 0.0;
        for (var k = 0u; k < cn.c; k++) {
            ld -= log(sigma(z, k));
        }
        logdet[z * cn.ld_ms + s] += f32(cn.hw) * ld;
    }
}

@compute @workgroup_size(64)
fn channorm_inverse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= cn.n * cn.c * cn.hw) {
        return;
    }
    let z = gid.z;
    let s = e / (cn.c * cn.hw);
    let c = (e / cn.hw) % cn.c;
    let p = e % cn.hw;
    y_out[y_at(z, s, c, p)] = x_in[x_at(z, s, c, p)] * sigma(z, c) + params[z * cn.p_ms + cn.beta + c];
}

var<workgroup> part: array<f32, 64>;

// The sum of v over the workgroup's 64 invocations, returned to all of them.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    part[lid] = v;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            part[lid] += part[lid + stride];
        }
        workgroupBarrier();
    }
    let total = part[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn channorm_init(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wg.x;
    let z = wg.z;
    let count = cn.n * cn.hw;
    var sum = 0.0;
    for (var e = lid; e < count; e += 64u) {
        sum += x_in[x_at(z, e / cn.hw, c, e % cn.hw)];
    }
    let mean = workgroup_sum(lid, sum) / f32(count);
    var dev = 0.0;
    for (var e = lid; e < count; e += 64u) {
        let d = x_in[x_at(z, e / cn.hw, c, e % cn.hw)] - mean;
        dev += d * d;
    }
    let sd = sqrt(workgroup_sum(lid, dev) / f32(count));
    if (lid == 0u) {
        params[z * cn.p_ms + cn.beta + c] = mean;
        params[z * cn.p_ms + cn.a + c] = select(0.0, log(sd), sd >= 1e-6);
    }
}

@group(0) @binding(2) var<storage, read> out_fwd: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> dld: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn channorm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wg.x;
    let z = wg.z;
    let sg = sigma(z, c);
    let ea = exp(params[z * cn.p_ms + cn.a + c]);
    let relu = (cn.flags & RELU) != 0u;
    var dbeta = 0.0;
    var da = 0.0;
    // Samples outer, pixels across the invocations: no division per element.
    for (var s = 0u; s < cn.n; s++) {
        for (var p = lid; p < cn.hw; p += 64u) {
            let o = out_fwd[y_at(z, s, c, p)];
            var g = dout[y_at(z, s, c, p)];
            if (relu && o <= 0.0) {
                g = 0.0;
            }
            dx[x_at(z, s, c, p)] = g / sg;
            dbeta -= g;
            da -= g * o;
        }
    }
    var dl = 0.0;
    if ((cn.flags & LOGDET) != 0u) {
        for (var s = lid; s < cn.n; s += 64u) {
            dl += dld[z * cn.ld_ms + s];
        }
    }
    let sum_beta = workgroup_sum(lid, dbeta);
    let sum_a = workgroup_sum(lid, da);
    let sum_ld = workgroup_sum(lid, dl);
    if (lid == 0u) {
        grads[z * cn.p_ms + cn.beta + c] = sum_beta / sg;
        grads[z * cn.p_ms + cn.a + c] = (sum_a + f32(cn.hw) * -sum_ld) * ea / sg;
    }
}
