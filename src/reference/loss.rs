//! Twin of shaders/loss.wgsl: log p_T(y) = Σ log N(u_i; 0, 1) + logdet.

pub const HALF_LOG_2PI: f64 = 0.918_938_533_204_672_8;

pub fn log_prob(u: &[f64], logdet: &[f64], logp: &mut [f64], n: usize, q: usize) {
    for row in 0..n {
        let ss: f64 = (0..q).map(|i| u[row * q + i].powi(2)).sum();
        logp[row] = -0.5 * ss - q as f64 * HALF_LOG_2PI + logdet[row];
    }
}

/// L = −(1/n) Σ log p_T: du = u/n, dld = −1/n.
pub fn backward(u: &[f64], du: &mut [f64], dld: &mut [f64], n: usize, q: usize) {
    for row in 0..n {
        for i in 0..q {
            du[row * q + i] = u[row * q + i] / n as f64;
        }
        dld[row] = -1.0 / n as f64;
    }
}
