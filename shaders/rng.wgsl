// rng.wgsl — counter-based Gaussian noise: Philox4x32-10 (Salmon et al. 2011) keyed by the
// run's seed, counter = (pair index, step, stream, 0), then Box–Muller on the first two
// words. Every value is a pure function of (seed, step, stream, index), so the CPU twin
// reproduces it and no generator state lives on the GPU.
//
// Entry points:
//   assemble    — y (N, Q) = [x, ε]: row r takes x row ⌊r / repeat⌋ (repeat = S in
//                 evaluation, 1 in training) and ε ~ N(0, I_B) drawn at index r·B + b.
//                 Bindings: 1 step (StepState per model); 2 x (N / repeat, D); 3 y (N, Q) out.
//                 Grid z is the model: its own seed in st[z], x at z·(N / repeat)·D, y at
//                 z·N·Q. D is the row stride of x; a model whose st[z].d is set (≠ 0) uses
//                 only its first st[z].d columns, so models of one Q may differ in D.
//   normal_fill — out[i] = temperature · N(0, 1) at index i. Bindings: 1 step; 2 out (count).
// Binding 0 is the uniform Rng everywhere.
// Twin: src/reference/rng.rs

struct Rng {
    n: u32, d: u32, q: u32, repeat: u32,
    stream: u32, temperature: f32, _p0: u32, _p1: u32,
}

// The per-step state written by the host; WGSL has no includes, so this repeats
// optim.wgsl's declaration, and both must match StepState in src/kernels/optim.rs.
struct StepState {
    t: u32, seed_lo: u32, seed_hi: u32, d: u32,
    lr: f32, bc1: f32, bc2: f32, _p1: f32,
}

@group(0) @binding(0) var<uniform> p: Rng;
@group(0) @binding(1) var<storage, read> st: array<StepState>;

// 32×32 → 64-bit product as (hi, lo), from 16-bit halves (WGSL has no mulhi).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let hl = a_hi * b_lo;
    let lh = a_lo * b_hi;
    let hh = a_hi * b_hi;
    let cross = (ll >> 16u) + (hl & 0xffffu) + lh;
    let hi = hh + (hl >> 16u) + (cross >> 16u);
    let lo = (cross << 16u) | (ll & 0xffffu);
    return vec2<u32>(hi, lo);
}

fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k += vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// The standard normal at `index` of stream `stream`: Box–Muller on the pair index / 2.
fn normal_at(z: u32, index: u32, stream: u32) -> f32 {
    let w = philox(vec4<u32>(index / 2u, st[z].t, stream, 0u), vec2<u32>(st[z].seed_lo, st[z].seed_hi));
    let u1 = (f32(w.x >> 8u) + 0.5) / 16777216.0;
    let u2 = (f32(w.y >> 8u) + 0.5) / 16777216.0;
    let r = sqrt(-2.0 * log(u1));
    let theta = 6.283185307179586 * u2;
    return select(r * sin(theta), r * cos(theta), index % 2u == 0u);
}

@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn assemble(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= p.n * p.q) {
        return;
    }
    let z = gid.z;
    let row = e / p.q;
    let i = e % p.q;
    let d = select(p.d, st[z].d, st[z].d != 0u);
    let y0 = z * p.n * p.q;
    if (i < d) {
        y[y0 + e] = x[(z * (p.n / p.repeat) + row / p.repeat) * p.d + i];
    } else {
        y[y0 + e] = normal_at(z, row * (p.q - d) + i - d, p.stream);
    }
}

@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn normal_fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.n) {
        return;
    }
    out[i] = p.temperature * normal_at(0u, i, p.stream);
}
