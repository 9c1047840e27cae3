//! rng.wgsl: bit-level agreement of Philox with its twin (through the normals it makes) and
//! the statistics of the Gaussian generator.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::optim::StepState;
use mflow::kernels::rng::{self, stream};
use mflow::reference::rng as r;

fn normals(count: usize, seed: u64, t: u32, strm: u32, temperature: f32) -> Vec<f32> {
    let gpu = gpu();
    let (out, step) = (storage(gpu, "out", count), storage_init(gpu, "step", &[StepState::new(t, seed, 0.0)]));
    let d = rng::normal_fill(gpu, count, strm, temperature, &step, &out);
    submit(gpu, "normal_fill test", &[&d]);
    read_back(gpu, &out, 0, count)
}

#[test]
fn normals_match_twin() {
    let got = normals(1001, 0xDEAD_BEEF_0000_0007, 3, stream::SAMPLE, 1.0);
    let want: Vec<f64> = (0..1001).map(|i| r::normal_at(0xDEAD_BEEF_0000_0007, 3, stream::SAMPLE, i)).collect();
    assert_close("normals", &got, &want, 2e-5, 1e-5);
    let hot = normals(10, 1, 1, stream::SAMPLE, 0.5);
    let cold: Vec<f64> = (0..10).map(|i| 0.5 * r::normal_at(1, 1, stream::SAMPLE, i)).collect();
    assert_close("temperature", &hot, &cold, 2e-5, 1e-5);
}

#[test]
fn gaussian_statistics() {
    let n = 200_000;
    let z: Vec<f64> = normals(n, 42, 1, stream::TRAIN_EPS, 1.0).iter().map(|&v| v as f64).collect();
    let mean = z.iter().sum::<f64>() / n as f64;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let lag1 = z.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum::<f64>() / ((n - 1) as f64 * var);
    let kurt = z.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / (n as f64 * var * var);
    // 5σ bounds for n = 2e5: mean ±0.011, variance ±0.016, correlation ±0.011, kurtosis ±0.05.
    assert!(mean.abs() < 0.011, "mean {mean}");
    assert!((var - 1.0).abs() < 0.016, "variance {var}");
    assert!(lag1.abs() < 0.011, "correlation of neighbours {lag1}");
    assert!((kurt - 3.0).abs() < 0.06, "kurtosis {kurt}");
    let same = normals(100, 42, 1, stream::TRAIN_EPS, 1.0);
    assert_eq!(same, normals(100, 42, 1, stream::TRAIN_EPS, 1.0), "same seed repeats");
    assert_ne!(same, normals(100, 43, 1, stream::TRAIN_EPS, 1.0), "another seed differs");
    assert_ne!(same, normals(100, 42, 2, stream::TRAIN_EPS, 1.0), "another step differs");
    assert_ne!(same, normals(100, 42, 1, stream::EVAL_EPS, 1.0), "another stream differs");
}

#[test]
fn assemble_matches_twin() {
    let gpu = gpu();
    for (points, d, q, repeat) in [(1, 2, 2, 1), (5, 2, 4, 3), (33, 3, 8, 1)] {
        let n = points * repeat;
        let x = uniform(points as u64, points * d, 2.0);
        let (xb, yb, step) = (
            storage_init(gpu, "x", &x),
            storage(gpu, "y", n * q),
            storage_init(gpu, "step", &[StepState::new(9, 77, 0.0)]),
        );
        let a = rng::assemble(gpu, n, d, q, repeat, stream::EVAL_EPS, &step, &xb, &yb);
        submit(gpu, "assemble test", &[&a]);
        let mut want = vec![0.0; n * q];
        r::assemble(77, 9, stream::EVAL_EPS, &to_f64(&x), &mut want, n, d, q, repeat);
        assert_close("assemble", &read_back(gpu, &yb, 0, n * q), &want, 2e-5, 1e-5);
    }
}
