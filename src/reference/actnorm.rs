//! Twin of shaders/actnorm.wgsl: u = (y − β)/(exp(a) + γ), log|det| = −Σ log(exp(a) + γ).

pub const GAMMA: f64 = 1e-6;

fn scale(params: &[f64], a_off: usize, i: usize) -> f64 {
    params[a_off + i].exp() + GAMMA
}

/// y (n, q) → u (n, q); logdet (n) += −Σ log(exp(a) + γ).
pub fn forward(
    params: &[f64],
    beta_off: usize,
    a_off: usize,
    y: &[f64],
    u: &mut [f64],
    logdet: &mut [f64],
    n: usize,
    q: usize,
) {
    let ld: f64 = -(0..q).map(|i| scale(params, a_off, i).ln()).sum::<f64>();
    for row in 0..n {
        for i in 0..q {
            let e = row * q + i;
            u[e] = (y[e] - params[beta_off + i]) / scale(params, a_off, i);
        }
        logdet[row] += ld;
    }
}

/// u (n, q) → y (n, q).
pub fn inverse(params: &[f64], beta_off: usize, a_off: usize, u: &[f64], y: &mut [f64], n: usize, q: usize) {
    for row in 0..n {
        for i in 0..q {
            let e = row * q + i;
            y[e] = u[e] * scale(params, a_off, i) + params[beta_off + i];
        }
    }
}

/// Data-dependent initialisation: β = batch mean, exp(a) = population std (a = 0 below 1e-6).
pub fn init(params: &mut [f64], beta_off: usize, a_off: usize, y: &[f64], n: usize, q: usize) {
    for i in 0..q {
        let mean = (0..n).map(|r| y[r * q + i]).sum::<f64>() / n as f64;
        let var = (0..n).map(|r| (y[r * q + i] - mean).powi(2)).sum::<f64>() / n as f64;
        let sd = var.sqrt();
        params[beta_off + i] = mean;
        params[a_off + i] = if sd >= 1e-6 { sd.ln() } else { 0.0 };
    }
}

/// dx (=) and the gradients of β and a (=) at their offsets in `grads`.
pub fn backward(
    params: &[f64],
    beta_off: usize,
    a_off: usize,
    y: &[f64],
    du: &[f64],
    dld: &[f64],
    dx: &mut [f64],
    grads: &mut [f64],
    n: usize,
    q: usize,
) {
    for i in 0..q {
        let sigma = scale(params, a_off, i);
        let ea = params[a_off + i].exp();
        let beta = params[beta_off + i];
        let (mut dbeta, mut da) = (0.0, 0.0);
        for row in 0..n {
            let e = row * q + i;
            dx[e] = du[e] / sigma;
            dbeta -= du[e];
            da -= du[e] * (y[e] - beta) / sigma + dld[row];
        }
        grads[beta_off + i] = dbeta / sigma;
        grads[a_off + i] = da * ea / sigma;
    }
}
