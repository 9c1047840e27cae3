// permute.wgsl — a fixed permutation of the Q columns as a gather: out[row, i] = x[row, idx[i]].
// Reverse uses idx = (Q−1, …, 0); Shuffle uses its stored π; an inverse uses π⁻¹.
// log|det| = 0, so nothing is added to logdet.
//
// Entry points: permute_gather — thread per element of (N, Q).
//   copy_columns — out[out_off + row·out_rs + j] = x[in_off + row·in_rs + j], j < Q: a block
//   of columns between rows of different widths (a conv flow's latent pieces and its dense
//   head's columns); model z's rows start z·in_ms and z·out_ms further.
// Bindings: permute_gather 0 uniform Permute; 1 idx (Q) u32; 2 x_in; 3 x_out.
//           copy_columns 0 uniform Permute; 1 source; 2 destination.
// Dispatch: 1-D grid folded into y; z is the model (its own idx, strides Q and N·Q).
// Twin: src/reference/permute.rs

struct Permute {
    n: u32, q: u32, in_off: u32, in_rs: u32,
    out_off: u32, out_rs: u32, in_ms: u32, out_ms: u32,
}

@group(0) @binding(0) var<uniform> p: Permute;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read> x_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;

@compute @workgroup_size(64)
fn permute_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= p.n * p.q) {
        return;
    }
    let row = e / p.q;
    let i = e % p.q;
    let x0 = gid.z * p.n * p.q;
    x_out[x0 + e] = x_in[x0 + row * p.q + idx[gid.z * p.q + i]];
}

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn copy_columns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= p.n * p.q) {
        return;
    }
    let row = e / p.q;
    let j = e % p.q;
    dst[p.out_off + gid.z * p.out_ms + row * p.out_rs + j] = src[p.in_off + gid.z * p.in_ms + row * p.in_rs + j];
}
