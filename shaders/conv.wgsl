// conv.wgsl — 2-D convolutions (k×k, k odd: 3×3 and 1×1), stride 1, zero padding k/2, as
// implicit GEMMs: the im2col matrix is never built; zero padding and the checkerboard mask
// are index arithmetic in the loads.
//
// Tensors are (n, c, h, w) with pixels innermost: element (s, c, p) of model z lives at
// off + z·ms + s·rs + c·h·w + p, so a region of a flow row (rs = Q) and a contiguous
// activation (rs = c·h·w) are the same kernel.
//
// Entry points:
//   conv_forward — out(s, o, p) (=, or += with ACCUM) Σ_{c, di, dj} W(o, c, di, dj) ·
//                  in(s, c, p + (di, dj) − k/2) (+ bias(o) with BIAS): a GEMM of M = n·h·w
//                  pixels by N = c_out channels over K = c_in·k². With FLIP it runs the data
//                  gradient instead: W̃(c, o, di, dj) = W(o, c, k−1−di, k−1−dj), N = c_in,
//                  K = c_out·k², the input being ∂L/∂out. MASK_IN reads 0 where the
//                  checkerboard mask (i + j) mod 2 = parity is 0 (the forward's b ⊙ y);
//                  MASK_OUT stores 0 there (the data gradient of b ⊙ y). Thread: 4 pixels ×
//                  4 channels; workgroup 8×8 → a 32×32 tile; dispatch (⌈N/32⌉, ⌈M/32⌉, models).
//   conv_forward_narrow — conv_forward for fewer than 4 output channels (a conditioner's
//                  last convolution, 64 → 2C, and its first's data gradient, 64 → C), where
//                  4-channel blocks would mostly compute clamped duplicates: thread 8 pixels ×
//                  1 channel; workgroup 64 → 512 pixels; dispatch (⌈M/512⌉, N, models).
//   conv_wgrad   — ∂W(o, c, di, dj) (=) Σ_{s, p} dy(s, o, p) · in(s, c, p + (di, dj) − k/2) and
//                  ∂bias(o) (=) Σ dy(s, o, p): a GEMM of M = c_out by N = c_in·k² over
//                  K = n·h·w, MASK_IN as above. Thread: 4 × 4 outputs, and the invocations of
//                  column block 0 sum the bias gradient from loads they make anyway; dispatch
//                  (⌈c_in·k²/32⌉, ⌈c_out/32⌉, models).
// Bindings: conv_forward 0 uniform Conv; 1 params; 2 x (input); 3 y (output, read_write).
//           conv_wgrad   0 uniform Conv; 1 dy (at y_off, y_rs); 2 x (the forward's input);
//           3 grads (read_write), W and bias at the parameters' own offsets.
// Twin: src/reference/conv.rs (conv2d, conv2d_backward).

struct Conv {
    n: u32, h: u32, w: u32, k: u32,
    c_in: u32, c_out: u32, flags: u32, parity: u32,
    x_off: u32, x_rs: u32, y_off: u32, y_rs: u32,
    w_off: u32, b_off: u32, x_ms: u32, y_ms: u32,
    p_ms: u32, _p0: u32, _p1: u32, _p2: u32,
}

const BIAS: u32 = 1u;
const ACCUM: u32 = 2u;
const MASK_IN: u32 = 4u;
const MASK_OUT: u32 = 8u;
const FLIP: u32 = 16u;

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> p1: array<f32>;
@group(0) @binding(2) var<storage, read> p2: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn has(f: u32) -> bool {
    return (cv.flags & f) != 0u;
}

// The value of x(s, c, i + di − k/2, j + dj − k/2) at buf_off (already per model): 0 outside
// the image and, with MASK_IN, off the checkerboard's parity.
fn load_in(buf_off: u32, s: u32, c: u32, i: u32, j: u32, di: u32, dj: u32) -> f32 {
    let pad = cv.k / 2u;
    let ii = i32(i + di) - i32(pad);
    let jj = i32(j + dj) - i32(pad);
    if (ii < 0 || jj < 0 || ii >= i32(cv.h) || jj >= i32(cv.w)) {
        return 0.0;
    }
    if (has(MASK_IN) && (u32(ii + jj) % 2u) != cv.parity) {
        return 0.0;
    }
    return p2[buf_off + s * cv.x_rs + (c * cv.h + u32(ii)) * cv.w + u32(jj)];
}

@compute @workgroup_size(8, 8)
fn conv_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let hw = cv.h * cv.w;
    let m_total = cv.n * hw;
    let flip = has(FLIP);
    // The GEMM's input and output channels: the layer's, or swapped for the data gradient.
    let n_in = select(cv.c_in, cv.c_out, flip);
    let n_out = select(cv.c_out, cv.c_in, flip);
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= m_total || col0 >= n_out) {
        return;
    }
    let x_off = cv.x_off + gid.z * cv.x_ms;
    let w_off = cv.w_off + gid.z * cv.p_ms;
    // Each of the 4 rows: its sample and pixel (clamped rows compute duplicates, never stored).
    var s: array<u32, 4>;
    var pi: array<u32, 4>;
    var pj: array<u32, 4>;
    for (var r = 0u; r < 4u; r++) {
        let m = min(row0 + r, m_total - 1u);
        s[r] = m / hw;
        pi[r] = (m % hw) / cv.w;
        pj[r] = m % cv.w;
    }
    var cols: array<u32, 4>;
    for (var t = 0u; t < 4u; t++) {
        cols[t] = min(col0 + t, n_out - 1u);
    }
    var acc: array<vec4<f32>, 4>;
    let k = cv.k;
    for (var c = 0u; c < n_in; c++) {
        for (var di = 0u; di < k; di++) {
            for (var dj = 0u; dj < k; dj++) {
                var wv: vec4<f32>;
                for (var t = 0u; t < 4u; t++) {
                    // W(o, c, di, dj); with FLIP, W(c, o, k−1−di, k−1−dj) for output channel o.
                    var widx: u32;
                    if (flip) {
                        widx = ((c * cv.c_in + cols[t]) * k + (k - 1u - di)) * k + (k - 1u - dj);
                    } else {
                        widx = ((cols[t] * cv.c_in + c) * k + di) * k + dj;
                    }
                    wv[t] = p1[w_off + widx];
                }
                for (var r = 0u; r < 4u; r++) {
                    acc[r] += load_in(x_off, s[r], c, pi[r], pj[r], di, dj) * wv;
                }
            }
        }
    }
    let y_off = cv.y_off + gid.z * cv.y_ms;
    let b_off = cv.b_off + gid.z * cv.p_ms;
    for (var r = 0u; r < 4u; r++) {
        let m = row0 + r;
        if (m >= m_total) {
            break;
        }
        let masked_out = has(MASK_OUT) && ((pi[r] + pj[r]) % 2u) != cv.parity;
        for (var t = 0u; t < 4u; t++) {
            let o = col0 + t;
            if (o >= n_out) {
                break;
            }
            let idx = y_off + s[r] * cv.y_rs + o * hw + pi[r] * cv.w + pj[r];
            var v = acc[r][t];
            if (has(BIAS)) {
                v += p1[b_off + o];
            }
            if (masked_out) {
                v = 0.0;
            }
            if (has(ACCUM)) {
                v += out[idx];
            }
            out[idx] = v;
        }
    }
}

@compute @workgroup_size(64)
fn conv_forward_narrow(@builtin(global_invocation_id) gid: vec3<u32>) {
    let hw = cv.h * cv.w;
    let m_total = cv.n * hw;
    let flip = has(FLIP);
    let n_in = select(cv.c_in, cv.c_out, flip);
    let n_out = select(cv.c_out, cv.c_in, flip);
    let row0 = gid.x * 8u;
    let o = gid.y;
    if (row0 >= m_total || o >= n_out) {
        return;
    }
    let x_off = cv.x_off + gid.z * cv.x_ms;
    let w_off = cv.w_off + gid.z * cv.p_ms;
    var s: array<u32, 8>;
    var pi: array<u32, 8>;
    var pj: array<u32, 8>;
    for (var r = 0u; r < 8u; r++) {
        let m = min(row0 + r, m_total - 1u);
        s[r] = m / hw;
        pi[r] = (m % hw) / cv.w;
        pj[r] = m % cv.w;
    }
    var acc: array<f32, 8>;
    let k = cv.k;
    for (var c = 0u; c < n_in; c++) {
        for (var di = 0u; di < k; di++) {
            for (var dj = 0u; dj < k; dj++) {
                var widx: u32;
                if (flip) {
                    widx = ((c * cv.c_in + o) * k + (k - 1u - di)) * k + (k - 1u - dj);
                } else {
                    widx = ((o * cv.c_in + c) * k + di) * k + dj;
                }
                let wv = p1[w_off + widx];
                for (var r = 0u; r < 8u; r++) {
                    acc[r] += load_in(x_off, s[r], c, pi[r], pj[r], di, dj) * wv;
                }
            }
        }
    }
    let y_off = cv.y_off + gid.z * cv.y_ms;
    let b_off = cv.b_off + gid.z * cv.p_ms;
    for (var r = 0u; r < 8u; r++) {
        if (row0 + r >= m_total) {
            break;
        }
        let idx = y_off + s[r] * cv.y_rs + o * hw + pi[r] * cv.w + pj[r];
        var v = acc[r];
        if (has(BIAS)) {
            v += p1[b_off + o];
        }
        if (has(MASK_OUT) && ((pi[r] + pj[r]) % 2u) != cv.parity) {
            v = 0.0;
        }
        if (has(ACCUM)) {
            v += out[idx];
        }
        out[idx] = v;
    }
}

@compute @workgroup_size(8, 8)
fn conv_wgrad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let hw = cv.h * cv.w;
    let k = cv.k;
    let kk = k * k;
    let n_cols = cv.c_in * kk;
    let row0 = gid.y * 4u; // output channels o
    let col0 = gid.x * 4u; // (c, di, dj) flattened
    if (row0 >= cv.c_out || col0 >= n_cols) {
        return;
    }
    let x_off = cv.x_off + gid.z * cv.x_ms;
    let y_off = cv.y_off + gid.z * cv.y_ms;
    var o: array<u32, 4>;
    for (var r = 0u; r < 4u; r++) {
        o[r] = min(row0 + r, cv.c_out - 1u);
    }
    var cc: array<u32, 4>;
    var cdi: array<u32, 4>;
    var cdj: array<u32, 4>;
    for (var t = 0u; t < 4u; t++) {
        let col = min(col0 + t, n_cols - 1u);
        cc[t] = col / kk;
        cdi[t] = (col % kk) / k;
        cdj[t] = col % k;
    }
    let sums_bias = col0 == 0u;
    var acc: array<vec4<f32>, 4>;
    var bias = vec4<f32>(0.0);
    for (var s = 0u; s < cv.n; s++) {
        for (var p = 0u; p < hw; p++) {
            let i = p / cv.w;
            let j = p % cv.w;
            var xv: vec4<f32>;
            for (var t = 0u; t < 4u; t++) {
                xv[t] = load_in(x_off, s, cc[t], i, j, cdi[t], cdj[t]);
            }
            var dv: vec4<f32>;
            for (var r = 0u; r < 4u; r++) {
                dv[r] = p1[y_off + s * cv.y_rs + o[r] * hw + p];
            }
            for (var r = 0u; r < 4u; r++) {
                acc[r] += dv[r] * xv;
            }
            if (sums_bias) {
                bias += dv;
            }
        }
    }
    let g_off = gid.z * cv.p_ms;
    for (var r = 0u; r < 4u; r++) {
        let oo = row0 + r;
        if (oo >= cv.c_out) {
            break;
        }
        for (var t = 0u; t < 4u; t++) {
            let col = col0 + t;
            if (col < n_cols) {
                out[g_off + cv.w_off + oo * n_cols + col] = acc[r][t];
            }
        }
        if (sums_bias) {
            out[g_off + cv.b_off + oo] = bias[r];
        }
    }
}
