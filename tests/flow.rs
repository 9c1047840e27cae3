//! The whole flow on the GPU against the f64 reference: log p_T, u, log-det, inverse.

mod common;
use common::*;
use mflow::gpu_flow::{GpuFlow, Mode};
use mflow::kernels::gemm::{GemmChoice, Variant};
use mflow::model::{Flow, FlowConfig};
use mflow::reference::flow as rf;

fn random_flow(d: usize, b: usize, blocks: usize, hidden: usize, seed: u64) -> Flow {
    let mut f = Flow::new(FlowConfig { d, b, blocks, depth: 2, hidden, seed, conv: None }).unwrap();
    f.randomize(seed + 100, 0.8);
    f
}

/// The GEMM path in `variant`, then the fused couplings (with their folded ActNorms).
/// Fused in both layouts of its vec4 linears (4 rows per invocation, and 8: ROWS8).
fn check_flow(d: usize, b: usize, n: usize, hidden: usize, variant: Variant) {
    let gemms = GemmChoice::from(variant);
    check_flow_in(d, b, n, hidden, gemms, Mode::InferenceUnfused);
    check_flow_in(d, b, n, hidden, gemms, Mode::Inference);
    check_flow_in(d, b, n, hidden, GemmChoice { fused_rows8: true, ..gemms }, Mode::Inference);
}

fn check_flow_in(d: usize, b: usize, n: usize, hidden: usize, gemms: GemmChoice, mode: Mode) {
    let gpu = gpu();
    let flow = random_flow(d, b, 3, hidden, d as u64 * 10 + b as u64);
    let q = flow.config.q();
    let y = uniform(7, n * q, 2.0);
    let g = GpuFlow::build(gpu, &flow, n, mode, gemms);
    let fused = g.forward_dispatches(false).iter().any(|d| d.kernel == "fused_coupling_forward");
    assert_eq!(fused, mode == Mode::Inference, "{mode:?} takes its own path");
    let out = g.forward(gpu, &y);
    let p = flow.params_f64();
    let (u, ld) = rf::forward(&flow, &p, &to_f64(&y), n);
    let lp = rf::log_prob(&flow, &p, &to_f64(&y), n);
    assert_close("u", &out.u, &u, 1e-4, 1e-4);
    assert_close("logdet", &out.logdet, &ld, 1e-4, 1e-4);
    assert_close("log p_T", &out.logp, &lp, 1e-4, 1e-4);
    let ld_mag = ld.iter().map(|x| x.abs()).fold(0.0, f64::max);
    assert!(ld_mag > 0.5, "test parameters should move the log-det away from zero ({ld_mag})");
    // inverse(forward(y)) = y on the GPU
    let y2 = g.inverse(gpu, &out.u);
    assert_close("inverse(forward(y))", &y2, &to_f64(&y), 1e-4, 1e-4);
}

#[test]
fn flow_matches_reference_awkward_shapes() {
    for (d, b, n) in [(2, 0, 1), (2, 1, 5), (3, 2, 33), (5, 4, 70), (9, 0, 3)] {
        check_flow(d, b, n, 17, Variant::Reg);
    }
}

#[test]
fn flow_matches_reference_vec4_gemm() {
    // Q = 8 (h = 4) and H = 16: every conditioner GEMM takes gemm_nn4; Q = 5 falls back
    // for the first and last layers.
    for (d, b, n) in [(4, 4, 1), (6, 2, 37), (3, 2, 9)] {
        check_flow(d, b, n, 16, Variant::Vec4);
        check_flow(d, b, n, 16, Variant::Vec4Small);
    }
}

#[test]
fn flow_matches_reference_tiled_gemm() {
    for (d, b, n) in [(2, 0, 1), (3, 2, 65), (5, 4, 7), (4, 4, 130)] {
        check_flow(d, b, n, 17, Variant::Tiled);
        check_flow(d, b, n, 17, Variant::TiledWide);
    }
}

#[test]
fn data_dependent_actnorm_init_matches_reference() {
    let gpu = gpu();
    let (d, b, n) = (3, 2, 50);
    let mut flow = Flow::new(FlowConfig { d, b, blocks: 3, depth: 2, hidden: 16, seed: 4, conv: None }).unwrap();
    // Non-zero output layers so every ActNorm after the first sees a transformed input.
    flow.randomize(9, 0.5);
    flow.actnorm_initialized = false;
    let q = flow.config.q();
    let y: Vec<f32> =
        uniform(3, n * q, 1.0).iter().enumerate().map(|(i, v)| v * (1 + i % q) as f32 + i as f32 % 3.0).collect();
    let g = GpuFlow::new(gpu, &flow, n);
    let out = g.init_and_forward(gpu, &y);
    let mut p = flow.params_f64();
    rf::init_actnorms(&flow, &mut p, &to_f64(&y), n);
    assert_close("params after init", &g.download_params(gpu), &p, 1e-4, 1e-4);
    let lp = rf::log_prob(&flow, &p, &to_f64(&y), n);
    assert_close("log p_T after init", &out.logp, &lp, 1e-4, 1e-4);
    // The first ActNorm standardises its input: u after it has mean 0 and std 1 per dim.
    let (u0, _) = {
        let mut ld = vec![0.0; n];
        (mflow::reference::flow::layer_forward(&flow.layers[0], &p, &to_f64(&y), &mut ld, n, q), ld)
    };
    for i in 0..q {
        let m: f64 = (0..n).map(|r| u0[r * q + i]).sum::<f64>() / n as f64;
        let v: f64 = (0..n).map(|r| (u0[r * q + i] - m).powi(2)).sum::<f64>() / n as f64;
        assert!(m.abs() < 1e-6 && (v - 1.0).abs() < 1e-4, "dim {i}: mean {m}, var {v}");
    }
}
