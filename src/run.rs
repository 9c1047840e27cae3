//! A whole training run: data, training with logging and checkpoints, then the honest
//! evaluation (marginal LL on the training split and on the held-out test split, beside the
//! truth for synthetic data), samples, and `summary.json`.

use crate::checkpoint::{self, TrainState};
use crate::data::{DataSpec, Dataset, SplitSizes, Table};
use crate::eval::{Estimate, Evaluator};
use crate::gpu::Gpu;
use crate::model::{Flow, FlowConfig};
use crate::train::{Logged, OptimConfig, Trainer};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug, serde::Serialize)]
pub struct RunConfig {
    pub data: DataSpec,
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
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub data: String,
    pub adapter: String,
    pub config: RunConfig,
    pub samples: usize,
    pub train_ll: f64,
    pub train_ll_se: f64,
    pub heldout_ll: f64,
    pub heldout_ll_se: f64,
    pub heldout_split: &'static str,
    /// Mean exact log-density of the same held-out points (synthetic data).
    pub true_ll: Option<f64>,
    /// MODEL.md's analytic expected log-likelihood.
    pub true_ll_expected: Option<f64>,
    pub steps: u64,
    pub final_train_loss: f64,
    pub train_seconds: f64,
    pub train_samples_per_s: f64,
    pub eval_seconds: f64,
    pub model: PathBuf,
}

/// Minibatch `rows` of `t`, packed (batch, D).
fn gather(t: &Table, rows: &[usize], out: &mut Vec<f32>) {
    out.clear();
    for &r in rows {
        out.extend_from_slice(t.row(r));
    }
}

struct MetricsLog {
    file: std::io::BufWriter<std::fs::File>,
    start: Instant,
    batch: usize,
}

impl MetricsLog {
    fn write(&mut self, l: &Logged, epoch: usize) -> Result<()> {
        let secs = self.start.elapsed().as_secs_f64();
        let line = serde_json::json!({
            "step": l.step, "epoch": epoch, "loss": l.loss, "nonfinite_steps": l.nonfinite,
            "elapsed_s": secs, "samples_per_s": l.step as f64 * self.batch as f64 / secs.max(1e-9),
        });
        writeln!(self.file, "{line}")?;
        self.file.flush()?;
        Ok(())
    }
}

pub fn train(gpu: &Gpu, cfg: &RunConfig, out: &Path, progress: bool) -> Result<Summary> {
    let data = cfg.data.load(cfg.sizes, cfg.data_seed)?;
    if data.train.dim != cfg.flow.d {
        bail!("data has {} dimensions but the model D = {}", data.train.dim, cfg.flow.d);
    }
    let steps_per_epoch = data.train.rows() / cfg.optim.batch;
    if steps_per_epoch == 0 {
        bail!("batch {} is larger than the training set ({} rows)", cfg.optim.batch, data.train.rows());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let model_path = out.join("model.safetensors");
    let mut flow = Flow::new(cfg.flow.clone())?;
    let mut trainer = Trainer::new(gpu, &flow, &cfg.optim);
    let mut log = MetricsLog {
        file: std::io::BufWriter::new(std::fs::File::create(out.join("metrics.jsonl"))?),
        start: Instant::now(),
        batch: cfg.optim.batch,
    };
    let total = (steps_per_epoch * cfg.epochs) as u64;
    let bar = progress_bar(progress, total);
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.flow.seed ^ 0x5EED_DA7A);
    let mut order: Vec<usize> = (0..data.train.rows()).collect();
    let mut xb = Vec::new();
    let mut last_loss = f64::NAN;
    let mut last_good: Option<u64> = None;
    let start = Instant::now();
    let mut checkpoint_secs = 0.0;
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for b in 0..steps_per_epoch {
            gather(&data.train, &order[b * cfg.optim.batch..(b + 1) * cfg.optim.batch], &mut xb);
            let step = trainer.step + 1;
            let logged = trainer.step(gpu, &xb, step.is_multiple_of(cfg.log_every as u64) || step == total);
            record(&logged, epoch, &mut log, &mut last_loss, &bar, last_good, &model_path)?;
        }
        let last = epoch + 1 == cfg.epochs;
        if last || (epoch + 1) % cfg.checkpoint_every.max(1) == 0 {
            let t = Instant::now();
            let logged = trainer.drain(gpu);
            record(&logged, epoch, &mut log, &mut last_loss, &bar, last_good, &model_path)?;
            let (params, m, v) = trainer.download(gpu);
            if params.iter().any(|p| !p.is_finite()) {
                bail!(
                    "training diverged by step {} (non-finite parameters); {}",
                    trainer.step,
                    good(last_good, &model_path)
                );
            }
            flow.params = params;
            flow.actnorm_initialized = trainer.initialized();
            let state = TrainState { m, v, step: trainer.step, extra: Default::default() };
            checkpoint::save(&model_path, &flow, Some(&state))?;
            last_good = Some(trainer.step);
            checkpoint_secs += t.elapsed().as_secs_f64();
        }
    }
    let train_seconds = start.elapsed().as_secs_f64() - checkpoint_secs;
    bar.finish_and_clear();

    let t = Instant::now();
    let ev = Evaluator::new(gpu, &flow, cfg.samples);
    let eval_seed = 0xE7A1;
    let train_ll = Estimate::of(&ev.log_likelihood(gpu, &data.train, eval_seed)?);
    let heldout = ev.log_likelihood(gpu, &data.test, eval_seed)?;
    if heldout.iter().any(|v| !v.is_finite()) {
        bail!("the held-out log-likelihood is not finite for some points");
    }
    let heldout_ll = Estimate::of(&heldout);
    let eval_seconds = t.elapsed().as_secs_f64();
    let true_ll = true_ll(&data);
    if flow.config.d == 2 {
        let samples = crate::sample::sample(gpu, &flow, 2048, 1.0, cfg.flow.seed);
        crate::plot::scatter(&data.test, &samples, 512, &out.join("samples.png"))?;
    }
    let summary = Summary {
        data: data.spec.clone(),
        adapter: gpu.describe(),
        config: cfg.clone(),
        samples: ev.s,
        train_ll: train_ll.mean,
        train_ll_se: train_ll.se,
        heldout_ll: heldout_ll.mean,
        heldout_ll_se: heldout_ll.se,
        heldout_split: "test",
        true_ll,
        true_ll_expected: data.true_ll_expected,
        steps: trainer.step,
        final_train_loss: last_loss,
        train_seconds,
        train_samples_per_s: trainer.step as f64 * cfg.optim.batch as f64 / train_seconds,
        eval_seconds,
        model: model_path,
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
