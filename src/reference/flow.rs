//! The whole flow in f64: every layer in order, forward (y → u, log-det), inverse, and the
//! data-dependent ActNorm initialisation. Built from the per-kernel twins.

use super::gemm::{gemm, Strided};
use super::{actnorm, coupling, loss, permute};
use crate::model::{invert_perm, Flow, Layer, Linear};

/// The conditioner MLP on the first h columns of x (n, q): returns every linear layer's
/// output, the last being rm = (r, m) (n, 2(q−h)). Hidden layers are post-ReLU.
pub fn conditioner(params: &[f64], linears: &[Linear], x: &[f64], n: usize, q: usize) -> Vec<Vec<f64>> {
    let mut outs: Vec<Vec<f64>> = Vec::new();
    for (k, lin) in linears.iter().enumerate() {
        let mut out = vec![0.0; n * lin.fan_out];
        let (input, iv) = match outs.last() {
            None => (x, Strided::rows(0, q)),
            Some(prev) => (prev.as_slice(), Strided::rows(0, lin.fan_in)),
        };
        let relu = k + 1 < linears.len();
        gemm(
            &mut out,
            Strided::rows(0, lin.fan_out),
            input,
            iv,
            params,
            Strided::rows(lin.w, lin.fan_out),
            Some((params, lin.b)),
            None,
            n,
            lin.fan_out,
            lin.fan_in,
            relu,
            false,
        );
        outs.push(out);
    }
    outs
}

/// One layer forward: y (n, q) → u, adding its log-det into `logdet`.
pub fn layer_forward(layer: &Layer, params: &[f64], y: &[f64], logdet: &mut [f64], n: usize, q: usize) -> Vec<f64> {
    let mut u = vec![0.0; n * q];
    match layer {
        Layer::ActNorm { beta, a, .. } => actnorm::forward(params, *beta, *a, y, &mut u, logdet, n, q),
        Layer::Coupling { linears, .. } => {
            let rm = conditioner(params, linears, y, n, q).pop().expect("a conditioner has an output layer");
            coupling::forward(y, &rm, &mut u, logdet, n, q);
        }
        Layer::Reverse | Layer::Shuffle { .. } => {
            permute::gather(&layer.gather_indices(q).expect("permutation"), y, &mut u, n, q)
        }
    }
    u
}

/// One layer inverse: u (n, q) → y.
pub fn layer_inverse(layer: &Layer, params: &[f64], u: &[f64], n: usize, q: usize) -> Vec<f64> {
    let mut y = vec![0.0; n * q];
    match layer {
        Layer::ActNorm { beta, a, .. } => actnorm::inverse(params, *beta, *a, u, &mut y, n, q),
        Layer::Coupling { linears, .. } => {
            // u_a = y_a, so the conditioner sees the same input as in the forward.
            let rm = conditioner(params, linears, u, n, q).pop().expect("a conditioner has an output layer");
            coupling::inverse(u, &rm, &mut y, n, q);
        }
        Layer::Reverse | Layer::Shuffle { .. } => {
            let idx = invert_perm(&layer.gather_indices(q).expect("permutation"));
            permute::gather(&idx, u, &mut y, n, q)
        }
    }
    y
}

/// y (n, q) → (u, logdet).
pub fn forward(flow: &Flow, params: &[f64], y: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let q = flow.config.q();
    let mut logdet = vec![0.0; n];
    let mut x = y.to_vec();
    for layer in &flow.layers {
        x = layer_forward(layer, params, &x, &mut logdet, n, q);
    }
    (x, logdet)
}

/// u (n, q) → y.
pub fn inverse(flow: &Flow, params: &[f64], u: &[f64], n: usize) -> Vec<f64> {
    let q = flow.config.q();
    let mut x = u.to_vec();
    for layer in flow.layers.iter().rev() {
        x = layer_inverse(layer, params, &x, n, q);
    }
    x
}

/// log p_T(y) per row.
pub fn log_prob(flow: &Flow, params: &[f64], y: &[f64], n: usize) -> Vec<f64> {
    let (u, logdet) = forward(flow, params, y, n);
    let mut logp = vec![0.0; n];
    loss::log_prob(&u, &logdet, &mut logp, n, flow.config.q());
    logp
}

/// Data-dependent initialisation: each ActNorm takes the statistics of its own input as the
/// batch `y` flows through the layers before it (already initialised).
pub fn init_actnorms(flow: &Flow, params: &mut [f64], y: &[f64], n: usize) {
    let q = flow.config.q();
    let mut logdet = vec![0.0; n];
    let mut x = y.to_vec();
    for layer in &flow.layers {
        if let Layer::ActNorm { beta, a, .. } = layer {
            actnorm::init(params, *beta, *a, &x, n, q);
        }
        x = layer_forward(layer, params, &x, &mut logdet, n, q);
    }
}

/// log N(ε; 0, I) for a vector.
pub fn log_normal(e: &[f64]) -> f64 {
    -0.5 * e.iter().map(|v| v * v).sum::<f64>() - e.len() as f64 * loss::HALF_LOG_2PI
}

/// logsumexp of a slice, stable (max subtracted first).
pub fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Thesis eq. 8: log p(x) ≈ logsumexp_s [log p_T(x, ε_s) − log N(ε_s)] − log S, for each of
/// the n rows of x (n, D), with ε given as (n, S, B).
pub fn marginal_log_likelihood(flow: &Flow, params: &[f64], x: &[f64], eps: &[f64], n: usize, s: usize) -> Vec<f64> {
    let (d, b) = (flow.config.d, flow.config.b);
    let q = d + b;
    let mut y = vec![0.0; n * s * q];
    for row in 0..n {
        for k in 0..s {
            let r = (row * s + k) * q;
            y[r..r + d].copy_from_slice(&x[row * d..row * d + d]);
            y[r + d..r + q].copy_from_slice(&eps[(row * s + k) * b..(row * s + k + 1) * b]);
        }
    }
    let lp = log_prob(flow, params, &y, n * s);
    (0..n)
        .map(|row| {
            let terms: Vec<f64> =
                (0..s).map(|k| lp[row * s + k] - log_normal(&eps[(row * s + k) * b..(row * s + k + 1) * b])).collect();
            logsumexp(&terms) - (s as f64).ln()
        })
        .collect()
}
