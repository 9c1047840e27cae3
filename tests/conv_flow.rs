//! The whole conv flow (CONV.md) on the GPU against its f64 twin: u, log-det and log p_T of
//! the forward, the inverse, the data initialisation, and the loss gradients of every
//! tensor; for one- and two-scale flows with their dense head, ε channels and flat ε.

mod common;
use common::*;
use mflow::gpu_flow::{GpuFlow, Mode};
use mflow::model::{ChannelPermute, ConvArch, Flow, FlowConfig};
use mflow::reference::flow as rf;

/// Odd seeds take Glow's 1×1 convolution between channel couplings, even ones the reversal.
fn conv_flow(c: usize, h: usize, w: usize, k_eps: usize, b: usize, scales: usize, seed: u64) -> Flow {
    let arch = ConvArch {
        channels: c,
        height: h,
        width: w,
        aux_channels: k_eps,
        scales,
        hidden: 6,
        depth: 2,
        permute: if seed % 2 == 1 { ChannelPermute::Conv1x1 } else { ChannelPermute::Reverse },
    };
    let cfg = FlowConfig { d: c * h * w, b, blocks: 2, depth: 2, hidden: 12, seed, conv: Some(arch) };
    let mut f = Flow::new(cfg).unwrap();
    f.randomize(seed + 1, 0.6);
    f
}

/// (C, H, W, ε channels, flat ε, scales, batch)
const CASES: [(usize, usize, usize, usize, usize, usize, usize); 4] =
    [(1, 4, 4, 0, 0, 2, 3), (2, 4, 6, 1, 2, 2, 1), (3, 2, 2, 0, 1, 1, 5), (1, 8, 8, 1, 0, 3, 2)];

#[test]
fn conv_flow_forward_and_inverse_match_the_twin() {
    let gpu = gpu();
    for (i, &(c, h, w, ke, b, k, n)) in CASES.iter().enumerate().flat_map(|(i, c)| [(2 * i, c), (2 * i + 1, c)]) {
        let flow = conv_flow(c, h, w, ke, b, k, 10 + i as u64);
        let q = flow.config.q();
        let y = uniform(i as u64, n * q, 1.5);
        for mode in [Mode::Inference, Mode::Training] {
            let g = GpuFlow::build(gpu, &flow, n, mode, mflow::kernels::gemm::Variant::Reg);
            // Squeezes and reversals ride on the couplings' stores and gradient loads.
            let gathers = g
                .forward_dispatches(false)
                .iter()
                .chain(g.backward_dispatches())
                .filter(|d| d.kernel == "permute_gather")
                .count();
            assert_eq!(gathers, 0, "folded gathers dispatch nothing forward or backward");
            let out = g.forward(gpu, &y);
            let p = flow.params_f64();
            let (u, ld) = rf::forward(&flow, &p, &to_f64(&y), n);
            let what = |t: &str| {
                format!(
                    "case {i} ({c}×{h}×{w}, K_ε {ke}, B {b}, {k} scales, {:?}) {mode:?}: {t}",
                    flow.config.conv.as_ref().unwrap().permute
                )
            };
            assert_close(&what("u"), &out.u, &u, 1e-4, 1e-4);
            assert_close(&what("logdet"), &out.logdet, &ld, 1e-4, 1e-4);
            assert_close(&what("log p"), &out.logp, &rf::log_prob(&flow, &p, &to_f64(&y), n), 1e-4, 1e-4);
            assert!(ld.iter().all(|v| v.abs() > 0.2), "the test wants log-dets far from zero: {ld:?}");
            let back = g.inverse(gpu, &out.u);
            assert_close(&what("inverse(forward(y))"), &back, &to_f64(&y), 1e-4, 1e-4);
        }
    }
}

#[test]
fn conv_flow_initialisation_and_gradients_match_the_twin() {
    let gpu = gpu();
    for (i, &(c, h, w, ke, b, k, n)) in CASES.iter().enumerate().flat_map(|(i, c)| [(2 * i, c), (2 * i + 1, c)]) {
        let flow = conv_flow(c, h, w, ke, b, k, 20 + i as u64);
        let q = flow.config.q();
        let y = uniform(50 + i as u64, n.max(2) * q, 1.5);
        let n = n.max(2);
        let what = |t: &str| format!("case {i} ({c}×{h}×{w}, K_ε {ke}, B {b}, {k} scales): {t}");
        // Data initialisation in forward order, then the forward with it.
        let g = GpuFlow::build(gpu, &flow, n, Mode::Training, mflow::kernels::gemm::Variant::Reg);
        let out = g.init_and_forward(gpu, &y);
        let mut p = flow.params_f64();
        rf::init_actnorms(&flow, &mut p, &to_f64(&y), n);
        assert_close(&what("initialised parameters"), &g.download_params(gpu), &p, 1e-4, 1e-3);
        assert_close(&what("log p after init"), &out.logp, &rf::log_prob(&flow, &p, &to_f64(&y), n), 1e-3, 1e-4);
        // Gradients of the loss, per tensor.
        let g = GpuFlow::build(gpu, &flow, n, Mode::Training, mflow::kernels::gemm::Variant::Reg);
        let (loss, grads) = g.loss_and_grad(gpu, &y);
        let p = flow.params_f64();
        let (want_loss, want, _) = rf::loss_and_grad(&flow, &p, &to_f64(&y), n);
        assert!((loss - want_loss).abs() < 1e-4 * (1.0 + want_loss.abs()), "{}: {loss} vs {want_loss}", what("loss"));
        // Per tensor, relative to its largest gradient: f32 sums over n·h·w terms.
        for t in &flow.tensors {
            let r = t.offset..t.offset + t.len();
            let e = rel_err(&grads[r.clone()], &want[r], 1e-2);
            assert!(e < 2e-3, "{}: relative error {e}", what(&format!("∂L/∂{}", t.name)));
        }
    }
}

#[test]
fn eps_channels_alone_are_marginalised_with_the_samples_asked_for() {
    // ε channels without flat ε (K_ε = 1, B = 0) are auxiliary dimensions too: the marginal
    // is an S-sample estimate, not the exact B = 0 path (which once evaluated such a model
    // at S = 1 and called the figure exact).
    let gpu = gpu();
    let flow = conv_flow(1, 4, 4, 1, 0, 2, 4);
    assert!(flow.config.b == 0 && !flow.config.exact());
    let x = mflow::data::Table::new(16, uniform(3, 6 * 16, 1.0));
    let estimate = |s: usize| {
        let ev = mflow::eval::Evaluator::new(gpu, &flow, s, kernels()).unwrap();
        assert_eq!(ev.s, s, "the S asked for");
        ev.upload_params(gpu, &flow.params);
        ev.log_likelihood(gpu, &x, 0xD0).unwrap()
    };
    let (one, many) = (estimate(1), estimate(64));
    assert!(one.iter().zip(&many).all(|(a, b)| a.is_finite() && b.is_finite() && a != b), "{one:?} {many:?}");
    // Jensen: the mean of log-weights (S = 1, on average) lies below the log of their mean.
    assert!(many.iter().sum::<f64>() > one.iter().sum::<f64>(), "{one:?} {many:?}");
}
