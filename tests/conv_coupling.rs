//! conv_coupling.wgsl against src/reference/conv_coupling.rs (itself checked against central
//! differences): forward with the log-det, inverse and backward, for checkerboards of both
//! parities and channel splits of odd and even C; H = W = 2, 7×7, batch 1, regions of
//! longer rows, two models.

mod common;
use common::*;
use mflow::gpu::{read_back, storage_init, submit};
use mflow::kernels::conv::Planes;
use mflow::kernels::conv_coupling::ConvCoupling;
use mflow::model::Split;
use mflow::reference::conv_coupling as r;

#[test]
fn conv_couplings_match_their_twin() {
    let gpu = gpu();
    for (ci, &(split, c, h, w, n, pad, models)) in [
        (Split::Checkerboard(0), 1usize, 2usize, 2usize, 1usize, (0usize, 0usize), 1usize),
        (Split::Checkerboard(1), 3, 7, 7, 2, (4, 1), 2),
        (Split::Channels, 5, 2, 2, 3, (0, 2), 1),
        (Split::Channels, 4, 3, 5, 1, (3, 0), 2),
        (Split::Checkerboard(0), 2, 1, 5, 2, (0, 0), 1),
    ]
    .iter()
    .enumerate()
    {
        let seed = 1000 + 10 * ci as u64;
        let (hw, len) = (h * w, c * h * w);
        let rs = pad.0 + len + pad.1;
        let ms = n * rs;
        let c_rm = split.rm_channels(c);
        let rm_ms = n * c_rm * hw + 3;
        let y = uniform(seed, models * ms, 1.5);
        let rm = uniform(seed + 1, models * rm_ms, 1.2);
        let ld0 = uniform(seed + 2, models * n, 1.0);
        let du = uniform(seed + 3, models * ms, 1.0);
        let dld = uniform(seed + 4, models * n, 1.0);
        let (yb, rmb, ub, backb, ldb, dub, dldb, dyb, drmb) = (
            storage_init(gpu, "y", &y),
            storage_init(gpu, "rm", &rm),
            storage_init(gpu, "u", &vec![9f32; models * ms]),
            storage_init(gpu, "back", &vec![9f32; models * ms]),
            storage_init(gpu, "logdet", &ld0),
            storage_init(gpu, "du", &du),
            storage_init(gpu, "dld", &dld),
            storage_init(gpu, "dy", &vec![9f32; models * ms]),
            storage_init(gpu, "drm", &vec![f32::NAN; models * rm_ms]),
        );
        let op = ConvCoupling { split, n, c, h, w, rm_off: 1, rm_ms };
        let yp = Planes { buf: &yb, off: pad.0, rs, ms };
        let up = Planes { buf: &ub, ..yp };
        // A folded gather after the coupling (a squeeze or reversal): each model its own
        // permutation π of the compact region; the store goes through π⁻¹ and the backward
        // reads ∂L/∂u' through it.
        let perms: Vec<Vec<u32>> = (0..models)
            .map(|z| {
                use rand::seq::SliceRandom;
                let mut p: Vec<u32> = (0..len as u32).collect();
                p.shuffle(&mut rng(seed + 7 + z as u64));
                p
            })
            .collect();
        let inv: Vec<u32> = perms.iter().flat_map(|p| mflow::model::invert_perm(p)).collect();
        let cm = len * n;
        let du_c = uniform(seed + 8, models * cm, 1.0);
        let (invb, upb, ld2b, dupb, dy2b, drm2b) = (
            storage_init(gpu, "inv", &inv),
            storage_init(gpu, "u permuted", &vec![9f32; models * cm]),
            storage_init(gpu, "logdet 2", &ld0),
            storage_init(gpu, "du permuted", &du_c),
            storage_init(gpu, "dy 2", &vec![9f32; models * ms]),
            storage_init(gpu, "drm 2", &vec![f32::NAN; models * rm_ms]),
        );
        let compact = |b| Planes { buf: b, off: 0, rs: len, ms: cm };
        let ds = [
            op.forward(gpu, yp, &rmb, up, &ldb, None).models(models),
            op.inverse(gpu, up, &rmb, Planes { buf: &backb, ..yp }).models(models),
            op.backward(gpu, yp, &rmb, Planes { buf: &dub, ..yp }, &dldb, &dyb, &drmb, None).models(models),
            op.forward(gpu, yp, &rmb, compact(&upb), &ld2b, Some(&invb)).models(models),
            op.backward(gpu, yp, &rmb, compact(&dupb), &dldb, &dy2b, &drm2b, Some(&invb)).models(models),
        ];
        submit(gpu, "conv coupling test", &ds.iter().collect::<Vec<_>>());
        let (u_perm, dy2, drm2) = (
            read_back::<f32>(gpu, &upb, 0, models * cm),
            read_back::<f32>(gpu, &dy2b, 0, models * ms),
            read_back::<f32>(gpu, &drm2b, 0, models * rm_ms),
        );
        let (u, back, ld, dy, drm) = (
            read_back::<f32>(gpu, &ub, 0, models * ms),
            read_back::<f32>(gpu, &backb, 0, models * ms),
            read_back::<f32>(gpu, &ldb, 0, models * n),
            read_back::<f32>(gpu, &dyb, 0, models * ms),
            read_back::<f32>(gpu, &drmb, 0, models * rm_ms),
        );
        for z in 0..models {
            let what = |t: &str| format!("case {ci} ({split:?}, C = {c}, {h}×{w}) model {z}: {t}");
            let strip = |v: &[f32]| -> Vec<f32> {
                (0..n).flat_map(|s| v[z * ms + s * rs + pad.0..z * ms + s * rs + pad.0 + len].to_vec()).collect()
            };
            let y64 = to_f64(&strip(&y));
            let rm64 = to_f64(&rm[z * rm_ms + 1..z * rm_ms + 1 + n * c_rm * hw]);
            let mut want_ld = to_f64(&ld0[z * n..(z + 1) * n]);
            let want_u = r::forward(split, c, w, &y64, &rm64, &mut want_ld);
            assert_close(&what("u"), &strip(&u), &want_u, 1e-5, 1e-5);
            assert_close(&what("logdet"), &ld[z * n..(z + 1) * n], &want_ld, 1e-4, 1e-5);
            assert_close(&what("inverse"), &strip(&back), &y64, 1e-4, 1e-4);
            let (want_dy, want_drm) =
                r::backward(split, c, w, &y64, &rm64, &to_f64(&strip(&du)), &to_f64(&dld[z * n..(z + 1) * n]));
            assert_close(&what("dy"), &strip(&dy), &want_dy, 1e-5, 1e-5);
            assert_close(&what("drm"), &drm[z * rm_ms + 1..z * rm_ms + 1 + n * c_rm * hw], &want_drm, 1e-5, 1e-5);
            for s in 0..n {
                let row = z * ms + s * rs;
                assert!(u[row..row + pad.0].iter().all(|&v| v == 9.0), "{}", what("outside the region"));
            }
            // Folded: u'_i = u_{π(i)} per sample; the backward's du_e is du'_{π⁻¹(e)}.
            let want_perm: Vec<f64> = (0..n)
                .flat_map(|s| perms[z].iter().map(move |&pi| (s, pi as usize)))
                .map(|(s, pi)| want_u[s * len + pi])
                .collect();
            assert_close(&what("u through the folded gather"), &u_perm[z * cm..(z + 1) * cm], &want_perm, 1e-5, 1e-5);
            let inv_z = &inv[z * len..(z + 1) * len];
            let du_read: Vec<f64> = (0..n)
                .flat_map(|s| (0..len).map(move |e| (s, e)))
                .map(|(s, e)| du_c[z * cm + s * len + inv_z[e] as usize] as f64)
                .collect();
            let (want_dy2, want_drm2) =
                r::backward(split, c, w, &y64, &rm64, &du_read, &to_f64(&dld[z * n..(z + 1) * n]));
            assert_close(&what("dy through the folded gather"), &strip(&dy2), &want_dy2, 1e-5, 1e-5);
            assert_close(
                &what("drm through the folded gather"),
                &drm2[z * rm_ms + 1..z * rm_ms + 1 + n * c_rm * hw],
                &want_drm2,
                1e-5,
                1e-5,
            );
        }
    }
}
