//! Whole-flow gradients on the GPU against the f64 reference, per parameter tensor.

mod common;
use common::*;
use mflow::data::synthetic::gauss;
use mflow::data::Split;
use mflow::gpu_flow::{GpuFlow, Mode};
use mflow::kernels::gemm::Variant;
use mflow::model::{Flow, FlowConfig};
use mflow::reference::flow::loss_and_grad;

fn check(d: usize, b: usize, hidden: usize, n: usize, variant: Variant) {
    check_mode(d, b, hidden, n, variant, Mode::TrainingUnfused);
}

fn check_mode(d: usize, b: usize, hidden: usize, n: usize, variant: Variant, mode: Mode) {
    check_on(d, b, hidden, &uniform(11, n * (d + b), 1.5), variant, mode);
}

/// `y` holds n rows of Q = d + b values.
fn check_on(d: usize, b: usize, hidden: usize, y: &[f32], variant: Variant, mode: Mode) {
    let gpu = gpu();
    let mut flow = Flow::new(FlowConfig { d, b, blocks: 3, depth: 2, hidden, seed: 5, conv: None }).unwrap();
    flow.randomize(40 + d as u64 + b as u64, 0.7);
    let q = flow.config.q();
    let n = y.len() / q;
    let g = GpuFlow::build(gpu, &flow, n, mode, variant);
    let fused = g.backward_dispatches().iter().any(|d| d.kernel == "fused_coupling_backward");
    assert_eq!(fused, mode == Mode::Training, "{mode:?} takes its own path");
    // Fused, every ActNorm rides on the coupling after it: no dispatch of its own.
    let actnorms =
        g.forward_dispatches(false).iter().chain(g.backward_dispatches()).any(|d| d.kernel.starts_with("actnorm"));
    assert_eq!(actnorms, mode != Mode::Training, "{mode:?}: ActNorm dispatches");
    let (loss, grads) = g.loss_and_grad(gpu, y);
    let (want_loss, want, _) = loss_and_grad(&flow, &flow.params_f64(), &to_f64(y), n);
    assert!((loss - want_loss).abs() < 1e-4 * (1.0 + want_loss.abs()), "loss {loss} vs {want_loss}");
    for t in &flow.tensors {
        let r = t.offset..t.offset + t.len();
        let err = rel_err(&grads[r.clone()], &want[r], 1e-3);
        assert!(err <= 1e-3, "Q={q} H={hidden} n={n} {variant:?} {mode:?}: {} relative error {err:e}", t.name);
    }
}

#[test]
fn gradients_match_reference_awkward_shapes() {
    for (d, b, hidden, n) in [(2, 0, 7, 1), (2, 1, 9, 5), (3, 2, 13, 33), (5, 0, 6, 70)] {
        check(d, b, hidden, n, Variant::Reg);
    }
}

#[test]
fn gradients_match_reference_vec4_and_tiled() {
    // Q = 8 and H = 16 send every GEMM, forward and backward, down the vec4 paths.
    for (d, b, hidden, n) in [(6, 2, 16, 12), (4, 4, 16, 64), (3, 2, 13, 9)] {
        check(d, b, hidden, n, Variant::Vec4);
        check(d, b, hidden, n, Variant::Tiled);
        check(d, b, hidden, n, Variant::TiledWide);
        check(d, b, hidden, n, Variant::Vec4Small);
    }
}

#[test]
fn gradients_match_reference_through_fused_couplings() {
    // Fused forward, fused data gradient and grouped weight gradients: odd Q, batch 1, rows
    // off the tile, B = 0, widths off 4 and off the 64-wide weight-gradient tile.
    for (d, b, hidden, n) in [(2, 0, 7, 1), (2, 1, 9, 5), (3, 2, 13, 33), (5, 0, 70, 70), (4, 4, 16, 64)] {
        check_mode(d, b, hidden, n, Variant::Vec4, Mode::Training);
    }
}

#[test]
fn gradients_match_reference_on_heavy_tailed_data() {
    // MODEL.md's x = u^3: values in the tens beside values near 0 (where its density peaks
    // without bound), the inputs of the ψ = 3 runs.
    for (d, hidden, n) in [(2, 16, 256), (3, 9, 33)] {
        let x = gauss(d, 3, n, 4, Split::Train).data;
        assert!(x.iter().any(|v| v.abs() > 10.0), "the draw has a heavy tail");
        check_on(d, 0, hidden, &x, Variant::Vec4, Mode::Training);
        check_on(d, 0, hidden, &x, Variant::Reg, Mode::TrainingUnfused);
    }
}
