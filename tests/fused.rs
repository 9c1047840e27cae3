//! fused.wgsl against src/reference/fused.rs: whole couplings of random (non-identity)
//! conditioners on awkward shapes — odd Q, batch 1, row counts off the tile, depth 0 and 3,
//! B = 0 widths, several models in one dispatch — forward, log-det and inverse.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::fused::FusedCoupling;
use mflow::model::{Flow, FlowConfig, Layer};
use mflow::reference::fused as r;

fn first_coupling(flow: &Flow) -> Vec<mflow::model::Linear> {
    flow.layers
        .iter()
        .find_map(|l| match l {
            Layer::Coupling { linears, .. } => Some(linears.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn fused_coupling_matches_reference() {
    let gpu = gpu();
    // (n, d, b, depth, hidden, models)
    for (n, d, b, depth, hidden, models) in [
        (1, 2, 0, 2, 16, 1),
        (7, 3, 0, 2, 128, 1),
        (9, 2, 3, 1, 33, 1),
        (65, 5, 2, 3, 24, 2),
        (17, 2, 2, 0, 8, 3),
        (300, 4, 1, 2, 256, 1),
    ] {
        let flows: Vec<Flow> = (0..models)
            .map(|z| {
                let mut f =
                    Flow::new(FlowConfig { d, b, blocks: 1, depth, hidden, seed: 10 + z as u64, conv: None }).unwrap();
                f.randomize(20 + z as u64, 0.8);
                f
            })
            .collect();
        let q = d + b;
        let linears = first_coupling(&flows[0]);
        let ps = flows[0].params.len();
        assert!(FusedCoupling::fits(q, &linears, ps));
        let params: Vec<f32> = flows.iter().flat_map(|f| f.params.iter().copied()).collect();
        let y = uniform(n as u64 * 7 + q as u64, models * n * q, 2.0);
        let ld0 = uniform(5, models * n, 1.0);
        let (pb, yb, ub, ldb, yb2) = (
            storage_init(gpu, "params", &params),
            storage_init(gpu, "y", &y),
            storage(gpu, "u", models * n * q),
            storage_init(gpu, "ld", &ld0),
            storage(gpu, "y2", models * n * q),
        );
        // Both layouts of the vec4 linears: 4 rows per invocation and all 8 (ROWS8).
        let rows8 = n % 2 == 1;
        let fc = FusedCoupling { n, q, linears: &linears, ps, actnorm: None, rows8 };
        // Also the following permutation folded into the store (each model its own).
        let perm: Vec<u32> =
            (0..models).flat_map(|z| (0..q as u32).map(move |i| (i + z as u32 + 1) % q as u32)).collect();
        let inv: Vec<u32> = perm.chunks(q).flat_map(mflow::model::invert_perm).collect();
        let (invb, upb, ldpb) =
            (storage_init(gpu, "inv", &inv), storage(gpu, "u_perm", models * n * q), storage_init(gpu, "ld2", &ld0));
        let f = fc.forward(gpu, &pb, &yb, &ub, &ldb, None, None).models(models);
        let fp = fc.forward(gpu, &pb, &yb, &upb, &ldpb, Some(&invb), None).models(models);
        let i = fc.inverse(gpu, &pb, &ub, &yb2).models(models);
        submit(gpu, "fused test", &[&f, &fp, &i]);
        let up_gpu = read_back(gpu, &upb, 0, models * n * q);
        let (u_gpu, ld_gpu, y2_gpu) = (
            read_back(gpu, &ub, 0, models * n * q),
            read_back(gpu, &ldb, 0, models * n),
            read_back(gpu, &yb2, 0, models * n * q),
        );
        for (z, flow) in flows.iter().enumerate() {
            let what = format!("n={n} Q={q} depth={depth} H={hidden} model {z}");
            let p = flow.params_f64();
            let yz = to_f64(&y[z * n * q..(z + 1) * n * q]);
            let mut u = vec![0.0; n * q];
            let mut ld = to_f64(&ld0[z * n..(z + 1) * n]);
            r::forward(&p, &linears, &yz, &mut u, &mut ld, n, q);
            assert_close(&format!("{what}: u"), &u_gpu[z * n * q..(z + 1) * n * q], &u, 2e-5, 2e-5);
            assert_close(&format!("{what}: logdet"), &ld_gpu[z * n..(z + 1) * n], &ld, 2e-5, 2e-5);
            let mut want = vec![0.0; n * q];
            mflow::reference::permute::gather(&perm[z * q..(z + 1) * q], &u, &mut want, n, q);
            assert_close(&format!("{what}: u stored permuted"), &up_gpu[z * n * q..(z + 1) * n * q], &want, 2e-5, 2e-5);
            let mut y2 = vec![0.0; n * q];
            r::inverse(&p, &linears, &u, &mut y2, n, q);
            assert_close(&format!("{what}: inverse"), &y2_gpu[z * n * q..(z + 1) * n * q], &y2, 2e-5, 2e-5);
            assert_close(&format!("{what}: inverse recovers y"), &y2_gpu[z * n * q..(z + 1) * n * q], &yz, 1e-4, 1e-4);
        }
    }
}

#[test]
fn fitting_from_the_shape_agrees_with_every_layer() {
    for (d, b, depth, hidden) in
        [(2, 0, 2, 128), (2, 2, 0, 8), (3, 1, 3, 256), (2, 2, 2, 257), (784, 4, 2, 64), (500, 11, 1, 16)]
    {
        let cfg = FlowConfig { d, b, blocks: 2, depth, hidden, seed: 0, conv: None };
        let flow = Flow::new(cfg.clone()).unwrap();
        let per_layer = flow.layers.iter().all(|l| match l {
            Layer::Coupling { linears, .. } => FusedCoupling::fits(cfg.q(), linears, flow.params.len()),
            _ => true,
        });
        assert_eq!(FusedCoupling::fits_config(&cfg), per_layer, "{cfg:?}");
    }
}

#[test]
fn wide_or_deep_couplings_fall_back() {
    let wide = Flow::new(FlowConfig { d: 2, b: 2, blocks: 1, depth: 2, hidden: 257, seed: 0, conv: None }).unwrap();
    assert!(!FusedCoupling::fits(4, &first_coupling(&wide), wide.params.len()));
    let images = Flow::new(FlowConfig { d: 784, b: 4, blocks: 1, depth: 2, hidden: 64, seed: 0, conv: None }).unwrap();
    assert!(!FusedCoupling::fits(788, &first_coupling(&images), images.params.len()));
}

#[test]
fn evaluations_through_fused_couplings_equal_the_gemm_path() {
    use mflow::gpu_flow::Mode;
    let gpu = gpu();
    for (d, b, s) in [(2, 2, 3), (3, 0, 1), (5, 1, 4)] {
        let mut flow = Flow::new(FlowConfig { d, b, blocks: 3, depth: 2, hidden: 24, seed: 4, conv: None }).unwrap();
        flow.randomize(9, 0.6);
        let data = mflow::data::Table::new(d, uniform(11, 37 * d, 1.5));
        let ll = |mode| {
            let ev = mflow::eval::Evaluator::with_mode(gpu, &flow, s, 16, mode, kernels()).unwrap();
            ev.upload_params(gpu, &flow.params);
            ev.log_likelihood(gpu, &data, 3).unwrap()
        };
        let (fused, gemms) = (ll(Mode::Inference), ll(Mode::InferenceUnfused));
        let f32s: Vec<f32> = fused.iter().map(|&v| v as f32).collect();
        assert_close(&format!("D={d} B={b} S={s}: fused vs GEMMs"), &f32s, &gemms, 1e-4, 1e-4);
    }
}

/// Reads region k (n rows of `cols`) of model z out of a `Saved`-laid-out buffer.
fn region(buf: &[f32], s: &mflow::kernels::fused::Saved, z: usize, k: usize, n: usize, cols: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|row| (0..cols).map(move |c| (row, c)))
        .map(|(row, c)| buf[z * s.per_model + s.at(k, row, c)])
        .collect()
}

#[test]
fn fused_training_passes_match_reference() {
    use mflow::kernels::wgrad::Wgrad;
    let gpu = gpu();
    // (n, d, b, depth, hidden, models, permuted, actnorm): odd Q, batch 1, rows off the
    // tile, B = 0, depth 0, widths off 4 and past the 64-wide weight-gradient tile, several
    // models, the following permutation and the ActNorm in front folded in or not.
    for (n, d, b, depth, hidden, models, permuted, an) in [
        (1, 2, 0, 2, 16, 1, false, true),
        (7, 3, 0, 2, 9, 1, true, false),
        (9, 2, 3, 1, 33, 2, true, true),
        (65, 5, 2, 3, 70, 2, false, true),
        (17, 2, 2, 0, 8, 3, true, true),
        (130, 4, 1, 2, 256, 1, true, false),
        (40, 4, 0, 2, 16, 2, false, false),
    ] {
        let flows: Vec<Flow> = (0..models)
            .map(|z| {
                let mut f =
                    Flow::new(FlowConfig { d, b, blocks: 1, depth, hidden, seed: 30 + z as u64, conv: None }).unwrap();
                f.randomize(40 + z as u64, 0.8);
                f
            })
            .collect();
        let q = d + b;
        let linears = first_coupling(&flows[0]);
        let ps = flows[0].params.len();
        let actnorm = flows[0].layers.iter().find_map(|l| match l {
            Layer::ActNorm { beta, a, .. } => Some((*beta, *a)),
            _ => None,
        });
        let actnorm = actnorm.filter(|_| an);
        let fc = FusedCoupling { n, q, linears: &linears, ps, actnorm, rows8: an };
        let layout = fc.saved();
        let params: Vec<f32> = flows.iter().flat_map(|f| f.params.iter().copied()).collect();
        let y = uniform(n as u64 * 3 + q as u64, models * n * q, 2.0);
        let du = uniform(n as u64 + 99, models * n * q, 1.0);
        let dld = uniform(7, models * n, 1.0);
        let perm: Vec<u32> =
            (0..models).flat_map(|z| (0..q as u32).map(move |i| (i * 3 + z as u32 + 2) % q as u32)).collect();
        let perm: Vec<u32> = if q % 3 == 0 { (0..models).flat_map(|_| (0..q as u32).rev()).collect() } else { perm };
        let inv: Vec<u32> = perm.chunks(q).flat_map(mflow::model::invert_perm).collect();
        let (pb, yb, ub, ldb, svb, dub, dldb, dxb, dzb, gb, invb) = (
            storage_init(gpu, "params", &params),
            storage_init(gpu, "y", &y),
            storage(gpu, "u", models * n * q),
            storage(gpu, "ld", models * n),
            storage(gpu, "saved", models * layout.per_model),
            storage_init(gpu, "du", &du),
            storage_init(gpu, "dld", &dld),
            storage(gpu, "dx", models * n * q),
            storage(gpu, "dz", models * layout.per_model),
            storage(gpu, "grads", models * ps),
            storage_init(gpu, "inv", &inv),
        );
        let inv_opt = permuted.then_some(&invb);
        let f = fc.forward(gpu, &pb, &yb, &ub, &ldb, inv_opt, Some(&svb)).models(models);
        let bw = fc.backward(gpu, &pb, &svb, &dub, &dldb, &dxb, &dzb, inv_opt).models(models);
        let wg = Wgrad { n, linears: &linears, saved: &layout, ps, q, actnorm }
            .dispatch(gpu, &svb, &dzb, &gb, &pb, &dldb)
            .models(models);
        submit(gpu, "fused training test", &[&f, &bw, &wg]);
        let ld_gpu: Vec<f32> = read_back(gpu, &ldb, 0, models * n);
        let (sv, dx_gpu, dz_gpu, g_gpu) = (
            read_back(gpu, &svb, 0, models * layout.per_model),
            read_back(gpu, &dxb, 0, models * n * q),
            read_back(gpu, &dzb, 0, models * layout.per_model),
            read_back::<f32>(gpu, &gb, 0, models * ps),
        );
        for (z, flow) in flows.iter().enumerate() {
            let what = format!("n={n} Q={q} depth={depth} H={hidden} model {z} permuted={permuted} actnorm={an}");
            let p = flow.params_f64();
            let yz = to_f64(&y[z * n * q..(z + 1) * n * q]);
            let (mut u, mut ld) = (vec![0.0; n * q], vec![0.0; n]);
            let saved = r::forward_saved(&p, &linears, actnorm, &yz, &mut u, &mut ld, n, q);
            assert_close(&format!("{what}: logdet"), &ld_gpu[z * n..(z + 1) * n], &ld, 2e-5, 2e-5);
            for (k, want) in saved.iter().enumerate() {
                let cols = if k == 0 { q } else { linears[k - 1].fan_out };
                assert_close(
                    &format!("{what}: saved region {k}"),
                    &region(&sv, &layout, z, k, n, cols),
                    want,
                    2e-5,
                    2e-5,
                );
            }
            let zi = z * q..(z + 1) * q;
            let dldz = to_f64(&dld[z * n..(z + 1) * n]);
            let (dx, dz, g) = r::backward(
                &p,
                &linears,
                actnorm,
                &saved,
                &to_f64(&du[z * n * q..(z + 1) * n * q]),
                &to_f64(&dld[z * n..(z + 1) * n]),
                permuted.then_some(&inv[zi]),
                n,
                q,
            );
            assert_close(&format!("{what}: dx"), &dx_gpu[z * n * q..(z + 1) * n * q], &dx, 1e-4, 1e-4);
            for (k, want) in dz.iter().enumerate() {
                let got = region(&dz_gpu, &layout, z, k + 1, n, linears[k].fan_out);
                assert_close(&format!("{what}: dz{k}"), &got, want, 1e-4, 1e-4);
            }
            if actnorm.is_some() {
                let got = region(&dz_gpu, &layout, z, 0, n, q);
                assert_close(&format!("{what}: the coupling input's gradient"), &got, &g, 1e-4, 1e-4);
            }
            let mut grads = vec![0.0; ps];
            mflow::reference::wgrad::wgrad(&linears, &saved, &dz, &mut grads, n, q);
            let mut checked: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
            if let Some((beta, a)) = actnorm {
                mflow::reference::wgrad::actnorm(&p, (beta, a), &saved[0], &g, &dldz, &mut grads, n, q);
                checked.extend([("dβ", beta..beta + q), ("da", a..a + q)]);
            }
            for l in &linears {
                checked.extend([("dW", l.w..l.w + l.fan_in * l.fan_out), ("db", l.b..l.b + l.fan_out)]);
            }
            for (name, r) in checked {
                let got = &g_gpu[z * ps..(z + 1) * ps][r.clone()];
                assert_close(&format!("{what}: {name} at {}", r.start), got, &grads[r], 1e-4, 1e-4);
            }
        }
    }
}
