//! inv1x1.wgsl against src/reference/inv1x1.rs (itself checked, through the whole flow,
//! against finite-difference Jacobians and central differences): W and W⁻¹ from the LU
//! factors, the product each way with the log-det, the weight gradient and the factors'
//! gradient; C = 1, 3, 5, 8, h·w = 1 to 49, batch 1, regions of longer rows, two models.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::conv::Planes;
use mflow::kernels::inv1x1::{fixed, mats_len, Inv1x1};
use mflow::reference::inv1x1 as r;
use rand::seq::SliceRandom;

#[test]
fn inv1x1_matches_its_twin() {
    let gpu = gpu();
    for (ci, &(c, hw, n, pad, models)) in [
        (1usize, 4usize, 1usize, (0usize, 0usize), 1usize),
        (3, 49, 2, (2, 1), 2),
        (5, 1, 3, (0, 3), 1),
        (8, 9, 2, (1, 0), 2),
    ]
    .iter()
    .enumerate()
    {
        let seed = 500 + 10 * ci as u64;
        let lu_off = 3;
        let ps = (lu_off + c * c + 2).next_multiple_of(4);
        let mut params = uniform(seed, models * ps, 0.4);
        let perms: Vec<Vec<u32>> = (0..models)
            .map(|z| {
                let mut p: Vec<u32> = (0..c as u32).collect();
                p.shuffle(&mut rng(seed + z as u64));
                p
            })
            .collect();
        let signs: Vec<Vec<i8>> =
            (0..models).map(|z| (0..c).map(|i| if (i + z) % 3 == 1 { -1 } else { 1 }).collect()).collect();
        for z in 0..models {
            for i in 0..c {
                params[z * ps + lu_off + i * c + i] *= 0.5; // log_s moderate
            }
        }
        let len = c * hw;
        let rs = pad.0 + len + pad.1;
        let ms = n * rs;
        let x = uniform(seed + 1, models * ms, 1.5);
        let du = uniform(seed + 2, models * ms, 1.0);
        let ld0 = uniform(seed + 3, models * n, 1.0);
        let dld = uniform(seed + 4, models * n, 1.0);
        let pr: Vec<&[u32]> = perms.iter().map(|p| p.as_slice()).collect();
        let sr: Vec<&[i8]> = signs.iter().map(|s| s.as_slice()).collect();
        let (pb, fb, mb, xb, ub, bb, tb, dub, ldb, dldb, gb) = (
            storage_init(gpu, "params", &params),
            storage_init(gpu, "fixed", &fixed(&pr, &sr)),
            storage(gpu, "mats", models * mats_len(c)),
            storage_init(gpu, "x", &x),
            storage_init(gpu, "u", &vec![5f32; models * ms]),
            storage_init(gpu, "back", &vec![5f32; models * ms]),
            storage_init(gpu, "wt du", &vec![5f32; models * ms]),
            storage_init(gpu, "du", &du),
            storage_init(gpu, "logdet", &ld0),
            storage_init(gpu, "dld", &dld),
            storage_init(gpu, "grads", &vec![f32::NAN; models * ps]),
        );
        let op = Inv1x1 { n, c, hw, lu: lu_off, ps };
        let xp = Planes { buf: &xb, off: pad.0, rs, ms };
        let m = |d: mflow::gpu::Dispatch| d.models(models);
        let ds = [
            m(op.weights(gpu, &pb, &fb, &mb)),
            m(op.apply(gpu, &pb, &mb, xp, Planes { buf: &ub, ..xp }, &ldb, false, false)),
            m(op.apply(gpu, &pb, &mb, Planes { buf: &ub, ..xp }, Planes { buf: &bb, ..xp }, &ldb, true, false)),
            m(op.apply(gpu, &pb, &mb, Planes { buf: &dub, ..xp }, Planes { buf: &tb, ..xp }, &ldb, false, true)),
            m(op.wgrad(gpu, Planes { buf: &dub, ..xp }, xp, &mb)),
            m(op.lu_grad(gpu, &pb, &fb, &mb, &dldb, &gb)),
        ];
        submit(gpu, "inv1x1 test", &ds.iter().collect::<Vec<_>>());
        let (mats, u, back, wt, ld, g) = (
            read_back::<f32>(gpu, &mb, 0, models * mats_len(c)),
            read_back::<f32>(gpu, &ub, 0, models * ms),
            read_back::<f32>(gpu, &bb, 0, models * ms),
            read_back::<f32>(gpu, &tb, 0, models * ms),
            read_back::<f32>(gpu, &ldb, 0, models * n),
            read_back::<f32>(gpu, &gb, 0, models * ps),
        );
        for z in 0..models {
            let what = |t: &str| format!("case {ci} (C = {c}, hw = {hw}, n = {n}) model {z}: {t}");
            let f = to_f64(&params[z * ps + lu_off..z * ps + lu_off + c * c]);
            let mz = &mats[z * mats_len(c)..(z + 1) * mats_len(c)];
            let w = r::weights(&f, &perms[z], &signs[z], c);
            assert_close(&what("W"), &mz[..c * c], &w, 1e-5, 1e-5);
            assert_close(&what("W⁻¹"), &mz[c * c..2 * c * c], &r::inverse(&f, &perms[z], &signs[z], c), 1e-4, 1e-4);
            let strip = |v: &[f32]| -> Vec<f64> {
                to_f64(
                    &(0..n)
                        .flat_map(|s| v[z * ms + s * rs + pad.0..z * ms + s * rs + pad.0 + len].to_vec())
                        .collect::<Vec<_>>(),
                )
            };
            let (x64, du64) = (strip(&x), strip(&du));
            assert_close(
                &what("u = W y"),
                &strip(&u).iter().map(|&v| v as f32).collect::<Vec<_>>(),
                &r::apply(&w, false, &x64, c, hw),
                1e-4,
                1e-4,
            );
            assert_close(&what("W⁻¹ u"), &strip(&back).iter().map(|&v| v as f32).collect::<Vec<_>>(), &x64, 1e-4, 1e-4);
            assert_close(
                &what("Wᵀ du"),
                &strip(&wt).iter().map(|&v| v as f32).collect::<Vec<_>>(),
                &r::apply(&w, true, &du64, c, hw),
                1e-4,
                1e-4,
            );
            let want_ld: Vec<f64> = (0..n).map(|s| ld0[z * n + s] as f64 + r::logdet(&f, c, hw)).collect();
            assert_close(&what("logdet"), &ld[z * n..(z + 1) * n], &want_ld, 1e-4, 1e-5);
            let dw = r::weight_grad(&du64, &x64, c, hw);
            assert_close(&what("dW"), &mz[2 * c * c..], &dw, 1e-4, 1e-4);
            let dsum: f64 = dld[z * n..(z + 1) * n].iter().map(|&v| v as f64).sum();
            let want_g = r::lu_grad(&f, &perms[z], &signs[z], &dw, dsum, c, hw);
            assert_close(&what("d lu"), &g[z * ps + lu_off..z * ps + lu_off + c * c], &want_g, 1e-3, 1e-4);
        }
    }
}
