//! loss.wgsl against src/reference/loss.rs.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::loss;
use mflow::reference::loss as r;

#[test]
fn log_prob_matches_reference() {
    let gpu = gpu();
    for (n, q) in [(1, 2), (3, 3), (65, 5), (130, 9), (2, 788)] {
        let u = uniform(q as u64, n * q, 2.0);
        let ld = uniform(n as u64, n, 5.0);
        let (ub, lb, pb) = (storage_init(gpu, "u", &u), storage_init(gpu, "ld", &ld), storage(gpu, "logp", n));
        let d = loss::log_prob(gpu, n, q, &ub, &lb, &pb);
        submit(gpu, "loss test", &[&d]);
        let mut want = vec![0.0; n];
        r::log_prob(&to_f64(&u), &to_f64(&ld), &mut want, n, q);
        assert_close("log_prob", &read_back(gpu, &pb, 0, n), &want, 1e-4, 1e-5);
    }
}
