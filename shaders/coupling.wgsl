// coupling.wgsl — the affine part of AffineCoupling(Q), h = ⌊Q/2⌋.
// The conditioner MLP (GEMMs in gemm.wgsl) has already written rm = (r, m), (N, 2(Q−h)):
// r in the first Q−h columns, m in the last Q−h.
//   forward: u_a = y_a, u_b = y_b ⊙ exp(s) + m, s = tanh(r), logdet += Σ s
//   inverse: y_a = u_a, y_b = (u_b − m) ⊙ exp(−s)
// The scale bound s = bound(r) is written once, below, for every entry point.
//
// Entry points: coupling_forward, coupling_inverse — thread per element of (N, Q); in the
// forward, thread (row, 0) also adds the row's Σ s to logdet.
// Bindings: 0 uniform Coupling; 1 x_in (N, Q); 2 rm (N, 2(Q−h)); 3 x_out (N, Q);
//           4 logdet (N) (forward only).
// Twin: src/reference/coupling.rs

struct Coupling {
    n: u32, q: u32, h: u32, _p: u32,
}

@group(0) @binding(0) var<uniform> p: Coupling;
@group(0) @binding(1) var<storage, read> x_in: array<f32>;
@group(0) @binding(2) var<storage, read> rm: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> logdet: array<f32>;

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
    let rm0 = row * 2u * nb;
    if (i < p.h) {
        x_out[e] = x_in[e];
    } else {
        let j = i - p.h;
        x_out[e] = x_in[e] * exp(bound(rm[rm0 + j])) + rm[rm0 + nb + j];
    }
    if (i == 0u) {
        var ld = 0.0;
        for (var j = 0u; j < nb; j++) {
            ld += bound(rm[rm0 + j]);
        }
        logdet[row] += ld;
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
    let rm0 = row * 2u * nb;
    if (i < p.h) {
        x_out[e] = x_in[e];
    } else {
        let j = i - p.h;
        x_out[e] = (x_in[e] - rm[rm0 + nb + j]) * exp(-bound(rm[rm0 + j]));
    }
}
