// fused.wgsl — a whole AffineCoupling(Q) in one dispatch, tiny-cuda-nn's fully fused MLP:
// the conditioner (Linear → ReLU, `depth` times, then the linear output rm = (r, m)) runs
// on a tile of TILE rows whose activations never leave workgroup memory, then the affine
// part of coupling.wgsl:
//   forward: u_a = y_a, u_b = y_b ⊙ exp(s) + m, s = tanh(r), logdet += Σ s
//   inverse: y_a = u_a, y_b = (u_b − m) ⊙ exp(−s)
// Evaluation and sampling keep nothing. Training (SAVE) also stores what backprop needs in
// `saved`: region 0 the coupling's input rows (all Q columns), region k + 1 linear k's
// (post-ReLU) output; region k holds N rows of ld_k = ⌈width/4⌉·4 floats at offset reg[k].x
// of each model's block of sv_ms floats (the padding is never written, so it stays 0, and
// wgrad.wgsl can read every row as whole vec4s). The backward entry point then runs the
// data gradient through the whole conditioner in one pass, writing each linear's output
// gradient dz (same regions) for wgrad.wgsl's weight gradients. The host falls back to GEMMs
// + coupling.wgsl when a layer is wider than MAX_W or deeper than MAX_LIN.
//
// Entry points: fused_coupling_forward, fused_coupling_inverse, fused_coupling_backward —
// one workgroup of 64 per tile of TILE rows; in each linear, thread t owns output columns
// t, t + 64, … for all TILE rows (each weight is read once per tile and reused across the
// rows from registers).
// Bindings (forward, inverse): 0 uniform Fused; 1 params (flat, one copy per model, stride
//           ps); 2 x_in (N, Q); 3 x_out (N, Q); 4 saved (SAVE, else a stand-in); 5 logdet (N)
//           (forward only); 6 inv (Q per model) (forward, PERMUTED: the following permutation
//           folded into the store, as coupling.wgsl).
// Bindings (backward): 1 params; 2 saved (the forward's); 3 du (N, Q) (PERMUTED: ∂L/∂u',
//           read through inv, as coupling.wgsl); 4 dld (N); 5 dx (N, Q) out (=); 6 dz out
//           (saved's layout; region 0 unused); 7 inv.
// Workgroup memory: two TILE × MAX_W f32 ping-pong buffers, 16 KiB (WebGPU's default limit).
// Dispatch: tiles folded into y past 65535; z is the model.
// Twin: src/reference/fused.rs

const TILE: u32 = 8u;
const MAX_W: u32 = 256u;
const MAX_LIN: u32 = 17u;
const MAX_REG: u32 = 18u;

struct Fused {
    n: u32, q: u32, h: u32, nlin: u32,
    ps: u32, flags: u32, sv_ms: u32, _p2: u32,
    // Per linear k: (weight offset, bias offset, fan_in, fan_out), W stored [fan_in][fan_out].
    lin: array<vec4<u32>, MAX_LIN>,
    // Per saved region k: (offset in a model's block, ld, 0, 0).
    reg: array<vec4<u32>, MAX_REG>,
}

@group(0) @binding(0) var<uniform> p: Fused;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> x_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> saved: array<f32>;
@group(0) @binding(5) var<storage, read_write> logdet: array<f32>;
@group(0) @binding(6) var<storage, read> inv_f: array<u32>;

const PERMUTED: u32 = 1u;
const SAVE: u32 = 2u;

// Index of (row, col) of saved region k of model z.
fn region(z: u32, k: u32, row: u32, col: u32) -> u32 {
    let r = p.reg[k];
    return z * p.sv_ms + r.x + row * r.y + col;
}

var<workgroup> act: array<f32, 4096>; // 2 · TILE · MAX_W

// s = tanh(r), clamped as coupling.wgsl does (the same bound in forward, inverse, log-det).
fn bound(r: f32) -> f32 {
    return tanh(clamp(r, -15.0, 15.0));
}

// Runs the conditioner on the first h columns of x_in's rows row0.. (zeros past N); returns
// the offset in `act` of the tile's rm rows (row r at offset + r · MAX_W).
fn conditioner(row0: u32, z: u32, lid: u32) -> u32 {
    let pz = z * p.ps;
    for (var e = lid; e < TILE * p.h; e += 64u) {
        let r = e / p.h;
        let i = e % p.h;
        let row = row0 + r;
        var v = 0.0;
        if (row < p.n) {
            v = x_in[(z * p.n + row) * p.q + i];
        }
        act[r * MAX_W + i] = v;
    }
    workgroupBarrier();
    var src = 0u;
    for (var k = 0u; k < p.nlin; k++) {
        let l = p.lin[k];
        let dst = TILE * MAX_W - src;
        let relu = k + 1u < p.nlin;
        for (var j = lid; j < l.w; j += 64u) {
            var acc: array<f32, 8>;
            let b = params[pz + l.y + j];
            for (var r = 0u; r < TILE; r++) {
                acc[r] = b;
            }
            for (var i = 0u; i < l.z; i++) {
                let w = params[pz + l.x + i * l.w + j];
                for (var r = 0u; r < TILE; r++) {
                    acc[r] += act[src + r * MAX_W + i] * w;
                }
            }
            for (var r = 0u; r < TILE; r++) {
                let v = select(acc[r], max(acc[r], 0.0), relu);
                act[dst + r * MAX_W + j] = v;
                if ((p.flags & SAVE) != 0u && row0 + r < p.n) {
                    saved[region(z, k + 1u, row0 + r, j)] = v;
                }
            }
        }
        workgroupBarrier();
        src = dst;
    }
    return src;
}

fn tile_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wg.x + wg.y * nwg.x) * TILE;
}

@compute @workgroup_size(64)
fn fused_coupling_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = tile_of(wg, nwg);
    let rm = conditioner(row0, wg.z, lid);
    let nb = p.q - p.h;
    for (var e = lid; e < TILE * p.q; e += 64u) {
        let r = e / p.q;
        let i = e % p.q;
        let row = row0 + r;
        if (row < p.n) {
            let x = (wg.z * p.n + row) * p.q + i;
            var dst = x;
            if ((p.flags & PERMUTED) != 0u) {
                dst = x - i + inv_f[wg.z * p.q + i];
            }
            if ((p.flags & SAVE) != 0u) {
                saved[region(wg.z, 0u, row, i)] = x_in[x];
            }
            if (i < p.h) {
                x_out[dst] = x_in[x];
            } else {
                let j = i - p.h;
                x_out[dst] = x_in[x] * exp(bound(act[rm + r * MAX_W + j])) + act[rm + r * MAX_W + nb + j];
            }
        }
    }
    if (lid < TILE && row0 + lid < p.n) {
        var ld = 0.0;
        for (var j = 0u; j < nb; j++) {
            ld += bound(act[rm + lid * MAX_W + j]);
        }
        logdet[wg.z * p.n + row0 + lid] += ld;
    }
}

@compute @workgroup_size(64)
fn fused_coupling_inverse(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = tile_of(wg, nwg);
    let rm = conditioner(row0, wg.z, lid);
    let nb = p.q - p.h;
    for (var e = lid; e < TILE * p.q; e += 64u) {
        let r = e / p.q;
        let i = e % p.q;
        let row = row0 + r;
        if (row < p.n) {
            let x = (wg.z * p.n + row) * p.q + i;
            if (i < p.h) {
                x_out[x] = x_in[x];
            } else {
                let j = i - p.h;
                x_out[x] = (x_in[x] - act[rm + r * MAX_W + nb + j]) * exp(-bound(act[rm + r * MAX_W + j]));
            }
        }
    }
}

// ---- backward -------------------------------------------------------------------------
// Given du = ∂L/∂u (N, Q) and dld = ∂L/∂logdet (N), the affine part as coupling.wgsl's:
//   dy_b = du_b ⊙ exp(s), ds = du_b ⊙ y_b ⊙ exp(s) + dld, dr = ds ⊙ bound'(r), dm = du_b;
// then down the conditioner, the tile's gradients ping-ponging in workgroup memory:
//   dz_last = (dr, dm), dz_{k−1} = (dz_k · W_kᵀ) ⊙ 1[out_{k−1} > 0], dy_a = du_a + dz_0 · W_0ᵀ.
// Every dz_k is stored (=) for wgrad.wgsl; dx is written (=) whole.
@group(0) @binding(2) var<storage, read> sv: array<f32>;
@group(0) @binding(3) var<storage, read> du: array<f32>;
@group(0) @binding(4) var<storage, read> dld: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;
@group(0) @binding(7) var<storage, read> inv_b: array<u32>;

// d bound / dr: 1 − tanh² inside the clamp, 0 outside it (where the clamp is flat).
fn bound_grad(r: f32) -> f32 {
    if (abs(r) > 15.0) {
        return 0.0;
    }
    let s = tanh(r);
    return 1.0 - s * s;
}

// ∂L/∂u_i of a row, read through the folded permutation when there is one.
fn du_at(z: u32, row: u32, i: u32) -> f32 {
    let x = (z * p.n + row) * p.q + i;
    if ((p.flags & PERMUTED) != 0u) {
        return du[x - i + inv_b[z * p.q + i]];
    }
    return du[x];
}

@compute @workgroup_size(64)
fn fused_coupling_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = tile_of(wg, nwg);
    let z = wg.z;
    let nb = p.q - p.h;
    // The affine part; rm, the output layer's result, is region nlin.
    for (var e = lid; e < TILE * nb; e += 64u) {
        let r = e / nb;
        let j = e % nb;
        let row = row0 + r;
        var dr = 0.0;
        var dm = 0.0;
        if (row < p.n) {
            let i = p.h + j;
            let g = du_at(z, row, i);
            let rv = sv[region(z, p.nlin, row, j)];
            let es = exp(bound(rv));
            dx[(z * p.n + row) * p.q + i] = g * es;
            let ds = g * sv[region(z, 0u, row, i)] * es + dld[z * p.n + row];
            dr = ds * bound_grad(rv);
            dm = g;
            dz[region(z, p.nlin, row, j)] = dr;
            dz[region(z, p.nlin, row, nb + j)] = dm;
        }
        act[r * MAX_W + j] = dr;
        act[r * MAX_W + nb + j] = dm;
    }
    workgroupBarrier();
    var src = 0u;
    for (var kk = p.nlin; kk > 0u; kk--) {
        let k = kk - 1u;
        let l = p.lin[k];
        let dst = TILE * MAX_W - src;
        // Thread t owns the linear's input columns t, t + 64, …: W's rows, read once per tile.
        for (var i = lid; i < l.z; i += 64u) {
            var acc: array<f32, 8>;
            for (var r = 0u; r < TILE; r++) {
                acc[r] = 0.0;
            }
            let w0 = z * p.ps + l.x + i * l.w;
            for (var j = 0u; j < l.w; j++) {
                let w = params[w0 + j];
                for (var r = 0u; r < TILE; r++) {
                    acc[r] += act[src + r * MAX_W + j] * w;
                }
            }
            for (var r = 0u; r < TILE; r++) {
                let row = row0 + r;
                if (k > 0u) {
                    var v = 0.0;
                    if (row < p.n && sv[region(z, k, row, i)] > 0.0) {
                        v = acc[r];
                    }
                    act[dst + r * MAX_W + i] = v;
                    if (row < p.n) {
                        dz[region(z, k, row, i)] = v;
                    }
                } else if (row < p.n) {
                    dx[(z * p.n + row) * p.q + i] = du_at(z, row, i) + acc[r];
                }
            }
        }
        workgroupBarrier();
        src = dst;
    }
}
