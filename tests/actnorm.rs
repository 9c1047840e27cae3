//! actnorm.wgsl against src/reference/actnorm.rs: forward (with log-det), inverse, init.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::actnorm::ActNorm;
use mflow::reference::actnorm as r;

#[test]
fn actnorm_forward_inverse_match_reference() {
    let gpu = gpu();
    for (n, q) in [(1, 2), (3, 3), (65, 5), (130, 9), (7, 64)] {
        let (beta_off, a_off) = (1, 1 + q);
        let params = uniform(n as u64, 1 + 2 * q, 1.0);
        let y = uniform(q as u64, n * q, 3.0);
        let ld0 = uniform(5, n, 1.0);
        let (pb, yb, ub, ldb) = (
            storage_init(gpu, "p", &params),
            storage_init(gpu, "y", &y),
            storage(gpu, "u", n * q),
            storage_init(gpu, "ld", &ld0),
        );
        let yb2 = storage(gpu, "y2", n * q);
        let an = ActNorm { n, q, beta_off, a_off, ps: 0 };
        let f = an.forward(gpu, &pb, &yb, &ub, &ldb);
        let i = an.inverse(gpu, &pb, &ub, &yb2);
        submit(gpu, "actnorm test", &[&f, &i]);
        let p64 = to_f64(&params);
        let mut u = vec![0.0; n * q];
        let mut ld = to_f64(&ld0);
        r::forward(&p64, beta_off, a_off, &to_f64(&y), &mut u, &mut ld, n, q);
        assert_close("actnorm u", &read_back(gpu, &ub, 0, n * q), &u, 1e-5, 1e-5);
        assert_close("actnorm logdet (accumulated)", &read_back(gpu, &ldb, 0, n), &ld, 1e-5, 1e-5);
        let mut y2 = vec![0.0; n * q];
        r::inverse(&p64, beta_off, a_off, &u, &mut y2, n, q);
        assert_close("actnorm inverse", &read_back(gpu, &yb2, 0, n * q), &y2, 1e-5, 1e-5);
    }
}

#[test]
fn actnorm_init_matches_reference_including_constant_columns() {
    let gpu = gpu();
    for (n, q) in [(1, 2), (5, 3), (100, 9), (257, 70)] {
        let mut y = uniform(q as u64 + 9, n * q, 2.0);
        for row in 0..n {
            y[row * q + 1] = 0.25; // a constant "pixel": its std is 0, so a = 0
            y[row * q] += 3.0;
        }
        let (beta_off, a_off) = (0, q);
        let pb = storage(gpu, "p", 2 * q);
        let yb = storage_init(gpu, "y", &y);
        let d = ActNorm { n, q, beta_off, a_off, ps: 0 }.init(gpu, &pb, &yb);
        submit(gpu, "actnorm init test", &[&d]);
        let mut want = vec![0.0; 2 * q];
        r::init(&mut want, beta_off, a_off, &to_f64(&y), n, q);
        let got = read_back::<f32>(gpu, &pb, 0, 2 * q);
        assert_close(&format!("actnorm init n={n} q={q}"), &got, &want, 1e-5, 1e-4);
        assert_eq!(got[a_off + 1], 0.0, "constant column gets a = 0");
    }
}

#[test]
fn actnorm_backward_matches_reference() {
    let gpu = gpu();
    for (n, q) in [(1, 2), (3, 3), (65, 5), (130, 9)] {
        let (beta_off, a_off) = (2, 2 + q);
        let params = uniform(n as u64 + 7, 2 + 2 * q, 1.0);
        let y = uniform(q as u64 + 8, n * q, 3.0);
        let du = uniform(9, n * q, 1.0);
        let dld = uniform(10, n, 1.0);
        let bufs = [
            storage_init(gpu, "p", &params),
            storage_init(gpu, "y", &y),
            storage_init(gpu, "du", &du),
            storage_init(gpu, "dld", &dld),
        ];
        let (dxb, gb) = (storage(gpu, "dx", n * q), storage(gpu, "grads", 2 + 2 * q));
        let d =
            ActNorm { n, q, beta_off, a_off, ps: 0 }.backward(gpu, &bufs[0], &bufs[1], &bufs[2], &bufs[3], &dxb, &gb);
        submit(gpu, "actnorm backward test", &[&d]);
        let (mut dx, mut grads) = (vec![0.0; n * q], vec![0.0; 2 + 2 * q]);
        r::backward(
            &to_f64(&params),
            beta_off,
            a_off,
            &to_f64(&y),
            &to_f64(&du),
            &to_f64(&dld),
            &mut dx,
            &mut grads,
            n,
            q,
        );
        assert_close("actnorm dx", &read_back(gpu, &dxb, 0, n * q), &dx, 1e-5, 1e-5);
        assert_close("actnorm dβ, da", &read_back(gpu, &gb, 0, 2 + 2 * q), &grads, 1e-4, 1e-4);
    }
}
