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
// one workgroup of 64 per tile of TILE rows. A linear whose output width is a multiple of 4
// (every hidden layer of the thesis's models) takes the vec4 path: an invocation owns 4
// output columns × 4 rows forward (4 input columns × 4 rows backward) and reads weights
// and activations as whole vec4s, 64 FMAs per 8 loads; other widths take the scalar path,
// an invocation per output column for all TILE rows. Either way each weight is read once
// per tile and reused across its rows from registers. Rows in `act` are padded with zeros
// to a multiple of 4 so that the vec4 path can read any layer's input whole.
// Bindings (forward, inverse): 0 uniform Fused; 1 params (flat, one copy per model, stride
//           ps); 2 x_in (N, Q); 3 x_out (N, Q); 4 saved (SAVE, else a stand-in); 5 logdet (N)
//           (forward only); 6 inv (Q per model) (forward, PERMUTED: the following permutation
//           folded into the store, as coupling.wgsl).
// Bindings (backward): 1 params; 2 saved (the forward's); 3 du (N, Q) (PERMUTED: ∂L/∂u',
//           read through inv, as coupling.wgsl); 4 dld (N); 5 dx (N, Q) out (=); 6 dz out
//           (saved's layout; region 0 unused); 7 inv.
// ACTNORM (flags): the ActNorm in front of the coupling is folded in, as actnorm.wgsl's
// u = (x − β)/(exp(a) + γ): the forward reads the ActNorm's input and transforms each value
// as it loads it (and adds its log-det), so the ActNorm is no dispatch of its own; saved
// region 0 holds the transformed rows, the coupling's input. The backward then writes the
// gradient with respect to the ActNorm's input (dx / σ) and keeps the coupling input's
// gradient in dz's region 0, from which wgrad.wgsl reduces β's and a's gradients. The
// inverse is unchanged (actnorm_inverse stays a dispatch).
// Workgroup memory: two TILE × MAX_W f32 ping-pong buffers, 16 KiB (WebGPU's default limit).
// Dispatch: tiles folded into y past 65535; z is the model.
// Twin: src/reference/fused.rs

const TILE: u32 = 8u;
const MAX_W: u32 = 256u;
const MAX_LIN: u32 = 17u;
const MAX_REG: u32 = 18u;

struct Fused {
    n: u32, q: u32, h: u32, nlin: u32,
    ps: u32, flags: u32, sv_ms: u32, an_beta: u32,
    an_a: u32, _p0: u32, _p1: u32, _p2: u32,
    // Per linear k: (weight offset, bias offset, fan_in, fan_out), W stored [fan_in][fan_out].
    lin: array<vec4<u32>, MAX_LIN>,
    // Per saved region k: (offset in a model's block, ld, 0, 0).
    reg: array<vec4<u32>, MAX_REG>,
}

@group(0) @binding(0) var<uniform> p: Fused;
@group(0) @binding(1) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> saved: array<f32>;
@group(0) @binding(5) var<storage, read_write> logdet: array<f32>;
@group(0) @binding(6) var<storage, read> inv_f: array<u32>;

const PERMUTED: u32 = 1u;
const SAVE: u32 = 2u;
const ACTNORM: u32 = 4u;
const ROWS8: u32 = 8u;
const GAMMA: f32 = 1e-6; // actnorm.wgsl's

// Index of (row, col) of saved region k of model z.
fn region(z: u32, k: u32, row: u32, col: u32) -> u32 {
    let r = p.reg[k];
    return z * p.sv_ms + r.x + row * r.y + col;
}

var<workgroup> act: array<vec4<f32>, 1024>; // 2 · TILE · MAX_W floats

// Every write to `act` stores a whole vec4, and between two barriers each vec4 has one
// writer: WGSL lets a write to one component of a vector access the whole vector, so two
// invocations writing neighbouring components would race on some backends.

fn act_get(e: u32) -> f32 {
    return act[e / 4u][e % 4u];
}

fn param(i: u32) -> f32 {
    return params[i / 4u][i % 4u];
}

fn round4(w: u32) -> u32 {
    return (w + 3u) / 4u * 4u;
}

// σ_i = exp(a_i) + γ of the folded ActNorm.
fn an_scale(z: u32, i: u32) -> f32 {
    return exp(param(z * p.ps + p.an_a + i)) + GAMMA;
}

// Element i of a row of the coupling's input: x_in's, through the folded ActNorm (ACTNORM).
fn input(z: u32, row: u32, i: u32) -> f32 {
    let v = x_in[(z * p.n + row) * p.q + i];
    if ((p.flags & ACTNORM) == 0u) {
        return v;
    }
    return (v - param(z * p.ps + p.an_beta + i)) / an_scale(z, i);
}

// s = tanh(r), clamped as coupling.wgsl does (the same bound in forward, inverse, log-det).
fn bound(r: f32) -> f32 {
    return tanh(clamp(r, -15.0, 15.0));
}

// Rows i..i + 3 of a weight matrix at its column vec4 c (c4n vec4s per row; vec4 view wz),
// zero past fan_in.
fn w_rows4(wz: u32, i: u32, c4n: u32, c: u32, fan_in: u32) -> array<vec4<f32>, 4> {
    let last = fan_in - 1u;
    let zero = vec4<f32>(0.0);
    return array<vec4<f32>, 4>(
        params[wz + i * c4n + c],
        select(zero, params[wz + min(i + 1u, last) * c4n + c], i + 1u < fan_in),
        select(zero, params[wz + min(i + 2u, last) * c4n + c], i + 2u < fan_in),
        select(zero, params[wz + min(i + 3u, last) * c4n + c], i + 3u < fan_in),
    );
}

// Under SAVE, linear k's outputs of a row at column vec4 c into saved region k + 1.
fn save4(z: u32, k: u32, row: u32, c: u32, v: vec4<f32>) {
    if ((p.flags & SAVE) != 0u && row < p.n) {
        let e = region(z, k + 1u, row, 4u * c);
        saved[e] = v.x;
        saved[e + 1u] = v.y;
        saved[e + 2u] = v.z;
        saved[e + 3u] = v.w;
    }
}

// Output layer k of the tile: act rows at dst ← (act rows at src)·W + b (→ ReLU), and into
// saved region k + 1 under SAVE. Vec4 path (fan_out ≡ 0 mod 4); weights past fan_in are
// read as zeros (the input's padding is zero too).
fn linear4(l: vec4<u32>, k: u32, pz: u32, src: u32, dst: u32, row0: u32, z: u32, lid: u32) {
    let relu = k + 1u < p.nlin;
    let c4n = l.w / 4u;
    let wz = (pz + l.x) / 4u;
    let zero = vec4<f32>(0.0);
    for (var it = lid; it < c4n * 2u; it += 64u) {
        let c = it % c4n;
        let r0 = (it / c4n) * 4u;
        let b = params[(pz + l.y) / 4u + c];
        var a0 = b;
        var a1 = b;
        var a2 = b;
        var a3 = b;
        let x = (src + r0 * MAX_W) / 4u;
        for (var i = 0u; i < l.z; i += 4u) {
            let w = w_rows4(wz, i, c4n, c, l.z);
            let x0 = act[x + i / 4u];
            let x1 = act[x + MAX_W / 4u + i / 4u];
            let x2 = act[x + 2u * MAX_W / 4u + i / 4u];
            let x3 = act[x + 3u * MAX_W / 4u + i / 4u];
            a0 += x0.x * w[0] + x0.y * w[1] + x0.z * w[2] + x0.w * w[3];
            a1 += x1.x * w[0] + x1.y * w[1] + x1.z * w[2] + x1.w * w[3];
            a2 += x2.x * w[0] + x2.y * w[1] + x2.z * w[2] + x2.w * w[3];
            a3 += x3.x * w[0] + x3.y * w[1] + x3.z * w[2] + x3.w * w[3];
        }
        let outs = array<vec4<f32>, 4>(a0, a1, a2, a3);
        for (var r = 0u; r < 4u; r++) {
            var v = outs[r];
            if (relu) {
                v = max(v, zero);
            }
            act[(dst + (r0 + r) * MAX_W) / 4u + c] = v;
            save4(z, k, row0 + r0 + r, c, v);
        }
    }
}

// linear4 with all TILE rows per invocation (ROWS8): half the invocations, each weight vec4
// reused over 8 rows instead of 4. Fewer, fuller invocations: what CPU adapters prefer (19%
// faster on lavapipe); the tuner picks per adapter.
fn linear4_rows8(l: vec4<u32>, k: u32, pz: u32, src: u32, dst: u32, row0: u32, z: u32, lid: u32) {
    let relu = k + 1u < p.nlin;
    let c4n = l.w / 4u;
    let wz = (pz + l.x) / 4u;
    let zero = vec4<f32>(0.0);
    for (var c = lid; c < c4n; c += 64u) {
        let b = params[(pz + l.y) / 4u + c];
        var a: array<vec4<f32>, 8>;
        for (var r = 0u; r < TILE; r++) {
            a[r] = b;
        }
        let x = src / 4u;
        for (var i = 0u; i < l.z; i += 4u) {
            let w = w_rows4(wz, i, c4n, c, l.z);
            for (var r = 0u; r < TILE; r++) {
                let xr = act[x + r * MAX_W / 4u + i / 4u];
                a[r] += xr.x * w[0] + xr.y * w[1] + xr.z * w[2] + xr.w * w[3];
            }
        }
        for (var r = 0u; r < TILE; r++) {
            var v = a[r];
            if (relu) {
                v = max(v, zero);
            }
            act[(dst + r * MAX_W) / 4u + c] = v;
            save4(z, k, row0 + r, c, v);
        }
    }
}

// linear4 for any fan_out: an invocation per group of 4 output columns, all TILE rows; the
// group's columns past fan_out read zero weights and bias, so they come out 0.
fn linear1(l: vec4<u32>, k: u32, pz: u32, src: u32, dst: u32, row0: u32, z: u32, lid: u32) {
    let relu = k + 1u < p.nlin;
    for (var jg = lid; jg < round4(l.w) / 4u; jg += 64u) {
        let j0 = jg * 4u;
        var b = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {
            if (j0 + c < l.w) {
                b[c] = param(pz + l.y + j0 + c);
            }
        }
        var acc: array<vec4<f32>, 8>;
        for (var r = 0u; r < TILE; r++) {
            acc[r] = b;
        }
        for (var i = 0u; i < l.z; i++) {
            var w = vec4<f32>(0.0);
            for (var c = 0u; c < 4u; c++) {
                if (j0 + c < l.w) {
                    w[c] = param(pz + l.x + i * l.w + j0 + c);
                }
            }
            for (var r = 0u; r < TILE; r++) {
                acc[r] += act_get(src + r * MAX_W + i) * w;
            }
        }
        for (var r = 0u; r < TILE; r++) {
            var v = acc[r];
            if (relu) {
                v = max(v, vec4<f32>(0.0));
            }
            act[(dst + r * MAX_W + j0) / 4u] = v;
            if ((p.flags & SAVE) != 0u && row0 + r < p.n) {
                for (var c = 0u; c < 4u; c++) {
                    if (j0 + c < l.w) {
                        saved[region(z, k + 1u, row0 + r, j0 + c)] = v[c];
                    }
                }
            }
        }
    }
}

// Runs the conditioner on the first h columns of x_in's rows row0.. (zeros past N); returns
// the offset in `act` of the tile's rm rows (row r at offset + r · MAX_W).
fn conditioner(row0: u32, z: u32, lid: u32) -> u32 {
    let pz = z * p.ps;
    let h4 = round4(p.h) / 4u;
    for (var e = lid; e < TILE * h4; e += 64u) {
        let r = e / h4;
        let i0 = (e % h4) * 4u;
        let row = row0 + r;
        var v = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {
            if (row < p.n && i0 + c < p.h) {
                v[c] = input(z, row, i0 + c);
            }
        }
        act[(r * MAX_W + i0) / 4u] = v;
    }
    workgroupBarrier();
    var src = 0u;
    for (var k = 0u; k < p.nlin; k++) {
        let l = p.lin[k];
        let dst = TILE * MAX_W - src;
        if (l.w % 4u == 0u && (p.flags & ROWS8) != 0u) {
            linear4_rows8(l, k, pz, src, dst, row0, z, lid);
        } else if (l.w % 4u == 0u) {
            linear4(l, k, pz, src, dst, row0, z, lid);
        } else {
            linear1(l, k, pz, src, dst, row0, z, lid);
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
            let y = input(wg.z, row, i);
            if ((p.flags & SAVE) != 0u) {
                saved[region(wg.z, 0u, row, i)] = y;
            }
            if (i < p.h) {
                x_out[dst] = y;
            } else {
                let j = i - p.h;
                x_out[dst] = y * exp(bound(act_get(rm + r * MAX_W + j))) + act_get(rm + r * MAX_W + nb + j);
            }
        }
    }
    if (lid < TILE && row0 + lid < p.n) {
        var ld = 0.0;
        for (var j = 0u; j < nb; j++) {
            ld += bound(act_get(rm + lid * MAX_W + j));
        }
        if ((p.flags & ACTNORM) != 0u) {
            for (var i = 0u; i < p.q; i++) {
                ld -= log(an_scale(wg.z, i));
            }
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
                x_out[x] = (x_in[x] - act_get(rm + r * MAX_W + nb + j)) * exp(-bound(act_get(rm + r * MAX_W + j)));
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

// Stores ∂L/∂(coupling input) g of (row, i): into dx, or under ACTNORM through the folded
// ActNorm (dx = g/σ), keeping g in dz's region 0 for its parameter gradients.
fn grad_in(z: u32, row: u32, i: u32, g: f32) {
    let e = (z * p.n + row) * p.q + i;
    if ((p.flags & ACTNORM) == 0u) {
        dx[e] = g;
        return;
    }
    dx[e] = g / an_scale(z, i);
    dz[region(z, 0u, row, i)] = g;
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
    // The affine part, an invocation per group of 4 of rm's gradient columns (dr for
    // c < nb, dm past it, zero padding past 2nb); rm, the output layer's result, is region nlin.
    let g4 = round4(2u * nb) / 4u;
    for (var e = lid; e < TILE * g4; e += 64u) {
        let r = e / g4;
        let c0 = (e % g4) * 4u;
        let row = row0 + r;
        var v = vec4<f32>(0.0);
        if (row < p.n) {
            for (var t = 0u; t < 4u; t++) {
                let c = c0 + t;
                if (c < nb) {
                    let i = p.h + c;
                    let g = du_at(z, row, i);
                    let rv = sv[region(z, p.nlin, row, c)];
                    let es = exp(bound(rv));
                    grad_in(z, row, i, g * es);
                    let ds = g * sv[region(z, 0u, row, i)] * es + dld[z * p.n + row];
                    v[t] = ds * bound_grad(rv);
                } else if (c < 2u * nb) {
                    v[t] = du_at(z, row, p.h + c - nb);
                }
                if (c < 2u * nb) {
                    dz[region(z, p.nlin, row, c)] = v[t];
                }
            }
        }
        act[(r * MAX_W + c0) / 4u] = v;
    }
    workgroupBarrier();
    let pz = z * p.ps;
    var src = 0u;
    for (var kk = p.nlin; kk > 0u; kk--) {
        let k = kk - 1u;
        let l = p.lin[k];
        let dst = TILE * MAX_W - src;
        if (l.w % 4u == 0u) {
            back4(l, k, pz, src, dst, row0, z, lid);
        } else {
            back1(l, k, pz, src, dst, row0, z, lid);
        }
        workgroupBarrier();
        src = dst;
    }
}

// The gradient g that reached linear k's input at tile row r, columns i0..i0 + 3: through
// the ReLU of the layer below into act and dz (k > 0), or with du_a into dx (k = 0). Columns
// past fan_in are the padding, zeroed.
fn back_store4(k: u32, fan_in: u32, dst: u32, row0: u32, r: u32, i0: u32, z: u32, g: vec4<f32>) {
    let row = row0 + r;
    var v = vec4<f32>(0.0);
    for (var t = 0u; t < 4u; t++) {
        let i = i0 + t;
        let live = row < p.n && i < fan_in;
        if (k > 0u) {
            if (live && sv[region(z, k, row, i)] > 0.0) {
                v[t] = g[t];
            }
            if (live) {
                dz[region(z, k, row, i)] = v[t];
            }
        } else if (live) {
            grad_in(z, row, i, du_at(z, row, i) + g[t]);
        }
    }
    if (k > 0u) {
        act[(dst + r * MAX_W + i0) / 4u] = v;
    }
}

// d input = dz_k · W_kᵀ, vec4 path (fan_out ≡ 0 mod 4): an invocation owns 4 input columns
// (W's rows, clamped past fan_in) × 4 rows; each step is 4 dot products of 4 vec4s.
fn back4(l: vec4<u32>, k: u32, pz: u32, src: u32, dst: u32, row0: u32, z: u32, lid: u32) {
    let c4n = l.w / 4u;
    let wz = (pz + l.x) / 4u;
    let last = l.z - 1u;
    let in4 = round4(l.z) / 4u;
    for (var it = lid; it < in4 * 2u; it += 64u) {
        let i0 = (it % in4) * 4u;
        let r0 = (it / in4) * 4u;
        let wr0 = wz + min(i0, last) * c4n;
        let wr1 = wz + min(i0 + 1u, last) * c4n;
        let wr2 = wz + min(i0 + 2u, last) * c4n;
        let wr3 = wz + min(i0 + 3u, last) * c4n;
        let d = (src + r0 * MAX_W) / 4u;
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        for (var j = 0u; j < c4n; j++) {
            let w0 = params[wr0 + j];
            let w1 = params[wr1 + j];
            let w2 = params[wr2 + j];
            let w3 = params[wr3 + j];
            let d0 = act[d + j];
            let d1 = act[d + MAX_W / 4u + j];
            let d2 = act[d + 2u * MAX_W / 4u + j];
            let d3 = act[d + 3u * MAX_W / 4u + j];
            a0 += vec4<f32>(dot(d0, w0), dot(d0, w1), dot(d0, w2), dot(d0, w3));
            a1 += vec4<f32>(dot(d1, w0), dot(d1, w1), dot(d1, w2), dot(d1, w3));
            a2 += vec4<f32>(dot(d2, w0), dot(d2, w1), dot(d2, w2), dot(d2, w3));
            a3 += vec4<f32>(dot(d3, w0), dot(d3, w1), dot(d3, w2), dot(d3, w3));
        }
        let g = array<vec4<f32>, 4>(a0, a1, a2, a3);
        for (var r = 0u; r < 4u; r++) {
            back_store4(k, l.z, dst, row0, r0 + r, i0, z, g[r]);
        }
    }
}

// back4 for any fan_out: an invocation per group of 4 input columns (W's rows; those past
// fan_in read as zero), all TILE rows.
fn back1(l: vec4<u32>, k: u32, pz: u32, src: u32, dst: u32, row0: u32, z: u32, lid: u32) {
    for (var ig = lid; ig < round4(l.z) / 4u; ig += 64u) {
        let i0 = ig * 4u;
        var acc: array<vec4<f32>, 8>;
        for (var r = 0u; r < TILE; r++) {
            acc[r] = vec4<f32>(0.0);
        }
        for (var j = 0u; j < l.w; j++) {
            var w = vec4<f32>(0.0);
            for (var c = 0u; c < 4u; c++) {
                if (i0 + c < l.z) {
                    w[c] = param(pz + l.x + (i0 + c) * l.w + j);
                }
            }
            for (var r = 0u; r < TILE; r++) {
                acc[r] += act_get(src + r * MAX_W + j) * w;
            }
        }
        for (var r = 0u; r < TILE; r++) {
            back_store4(k, l.z, dst, row0, r, i0, z, acc[r]);
        }
    }
}
