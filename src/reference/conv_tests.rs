//! CONV.md's flow checked independently of round trips: per-layer and whole-flow
//! log-determinants against the determinant of a central-difference Jacobian in f64, the
//! direct convolution against hand-computed values, inverses, and the initialisation.

use super::conv::{conv2d, conv2d_backward, layer_forward};
use super::flow::{forward, init_actnorms, inverse, step_forward, step_inverse};
use super::jacobian_tests::{fd_jacobian, log_abs_det};
use crate::model::{ChannelPermute, ConvArch, Flow, FlowConfig, Layer};
use rand::{Rng, SeedableRng};

fn conv_flow(c: usize, hw: usize, k_eps: usize, b: usize, scales: usize, permute: ChannelPermute, seed: u64) -> Flow {
    let arch =
        ConvArch { channels: c, height: hw, width: hw, aux_channels: k_eps, scales, hidden: 4, depth: 2, permute };
    let cfg = FlowConfig { d: c * hw * hw, b, blocks: 1, depth: 2, hidden: 6, seed, conv: Some(arch) };
    let mut f = Flow::new(cfg).unwrap();
    f.randomize(seed + 1, 0.7);
    f
}

fn random_rows(len: usize, seed: u64) -> Vec<f64> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| r.random_range(-1.5..1.5)).collect()
}

/// The cases the issue names (1×4×4, 2×4×4, 1×4×4 with one ε channel), at one scale and at
/// two (squeeze, channel couplings and factor-out), with both permutations and flat ε.
fn cases() -> Vec<Flow> {
    let mut v = Vec::new();
    for (i, permute) in [ChannelPermute::Reverse, ChannelPermute::Conv1x1].into_iter().enumerate() {
        let s = 10 * i as u64;
        v.push(conv_flow(1, 4, 0, 0, 2, permute, s + 1));
        v.push(conv_flow(2, 4, 0, 0, 2, permute, s + 2));
        v.push(conv_flow(1, 4, 1, 0, 2, permute, s + 3));
        v.push(conv_flow(1, 4, 0, 2, 1, permute, s + 4));
    }
    v
}

#[test]
fn conv_layer_logdets_match_finite_difference_jacobians() {
    for flow in cases() {
        let p = flow.params_f64();
        let q = flow.config.q();
        for (k, layer) in flow.layers.iter().enumerate() {
            let y = random_rows(q, k as u64 + 7);
            let mut ld = vec![0.0];
            let Some(_) = layer_forward(layer, &p, &y, &mut ld, 1, q) else { continue };
            let f = |y: &[f64]| step_forward(&flow, layer, &p, y, &mut [0.0], 1);
            let fd = log_abs_det(fd_jacobian(&f, &y), q);
            assert!(
                (ld[0] - fd).abs() < 1e-6,
                "layer {k} of {:?}: log-det {} vs finite differences {fd}",
                flow.arch()[k],
                ld[0]
            );
            if matches!(
                layer,
                Layer::Checkerboard { .. }
                    | Layer::ChannelCoupling { .. }
                    | Layer::ChannelNorm { .. }
                    | Layer::Inv1x1 { .. }
            ) {
                assert!(ld[0].abs() > 1e-2, "layer {k}: the test wants a log-det far from zero, got {}", ld[0]);
            }
        }
    }
}

#[test]
fn conv_flow_logdet_matches_finite_difference_jacobian() {
    for flow in cases() {
        let p = flow.params_f64();
        let q = flow.config.q();
        let y = random_rows(q, 99);
        let (_, ld) = forward(&flow, &p, &y, 1);
        let f = |y: &[f64]| forward(&flow, &p, y, 1).0;
        let fd = log_abs_det(fd_jacobian(&f, &y), q);
        assert!(
            (ld[0] - fd).abs() < 1e-5 * (1.0 + fd.abs()),
            "{:?}: flow log-det {} vs finite differences {fd}",
            flow.config.conv,
            ld[0]
        );
        assert!(ld[0].abs() > 0.1, "the test wants a log-det far from zero, got {}", ld[0]);
    }
}

#[test]
fn conv_inverse_undoes_forward_per_layer_and_whole() {
    for flow in cases() {
        let p = flow.params_f64();
        let (q, n) = (flow.config.q(), 3);
        let y = random_rows(n * q, 5);
        for layer in &flow.layers {
            let u = step_forward(&flow, layer, &p, &y, &mut vec![0.0; n], n);
            let back = step_inverse(&flow, layer, &p, &u, n);
            let err = y.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-10, "{layer:?}: round trip error {err}");
        }
        let (u, _) = forward(&flow, &p, &y, n);
        let back = inverse(&flow, &p, &u, n);
        let err = y.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-9, "whole-flow round trip error {err}");
    }
}

#[test]
fn direct_convolution_matches_hand_computed_values() {
    use crate::model::Conv2d;
    // One 3×3 kernel of ones over a 3×3 image of 1..9, bias 0.5: each output is its
    // neighbourhood's sum (zero padding) plus 0.5.
    let mut params = vec![1.0; 9];
    params.push(0.5);
    let conv = Conv2d { w: 0, b: 9, c_in: 1, c_out: 1, k: 3 };
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let out = conv2d(&params, &conv, &x, 1, 3, 3);
    let want = [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0].map(|v| v + 0.5);
    assert_eq!(out, want.to_vec());
    // Two in, one out, 1×1: a per-pixel weighted sum.
    let params = vec![2.0, -1.0, 0.0];
    let conv = Conv2d { w: 0, b: 2, c_in: 2, c_out: 1, k: 1 };
    assert_eq!(conv2d(&params, &conv, &[1.0, 2.0, 3.0, 5.0], 1, 1, 2), vec![-1.0, -1.0]);
}

#[test]
fn data_initialisation_standardises_every_actnorm_input() {
    let mut flow = conv_flow(1, 4, 1, 2, 2, ChannelPermute::Conv1x1, 5);
    let (q, n) = (flow.config.q(), 16);
    let y = random_rows(n * q, 3).iter().map(|v| 3.0 * v + 1.0).collect::<Vec<_>>();
    let mut p = flow.params_f64();
    init_actnorms(&flow, &mut p, &y, n);
    flow.params = p.iter().map(|&v| v as f32).collect();
    // After initialisation, the first ActNorm's output has zero mean and unit population
    // variance per channel over (n, i, j).
    let Layer::ChannelNorm { at, .. } = flow.layers[0].clone() else { panic!("starts with an ActNorm") };
    let u = step_forward(&flow, &flow.layers[0], &p, &y, &mut vec![0.0; n], n);
    for c in 0..at.c {
        let vals: Vec<f64> = (0..n)
            .flat_map(|s| (0..at.hw()).map(move |e| (s, e)))
            .map(|(s, e)| u[s * q + at.off + c * at.hw() + e])
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        assert!(mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-4, "channel {c}: mean {mean}, variance {var}");
    }
}

#[test]
fn convolution_gradients_match_central_differences() {
    use crate::model::Conv2d;
    for (c_in, c_out, k, h, w, n) in [(1, 2, 3, 3, 4, 2), (3, 1, 1, 2, 2, 1), (2, 3, 3, 1, 5, 1)] {
        let conv = Conv2d { w: 0, b: c_out * c_in * k * k, c_in, c_out, k };
        let np = conv.b + c_out;
        let params = random_rows(np, 1);
        let x = random_rows(n * c_in * h * w, 2);
        let dy = random_rows(n * c_out * h * w, 3);
        // L = Σ dy ⊙ conv(x): its gradients are conv2d_backward's.
        let loss = |p: &[f64], x: &[f64]| conv2d(p, &conv, x, n, h, w).iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>();
        let mut grads = vec![f64::NAN; np];
        let dx = conv2d_backward(&params, &conv, &x, &dy, n, h, w, &mut grads);
        let eps = 1e-6;
        for i in 0..np {
            let (mut pp, mut pm) = (params.clone(), params.clone());
            pp[i] += eps;
            pm[i] -= eps;
            let fd = (loss(&pp, &x) - loss(&pm, &x)) / (2.0 * eps);
            assert!((grads[i] - fd).abs() < 1e-6, "parameter {i}: {} vs {fd}", grads[i]);
        }
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += eps;
            xm[i] -= eps;
            let fd = (loss(&params, &xp) - loss(&params, &xm)) / (2.0 * eps);
            assert!((dx[i] - fd).abs() < 1e-6, "input {i}: {} vs {fd}", dx[i]);
        }
    }
}

#[test]
fn channel_actnorm_gradients_match_central_differences() {
    use super::channorm;
    use crate::model::Norm;
    let (n, c, hw) = (3, 2, 5);
    let norm = Norm { beta: 1, a: 4, c };
    let x = random_rows(n * c * hw, 4);
    let dout = random_rows(n * c * hw, 5);
    let dld = random_rows(n, 6);
    for relu in [false, true] {
        let params = random_rows(8, 7);
        let loss = |p: &[f64], x: &[f64]| {
            let u = channorm::forward(p, &norm, x, hw, relu);
            let ld = if relu { 0.0 } else { channorm::logdet(p, &norm, hw) * dld.iter().sum::<f64>() };
            u.iter().zip(&dout).map(|(a, b)| a * b).sum::<f64>() + ld
        };
        let out = channorm::forward(&params, &norm, &x, hw, relu);
        let mut grads = vec![0.0; 8];
        let dx = channorm::backward(&params, &norm, &out, &dout, (!relu).then_some(&dld[..]), hw, relu, &mut grads);
        let eps = 1e-6;
        for i in (norm.beta..norm.beta + c).chain(norm.a..norm.a + c) {
            let (mut pp, mut pm) = (params.clone(), params.clone());
            pp[i] += eps;
            pm[i] -= eps;
            let fd = (loss(&pp, &x) - loss(&pm, &x)) / (2.0 * eps);
            assert!((grads[i] - fd).abs() < 1e-6, "relu {relu}, parameter {i}: {} vs {fd}", grads[i]);
        }
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += eps;
            xm[i] -= eps;
            let fd = (loss(&params, &xp) - loss(&params, &xm)) / (2.0 * eps);
            assert!((dx[i] - fd).abs() < 1e-6, "relu {relu}, input {i}: {} vs {fd}", dx[i]);
        }
    }
}

#[test]
fn conv_coupling_gradients_match_central_differences() {
    use super::conv_coupling as cc;
    use crate::model::Split;
    for (split, c, h, w) in
        [(Split::Checkerboard(0), 2, 3, 3), (Split::Checkerboard(1), 1, 2, 4), (Split::Channels, 3, 2, 2)]
    {
        let (n, hw) = (2, h * w);
        let y = random_rows(n * c * hw, 11);
        let rm = random_rows(n * split.rm_channels(c) * hw, 12);
        let du = random_rows(y.len(), 13);
        let dld = random_rows(n, 14);
        let loss = |y: &[f64], rm: &[f64]| {
            let mut ld = vec![0.0; n];
            let u = cc::forward(split, c, w, y, rm, &mut ld);
            u.iter().zip(&du).map(|(a, b)| a * b).sum::<f64>() + ld.iter().zip(&dld).map(|(a, b)| a * b).sum::<f64>()
        };
        let (dy, drm) = cc::backward(split, c, w, &y, &rm, &du, &dld);
        let eps = 1e-6;
        for (what, v, g) in [("y", &y, &dy), ("rm", &rm, &drm)] {
            for i in 0..v.len() {
                let (mut p, mut m) = (v.clone(), v.clone());
                p[i] += eps;
                m[i] -= eps;
                let fd =
                    if what == "y" { loss(&p, &rm) - loss(&m, &rm) } else { loss(&y, &p) - loss(&y, &m) } / (2.0 * eps);
                assert!((g[i] - fd).abs() < 1e-6, "{split:?} d{what}[{i}]: {} vs {fd}", g[i]);
            }
        }
    }
}

#[test]
fn conv_flow_loss_gradients_match_central_differences() {
    use super::flow::loss_and_grad;
    for flow in cases().into_iter().step_by(2).chain([conv_flow(1, 4, 1, 1, 2, ChannelPermute::Conv1x1, 40)]) {
        let p = flow.params_f64();
        let (q, n) = (flow.config.q(), 2);
        let y = random_rows(n * q, 21);
        let (_, grads, dy) = loss_and_grad(&flow, &p, &y, n);
        let loss = |p: &[f64], y: &[f64]| loss_and_grad(&flow, p, y, n).0;
        let eps = 1e-6;
        let mut checked = 0;
        for t in &flow.tensors {
            for i in t.offset..t.offset + t.len() {
                let (mut pp, mut pm) = (p.clone(), p.clone());
                pp[i] += eps;
                pm[i] -= eps;
                let fd = (loss(&pp, &y) - loss(&pm, &y)) / (2.0 * eps);
                assert!(
                    (grads[i] - fd).abs() < 1e-5 * (1.0 + fd.abs()),
                    "{:?}: {} [{}]: {} vs {fd}",
                    flow.config.conv,
                    t.name,
                    i - t.offset,
                    grads[i]
                );
                checked += (fd.abs() > 1e-4) as usize;
            }
        }
        assert!(checked > flow.num_params() / 4, "most parameters should matter: {checked} of {}", flow.num_params());
        for i in 0..y.len() {
            let (mut yp, mut ym) = (y.clone(), y.clone());
            yp[i] += eps;
            ym[i] -= eps;
            let fd = (loss(&p, &yp) - loss(&p, &ym)) / (2.0 * eps);
            assert!((dy[i] - fd).abs() < 1e-5 * (1.0 + fd.abs()), "dy[{i}]: {} vs {fd}", dy[i]);
        }
    }
}
