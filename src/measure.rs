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

/// Seconds per rep of `dispatches` recorded `reps` times into one submit, waited for. A failed
/// device is reported by the caller's `Gpu::check` after its timings.
pub fn time_once(gpu: &Gpu, dispatches: &[&Dispatch], reps: usize) -> f64 {
    let t = Instant::now();
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
    let _ = gpu.wait();
    t.elapsed().as_secs_f64() / reps.max(1) as f64
}

/// Runs `dispatches` `reps` times in one submit per trial, after one warm-up run (pipeline
/// compilation, first-touch allocation); returns the median seconds per rep.
pub fn time_dispatches(gpu: &Gpu, dispatches: &[&Dispatch], reps: usize, trials: usize) -> f64 {
    time_once(gpu, dispatches, 1);
    median((0..trials).map(|_| time_once(gpu, dispatches, reps)).collect())
}

/// Times candidates against each other: each once, in order, dropping a candidate whose
/// first timing is at least twice the best so far (it cannot win, and on a slow adapter it
/// is the one that costs); then the survivors `trials − 1` more times each, alternating so
/// that drift hits all alike. Returns each candidate's median seconds (a dropped one's first
/// timing) and whether it was dropped. `time(i)` times candidate i once.
pub fn race(count: usize, trials: usize, mut time: impl FnMut(usize) -> Result<f64>) -> Result<Vec<(f64, bool)>> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); count];
    let mut best = f64::INFINITY;
    let mut dropped = vec![false; count];
    for i in 0..count {
        let t = time(i)?;
        dropped[i] = t >= 2.0 * best;
        best = best.min(t);
        times[i].push(t);
    }
    for _ in 1..trials {
        for i in 0..count {
            if !dropped[i] {
                let t = time(i)?;
                times[i].push(t);
            }
        }
    }
    Ok(times.into_iter().zip(dropped).map(|(t, d)| (median(t), d)).collect())
}

/// The fastest candidate of a `race`: the least median among those not dropped.
pub fn fastest(results: &[(f64, bool)]) -> usize {
    let mut best = 0;
    for (i, &(t, dropped)) in results.iter().enumerate() {
        if !dropped && (results[best].1 || t < results[best].0) {
            best = i;
        }
    }
    best
}

/// One GEMM shape (m×k times k×n) with one variant on random inputs, checked against the f64
/// reference on a few rows when made (that run is also the warm-up), ready to be timed.
pub struct GemmTrial {
    pub entry: Entry,
    dispatch: Dispatch,
    flops: f64,
    // Kept alive while `dispatch` is recorded.
    _buffers: [wgpu::Buffer; 3],
}

impl GemmTrial {
    pub fn new(gpu: &Gpu, variant: Variant, op: Op, m: usize, k: usize, n: usize) -> Result<Self> {
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
            bias_rows: false,
            mask: None,
            c: View::rows(&cb, 0, n),
            relu: false,
            accumulate: false,
            colsum: None,
            norm: None,
            models: 1,
        };
        let dispatch = g.dispatch(gpu, variant, "bench gemm");
        let entry = g.entry(variant);
        crate::gpu::submit(gpu, "bench check", &[&dispatch]);
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
        Ok(Self { entry, dispatch, flops: 2.0 * (m * n * k) as f64, _buffers: [ab, bb, cb] })
    }

    /// Seconds per product over one submit of `reps`.
    pub fn time(&self, gpu: &Gpu, reps: usize) -> f64 {
        time_once(gpu, &[&self.dispatch], reps)
    }

    pub fn gflops(&self, secs: f64) -> f64 {
        self.flops / secs / 1e9
    }
}

/// GFLOP/s of one GEMM shape (m×k times k×n) with one variant: checked against the reference
/// on a few rows, then the median of `trials` submits of `reps`.
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
    let t = GemmTrial::new(gpu, variant, op, m, k, n)?;
    let secs = median((0..trials).map(|_| t.time(gpu, reps)).collect());
    Ok((t.entry, t.gflops(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race drops a candidate whose first timing is at least twice the best so far, and
    /// times only the others again.
    #[test]
    fn the_race_drops_candidates_twice_as_slow_as_the_best_so_far() {
        let first = [1.0, 1.9, 2.0, 0.5, 3.0];
        let mut calls = vec![0; first.len()];
        let r = race(first.len(), 3, |i| {
            calls[i] += 1;
            Ok(first[i] * if calls[i] > 1 { 0.9 } else { 1.0 })
        })
        .unwrap();
        let dropped: Vec<bool> = r.iter().map(|x| x.1).collect();
        // 1.9 < 2 x 1.0 stays, 2.0 goes; 0.5 becomes the best; 3.0 >= 2 x 0.5 goes.
        assert_eq!(dropped, [false, false, true, false, true]);
        assert_eq!(calls, [3, 3, 1, 3, 1]);
        assert_eq!(fastest(&r), 3);
        assert_eq!(r[2].0, 2.0, "a dropped candidate keeps its one timing");
    }
}
