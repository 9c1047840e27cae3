//! The `mflow` commands, one call each. `main.rs` parses the command line into the argument
//! structs defined here (clap derives) and hands each to its function; everything a command
//! does, from checking its flags and files to printing its results, is here or below.

pub mod bench;
mod eval;
mod sample;
mod sweep;
mod train;

pub use eval::{eval, EvalArgs};
pub use sample::{sample, SampleArgs};
pub use sweep::{sweep, SweepArgs};
pub use train::{train, TrainArgs};

use crate::gpu::{AdapterChoice, Gpu};
use crate::run::Overrides;
use crate::tune::Tuning;
use anyhow::Result;
use std::path::PathBuf;

/// What every command shares: the adapter asked for and where kernel choices come from.
pub struct Context {
    pub adapter: AdapterChoice,
    pub tuning: Tuning,
    /// What asked for the built-in kernels, if anything did ("--no-tune", "MFLOW_NO_TUNE").
    pub no_tune_by: Option<&'static str>,
}

impl Context {
    /// `--adapter` (else MFLOW_ADAPTER) and `--no-tune` (else MFLOW_NO_TUNE).
    pub fn new(adapter: Option<String>, no_tune: bool) -> Self {
        let no_tune_by = if no_tune {
            Some("--no-tune")
        } else if crate::tune::env_no_tune() {
            Some("MFLOW_NO_TUNE")
        } else {
            None
        };
        Self { adapter: AdapterChoice::from_cli(adapter), tuning: Tuning::from_flag(no_tune), no_tune_by }
    }

    /// Opens the adapter, saying so when it is a slow software one.
    pub fn open_gpu(&self) -> Result<Gpu> {
        let gpu = Gpu::new(&self.adapter)?;
        if let Some(hint) = gpu.slow_adapter_hint() {
            eprintln!("{hint}");
        }
        Ok(gpu)
    }
}

/// `mflow info`: every adapter, and the one mflow would use.
pub fn info(ctx: &Context) -> Result<()> {
    print!("{}", crate::gpu::context::describe_adapters());
    let gpu = Gpu::new(&ctx.adapter)?;
    println!("mflow would use: {}", gpu.describe());
    Ok(())
}

/// `mflow demo`: a half-moons MF forward and inverse on the GPU, checked on the CPU.
pub fn demo(ctx: &Context, batch: usize, seed: u64) -> Result<()> {
    crate::demo::run(&Gpu::new(&ctx.adapter)?, batch, seed)
}

/// `mflow report`: the thesis's tables and figures from sweep folders.
pub fn report(dirs: &[PathBuf], out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| dirs[0].clone());
    let refs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
    let md = crate::report::report(&refs, &out)?;
    print!("{md}");
    println!("wrote {}", out.join("report.md").display());
    Ok(())
}

// Flag parsers: a bad value is refused by clap with a message naming the flag.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(_) => Err("expected a whole number ≥ 1".into()),
    }
}

pub fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("expected a positive finite number".into()),
    }
}

pub fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("expected a finite number ≥ 0".into()),
    }
}

pub fn positive_f32(s: &str) -> Result<f32, String> {
    positive(s).and_then(|v| if v <= f32::MAX as f64 { Ok(v as f32) } else { Err("too large".into()) })
}

/// The schedule and evaluation flags `train` and `sweep` share, turned into `Overrides` in
/// one place (`overrides`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ScheduleArgs {
    /// Epochs [default: MODEL.md's per dataset; 300 for the default job].
    #[arg(long, value_parser = at_least_one)]
    pub epochs: Option<usize>,
    /// Minibatch [default: MODEL.md's per dataset].
    #[arg(long, value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// Adam learning rate [default: MODEL.md's per dataset].
    #[arg(long, value_parser = positive)]
    pub lr: Option<f64>,
    /// Hidden width H [default: 128 for synthetic data and your own arrays, 1024 for images,
    /// 64 for the default job; a conv flow's conditioner channels: 64].
    #[arg(long, value_parser = at_least_one)]
    pub hidden: Option<usize>,
    /// Importance samples S for the final marginal log-likelihood [default: 200].
    #[arg(long, value_parser = at_least_one)]
    pub samples: Option<usize>,
    /// Training points of synthetic data [default: 2048].
    #[arg(long, value_parser = at_least_one)]
    pub train_size: Option<usize>,
    /// Held-out test points of synthetic data [default: 10000].
    #[arg(long, value_parser = at_least_one)]
    pub test_size: Option<usize>,
    /// Evaluate only the first N points of each split at the end [default: all].
    #[arg(long, value_parser = at_least_one)]
    pub eval_points: Option<usize>,
    /// Epochs between checkpoints [default: a tenth of the run].
    #[arg(long, value_parser = at_least_one)]
    pub checkpoint_every: Option<usize>,
}

impl ScheduleArgs {
    /// These flags as overrides of a run's defaults (unset flags change nothing).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            hidden: self.hidden,
            samples: self.samples,
            train_size: self.train_size,
            test_size: self.test_size,
            eval_points: self.eval_points,
            checkpoint_every: self.checkpoint_every,
            ..Default::default()
        }
    }
}
