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
        let f = cp.forward(gpu, &yb, &rmb, &ub, &ldb);
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
        let d = Coupling { n, q }.backward(gpu, &bufs[0], &bufs[1], &bufs[2], &bufs[3], &dxb, &drmb);
        submit(gpu, "coupling backward test", &[&d]);
        let (mut dx, mut drm) = (vec![0.0; n * q], vec![0.0; n * 2 * nb]);
        r::backward(&to_f64(&y), &to_f64(&rm), &to_f64(&du), &to_f64(&dld), &mut dx, &mut drm, n, q);
        assert_close("coupling dx", &read_back(gpu, &dxb, 0, n * q), &dx, 1e-5, 1e-5);
        assert_close("coupling drm", &read_back(gpu, &drmb, 0, n * 2 * nb), &drm, 1e-5, 1e-5);
        assert_eq!(drm[0], 0.0);
    }
}
