//! Twin of shaders/wgrad.wgsl: one conditioner's weight and bias gradients.

use crate::model::Linear;

/// dW_k = in_kᵀ·dz_k and db_k = Σ_rows dz_k, written (=) into `grads` at each linear's
/// offsets. `saved` is reference::fused::forward_saved's (the input rows (n, q), then each
/// linear's output); linear k reads the first fan_in columns of saved[k].
pub fn wgrad(linears: &[Linear], saved: &[Vec<f64>], dz: &[Vec<f64>], grads: &mut [f64], n: usize, q: usize) {
    for (k, lin) in linears.iter().enumerate() {
        let (fi, fo) = (lin.fan_in, lin.fan_out);
        let width = if k == 0 { q } else { fi };
        for i in 0..fi {
            for j in 0..fo {
                grads[lin.w + i * fo + j] = (0..n).map(|r| saved[k][r * width + i] * dz[k][r * fo + j]).sum();
            }
        }
        for j in 0..fo {
            grads[lin.b + j] = (0..n).map(|r| dz[k][r * fo + j]).sum();
        }
    }
}

/// The folded ActNorm's gradients (β and a offsets), from y = its output (saved[0]) and
/// g = ∂L/∂y: dβ_i = −Σ g_i/σ_i, da_i = −(Σ g_i·y_i + Σ dld)·exp(a_i)/σ_i, written (=).
#[allow(clippy::too_many_arguments)]
pub fn actnorm(
    params: &[f64],
    (beta, a): (usize, usize),
    y: &[f64],
    g: &[f64],
    dld: &[f64],
    grads: &mut [f64],
    n: usize,
    q: usize,
) {
    let sdld: f64 = dld.iter().sum();
    for i in 0..q {
        let ea = params[a + i].exp();
        let sigma = ea + super::actnorm::GAMMA;
        let sg: f64 = (0..n).map(|r| g[r * q + i]).sum();
        let sgy: f64 = (0..n).map(|r| g[r * q + i] * y[r * q + i]).sum();
        grads[beta + i] = -sg / sigma;
        grads[a + i] = -(sgy + sdld) * ea / sigma;
    }
}
