//! marginal.wgsl against src/reference/marginal.rs.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::marginal;
use mflow::reference::marginal as r;

#[test]
fn marginal_reduce_matches_reference() {
    let gpu = gpu();
    for (points, s, d, q) in [(1, 1, 2, 2), (3, 7, 2, 4), (65, 200, 3, 5)] {
        let y = uniform(s as u64, points * s * q, 2.0);
        // log p_T values spread over hundreds of nats: only a stable logsumexp survives.
        let logp: Vec<f32> = uniform(points as u64, points * s, 1.0).iter().map(|v| v * 300.0 - 500.0).collect();
        let (yb, lb, ob) = (storage_init(gpu, "y", &y), storage_init(gpu, "logp", &logp), storage(gpu, "out", points));
        let dsp = marginal::reduce(gpu, points, s, d, q, &yb, &lb, &ob);
        submit(gpu, "marginal test", &[&dsp]);
        let mut want = vec![0.0; points];
        r::reduce(points, s, d, q, &to_f64(&y), &to_f64(&logp), &mut want);
        assert_close("marginal", &read_back(gpu, &ob, 0, points), &want, 1e-4, 1e-5);
    }
}
