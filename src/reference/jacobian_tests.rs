//! Log-determinants checked independently of round trips: against the determinant of a
//! central-difference Jacobian in f64, per layer and for the whole flow.

use super::flow::{forward, inverse, layer_forward, layer_inverse};
use crate::model::{Flow, FlowConfig, Layer};
use rand::{Rng, SeedableRng};

/// log|det M| by LU with partial pivoting.
pub fn log_abs_det(mut m: Vec<f64>, q: usize) -> f64 {
    let mut ld = 0.0;
    for c in 0..q {
        let p = (c..q).max_by(|&i, &j| m[i * q + c].abs().total_cmp(&m[j * q + c].abs())).unwrap();
        if p != c {
            for k in 0..q {
                m.swap(c * q + k, p * q + k);
            }
        }
        let piv = m[c * q + c];
        assert!(piv != 0.0, "singular Jacobian");
        ld += piv.abs().ln();
        for r in c + 1..q {
            let f = m[r * q + c] / piv;
            for k in c..q {
                m[r * q + k] -= f * m[c * q + k];
            }
        }
    }
    ld
}

/// J[i][j] = ∂f_i/∂y_j by central differences, for one row.
pub fn fd_jacobian(f: &dyn Fn(&[f64]) -> Vec<f64>, y: &[f64]) -> Vec<f64> {
    let q = y.len();
    let eps = 1e-5;
    let mut jac = vec![0.0; q * q];
    for j in 0..q {
        let mut yp = y.to_vec();
        let mut ym = y.to_vec();
        yp[j] += eps;
        ym[j] -= eps;
        let (fp, fm) = (f(&yp), f(&ym));
        for i in 0..q {
            jac[i * q + j] = (fp[i] - fm[i]) / (2.0 * eps);
        }
    }
    jac
}

fn random_flow(d: usize, b: usize, seed: u64) -> Flow {
    let mut f = Flow::new(FlowConfig { d, b, blocks: 3, depth: 2, hidden: 12, seed, conv: None }).unwrap();
    f.randomize(seed + 1, 0.9);
    f
}

fn random_y(q: usize, seed: u64) -> Vec<f64> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..q).map(|_| r.random_range(-1.5..1.5)).collect()
}

#[test]
fn layer_logdets_match_finite_difference_jacobians() {
    for (d, b) in [(2, 0), (2, 1), (3, 2), (5, 1)] {
        let flow = random_flow(d, b, 11 * d as u64 + b as u64);
        let p = flow.params_f64();
        let q = flow.config.q();
        for (k, layer) in flow.layers.iter().enumerate() {
            let y = random_y(q, k as u64);
            let mut ld = vec![0.0];
            layer_forward(layer, &p, &y, &mut ld, 1, q);
            let f = |y: &[f64]| layer_forward(layer, &p, y, &mut [0.0], 1, q);
            let fd = log_abs_det(fd_jacobian(&f, &y), q);
            assert!(
                (ld[0] - fd).abs() < 1e-6,
                "Q={q} layer {k} ({layer:?}): log-det {} vs finite differences {fd}",
                ld[0]
            );
            if matches!(layer, Layer::Coupling { .. } | Layer::ActNorm { .. }) {
                assert!(ld[0].abs() > 1e-2, "layer {k}: the test wants a log-det far from zero, got {}", ld[0]);
            }
        }
    }
}

#[test]
fn flow_logdet_matches_finite_difference_jacobian() {
    for (d, b) in [(2, 0), (3, 1), (2, 4), (4, 2)] {
        let flow = random_flow(d, b, 100 + d as u64 * 7 + b as u64);
        let p = flow.params_f64();
        let q = flow.config.q();
        for s in 0..3 {
            let y = random_y(q, 50 + s);
            let (_, ld) = forward(&flow, &p, &y, 1);
            let f = |y: &[f64]| forward(&flow, &p, y, 1).0;
            let fd = log_abs_det(fd_jacobian(&f, &y), q);
            assert!(
                (ld[0] - fd).abs() < 1e-5 * (1.0 + fd.abs()),
                "Q={q}: flow log-det {} vs finite differences {fd}",
                ld[0]
            );
            assert!(ld[0].abs() > 0.1, "the test wants a log-det far from zero, got {}", ld[0]);
        }
    }
}

#[test]
fn inverse_undoes_forward_per_layer_and_whole() {
    for (d, b) in [(2, 0), (3, 2), (9, 0), (5, 4)] {
        let flow = random_flow(d, b, 7 + d as u64 + b as u64);
        let p = flow.params_f64();
        let q = flow.config.q();
        let n = 4;
        let y: Vec<f64> = random_y(n * q, 3);
        for layer in &flow.layers {
            let u = layer_forward(layer, &p, &y, &mut vec![0.0; n], n, q);
            let y2 = layer_inverse(layer, &p, &u, n, q);
            let err = y.iter().zip(&y2).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-10, "{layer:?}: round trip error {err}");
        }
        let (u, _) = forward(&flow, &p, &y, n);
        let y2 = inverse(&flow, &p, &u, n);
        let err = y.iter().zip(&y2).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-9, "Q={q}: whole-flow round trip error {err}");
    }
}

#[test]
fn log_abs_det_is_right_on_a_known_matrix() {
    // det [[2, 1], [1, 3]] = 5; with a row swap needed: [[0, 2], [3, 1]] → det = −6.
    assert!((log_abs_det(vec![2.0, 1.0, 1.0, 3.0], 2) - 5f64.ln()).abs() < 1e-12);
    assert!((log_abs_det(vec![0.0, 2.0, 3.0, 1.0], 2) - 6f64.ln()).abs() < 1e-12);
}
