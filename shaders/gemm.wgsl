// gemm.wgsl — C = A·B (+ bias) (→ ReLU), f32, any M, N, K.
//
// A, B and C are strided views into flat buffers: element (i, k) of A lives at
// a_off + i*a_rs + k*a_cs, so the transposes backprop needs (dY·Wᵀ, Xᵀ·dY) are the same
// kernel with other strides, and a column block (the coupling's y_a) is a view too.
// flags: BIAS adds aux[aux_off + j] (with ROWBIAS, aux[aux_off + i]: a 1×1 convolution's
// bias per output channel, its rows); NORM then applies an ActNorm indexed like the bias,
// (v − aux[norm_beta + ·])/(exp(aux[norm_a + ·]) + γ), γ = 1e-6 (a conditioner's hidden 1×1
// convolution: its ActNorm folded into the stores; the offsets advance aux_ms per model);
// RELU clamps at 0; ACCUM adds into C (C += A·B);
// MASK multiplies by 1[aux[aux_off + i·c_rs + j] > 0] — the ReLU derivative in backprop,
// aux being the layer's post-ReLU output (same shape as C). COLSUM also writes (=) the
// column sums of B, Σ_k B(k, j), to c[cs_off + j]: a weight gradient's GEMM (dW = Xᵀ·dZ)
// gives its bias gradient (Σ over rows of dZ) from the loads it makes anyway, computed by
// the invocations that own row 0.
//
// Entry points (same bindings; the host picks one per GEMM, see Variant in src/kernels/gemm.rs):
//   gemm_reg   — any strides. 8×8 threads, each a 4×4 register block over rows row0 + r·8
//                and columns col0 + c·8 (neighbouring threads touch neighbouring columns).
//                No workgroup memory. The fallback on CPU adapters.
//   gemm_thin  — any strides, one output per invocation over the flattened (row, col) index:
//                for thin products (an output side below 16: a coupling's narrow last
//                layer and the gradients of its first) where gemm_reg's 4×4 blocks would
//                mostly compute clamped duplicates. Dispatch: 1-D over M·N in 64-wide
//                workgroups, folded into y past 65535, z = model.
//   gemm_tiled — any strides. 16×16 threads, 64×64 tile, K staged through workgroup memory
//                in slabs of 16 (8 KiB): the variant for real GPUs.
//   gemm_tiled_wide — gemm_tiled with 128×128 tiles, 8×8 outputs per thread (16 KiB of
//                workgroup memory, WebGPU's default limit): more work per invocation and
//                half the tile loads per FLOP, for large products on GPUs.
//   gemm_nn4, gemm_nn4_narrow, gemm_nt4, gemm_tn4 — vec4 loads along the contiguous dimension, large register
//                blocks, no workgroup memory: the fast paths on CPU adapters (lavapipe),
//                when shapes and strides are multiples of 4 (see their headers below). Their
//                unrolled bodies are generated from tile parameters by tools/gen_gemm.py.
// Dispatch: (⌈N/TN⌉, ⌈M/TM⌉, models) with the tile TM×TN of the entry point: 32×32 gemm_reg,
// 64×64 gemm_tiled and gemm_nt4, 128×128 gemm_tiled_wide, 64×128 gemm_nn4 and gemm_tn4; gemm_nn4_narrow's 512×4 tiles
// are dispatched (⌈M/512⌉, N/4, models).
// Bindings: 0 uniform Gemm; 1 a; 2 b; 3 aux (bias or mask); 4 c (read_write).
// Twin: src/reference/gemm.rs

struct Gemm {
    m: u32, n: u32, k: u32, flags: u32,
    a_off: u32, a_rs: u32, a_cs: u32, b_off: u32,
    b_rs: u32, b_cs: u32, c_off: u32, c_rs: u32,
    aux_off: u32, a_ms: u32, b_ms: u32, c_ms: u32,
    aux_ms: u32, cs_off: u32, norm_beta: u32, norm_a: u32,
}

const BIAS: u32 = 1u;
const RELU: u32 = 2u;
const ACCUM: u32 = 4u;
const MASK: u32 = 8u;
const COLSUM: u32 = 16u;
const ROWBIAS: u32 = 32u;
const NORM: u32 = 64u;

@group(0) @binding(0) var<uniform> g: Gemm;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// Many models at once: the model index is the grid's z, and each operand of model z starts
// *_ms elements after model z − 1's (0 for an operand all models share).
var<private> a_off: u32;
var<private> b_off: u32;
var<private> c_off: u32;
var<private> aux_off: u32;
var<private> cs_off: u32;

fn set_model(z: u32) {
    a_off = g.a_off + z * g.a_ms;
    b_off = g.b_off + z * g.b_ms;
    c_off = g.c_off + z * g.c_ms;
    aux_off = g.aux_off + z * g.aux_ms;
    cs_off = g.cs_off + z * g.c_ms;
}

// Whether this invocation, owning output row `row0`, writes B's column sums (COLSUM).
fn sums_columns(row0: u32) -> bool {
    return (g.flags & COLSUM) != 0u && row0 == 0u;
}

fn store_colsum(col: u32, v: f32) {
    if (col < g.n) {
        c[cs_off + col] = v;
    }
}

fn store(row: u32, col: u32, acc: f32) {
    if (row >= g.m || col >= g.n) {
        return;
    }
    let idx = c_off + row * g.c_rs + col;
    var v = acc;
    if ((g.flags & ACCUM) != 0u) {
        v += c[idx];
    }
    if ((g.flags & BIAS) != 0u) {
        v += aux[aux_off + select(col, row, (g.flags & ROWBIAS) != 0u)];
    }
    if ((g.flags & NORM) != 0u) {
        let ch = aux_off - g.aux_off + select(col, row, (g.flags & ROWBIAS) != 0u);
        v = (v - aux[ch + g.norm_beta]) / (exp(aux[ch + g.norm_a]) + 1e-6);
    }
    if ((g.flags & MASK) != 0u && aux[aux_off + row * g.c_rs + col] <= 0.0) {
        v = 0.0;
    }
    if ((g.flags & RELU) != 0u) {
        v = max(v, 0.0);
    }
    c[idx] = v;
}

fn store_block(row0: u32, col0: u32, step: u32, acc: array<vec4<f32>, 4>) {
    for (var r = 0u; r < 4u; r++) {
        let row = row0 + r * step;
        store(row, col0, acc[r].x);
        store(row, col0 + step, acc[r].y);
        store(row, col0 + 2u * step, acc[r].z);
        store(row, col0 + 3u * step, acc[r].w);
    }
}

const RT: u32 = 8u; // gemm_reg threads per side; the block is 4·RT = 32 square

@compute @workgroup_size(8, 8)
fn gemm_reg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    set_model(wg.z);
    let row0 = wg.y * RT * 4u + lid.y;
    let col0 = wg.x * RT * 4u + lid.x;
    let steps = vec4<u32>(0u, 1u, 2u, 3u) * RT;
    // Out-of-range rows and columns read clamped (valid) addresses; store() masks them.
    let rows = min(vec4<u32>(row0) + steps, vec4<u32>(g.m - 1u));
    let cols = min(vec4<u32>(col0) + steps, vec4<u32>(g.n - 1u));
    var ai = vec4<u32>(a_off) + rows * g.a_rs;
    var bi = vec4<u32>(b_off) + cols * g.b_cs;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let colsum = sums_columns(row0);
    var cs = vec4<f32>(0.0);
    for (var kk = 0u; kk < g.k; kk++) {
        let av = vec4<f32>(a[ai.x], a[ai.y], a[ai.z], a[ai.w]);
        let bv = vec4<f32>(b[bi.x], b[bi.y], b[bi.z], b[bi.w]);
        acc0 += av.x * bv;
        acc1 += av.y * bv;
        acc2 += av.z * bv;
        acc3 += av.w * bv;
        if (colsum) {
            cs += bv;
        }
        ai += vec4<u32>(g.a_cs);
        bi += vec4<u32>(g.b_rs);
    }
    store_block(row0, col0, RT, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
    if (colsum) {
        for (var t = 0u; t < 4u; t++) {
            store_colsum(col0 + t * RT, cs[t]);
        }
    }
}

@compute @workgroup_size(64)
fn gemm_thin(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    set_model(gid.z);
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= g.m * g.n) {
        return;
    }
    let row = e / g.n;
    let col = e % g.n;
    var ai = a_off + row * g.a_rs;
    var bi = b_off + col * g.b_cs;
    var acc = 0.0;
    let colsum = sums_columns(row);
    var cs = 0.0;
    for (var kk = 0u; kk < g.k; kk++) {
        acc += a[ai] * b[bi];
        if (colsum) {
            cs += b[bi];
        }
        ai += g.a_cs;
        bi += g.b_rs;
    }
    store(row, col, acc);
    if (colsum) {
        store_colsum(col, cs);
    }
}

const TT: u32 = 16u;   // gemm_tiled threads per side
const TM: u32 = 64u;   // tile rows and columns (4 per thread)
const TK: u32 = 16u;   // K slab
var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TM]

@compute @workgroup_size(16, 16)
fn gemm_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    set_model(wg.z);
    let row_base = wg.y * TM;
    let col_base = wg.x * TM;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let colsum = sums_columns(row_base + lid.y);
    var cs = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < g.k; k0 += TK) {
        for (var t = 0u; t < 4u; t++) {
            let e = li + t * 256u;
            let i = e % TM;
            let kk = e / TM;
            let gk = k0 + kk;
            var av = 0.0;
            let gi = row_base + i;
            if (gi < g.m && gk < g.k) {
                av = a[a_off + gi * g.a_rs + gk * g.a_cs];
            }
            a_tile[kk * TM + i] = av;
            var bv = 0.0;
            let gj = col_base + i;
            if (gj < g.n && gk < g.k) {
                bv = b[b_off + gk * g.b_rs + gj * g.b_cs];
            }
            b_tile[kk * TM + i] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let ab = kk * TM + lid.y;
            let bb = kk * TM + lid.x;
            let av = vec4<f32>(a_tile[ab], a_tile[ab + TT], a_tile[ab + 2u * TT], a_tile[ab + 3u * TT]);
            let bv = vec4<f32>(b_tile[bb], b_tile[bb + TT], b_tile[bb + 2u * TT], b_tile[bb + 3u * TT]);
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
            if (colsum) {
                cs += bv;
            }
        }
        workgroupBarrier();
    }
    store_block(row_base + lid.y, col_base + lid.x, TT, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
    if (colsum) {
        for (var t = 0u; t < 4u; t++) {
            store_colsum(col_base + lid.x + t * TT, cs[t]);
        }
    }
}

const WT: u32 = 128u; // gemm_tiled_wide tile rows and columns (8 per thread, 16 apart)
var<workgroup> a_wide: array<f32, 2048>; // [TK][WT]
var<workgroup> b_wide: array<f32, 2048>; // [TK][WT]

@compute @workgroup_size(16, 16)
fn gemm_tiled_wide(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    set_model(wg.z);
    let row_base = wg.y * WT;
    let col_base = wg.x * WT;
    // Row r·16 + lid.y, columns c·16 + lid.x: acc[2r] holds c = 0..3, acc[2r + 1] c = 4..7.
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    let colsum = sums_columns(row_base + lid.y);
    var cs0 = vec4<f32>(0.0);
    var cs1 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < g.k; k0 += TK) {
        for (var t = 0u; t < 8u; t++) {
            let e = li + t * 256u;
            let i = e % WT;
            let kk = e / WT;
            let gk = k0 + kk;
            var av = 0.0;
            if (row_base + i < g.m && gk < g.k) {
                av = a[a_off + (row_base + i) * g.a_rs + gk * g.a_cs];
            }
            a_wide[kk * WT + i] = av;
            var bv = 0.0;
            if (col_base + i < g.n && gk < g.k) {
                bv = b[b_off + gk * g.b_rs + (col_base + i) * g.b_cs];
            }
            b_wide[kk * WT + i] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let ab = kk * WT + lid.y;
            let bb = kk * WT + lid.x;
            let b0 = vec4<f32>(b_wide[bb], b_wide[bb + 16u], b_wide[bb + 32u], b_wide[bb + 48u]);
            let b1 = vec4<f32>(b_wide[bb + 64u], b_wide[bb + 80u], b_wide[bb + 96u], b_wide[bb + 112u]);
            for (var r = 0u; r < 8u; r++) {
                let av = a_wide[ab + r * 16u];
                acc[2u * r] += av * b0;
                acc[2u * r + 1u] += av * b1;
            }
            if (colsum) {
                cs0 += b0;
                cs1 += b1;
            }
        }
        workgroupBarrier();
    }
    for (var e = 0u; e < 64u; e++) {
        let r = e / 8u;
        let c = e % 8u;
        store(row_base + lid.y + r * 16u, col_base + lid.x + c * 16u, acc[2u * r + c / 4u][c % 4u]);
    }
    if (colsum) {
        for (var c = 0u; c < 4u; c++) {
            store_colsum(col_base + lid.x + c * 16u, cs0[c]);
            store_colsum(col_base + lid.x + (c + 4u) * 16u, cs1[c]);
        }
    }
}

// ---- vec4 fast paths ------------------------------------------------------------------
// llvmpipe turns each invocation's vec4 load of contiguous memory into one 16-byte load per
// lane, where scalar strided loads cost one gather element each: on lavapipe these run
// 2–3× faster than gemm_reg. Each needs its operands contiguous along the vectorised
// dimension and 16-byte aligned (see Variant::pick in src/kernels/gemm.rs); otherwise the
// host falls back to gemm_reg. Same uniform and bindings, A and B seen as vec4 arrays.
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;

fn store4(row: u32, col: u32, v: vec4<f32>) {
    store(row, col, v.x);
    store(row, col + 1u, v.y);
    store(row, col + 2u, v.z);
    store(row, col + 3u, v.w);
}

// ---- generated by tools/gen_gemm.py: edit the generator, not the lines below ----
// gemm_nn4 — A contiguous along k, B contiguous along n (C = X·W). Thread: 8 rows × 16
// columns (4 vec4); workgroup 8×8 → 64×128 tile. Needs n, a_rs, b_rs, a_off, b_off ≡ 0 mod 4
// (any k: see the tail).
@compute @workgroup_size(8, 8)
fn gemm_nn4(@builtin(global_invocation_id) gid: vec3<u32>) {
    set_model(gid.z);
    let k4 = g.k / 4u;
    let n4 = g.n / 4u;
    let row0 = gid.y * 8u;
    let c0 = gid.x * 4u;
    if (row0 >= g.m || c0 >= n4) {
        return;
    }
    let ar0 = (a_off + min(row0 + 0u, g.m - 1u) * g.a_rs) / 4u;
    let ar1 = (a_off + min(row0 + 1u, g.m - 1u) * g.a_rs) / 4u;
    let ar2 = (a_off + min(row0 + 2u, g.m - 1u) * g.a_rs) / 4u;
    let ar3 = (a_off + min(row0 + 3u, g.m - 1u) * g.a_rs) / 4u;
    let ar4 = (a_off + min(row0 + 4u, g.m - 1u) * g.a_rs) / 4u;
    let ar5 = (a_off + min(row0 + 5u, g.m - 1u) * g.a_rs) / 4u;
    let ar6 = (a_off + min(row0 + 6u, g.m - 1u) * g.a_rs) / 4u;
    let ar7 = (a_off + min(row0 + 7u, g.m - 1u) * g.a_rs) / 4u;
    let bc0 = b_off / 4u + min(c0 + 0u, n4 - 1u);
    let bc1 = b_off / 4u + min(c0 + 1u, n4 - 1u);
    let bc2 = b_off / 4u + min(c0 + 2u, n4 - 1u);
    let bc3 = b_off / 4u + min(c0 + 3u, n4 - 1u);
    var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0); var acc0_2 = vec4<f32>(0.0); var acc0_3 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0); var acc1_2 = vec4<f32>(0.0); var acc1_3 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0); var acc2_2 = vec4<f32>(0.0); var acc2_3 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0); var acc3_2 = vec4<f32>(0.0); var acc3_3 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0); var acc4_1 = vec4<f32>(0.0); var acc4_2 = vec4<f32>(0.0); var acc4_3 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0); var acc5_1 = vec4<f32>(0.0); var acc5_2 = vec4<f32>(0.0); var acc5_3 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0); var acc6_1 = vec4<f32>(0.0); var acc6_2 = vec4<f32>(0.0); var acc6_3 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0); var acc7_1 = vec4<f32>(0.0); var acc7_2 = vec4<f32>(0.0); var acc7_3 = vec4<f32>(0.0);
    let b_rs4 = g.b_rs / 4u;
    for (var kk = 0u; kk < k4; kk++) {
        let kb = kk * 4u * b_rs4;
        let av0 = a4[ar0 + kk];
        let av1 = a4[ar1 + kk];
        let av2 = a4[ar2 + kk];
        let av3 = a4[ar3 + kk];
        let av4 = a4[ar4 + kk];
        let av5 = a4[ar5 + kk];
        let av6 = a4[ar6 + kk];
        let av7 = a4[ar7 + kk];
        let bv0_0 = b4[bc0 + kb + 0u * b_rs4];
        let bv1_0 = b4[bc0 + kb + 1u * b_rs4];
        let bv2_0 = b4[bc0 + kb + 2u * b_rs4];
        let bv3_0 = b4[bc0 + kb + 3u * b_rs4];
        let bv0_1 = b4[bc1 + kb + 0u * b_rs4];
        let bv1_1 = b4[bc1 + kb + 1u * b_rs4];
        let bv2_1 = b4[bc1 + kb + 2u * b_rs4];
        let bv3_1 = b4[bc1 + kb + 3u * b_rs4];
        let bv0_2 = b4[bc2 + kb + 0u * b_rs4];
        let bv1_2 = b4[bc2 + kb + 1u * b_rs4];
        let bv2_2 = b4[bc2 + kb + 2u * b_rs4];
        let bv3_2 = b4[bc2 + kb + 3u * b_rs4];
        let bv0_3 = b4[bc3 + kb + 0u * b_rs4];
        let bv1_3 = b4[bc3 + kb + 1u * b_rs4];
        let bv2_3 = b4[bc3 + kb + 2u * b_rs4];
        let bv3_3 = b4[bc3 + kb + 3u * b_rs4];
        acc0_0 += av0.x * bv0_0 + av0.y * bv1_0 + av0.z * bv2_0 + av0.w * bv3_0;
        acc0_1 += av0.x * bv0_1 + av0.y * bv1_1 + av0.z * bv2_1 + av0.w * bv3_1;
        acc0_2 += av0.x * bv0_2 + av0.y * bv1_2 + av0.z * bv2_2 + av0.w * bv3_2;
        acc0_3 += av0.x * bv0_3 + av0.y * bv1_3 + av0.z * bv2_3 + av0.w * bv3_3;
        acc1_0 += av1.x * bv0_0 + av1.y * bv1_0 + av1.z * bv2_0 + av1.w * bv3_0;
        acc1_1 += av1.x * bv0_1 + av1.y * bv1_1 + av1.z * bv2_1 + av1.w * bv3_1;
        acc1_2 += av1.x * bv0_2 + av1.y * bv1_2 + av1.z * bv2_2 + av1.w * bv3_2;
        acc1_3 += av1.x * bv0_3 + av1.y * bv1_3 + av1.z * bv2_3 + av1.w * bv3_3;
        acc2_0 += av2.x * bv0_0 + av2.y * bv1_0 + av2.z * bv2_0 + av2.w * bv3_0;
        acc2_1 += av2.x * bv0_1 + av2.y * bv1_1 + av2.z * bv2_1 + av2.w * bv3_1;
        acc2_2 += av2.x * bv0_2 + av2.y * bv1_2 + av2.z * bv2_2 + av2.w * bv3_2;
        acc2_3 += av2.x * bv0_3 + av2.y * bv1_3 + av2.z * bv2_3 + av2.w * bv3_3;
        acc3_0 += av3.x * bv0_0 + av3.y * bv1_0 + av3.z * bv2_0 + av3.w * bv3_0;
        acc3_1 += av3.x * bv0_1 + av3.y * bv1_1 + av3.z * bv2_1 + av3.w * bv3_1;
        acc3_2 += av3.x * bv0_2 + av3.y * bv1_2 + av3.z * bv2_2 + av3.w * bv3_2;
        acc3_3 += av3.x * bv0_3 + av3.y * bv1_3 + av3.z * bv2_3 + av3.w * bv3_3;
        acc4_0 += av4.x * bv0_0 + av4.y * bv1_0 + av4.z * bv2_0 + av4.w * bv3_0;
        acc4_1 += av4.x * bv0_1 + av4.y * bv1_1 + av4.z * bv2_1 + av4.w * bv3_1;
        acc4_2 += av4.x * bv0_2 + av4.y * bv1_2 + av4.z * bv2_2 + av4.w * bv3_2;
        acc4_3 += av4.x * bv0_3 + av4.y * bv1_3 + av4.z * bv2_3 + av4.w * bv3_3;
        acc5_0 += av5.x * bv0_0 + av5.y * bv1_0 + av5.z * bv2_0 + av5.w * bv3_0;
        acc5_1 += av5.x * bv0_1 + av5.y * bv1_1 + av5.z * bv2_1 + av5.w * bv3_1;
        acc5_2 += av5.x * bv0_2 + av5.y * bv1_2 + av5.z * bv2_2 + av5.w * bv3_2;
        acc5_3 += av5.x * bv0_3 + av5.y * bv1_3 + av5.z * bv2_3 + av5.w * bv3_3;
        acc6_0 += av6.x * bv0_0 + av6.y * bv1_0 + av6.z * bv2_0 + av6.w * bv3_0;
        acc6_1 += av6.x * bv0_1 + av6.y * bv1_1 + av6.z * bv2_1 + av6.w * bv3_1;
        acc6_2 += av6.x * bv0_2 + av6.y * bv1_2 + av6.z * bv2_2 + av6.w * bv3_2;
        acc6_3 += av6.x * bv0_3 + av6.y * bv1_3 + av6.z * bv2_3 + av6.w * bv3_3;
        acc7_0 += av7.x * bv0_0 + av7.y * bv1_0 + av7.z * bv2_0 + av7.w * bv3_0;
        acc7_1 += av7.x * bv0_1 + av7.y * bv1_1 + av7.z * bv2_1 + av7.w * bv3_1;
        acc7_2 += av7.x * bv0_2 + av7.y * bv1_2 + av7.z * bv2_2 + av7.w * bv3_2;
        acc7_3 += av7.x * bv0_3 + av7.y * bv1_3 + av7.z * bv2_3 + av7.w * bv3_3;
    }
    if (g.k % 4u != 0u) {
        let live = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(g.k % 4u));
        let av0 = a4[ar0 + k4] * live;
        let av1 = a4[ar1 + k4] * live;
        let av2 = a4[ar2 + k4] * live;
        let av3 = a4[ar3 + k4] * live;
        let av4 = a4[ar4 + k4] * live;
        let av5 = a4[ar5 + k4] * live;
        let av6 = a4[ar6 + k4] * live;
        let av7 = a4[ar7 + k4] * live;
        let bv0_0 = b4[bc0 + min(k4 * 4u + 0u, g.k - 1u) * b_rs4];
        let bv1_0 = b4[bc0 + min(k4 * 4u + 1u, g.k - 1u) * b_rs4];
        let bv2_0 = b4[bc0 + min(k4 * 4u + 2u, g.k - 1u) * b_rs4];
        let bv3_0 = b4[bc0 + min(k4 * 4u + 3u, g.k - 1u) * b_rs4];
        let bv0_1 = b4[bc1 + min(k4 * 4u + 0u, g.k - 1u) * b_rs4];
        let bv1_1 = b4[bc1 + min(k4 * 4u + 1u, g.k - 1u) * b_rs4];
        let bv2_1 = b4[bc1 + min(k4 * 4u + 2u, g.k - 1u) * b_rs4];
        let bv3_1 = b4[bc1 + min(k4 * 4u + 3u, g.k - 1u) * b_rs4];
        let bv0_2 = b4[bc2 + min(k4 * 4u + 0u, g.k - 1u) * b_rs4];
        let bv1_2 = b4[bc2 + min(k4 * 4u + 1u, g.k - 1u) * b_rs4];
        let bv2_2 = b4[bc2 + min(k4 * 4u + 2u, g.k - 1u) * b_rs4];
        let bv3_2 = b4[bc2 + min(k4 * 4u + 3u, g.k - 1u) * b_rs4];
        let bv0_3 = b4[bc3 + min(k4 * 4u + 0u, g.k - 1u) * b_rs4];
        let bv1_3 = b4[bc3 + min(k4 * 4u + 1u, g.k - 1u) * b_rs4];
        let bv2_3 = b4[bc3 + min(k4 * 4u + 2u, g.k - 1u) * b_rs4];
        let bv3_3 = b4[bc3 + min(k4 * 4u + 3u, g.k - 1u) * b_rs4];
        acc0_0 += av0.x * bv0_0 + av0.y * bv1_0 + av0.z * bv2_0 + av0.w * bv3_0;
        acc0_1 += av0.x * bv0_1 + av0.y * bv1_1 + av0.z * bv2_1 + av0.w * bv3_1;
        acc0_2 += av0.x * bv0_2 + av0.y * bv1_2 + av0.z * bv2_2 + av0.w * bv3_2;
        acc0_3 += av0.x * bv0_3 + av0.y * bv1_3 + av0.z * bv2_3 + av0.w * bv3_3;
        acc1_0 += av1.x * bv0_0 + av1.y * bv1_0 + av1.z * bv2_0 + av1.w * bv3_0;
        acc1_1 += av1.x * bv0_1 + av1.y * bv1_1 + av1.z * bv2_1 + av1.w * bv3_1;
        acc1_2 += av1.x * bv0_2 + av1.y * bv1_2 + av1.z * bv2_2 + av1.w * bv3_2;
        acc1_3 += av1.x * bv0_3 + av1.y * bv1_3 + av1.z * bv2_3 + av1.w * bv3_3;
        acc2_0 += av2.x * bv0_0 + av2.y * bv1_0 + av2.z * bv2_0 + av2.w * bv3_0;
        acc2_1 += av2.x * bv0_1 + av2.y * bv1_1 + av2.z * bv2_1 + av2.w * bv3_1;
        acc2_2 += av2.x * bv0_2 + av2.y * bv1_2 + av2.z * bv2_2 + av2.w * bv3_2;
        acc2_3 += av2.x * bv0_3 + av2.y * bv1_3 + av2.z * bv2_3 + av2.w * bv3_3;
        acc3_0 += av3.x * bv0_0 + av3.y * bv1_0 + av3.z * bv2_0 + av3.w * bv3_0;
        acc3_1 += av3.x * bv0_1 + av3.y * bv1_1 + av3.z * bv2_1 + av3.w * bv3_1;
        acc3_2 += av3.x * bv0_2 + av3.y * bv1_2 + av3.z * bv2_2 + av3.w * bv3_2;
        acc3_3 += av3.x * bv0_3 + av3.y * bv1_3 + av3.z * bv2_3 + av3.w * bv3_3;
        acc4_0 += av4.x * bv0_0 + av4.y * bv1_0 + av4.z * bv2_0 + av4.w * bv3_0;
        acc4_1 += av4.x * bv0_1 + av4.y * bv1_1 + av4.z * bv2_1 + av4.w * bv3_1;
        acc4_2 += av4.x * bv0_2 + av4.y * bv1_2 + av4.z * bv2_2 + av4.w * bv3_2;
        acc4_3 += av4.x * bv0_3 + av4.y * bv1_3 + av4.z * bv2_3 + av4.w * bv3_3;
        acc5_0 += av5.x * bv0_0 + av5.y * bv1_0 + av5.z * bv2_0 + av5.w * bv3_0;
        acc5_1 += av5.x * bv0_1 + av5.y * bv1_1 + av5.z * bv2_1 + av5.w * bv3_1;
        acc5_2 += av5.x * bv0_2 + av5.y * bv1_2 + av5.z * bv2_2 + av5.w * bv3_2;
        acc5_3 += av5.x * bv0_3 + av5.y * bv1_3 + av5.z * bv2_3 + av5.w * bv3_3;
        acc6_0 += av6.x * bv0_0 + av6.y * bv1_0 + av6.z * bv2_0 + av6.w * bv3_0;
        acc6_1 += av6.x * bv0_1 + av6.y * bv1_1 + av6.z * bv2_1 + av6.w * bv3_1;
        acc6_2 += av6.x * bv0_2 + av6.y * bv1_2 + av6.z * bv2_2 + av6.w * bv3_2;
        acc6_3 += av6.x * bv0_3 + av6.y * bv1_3 + av6.z * bv2_3 + av6.w * bv3_3;
        acc7_0 += av7.x * bv0_0 + av7.y * bv1_0 + av7.z * bv2_0 + av7.w * bv3_0;
        acc7_1 += av7.x * bv0_1 + av7.y * bv1_1 + av7.z * bv2_1 + av7.w * bv3_1;
        acc7_2 += av7.x * bv0_2 + av7.y * bv1_2 + av7.z * bv2_2 + av7.w * bv3_2;
        acc7_3 += av7.x * bv0_3 + av7.y * bv1_3 + av7.z * bv2_3 + av7.w * bv3_3;
    }
    // The epilogue runs as a loop: unrolled, its 32 branchy stores take LLVM (lavapipe's
    // compiler) tens of seconds to build.
    let out = array<vec4<f32>, 32>(acc0_0, acc0_1, acc0_2, acc0_3, acc1_0, acc1_1, acc1_2, acc1_3, acc2_0, acc2_1, acc2_2, acc2_3, acc3_0, acc3_1, acc3_2, acc3_3, acc4_0, acc4_1, acc4_2, acc4_3, acc5_0, acc5_1, acc5_2, acc5_3, acc6_0, acc6_1, acc6_2, acc6_3, acc7_0, acc7_1, acc7_2, acc7_3);
    for (var t = 0u; t < 32u; t++) {
        store4(row0 + t / 4u, (c0 + t % 4u) * 4u, out[t]);
    }
}

// gemm_nn4_narrow — C = X·W with fewer than 16 columns (a coupling's last layer), where
// gemm_nn4's 16-column threads would mostly compute clamped duplicates. Thread: 8 rows × one
// vec4 of columns; workgroup 64 along the rows → 512×4 tile; grid (row tiles, column vec4s).
// Needs n, a_rs, b_rs, a_off, b_off ≡ 0 mod 4 (any k, as gemm_nn4).
@compute @workgroup_size(64)
fn gemm_nn4_narrow(@builtin(global_invocation_id) gid: vec3<u32>) {
    set_model(gid.z);
    let k4 = g.k / 4u;
    let n4 = g.n / 4u;
    let row0 = gid.x * 8u;
    let c0 = gid.y;
    if (row0 >= g.m || c0 >= n4) {
        return;
    }
    let ar0 = (a_off + min(row0 + 0u, g.m - 1u) * g.a_rs) / 4u;
    let ar1 = (a_off + min(row0 + 1u, g.m - 1u) * g.a_rs) / 4u;
    let ar2 = (a_off + min(row0 + 2u, g.m - 1u) * g.a_rs) / 4u;
    let ar3 = (a_off + min(row0 + 3u, g.m - 1u) * g.a_rs) / 4u;
    let ar4 = (a_off + min(row0 + 4u, g.m - 1u) * g.a_rs) / 4u;
    let ar5 = (a_off + min(row0 + 5u, g.m - 1u) * g.a_rs) / 4u;
    let ar6 = (a_off + min(row0 + 6u, g.m - 1u) * g.a_rs) / 4u;
    let ar7 = (a_off + min(row0 + 7u, g.m - 1u) * g.a_rs) / 4u;
    let bc = b_off / 4u + c0;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    let b_rs4 = g.b_rs / 4u;
    for (var kk = 0u; kk < k4; kk++) {
        let kb = bc + kk * 4u * b_rs4;
        let bv0 = b4[kb + 0u * b_rs4];
        let bv1 = b4[kb + 1u * b_rs4];
        let bv2 = b4[kb + 2u * b_rs4];
        let bv3 = b4[kb + 3u * b_rs4];
        let av0 = a4[ar0 + kk];
        acc0 += av0.x * bv0 + av0.y * bv1 + av0.z * bv2 + av0.w * bv3;
        let av1 = a4[ar1 + kk];
        acc1 += av1.x * bv0 + av1.y * bv1 + av1.z * bv2 + av1.w * bv3;
        let av2 = a4[ar2 + kk];
        acc2 += av2.x * bv0 + av2.y * bv1 + av2.z * bv2 + av2.w * bv3;
        let av3 = a4[ar3 + kk];
        acc3 += av3.x * bv0 + av3.y * bv1 + av3.z * bv2 + av3.w * bv3;
        let av4 = a4[ar4 + kk];
        acc4 += av4.x * bv0 + av4.y * bv1 + av4.z * bv2 + av4.w * bv3;
        let av5 = a4[ar5 + kk];
        acc5 += av5.x * bv0 + av5.y * bv1 + av5.z * bv2 + av5.w * bv3;
        let av6 = a4[ar6 + kk];
        acc6 += av6.x * bv0 + av6.y * bv1 + av6.z * bv2 + av6.w * bv3;
        let av7 = a4[ar7 + kk];
        acc7 += av7.x * bv0 + av7.y * bv1 + av7.z * bv2 + av7.w * bv3;
    }
    if (g.k % 4u != 0u) {
        let live = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(g.k % 4u));
        let bv0 = b4[bc + min(k4 * 4u + 0u, g.k - 1u) * b_rs4];
        let bv1 = b4[bc + min(k4 * 4u + 1u, g.k - 1u) * b_rs4];
        let bv2 = b4[bc + min(k4 * 4u + 2u, g.k - 1u) * b_rs4];
        let bv3 = b4[bc + min(k4 * 4u + 3u, g.k - 1u) * b_rs4];
        let av0 = a4[ar0 + k4] * live;
        acc0 += av0.x * bv0 + av0.y * bv1 + av0.z * bv2 + av0.w * bv3;
        let av1 = a4[ar1 + k4] * live;
        acc1 += av1.x * bv0 + av1.y * bv1 + av1.z * bv2 + av1.w * bv3;
        let av2 = a4[ar2 + k4] * live;
        acc2 += av2.x * bv0 + av2.y * bv1 + av2.z * bv2 + av2.w * bv3;
        let av3 = a4[ar3 + k4] * live;
        acc3 += av3.x * bv0 + av3.y * bv1 + av3.z * bv2 + av3.w * bv3;
        let av4 = a4[ar4 + k4] * live;
        acc4 += av4.x * bv0 + av4.y * bv1 + av4.z * bv2 + av4.w * bv3;
        let av5 = a4[ar5 + k4] * live;
        acc5 += av5.x * bv0 + av5.y * bv1 + av5.z * bv2 + av5.w * bv3;
        let av6 = a4[ar6 + k4] * live;
        acc6 += av6.x * bv0 + av6.y * bv1 + av6.z * bv2 + av6.w * bv3;
        let av7 = a4[ar7 + k4] * live;
        acc7 += av7.x * bv0 + av7.y * bv1 + av7.z * bv2 + av7.w * bv3;
    }
    let out = array<vec4<f32>, 8>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7);
    for (var t = 0u; t < 8u; t++) {
        store4(row0 + t, c0 * 4u, out[t]);
    }
}

// gemm_nt4 — A and B both contiguous along k (C = dY·Wᵀ). Thread: 8 rows × 8 columns, each a
// running dot product over vec4s of k; workgroup 8×8 → 64×64 tile.
// Needs k, a_rs, b_cs, a_off, b_off ≡ 0 mod 4.
@compute @workgroup_size(8, 8)
fn gemm_nt4(@builtin(global_invocation_id) gid: vec3<u32>) {
    set_model(gid.z);
    let k4 = g.k / 4u;
    let row0 = gid.y * 8u;
    let col0 = gid.x * 8u;
    if (row0 >= g.m || col0 >= g.n) {
        return;
    }
    let ar0 = (a_off + min(row0 + 0u, g.m - 1u) * g.a_rs) / 4u;
    let ar1 = (a_off + min(row0 + 1u, g.m - 1u) * g.a_rs) / 4u;
    let ar2 = (a_off + min(row0 + 2u, g.m - 1u) * g.a_rs) / 4u;
    let ar3 = (a_off + min(row0 + 3u, g.m - 1u) * g.a_rs) / 4u;
    let ar4 = (a_off + min(row0 + 4u, g.m - 1u) * g.a_rs) / 4u;
    let ar5 = (a_off + min(row0 + 5u, g.m - 1u) * g.a_rs) / 4u;
    let ar6 = (a_off + min(row0 + 6u, g.m - 1u) * g.a_rs) / 4u;
    let ar7 = (a_off + min(row0 + 7u, g.m - 1u) * g.a_rs) / 4u;
    let bc0 = (b_off + min(col0 + 0u, g.n - 1u) * g.b_cs) / 4u;
    let bc1 = (b_off + min(col0 + 1u, g.n - 1u) * g.b_cs) / 4u;
    let bc2 = (b_off + min(col0 + 2u, g.n - 1u) * g.b_cs) / 4u;
    let bc3 = (b_off + min(col0 + 3u, g.n - 1u) * g.b_cs) / 4u;
    let bc4 = (b_off + min(col0 + 4u, g.n - 1u) * g.b_cs) / 4u;
    let bc5 = (b_off + min(col0 + 5u, g.n - 1u) * g.b_cs) / 4u;
    let bc6 = (b_off + min(col0 + 6u, g.n - 1u) * g.b_cs) / 4u;
    let bc7 = (b_off + min(col0 + 7u, g.n - 1u) * g.b_cs) / 4u;
    var acc0_0 = 0.0; var acc0_1 = 0.0; var acc0_2 = 0.0; var acc0_3 = 0.0; var acc0_4 = 0.0; var acc0_5 = 0.0; var acc0_6 = 0.0; var acc0_7 = 0.0;
    var acc1_0 = 0.0; var acc1_1 = 0.0; var acc1_2 = 0.0; var acc1_3 = 0.0; var acc1_4 = 0.0; var acc1_5 = 0.0; var acc1_6 = 0.0; var acc1_7 = 0.0;
    var acc2_0 = 0.0; var acc2_1 = 0.0; var acc2_2 = 0.0; var acc2_3 = 0.0; var acc2_4 = 0.0; var acc2_5 = 0.0; var acc2_6 = 0.0; var acc2_7 = 0.0;
    var acc3_0 = 0.0; var acc3_1 = 0.0; var acc3_2 = 0.0; var acc3_3 = 0.0; var acc3_4 = 0.0; var acc3_5 = 0.0; var acc3_6 = 0.0; var acc3_7 = 0.0;
    var acc4_0 = 0.0; var acc4_1 = 0.0; var acc4_2 = 0.0; var acc4_3 = 0.0; var acc4_4 = 0.0; var acc4_5 = 0.0; var acc4_6 = 0.0; var acc4_7 = 0.0;
    var acc5_0 = 0.0; var acc5_1 = 0.0; var acc5_2 = 0.0; var acc5_3 = 0.0; var acc5_4 = 0.0; var acc5_5 = 0.0; var acc5_6 = 0.0; var acc5_7 = 0.0;
    var acc6_0 = 0.0; var acc6_1 = 0.0; var acc6_2 = 0.0; var acc6_3 = 0.0; var acc6_4 = 0.0; var acc6_5 = 0.0; var acc6_6 = 0.0; var acc6_7 = 0.0;
    var acc7_0 = 0.0; var acc7_1 = 0.0; var acc7_2 = 0.0; var acc7_3 = 0.0; var acc7_4 = 0.0; var acc7_5 = 0.0; var acc7_6 = 0.0; var acc7_7 = 0.0;
    for (var kk = 0u; kk < k4; kk++) {
        let av0 = a4[ar0 + kk];
        let av1 = a4[ar1 + kk];
        let av2 = a4[ar2 + kk];
        let av3 = a4[ar3 + kk];
        let av4 = a4[ar4 + kk];
        let av5 = a4[ar5 + kk];
        let av6 = a4[ar6 + kk];
        let av7 = a4[ar7 + kk];
        let bv0 = b4[bc0 + kk];
        let bv1 = b4[bc1 + kk];
        let bv2 = b4[bc2 + kk];
        let bv3 = b4[bc3 + kk];
        let bv4 = b4[bc4 + kk];
        let bv5 = b4[bc5 + kk];
        let bv6 = b4[bc6 + kk];
        let bv7 = b4[bc7 + kk];
        acc0_0 += dot(av0, bv0);
        acc0_1 += dot(av0, bv1);
        acc0_2 += dot(av0, bv2);
        acc0_3 += dot(av0, bv3);
        acc0_4 += dot(av0, bv4);
        acc0_5 += dot(av0, bv5);
        acc0_6 += dot(av0, bv6);
        acc0_7 += dot(av0, bv7);
        acc1_0 += dot(av1, bv0);
        acc1_1 += dot(av1, bv1);
        acc1_2 += dot(av1, bv2);
        acc1_3 += dot(av1, bv3);
        acc1_4 += dot(av1, bv4);
        acc1_5 += dot(av1, bv5);
        acc1_6 += dot(av1, bv6);
        acc1_7 += dot(av1, bv7);
        acc2_0 += dot(av2, bv0);
        acc2_1 += dot(av2, bv1);
        acc2_2 += dot(av2, bv2);
        acc2_3 += dot(av2, bv3);
        acc2_4 += dot(av2, bv4);
        acc2_5 += dot(av2, bv5);
        acc2_6 += dot(av2, bv6);
        acc2_7 += dot(av2, bv7);
        acc3_0 += dot(av3, bv0);
        acc3_1 += dot(av3, bv1);
        acc3_2 += dot(av3, bv2);
        acc3_3 += dot(av3, bv3);
        acc3_4 += dot(av3, bv4);
        acc3_5 += dot(av3, bv5);
        acc3_6 += dot(av3, bv6);
        acc3_7 += dot(av3, bv7);
        acc4_0 += dot(av4, bv0);
        acc4_1 += dot(av4, bv1);
        acc4_2 += dot(av4, bv2);
        acc4_3 += dot(av4, bv3);
        acc4_4 += dot(av4, bv4);
        acc4_5 += dot(av4, bv5);
        acc4_6 += dot(av4, bv6);
        acc4_7 += dot(av4, bv7);
        acc5_0 += dot(av5, bv0);
        acc5_1 += dot(av5, bv1);
        acc5_2 += dot(av5, bv2);
        acc5_3 += dot(av5, bv3);
        acc5_4 += dot(av5, bv4);
        acc5_5 += dot(av5, bv5);
        acc5_6 += dot(av5, bv6);
        acc5_7 += dot(av5, bv7);
        acc6_0 += dot(av6, bv0);
        acc6_1 += dot(av6, bv1);
        acc6_2 += dot(av6, bv2);
        acc6_3 += dot(av6, bv3);
        acc6_4 += dot(av6, bv4);
        acc6_5 += dot(av6, bv5);
        acc6_6 += dot(av6, bv6);
        acc6_7 += dot(av6, bv7);
        acc7_0 += dot(av7, bv0);
        acc7_1 += dot(av7, bv1);
        acc7_2 += dot(av7, bv2);
        acc7_3 += dot(av7, bv3);
        acc7_4 += dot(av7, bv4);
        acc7_5 += dot(av7, bv5);
        acc7_6 += dot(av7, bv6);
        acc7_7 += dot(av7, bv7);
    }
    // The epilogue runs as a loop: unrolled, its 16 branchy stores take LLVM (lavapipe's
    // compiler) tens of seconds to build.
    let out = array<vec4<f32>, 16>(vec4<f32>(acc0_0, acc0_1, acc0_2, acc0_3), vec4<f32>(acc0_4, acc0_5, acc0_6, acc0_7), vec4<f32>(acc1_0, acc1_1, acc1_2, acc1_3), vec4<f32>(acc1_4, acc1_5, acc1_6, acc1_7), vec4<f32>(acc2_0, acc2_1, acc2_2, acc2_3), vec4<f32>(acc2_4, acc2_5, acc2_6, acc2_7), vec4<f32>(acc3_0, acc3_1, acc3_2, acc3_3), vec4<f32>(acc3_4, acc3_5, acc3_6, acc3_7), vec4<f32>(acc4_0, acc4_1, acc4_2, acc4_3), vec4<f32>(acc4_4, acc4_5, acc4_6, acc4_7), vec4<f32>(acc5_0, acc5_1, acc5_2, acc5_3), vec4<f32>(acc5_4, acc5_5, acc5_6, acc5_7), vec4<f32>(acc6_0, acc6_1, acc6_2, acc6_3), vec4<f32>(acc6_4, acc6_5, acc6_6, acc6_7), vec4<f32>(acc7_0, acc7_1, acc7_2, acc7_3), vec4<f32>(acc7_4, acc7_5, acc7_6, acc7_7));
    for (var t = 0u; t < 16u; t++) {
        store4(row0 + t / 2u, col0 + (t % 2u) * 4u, out[t]);
    }
}

// gemm_tn4 — A contiguous along m, B contiguous along n (C = Xᵀ·dY). Thread: 8 rows (2 vec4)
// × 16 columns (4 vec4), an outer product per k; workgroup 8×8 → 64×128 tile.
// Needs n, a_cs, b_rs, a_off, b_off ≡ 0 mod 4; any m (the last vec4 of rows may run past m,
// inside A's column stride; store() drops those rows). COLSUM: the invocations of rows 0..
// sum B's columns from the vec4s they load anyway.
@compute @workgroup_size(8, 8)
fn gemm_tn4(@builtin(global_invocation_id) gid: vec3<u32>) {
    set_model(gid.z);
    let m4 = (g.m + 3u) / 4u;
    let n4 = g.n / 4u;
    let r0 = gid.y * 2u;
    let c0 = gid.x * 4u;
    if (r0 >= m4 || c0 >= n4) {
        return;
    }
    let a_cs4 = g.a_cs / 4u;
    let b_rs4 = g.b_rs / 4u;
    let ar0 = a_off / 4u + min(r0 + 0u, m4 - 1u);
    let ar1 = a_off / 4u + min(r0 + 1u, m4 - 1u);
    let bc0 = b_off / 4u + min(c0 + 0u, n4 - 1u);
    let bc1 = b_off / 4u + min(c0 + 1u, n4 - 1u);
    let bc2 = b_off / 4u + min(c0 + 2u, n4 - 1u);
    let bc3 = b_off / 4u + min(c0 + 3u, n4 - 1u);
    var acc00_0 = vec4<f32>(0.0); var acc00_1 = vec4<f32>(0.0); var acc00_2 = vec4<f32>(0.0); var acc00_3 = vec4<f32>(0.0);
    var acc01_0 = vec4<f32>(0.0); var acc01_1 = vec4<f32>(0.0); var acc01_2 = vec4<f32>(0.0); var acc01_3 = vec4<f32>(0.0);
    var acc02_0 = vec4<f32>(0.0); var acc02_1 = vec4<f32>(0.0); var acc02_2 = vec4<f32>(0.0); var acc02_3 = vec4<f32>(0.0);
    var acc03_0 = vec4<f32>(0.0); var acc03_1 = vec4<f32>(0.0); var acc03_2 = vec4<f32>(0.0); var acc03_3 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0); var acc10_1 = vec4<f32>(0.0); var acc10_2 = vec4<f32>(0.0); var acc10_3 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0); var acc11_1 = vec4<f32>(0.0); var acc11_2 = vec4<f32>(0.0); var acc11_3 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0); var acc12_1 = vec4<f32>(0.0); var acc12_2 = vec4<f32>(0.0); var acc12_3 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0); var acc13_1 = vec4<f32>(0.0); var acc13_2 = vec4<f32>(0.0); var acc13_3 = vec4<f32>(0.0);
    let colsum = sums_columns(r0);
    var cs0 = vec4<f32>(0.0); var cs1 = vec4<f32>(0.0); var cs2 = vec4<f32>(0.0); var cs3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < g.k; kk++) {
        let av0 = a4[ar0 + kk * a_cs4];
        let av1 = a4[ar1 + kk * a_cs4];
        let bv0 = b4[bc0 + kk * b_rs4];
        let bv1 = b4[bc1 + kk * b_rs4];
        let bv2 = b4[bc2 + kk * b_rs4];
        let bv3 = b4[bc3 + kk * b_rs4];
        acc00_0 += av0.x * bv0;
        acc00_1 += av0.x * bv1;
        acc00_2 += av0.x * bv2;
        acc00_3 += av0.x * bv3;
        acc01_0 += av0.y * bv0;
        acc01_1 += av0.y * bv1;
        acc01_2 += av0.y * bv2;
        acc01_3 += av0.y * bv3;
        acc02_0 += av0.z * bv0;
        acc02_1 += av0.z * bv1;
        acc02_2 += av0.z * bv2;
        acc02_3 += av0.z * bv3;
        acc03_0 += av0.w * bv0;
        acc03_1 += av0.w * bv1;
        acc03_2 += av0.w * bv2;
        acc03_3 += av0.w * bv3;
        acc10_0 += av1.x * bv0;
        acc10_1 += av1.x * bv1;
        acc10_2 += av1.x * bv2;
        acc10_3 += av1.x * bv3;
        acc11_0 += av1.y * bv0;
        acc11_1 += av1.y * bv1;
        acc11_2 += av1.y * bv2;
        acc11_3 += av1.y * bv3;
        acc12_0 += av1.z * bv0;
        acc12_1 += av1.z * bv1;
        acc12_2 += av1.z * bv2;
        acc12_3 += av1.z * bv3;
        acc13_0 += av1.w * bv0;
        acc13_1 += av1.w * bv1;
        acc13_2 += av1.w * bv2;
        acc13_3 += av1.w * bv3;
        if (colsum) {
            cs0 += bv0;
            cs1 += bv1;
            cs2 += bv2;
            cs3 += bv3;
        }
    }
    if (colsum) {
        for (var i = 0u; i < 4u; i++) {
            store_colsum((c0 + 0u) * 4u + i, cs0[i]);
        }
        for (var i = 0u; i < 4u; i++) {
            store_colsum((c0 + 1u) * 4u + i, cs1[i]);
        }
        for (var i = 0u; i < 4u; i++) {
            store_colsum((c0 + 2u) * 4u + i, cs2[i]);
        }
        for (var i = 0u; i < 4u; i++) {
            store_colsum((c0 + 3u) * 4u + i, cs3[i]);
        }
    }
    // The epilogue runs as a loop: unrolled, its 32 branchy stores take LLVM (lavapipe's
    // compiler) tens of seconds to build.
    let out = array<vec4<f32>, 32>(acc00_0, acc00_1, acc00_2, acc00_3, acc01_0, acc01_1, acc01_2, acc01_3, acc02_0, acc02_1, acc02_2, acc02_3, acc03_0, acc03_1, acc03_2, acc03_3, acc10_0, acc10_1, acc10_2, acc10_3, acc11_0, acc11_1, acc11_2, acc11_3, acc12_0, acc12_1, acc12_2, acc12_3, acc13_0, acc13_1, acc13_2, acc13_3);
    for (var t = 0u; t < 32u; t++) {
        store4((r0 + t / 16u) * 4u + (t / 4u) % 4u, (c0 + t % 4u) * 4u, out[t]);
    }
}

// The _s variants below are the same templates with a quarter of the work per thread:
// four times the workgroups on small products (a batch of 64 rows is one gemm_nn4
// workgroup, one CPU thread on lavapipe; on GPUs, more of the machine busy).
// gemm_nn4_s — A contiguous along k, B contiguous along n (C = X·W). Thread: 4 rows × 8
// columns (2 vec4); workgroup 8×8 → 32×64 tile. Needs n, a_rs, b_rs, a_off, b_off ≡ 0 mod 4
// (any k: see the tail).
@compute @workgroup_size(8, 8)
fn gemm_nn4_s(@builtin(global_invocation_id) gid: vec3<u32>) {
    set_model(gid.z);
    let k4 = g.k / 4u;
    let n4 = g.n / 4u;
    let row0 = gid.y * 4u;
    let c0 = gid.x * 2u;
    if (row0 >= g.m || c0 >= n4) {
        return;
    }
    let ar0 = (a_off + min(row0 + 0u, g.m - 1u) * g.a_rs) / 4u;
    let ar1 = (a_off + min(row0 + 1u, g.m - 1u) * g.a_rs) / 4u;
    let ar2 = (a_off + min(row0 + 2u, g.m - 1u) * g.a_rs) / 4u;
    let ar3 = (a_off + min(row0 + 3u, g.m - 1u) * g.a_rs) / 4u;
    let bc0 = b_off / 4u + min(c0 + 0u, n4 - 1u);
    let bc1 = b_off / 4u + min(c0 + 1u, n4 - 1u);
    var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0);
    let b_rs4 = g.b_rs / 4u;
    for (var kk = 0u; kk < k4; kk++) {
        let kb = kk * 4u * b_rs4;
        let av0 = a4[ar0 + kk];
        let av1 = a4[ar1 + kk];
        let av2 = a4[ar2 + kk];
        let av3 = a4[ar3 + kk];
        let bv0_0 = b4[bc0 + kb + 0u * b_rs4];
        let bv1_0 = b4[bc0 + kb + 1u * b_rs4];
        let bv2_0 = b4[bc0 + kb + 2u * b_rs4];
        let bv3_0 = b4[bc0 + kb + 3u * b_rs4];
        let bv0_1 = b4[bc1 + kb + 0u * b_rs4];
        let bv1_1 = b4[bc1 + kb + 1u * b_rs4];
        let bv2_1 = b4[bc1 + kb + 2u * b_rs4];
        let bv3_1 = b4[bc1 + kb + 3u * b_rs4];
        acc0_0 += av0.x * bv0_0 + av0.y * bv1_0 + av0.z * bv2_0 + av0.w * bv3_0;
        acc0_1 += av0.x * bv0_1 + av0.y * bv1_1 + av0.z * bv2_1 + av0.w * bv3_1;
        acc1_0 += av1.x * bv0_0 + av1.y * bv1_0 + av1.z * bv2_0 + av1.w * bv3_0;
        acc1_1 += av1.x * bv0_1 + av1.y * bv1_1 + av1.z * bv2_1 + av1.w * bv3_1;
        acc2_0 += av2.x * bv0_0 + av2.y * bv1_0 + av2.z * bv2_0 + av2.w * bv3_0;
        acc2_1 += av2.x * bv0_1 + av2.y * bv1_1 + av2.z * bv2_1 + av2.w * bv3_1;
        acc3_0 += av3.x * bv0_0 + av3.y * bv1_0 + av3.z * bv2_0 + av3.w * bv3_0;
        acc3_1 += av3.x * bv0_1 + av3.y * bv1_1 + av3.z * bv2_1 + av3.w * bv3_1;
    }
    if (g.k % 4u != 0u) {
        let live = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(g.k % 4u));
        let av0 = a4[ar0 + k4] * live;
        let av1 = a4[ar1 + k4] * live;
        let av2 = a4[ar2 + k4] * live;
        let av3 = a4[ar3 + k4] * live;
        let bv0_0 = b4[bc0 + min(k4 * 4u + 0u, g.k - 1u) * b_rs4];
        let bv1_0 = b4[bc0 + min(k4 * 4u + 1u, g.k - 1u) * b_rs4];
        let bv2_0 = b4[bc0 + min(k4 * 4u + 2u, g.k - 1u) * b_rs4];
        let bv3_0 = b4[bc0 + min(k4 * 4u + 3u, g.k - 1u) * b_rs4];
        let bv0_1 = b4[bc1 + min(k4 * 4u + 0u, g.k - 1u) * b_rs4];
        let bv1_1 = b4[bc1 + min(k4 * 4u + 1u, g.k - 1u) * b_rs4];
        let bv2_1 = b4[bc1 + min(k4 * 4u + 2u, g.k - 1u) * b_rs4];
        let bv3_1 = b4[bc1 + min(k4 * 4u + 3u, g.k - 1u) * b_rs4];
        acc0_0 += av0.x * bv0_0 + av0.y * bv1_0 + av0.z * bv2_0 + av0.w * bv3_0;
        acc0_1 += av0.x * bv0_1 + av0.y * bv1_1 + av0.z * bv2_1 + av0.w * bv3_1;
        acc1_0 += av1.x * bv0_0 + av1.y * bv1_0 + av1.z * bv2_0 + av1.w * bv3_0;
        acc1_1 += av1.x * bv0_1 + av1.y * bv1_1 + av1.z * bv2_1 + av1.w * bv3_1;
        acc2_0 += av2.x * bv0_0 + av2.y * bv1_0 + av2.z * bv2_0 + av2.w * bv3_0;
        acc2_1 += av2.x * bv0_1 + av2.y * bv1_1 + av2.z * bv2_1 + av2.w * bv3_1;
        acc3_0 += av3.x * bv0_0 + av3.y * bv1_0 + av3.z * bv2_0 + av3.w * bv3_0;
        acc3_1 += av3.x * bv0_1 + av3.y * bv1_1 + av3.z * bv2_1 + av3.w * bv3_1;
    }
    // The epilogue runs as a loop: unrolled, its 8 branchy stores take LLVM (lavapipe's
    // compiler) tens of seconds to build.
    let out = array<vec4<f32>, 8>(acc0_0, acc0_1, acc1_0, acc1_1, acc2_0, acc2_1, acc3_0, acc3_1);
    for (var t = 0u; t < 8u; t++) {
        store4(row0 + t / 2u, (c0 + t % 2u) * 4u, out[t]);
    }
}

// gemm_nt4_s — A and B both contiguous along k (C = dY·Wᵀ). Thread: 4 rows × 4 columns, each a
// running dot product over vec4s of k; workgroup 8×8 → 32×32 tile.
// Needs k, a_rs, b_cs, a_off, b_off ≡ 0 mod 4.
@compute @workgroup_size(8, 8)
fn gemm_nt4_s(@builtin(global_invocation_id) gid: vec3<u32>) {
    set_model(gid.z);
    let k4 = g.k / 4u;
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= g.m || col0 >= g.n) {
        return;
    }
    let ar0 = (a_off + min(row0 + 0u, g.m - 1u) * g.a_rs) / 4u;
    let ar1 = (a_off + min(row0 + 1u, g.m - 1u) * g.a_rs) / 4u;
    let ar2 = (a_off + min(row0 + 2u, g.m - 1u) * g.a_rs) / 4u;
    let ar3 = (a_off + min(row0 + 3u, g.m - 1u) * g.a_rs) / 4u;
    let bc0 = (b_off + min(col0 + 0u, g.n - 1u) * g.b_cs) / 4u;
    let bc1 = (b_off + min(col0 + 1u, g.n - 1u) * g.b_cs) / 4u;
    let bc2 = (b_off + min(col0 + 2u, g.n - 1u) * g.b_cs) / 4u;
    let bc3 = (b_off + min(col0 + 3u, g.n - 1u) * g.b_cs) / 4u;
    var acc0_0 = 0.0; var acc0_1 = 0.0; var acc0_2 = 0.0; var acc0_3 = 0.0;
    var acc1_0 = 0.0; var acc1_1 = 0.0; var acc1_2 = 0.0; var acc1_3 = 0.0;
    var acc2_0 = 0.0; var acc2_1 = 0.0; var acc2_2 = 0.0; var acc2_3 = 0.0;
    var acc3_0 = 0.0; var acc3_1 = 0.0; var acc3_2 = 0.0; var acc3_3 = 0.0;
    for (var kk = 0u; kk < k4; kk++) {
        let av0 = a4[ar0 + kk];
        let av1 = a4[ar1 + kk];
        let av2 = a4[ar2 + kk];
        let av3 = a4[ar3 + kk];
        let bv0 = b4[bc0 + kk];
        let bv1 = b4[bc1 + kk];
        let bv2 = b4[bc2 + kk];
        let bv3 = b4[bc3 + kk];
        acc0_0 += dot(av0, bv0);
        acc0_1 += dot(av0, bv1);
        acc0_2 += dot(av0, bv2);
        acc0_3 += dot(av0, bv3);
        acc1_0 += dot(av1, bv0);
        acc1_1 += dot(av1, bv1);
        acc1_2 += dot(av1, bv2);
        acc1_3 += dot(av1, bv3);
        acc2_0 += dot(av2, bv0);
        acc2_1 += dot(av2, bv1);
        acc2_2 += dot(av2, bv2);
        acc2_3 += dot(av2, bv3);
        acc3_0 += dot(av3, bv0);
        acc3_1 += dot(av3, bv1);
        acc3_2 += dot(av3, bv2);
        acc3_3 += dot(av3, bv3);
    }
    // The epilogue runs as a loop: unrolled, its 4 branchy stores take LLVM (lavapipe's
    // compiler) tens of seconds to build.
    let out = array<vec4<f32>, 4>(vec4<f32>(acc0_0, acc0_1, acc0_2, acc0_3), vec4<f32>(acc1_0, acc1_1, acc1_2, acc1_3), vec4<f32>(acc2_0, acc2_1, acc2_2, acc2_3), vec4<f32>(acc3_0, acc3_1, acc3_2, acc3_3));
    for (var t = 0u; t < 4u; t++) {
        store4(row0 + t / 1u, col0 + (t % 1u) * 4u, out[t]);
    }
}

// gemm_tn4_s — A contiguous along m, B contiguous along n (C = Xᵀ·dY). Thread: 4 rows (1 vec4)
// × 8 columns (2 vec4), an outer product per k; workgroup 8×8 → 32×64 tile.
// Needs n, a_cs, b_rs, a_off, b_off ≡ 0 mod 4; any m (the last vec4 of rows may run past m,
// inside A's column stride; store() drops those rows). COLSUM: the invocations of rows 0..
// sum B's columns from the vec4s they load anyway.
@compute @workgroup_size(8, 8)
fn gemm_tn4_s(@builtin(global_invocation_id) gid: vec3<u32>) {
    set_model(gid.z);
    let m4 = (g.m + 3u) / 4u;
    let n4 = g.n / 4u;
    let r0 = gid.y * 1u;
    let c0 = gid.x * 2u;
    if (r0 >= m4 || c0 >= n4) {
        return;
    }
    let a_cs4 = g.a_cs / 4u;
    let b_rs4 = g.b_rs / 4u;
    let ar0 = a_off / 4u + min(r0 + 0u, m4 - 1u);
    let bc0 = b_off / 4u + min(c0 + 0u, n4 - 1u);
    let bc1 = b_off / 4u + min(c0 + 1u, n4 - 1u);
    var acc00_0 = vec4<f32>(0.0); var acc00_1 = vec4<f32>(0.0);
    var acc01_0 = vec4<f32>(0.0); var acc01_1 = vec4<f32>(0.0);
    var acc02_0 = vec4<f32>(0.0); var acc02_1 = vec4<f32>(0.0);
    var acc03_0 = vec4<f32>(0.0); var acc03_1 = vec4<f32>(0.0);
    let colsum = sums_columns(r0);
    var cs0 = vec4<f32>(0.0); var cs1 = vec4<f32>(0.0);
    for (var kk = 0u; kk < g.k; kk++) {
        let av0 = a4[ar0 + kk * a_cs4];
        let bv0 = b4[bc0 + kk * b_rs4];
        let bv1 = b4[bc1 + kk * b_rs4];
        acc00_0 += av0.x * bv0;
        acc00_1 += av0.x * bv1;
        acc01_0 += av0.y * bv0;
        acc01_1 += av0.y * bv1;
        acc02_0 += av0.z * bv0;
        acc02_1 += av0.z * bv1;
        acc03_0 += av0.w * bv0;
        acc03_1 += av0.w * bv1;
        if (colsum) {
            cs0 += bv0;
            cs1 += bv1;
        }
    }
    if (colsum) {
        for (var i = 0u; i < 4u; i++) {
            store_colsum((c0 + 0u) * 4u + i, cs0[i]);
        }
        for (var i = 0u; i < 4u; i++) {
            store_colsum((c0 + 1u) * 4u + i, cs1[i]);
        }
    }
    // The epilogue runs as a loop: unrolled, its 8 branchy stores take LLVM (lavapipe's
    // compiler) tens of seconds to build.
    let out = array<vec4<f32>, 8>(acc00_0, acc00_1, acc01_0, acc01_1, acc02_0, acc02_1, acc03_0, acc03_1);
    for (var t = 0u; t < 8u; t++) {
        store4((r0 + t / 8u) * 4u + (t / 2u) % 4u, (c0 + t % 2u) * 4u, out[t]);
    }
}
// ---- end of generated code ----
