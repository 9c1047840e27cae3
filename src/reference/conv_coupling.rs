//! Twin of shaders/conv_coupling.wgsl: the affine part of CONV.md's checkerboard and channel
//! couplings over a region (n, C, h·w), given the conditioner's output rm (n, c_rm, h·w):
//! u = y ⊙ exp(s) + m on the transformed elements, s = bound(r) = tanh(r) as the dense
//! coupling's, the conditioning elements unchanged; log|det| = Σ s over the transformed.

use super::coupling::{bound, bound_grad};
use crate::model::Split;

/// The indices in rm of the (r, m) driving element (s, c, p), when it is transformed.
fn drivers(split: Split, c_all: usize, w: usize, hw: usize, s: usize, c: usize, p: usize) -> Option<(usize, usize)> {
    let (rc, mc) = split.transformed(c_all, c, p / w, p % w)?;
    let c_rm = split.rm_channels(c_all);
    Some(((s * c_rm + rc) * hw + p, (s * c_rm + mc) * hw + p))
}

/// y (n, C, hw) → u, adding Σ s per sample into `logdet`.
pub fn forward(split: Split, c_all: usize, w: usize, y: &[f64], rm: &[f64], logdet: &mut [f64]) -> Vec<f64> {
    let hw = y.len() / (logdet.len() * c_all);
    let mut u = y.to_vec();
    for (s, ld) in logdet.iter_mut().enumerate() {
        for c in 0..c_all {
            for p in 0..hw {
                if let Some((ri, mi)) = drivers(split, c_all, w, hw, s, c, p) {
                    let e = (s * c_all + c) * hw + p;
                    let sv = bound(rm[ri]);
                    u[e] = y[e] * sv.exp() + rm[mi];
                    *ld += sv;
                }
            }
        }
    }
    u
}

/// u (n, C, hw) → y = (u − m) ⊙ exp(−s) on the transformed elements.
pub fn inverse(split: Split, c_all: usize, w: usize, n: usize, u: &[f64], rm: &[f64]) -> Vec<f64> {
    let hw = u.len() / (n * c_all);
    let mut y = u.to_vec();
    for s in 0..n {
        for c in 0..c_all {
            for p in 0..hw {
                if let Some((ri, mi)) = drivers(split, c_all, w, hw, s, c, p) {
                    let e = (s * c_all + c) * hw + p;
                    y[e] = (u[e] - rm[mi]) * (-bound(rm[ri])).exp();
                }
            }
        }
    }
    y
}

/// From du (n, C, hw) and dld (n): dy (the direct part; the conditioner's share is added by
/// its backward) and drm (n, c_rm, hw), zero where rm drives nothing.
pub fn backward(
    split: Split,
    c_all: usize,
    w: usize,
    y: &[f64],
    rm: &[f64],
    du: &[f64],
    dld: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let n = dld.len();
    let hw = y.len() / (n * c_all);
    let mut dy = du.to_vec();
    let mut drm = vec![0.0; rm.len()];
    for s in 0..n {
        for c in 0..c_all {
            for p in 0..hw {
                if let Some((ri, mi)) = drivers(split, c_all, w, hw, s, c, p) {
                    let e = (s * c_all + c) * hw + p;
                    let es = bound(rm[ri]).exp();
                    dy[e] = du[e] * es;
                    drm[mi] = du[e];
                    drm[ri] = (du[e] * y[e] * es + dld[s]) * bound_grad(rm[ri]);
                }
            }
        }
    }
    (dy, drm)
}
