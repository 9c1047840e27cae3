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
