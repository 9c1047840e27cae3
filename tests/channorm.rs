//! channorm.wgsl against src/reference/channorm.rs (itself checked against central
//! differences): forward (with ReLU, or with the log-det), inverse, the per-channel data
//! initialisation including a constant channel, and backward; C = 1, 3, 5, H·W = 1, 4, 49,
//! 100 (off the 64-wide workgroups), batch 1, regions of longer rows, two models.

mod common;
use common::*;
use mflow::gpu::{read_back, storage_init, submit};
use mflow::kernels::channorm::ChanNorm;
use mflow::kernels::conv::Planes;
use mflow::model::Norm;
use mflow::reference::channorm as r;

#[test]
fn channel_actnorm_matches_its_twin() {
    let gpu = gpu();
    // (n, c, hw, relu, values before and after each sample's planes, models)
    for (ci, &(n, c, hw, relu, pad, models)) in [
        (1usize, 1usize, 4usize, false, (0usize, 0usize), 1usize),
        (3, 5, 49, true, (0, 0), 1),
        (2, 3, 1, false, (2, 1), 2),
        (7, 2, 100, false, (5, 3), 2),
        (4, 3, 9, true, (0, 0), 2),
        // More than two rounds of 64 pixels per sample in the per-channel reductions.
        (2, 2, 130, true, (1, 0), 1),
    ]
    .iter()
    .enumerate()
    {
        let seed = 100 * ci as u64;
        let norm = Norm { beta: 1, a: 1 + c.next_multiple_of(4), c };
        let ps = (norm.a + c + 3).next_multiple_of(4);
        let len = c * hw;
        let rs = pad.0 + len + pad.1;
        let ms = n * rs;
        let params = uniform(seed + 1, models * ps, 0.8);
        let mut x = uniform(seed + 2, models * ms, 2.0);
        // Channel 0 of model 0 constant: its std is 0, so init gives a = 0.
        for s in 0..n {
            x[s * rs + pad.0..s * rs + pad.0 + hw].fill(0.75);
        }
        let ld0 = uniform(seed + 3, models * n, 1.0);
        let dout = uniform(seed + 4, models * n * len, 1.0);
        let dld = uniform(seed + 5, models * n, 1.0);
        let (pb, xb, yb, ub, ldb, doutb, dldb, dxb, gb, ib) = (
            storage_init(gpu, "params", &params),
            storage_init(gpu, "x", &x),
            storage_init(gpu, "y", &vec![0f32; models * n * len]),
            storage_init(gpu, "x back", &vec![7f32; models * ms]),
            storage_init(gpu, "logdet", &ld0),
            storage_init(gpu, "dout", &dout),
            storage_init(gpu, "dld", &dld),
            storage_init(gpu, "dx", &vec![7f32; models * ms]),
            storage_init(gpu, "grads", &vec![f32::NAN; models * ps]),
            storage_init(gpu, "init params", &vec![0f32; models * ps]),
        );
        let op = ChanNorm { norm, n, hw, relu, ps };
        let xp = Planes { buf: &xb, off: pad.0, rs, ms };
        let yp = Planes { buf: &yb, off: 0, rs: len, ms: n * len };
        let mut ds = vec![op.forward(gpu, &pb, xp, yp, &ldb).models(models)];
        if !relu {
            ds.push(op.inverse(gpu, &pb, yp, Planes { buf: &ub, ..xp }).models(models));
        }
        ds.push(op.backward(gpu, &pb, yp, &doutb, &dldb, Planes { buf: &dxb, ..xp }, &gb).models(models));
        ds.push(op.init(gpu, &ib, xp).models(models));
        submit(gpu, "channorm test", &ds.iter().collect::<Vec<_>>());
        let (y, back, ld, dx, g, init) = (
            read_back::<f32>(gpu, &yb, 0, models * n * len),
            read_back::<f32>(gpu, &ub, 0, models * ms),
            read_back::<f32>(gpu, &ldb, 0, models * n),
            read_back::<f32>(gpu, &dxb, 0, models * ms),
            read_back::<f32>(gpu, &gb, 0, models * ps),
            read_back::<f32>(gpu, &ib, 0, models * ps),
        );
        for z in 0..models {
            let what = |t: &str| format!("case {ci} model {z}: {t}");
            let p64 = to_f64(&params[z * ps..(z + 1) * ps]);
            let x64: Vec<f64> =
                (0..n).flat_map(|s| to_f64(&x[z * ms + s * rs + pad.0..z * ms + s * rs + pad.0 + len])).collect();
            let want = r::forward(&p64, &norm, &x64, hw, relu);
            let zy = z * n * len..(z + 1) * n * len;
            assert_close(&what("forward"), &y[zy.clone()], &want, 1e-5, 1e-5);
            let want_ld: Vec<f64> =
                (0..n).map(|s| ld0[z * n + s] as f64 + if relu { 0.0 } else { r::logdet(&p64, &norm, hw) }).collect();
            assert_close(&what("logdet"), &ld[z * n..(z + 1) * n], &want_ld, 1e-4, 1e-5);
            let strip = |v: &[f32]| -> Vec<f32> {
                (0..n).flat_map(|s| v[z * ms + s * rs + pad.0..z * ms + s * rs + pad.0 + len].to_vec()).collect()
            };
            if !relu {
                assert_close(&what("inverse"), &strip(&back), &x64, 1e-4, 1e-4);
            }
            let mut grads = vec![0.0; ps];
            let dld64 = to_f64(&dld[z * n..(z + 1) * n]);
            let want_dx = r::backward(
                &p64,
                &norm,
                &to_f64(&y[zy.clone()]),
                &to_f64(&dout[zy]),
                (!relu).then_some(&dld64[..]),
                hw,
                relu,
                &mut grads,
            );
            assert_close(&what("dx"), &strip(&dx), &want_dx, 1e-5, 1e-5);
            for s in 0..n {
                assert!(
                    dx[z * ms + s * rs..z * ms + s * rs + pad.0].iter().all(|&v| v == 7.0),
                    "{}",
                    what("untouched")
                );
            }
            let mut want_init = vec![0.0; ps];
            r::init(&mut want_init, &norm, &x64, hw);
            for (t, off) in [("dβ", norm.beta), ("da", norm.a)] {
                let pr = off..off + c;
                assert_close(&what(t), &g[z * ps + pr.start..z * ps + pr.end], &grads[pr.clone()], 1e-4, 1e-4);
                assert_close(&what("init"), &init[z * ps + pr.start..z * ps + pr.end], &want_init[pr], 1e-5, 1e-4);
            }
            if z == 0 {
                assert_eq!(init[norm.a], 0.0, "a constant channel gets a = 0");
            }
        }
    }
}
