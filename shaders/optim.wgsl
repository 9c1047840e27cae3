// optim.wgsl — the optimizer over the flat parameter vector: global gradient norm, optional
// clipping to η, Adam (β1, β2, ε = 1e-8 added to √v̂ after bias correction).
//
// Entry points:
//   grad_sumsq — workgroup w writes partials[w] = Σ g² over a grid-stride share of grads.
//                Bindings: 1 grads (P); 2 partials (W).  Dispatch: (W, 1, 1), W ≤ 1024.
//   grad_norm  — one workgroup: norm[0] = √Σ partials. Bindings: 1 partials (W); 2 norm (1).
//   adam       — thread per parameter. If the norm is not finite the update is skipped (the
//                host sees the loss and stops). With clip > 0 and norm > clip, g ← g·clip/norm.
//                Bindings: 1 step (StepState); 2 norm (1); 3 grads (P); 4 params (P);
//                5 m (P); 6 v (P); 7 ema (P; a stand-in when o.ema is 0).
//                With o.ema = decay > 0 the same pass keeps the parameters' exponential
//                moving average: ema ← d·ema + (1 − d)·params after the update, with the
//                step's d = min(decay, (1 + t)/(10 + t)) from the host (st[z].ema), and
//                ema ← params at t = 1 (after the ActNorms' data initialisation).
//   adam4      — adam, four parameters per thread (count ≡ 0 mod 4); see below.
// Binding 0 is the uniform Optim everywhere. Grid z is the model: each has its own
// gradient norm (clipping is per model, as if trained alone), step state st[z], and
// parameters, gradients and moments at z·count, partials at z·parts.
// Twin: src/reference/optim.rs

struct Optim {
    count: u32, parts: u32, clip: f32, beta1: f32,
    beta2: f32, eps: f32, ema: f32, _p1: u32,
}

// Written by the host once per step (lr and the bias corrections 1 − β^t, computed in f64).
struct StepState {
    t: u32, seed_lo: u32, seed_hi: u32, d: u32,
    lr: f32, bc1: f32, bc2: f32, ema: f32,
}

@group(0) @binding(0) var<uniform> o: Optim;

@group(0) @binding(1) var<storage, read> g_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
var<workgroup> acc: array<f32, 256>;

fn workgroup_sum(li: u32) {
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        if (li < stride) {
            acc[li] += acc[li + stride];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn grad_sumsq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let base = wg.z * o.count;
    var s = 0.0;
    for (var i = wg.x * 256u + li; i < o.count; i += o.parts * 256u) {
        let g = g_in[base + i];
        s += g * g;
    }
    acc[li] = s;
    workgroup_sum(li);
    if (li == 0u) {
        partials[wg.z * o.parts + wg.x] = acc[0];
    }
}

@group(0) @binding(1) var<storage, read> partials_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm_out: array<f32>;

@compute @workgroup_size(256)
fn grad_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    for (var i = li; i < o.parts; i += 256u) {
        s += partials_in[wg.z * o.parts + i];
    }
    acc[li] = s;
    workgroup_sum(li);
    if (li == 0u) {
        norm_out[wg.z] = sqrt(acc[0]);
    }
}

@group(0) @binding(1) var<storage, read> st: array<StepState>;
@group(0) @binding(2) var<storage, read> norm: array<f32>;
@group(0) @binding(3) var<storage, read> grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> params: array<f32>;
@group(0) @binding(5) var<storage, read_write> m: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;
@group(0) @binding(7) var<storage, read_write> ema: array<f32>;

@compute @workgroup_size(64)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= o.count) {
        return;
    }
    let z = gid.z;
    let gn = norm[z];
    if (!(abs(gn) <= 3.4028235e38)) {
        return;
    }
    let i = z * o.count + e;
    var g = grads[i];
    if (o.clip > 0.0 && gn > o.clip) {
        g *= o.clip / gn;
    }
    let mi = o.beta1 * m[i] + (1.0 - o.beta1) * g;
    let vi = o.beta2 * v[i] + (1.0 - o.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let p = params[i] - st[z].lr * (mi / st[z].bc1) / (sqrt(vi / st[z].bc2) + o.eps);
    params[i] = p;
    if (o.ema > 0.0) {
        let d = st[z].ema;
        ema[i] = select(d * ema[i] + (1.0 - d) * p, p, st[z].t == 1u);
    }
}

// adam4 — adam for a count that is a multiple of 4 (mflow's flat parameters always are):
// four parameters per thread through vec4 loads and stores, which CPU adapters (lavapipe)
// run as one 16-byte access per lane instead of a gather. Same bindings as adam, as vec4s.
// Dispatch: thread per 4 parameters.
@group(0) @binding(3) var<storage, read> grads4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> params4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> v4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> ema4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn adam4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= o.count / 4u) {
        return;
    }
    let z = gid.z;
    let gn = norm[z];
    if (!(abs(gn) <= 3.4028235e38)) {
        return;
    }
    let i = z * (o.count / 4u) + e;
    var g = grads4[i];
    if (o.clip > 0.0 && gn > o.clip) {
        g *= o.clip / gn;
    }
    let mi = o.beta1 * m4[i] + (1.0 - o.beta1) * g;
    let vi = o.beta2 * v4[i] + (1.0 - o.beta2) * g * g;
    m4[i] = mi;
    v4[i] = vi;
    let p = params4[i] - st[z].lr * (mi / st[z].bc1) / (sqrt(vi / st[z].bc2) + o.eps);
    params4[i] = p;
    if (o.ema > 0.0) {
        let d = st[z].ema;
        ema4[i] = select(d * ema4[i] + (1.0 - d) * p, p, st[z].t == 1u);
    }
}
