//! permute.wgsl against src/reference/permute.rs, for the reverse and a shuffle.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::permute;
use mflow::model::invert_perm;
use mflow::reference::permute as r;
use rand::seq::SliceRandom;

#[test]
fn permute_gather_matches_reference_and_inverts() {
    let gpu = gpu();
    for (n, q) in [(1, 2), (3, 3), (65, 5), (9, 9), (5, 130)] {
        let rev: Vec<u32> = (0..q as u32).rev().collect();
        let mut shuf: Vec<u32> = (0..q as u32).collect();
        shuf.shuffle(&mut rng(q as u64));
        for idx in [rev, shuf] {
            let x = uniform(n as u64, n * q, 1.0);
            let (ib, iib, xb, ob, bb) = (
                storage_init(gpu, "idx", &idx),
                storage_init(gpu, "inv", &invert_perm(&idx)),
                storage_init(gpu, "x", &x),
                storage(gpu, "out", n * q),
                storage(gpu, "back", n * q),
            );
            let f = permute::gather(gpu, n, q, &ib, &xb, &ob);
            let i = permute::gather(gpu, n, q, &iib, &ob, &bb);
            submit(gpu, "permute test", &[&f, &i]);
            let mut want = vec![0.0; n * q];
            r::gather(&idx, &to_f64(&x), &mut want, n, q);
            assert_close("gather", &read_back(gpu, &ob, 0, n * q), &want, 0.0, 0.0);
            assert_close("gather then inverse", &read_back(gpu, &bb, 0, n * q), &to_f64(&x), 0.0, 0.0);
        }
    }
}
