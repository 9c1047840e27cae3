//! Twin of shaders/gemm.wgsl: C = A·B (+ bias) (→ ReLU) over strided views.

/// Element (i, j) at `off + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub struct Strided {
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl Strided {
    pub fn rows(off: usize, cols: usize) -> Self {
        Self { off, rs: cols, cs: 1 }
    }
    pub fn transposed(off: usize, cols: usize) -> Self {
        Self { off, rs: 1, cs: cols }
    }
}

/// C (m×n, row-major view `cv`) = [C +] A·B [+ bias] [→ ReLU] [⊙ 1[mask > 0]], the mask
/// laid out like C (row stride `cv.rs`) from its offset.
pub fn gemm(
    c: &mut [f64],
    cv: Strided,
    a: &[f64],
    av: Strided,
    b: &[f64],
    bv: Strided,
    bias: Option<(&[f64], usize)>,
    mask: Option<(&[f64], usize)>,
    m: usize,
    n: usize,
    k: usize,
    relu: bool,
    accumulate: bool,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0;
            for kk in 0..k {
                acc += a[av.off + i * av.rs + kk * av.cs] * b[bv.off + kk * bv.rs + j * bv.cs];
            }
            let idx = cv.off + i * cv.rs + j * cv.cs;
            if accumulate {
                acc += c[idx];
            }
            if let Some((bias, off)) = bias {
                acc += bias[off + j];
            }
            if relu {
                acc = acc.max(0.0);
            }
            if let Some((mask, off)) = mask {
                if mask[off + i * cv.rs + j] <= 0.0 {
                    acc = 0.0;
                }
            }
            c[idx] = acc;
        }
    }
}

/// `gemm` with its bias indexed by rows (the ROWBIAS flag): C = [C +] A·B + bias[i] [→ ReLU].
#[allow(clippy::too_many_arguments)]
pub fn gemm_bias_rows(
    c: &mut [f64],
    cv: Strided,
    a: &[f64],
    av: Strided,
    b: &[f64],
    bv: Strided,
    bias: (&[f64], usize),
    m: usize,
    n: usize,
    k: usize,
    relu: bool,
    accumulate: bool,
) {
    gemm(c, cv, a, av, b, bv, None, None, m, n, k, false, accumulate);
    for i in 0..m {
        for j in 0..n {
            let idx = cv.off + i * cv.rs + j * cv.cs;
            c[idx] += bias.0[bias.1 + i];
            if relu {
                c[idx] = c[idx].max(0.0);
            }
        }
    }
}
