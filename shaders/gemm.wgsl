// gemm.wgsl — C = A·B (+ bias) (→ ReLU), f32, any M, N, K.
//
// A, B and C are strided views into flat buffers: element (i, k) of A lives at
// a_off + i*a_rs + k*a_cs, so the transposes backprop needs (dY·Wᵀ, Xᵀ·dY) are the same
// kernel with other strides, and a column block (the coupling's y_a) is a view too.
// flags: BIAS adds bias[bias_off + j]; RELU clamps at 0; ACCUM adds into C (C += A·B).
//
// Entry points (same bindings):
//   gemm_reg   — 8×8 threads, each a 4×4 register block over rows row0 + r·8 and columns
//                col0 + c·8 (neighbouring threads touch neighbouring columns, so loads
//                coalesce on GPUs and vectorise across lanes on llvmpipe). No workgroup
//                memory: the fast variant on CPU adapters, where tiling only adds copies.
//   gemm_tiled — 16×16 threads, 64×64 tile, K staged through workgroup memory in slabs
//                of 16 (8 KiB): the variant for real GPUs.
// Dispatch: (⌈N/32⌉, ⌈M/32⌉) for gemm_reg, (⌈N/64⌉, ⌈M/64⌉) for gemm_tiled.
// Bindings: 0 uniform Gemm; 1 a; 2 b; 3 bias; 4 c (read_write).
// Twin: src/reference/gemm.rs

struct Gemm {
    m: u32, n: u32, k: u32, flags: u32,
    a_off: u32, a_rs: u32, a_cs: u32, b_off: u32,
    b_rs: u32, b_cs: u32, c_off: u32, c_rs: u32,
    bias_off: u32, _p0: u32, _p1: u32, _p2: u32,
}

const BIAS: u32 = 1u;
const RELU: u32 = 2u;
const ACCUM: u32 = 4u;

@group(0) @binding(0) var<uniform> g: Gemm;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn store(row: u32, col: u32, acc: f32) {
    if (row >= g.m || col >= g.n) {
        return;
    }
    let idx = g.c_off + row * g.c_rs + col;
    var v = acc;
    if ((g.flags & ACCUM) != 0u) {
        v += c[idx];
    }
    if ((g.flags & BIAS) != 0u) {
        v += bias[g.bias_off + col];
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
    let row0 = wg.y * RT * 4u + lid.y;
    let col0 = wg.x * RT * 4u + lid.x;
    let steps = vec4<u32>(0u, 1u, 2u, 3u) * RT;
    // Out-of-range rows and columns read clamped (valid) addresses; store() masks them.
    let rows = min(vec4<u32>(row0) + steps, vec4<u32>(g.m - 1u));
    let cols = min(vec4<u32>(col0) + steps, vec4<u32>(g.n - 1u));
    var ai = vec4<u32>(g.a_off) + rows * g.a_rs;
    var bi = vec4<u32>(g.b_off) + cols * g.b_cs;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < g.k; kk++) {
        let av = vec4<f32>(a[ai.x], a[ai.y], a[ai.z], a[ai.w]);
        let bv = vec4<f32>(b[bi.x], b[bi.y], b[bi.z], b[bi.w]);
        acc0 += av.x * bv;
        acc1 += av.y * bv;
        acc2 += av.z * bv;
        acc3 += av.w * bv;
        ai += vec4<u32>(g.a_cs);
        bi += vec4<u32>(g.b_rs);
    }
    store_block(row0, col0, RT, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
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
    let row_base = wg.y * TM;
    let col_base = wg.x * TM;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < g.k; k0 += TK) {
        for (var t = 0u; t < 4u; t++) {
            let e = li + t * 256u;
            let i = e % TM;
            let kk = e / TM;
            let gk = k0 + kk;
            var av = 0.0;
            let gi = row_base + i;
            if (gi < g.m && gk < g.k) {
                av = a[g.a_off + gi * g.a_rs + gk * g.a_cs];
            }
            a_tile[kk * TM + i] = av;
            var bv = 0.0;
            let gj = col_base + i;
            if (gj < g.n && gk < g.k) {
                bv = b[g.b_off + gk * g.b_rs + gj * g.b_cs];
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
        }
        workgroupBarrier();
    }
    store_block(row_base + lid.y, col_base + lid.x, TT, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
}
