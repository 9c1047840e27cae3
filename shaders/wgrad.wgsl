// wgrad.wgsl — every weight and bias gradient of one conditioner in one dispatch (a grouped
// GEMM): for each linear k, dW_k = in_kᵀ · dz_k (fan_in × fan_out) and db_k = Σ_rows dz_k,
// written (=) into the flat gradient buffer at the parameters' offsets. in_k and dz_k are
// the regions fused.wgsl's training forward and backward store: N rows of ld floats each,
// ld a multiple of 4 (padding zero), so every load is a whole vec4 along the contiguous
// dimension, what both GPUs and llvmpipe load fastest.
//
// Entry point: wgrad — 8×8 invocations, each an 8 (rows of dW) × 8 (columns) register block,
// a 64×64 tile per workgroup; the flat workgroup index x walks every problem's tiles in turn
// (problem k owns tiles tile0_k..tile0_k + tiles_k). Invocations owning rows 0..8 also sum
// dz's columns (the bias gradient) from the vec4s they load anyway.
// With an ActNorm folded into the coupling (fused.wgsl's ACTNORM), one more workgroup past
// the last tile reduces its parameter gradients over the rows, as actnorm.wgsl's backward
// does, from y = the ActNorm's output (saved region 0) and g = ∂L/∂y (dz region 0):
//   dβ_i = −Σ_rows g_i / σ_i,  da_i = −(Σ_rows g_i·y_i + Σ_rows dld) · exp(a_i) / σ_i.
// Bindings: 0 uniform Wgrad; 1 sv (the saved inputs, vec4s); 2 dz (vec4s); 3 grads;
//           4 params (for a); 5 dld (N).
// Dispatch: (total tiles [+ 1], 1, models); z is the model: sv and dz advance sv_ms floats,
// grads and params ps, dld N.
// Twin: src/reference/wgrad.rs

const MAX_PROB: u32 = 17u;

struct Wgrad {
    n: u32, nprob: u32, ps: u32, sv_ms: u32,
    // The folded ActNorm: β's and a's offsets, whether there is one, the flow width Q.
    an_beta: u32, an_a: u32, an_on: u32, q: u32,
    // Per problem k, three vec4s: (in offset, dz offset, W offset, b offset),
    // (fan_in, fan_out, ld_in, ld_dz), (tile0, tile columns, 0, 0).
    prob: array<vec4<u32>, 51>,
}

@group(0) @binding(0) var<uniform> p: Wgrad;
@group(0) @binding(1) var<storage, read> sv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dz: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;
@group(0) @binding(4) var<storage, read> params: array<f32>;
@group(0) @binding(5) var<storage, read> dld: array<f32>;

const GAMMA: f32 = 1e-6; // actnorm.wgsl's

// The folded ActNorm's parameter gradients (the workgroup past the last tile).
fn actnorm_grads(z: u32, lid: u32) {
    let ld0 = p.prob[1].z; // region 0's row stride
    let base = z * p.sv_ms + p.prob[0].x;
    var sdld = 0.0;
    for (var r = 0u; r < p.n; r++) {
        sdld += dld[z * p.n + r];
    }
    for (var i = lid; i < p.q; i += 64u) {
        var sg = 0.0;
        var sgy = 0.0;
        for (var r = 0u; r < p.n; r++) {
            let e = base + r * ld0 + i;
            let g = dz[e / 4u][e % 4u];
            sg += g;
            sgy += g * sv[e / 4u][e % 4u];
        }
        let ea = exp(params[z * p.ps + p.an_a + i]);
        let sigma = ea + GAMMA;
        grads[z * p.ps + p.an_beta + i] = -sg / sigma;
        grads[z * p.ps + p.an_a + i] = -(sgy + sdld) * ea / sigma;
    }
}

@compute @workgroup_size(8, 8)
fn wgrad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let end = p.prob[3u * (p.nprob - 1u) + 2u];
    if (p.an_on != 0u && wg.x == end.x + end.z) {
        actnorm_grads(wg.z, li);
        return;
    }
    var k = 0u;
    for (var t = 1u; t < p.nprob; t++) {
        if (wg.x >= p.prob[3u * t + 2u].x) {
            k = t;
        }
    }
    let offs = p.prob[3u * k];
    let dims = p.prob[3u * k + 1u];
    let tiles = p.prob[3u * k + 2u];
    let t = wg.x - tiles.x;
    let i0 = (t / tiles.y) * 64u + lid.y * 8u;
    let j0 = (t % tiles.y) * 64u + lid.x * 8u;
    if (i0 >= dims.x || j0 >= dims.y) {
        return;
    }
    let base = wg.z * p.sv_ms;
    // Second vec4s clamped into the row: past ld they would read the next row (discarded
    // by the store, but possibly past the buffer's end on the last row).
    let a0 = (base + offs.x + i0) / 4u;
    let a1 = (base + offs.x + min(i0 + 4u, dims.z - 4u)) / 4u;
    let b0 = (base + offs.y + j0) / 4u;
    let b1 = (base + offs.y + min(j0 + 4u, dims.w - 4u)) / 4u;
    let lda = dims.z / 4u;
    let ldb = dims.w / 4u;
    var c0a = vec4<f32>(0.0); var c0b = vec4<f32>(0.0);
    var c1a = vec4<f32>(0.0); var c1b = vec4<f32>(0.0);
    var c2a = vec4<f32>(0.0); var c2b = vec4<f32>(0.0);
    var c3a = vec4<f32>(0.0); var c3b = vec4<f32>(0.0);
    var c4a = vec4<f32>(0.0); var c4b = vec4<f32>(0.0);
    var c5a = vec4<f32>(0.0); var c5b = vec4<f32>(0.0);
    var c6a = vec4<f32>(0.0); var c6b = vec4<f32>(0.0);
    var c7a = vec4<f32>(0.0); var c7b = vec4<f32>(0.0);
    let colsum = i0 == 0u;
    var csa = vec4<f32>(0.0);
    var csb = vec4<f32>(0.0);
    for (var r = 0u; r < p.n; r++) {
        let x = sv[a0 + r * lda];
        let y = sv[a1 + r * lda];
        let ba = dz[b0 + r * ldb];
        let bb = dz[b1 + r * ldb];
        c0a += x.x * ba; c0b += x.x * bb;
        c1a += x.y * ba; c1b += x.y * bb;
        c2a += x.z * ba; c2b += x.z * bb;
        c3a += x.w * ba; c3b += x.w * bb;
        c4a += y.x * ba; c4b += y.x * bb;
        c5a += y.y * ba; c5b += y.y * bb;
        c6a += y.z * ba; c6b += y.z * bb;
        c7a += y.w * ba; c7b += y.w * bb;
        if (colsum) {
            csa += ba;
            csb += bb;
        }
    }
    let g0 = wg.z * p.ps;
    let out = array<vec4<f32>, 16>(c0a, c0b, c1a, c1b, c2a, c2b, c3a, c3b, c4a, c4b, c5a, c5b, c6a, c6b, c7a, c7b);
    for (var e = 0u; e < 64u; e++) {
        let i = i0 + e / 8u;
        let j = j0 + e % 8u;
        if (i < dims.x && j < dims.y) {
            grads[g0 + offs.z + i * dims.y + j] = out[e / 4u][e % 4u];
        }
    }
    if (colsum) {
        let cs = array<vec4<f32>, 2>(csa, csb);
        for (var c = 0u; c < 8u; c++) {
            if (j0 + c < dims.y) {
                grads[g0 + offs.w + j0 + c] = cs[c / 4u][c % 4u];
            }
        }
    }
}
