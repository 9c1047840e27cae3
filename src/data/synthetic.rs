//! MODEL.md's synthetic data. Gaussian powers `x = u^ψ`, u ~ N(0, I_D), whose expected
//! log-likelihood is known in closed form; half-moons with t ~ U[0, π] so splits are i.i.d.

use super::{Split, Table};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// An independent generator per (dataset seed, split).
fn split_rng(seed: u64, split: Split) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ split.stream())
}

/// `n` rows of x = u^ψ elementwise, u ~ N(0, I_D).
pub fn gauss(d: usize, psi: u32, n: usize, seed: u64, split: Split) -> Table {
    let mut rng = split_rng(seed, split);
    let data = (0..n * d)
        .map(|_| {
            let u: f64 = StandardNormal.sample(&mut rng);
            u.powi(psi as i32) as f32
        })
        .collect();
    Table::new(d, data)
}

/// The true expected log-likelihood of `gauss(d, psi)` per dimension (MODEL.md).
pub fn gauss_true_ll_per_dim(psi: u32) -> Option<f64> {
    match psi {
        1 => Some(-1.41894),
        2 => Some(-0.78376),
        3 => Some(-1.24719),
        _ => None,
    }
}

/// The exact log-density of one row of `gauss(d, psi)`, psi odd (an invertible power):
/// x = u^ψ ⇒ log p(x) = Σ log N(u) − log|ψ u^(ψ−1)|.
pub fn gauss_log_density(x: &[f32], psi: u32) -> Option<f64> {
    if psi.is_multiple_of(2) {
        return None;
    }
    let mut lp = 0.0;
    for &v in x {
        let v = v as f64;
        let u = v.signum() * v.abs().powf(1.0 / psi as f64);
        lp += -0.5 * u * u - 0.5 * (2.0 * std::f64::consts::PI).ln();
        if psi > 1 {
            lp -= (psi as f64).ln() + (psi as f64 - 1.0) * u.abs().ln();
        }
    }
    Some(lp)
}

/// Half-moons: upper arc (cos t, sin t), lower arc (1 − cos t, 0.5 − sin t), t ~ U[0, π],
/// a fair coin for the arc, plus N(0, σ²) noise.
pub fn moons(n: usize, noise: f64, seed: u64, split: Split) -> Table {
    let mut rng = split_rng(seed, split);
    let mut data = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let t = rng.random_range(0.0..std::f64::consts::PI);
        let (x, y) = if rng.random_bool(0.5) { (t.cos(), t.sin()) } else { (1.0 - t.cos(), 0.5 - t.sin()) };
        let e0: f64 = StandardNormal.sample(&mut rng);
        let e1: f64 = StandardNormal.sample(&mut rng);
        data.push((x + noise * e0) as f32);
        data.push((y + noise * e1) as f32);
    }
    Table::new(2, data)
}

/// MODEL.md: the expected log-likelihood of half-moons at σ = 0.1 (numerical).
pub const MOONS_TRUE_LL_SIGMA_0_1: f64 = -1.008;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_true_ll_matches_monte_carlo() {
        for psi in [1, 3] {
            let t = gauss(1, psi, 200_000, 5, Split::Test);
            let mean: f64 =
                (0..t.rows()).map(|i| gauss_log_density(&t.row(i), psi).unwrap()).sum::<f64>() / t.rows() as f64;
            let truth = gauss_true_ll_per_dim(psi).unwrap();
            assert!((mean - truth).abs() < 0.01, "psi={psi}: Monte Carlo {mean} vs {truth}");
        }
    }

    #[test]
    fn splits_differ_and_seeds_repeat() {
        let a = moons(10, 0.1, 0, Split::Train);
        let b = moons(10, 0.1, 0, Split::Test);
        let c = moons(10, 0.1, 0, Split::Train);
        assert_ne!(a.data, b.data);
        assert_eq!(a.data, c.data);
    }
}

/// The exact log-density of one row of `gauss(d, psi)`. x = u^ψ: for odd ψ the map is a
/// bijection, log p(x) = Σ [log N(u) − log(ψ |u|^(ψ−1))]; for even ψ both ±u map to x ≥ 0,
/// which doubles the density.
pub fn gauss_log_density_any(x: &[f32], psi: u32) -> f64 {
    let psi_f = psi as f64;
    let mut lp = 0.0;
    for &v in x {
        let v = v as f64;
        if psi.is_multiple_of(2) && v < 0.0 {
            return f64::NEG_INFINITY;
        }
        let u = v.abs().powf(1.0 / psi_f);
        lp += -0.5 * u * u - 0.5 * (2.0 * std::f64::consts::PI).ln();
        if psi > 1 {
            lp -= psi_f.ln() + (psi_f - 1.0) * u.ln();
        }
        if psi.is_multiple_of(2) {
            lp += std::f64::consts::LN_2;
        }
    }
    lp
}

/// The exact log-density of half-moons at (x, y) for noise σ: the mixture of the two arcs'
/// Gaussians averaged over t ~ U[0, π], by the midpoint rule (the integrand is smooth).
pub fn moons_log_density(p: &[f32], noise: f64) -> f64 {
    const K: usize = 1000;
    let (x, y) = (p[0] as f64, p[1] as f64);
    let inv2s2 = 1.0 / (2.0 * noise * noise);
    let mut terms = Vec::with_capacity(2 * K);
    for k in 0..K {
        let t = (k as f64 + 0.5) / K as f64 * std::f64::consts::PI;
        let (c, s) = (t.cos(), t.sin());
        terms.push(-((x - c).powi(2) + (y - s).powi(2)) * inv2s2);
        terms.push(-((x - 1.0 + c).powi(2) + (y - 0.5 + s).powi(2)) * inv2s2);
    }
    let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - m).exp()).sum();
    // mean over 2K terms, times the Gaussian normaliser 1/(2πσ²)
    m + (sum / (2 * K) as f64).ln() - (2.0 * std::f64::consts::PI * noise * noise).ln()
}

#[cfg(test)]
mod truth_tests {
    use super::*;

    #[test]
    fn exact_densities_average_to_the_known_expectations() {
        let t = gauss(2, 2, 100_000, 1, Split::Test);
        let mean = (0..t.rows()).map(|i| gauss_log_density_any(&t.row(i), 2)).sum::<f64>() / t.rows() as f64;
        assert!((mean - 2.0 * gauss_true_ll_per_dim(2).unwrap()).abs() < 0.02, "psi=2: {mean}");
        let m = moons(20_000, 0.1, 3, Split::Test);
        let mean = (0..m.rows()).map(|i| moons_log_density(&m.row(i), 0.1)).sum::<f64>() / m.rows() as f64;
        assert!((mean - MOONS_TRUE_LL_SIGMA_0_1).abs() < 0.02, "moons: {mean}");
    }
}
