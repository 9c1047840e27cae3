//! A whole training run: data, training with logging and checkpoints, then the honest
//! evaluation (marginal LL on the training split and on the held-out test split, beside the
//! truth for synthetic data), samples, and `summary.json`.

use crate::checkpoint::{self, TrainState};
use crate::data::images::{Mode, Preprocess};
use crate::data::{DataSpec, Dataset, Split, SplitSizes, Table};
use crate::eval::{Estimate, Evaluator};
use crate::gpu::Gpu;
use crate::gpu_flow::GpuFlow;
use crate::model::{Flow, FlowConfig};
use crate::train::{Logged, OptimConfig, Trainer};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunConfig {
    pub data: DataSpec,
    /// How image levels become the flow's input.
    pub preprocess: Mode,
    pub data_seed: u64,
    pub sizes: SplitSizes,
    pub flow: FlowConfig,
    pub optim: OptimConfig,
    pub epochs: usize,
    /// Importance samples S for the final marginal likelihood.
    pub samples: usize,
    /// Steps between loss readbacks.
    pub log_every: usize,
    /// Epochs between checkpoints (the last epoch always writes one).
    pub checkpoint_every: usize,
    /// Evaluate only the first N points of each split (all when absent); the summary says so.
    #[serde(default)]
    pub eval_points: Option<usize>,
}

impl RunConfig {
    /// MODEL.md's defaults for a dataset (thesis table 1), the model's D taken from the data
    /// when it is loaded.
    pub fn defaults(data: DataSpec, b: usize, seed: u64) -> Self {
        let image = data.is_image();
        let (batch, lr, clip, epochs, hidden) = match &data {
            DataSpec::Gauss { .. } => (256, 1e-3, None, 1024, 128),
            DataSpec::Moons { .. } => (64, 1e-3, None, 1024, 128),
            DataSpec::Cifar10 { .. } => (32, 5e-4, Some(0.6), 16, 1024),
            _ => (32, 5e-4, Some(0.6), 10, 1024),
        };
        let d = match &data {
            DataSpec::Gauss { d, .. } => *d,
            DataSpec::Moons { .. } => 2,
            _ => 0,
        };
        RunConfig {
            data,
            preprocess: Mode::Dequant,
            data_seed: 0,
            sizes: SplitSizes { train: 2048, validation: 2048, test: 10_000 },
            flow: FlowConfig { d, b, blocks: 4, depth: 2, hidden, seed },
            optim: OptimConfig { batch, lr, clip, noise_seed: seed },
            epochs,
            samples: 200,
            log_every: if image { 50 } else { 64 },
            checkpoint_every: (epochs / 10).max(1),
            eval_points: None,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub data: String,
    pub adapter: String,
    pub config: RunConfig,
    pub samples: usize,
    pub train_ll: f64,
    pub train_ll_se: f64,
    /// The thesis's protocol: log of the mean likelihood over the training points.
    pub train_log_mean_likelihood: f64,
    pub heldout_ll: f64,
    pub heldout_ll_se: f64,
    pub heldout_split: String,
    /// Points evaluated per split.
    pub train_points: usize,
    pub heldout_points: usize,
    /// What the log-likelihoods measure: "nats" per point (synthetic data and thesis-mode
    /// images) or, in dequant mode, nats of log p(v) per image beside bits per dimension.
    pub units: String,
    pub train_bits_per_dim: Option<f64>,
    pub heldout_bits_per_dim: Option<f64>,
    pub heldout_bits_per_dim_se: Option<f64>,
    /// Mean exact log-density of the same held-out points (synthetic data).
    pub true_ll: Option<f64>,
    /// MODEL.md's analytic expected log-likelihood.
    pub true_ll_expected: Option<f64>,
    pub steps: u64,
    pub final_train_loss: f64,
    pub train_seconds: f64,
    /// This run's samples per second of training wall time.
    pub train_samples_per_s: f64,
    /// How many models were trained in the same dispatches (a sweep group; 1: alone).
    #[serde(default = "one")]
    pub trained_with: usize,
    pub eval_seconds: f64,
    pub model: PathBuf,
}

fn one() -> usize {
    1
}

impl Summary {
    /// The human-readable lines `mflow train` prints.
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let mut r = String::new();
        let f = &self.config.flow;
        let _ = writeln!(
            r,
            "data {}  D={} B={}  {} steps in {:.1} s ({:.0} samples/s)",
            self.data, f.d, f.b, self.steps, self.train_seconds, self.train_samples_per_s
        );
        let unit = if self.train_bits_per_dim.is_some() { "nats of log p(v)" } else { "nats" };
        let _ = writeln!(
            r,
            "train   log-likelihood {:>10.4} ± {:.4} {unit}  (train split, S = {}, {} points)",
            self.train_ll, self.train_ll_se, self.samples, self.train_points
        );
        let _ = writeln!(
            r,
            "heldout log-likelihood {:>10.4} ± {:.4} {unit}  (test split, S = {}, {} points)",
            self.heldout_ll, self.heldout_ll_se, self.samples, self.heldout_points
        );
        if let (Some(tr), Some(te), Some(se)) =
            (self.train_bits_per_dim, self.heldout_bits_per_dim, self.heldout_bits_per_dim_se)
        {
            let _ = writeln!(
                r,
                "bits/dim: train {tr:.4}, heldout {te:.4} ± {se:.4} (test split, in the data's own pixel levels)"
            );
        }
        if let Some(t) = self.true_ll {
            let _ = writeln!(r, "truth                  {t:>10.4} nats  (exact density of the same held-out points)");
        }
        if f.b == 0 {
            let _ = writeln!(r, "(B = 0: the estimate is exact, S is not used)");
        }
        r
    }
}

/// The training order: epoch e visits the rows in a permutation drawn from (seed, e), and
/// step t's preprocessing noise comes from (seed, t), so any step can be regenerated, which
/// is what makes resuming exact.
pub struct Schedule {
    pub rows: usize,
    pub batch: usize,
    pub seed: u64,
}

fn mix(a: u64, b: u64) -> u64 {
    // SplitMix64 of the pair: decorrelates neighbouring seeds and epochs.
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Schedule {
    pub fn steps_per_epoch(&self) -> usize {
        self.rows / self.batch
    }
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.rows).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(mix(self.seed, epoch as u64)));
        order
    }
}

/// Prepares minibatches for steps `first..=last` (1-based) on a background thread, so the
/// GPU never waits for the host to gather and preprocess.
pub fn batch_stream(
    data: Arc<Table>,
    pre: Option<Preprocess>,
    sched: Schedule,
    first: u64,
    last: u64,
) -> std::sync::mpsc::Receiver<Vec<f32>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    std::thread::spawn(move || {
        let spe = sched.steps_per_epoch() as u64;
        let mut cached: Option<(usize, Vec<usize>)> = None;
        for t in first..=last {
            let epoch = ((t - 1) / spe) as usize;
            let b = ((t - 1) % spe) as usize;
            if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
                cached = Some((epoch, sched.order(epoch)));
            }
            let order = &cached.as_ref().expect("order").1;
            let mut xb = Vec::with_capacity(sched.batch * data.dim);
            for &r in &order[b * sched.batch..(b + 1) * sched.batch] {
                xb.extend_from_slice(data.row(r));
            }
            if let Some(p) = &pre {
                let mut rng = rand::rngs::StdRng::seed_from_u64(mix(sched.seed ^ 0xDE0A, t));
                p.apply(&mut xb, data.dim, &mut rng);
            }
            if tx.send(xb).is_err() {
                return;
            }
        }
    });
    rx
}

struct MetricsLog {
    file: std::io::BufWriter<std::fs::File>,
    start: Instant,
    batch: usize,
    first_step: u64,
}

impl MetricsLog {
    fn write(&mut self, l: &Logged, epoch: usize) -> Result<()> {
        let secs = self.start.elapsed().as_secs_f64();
        let line = serde_json::json!({
            "step": l.step, "epoch": epoch, "loss": l.loss, "nonfinite_steps": l.nonfinite,
            "elapsed_s": secs, "samples_per_s": (l.step - self.first_step) as f64 * self.batch as f64 / secs.max(1e-9),
        });
        writeln!(self.file, "{line}")?;
        self.file.flush()?;
        Ok(())
    }
}

/// Per-point log-likelihoods of a split: the marginal estimate of the flow's input density,
/// plus (dequant mode) the Jacobian back to v ∈ [0,1]^D. Preprocessing noise comes from a
/// fixed seed, ε from another.
pub fn split_log_likelihood(
    gpu: &Gpu,
    ev: &Evaluator,
    data: &Dataset,
    split: Split,
    limit: Option<usize>,
) -> Result<Vec<f64>> {
    const EVAL_SEED: u64 = 0xE7A1;
    let full = data.split(split);
    let limited;
    let t = match limit {
        Some(n) if n < full.rows() => {
            limited = Table { dim: full.dim, data: full.data[..n * full.dim].to_vec() };
            &limited
        }
        _ => full,
    };
    if t.rows() == 0 {
        bail!("the {} split of {} is empty", split.name(), data.spec);
    }
    match &data.image {
        None => ev.log_likelihood(gpu, t, EVAL_SEED),
        Some(info) => {
            let mut x = t.clone();
            let mut rng = rand::rngs::StdRng::seed_from_u64(EVAL_SEED ^ split.stream());
            let jac = info.pre.apply(&mut x.data, x.dim, &mut rng);
            let ll = ev.log_likelihood(gpu, &x, EVAL_SEED)?;
            Ok(ll.iter().zip(&jac).map(|(l, j)| l + j).collect())
        }
    }
}

pub fn train(gpu: &Gpu, cfg: &RunConfig, out: &Path, resume: Option<&Path>, progress: bool) -> Result<Summary> {
    let data = cfg.data.load(cfg.sizes, cfg.data_seed, cfg.preprocess)?;
    let mut cfg = cfg.clone();
    cfg.flow.d = data.train.dim;
    let cfg = &cfg;
    let sched = Schedule { rows: data.train.rows(), batch: cfg.optim.batch, seed: cfg.flow.seed };
    let spe = sched.steps_per_epoch();
    if spe == 0 {
        bail!("batch {} is larger than the training set ({} rows)", cfg.optim.batch, data.train.rows());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let model_path = out.join("model.safetensors");
    let (mut flow, state) = match resume {
        Some(path) => {
            let (flow, state) = checkpoint::load(path, Some(&cfg.flow))?;
            let state = state.with_context(|| format!("{}: no training state to resume from", path.display()))?;
            (flow, Some(state))
        }
        None => (Flow::new(cfg.flow.clone())?, None),
    };
    let mut trainer = Trainer::new(gpu, &flow, &cfg.optim);
    if let Some(s) = &state {
        trainer.restore(gpu, &s.m, &s.v, s.step);
    }
    let first = trainer.step;
    let total = (spe * cfg.epochs) as u64;
    if first > total {
        bail!("the checkpoint is at step {first}, past this run's {total} steps");
    }
    let mut log = MetricsLog {
        file: std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(resume.is_some())
                .write(true)
                .truncate(resume.is_none())
                .open(out.join("metrics.jsonl"))?,
        ),
        start: Instant::now(),
        batch: cfg.optim.batch,
        first_step: first,
    };
    let bar = progress_bar(progress, total);
    bar.set_position(first);
    let batches =
        batch_stream(Arc::new(data.train.clone()), data.image.as_ref().map(|i| i.pre.clone()), sched, first + 1, total);
    let mut last_loss = f64::NAN;
    let mut last_good: Option<u64> = state.as_ref().map(|s| s.step);
    let start = Instant::now();
    let mut checkpoint_secs = 0.0;
    let extra = std::collections::HashMap::from([("run".to_string(), serde_json::to_string(cfg)?)]);
    for step in first + 1..=total {
        let xb = batches.recv().context("the minibatch thread stopped")?;
        let epoch = ((step - 1) / spe as u64) as usize;
        let logged = trainer.step(gpu, &xb, step.is_multiple_of(cfg.log_every as u64) || step == total);
        record(&logged, epoch, &mut log, &mut last_loss, &bar, last_good, &model_path)?;
        let end_of_epoch = step.is_multiple_of(spe as u64);
        if step == total || (end_of_epoch && (epoch + 1).is_multiple_of(cfg.checkpoint_every.max(1))) {
            let t = Instant::now();
            let logged = trainer.drain(gpu);
            record(&logged, epoch, &mut log, &mut last_loss, &bar, last_good, &model_path)?;
            let (params, m, v) = trainer.download(gpu);
            if params.iter().any(|p| !p.is_finite()) {
                bail!("training diverged by step {step} (non-finite parameters); {}", good(last_good, &model_path));
            }
            flow.params = params;
            flow.actnorm_initialized = trainer.initialized();
            let state = TrainState { m, v, step: trainer.step, extra: extra.clone() };
            checkpoint::save(&model_path, &flow, Some(&state))?;
            last_good = Some(trainer.step);
            checkpoint_secs += t.elapsed().as_secs_f64();
        }
    }
    let train_seconds = start.elapsed().as_secs_f64() - checkpoint_secs;
    bar.finish_and_clear();
    if first == total {
        // Nothing to train (resumed at the end): evaluate the loaded model.
        flow.actnorm_initialized = true;
    }
    let trained = Trained {
        steps: trainer.step,
        final_train_loss: last_loss,
        train_seconds,
        train_samples_per_s: (trainer.step - first) as f64 * cfg.optim.batch as f64 / train_seconds.max(1e-9),
        trained_with: 1,
    };
    finish(gpu, cfg, &data, &flow, out, &model_path, trained)
}

/// Runs with the same key can be trained in the same dispatches: one flow shape (Q, L,
/// depth, H) and one schedule (batch, lr, clip, epochs, training-set size, log interval).
/// Data, D, B (within Q), seeds and preprocessing may differ.
pub fn group_key(cfg: &RunConfig) -> String {
    let (f, o) = (&cfg.flow, &cfg.optim);
    // Image data fixes D only when loaded; its spec stands in for it.
    let width = if f.d > 0 { format!("q{}", f.q()) } else { format!("{}+{}", cfg.data.describe(), f.b) };
    format!(
        "{width} L{} depth{} H{} batch{} lr{} clip{:?} epochs{} train{} log{}",
        f.blocks, f.depth, f.hidden, o.batch, o.lr, o.clip, cfg.epochs, cfg.sizes.train, cfg.log_every
    )
}

/// Trains several runs of one `group_key` together — one set of dispatches advances all of
/// them (see `Trainer::new_models`), each with its own data, order, noise and optimizer
/// state, so each follows the path it would follow alone — then evaluates each and writes
/// its folder as `train` does (`metrics.jsonl`, `model.safetensors`, `summary.json`, samples).
/// The group checkpoints once, at the end; a run that diverges gets an error and the others
/// go on. Groups larger than one storage binding holds are trained in parts.
pub fn train_group(gpu: &Gpu, runs: &[(RunConfig, PathBuf)], progress: bool) -> Result<Vec<Result<Summary>>> {
    if runs.len() == 1 {
        return Ok(vec![train(gpu, &runs[0].0, &runs[0].1, None, progress)]);
    }
    let key = group_key(&runs[0].0);
    if let Some((c, _)) = runs.iter().find(|(c, _)| group_key(c) != key) {
        bail!("runs of one group must share a flow shape and schedule: {key:?} vs {:?}", group_key(c));
    }
    let mut cfgs = Vec::new();
    let mut datas = Vec::new();
    let mut flows = Vec::new();
    for (cfg, out) in runs {
        let data = cfg.data.load(cfg.sizes, cfg.data_seed, cfg.preprocess)?;
        let mut cfg = cfg.clone();
        cfg.flow.d = data.train.dim;
        flows.push(Flow::new(cfg.flow.clone())?);
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        cfgs.push(cfg);
        datas.push(data);
    }
    let (batch, epochs) = (cfgs[0].optim.batch, cfgs[0].epochs);
    let cap = GpuFlow::max_models(gpu, &flows[0], batch);
    if runs.len() > cap {
        let mut out = Vec::new();
        for part in runs.chunks(cap) {
            out.extend(train_group(gpu, part, progress)?);
        }
        return Ok(out);
    }
    if let Some(f) = flows.iter().find(|f| !crate::gpu_flow::same_shape(&flows[0], f)) {
        bail!("flow {:?} cannot share dispatches with {:?}", f.config, flows[0].config);
    }
    let rows = datas[0].train.rows();
    if let Some(d) = datas.iter().find(|d| d.train.rows() != rows) {
        bail!("{} has {} training rows, the group {rows}", d.spec, d.train.rows());
    }
    let spe = rows / batch;
    if spe == 0 {
        bail!("batch {batch} is larger than the training set ({rows} rows)");
    }
    let total = (spe * epochs) as u64;
    let m = runs.len();
    let dmax = flows.iter().map(|f| f.config.d).max().unwrap_or(0);
    let refs: Vec<&Flow> = flows.iter().collect();
    let seeds: Vec<u64> = cfgs.iter().map(|c| c.optim.noise_seed).collect();
    let mut trainer = Trainer::new_models(gpu, &refs, &seeds, &cfgs[0].optim);
    let streams: Vec<_> = cfgs
        .iter()
        .zip(&datas)
        .map(|(c, d)| {
            let sched = Schedule { rows, batch, seed: c.flow.seed };
            batch_stream(Arc::new(d.train.clone()), d.image.as_ref().map(|i| i.pre.clone()), sched, 1, total)
        })
        .collect();
    let mut logs = runs
        .iter()
        .map(|(_, out)| {
            Ok(MetricsLog {
                file: std::io::BufWriter::new(std::fs::File::create(out.join("metrics.jsonl"))?),
                start: Instant::now(),
                batch,
                first_step: 0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let bar = progress_bar(progress, total);
    let mut last_loss = vec![f64::NAN; m];
    let mut diverged: Vec<Option<String>> = vec![None; m];
    let mut x = vec![0f32; m * batch * dmax];
    let start = Instant::now();
    let mut handle = |logged: Vec<Logged>, epoch: usize| -> Result<()> {
        for l in &logged {
            logs[l.model].write(l, epoch)?;
            if l.nonfinite > 0 && diverged[l.model].is_none() {
                diverged[l.model] = Some(format!(
                    "training diverged: the loss was not finite at {} step(s) before step {} (trained in a group; no checkpoint kept)",
                    l.nonfinite, l.step
                ));
            }
            last_loss[l.model] = l.loss;
        }
        if let Some(step) = logged.last().map(|l| l.step) {
            let finite: Vec<f64> = last_loss.iter().copied().filter(|v| v.is_finite()).collect();
            bar.set_position(step);
            bar.set_message(format!(
                "epoch {} mean loss {:.4} over {} models, {:.0} samples/s",
                epoch + 1,
                finite.iter().sum::<f64>() / finite.len().max(1) as f64,
                m,
                (step as f64) * (m * batch) as f64 / start.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    };
    for step in 1..=total {
        for (z, rx) in streams.iter().enumerate() {
            let xb = rx.recv().context("a minibatch thread stopped")?;
            let d = flows[z].config.d;
            for (r, row) in xb.chunks(d).enumerate() {
                x[(z * batch + r) * dmax..][..d].copy_from_slice(row);
            }
        }
        let log = step.is_multiple_of(cfgs[0].log_every as u64) || step == total;
        let epoch = ((step - 1) / spe as u64) as usize;
        handle(trainer.step(gpu, &x, log), epoch)?;
    }
    handle(trainer.drain(gpu), epochs.saturating_sub(1))?;
    let train_seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let mut out = Vec::new();
    for (z, (cfg, dir)) in cfgs.iter().zip(runs.iter().map(|(_, d)| d)).enumerate() {
        let result = (|| -> Result<Summary> {
            if let Some(msg) = &diverged[z] {
                bail!("{msg}");
            }
            let (params, mm, vv) = trainer.download_model(gpu, z);
            if params.iter().any(|p| !p.is_finite()) {
                bail!("training diverged (non-finite parameters; trained in a group, no checkpoint kept)");
            }
            let mut flow = flows[z].clone();
            flow.params = params;
            flow.actnorm_initialized = true;
            let model_path = dir.join("model.safetensors");
            let extra = std::collections::HashMap::from([("run".to_string(), serde_json::to_string(cfg)?)]);
            checkpoint::save(&model_path, &flow, Some(&TrainState { m: mm, v: vv, step: trainer.step, extra }))?;
            let trained = Trained {
                steps: trainer.step,
                final_train_loss: last_loss[z],
                train_seconds,
                train_samples_per_s: total as f64 * batch as f64 / train_seconds.max(1e-9),
                trained_with: m,
            };
            finish(gpu, cfg, &datas[z], &flow, dir, &model_path, trained)
        })();
        out.push(result.with_context(|| format!("run in {}", dir.display())));
    }
    Ok(out)
}

/// How a run's training went, for its summary.
struct Trained {
    steps: u64,
    final_train_loss: f64,
    train_seconds: f64,
    /// This run's own samples per second of training wall time.
    train_samples_per_s: f64,
    /// Models trained in the same dispatches (1: alone).
    trained_with: usize,
}

/// The end of a run: marginal LL on both splits, samples, `summary.json`.
fn finish(
    gpu: &Gpu,
    cfg: &RunConfig,
    data: &Dataset,
    flow: &Flow,
    out: &Path,
    model_path: &Path,
    trained: Trained,
) -> Result<Summary> {
    let t = Instant::now();
    // Chunks no larger than what is evaluated: a sweep's few hundred points must not pay
    // for a chunk sized to the whole test split.
    let points = data.train.rows().max(data.test.rows()).min(cfg.eval_points.unwrap_or(usize::MAX));
    let ev = Evaluator::for_points(gpu, flow, cfg.samples, points);
    ev.upload_params(gpu, &flow.params);
    let train_ll = split_log_likelihood(gpu, &ev, data, Split::Train, cfg.eval_points)?;
    let heldout = split_log_likelihood(gpu, &ev, data, Split::Test, cfg.eval_points)?;
    if heldout.iter().any(|v| !v.is_finite()) {
        bail!("the held-out log-likelihood is not finite for some points");
    }
    let (train_e, heldout_e) = (Estimate::of(&train_ll), Estimate::of(&heldout));
    let eval_seconds = t.elapsed().as_secs_f64();
    let dequant = data.image.as_ref().filter(|i| i.pre.mode == Mode::Dequant);
    let bpd = |ll: f64| dequant.map(|i| i.pre.bits_per_dim(ll, flow.config.d));
    let bpd_se = dequant.map(|_| heldout_e.se / (flow.config.d as f64 * std::f64::consts::LN_2));
    if flow.config.d == 2 {
        let samples = crate::sample::sample(gpu, flow, 2048, 1.0, cfg.flow.seed);
        crate::plot::scatter(&data.test, &samples, 512, &out.join("samples.png"))?;
    } else if let Some(info) = &data.image {
        let samples = crate::sample::sample(gpu, flow, 64, 1.0, cfg.flow.seed);
        crate::plot::image_grid(&samples, info, Some(&data.test), 8, &out.join("samples.png"))?;
    }
    let summary = Summary {
        data: data.spec.clone(),
        adapter: gpu.describe(),
        config: cfg.clone(),
        samples: ev.s,
        train_ll: train_e.mean,
        train_ll_se: train_e.se,
        train_log_mean_likelihood: crate::reference::marginal::logsumexp(&train_ll) - (train_ll.len() as f64).ln(),
        heldout_ll: heldout_e.mean,
        heldout_ll_se: heldout_e.se,
        heldout_split: "test".into(),
        train_points: train_e.n,
        heldout_points: heldout_e.n,
        units: if dequant.is_some() {
            "nats of log p(v) per image; bits/dim in the data's pixel levels"
        } else {
            "nats"
        }
        .into(),
        train_bits_per_dim: bpd(train_e.mean),
        heldout_bits_per_dim: bpd(heldout_e.mean),
        heldout_bits_per_dim_se: bpd_se,
        true_ll: true_ll(data),
        true_ll_expected: data.true_ll_expected,
        steps: trained.steps,
        final_train_loss: trained.final_train_loss,
        train_seconds: trained.train_seconds,
        train_samples_per_s: trained.train_samples_per_s,
        trained_with: trained.trained_with,
        eval_seconds,
        model: model_path.to_path_buf(),
    };
    checkpoint::write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

fn good(last_good: Option<u64>, path: &Path) -> String {
    match last_good {
        Some(s) => format!("the last good checkpoint (step {s}) is {}", path.display()),
        None => "no checkpoint was written before it".to_string(),
    }
}

fn record(
    logged: &[Logged],
    epoch: usize,
    log: &mut MetricsLog,
    last_loss: &mut f64,
    bar: &indicatif::ProgressBar,
    last_good: Option<u64>,
    model_path: &Path,
) -> Result<()> {
    for l in logged {
        log.write(l, epoch)?;
        if l.nonfinite > 0 {
            bail!(
                "training diverged: the loss was not finite at {} step(s) before step {}; {}",
                l.nonfinite,
                l.step,
                good(last_good, model_path)
            );
        }
        *last_loss = l.loss;
        let secs = log.start.elapsed().as_secs_f64();
        bar.set_position(l.step);
        bar.set_message(format!(
            "epoch {} loss {:.4} {:.0} samples/s",
            epoch + 1,
            l.loss,
            l.step as f64 * log.batch as f64 / secs
        ));
    }
    Ok(())
}

fn progress_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps  {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar
}

/// Mean exact log-density of the held-out points, where the truth is known.
fn true_ll(data: &Dataset) -> Option<f64> {
    let f = data.truth.as_ref()?;
    let t = &data.test;
    Some((0..t.rows()).map(|i| f(t.row(i))).sum::<f64>() / t.rows() as f64)
}

/// A trained model with the run configuration it was trained under (from its checkpoint).
pub fn load_model(path: &Path) -> Result<(Flow, Option<RunConfig>)> {
    let (flow, state) = checkpoint::load(path, None)?;
    let run = match state.as_ref().and_then(|s| s.extra.get("run")) {
        Some(json) => Some(
            serde_json::from_str(json).with_context(|| format!("{}: unreadable run configuration", path.display()))?,
        ),
        None => None,
    };
    Ok((flow, run))
}

/// The dataset a model is evaluated or sampled against: `spec` when given, else the one it
/// was trained on; `mode` overrides the preprocessing it was trained with.
pub fn model_data(flow: &Flow, run: Option<&RunConfig>, spec: Option<&str>, mode: Option<Mode>) -> Result<Dataset> {
    let mut cfg = match (run, spec) {
        (Some(r), _) => r.clone(),
        (None, Some(s)) => RunConfig::defaults(DataSpec::parse(s)?, flow.config.b, flow.config.seed),
        (None, None) => bail!("the checkpoint does not say which data it was trained on: pass --data"),
    };
    if let Some(s) = spec {
        cfg.data = DataSpec::parse(s)?;
    }
    if let Some(m) = mode {
        cfg.preprocess = m;
    }
    let data = cfg.data.load(cfg.sizes, cfg.data_seed, cfg.preprocess)?;
    if data.train.dim != flow.config.d {
        bail!("{} has {} dimensions per point but the model has D = {}", data.spec, data.train.dim, flow.config.d);
    }
    Ok(data)
}

/// One row of `mflow eval`: the estimate at one S.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalRow {
    pub split: &'static str,
    pub samples: usize,
    pub exact: bool,
    pub ll: f64,
    pub ll_se: f64,
    pub bits_per_dim: Option<f64>,
    pub bits_per_dim_se: Option<f64>,
    pub points: usize,
    pub seconds: f64,
    /// Flow evaluations (points × S) per second.
    pub evals_per_s: f64,
}

/// Thesis eq. 8 on a split for each S in `samples` (the S-curve).
pub fn evaluate(
    gpu: &Gpu,
    flow: &Flow,
    data: &Dataset,
    split: Split,
    samples: &[usize],
    limit: Option<usize>,
) -> Result<Vec<EvalRow>> {
    let mut rows = Vec::new();
    for &s in samples {
        let t = Instant::now();
        let ev = Evaluator::for_points(gpu, flow, s, data.split(split).rows());
        let ll = split_log_likelihood(gpu, &ev, data, split, limit)?;
        let secs = t.elapsed().as_secs_f64();
        let e = Estimate::of(&ll);
        let dequant = data.image.as_ref().filter(|i| i.pre.mode == Mode::Dequant);
        let d = flow.config.d as f64;
        rows.push(EvalRow {
            split: split.name(),
            samples: ev.s,
            exact: flow.config.b == 0,
            ll: e.mean,
            ll_se: e.se,
            bits_per_dim: dequant.map(|i| i.pre.bits_per_dim(e.mean, flow.config.d)),
            bits_per_dim_se: dequant.map(|_| e.se / (d * std::f64::consts::LN_2)),
            points: e.n,
            seconds: secs,
            evals_per_s: (e.n * ev.s) as f64 / secs,
        });
        if flow.config.b == 0 {
            break; // exact: every S gives the same number
        }
    }
    Ok(rows)
}
