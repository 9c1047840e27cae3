//! Twin of shaders/optim.wgsl: global gradient norm, clipping, Adam.

use crate::kernels::optim::{BETA1, BETA2, EPS};

/// The parameters' exponential moving average after a step t (1-based) of Adam: the
/// parameters themselves at t = 1, else d·avg + (1 − d)·params with d = min(decay,
/// (1 + t)/(10 + t)). A step that Adam skips (a non-finite gradient norm) leaves it too.
pub fn ema(avg: &mut [f64], params: &[f64], grads: &[f64], decay: f64, t: u32) {
    if !grad_norm(grads).is_finite() {
        return;
    }
    let d = crate::kernels::optim::ema_decay(decay, t) as f32 as f64;
    for (a, &p) in avg.iter_mut().zip(params) {
        *a = if t == 1 { p } else { d * *a + (1.0 - d) * p };
    }
}

pub fn grad_norm(grads: &[f64]) -> f64 {
    grads.iter().map(|g| g * g).sum::<f64>().sqrt()
}

/// One Adam step t (1-based) with optional clipping of the whole gradient to norm `clip`.
/// Skips the update when the norm is not finite, as the shader does.
pub fn adam(params: &mut [f64], grads: &[f64], m: &mut [f64], v: &mut [f64], t: u32, lr: f64, clip: Option<f64>) {
    let norm = grad_norm(grads);
    if !norm.is_finite() {
        return;
    }
    let factor = match clip {
        Some(c) if c > 0.0 && norm > c => c / norm,
        _ => 1.0,
    };
    let bc1 = 1.0 - BETA1.powi(t as i32);
    let bc2 = 1.0 - BETA2.powi(t as i32);
    for i in 0..params.len() {
        let g = grads[i] * factor;
        m[i] = BETA1 * m[i] + (1.0 - BETA1) * g;
        v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g;
        params[i] -= lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + EPS);
    }
}
