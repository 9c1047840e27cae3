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

#[test]
fn copy_columns_matches_reference_between_rows_of_different_widths() {
    let gpu = gpu();
    // (rows, columns, source offset and row stride, destination offset and row stride, models)
    for (n, cols, (io, irs), (oo, ors), models) in
        [(1, 1, (0, 1), (0, 1), 1), (3, 5, (2, 9), (1, 6), 2), (70, 3, (4, 7), (0, 3), 1)]
    {
        let (ims, oms) = (n * irs + io, n * ors + oo);
        let x = uniform(cols as u64, models * ims, 1.0);
        let out0 = uniform(7, models * oms, 1.0);
        let (xb, ob) = (storage_init(gpu, "x", &x), storage_init(gpu, "out", &out0));
        let d = permute::copy_columns(gpu, n, cols, (&xb, io, irs, ims), (&ob, oo, ors, oms)).models(models);
        submit(gpu, "copy_columns test", &[&d]);
        let mut want = to_f64(&out0);
        for z in 0..models {
            r::copy_columns(n, cols, &to_f64(&x), (z * ims + io, irs), &mut want, (z * oms + oo, ors));
        }
        assert_close("copy_columns", &read_back(gpu, &ob, 0, models * oms), &want, 0.0, 0.0);
    }
}
