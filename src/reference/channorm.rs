//! Twin of shaders/channorm.wgsl: CONV.md's per-channel ActNorm over (n, c, h·w) tensors,
//! u = (x − β_c)/σ_c with σ_c = exp(a_c) + γ, log|det| = −h·w·Σ_c log σ_c per sample;
//! optionally followed by a ReLU (a conditioner's hidden layers, no log-det).

use super::actnorm::GAMMA;
use crate::model::Norm;

/// σ_c = exp(a_c) + γ, as the dense ActNorm.
pub fn sigma(params: &[f64], norm: &Norm, c: usize) -> f64 {
    params[norm.a + c].exp() + GAMMA
}

/// x (n, c, hw) → u, then max(u, 0) with `relu`.
pub fn forward(params: &[f64], norm: &Norm, x: &[f64], hw: usize, relu: bool) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(e, v)| {
            let c = e / hw % norm.c;
            let u = (v - params[norm.beta + c]) / sigma(params, norm, c);
            if relu {
                u.max(0.0)
            } else {
                u
            }
        })
        .collect()
}

/// The log-det per sample: −hw·Σ_c log σ_c.
pub fn logdet(params: &[f64], norm: &Norm, hw: usize) -> f64 {
    -(hw as f64) * (0..norm.c).map(|c| sigma(params, norm, c).ln()).sum::<f64>()
}

/// u (n, c, hw) → x = u σ_c + β_c.
pub fn inverse(params: &[f64], norm: &Norm, u: &[f64], hw: usize) -> Vec<f64> {
    u.iter()
        .enumerate()
        .map(|(e, v)| v * sigma(params, norm, e / hw % norm.c) + params[norm.beta + e / hw % norm.c])
        .collect()
}

/// CONV.md's data initialisation over (n, i, j) of x (n, c, hw): β = mean, exp(a) =
/// population std (a = 0 below 1e-6).
pub fn init(params: &mut [f64], norm: &Norm, x: &[f64], hw: usize) {
    let n = x.len() / (norm.c * hw);
    let count = (n * hw) as f64;
    for c in 0..norm.c {
        let vals = || (0..n).flat_map(move |s| (0..hw).map(move |p| x[(s * norm.c + c) * hw + p]));
        let mean = vals().sum::<f64>() / count;
        let sd = (vals().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt();
        params[norm.beta + c] = mean;
        params[norm.a + c] = if sd >= 1e-6 { sd.ln() } else { 0.0 };
    }
}

/// Backprop from the forward's output `out` (post-ReLU with `relu`) and dout: returns dx and
/// writes (=) ∂β, ∂a into `grads`; `dld` (per sample) when the layer's log-det entered the
/// loss. With a ReLU, u = out wherever the gradient passes (out > 0), so `out` suffices.
pub fn backward(
    params: &[f64],
    norm: &Norm,
    out: &[f64],
    dout: &[f64],
    dld: Option<&[f64]>,
    hw: usize,
    relu: bool,
    grads: &mut [f64],
) -> Vec<f64> {
    let n = out.len() / (norm.c * hw);
    let mut dx = vec![0.0; out.len()];
    for c in 0..norm.c {
        let sg = sigma(params, norm, c);
        let ea = params[norm.a + c].exp();
        let (mut dbeta, mut da) = (0.0, 0.0);
        for s in 0..n {
            for p in 0..hw {
                let e = (s * norm.c + c) * hw + p;
                let g = if relu && out[e] <= 0.0 { 0.0 } else { dout[e] };
                dx[e] = g / sg;
                dbeta -= g / sg;
                da -= g * out[e] * ea / sg;
            }
            if let Some(dld) = dld {
                da -= hw as f64 * dld[s] * ea / sg;
            }
        }
        grads[norm.beta + c] = dbeta;
        grads[norm.a + c] = da;
    }
    dx
}
