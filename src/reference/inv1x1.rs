//! Twin of shaders/inv1x1.wgsl: Glow's invertible 1×1 convolution over (n, C, h·w) planes,
//! `u[:, o, p] = Σ_k W[o, k] y[:, k, p]` with `W = P L (U + diag(sign ⊙ exp(log_s)))` built
//! from the packed `lu` tensor (model::conv::inv1x1_matrix), log|det| = h·w·Σ log_s; its
//! inverse by triangular solves, and its gradients through the LU factors.

pub use crate::model::conv::inv1x1_matrix as weights;

/// W⁻¹ = (U + diag s)⁻¹ L⁻¹ Pᵀ, column by column: column j solves W x = e_j, i.e.
/// L (U + diag s) x = e_{perm[j]}, as inv1x1.wgsl's invocation j does.
pub fn inverse(lu: &[f64], perm: &[u32], sign: &[i8], c: usize) -> Vec<f64> {
    let mut inv = vec![0.0; c * c];
    for j in 0..c {
        let mut x = vec![0.0; c];
        x[perm[j] as usize] = 1.0;
        for i in 0..c {
            for k in 0..i {
                x[i] -= lu[i * c + k] * x[k];
            }
        }
        for i in (0..c).rev() {
            for k in i + 1..c {
                x[i] -= lu[i * c + k] * x[k];
            }
            x[i] /= sign[i] as f64 * lu[i * c + i].exp();
        }
        for i in 0..c {
            inv[i * c + j] = x[i];
        }
    }
    inv
}

/// out[s, o, p] = Σ_k M[o, k] x[s, k, p] (Mᵀ with `transpose`), x of (n, c, hw).
pub fn apply(m: &[f64], transpose: bool, x: &[f64], c: usize, hw: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for s in 0..x.len() / (c * hw) {
        for o in 0..c {
            for p in 0..hw {
                out[(s * c + o) * hw + p] =
                    (0..c).map(|k| if transpose { m[k * c + o] } else { m[o * c + k] } * x[(s * c + k) * hw + p]).sum();
            }
        }
    }
    out
}

/// The log-det per sample: h·w·Σ log_s.
pub fn logdet(lu: &[f64], c: usize, hw: usize) -> f64 {
    hw as f64 * (0..c).map(|i| lu[i * c + i]).sum::<f64>()
}

/// ∂L/∂W[o, k] = Σ_{s, p} du[s, o, p] · y[s, k, p].
pub fn weight_grad(du: &[f64], y: &[f64], c: usize, hw: usize) -> Vec<f64> {
    let mut dw = vec![0.0; c * c];
    for s in 0..y.len() / (c * hw) {
        for o in 0..c {
            for k in 0..c {
                dw[o * c + k] += (0..hw).map(|p| du[(s * c + o) * hw + p] * y[(s * c + k) * hw + p]).sum::<f64>();
            }
        }
    }
    dw
}

/// The packed `lu` tensor's gradient from ∂L/∂W and Σ dld (the log-det's weight):
/// W = P M, M = L U' (U' = U + diag(sign·exp(log_s))): dM = Pᵀ dW, dL = dM U'ᵀ (strictly
/// lower), dU' = Lᵀ dM (upper; the diagonal through exp, plus h·w·Σ dld).
pub fn lu_grad(lu: &[f64], perm: &[u32], sign: &[i8], dw: &[f64], dld_sum: f64, c: usize, hw: usize) -> Vec<f64> {
    let mut dm = vec![0.0; c * c];
    for i in 0..c {
        let r = perm[i] as usize;
        dm[r * c..(r + 1) * c].copy_from_slice(&dw[i * c..(i + 1) * c]);
    }
    let l = |i: usize, k: usize| {
        if i == k {
            1.0
        } else if k < i {
            lu[i * c + k]
        } else {
            0.0
        }
    };
    let u = |k: usize, j: usize| {
        if k == j {
            sign[j] as f64 * lu[j * c + j].exp()
        } else if k < j {
            lu[k * c + j]
        } else {
            0.0
        }
    };
    let mut g = vec![0.0; c * c];
    for i in 0..c {
        for j in 0..c {
            g[i * c + j] = if i > j {
                (0..c).map(|k| dm[i * c + k] * u(j, k)).sum::<f64>()
            } else {
                let d: f64 = (0..c).map(|k| l(k, i) * dm[k * c + j]).sum();
                if i == j {
                    d * u(j, j) + hw as f64 * dld_sum
                } else {
                    d
                }
            };
        }
    }
    g
}
