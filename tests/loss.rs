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

#[test]
fn loss_backward_and_accumulate_match_reference() {
    let gpu = gpu();
    for (n, q) in [(1, 2), (3, 3), (65, 5), (130, 9)] {
        let u = uniform(q as u64 + 3, n * q, 2.0);
        let (ub, dub, dldb) = (storage_init(gpu, "u", &u), storage(gpu, "du", n * q), storage(gpu, "dld", n));
        let logp = uniform(n as u64 + 4, n, 3.0);
        let (lpb, mb) = (storage_init(gpu, "logp", &logp), storage_init(gpu, "metrics", &[1.0f32, 2.0, 0.0, 0.0]));
        let b = loss::backward(gpu, n, q, &ub, &dub, &dldb);
        let a = loss::accumulate(gpu, n, &lpb, &mb);
        submit(gpu, "loss backward test", &[&b, &a, &a]);
        let (mut du, mut dld) = (vec![0.0; n * q], vec![0.0; n]);
        r::backward(&to_f64(&u), &mut du, &mut dld, n, q);
        assert_close("du", &read_back(gpu, &dub, 0, n * q), &du, 1e-6, 1e-6);
        assert_close("dld", &read_back(gpu, &dldb, 0, n), &dld, 1e-7, 1e-6);
        let l = -logp.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        assert_close("metrics", &read_back(gpu, &mb, 0, 4), &[1.0 + 2.0 * l, 4.0, 0.0, 0.0], 1e-5, 1e-5);
    }
    // A non-finite loss is counted, not summed.
    let (lpb, mb) = (storage_init(gpu, "logp", &[1.0f32, f32::NAN]), storage(gpu, "metrics", 4));
    let a = loss::accumulate(gpu, 2, &lpb, &mb);
    submit(gpu, "loss nan test", &[&a]);
    assert_eq!(read_back::<f32>(gpu, &mb, 0, 4), vec![0.0, 1.0, 1.0, 0.0]);
}
