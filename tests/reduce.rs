//! reduce.wgsl against src/reference/reduce.rs.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::reduce;
use mflow::reference::reduce as r;

#[test]
fn colsum_matches_reference() {
    let gpu = gpu();
    for (rows, cols) in [(1, 1), (3, 5), (65, 70), (256, 129)] {
        let (in_off, in_rs, out_off) = (3, cols + 2, 5);
        let x = uniform(rows as u64, in_off + rows * in_rs, 1.0);
        let (xb, ob) = (storage_init(gpu, "x", &x), storage(gpu, "out", out_off + cols));
        let d = reduce::colsum(gpu, rows, cols, &xb, in_off, in_rs, &ob, out_off);
        submit(gpu, "colsum test", &[&d]);
        let mut want = vec![0.0; out_off + cols];
        r::colsum(rows, cols, &to_f64(&x), in_off, in_rs, &mut want, out_off);
        assert_close("colsum", &read_back(gpu, &ob, 0, out_off + cols), &want, 1e-5, 1e-5);
    }
}
