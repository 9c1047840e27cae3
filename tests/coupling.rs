//! coupling.wgsl against src/reference/coupling.rs, with large |r| to exercise the bound.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::coupling::Coupling;
use mflow::reference::coupling as r;

#[test]
fn coupling_forward_inverse_match_reference() {
    let gpu = gpu();
    for (n, q) in [(1, 2), (3, 3), (65, 5), (9, 9), (70, 64), (2, 33)] {
        let nb = q - q / 2;
        let y = uniform(q as u64, n * q, 2.0);
        let mut rm = uniform(n as u64 + 1, n * 2 * nb, 3.0);
        rm[0] = 40.0; // far past the bound: s must saturate at 1, not overflow
        if rm.len() > 1 {
            rm[1] = -40.0;
        }
        let ld0 = uniform(3, n, 1.0);
        let (yb, rmb, ub, ldb, yb2) = (
            storage_init(gpu, "y", &y),
            storage_init(gpu, "rm", &rm),
            storage(gpu, "u", n * q),
            storage_init(gpu, "ld", &ld0),
            storage(gpu, "y2", n * q),
        );
        let cp = Coupling { n, q };
        let f = cp.forward(gpu, &yb, &rmb, &ub, &ldb, None);
        let i = cp.inverse(gpu, &ub, &rmb, &yb2);
        submit(gpu, "coupling test", &[&f, &i]);
        let mut u = vec![0.0; n * q];
        let mut ld = to_f64(&ld0);
        r::forward(&to_f64(&y), &to_f64(&rm), &mut u, &mut ld, n, q);
        assert_close("coupling u", &read_back(gpu, &ub, 0, n * q), &u, 1e-5, 1e-5);
        assert_close("coupling logdet", &read_back(gpu, &ldb, 0, n), &ld, 1e-5, 1e-5);
        let mut y2 = vec![0.0; n * q];
        r::inverse(&u, &to_f64(&rm), &mut y2, n, q);
        assert_close("coupling inverse", &read_back(gpu, &yb2, 0, n * q), &y2, 1e-5, 1e-5);
        assert_close("coupling inverse recovers y", &read_back(gpu, &yb2, 0, n * q), &to_f64(&y), 1e-5, 1e-5);
    }
}

#[test]
fn coupling_backward_matches_reference() {
    let gpu = gpu();
    for (n, q) in [(1, 2), (3, 3), (65, 5), (9, 9), (2, 33)] {
        let nb = q - q / 2;
        let y = uniform(q as u64 + 50, n * q, 2.0);
        let mut rm = uniform(n as u64 + 51, n * 2 * nb, 3.0);
        rm[0] = 40.0; // outside the clamp: zero gradient
        let du = uniform(52, n * q, 1.0);
        let dld = uniform(53, n, 1.0);
        let bufs = [
            storage_init(gpu, "y", &y),
            storage_init(gpu, "rm", &rm),
            storage_init(gpu, "du", &du),
            storage_init(gpu, "dld", &dld),
        ];
        let (dxb, drmb) = (storage(gpu, "dx", n * q), storage(gpu, "drm", n * 2 * nb));
        let d = Coupling { n, q }.backward(gpu, &bufs[0], &bufs[1], &bufs[2], &bufs[3], &dxb, &drmb, None);
        submit(gpu, "coupling backward test", &[&d]);
        let (mut dx, mut drm) = (vec![0.0; n * q], vec![0.0; n * 2 * nb]);
        r::backward(&to_f64(&y), &to_f64(&rm), &to_f64(&du), &to_f64(&dld), &mut dx, &mut drm, n, q);
        assert_close("coupling dx", &read_back(gpu, &dxb, 0, n * q), &dx, 1e-5, 1e-5);
        assert_close("coupling drm", &read_back(gpu, &drmb, 0, n * 2 * nb), &drm, 1e-5, 1e-5);
        assert_eq!(drm[0], 0.0);
    }
}

/// A random permutation of 0..q per model, and its inverse (the store/read map).
fn perm_and_inverse(q: usize, models: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
    use rand::seq::SliceRandom;
    let mut perm = Vec::new();
    for z in 0..models {
        let mut p: Vec<u32> = (0..q as u32).collect();
        p.shuffle(&mut rng(seed + z as u64));
        perm.extend(p);
    }
    let inv = perm.chunks(q).flat_map(mflow::model::invert_perm).collect();
    (perm, inv)
}

#[test]
fn coupling_with_the_next_permutation_folded_in_matches_reference() {
    // Forward storing through π⁻¹ equals coupling then gather; backward reading ∂L/∂u'
    // through π⁻¹ equals gather then backward; several models, each its own permutation.
    let gpu = gpu();
    for (n, q, models) in [(1, 2, 1), (3, 3, 2), (65, 5, 3), (9, 9, 1), (2, 33, 2)] {
        let nb = q - q / 2;
        let (perm, inv) = perm_and_inverse(q, models, 7 * q as u64);
        let y = uniform(q as u64 + 60, models * n * q, 2.0);
        let rm = uniform(n as u64 + 61, models * n * 2 * nb, 3.0);
        let du = uniform(62, models * n * q, 1.0);
        let dld = uniform(63, models * n, 1.0);
        let ld0 = uniform(64, models * n, 1.0);
        let (yb, rmb, dub, dldb, invb) = (
            storage_init(gpu, "y", &y),
            storage_init(gpu, "rm", &rm),
            storage_init(gpu, "du", &du),
            storage_init(gpu, "dld", &dld),
            storage_init(gpu, "inv", &inv),
        );
        let (ub, ldb, dxb, drmb) = (
            storage(gpu, "u", models * n * q),
            storage_init(gpu, "ld", &ld0),
            storage(gpu, "dx", models * n * q),
            storage(gpu, "drm", models * n * 2 * nb),
        );
        let cp = Coupling { n, q };
        let f = cp.forward(gpu, &yb, &rmb, &ub, &ldb, Some(&invb)).models(models);
        let b = cp.backward(gpu, &yb, &rmb, &dub, &dldb, &dxb, &drmb, Some(&invb)).models(models);
        submit(gpu, "folded coupling test", &[&f, &b]);
        let (u_gpu, ld_gpu) = (read_back(gpu, &ub, 0, models * n * q), read_back(gpu, &ldb, 0, models * n));
        let (dx_gpu, drm_gpu) =
            (read_back(gpu, &dxb, 0, models * n * q), read_back(gpu, &drmb, 0, models * n * 2 * nb));
        for z in 0..models {
            let (sq, sr) = (z * n * q..(z + 1) * n * q, z * n * 2 * nb..(z + 1) * n * 2 * nb);
            let (yz, rmz, duz) = (to_f64(&y[sq.clone()]), to_f64(&rm[sr.clone()]), to_f64(&du[sq.clone()]));
            let (pz, iz) = (&perm[z * q..(z + 1) * q], &inv[z * q..(z + 1) * q]);
            // coupling, then the permutation layer's gather (u'_j = u_{π(j)}), per the twins
            let mut plain = vec![0.0; n * q];
            let mut ld = to_f64(&ld0[z * n..(z + 1) * n]);
            r::forward(&yz, &rmz, &mut plain, &mut ld, n, q);
            let mut want = vec![0.0; n * q];
            mflow::reference::permute::gather(pz, &plain, &mut want, n, q);
            let what = format!("n={n} q={q} model {z}");
            assert_close(&format!("{what}: folded u"), &u_gpu[sq.clone()], &want, 1e-5, 1e-5);
            assert_close(&format!("{what}: logdet"), &ld_gpu[z * n..(z + 1) * n], &ld, 1e-5, 1e-5);
            let mut u2 = vec![0.0; n * q];
            let mut ld2 = to_f64(&ld0[z * n..(z + 1) * n]);
            r::forward_permuted(&yz, &rmz, iz, &mut u2, &mut ld2, n, q);
            assert_eq!(u2, want, "{what}: forward_permuted twin");
            // the permutation's backward (gather through π⁻¹), then the coupling's
            let mut du_plain = vec![0.0; n * q];
            mflow::reference::permute::gather(iz, &duz, &mut du_plain, n, q);
            let (mut dx, mut drm) = (vec![0.0; n * q], vec![0.0; n * 2 * nb]);
            r::backward(&yz, &rmz, &du_plain, &to_f64(&dld[z * n..(z + 1) * n]), &mut dx, &mut drm, n, q);
            assert_close(&format!("{what}: folded dx"), &dx_gpu[sq], &dx, 1e-5, 1e-5);
            assert_close(&format!("{what}: folded drm"), &drm_gpu[sr], &drm, 1e-5, 1e-5);
        }
    }
}
