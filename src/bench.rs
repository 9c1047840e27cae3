//! `mflow bench`: each family is checked once against its reference, then timed; figures are
//! medians over several trials. Benchmarks print numbers; tests never time anything.

use crate::gpu::{read_back, Dispatch, Gpu};
use crate::kernels::gemm::{Op, Variant};
use crate::measure::{gemm_gflops, median};
use crate::tune::{self, Need, Tuning};
use anyhow::{ensure, Result};
use rand::{Rng, SeedableRng};
use std::time::Instant;

static RECORDS: std::sync::Mutex<Vec<serde_json::Value>> = std::sync::Mutex::new(Vec::new());

/// Keeps one figure (as printed) for `mflow bench all --json`.
pub fn record(v: serde_json::Value) {
    RECORDS.lock().unwrap_or_else(|p| p.into_inner()).push(v);
}

/// Every figure recorded so far, in order.
pub fn records() -> Vec<serde_json::Value> {
    RECORDS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The shapes training uses: MNIST (Q = 784, h = 392, H = 1024) at batch 256.
pub const GEMM_SHAPES: [(usize, usize, usize); 3] = [(256, 392, 1024), (256, 1024, 1024), (256, 1024, 784)];

pub fn bench_gemm(gpu: &Gpu, variants: &[Variant], quick: bool) -> Result<()> {
    println!("adapter: {}", gpu.describe());
    println!(
        "gemm GFLOP/s, median of {} trials (shape = M x K x N; Nn: X·W, Nt: dY·Wᵀ, Tn: Xᵀ·dY)",
        if quick { 3 } else { 7 }
    );
    let (reps, trials) = if quick { (2, 3) } else { (5, 7) };
    for &(m, k, n) in &GEMM_SHAPES {
        for (op, (mm, kk, nn)) in [(Op::Nn, (m, k, n)), (Op::Nt, (m, n, k)), (Op::Tn, (k, m, n))] {
            for &v in variants {
                let (entry, g) = gemm_gflops(gpu, v, op, mm, kk, nn, reps, trials)?;
                gpu.check()?;
                record(serde_json::json!({
                    "bench": "gemm", "m": mm, "k": kk, "n": nn, "op": format!("{op:?}"),
                    "entry": format!("{entry:?}"), "gflops": g,
                }));
                println!("{:<16} {:?}  {:<6} {:>6.2} GFLOP/s", format!("{mm}x{kk}x{nn}"), op, format!("{entry:?}"), g);
            }
        }
    }
    Ok(())
}

/// GPU time per kernel of `dispatches`, each in its own pass bracketed by timestamps
/// (the adapter must have TIMESTAMP_QUERY). Returns (kernel name, seconds), summed by name.
pub fn profile(gpu: &Gpu, dispatches: &[&Dispatch]) -> Option<Vec<(&'static str, f64)>> {
    if !gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) || dispatches.is_empty() {
        return None;
    }
    let count = (2 * dispatches.len()) as u32;
    let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("profile"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile resolve"),
        size: count as u64 * 8,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    for (i, d) in dispatches.iter().enumerate() {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(d.kernel),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &set,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            }),
        });
        d.record(&mut pass);
    }
    enc.resolve_query_set(&set, 0..count, &resolve, 0);
    gpu.queue.submit([enc.finish()]);
    let ticks: Vec<u64> = read_back(gpu, &resolve, 0, count as usize);
    let period = gpu.queue.get_timestamp_period() as f64 * 1e-9;
    let mut by_kernel: Vec<(&'static str, f64)> = Vec::new();
    for (i, d) in dispatches.iter().enumerate() {
        let secs = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period;
        if std::env::var_os("MFLOW_PROFILE_ALL").is_some() {
            eprintln!("{i:4} {:<24} {:?} {:8.2} ms", d.kernel, d.workgroups, secs * 1e3);
        }
        match by_kernel.iter_mut().find(|(k, _)| *k == d.kernel) {
            Some((_, s)) => *s += secs,
            None => by_kernel.push((d.kernel, secs)),
        }
    }
    by_kernel.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some(by_kernel)
}

/// Seconds per training step on the fixed minibatch `x` over `steps` steps, ending with a
/// wait for the GPU (the loss is read back once).
fn step_seconds(gpu: &Gpu, trainer: &mut crate::train::Trainer, x: &[f32], steps: usize) -> Result<f64> {
    let t = Instant::now();
    for i in 0..steps {
        trainer.step(gpu, x, i + 1 == steps);
    }
    trainer.drain(gpu)?;
    Ok(t.elapsed().as_secs_f64() / steps as f64)
}

/// The median of three `step_seconds` trials.
fn median_step_seconds(gpu: &Gpu, trainer: &mut crate::train::Trainer, x: &[f32], steps: usize) -> Result<f64> {
    Ok(median((0..3).map(|_| step_seconds(gpu, trainer, x, steps)).collect::<Result<Vec<f64>>>()?))
}

/// Training throughput for one configuration, each program the adapter can run (fused
/// couplings, GEMMs) in the same run, trials alternating so that drift hits them alike:
/// samples/s (median of 5 trials), dispatches per step, effective GFLOP/s and, where the
/// adapter has timestamps, the share of GPU time in GEMMs from a per-kernel profile.
pub fn bench_train(
    gpu: &Gpu,
    tuning: Tuning,
    label: &str,
    config: crate::model::FlowConfig,
    batch: usize,
    steps: usize,
) -> Result<()> {
    use crate::gpu_flow::Mode;
    use crate::train::{OptimConfig, Trainer};
    let mut flow = crate::model::Flow::new(config.clone())?;
    flow.actnorm_initialized = true;
    let opt = OptimConfig { batch, lr: 1e-4, clip: None, noise_seed: 1, ema: None };
    let modes: &[Mode] = if crate::kernels::fused::FusedCoupling::fits_config(&config) {
        &[Mode::Training, Mode::TrainingUnfused]
    } else {
        &[Mode::TrainingUnfused]
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let x: Vec<f32> = (0..batch * config.d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let kernels = tune::kernels(gpu, tuning, &Need::run(&config, batch))?;
    let mut trainers: Vec<Trainer> =
        modes.iter().map(|&m| Trainer::with_mode(gpu, &[&flow], &[1], &opt, m, &kernels)).collect();
    for t in &mut trainers {
        step_seconds(gpu, t, &x, 3)?;
    }
    let mut times = vec![Vec::new(); modes.len()];
    for _ in 0..5 {
        for (i, t) in trainers.iter_mut().enumerate() {
            times[i].push(step_seconds(gpu, t, &x, steps)?);
        }
    }
    let tuned = kernels.training_mode(&config, batch);
    // The GEMM rate at the step's largest product (batch × H × H), in this run.
    let (k, n) = if config.depth >= 2 { (config.hidden, config.hidden) } else { (config.h(), config.hidden) };
    let (_, gemm) = gemm_gflops(gpu, kernels.gemm.for_shape(Op::Nn, batch, k, n), Op::Nn, batch, k, n, 2, 5)?;
    // The same model's evaluation chunk (the kernels chosen for it).
    let eval_dispatches = crate::eval::Evaluator::for_points(gpu, &flow, 100, 64, &kernels)?.dispatches();
    for ((mode, trainer), t) in modes.iter().zip(&trainers).zip(times) {
        let step = median(t);
        // A step's conditioner GEMMs: the forward, then dX and dW of each (3x the forward).
        let gflops = 3.0 * config.conditioner_flops() * batch as f64 / step / 1e9;
        let path = if *mode == Mode::Training { "fused" } else { "GEMMs" };
        let mark = if *mode == tuned { "*" } else { " " };
        let mut line = format!(
            "{label:<8} Q={:<4} H={:<5} batch {batch:<4} {path:<5}{mark} {:>9.0} samples/s  {:>8.2} ms/step  {} dispatches/step, {eval_dispatches}/eval chunk  {gflops:.2} GFLOP/s effective ({:.0}% of GEMM {batch}x{k}x{n} at {gemm:.2})",
            config.q(),
            config.hidden,
            batch as f64 / step,
            step * 1e3,
            trainer.program().len(),
            100.0 * gflops / gemm
        );
        let mut rec = serde_json::json!({
            "bench": "train", "label": label, "path": path, "tuned": *mode == tuned, "d": config.d, "b": config.b,
            "q": config.q(), "hidden": config.hidden, "batch": batch, "samples_per_s": batch as f64 / step,
            "ms_per_step": step * 1e3, "dispatches_per_step": trainer.program().len(),
            "dispatches_per_eval_chunk": eval_dispatches, "effective_gflops": gflops,
            "gemm_shape": [batch, k, n], "gemm_gflops": gemm, "ratio_to_gemm": gflops / gemm,
        });
        if let Some(prof) = profile(gpu, &trainer.program()) {
            let total: f64 = prof.iter().map(|p| p.1).sum();
            let gemm = prof.iter().filter(|p| p.0.starts_with("gemm")).fold(0.0, |a, p| a + p.1);
            line += &format!("  GEMM {:.0}% of GPU time", 100.0 * gemm / total);
            rec["gemm_share"] = (gemm / total).into();
            let top: Vec<String> =
                prof.iter().take(4).map(|(k, s)| format!("{k} {:.0}% {:.1} ms", 100.0 * s / total, s * 1e3)).collect();
            line += &format!("  GPU {:.1} ms/step", total * 1e3);
            line += &format!(" (top: {})", top.join(", "));
        }
        println!("{line}");
        record(rec);
    }
    Ok(())
}

/// A conv flow's training step (CONV.md's MNIST shape unless told otherwise): samples/s,
/// dispatches per step, effective GFLOP/s (3× the forward's convolutions and head GEMMs),
/// the same-run GEMM rate at the largest implicit GEMM's shape (the full-resolution 1×1
/// convolution: batch·H·W × W_c × W_c), GPU memory per image, and the top kernels.
pub fn bench_train_conv(
    gpu: &Gpu,
    tuning: Tuning,
    config: crate::model::FlowConfig,
    batch: usize,
    steps: usize,
) -> Result<()> {
    use crate::gpu_flow::{human_bytes, Footprint, Mode};
    use crate::train::{OptimConfig, Trainer};
    let arch = config.conv.clone().expect("a conv flow");
    let mut flow = crate::model::Flow::new(config.clone())?;
    flow.actnorm_initialized = true;
    let opt = OptimConfig { batch, lr: 1e-4, clip: None, noise_seed: 1, ema: None };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let x: Vec<f32> = (0..batch * config.d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let kernels = tune::kernels(gpu, tuning, &Need::run(&config, batch))?;
    let mut trainer = Trainer::with_mode(gpu, &[&flow], &[1], &opt, Mode::TrainingUnfused, &kernels);
    step_seconds(gpu, &mut trainer, &x, 2)?;
    let times: Vec<f64> = (0..3).map(|_| step_seconds(gpu, &mut trainer, &x, steps)).collect::<Result<_>>()?;
    let step = median(times);
    let (m, k, n) = (batch * arch.height * arch.width, arch.hidden, arch.hidden);
    let (_, gemm) = gemm_gflops(gpu, kernels.gemm.for_shape(Op::Nn, m, k, n), Op::Nn, m, k, n, 2, 3)?;
    let gflops = 3.0 * config.conditioner_flops() * batch as f64 / step / 1e9;
    let per_image = Footprint::of(&config, batch, Mode::Training, 1).map_or(0, |f| f.total / batch as u64);
    let mut line = format!(
        "conv {}x{}x{} K={} W_c={} batch {batch}: {:>7.1} samples/s  {:>8.1} ms/step  {} dispatches/step  {gflops:.2} GFLOP/s effective ({:.0}% of GEMM {m}x{k}x{n} at {gemm:.2})  {} of GPU memory per image",
        arch.channels,
        arch.height,
        arch.width,
        arch.scales,
        arch.hidden,
        batch as f64 / step,
        step * 1e3,
        trainer.program().len(),
        100.0 * gflops / gemm,
        human_bytes(per_image),
    );
    let mut rec = serde_json::json!({
        "bench": "train_conv", "channels": arch.channels, "height": arch.height, "width": arch.width,
        "scales": arch.scales, "hidden": arch.hidden, "batch": batch, "samples_per_s": batch as f64 / step,
        "ms_per_step": step * 1e3, "dispatches_per_step": trainer.program().len(), "effective_gflops": gflops,
        "gemm_shape": [m, k, n], "gemm_gflops": gemm, "ratio_to_gemm": gflops / gemm, "bytes_per_image": per_image,
    });
    if let Some(prof) = profile(gpu, &trainer.program()) {
        let total: f64 = prof.iter().map(|p| p.1).sum();
        let top: Vec<String> =
            prof.iter().take(5).map(|(k, s)| format!("{k} {:.0}% {:.1} ms", 100.0 * s / total, s * 1e3)).collect();
        line += &format!("  GPU {:.1} ms/step (top: {})", total * 1e3, top.join(", "));
        rec["gpu_ms_per_step"] = (total * 1e3).into();
    }
    println!("{line}");
    record(rec);
    Ok(())
}

/// The S-sample estimator's throughput: flow evaluations/s (points × S), their effective
/// GFLOP/s, and the ratio to the GEMM rate at the evaluation's largest GEMM shape (rows of
/// one pass × H × H), measured in the same run; dispatches per chunk beside.
pub fn bench_eval(
    gpu: &Gpu,
    tuning: Tuning,
    config: crate::model::FlowConfig,
    s: usize,
    points: usize,
    trials: usize,
) -> Result<()> {
    let kernels = tune::kernels(gpu, tuning, &[Need::Inference(config.clone())])?;
    let mut flow = crate::model::Flow::new(config.clone())?;
    flow.randomize(1, 0.5);
    use crate::gpu_flow::Mode;
    let build = |mode| -> Result<crate::eval::Evaluator> {
        let ev = crate::eval::Evaluator::with_mode(gpu, &flow, s, points, mode, &kernels)?;
        ev.upload_params(gpu, &flow.params);
        Ok(ev)
    };
    let (mut unfused, mut fused) = (build(Mode::InferenceUnfused)?, build(Mode::Inference)?);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let data =
        crate::data::Table::new(config.d, (0..points * config.d).map(|_| rng.random_range(-1.0f32..1.0)).collect());
    // Both paths give the same numbers (to f32 rounding) before either is timed.
    let (a, b) = (unfused.log_likelihood(gpu, &data, 1)?, fused.log_likelihood(gpu, &data, 1)?);
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + x.abs())).fold(0.0, f64::max);
    ensure!(worst < 1e-4, "the fused and unfused evaluations differ by {worst:.2e} (relative)");
    let rows = fused.points * fused.s;
    let (k, n) = if config.depth >= 2 { (config.hidden, config.hidden) } else { (config.h(), config.hidden) };
    let (entry, gemm) = gemm_gflops(gpu, kernels.gemm.for_shape(Op::Nn, rows, k, n), Op::Nn, rows, k, n, 2, 5)?;
    println!(
        "eval D={} B={} H={} S={}, {points} points, chunks of {} points; GEMM {rows}x{k}x{n} ({entry:?}) {gemm:.2} GFLOP/s in this run",
        config.d, config.b, config.hidden, fused.s, fused.points
    );
    // The old path (GEMMs, one chunk at a time), the old kernels overlapped, and the fused
    // couplings overlapped; trials alternate so that drift hits all three alike.
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..trials.max(1) {
        for (i, (fuse, overlap)) in [(false, false), (false, true), (true, true)].into_iter().enumerate() {
            let ev = if fuse { &mut fused } else { &mut unfused };
            ev.overlap = overlap;
            let t = Instant::now();
            ev.log_likelihood(gpu, &data, 1)?;
            times[i].push(t.elapsed().as_secs_f64());
        }
    }
    gpu.check()?;
    let names = [
        format!("GEMMs, one chunk at a time ({} dispatches/chunk)", unfused.dispatches()),
        format!("GEMMs, chunks overlapped ({} dispatches/chunk)", unfused.dispatches()),
        format!("fused couplings, overlapped ({} dispatches/chunk)", fused.dispatches()),
    ];
    for (i, name) in names.iter().enumerate() {
        let secs = median(times[i].clone());
        let evals = (points * fused.s) as f64 / secs;
        let eff = evals * config.conditioner_flops() / 1e9;
        println!(
            "  {name:<52} {secs:>6.2} s  {evals:>9.0} flow evaluations/s  {eff:>6.2} GFLOP/s effective  ({:.0}% of the GEMM rate)",
            100.0 * eff / gemm
        );
        if i != 1 {
            let ev = if i == 2 { &fused } else { &unfused };
            if let Some(prof) = profile(gpu, &ev.program()) {
                let total: f64 = prof.iter().map(|p| p.1).sum();
                let top: Vec<String> =
                    prof.iter().take(5).map(|(k, s)| format!("{k} {:.0}%", 100.0 * s / total)).collect();
                println!("    GPU {:.1} ms/chunk: {}", total * 1e3, top.join(", "));
            }
        }
        record(serde_json::json!({
            "bench": "eval", "path": name, "d": config.d, "b": config.b, "hidden": config.hidden, "samples": fused.s,
            "points": points, "seconds": secs, "flow_evals_per_s": evals, "effective_gflops": eff,
            "gemm_shape": [rows, k, n], "gemm_gflops": gemm, "ratio_to_gemm": eff / gemm,
        }));
    }
    Ok(())
}

/// Many models trained in the same dispatches against one at a time: samples/s (all models
/// together) for each count in `counts`, from the median of three timed trials, beside the
/// single model's rate, which is what training the same models one after another gives.
pub fn bench_sweep(
    gpu: &Gpu,
    tuning: Tuning,
    config: crate::model::FlowConfig,
    batch: usize,
    counts: &[usize],
    steps: usize,
) -> Result<()> {
    use crate::train::{OptimConfig, Trainer};
    println!("adapter: {}", gpu.describe());
    println!(
        "flow D={} B={} (Q={}) L={} depth {} H={}, batch {batch}; each model its own seed, data and noise",
        config.d,
        config.b,
        config.q(),
        config.blocks,
        config.depth,
        config.hidden
    );
    let kernels = tune::kernels(gpu, tuning, &[Need::Training { config: config.clone(), batch }])?;
    let mut single = None;
    for &m in counts {
        let flows: Vec<crate::model::Flow> = (0..m as u64)
            .map(|s| crate::model::Flow::new(crate::model::FlowConfig { seed: s, ..config.clone() }))
            .collect::<Result<_>>()?;
        let cap = crate::gpu_flow::GpuFlow::max_models(gpu, &flows[0], batch);
        if m > cap {
            println!("{m:>4} models: skipped, more than the {cap} whose buffers fit one storage binding here");
            continue;
        }
        let refs: Vec<&crate::model::Flow> = flows.iter().collect();
        let seeds: Vec<u64> = (0..m as u64).collect();
        let mut trainer = Trainer::new_models(
            gpu,
            &refs,
            &seeds,
            &OptimConfig { batch, lr: 1e-4, clip: None, noise_seed: 0, ema: None },
            &kernels,
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let x: Vec<f32> = (0..m * batch * config.d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        // The first step initialises the ActNorms and compiles nothing new; then time.
        trainer.step(gpu, &x, false);
        trainer.drain(gpu)?;
        let step = median_step_seconds(gpu, &mut trainer, &x, steps.div_ceil(m).max(2))?;
        let rate = (m * batch) as f64 / step;
        let one = *single.get_or_insert(if m == 1 { rate } else { f64::NAN });
        println!(
            "{m:>4} models together: {rate:>9.0} samples/s  {:>9.1} ms/step  {:>6.1}× one at a time{}",
            step * 1e3,
            rate / one,
            if m == 1 { "  (one at a time)" } else { "" }
        );
        record(serde_json::json!({
            "bench": "sweep", "models": m, "q": config.q(), "hidden": config.hidden, "batch": batch,
            "samples_per_s": rate, "ms_per_step": step * 1e3, "speedup_over_one": rate / one,
        }));
    }
    Ok(())
}

/// The input pipeline: host time to prepare a minibatch (gather + preprocess) against the
/// GPU's step time, and training fed by the background stream against training on one
/// fixed minibatch. Equal step times mean the GPU never waits for the host.
pub fn bench_stream(gpu: &Gpu, tuning: Tuning, cfg: &crate::run::RunConfig, steps: usize) -> Result<()> {
    use crate::run::{batch_stream, Schedule};
    use crate::train::Trainer;
    let data = cfg.data.load(cfg.sizes, cfg.data_seed, cfg.preprocess)?;
    let mut fc = cfg.flow.clone();
    fc.d = data.train.dim;
    let flow = crate::model::Flow::new(fc.clone())?;
    let pre = data.image.as_ref().map(|i| i.pre.clone());
    let train = data.train.clone();
    let sched = || Schedule { rows: train.rows(), batch: cfg.optim.batch, seed: 1 };
    let steps = steps.min(sched().steps_per_epoch() * 4).max(1);

    // Host alone: the stream drained as fast as it can produce.
    let t = Instant::now();
    let rx = batch_stream(train.clone(), pre.clone(), sched(), 1, steps as u64);
    let first: Vec<f32> = rx.recv()?;
    for _ in 1..steps {
        rx.recv()?;
    }
    let host = t.elapsed().as_secs_f64() / steps as f64;

    let kernels = tune::kernels(gpu, tuning, &[Need::Training { config: fc.clone(), batch: cfg.optim.batch }])?;
    let mut trainer = Trainer::new(gpu, &flow, &cfg.optim, &kernels);
    trainer.step(gpu, &first, false);
    trainer.drain(gpu)?;
    let t = Instant::now();
    for _ in 0..steps {
        trainer.step(gpu, &first, false);
    }
    trainer.drain(gpu)?;
    let fixed = t.elapsed().as_secs_f64() / steps as f64;

    let rx = batch_stream(train.clone(), pre, sched(), 1, steps as u64);
    let t = Instant::now();
    for _ in 0..steps {
        let xb = rx.recv()?;
        trainer.step(gpu, &xb, false);
    }
    trainer.drain(gpu)?;
    let streamed = t.elapsed().as_secs_f64() / steps as f64;
    println!("adapter: {}", gpu.describe());
    println!(
        "{} D={} B={} H={} batch {}: host prepares a minibatch in {:.2} ms; GPU step on a fixed minibatch {:.2} ms; streamed step {:.2} ms ({:+.1}%)",
        data.spec,
        fc.d,
        fc.b,
        fc.hidden,
        cfg.optim.batch,
        host * 1e3,
        fixed * 1e3,
        streamed * 1e3,
        100.0 * (streamed / fixed - 1.0)
    );
    Ok(())
}

/// `mflow bench all`: the adapter (name, backend, driver, limits, features) and every
/// benchmark's figures, as one JSON object.
pub fn report_json(gpu: &Gpu) -> serde_json::Value {
    let l = &gpu.limits;
    serde_json::json!({
        "adapter": {
            "name": gpu.info.name, "backend": format!("{:?}", gpu.info.backend),
            "device_type": format!("{:?}", gpu.info.device_type), "driver": gpu.info.driver,
            "driver_info": gpu.info.driver_info,
            "limits": {
                "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
                "max_buffer_size": l.max_buffer_size,
                "max_storage_buffers_per_shader_stage": l.max_storage_buffers_per_shader_stage,
                "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
                "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup,
            },
            "features": format!("{:?}", gpu.features),
        },
        "mflow_version": env!("CARGO_PKG_VERSION"),
        "figures": records(),
    })
}
