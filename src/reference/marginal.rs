//! Twin of shaders/marginal.wgsl, and the whole estimator (thesis eq. 8) in f64.

use super::flow::log_prob;
use super::loss::HALF_LOG_2PI;
use crate::model::Flow;

/// log N(ε; 0, I) for a vector.
pub fn log_normal(e: &[f64]) -> f64 {
    -0.5 * e.iter().map(|v| v * v).sum::<f64>() - e.len() as f64 * HALF_LOG_2PI
}

/// logsumexp of a slice, stable (max subtracted first).
pub fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// The shader: out[p] = logsumexp_s [logp − log N(ε)] − log S over the S rows of point p.
pub fn reduce(points: usize, s: usize, d: usize, q: usize, y: &[f64], logp: &[f64], out: &mut [f64]) {
    for p in 0..points {
        let terms: Vec<f64> = (0..s)
            .map(|k| {
                let row = p * s + k;
                logp[row] - log_normal(&y[row * q + d..row * q + q])
            })
            .collect();
        out[p] = logsumexp(&terms) - (s as f64).ln();
    }
}

/// Thesis eq. 8 for each of the n rows of x (n, D), with ε given as (n, S, B).
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
    let mut out = vec![0.0; n];
    reduce(n, s, d, q, &y, &lp, &mut out);
    out
}
