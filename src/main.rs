//! The `mflow` command line: parses, then calls the library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use mflow::data::{DataSpec, SplitSizes};
use mflow::gpu::{AdapterChoice, Gpu};
use mflow::kernels::gemm::Variant;
use mflow::model::FlowConfig;
use mflow::run::RunConfig;
use mflow::train::OptimConfig;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "mflow", version, about = "Marginalizing flows on the GPU through WebGPU")]
struct Cli {
    /// Use the adapter whose name contains this (case-insensitive); also MFLOW_ADAPTER.
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DataKind {
    /// x = u^ψ, u ~ N(0, I_D) (MODEL.md's synthetic Gaussian powers)
    Gauss,
    /// two interleaving half circles with Gaussian noise
    Moons,
}

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// Dataset. Without it, the default job: half-moons with B = 2 on a short schedule
    /// (64 epochs) that finishes in a few minutes on a CPU adapter.
    #[arg(long, value_enum)]
    data: Option<DataKind>,
    /// Dimensions D of the Gaussian data.
    #[arg(long, default_value_t = 2)]
    dim: usize,
    /// Power ψ of the Gaussian data.
    #[arg(long, default_value_t = 1)]
    psi: u32,
    /// Noise σ of the half-moons.
    #[arg(long, default_value_t = 0.1)]
    noise: f64,
    /// Auxiliary dimensions B (0: an ordinary normalizing flow).
    #[arg(long, default_value_t = 2)]
    aux: usize,
    /// Seed of the model's initialisation, shuffles and training noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of the dataset's splits.
    #[arg(long, default_value_t = 0)]
    data_seed: u64,
    /// Output folder: metrics.jsonl, model.safetensors, summary.json, samples.png.
    #[arg(long, default_value = "runs/default")]
    out: PathBuf,
    /// Epochs [default: 1024 (MODEL.md); 64 for the default job].
    #[arg(long)]
    epochs: Option<usize>,
    /// Minibatch [default: 256 gauss, 64 moons].
    #[arg(long)]
    batch: Option<usize>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Clip the global gradient norm to this [default: none].
    #[arg(long)]
    clip: Option<f64>,
    /// Blocks L (2L couplings).
    #[arg(long, default_value_t = 4)]
    blocks: usize,
    /// Hidden layers per conditioner.
    #[arg(long, default_value_t = 2)]
    depth: usize,
    /// Hidden width H.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Importance samples S for the final marginal log-likelihood.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Steps between loss readbacks.
    #[arg(long, default_value_t = 64)]
    log_every: usize,
    /// Training points [default: 2048, MODEL.md].
    #[arg(long, default_value_t = 2048)]
    train_size: usize,
    /// Validation points.
    #[arg(long, default_value_t = 2048)]
    validation_size: usize,
    /// Held-out test points.
    #[arg(long, default_value_t = 10_000)]
    test_size: usize,
    /// Epochs between checkpoints [default: a tenth of the run].
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The default job's schedule: MODEL.md's 1024 epochs take ~15 minutes on lavapipe.
const DEFAULT_JOB_EPOCHS: usize = 64;

impl TrainArgs {
    fn config(&self) -> RunConfig {
        let kind = self.data.unwrap_or(DataKind::Moons);
        let data = match kind {
            DataKind::Gauss => DataSpec::Gauss { d: self.dim, psi: self.psi },
            DataKind::Moons => DataSpec::Moons { noise: self.noise },
        };
        let batch = self.batch.unwrap_or(match kind {
            DataKind::Gauss => 256,
            DataKind::Moons => 64,
        });
        let epochs = self.epochs.unwrap_or(if self.data.is_none() { DEFAULT_JOB_EPOCHS } else { 1024 });
        RunConfig {
            flow: FlowConfig {
                d: data.dim(),
                b: self.aux,
                blocks: self.blocks,
                depth: self.depth,
                hidden: self.hidden,
                seed: self.seed,
            },
            data,
            data_seed: self.data_seed,
            sizes: SplitSizes { train: self.train_size, validation: self.validation_size, test: self.test_size },
            optim: OptimConfig { batch, lr: self.lr, clip: self.clip, noise_seed: self.seed },
            epochs,
            samples: self.samples,
            log_every: self.log_every.max(1),
            checkpoint_every: self.checkpoint_every.unwrap_or((epochs / 10).max(1)),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train a marginalizing flow on the GPU, then evaluate its marginal log-likelihood.
    Train(TrainArgs),
    /// List every adapter with backend, type, driver, limits and features.
    Info,
    /// Builds a half-moons MF, runs it forward and inverse on the GPU, checks it on the CPU.
    Demo {
        #[arg(long, default_value_t = 256)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Benchmarks: GFLOP/s and samples/s.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// GEMM GFLOP/s at the shapes training uses.
    Gemm {
        /// Fewer repetitions.
        #[arg(long)]
        quick: bool,
        /// Time both kernel variants, not only the one this adapter uses.
        #[arg(long)]
        all: bool,
    },
    /// Training samples/s and GEMM share: moons-shaped and MNIST-shaped models.
    Train {
        /// Timed steps per trial.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Only the small (moons) configuration.
        #[arg(long)]
        small: bool,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let choice = AdapterChoice::from_cli(cli.adapter);
    match cli.command {
        Command::Info => {
            print!("{}", mflow::gpu::context::describe_adapters());
            let gpu = Gpu::new(&choice)?;
            println!("mflow would use: {}", gpu.describe());
        }
        Command::Train(args) => {
            let gpu = Gpu::new(&choice)?;
            let cfg = args.config();
            eprintln!("adapter: {}", gpu.describe());
            if args.data.is_none() {
                eprintln!(
                    "default job: half-moons MF with B = {}, {} epochs (MODEL.md's schedule: `mflow train --data moons`)",
                    cfg.flow.b, cfg.epochs
                );
            }
            let s = mflow::run::train(&gpu, &cfg, &args.out, !args.quiet)?;
            println!(
                "data {}  D={} B={}  {} steps in {:.1} s ({:.0} samples/s)",
                s.data, cfg.flow.d, cfg.flow.b, s.steps, s.train_seconds, s.train_samples_per_s
            );
            println!("train   log-likelihood {:>9.4} ± {:.4} nats  (S = {})", s.train_ll, s.train_ll_se, s.samples);
            println!(
                "heldout log-likelihood {:>9.4} ± {:.4} nats  (test split, S = {})",
                s.heldout_ll, s.heldout_ll_se, s.samples
            );
            if let Some(t) = s.true_ll {
                println!("truth                  {t:>9.4} nats  (exact density of the same held-out points)");
            }
            println!(
                "wrote {} (summary.json, metrics.jsonl, model.safetensors{})",
                args.out.display(),
                if cfg.flow.d == 2 { ", samples.png" } else { "" }
            );
        }
        Command::Demo { batch, seed } => mflow::demo::run(&Gpu::new(&choice)?, batch, seed)?,
        Command::Bench { what: BenchWhat::Gemm { quick, all } } => {
            let gpu = Gpu::new(&choice)?;
            let variants =
                if all { vec![Variant::Reg, Variant::Tiled, Variant::Vec4] } else { vec![Variant::for_adapter(&gpu)] };
            mflow::bench::bench_gemm(&gpu, &variants, quick)?;
        }
        Command::Bench { what: BenchWhat::Train { steps, small } } => {
            let gpu = Gpu::new(&choice)?;
            println!("adapter: {}", gpu.describe());
            let moons = FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 128, seed: 0 };
            let mnist = FlowConfig { d: 784, b: 4, blocks: 4, depth: 2, hidden: 1024, seed: 0 };
            for batch in [64, 256] {
                mflow::bench::bench_train(&gpu, "moons", moons.clone(), batch, steps)?;
            }
            if !small {
                for batch in [32, 256] {
                    mflow::bench::bench_train(&gpu, "mnist", mnist.clone(), batch, (steps / 5).max(2))?;
                }
            }
        }
    }
    Ok(())
}
