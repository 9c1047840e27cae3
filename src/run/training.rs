//! The one training loop. It trains 1..N models of one shape in the same dispatches (a
//! single run is N = 1), and every run gets the same care: checkpoints every
//! `checkpoint_every` epochs and at the end, divergence stopped within one logging interval
//! with only good checkpoints kept, SIGINT/SIGTERM answered with a checkpoint, exact resume,
//! and one `metrics.jsonl` per run.

use super::config::{LrKind, RunConfig, Select};
use super::evaluate::{split_log_likelihood, EVAL_SEED};
use super::finish::{finish, Summary, Trained};
use super::folder::{MetricsLog, RunFolder};
use super::schedule::{batch_stream, Schedule};
use crate::checkpoint::{self, TrainState};
use crate::data::{DataSpec, Dataset, Split};
use crate::eval::{Estimate, Evaluator};
use crate::gpu::Gpu;
use crate::gpu_flow::{Footprint, Kernels, Mode as FlowMode};
use crate::interrupt::{self, Interrupted};
use crate::model::Flow;
use crate::train::{Logged, Trainer};
use crate::tune::{self, Need, Tuning};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `mflow train` lets a user decide about a run folder.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub progress: bool,
    /// Replace whatever run the folder holds.
    pub force: bool,
    /// Resume although data or optimiser settings differ from the checkpoint's.
    pub allow_changes: bool,
    /// Where the kernel choices come from (`--no-tune`: the defaults).
    pub tuning: Tuning,
    /// Called after every step (an embedding program's progress and stop button).
    pub on_step: Option<StepHook>,
}

/// What an embedding program (the Python package) sees of a run as it trains, and how it
/// stops one: called after every step with the step, the last step, and the (step, loss)
/// pairs read back during it (none on most steps; readbacks lag the GPU by a step or two,
/// and a group of models reads back one pair per model). Returning false asks for a stop,
/// as SIGINT does: a checkpoint of the current step, then `Interrupted`.
#[derive(Clone)]
pub struct StepHook(pub std::sync::Arc<StepFn>);

/// `StepHook`'s function: (step, last step, (step, loss) read back) → keep training.
pub type StepFn = dyn Fn(u64, u64, &[(u64, f64)]) -> bool + Send + Sync;

impl std::fmt::Debug for StepHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepHook")
    }
}

/// Where a run starts.
pub enum Start<'a> {
    /// From MODEL.md's initialisation; the folder must hold no run (unless forced).
    Fresh,
    /// From a checkpoint with training state.
    Resume { from: &'a Path, allow_changes: bool },
    /// From the folder's own checkpoint if it has one (sweeps), else fresh.
    Auto,
}

/// A run ready to train: its locked folder, configuration (D known), data, flow, and the
/// state it continues from.
pub struct Member {
    pub cfg: RunConfig,
    pub folder: RunFolder,
    data: Dataset,
    flow: Flow,
    state: Option<TrainState>,
    /// Settings that differ from the checkpoint's (allowed by the user); logged.
    changes: Vec<String>,
}

/// Loss far above where training started: the relative margin that counts as divergence.
const EXPLODE: f64 = 20.0;

fn total_steps(cfg: &RunConfig, rows: usize) -> Result<u64> {
    let spe = rows / cfg.optim.batch;
    if spe == 0 {
        bail!("--batch {}: larger than the training set ({rows} rows)", cfg.optim.batch);
    }
    let total = spe as u64 * cfg.epochs as u64;
    if total >= u32::MAX as u64 {
        bail!("--epochs {}: {total} steps, more than the 2^32 − 1 a run may take", cfg.epochs);
    }
    Ok(total)
}

impl Member {
    /// Loads the data and the starting point, validating everything before the folder is
    /// touched: a run that cannot train leaves the folder as it was.
    pub fn prepare(gpu: &Gpu, cfg: &RunConfig, folder: RunFolder, start: Start, force: bool) -> Result<Self> {
        Self::prepare_with(gpu, cfg, None, folder, start, force)
    }

    /// `prepare` on data already loaded (`DataSpec::Array`: arrays handed over in memory),
    /// or on what `cfg.data` names when `data` is None.
    pub fn prepare_with(
        gpu: &Gpu,
        cfg: &RunConfig,
        data: Option<Dataset>,
        folder: RunFolder,
        start: Start,
        force: bool,
    ) -> Result<Self> {
        cfg.validate()?;
        let data = match data {
            Some(d) => d,
            None => cfg.data.load(cfg.sizes, cfg.data_seed, cfg.preprocess)?,
        };
        let mut cfg = cfg.clone();
        cfg.fit_data(&data)?;
        // What identifies your own arrays is recorded, and compared on resume.
        let content = cfg.data.content_hash()?;
        if let DataSpec::Tabular(t) = &mut cfg.data {
            t.content = content;
            t.image = data.image.as_ref().map(|i| [i.channels, i.height, i.width]);
        }
        cfg.check_device(gpu, 1)?;
        let total = total_steps(&cfg, data.train.rows())?;
        let existing = folder.existing();
        let own = folder.model();
        let from = match start {
            Start::Fresh => None,
            Start::Resume { from, allow_changes } => Some((from.to_path_buf(), allow_changes)),
            Start::Auto => own.exists().then(|| (own.clone(), false)),
        };
        let (flow, state, changes) = match &from {
            None => (Flow::new(cfg.flow.clone())?, None, Vec::new()),
            Some((path, allow)) => {
                let (flow, state) = checkpoint::load(path, Some(&cfg.flow))?;
                let state = state.with_context(|| format!("{}: no training state to resume from", path.display()))?;
                if state.step > total {
                    bail!(
                        "{}: the checkpoint is at step {}, past this run's {total} steps",
                        path.display(),
                        state.step
                    );
                }
                let recorded: Option<RunConfig> = state.extra.get("run").and_then(|j| serde_json::from_str(j).ok());
                let changes = recorded.map(|r| r.training_changes(&cfg)).unwrap_or_default();
                if !changes.is_empty() && matches!(start, Start::Auto) {
                    bail!(
                        "{} holds a checkpoint trained under other settings ({}); move the folder away or use another --out",
                        folder.dir.display(),
                        changes.join("; ")
                    );
                }
                if !changes.is_empty() && !allow {
                    bail!(
                        "{}: this run's settings differ from the checkpoint's ({}); resuming would continue a different run. Use the checkpoint's settings, or pass --allow-config-change to continue anyway",
                        path.display(),
                        changes.join("; ")
                    );
                }
                if !changes.is_empty() {
                    eprintln!("resuming {} with changed settings: {}", path.display(), changes.join("; "));
                }
                (flow, Some(state), changes)
            }
        };
        let resuming_own = from.as_ref().is_some_and(|(p, _)| same_file(p, &own));
        if !existing.is_empty() && !resuming_own {
            // A run that ended before its first checkpoint left only metrics: nothing to keep.
            if !force && folder.holds_run() {
                let what = if existing.contains(&"summary.json") { "a finished run" } else { "a run" };
                bail!(
                    "--out {} holds {what} ({}); choose another --out, continue it with --resume {}, or replace it with --force",
                    folder.dir.display(),
                    existing.join(", "),
                    own.display()
                );
            }
            folder.clear()?;
        }
        if resuming_own {
            folder.clear_results()?;
        }
        // The best model so far travels with a checkpoint resumed into another folder; where
        // it is not beside the checkpoint, selection starts afresh from here.
        let mut state = state;
        if let (Some((from, _)), Some(st)) = (&from, state.as_mut()) {
            let theirs = from.with_file_name("best.safetensors");
            if !resuming_own && st.extra.contains_key("best_step") {
                match crate::checkpoint::read_regular(&theirs) {
                    Ok(bytes) => crate::checkpoint::write_atomic(&folder.best(), &bytes)?,
                    Err(_) => {
                        eprintln!(
                            "note: {} is not beside {}: the best model is chosen among the validations from here on",
                            theirs.display(),
                            from.display()
                        );
                        for k in ["best_step", "best_ll", "best_se", "since_best"] {
                            st.extra.remove(k);
                        }
                    }
                }
            }
        }
        Ok(Self { cfg, folder, data, flow, state, changes })
    }

    fn start_step(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.step)
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Runs with the same key can be trained in the same dispatches: one flow shape (Q, L,
/// depth, H, a conv flow's architecture) and one schedule (batch, learning rate and its
/// schedule, clip, averaging, epochs, training-set size, log and checkpoint intervals).
/// Data, D, B (within Q), seeds and preprocessing may differ. It reads as a description.
pub fn group_key(cfg: &RunConfig) -> String {
    let (f, o) = (&cfg.flow, &cfg.optim);
    // Image data fixes D only when loaded; its spec stands in for it.
    let width = if f.d > 0 { format!("q{}", f.q()) } else { format!("{} B={}", cfg.data.describe(), f.b) };
    // A conv flow's whole architecture (ε channels included) is part of its shape.
    let conv = f.conv.as_ref().map_or(String::new(), |a| {
        let scales = if a.scales == 0 { "by image size".to_string() } else { a.scales.to_string() };
        format!(
            " conv: scales {scales} hidden {} depth {} eps channels {} permute {:?}; head",
            a.hidden, a.depth, a.aux_channels, a.permute
        )
    });
    let limit = cfg.time_limit.map_or(String::new(), |m| format!(" limit {m} min"));
    let s = &cfg.lr_schedule;
    let schedule = match s.kind {
        LrKind::Constant if s.warmup == 0 => String::new(),
        LrKind::Constant => format!(" warmup {}", s.warmup),
        LrKind::Cosine => format!(" warmup {} cosine to {}", s.warmup, s.lr_min),
    };
    let ema = o.ema.map_or(String::new(), |d| format!(" ema {d}"));
    // An image dataset's training set is what its validation split leaves.
    let train = if cfg.data.is_image_dataset() {
        format!("{} held out", cfg.sizes.held_out_images)
    } else {
        format!("train {}", cfg.sizes.train)
    };
    let clip = o.clip.map_or("no clip".to_string(), |c| format!("clip {c}"));
    format!(
        "{width}{conv}{limit} L{} depth {} H{} batch {} lr {}{schedule}{ema} {clip} epochs {} {train} log {} ckpt {}",
        f.blocks, f.depth, f.hidden, o.batch, o.lr, cfg.epochs, cfg.log_every, cfg.checkpoint_every
    )
}

/// Trains one run: `mflow train`.
pub fn train(gpu: &Gpu, cfg: &RunConfig, out: &Path, resume: Option<&Path>, opts: &Options) -> Result<Summary> {
    train_on(gpu, cfg, None, out, resume, opts)
}

/// `train` on data already loaded (the Python package's arrays), or on `cfg.data` when None.
pub fn train_on(
    gpu: &Gpu,
    cfg: &RunConfig,
    data: Option<Dataset>,
    out: &Path,
    resume: Option<&Path>,
    opts: &Options,
) -> Result<Summary> {
    let member = prepare_run(gpu, cfg, data, out, resume, opts)?;
    train_members(gpu, vec![member], opts.progress, opts.tuning, opts.on_step.clone())?.pop().context("no result")?
}

/// `train_on`'s checks of its input, folder and starting point: everything that can refuse
/// a run before the GPU works on it (the Python package raises these as `ValueError`).
pub fn prepare_run(
    gpu: &Gpu,
    cfg: &RunConfig,
    data: Option<Dataset>,
    out: &Path,
    resume: Option<&Path>,
    opts: &Options,
) -> Result<Member> {
    cfg.validate()?;
    let folder = RunFolder::lock(out)?;
    let start = match resume {
        Some(from) => Start::Resume { from, allow_changes: opts.allow_changes },
        None => Start::Fresh,
    };
    Member::prepare_with(gpu, cfg, data, folder, start, opts.force)
}

/// How one model's training is going.
struct Watch {
    log: MetricsLog,
    /// The first logged loss of the run (the divergence reference).
    initial: Option<f64>,
    last_loss: f64,
    /// The step of the last checkpoint written (or resumed from).
    last_good: Option<u64>,
    diverged: Option<String>,
    /// The best validation so far, and how many validations since it improved.
    best: Option<Best>,
    since_best: usize,
    /// The step at which patience ran out (early stopping).
    stopped: Option<u64>,
    /// The latest validation (what `--select last` reports).
    latest: Option<Best>,
}

/// A validation figure: its step and the log-likelihood's mean and standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Best {
    step: u64,
    ll: f64,
    se: f64,
}

impl Watch {
    /// Still training: neither diverged nor stopped early.
    fn live(&self) -> bool {
        self.diverged.is_none() && self.stopped.is_none()
    }

    /// The selection state a checkpoint carries, so that a resumed run selects as one
    /// trained straight through.
    fn selection_extra(&self, extra: &mut std::collections::HashMap<String, String>) {
        if let Some(b) = self.best {
            extra.insert("best_step".into(), b.step.to_string());
            extra.insert("best_ll".into(), format!("{:e}", b.ll));
            extra.insert("best_se".into(), format!("{:e}", b.se));
        }
        extra.insert("since_best".into(), self.since_best.to_string());
        if let Some(s) = self.stopped {
            extra.insert("stopped_at".into(), s.to_string());
        }
    }

    fn restore_selection(&mut self, extra: &std::collections::HashMap<String, String>) {
        let get = |k: &str| extra.get(k).and_then(|v| v.parse::<f64>().ok());
        if let (Some(step), Some(ll), Some(se)) = (get("best_step"), get("best_ll"), get("best_se")) {
            self.best = Some(Best { step: step as u64, ll, se });
        }
        self.since_best = get("since_best").map_or(0, |v| v as usize);
        self.stopped = get("stopped_at").map(|v| v as u64);
    }
}

impl Watch {
    fn observe(&mut self, l: &Logged, epoch: usize, batch: usize, start: Instant, first: u64) -> Result<()> {
        if self.diverged.is_some() {
            return Ok(());
        }
        let secs = start.elapsed().as_secs_f64();
        self.log.write(&json!({
            "step": l.step, "epoch": epoch, "loss": l.loss, "nonfinite_steps": l.nonfinite, "elapsed_s": secs,
            "samples_per_s": (l.step - first) as f64 * batch as f64 / secs.max(1e-9),
        }))?;
        let reason = if l.nonfinite > 0 {
            Some(format!("the loss was not finite at {} step(s) up to step {}", l.nonfinite, l.step))
        } else {
            match self.initial {
                None => {
                    self.initial = Some(l.loss);
                    None
                }
                Some(l0) if l.loss > l0 + EXPLODE * l0.abs().max(1.0) => Some(format!(
                    "the loss reached {:.4e} by step {}, far above the {l0:.4} it started from",
                    l.loss, l.step
                )),
                Some(_) => None,
            }
        };
        self.last_loss = l.loss;
        if let Some(r) = reason {
            self.diverge(l.step, r)?;
        }
        Ok(())
    }

    fn diverge(&mut self, step: u64, reason: String) -> Result<()> {
        self.log.write(&json!({ "step": step, "event": "diverged", "reason": reason }))?;
        self.diverged = Some(reason);
        Ok(())
    }
}

/// Trains `members` (one `group_key` and one starting step) together, then evaluates each
/// and writes its folder. The outer error stops everything (an interrupt, a lost device, a
/// full disk); a run that diverges or fails its evaluation gets its own error and the others
/// go on. Groups larger than the device holds are trained in parts.
pub fn train_members(
    gpu: &Gpu,
    mut members: Vec<Member>,
    progress: bool,
    tuning: Tuning,
    on_step: Option<StepHook>,
) -> Result<Vec<Result<Summary>>> {
    let Some(head) = members.first() else { return Ok(Vec::new()) };
    let (key, step0, batch) = (group_key(&head.cfg), head.start_step(), head.cfg.optim.batch);
    if let Some(m) = members.iter().find(|m| group_key(&m.cfg) != key || m.start_step() != step0) {
        bail!(
            "runs trained together must share a flow shape, schedule and starting step: {key:?} at {step0} vs {:?} at {}",
            group_key(&m.cfg),
            m.start_step()
        );
    }
    let fits = |k: usize| Footprint::of(&head.cfg.flow, batch, FlowMode::Training, k).is_some_and(|f| f.fits(gpu));
    let mut cap = members.len();
    while cap > 1 && !fits(cap) {
        cap = cap.div_ceil(2);
    }
    if cap < members.len() {
        let mut out = Vec::new();
        while !members.is_empty() {
            let part: Vec<Member> = members.drain(..cap.min(members.len())).collect();
            out.extend(train_members(gpu, part, progress, tuning, on_step.clone())?);
        }
        return Ok(out);
    }
    let rows = head.data.train.rows();
    if let Some(m) = members.iter().find(|m| m.data.train.rows() != rows) {
        bail!("{} has {} training rows, the group {rows}", m.data.spec, m.data.train.rows());
    }
    // The kernels for this shape: chosen once here, used by training and the evaluation after.
    let kernels = tune::kernels(gpu, tuning, &Need::run(&head.cfg.flow, batch))?;
    let mut group = Group::new(gpu, &members, &kernels, progress)?;
    group.on_step = on_step;
    let train_seconds = group.train()?;
    group.finish(train_seconds, progress, &kernels)
}

/// A group of runs training in the same dispatches: the trainer, each run's watch and latest
/// parameters, and the schedule they share.
struct Group<'a> {
    gpu: &'a Gpu,
    members: &'a [Member],
    trainer: Trainer,
    watch: Vec<Watch>,
    /// Each run's parameters as of its last checkpoint.
    flows: Vec<Flow>,
    cfg: RunConfig,
    rows: usize,
    batch: usize,
    /// The step the group resumes after (0: fresh), and the last.
    first: u64,
    total: u64,
    bar: indicatif::ProgressBar,
    start: Instant,
    /// The validation split's evaluators (one per data dimension D in the group) and how
    /// many of its points count, when validating.
    validators: Vec<(usize, Evaluator)>,
    validation_points: usize,
    /// Each run's parameter average at its last checkpoint (`--ema`).
    last_ema: Vec<Option<Vec<f32>>>,
    validation_seconds: f64,
    on_step: Option<StepHook>,
    /// The hook asked for a stop.
    stop_asked: bool,
}

impl<'a> Group<'a> {
    /// The trainer (restored where the runs resume) and each run's metrics log.
    fn new(gpu: &'a Gpu, members: &'a [Member], kernels: &Kernels, progress: bool) -> Result<Self> {
        let cfg = members[0].cfg.clone();
        let (rows, batch, first) = (members[0].data.train.rows(), cfg.optim.batch, members[0].start_step());
        let total = total_steps(&cfg, rows)?;
        let refs: Vec<&Flow> = members.iter().map(|m| &m.flow).collect();
        let seeds: Vec<u64> = members.iter().map(|m| m.cfg.optim.noise_seed).collect();
        let mut trainer = Trainer::new_models(gpu, &refs, &seeds, &cfg.optim, kernels);
        if first > 0 {
            // Every member starts at `first` > 0, so each has a state (see `start_step`).
            let states: Vec<&TrainState> = members.iter().filter_map(|m| m.state.as_ref()).collect();
            let m: Vec<f32> = states.iter().flat_map(|s| s.m.iter().copied()).collect();
            let v: Vec<f32> = states.iter().flat_map(|s| s.v.iter().copied()).collect();
            // A checkpoint written without an average starts one at its parameters.
            let ema: Vec<f32> = states
                .iter()
                .zip(members)
                .flat_map(|(s, m)| s.ema.clone().unwrap_or_else(|| m.flow.params.clone()))
                .collect();
            trainer.restore(gpu, &m, &v, Some(&ema), first);
        }
        let watch = members
            .iter()
            .map(|m| {
                let mut log = MetricsLog::open(&m.folder.metrics(), (first > 0).then_some(first))?;
                if first > 0 {
                    log.write(&json!({ "step": first, "event": "resumed", "changed": m.changes }))?;
                }
                let initial = m.state.as_ref().and_then(|s| s.extra.get("initial_loss")).and_then(|v| v.parse().ok());
                let last_good = (first > 0).then_some(first);
                let mut w = Watch {
                    log,
                    initial,
                    last_loss: f64::NAN,
                    last_good,
                    diverged: None,
                    best: None,
                    since_best: 0,
                    stopped: None,
                    latest: None,
                };
                if let Some(s) = &m.state {
                    w.restore_selection(&s.extra);
                }
                Ok(w)
            })
            .collect::<Result<Vec<_>>>()?;
        let bar = progress_bar(progress, total);
        bar.set_position(first);
        let flows = members.iter().map(|m| m.flow.clone()).collect();
        let sel = &cfg.selection;
        let val_rows = members.iter().map(|m| m.data.validation.rows()).min().unwrap_or(0);
        let points = val_rows.min(sel.validation_points);
        let mut validators: Vec<(usize, Evaluator)> = Vec::new();
        if sel.validate_every > 0 && points == 0 && first < total {
            bar.suspend(|| {
                eprintln!(
                    "note: {} has no validation split: no validations, the last model is evaluated",
                    members[0].data.spec
                )
            });
        }
        if sel.validate_every > 0 && points > 0 {
            for m in members {
                let d = m.flow.config.d;
                if validators.iter().all(|(vd, _)| *vd != d) {
                    validators.push((d, Evaluator::for_points(gpu, &m.flow, sel.validation_samples, points, kernels)?));
                }
            }
        }
        let start = Instant::now();
        Ok(Self {
            gpu,
            members,
            trainer,
            watch,
            flows,
            cfg,
            rows,
            batch,
            first,
            total,
            bar,
            start,
            validators,
            validation_points: points,
            last_ema: vec![None; members.len()],
            validation_seconds: 0.0,
            on_step: None,
            stop_asked: false,
        })
    }

    /// Validates every run still training at `step`: the validation split's log-likelihood
    /// (exact for B = 0, else S = --validation-samples with the fixed evaluation seed), logged;
    /// a better one is written to best.safetensors; patience counts the others. Returns
    /// whether a run stopped early here.
    fn validate(&mut self, step: u64) -> Result<bool> {
        if self.validators.is_empty() {
            return Ok(false);
        }
        let (t, points) = (Instant::now(), self.validation_points);
        let mut stopped = false;
        for (z, m) in self.members.iter().enumerate() {
            if !self.watch[z].live() {
                continue;
            }
            // Validated and kept: the average where one is kept (`--ema`), else the parameters.
            let avg = self.trainer.download_ema(self.gpu, z)?;
            let params = match &avg {
                Some(a) => a.clone(),
                None => self.trainer.download_params(self.gpu, z)?,
            };
            // Present: one evaluator per D of the group (`new`).
            let ev = &self.validators.iter().find(|(d, _)| *d == m.flow.config.d).expect("an evaluator per D").1;
            ev.upload_params(self.gpu, &params);
            let ll = match split_log_likelihood(self.gpu, ev, &m.data, Split::Validation, Some(points), EVAL_SEED) {
                Ok(ll) => ll,
                Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Err(e),
                Err(e) if e.downcast_ref::<crate::gpu::DeviceError>().is_some() => return Err(e),
                Err(e) => {
                    self.watch[z].diverge(step, format!("the validation failed at step {step}: {e:#}"))?;
                    continue;
                }
            };
            let e = Estimate::of(&ll);
            let w = &mut self.watch[z];
            w.latest = Some(Best { step, ll: e.mean, se: e.se });
            w.log.write(
                &json!({ "event": "validation", "step": step, "ll": e.mean, "se": e.se, "S": ev.s, "points": e.n }),
            )?;
            if w.best.is_none_or(|b| e.mean > b.ll) {
                w.best = Some(Best { step, ll: e.mean, se: e.se });
                w.since_best = 0;
                // Adam's moments only for a new best (its checkpoint can be resumed).
                let (_, mm, vv) = self.trainer.download_model(self.gpu, z)?;
                let mut flow = self.flows[z].clone();
                flow.params = params;
                flow.actnorm_initialized = self.trainer.initialized();
                let mut extra = run_extra(m)?;
                extra.insert("validation_ll".into(), format!("{:e}", e.mean));
                let state = TrainState { m: mm, v: vv, ema: avg, step, extra };
                checkpoint::save(&m.folder.best(), &flow, Some(&state))?;
            } else {
                w.since_best += 1;
                if self.cfg.selection.patience.is_some_and(|p| w.since_best >= p) {
                    w.stopped = Some(step);
                    stopped = true;
                    // since_best > 0 only after a first validation set the best.
                    let b = w.best.expect("a run without a best validation has not waited");
                    w.log
                        .write(&json!({ "event": "early_stop", "step": step, "best_step": b.step, "best_ll": b.ll }))?;
                    let (dir, waited) = (m.folder.dir.display(), w.since_best);
                    self.bar.suspend(|| {
                        eprintln!(
                            "{dir}: stopped early at step {step}: no better validation log-likelihood in {waited} validations (best {:.4} at step {})",
                            b.ll, b.step
                        )
                    });
                }
            }
        }
        self.validation_seconds += t.elapsed().as_secs_f64();
        Ok(stopped)
    }

    /// `--time-limit` reached at `step`: every live run stops there, saying so.
    fn stop_at_time_limit(&mut self, step: u64) -> Result<()> {
        let minutes = self.cfg.time_limit.unwrap_or(0.0);
        for (w, m) in self.watch.iter_mut().zip(self.members.iter()) {
            if w.live() {
                w.stopped = Some(step);
                w.log.write(&json!({ "event": "time_limit", "step": step, "minutes": minutes }))?;
                let dir = m.folder.dir.display();
                self.bar.suspend(|| {
                    eprintln!("{dir}: stopped at step {step}: --time-limit {minutes} minutes of training reached")
                });
            }
        }
        Ok(())
    }

    /// Logs what the trainer read back, checks it for divergence and updates the bar.
    fn handle(&mut self, logged: Vec<Logged>, epoch: usize) -> Result<()> {
        for l in &logged {
            self.watch[l.model].observe(l, epoch, self.batch, self.start, self.first)?;
        }
        if let Some(step) = logged.last().map(|l| l.step) {
            let live: Vec<f64> = self.watch.iter().filter(|w| w.diverged.is_none()).map(|w| w.last_loss).collect();
            let models = self.members.len();
            self.bar.set_position(step);
            self.bar.set_message(format!(
                "epoch {} loss {:.4}{} {:.0} samples/s",
                epoch + 1,
                live.iter().sum::<f64>() / live.len().max(1) as f64,
                if models > 1 { format!(" (mean of {} models)", live.len()) } else { String::new() },
                (step - self.first) as f64 * (models * self.batch) as f64
                    / self.start.elapsed().as_secs_f64().max(1e-9)
            ));
        }
        Ok(())
    }

    /// Writes a checkpoint for every run still training, after checking its parameters.
    fn checkpoint(&mut self) -> Result<Vec<(u64, PathBuf)>> {
        let (gpu, step) = (self.gpu, self.trainer.step);
        let mut written = Vec::new();
        for (z, m) in self.members.iter().enumerate() {
            // A run stopped early keeps the checkpoint of the step it stopped at.
            if self.watch[z].diverged.is_some() || self.watch[z].stopped.is_some_and(|s| s < step) {
                continue;
            }
            let (params, mm, vv) = self.trainer.download_model(gpu, z)?;
            if params.iter().any(|p| !p.is_finite()) {
                self.watch[z].diverge(step, format!("the parameters were not finite at step {step}"))?;
                continue;
            }
            self.flows[z].params = params;
            self.flows[z].actnorm_initialized = self.trainer.initialized();
            let mut extra = run_extra(m)?;
            if let Some(l0) = self.watch[z].initial {
                extra.insert("initial_loss".into(), l0.to_string());
            }
            self.watch[z].selection_extra(&mut extra);
            let path = m.folder.model();
            let ema = self.trainer.download_ema(gpu, z)?;
            self.last_ema[z].clone_from(&ema);
            checkpoint::save(&path, &self.flows[z], Some(&TrainState { m: mm, v: vv, ema, step, extra }))?;
            self.watch[z].last_good = Some(step);
            written.push((step, path));
        }
        Ok(written)
    }

    /// The steps from `first + 1` to `total`, with checkpoints on the schedule and on a
    /// signal; returns the seconds spent training (checkpoints not counted).
    fn train(&mut self) -> Result<f64> {
        let (gpu, batch, first, total) = (self.gpu, self.batch, self.first, self.total);
        let spe = (self.rows / batch) as u64;
        let streams: Vec<_> = self
            .members
            .iter()
            .map(|m| {
                let sched = Schedule { rows: self.rows, batch, seed: m.cfg.flow.seed };
                let pre = m.data.image.as_ref().map(|i| i.pre.clone());
                batch_stream(m.data.train.clone(), pre, sched, first + 1, total)
            })
            .collect();
        let dmax = self.members.iter().map(|m| m.flow.config.d).max().unwrap_or(0);
        let mut x = vec![0f32; self.members.len() * batch * dmax];
        let mut checkpoint_secs = 0.0;
        if first == total {
            // Resumed at its last step: nothing to train, but the folder gets the model its
            // summary names (it may be another folder than the checkpoint's).
            self.checkpoint()?;
        }
        for step in first + 1..=total {
            if let Some(signal) = interrupt::requested().or(self.stop_asked.then_some(interrupt::SIGINT)) {
                let epoch = (step.saturating_sub(2) / spe) as usize;
                let logged = self.trainer.drain(gpu)?;
                self.handle(logged, epoch)?;
                let checkpoints = if self.trainer.step > first {
                    self.checkpoint()?
                } else {
                    self.members.iter().filter(|_| first > 0).map(|m| (first, m.folder.model())).collect()
                };
                self.bar.abandon();
                return Err(Interrupted { signal, checkpoints, during: "training" }.into());
            }
            for (z, rx) in streams.iter().enumerate() {
                let xb = rx.recv().context("a minibatch thread stopped")?;
                let d = self.members[z].flow.config.d;
                for (r, row) in xb.chunks(d).enumerate() {
                    x[(z * batch + r) * dmax..][..d].copy_from_slice(row);
                }
            }
            let epoch = ((step - 1) / spe) as usize;
            let mut save =
                step == total || (step.is_multiple_of(spe) && (epoch + 1).is_multiple_of(self.cfg.checkpoint_every));
            let every = self.cfg.selection.validate_every;
            let validate =
                every > 0 && (step == total || (step.is_multiple_of(spe) && (epoch + 1).is_multiple_of(every)));
            self.trainer.set_lr(self.cfg.lr_schedule.lr_at(self.cfg.optim.lr, step, total));
            // The first step is logged alone: its loss is the divergence reference.
            let log = save || validate || step == first + 1 || step.is_multiple_of(self.cfg.log_every as u64);
            let logged = self.trainer.step(gpu, &x, log);
            let losses: Vec<(u64, f64)> = logged.iter().map(|l| (l.step, l.loss)).collect();
            self.handle(logged, epoch)?;
            gpu.check()?;
            if let Some(hook) = &self.on_step {
                self.stop_asked |= !(hook.0)(step, total, &losses);
            }
            if validate {
                let logged = self.trainer.drain(gpu)?;
                self.handle(logged, epoch)?;
                // A run that stops here keeps this step's checkpoint.
                save |= self.validate(step)?;
            }
            // The time limit, on the training time alone: checked after every step (a conv
            // step on lavapipe takes seconds, and logged steps can be minutes apart); the drain
            // below waits for the GPU to finish the steps submitted, which the checkpoint holds.
            let trained = || self.start.elapsed().as_secs_f64() - checkpoint_secs - self.validation_seconds;
            if step < total && self.cfg.time_limit.is_some_and(|m| trained() >= 60.0 * m) {
                let logged = self.trainer.drain(gpu)?;
                self.handle(logged, epoch)?;
                if every > 0 && !validate {
                    self.validate(step)?;
                }
                self.stop_at_time_limit(step)?;
                save = true;
            }
            if save {
                let t = Instant::now();
                let logged = self.trainer.drain(gpu)?;
                self.handle(logged, epoch)?;
                self.checkpoint()?;
                checkpoint_secs += t.elapsed().as_secs_f64();
            }
            if self.watch.iter().all(|w| !w.live()) {
                break;
            }
        }
        self.bar.finish_and_clear();
        Ok(self.start.elapsed().as_secs_f64() - checkpoint_secs - self.validation_seconds)
    }

    /// Evaluates every run that did not diverge and writes its summary.
    fn finish(self, train_seconds: f64, progress: bool, kernels: &Kernels) -> Result<Vec<Result<Summary>>> {
        let (models, step) = (self.members.len(), self.trainer.step);
        let mut out = Vec::new();
        for (z, m) in self.members.iter().enumerate() {
            let result = match &self.watch[z].diverged {
                Some(reason) => Err(diverged(reason, self.watch[z].last_good, &m.folder.model(), &m.cfg)),
                None => {
                    let w = &self.watch[z];
                    let mut flow = self.flows[z].clone();
                    if self.first == self.total {
                        flow.actnorm_initialized = true; // resumed at the end: evaluate the loaded model
                    }
                    let last = w.stopped.unwrap_or(step);
                    let best = w.best.filter(|_| m.cfg.selection.select == Select::Best);
                    // Under --ema the last model is the average at the last checkpoint.
                    if let Some(avg) = &self.last_ema[z] {
                        flow.params.clone_from(avg);
                    }
                    if let Some(b) = best {
                        flow = checkpoint::load(&m.folder.best(), Some(&flow.config))?.0;
                        debug_assert!(b.step <= last);
                    }
                    let trained = Trained {
                        steps: last,
                        final_train_loss: w.last_loss,
                        train_seconds,
                        train_samples_per_s: (step - self.first) as f64 * self.batch as f64 / train_seconds.max(1e-9),
                        trained_with: models,
                        selected: if best.is_some() { "best" } else { "last" },
                        selected_step: best.map_or(last, |b| b.step),
                        validation: best
                            .or(w.latest.filter(|v| v.step == last))
                            .map(|b| (b.ll, b.se, m.cfg.selection.validation_samples)),
                        validation_seconds: self.validation_seconds,
                    };
                    crate::run::finish::curves(&m.folder, &m.cfg, &trained)?;
                    finish(self.gpu, &m.cfg, &m.data, &flow, &m.folder, trained, progress, kernels)
                }
            };
            // An interrupted evaluation stops the group; the trained models are saved.
            if let Err(e) = &result {
                if let Some(i) = e.downcast_ref::<Interrupted>() {
                    let checkpoints = self.members[z..].iter().map(|m| (step, m.folder.model())).collect();
                    return Err(Interrupted { signal: i.signal, checkpoints, during: "evaluation" }.into());
                }
                if e.downcast_ref::<crate::gpu::DeviceError>().is_some() {
                    return Err(result.unwrap_err());
                }
            }
            out.push(result.with_context(|| format!("run in {}", m.folder.dir.display())));
        }
        Ok(out)
    }
}

/// What every checkpoint of a run records besides its tensors: the run's configuration and
/// the standardisation of its data.
fn run_extra(m: &Member) -> Result<std::collections::HashMap<String, String>> {
    let mut extra = std::collections::HashMap::from([("run".to_string(), serde_json::to_string(&m.cfg)?)]);
    if let Some(st) = &m.data.standardize {
        extra.insert("standardize".into(), serde_json::to_string(st)?);
    }
    Ok(extra)
}

fn diverged(reason: &str, last_good: Option<u64>, model: &Path, cfg: &RunConfig) -> anyhow::Error {
    let kept = match last_good {
        Some(s) => format!("the last good checkpoint (step {s}) is {}", model.display()),
        None => "no checkpoint was kept (none was good)".to_string(),
    };
    let clip = match cfg.optim.clip {
        Some(c) => format!("a smaller --clip (now {c})"),
        None => "--clip 1 to bound the gradient norm".to_string(),
    };
    anyhow::anyhow!(
        "training diverged: {reason}; {kept}. Try a lower --lr (now {}, e.g. --lr {}) or {clip}{}",
        cfg.optim.lr,
        cfg.optim.lr / 10.0,
        if last_good.is_some() {
            ", resuming from that checkpoint with --resume and --allow-config-change"
        } else {
            ""
        }
    )
}

fn progress_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
