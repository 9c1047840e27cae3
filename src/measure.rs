//! Timing primitives shared by `bench` (which prints figures) and `tune` (which decides by
//! them): the median of trials, a dispatch list timed in one submit per trial, and a GEMM's
//! rate after checking it against the f64 reference. Nothing here decides or prints.

use crate::gpu::{read_back, storage_init, Dispatch, Gpu};
use crate::kernels::gemm::{Entry, Gemm, Op, Variant, View};
use crate::reference::gemm::{gemm as gemm_ref, Strided};
use anyhow::{ensure, Result};
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// The median (the upper one of an even count) of timings; NaN for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `dispatches` `reps` times in one submit per trial; returns the median seconds per rep.
pub fn time_dispatches(gpu: &Gpu, dispatches: &[&Dispatch], reps: usize, trials: usize) -> f64 {
    let run = |reps: usize| {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..reps {
                for d in dispatches {
                    d.record(&mut pass);
                }
            }
        }
        gpu.queue.submit([enc.finish()]);
        // A failed device is reported by the `check` after the timings.
        let _ = gpu.wait();
    };
    run(1); // warm-up: pipeline compilation, first-touch allocation
    median(
        (0..trials)
            .map(|_| {
                let t = Instant::now();
                run(reps);
                t.elapsed().as_secs_f64() / reps as f64
            })
            .collect(),
    )
}

/// GFLOP/s of one GEMM shape (m×k times k×n) with one variant; checked against the reference
/// on a few entries first.
pub fn gemm_gflops(
    gpu: &Gpu,
    variant: Variant,
    op: Op,
    m: usize,
    k: usize,
    n: usize,
    reps: usize,
    trials: usize,
) -> Result<(Entry, f64)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut fill = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let (a, b) = (fill(m * k), fill(k * n));
    let (ab, bb, cb) =
        (storage_init(gpu, "a", &a), storage_init(gpu, "b", &b), storage_init(gpu, "c", &vec![0f32; m * n]));
    let (av, bv) = match op {
        Op::Nn => (Strided::rows(0, k), Strided::rows(0, n)),
        Op::Nt => (Strided::rows(0, k), Strided::transposed(0, k)),
        Op::Tn => (Strided::transposed(0, m), Strided::rows(0, n)),
    };
    let g = Gemm {
        m,
        n,
        k,
        a: View { buf: &ab, off: av.off, rs: av.rs, cs: av.cs, ms: 0 },
        b: View { buf: &bb, off: bv.off, rs: bv.rs, cs: bv.cs, ms: 0 },
        bias: None,
        mask: None,
        c: View::rows(&cb, 0, n),
        relu: false,
        accumulate: false,
        colsum: None,
        models: 1,
    };
    let d = g.dispatch(gpu, variant, "bench gemm");
    crate::gpu::submit(gpu, "bench check", &[&d]);
    // Check a handful of rows against the f64 reference (the full product is slow on the CPU).
    let got = read_back::<f32>(gpu, &cb, 0, m * n);
    let a64: Vec<f64> = a.iter().map(|&x| x as f64).collect();
    let b64: Vec<f64> = b.iter().map(|&x| x as f64).collect();
    for &row in &[0, m / 2, m - 1] {
        let mut want = vec![0.0; n];
        let arow = Strided { off: av.off + row * av.rs, rs: 0, cs: av.cs };
        gemm_ref(&mut want, Strided::rows(0, n), &a64, arow, &b64, bv, None, None, 1, n, k, false, false);
        for j in 0..n {
            let (gv, wv) = (got[row * n + j] as f64, want[j]);
            ensure!(
                (gv - wv).abs() <= 1e-4 * (k as f64).sqrt() * (1.0 + wv.abs()),
                "gemm {variant:?} {op:?} {m}x{k}x{n}: C[{row},{j}] = {gv}, reference {wv}"
            );
        }
    }
    let secs = time_dispatches(gpu, &[&d], reps, trials);
    Ok((g.entry(variant), 2.0 * (m * n * k) as f64 / secs / 1e9))
}
