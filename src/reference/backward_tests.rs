//! The analytic f64 backward against central differences, for every parameter tensor and
//! for the input, on small random non-identity flows.

use super::flow::loss_and_grad;
use crate::model::{Flow, FlowConfig};
use rand::{Rng, SeedableRng};

fn loss(flow: &Flow, p: &[f64], y: &[f64], n: usize) -> f64 {
    loss_and_grad(flow, p, y, n).0
}

#[test]
fn gradients_match_central_differences() {
    for (d, b, depth) in [(2, 0, 1), (2, 1, 2), (3, 2, 2)] {
        let mut flow = Flow::new(FlowConfig { d, b, blocks: 2, depth, hidden: 6, seed: 3, conv: None }).unwrap();
        flow.randomize(17 + d as u64, 0.7);
        let q = flow.config.q();
        let n = 5;
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let y: Vec<f64> = (0..n * q).map(|_| rng.random_range(-1.5..1.5)).collect();
        let p = flow.params_f64();
        let (_, grads, dy) = loss_and_grad(&flow, &p, &y, n);
        let h = 1e-6;
        for t in &flow.tensors {
            let mut worst: f64 = 0.0;
            let mut scale: f64 = 1e-3;
            for i in t.offset..t.offset + t.len() {
                let (mut pp, mut pm) = (p.clone(), p.clone());
                pp[i] += h;
                pm[i] -= h;
                let fd = (loss(&flow, &pp, &y, n) - loss(&flow, &pm, &y, n)) / (2.0 * h);
                worst = worst.max((fd - grads[i]).abs());
                scale = scale.max(fd.abs());
            }
            assert!(
                worst / scale < 1e-6,
                "Q={q} depth={depth} {}: |analytic − FD| = {worst:e} at scale {scale:e}",
                t.name
            );
        }
        for i in 0..n * q {
            let (mut yp, mut ym) = (y.clone(), y.clone());
            yp[i] += h;
            ym[i] -= h;
            let fd = (loss(&flow, &p, &yp, n) - loss(&flow, &p, &ym, n)) / (2.0 * h);
            assert!((fd - dy[i]).abs() < 1e-6 * (1.0 + fd.abs()), "Q={q}: dL/dy[{i}] {} vs FD {fd}", dy[i]);
        }
    }
}

#[test]
fn adam_takes_a_step_against_the_gradient_and_clips() {
    use super::optim::{adam, grad_norm};
    let grads = vec![3.0, -4.0];
    assert!((grad_norm(&grads) - 5.0).abs() < 1e-12);
    // First Adam step moves each parameter by lr·sign(g) (bias correction makes m̂ = g, v̂ = g²).
    let (mut p, mut m, mut v) = (vec![0.0, 0.0], vec![0.0; 2], vec![0.0; 2]);
    adam(&mut p, &grads, &mut m, &mut v, 1, 0.1, None);
    assert!((p[0] + 0.1).abs() < 1e-7 && (p[1] - 0.1).abs() < 1e-7, "{p:?}");
    // Clipping to 1 rescales the whole vector: m holds (1 − β1)·g·(1/5).
    let (mut p, mut m, mut v) = (vec![0.0, 0.0], vec![0.0; 2], vec![0.0; 2]);
    adam(&mut p, &grads, &mut m, &mut v, 1, 0.1, Some(1.0));
    assert!((m[0] - 0.1 * 3.0 / 5.0).abs() < 1e-12 && (m[1] + 0.1 * 4.0 / 5.0).abs() < 1e-12, "{m:?}");
    // A non-finite gradient leaves everything untouched.
    let mut p2 = p.clone();
    adam(&mut p2, &[f64::NAN, 1.0], &mut m, &mut v, 2, 0.1, None);
    assert_eq!(p2, p);
}
