//! The `mflow` command line: parses, then calls the library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use mflow::data::images::Mode;
use mflow::data::{DataSpec, Split};
use mflow::gpu::{AdapterChoice, Gpu};
use mflow::kernels::gemm::Variant;
use mflow::model::FlowConfig;
use mflow::output::Kind;
use mflow::run::interrupt::{self, Interrupted};
use mflow::run::{Overrides, RunConfig};
use mflow::sweep::Grid;
use std::path::PathBuf;

// Flag parsers: a bad value is refused by clap with a message naming the flag.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(_) => Err("expected a whole number ≥ 1".into()),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("expected a positive finite number".into()),
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("expected a finite number ≥ 0".into()),
    }
}

fn positive_f32(s: &str) -> Result<f32, String> {
    positive(s).and_then(|v| if v <= f32::MAX as f64 { Ok(v as f32) } else { Err("too large".into()) })
}

#[derive(Parser)]
#[command(name = "mflow", version, about = "Marginalizing flows on the GPU through WebGPU")]
struct Cli {
    /// Use the adapter whose name contains this (case-insensitive); also MFLOW_ADAPTER.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Use the built-in kernel choices instead of the ones tuned for this adapter (also
    /// MFLOW_NO_TUNE=1); see `mflow bench tune`.
    #[arg(long, global = true)]
    no_tune: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// Dataset: gauss[:d=D,psi=P], moons[:noise=S], mnist:DIR, fashion-mnist:DIR, kmnist:DIR,
    /// cifar10:DIR or digits (embedded). Without it, the default job: half-moons with B = 2
    /// on a short schedule (64 epochs) that finishes in a few minutes on a CPU adapter.
    #[arg(long)]
    data: Option<String>,
    /// Dimensions D of bare `gauss`.
    #[arg(long, value_parser = at_least_one)]
    dim: Option<usize>,
    /// Power ψ of bare `gauss`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=mflow::run::config::MAX_PSI as i64))]
    psi: Option<u32>,
    /// Noise σ of bare `moons`.
    #[arg(long, value_parser = positive)]
    noise: Option<f64>,
    /// Image preprocessing (MODEL.md): dequant (bits/dim) or thesis (nats per image).
    #[arg(long, value_enum)]
    preprocess: Option<Mode>,
    /// npy:PATH / csv:PATH: train, validation and test fractions of the file's rows,
    /// shuffled by --data-seed [default: 0.8,0.1,0.1].
    #[arg(long, value_delimiter = ',')]
    split_fractions: Option<Vec<f64>>,
    /// npy / csv data: model the columns as they are, not standardised by the training
    /// split's mean and std (figures are in the data's units either way).
    #[arg(long)]
    no_standardize: bool,
    /// Auxiliary dimensions B (0: an ordinary normalizing flow).
    #[arg(long, default_value_t = 2)]
    aux: usize,
    /// Seed of the model's initialisation, shuffles and training noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of synthetic data's splits.
    #[arg(long)]
    data_seed: Option<u64>,
    /// Output folder: metrics.jsonl, model.safetensors, summary.json, samples.png.
    #[arg(long, default_value = "runs/default")]
    out: PathBuf,
    /// Replace the run that --out holds (its files are removed first).
    #[arg(long)]
    force: bool,
    /// Epochs [default: MODEL.md's per dataset; 64 for the default job].
    #[arg(long, value_parser = at_least_one)]
    epochs: Option<usize>,
    /// Minibatch [default: MODEL.md's per dataset].
    #[arg(long, value_parser = at_least_one)]
    batch: Option<usize>,
    /// Adam learning rate [default: MODEL.md's per dataset].
    #[arg(long, value_parser = positive)]
    lr: Option<f64>,
    /// Clip the global gradient norm to this; 0 turns clipping off [default: MODEL.md's].
    #[arg(long, value_parser = non_negative)]
    clip: Option<f64>,
    /// Blocks L (2L couplings).
    #[arg(long, value_parser = at_least_one)]
    blocks: Option<usize>,
    /// Hidden layers per conditioner.
    #[arg(long)]
    depth: Option<usize>,
    /// Hidden width H [default: 128 for 2–4-dimensional data, 1024 for images].
    #[arg(long, value_parser = at_least_one)]
    hidden: Option<usize>,
    /// Importance samples S for the final marginal log-likelihood [default: 200].
    #[arg(long, value_parser = at_least_one)]
    samples: Option<usize>,
    /// Steps between loss readbacks and divergence checks.
    #[arg(long, value_parser = at_least_one)]
    log_every: Option<usize>,
    /// Training points of synthetic data [default: 2048].
    #[arg(long, value_parser = at_least_one)]
    train_size: Option<usize>,
    /// Validation points of synthetic data [default: 2048].
    #[arg(long)]
    validation_size: Option<usize>,
    /// Held-out test points of synthetic data [default: 10000].
    #[arg(long, value_parser = at_least_one)]
    test_size: Option<usize>,
    /// Epochs between checkpoints [default: a tenth of the run].
    #[arg(long, value_parser = at_least_one)]
    checkpoint_every: Option<usize>,
    /// Evaluate only the first N points of each split at the end [default: all].
    #[arg(long, value_parser = at_least_one)]
    eval_points: Option<usize>,
    /// Continue from this checkpoint (its configuration must match); exact: N steps, resume,
    /// M steps gives the parameters of N + M steps in one run.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// With --resume: continue although the data or optimiser settings differ from the
    /// checkpoint's (what changed is printed and logged in metrics.jsonl).
    #[arg(long)]
    allow_config_change: bool,
    /// 2-D data: also draw the model's density beside the truth (density.png).
    #[arg(long)]
    density_map: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The default job (`mflow train` alone): half-moons with B = 2 on a schedule that ends
/// within 0.15 nats of the truth in under 4 minutes on lavapipe (MODEL.md's 1024 epochs
/// at batch 64 take ~20): batch 256, lr 2e-3, 300 epochs; evaluated with S = 100 on 2000
/// points per split (standard error ≈ 0.016), with the density map beside the truth.
fn default_job(c: &mut RunConfig) {
    c.epochs = 300;
    c.optim.batch = 256;
    c.optim.lr = 2e-3;
    c.samples = 100;
    c.eval_points = Some(2000);
    c.density_map = true;
}

impl TrainArgs {
    fn data_spec(&self) -> Result<DataSpec> {
        let text = self.data.as_deref().unwrap_or("moons");
        let mut spec = DataSpec::parse(text)?;
        let given = |key: &str| {
            text.split_once(':').is_some_and(|(_, o)| o.split(',').any(|kv| kv.trim().starts_with(&format!("{key}="))))
        };
        let conflict = |flag: &str, key: &str, v: String, w: String| -> Result<()> {
            if given(key) && v != w {
                anyhow::bail!("{flag} {v} conflicts with --data {text} ({key}={w}): give it once");
            }
            Ok(())
        };
        match &mut spec {
            DataSpec::Gauss { d, psi } => {
                if let Some(v) = self.dim {
                    conflict("--dim", "d", v.to_string(), d.to_string())?;
                    *d = v;
                }
                if let Some(v) = self.psi {
                    conflict("--psi", "psi", v.to_string(), psi.to_string())?;
                    *psi = v;
                }
            }
            DataSpec::Moons { noise } => {
                if let Some(v) = self.noise {
                    conflict("--noise", "noise", v.to_string(), noise.to_string())?;
                    *noise = v;
                }
            }
            _ => {}
        }
        if let DataSpec::Tabular(t) = &mut spec {
            if let Some(f) = &self.split_fractions {
                if t.path.is_none() {
                    anyhow::bail!("--split-fractions applies to one file (npy:PATH); --data {text} names its splits");
                }
                let [a, b, c] = f[..] else {
                    anyhow::bail!("--split-fractions takes three fractions, train,validation,test (e.g. 0.8,0.1,0.1)");
                };
                t.fractions = [a, b, c];
            }
            t.standardize = !self.no_standardize;
        } else if self.split_fractions.is_some() || self.no_standardize {
            anyhow::bail!("--split-fractions and --no-standardize apply to npy: and csv: data only");
        }
        let gauss = matches!(spec, DataSpec::Gauss { .. });
        let moons = matches!(spec, DataSpec::Moons { .. });
        for (flag, set, ok) in [
            ("--dim", self.dim.is_some(), gauss),
            ("--psi", self.psi.is_some(), gauss),
            ("--noise", self.noise.is_some(), moons),
        ] {
            if set && !ok {
                anyhow::bail!(
                    "{flag} applies to {} data only, not --data {text}",
                    if moons || !gauss && flag == "--noise" { "moons" } else { "gauss" }
                );
            }
        }
        Ok(spec)
    }

    fn config(&self) -> Result<RunConfig> {
        let mut c = RunConfig::defaults(self.data_spec()?, self.aux, self.seed);
        if self.data.is_none() {
            default_job(&mut c);
        }
        c.density_map |= self.density_map;
        Overrides {
            epochs: self.epochs.or(Some(c.epochs)),
            batch: self.batch,
            lr: self.lr,
            clip: self.clip,
            blocks: self.blocks,
            depth: self.depth,
            hidden: self.hidden,
            samples: self.samples,
            log_every: self.log_every,
            train_size: self.train_size,
            validation_size: self.validation_size,
            test_size: self.test_size,
            checkpoint_every: self.checkpoint_every,
            eval_points: self.eval_points,
            preprocess: self.preprocess,
            data_seed: self.data_seed,
        }
        .apply(&mut c);
        c.validate()?;
        Ok(c)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train a marginalizing flow on the GPU, then evaluate its marginal log-likelihood.
    #[command(allow_negative_numbers = true)]
    Train(Box<TrainArgs>),
    /// The S-sample marginal log-likelihood (thesis eq. 8) of a trained model on a split.
    #[command(allow_negative_numbers = true)]
    Eval {
        /// A model file written by `mflow train`.
        #[arg(long)]
        model: PathBuf,
        /// Data (the --data syntax of train) [default: what the model was trained on].
        #[arg(long)]
        data: Option<String>,
        /// Split: train, validation or test.
        #[arg(long, default_value = "test")]
        split: String,
        /// Importance samples S; a list (1,10,100,1000) prints the S-curve.
        #[arg(long, default_value = "200", value_delimiter = ',', value_parser = at_least_one)]
        samples: Vec<usize>,
        /// Image preprocessing [default: the model's].
        #[arg(long, value_enum)]
        preprocess: Option<Mode>,
        /// Only the first N points of the split [default: all].
        #[arg(long, value_parser = at_least_one)]
        limit: Option<usize>,
        /// One JSON object per S instead of text.
        #[arg(long)]
        json: bool,
        /// Write log p(x) of every point (and bits/dim for images) to this .npy or .csv.
        #[arg(long)]
        per_point: Option<PathBuf>,
        /// Seed of the evaluation noise (ε, image dequantisation) [default: the fixed one
        /// training's summary uses]; vary it to measure the estimator's own spread.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Samples from a trained model: an image grid, or a 2-D scatter over the data.
    #[command(allow_negative_numbers = true)]
    Sample {
        #[arg(long)]
        model: PathBuf,
        /// Number of samples.
        #[arg(long, default_value_t = 64, value_parser = at_least_one)]
        n: usize,
        /// Temperature T: u ~ N(0, T² I).
        #[arg(long, default_value_t = 1.0, value_parser = positive_f32)]
        temperature: f32,
        /// Output: .png (image grid or 2-D scatter), or .npy / .csv (raw samples in the data's
        /// units, any D). Never an existing file of another kind, nor the model.
        #[arg(long, default_value = "samples.png")]
        out: PathBuf,
        /// Data to draw beside the samples [default: what the model was trained on].
        #[arg(long)]
        data: Option<String>,
        /// Images: leave out the last row of real images.
        #[arg(long)]
        no_real: bool,
        /// 2-D data: also write a heat map of log p to this PNG.
        #[arg(long)]
        density: Option<PathBuf>,
        /// Importance samples for the density heat map (B > 0).
        #[arg(long, default_value_t = 50, value_parser = at_least_one)]
        density_samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Run one of the thesis's experiment grids; resumable (finished runs are skipped,
    /// interrupted ones continue from their checkpoints) and shardable (--shard i/n).
    #[command(allow_negative_numbers = true)]
    Sweep {
        /// gauss, moons or images (with --data).
        grid: String,
        #[arg(long)]
        out: PathBuf,
        /// Image data for the images grid (the --data syntax of train).
        #[arg(long)]
        data: Option<String>,
        /// Seeds per configuration (0..N).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=mflow::sweep::MAX_SEEDS))]
        seeds: u64,
        /// Run only shard i of n (i/n): every n-th run from the i-th.
        #[arg(long)]
        shard: Option<String>,
        /// Print the runs and exit.
        #[arg(long)]
        list: bool,
        /// At most this many runs of one flow width Q trained together in the same
        /// dispatches [default: 0, as many as fit; 1 trains one at a time].
        #[arg(long, default_value_t = 0)]
        group: usize,
        #[arg(long, value_parser = at_least_one)]
        epochs: Option<usize>,
        #[arg(long, value_parser = at_least_one)]
        samples: Option<usize>,
        #[arg(long, value_parser = at_least_one)]
        hidden: Option<usize>,
        #[arg(long, value_parser = at_least_one)]
        batch: Option<usize>,
        #[arg(long, value_parser = positive)]
        lr: Option<f64>,
        #[arg(long, value_parser = at_least_one)]
        train_size: Option<usize>,
        #[arg(long, value_parser = at_least_one)]
        test_size: Option<usize>,
        #[arg(long, value_parser = at_least_one)]
        eval_points: Option<usize>,
        /// Epochs between checkpoints of every run [default: a tenth of the run].
        #[arg(long, value_parser = at_least_one)]
        checkpoint_every: Option<usize>,
    },
    /// Tables 2–4 (thesis protocol beside the honest one) and figures from sweep folders.
    Report {
        /// Sweep folders (shards are merged).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where report.md, report.csv and the figures go [default: the first folder].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List every adapter with backend, type, driver, limits and features.
    Info,
    /// Builds a half-moons MF, runs it forward and inverse on the GPU, checks it on the CPU.
    Demo {
        #[arg(long, default_value_t = 256, value_parser = at_least_one)]
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
    /// Sweep training: samples/s of many models trained in the same dispatches vs one at a time.
    Sweep {
        /// Model counts to time.
        #[arg(long, value_delimiter = ',', default_value = "1,8,64,225", value_parser = at_least_one)]
        models: Vec<usize>,
        /// Data dimensions D of each model.
        #[arg(long, default_value_t = 2, value_parser = at_least_one)]
        dim: usize,
        #[arg(long, default_value_t = 2)]
        aux: usize,
        #[arg(long, default_value_t = 128, value_parser = at_least_one)]
        hidden: usize,
        #[arg(long, default_value_t = 256, value_parser = at_least_one)]
        batch: usize,
        /// Steps per trial for one model (divided among larger groups, at least 2).
        #[arg(long, default_value_t = 16, value_parser = at_least_one)]
        steps: usize,
    },
    /// The input pipeline: host minibatch preparation vs GPU step, streamed vs fixed batches.
    Stream {
        /// Data (the --data syntax of train).
        #[arg(long, default_value = "digits")]
        data: String,
        #[arg(long, default_value_t = 4)]
        aux: usize,
        /// Hidden width [default: MODEL.md's].
        #[arg(long, value_parser = at_least_one)]
        hidden: Option<usize>,
        /// Minibatch [default: MODEL.md's].
        #[arg(long, value_parser = at_least_one)]
        batch: Option<usize>,
        #[arg(long, default_value_t = 50, value_parser = at_least_one)]
        steps: usize,
    },
    /// The S-sample estimator: flow evaluations/s, effective GFLOP/s, and the ratio to the
    /// GEMM rate at the evaluation's largest GEMM shape in the same run.
    Eval {
        #[arg(long, default_value_t = 2, value_parser = at_least_one)]
        dim: usize,
        #[arg(long, default_value_t = 2)]
        aux: usize,
        #[arg(long, default_value_t = 128, value_parser = at_least_one)]
        hidden: usize,
        /// Importance samples S per point.
        #[arg(long, default_value_t = 100, value_parser = at_least_one)]
        samples: usize,
        /// Points evaluated per trial.
        #[arg(long, default_value_t = 2000, value_parser = at_least_one)]
        points: usize,
        /// Timed trials (the median is printed).
        #[arg(long, default_value_t = 5, value_parser = at_least_one)]
        trials: usize,
    },
    /// Every benchmark in one run (GEMMs, training, evaluation, tuning, sweeps), printed and
    /// written as one JSON file with the adapter, its driver and limits.
    All {
        /// Where the JSON goes.
        #[arg(long, default_value = "bench-all.json")]
        json: PathBuf,
        /// Timed steps per training trial.
        #[arg(long, default_value_t = 20, value_parser = at_least_one)]
        steps: usize,
    },
    /// Times each kernel choice (fused couplings vs GEMMs) per shape class on this adapter,
    /// stores the faster in the tuning cache, and prints the table.
    Tune,
    /// Training samples/s and GEMM share: moons-shaped and MNIST-shaped models.
    Train {
        /// Timed steps per trial.
        #[arg(long, default_value_t = 20, value_parser = at_least_one)]
        steps: usize,
        /// Only the small (moons) configuration.
        #[arg(long)]
        small: bool,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        if let Some(i) = e.downcast_ref::<Interrupted>() {
            eprintln!("{i}");
            std::process::exit(i.exit_code());
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `mflow bench train`'s configurations: gauss Q = 2 and moons (Q = 4) at MODEL.md's
/// batches, and (unless `small`) MNIST-shaped models.
fn bench_train_all(gpu: &Gpu, steps: usize, small: bool) -> Result<()> {
    let gauss = FlowConfig { d: 2, b: 0, blocks: 4, depth: 2, hidden: 128, seed: 0 };
    let moons = FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 128, seed: 0 };
    mflow::bench::bench_train(gpu, "gauss", gauss, 256, steps)?;
    for batch in [64, 256] {
        mflow::bench::bench_train(gpu, "moons", moons.clone(), batch, steps)?;
    }
    if !small {
        let mnist = FlowConfig { d: 784, b: 4, blocks: 4, depth: 2, hidden: 1024, seed: 0 };
        for batch in [32, 256] {
            mflow::bench::bench_train(gpu, "mnist", mnist.clone(), batch, (steps / 5).max(2))?;
        }
    }
    Ok(())
}

/// `mflow bench tune`'s tables: the GEMM family, then fused vs GEMMs for the synthetic
/// shape classes (Q = 2..8, H = 128).
fn bench_tune(gpu: &Gpu) -> Result<()> {
    let e = mflow::tune::tune_gemm(gpu)?;
    println!("GEMM family per shape class (GFLOP/s of each candidate; tiny: 64x128x128, small: 256x128x128, large: 256x1024x1024):");
    for (class, rates) in &e.gflops {
        let r: Vec<String> = rates.iter().map(|(v, g)| format!("{v} {g:.2}")).collect();
        println!("  {class:<10} {}  choice: {}", r.join(", "), e.choice.get(class).map_or("?", |c| c.as_str()));
    }
    println!(
        "fused couplings' vec4 linears (s per moons-shaped forward of 4096 rows): 4 rows/invocation {:.4}, 8 rows {:.4}  choice: {}",
        e.fused_rows_s.get("rows4").copied().unwrap_or(f64::NAN),
        e.fused_rows_s.get("rows8").copied().unwrap_or(f64::NAN),
        if e.fused_rows8 { "8 rows" } else { "4 rows" }
    );
    mflow::bench::record(serde_json::json!({
        "bench": "tune_gemm", "gflops": e.gflops, "choice": e.choice, "fused_rows_s": e.fused_rows_s, "fused_rows8": e.fused_rows8,
    }));
    let configs: Vec<FlowConfig> = [2, 3, 4, 5, 6, 8]
        .into_iter()
        .map(|q| FlowConfig { d: 2, b: q - 2, blocks: 4, depth: 2, hidden: 128, seed: 0 })
        .collect();
    println!("{:<24} {:>12} {:>12}  choice", "shape class", "fused s", "GEMMs s");
    for (class, e) in mflow::tune::tune(gpu, &configs)? {
        println!("{class:<24} {:>12.4} {:>12.4}  {}", e.fused_s, e.unfused_s, if e.fused { "fused" } else { "GEMMs" });
        mflow::bench::record(serde_json::json!({
            "bench": "tune", "class": class, "fused_s": e.fused_s, "gemms_s": e.unfused_s, "choice": if e.fused { "fused" } else { "gemms" },
        }));
    }
    // Training: the spec's synthetic shapes at MODEL.md's batches.
    let classes: Vec<(FlowConfig, usize)> = [(2, 256), (4, 64), (4, 256), (8, 256)]
        .into_iter()
        .map(|(q, batch)| (FlowConfig { d: 2, b: q - 2, blocks: 4, depth: 2, hidden: 128, seed: 0 }, batch))
        .collect();
    println!("{:<32} {:>12} {:>12}  choice", "training class", "fused s", "GEMMs s");
    for (class, e) in mflow::tune::tune_training(gpu, &classes)? {
        println!("{class:<32} {:>12.5} {:>12.5}  {}", e.fused_s, e.unfused_s, if e.fused { "fused" } else { "GEMMs" });
        mflow::bench::record(serde_json::json!({
            "bench": "tune_training", "class": class, "fused_s": e.fused_s, "gemms_s": e.unfused_s, "choice": if e.fused { "fused" } else { "gemms" },
        }));
    }
    if let Some(p) = mflow::tune::cache_path() {
        println!("cached in {}", p.display());
    }
    Ok(())
}

/// Opens the adapter, saying so when it is a slow software one.
fn open_gpu(choice: &AdapterChoice) -> Result<Gpu> {
    let gpu = Gpu::new(choice)?;
    if let Some(hint) = gpu.slow_adapter_hint() {
        eprintln!("{hint}");
    }
    Ok(gpu)
}

fn run(cli: Cli) -> Result<()> {
    let choice = AdapterChoice::from_cli(cli.adapter);
    if cli.no_tune {
        mflow::tune::disable();
    }
    match cli.command {
        Command::Info => {
            print!("{}", mflow::gpu::context::describe_adapters());
            let gpu = Gpu::new(&choice)?;
            println!("mflow would use: {}", gpu.describe());
        }
        Command::Train(args) => {
            let cfg = args.config()?;
            if args.allow_config_change && args.resume.is_none() {
                anyhow::bail!("--allow-config-change applies to --resume only");
            }
            let gpu = open_gpu(&choice)?;
            interrupt::install()?;
            eprintln!("adapter: {}", gpu.describe());
            if args.data.is_none() {
                eprintln!(
                    "default job: half-moons MF with B = {}, {} epochs at batch {}, S = {} on {} points (MODEL.md's schedule: `mflow train --data moons`)",
                    cfg.flow.b,
                    cfg.epochs,
                    cfg.optim.batch,
                    cfg.samples,
                    cfg.eval_points.unwrap_or(0)
                );
            }
            let opts = mflow::run::Options {
                progress: !args.quiet,
                force: args.force,
                allow_changes: args.allow_config_change,
            };
            match mflow::run::train(&gpu, &cfg, &args.out, args.resume.as_deref(), &opts) {
                Ok(s) => {
                    print!("{}", s.report());
                    let figures: Vec<String> = ["samples.png", "density.png"]
                        .iter()
                        .map(|f| args.out.join(f))
                        .filter(|p| p.exists())
                        .map(|p| p.display().to_string())
                        .collect();
                    println!("wrote {} (figures: {})", args.out.display(), figures.join(", "));
                }
                Err(e) => {
                    if let Some(i) = e.downcast_ref::<Interrupted>() {
                        if let Some((_, path)) = i.checkpoints.first() {
                            eprintln!("to continue, run the same command with --resume {}", path.display());
                        }
                    }
                    return Err(e);
                }
            }
        }
        Command::Eval { model, data, split, samples, preprocess, limit, json, per_point, seed } => {
            let split = match split.as_str() {
                "train" => Split::Train,
                "validation" => Split::Validation,
                "test" => Split::Test,
                other => anyhow::bail!("--split {other:?}: expected train, validation or test"),
            };
            if let Some(p) = &per_point {
                mflow::output::check("--per-point", p, &[Kind::Npy, Kind::Csv], &[&model])?;
                if samples.len() > 1 {
                    anyhow::bail!("--per-point writes one S: give --samples a single value");
                }
            }
            let trained = mflow::run::load_model(&model)?;
            let data = mflow::run::model_data(&trained, data.as_deref(), preprocess)?;
            let gpu = open_gpu(&choice)?;
            interrupt::install()?;
            let seed = seed.unwrap_or(mflow::run::evaluate::EVAL_SEED);
            let rows = mflow::run::evaluate(&gpu, &trained.flow, &data, split, &samples, limit, seed)?;
            for r in &rows {
                if let Some(p) = &per_point {
                    r.write_per_point(p)?;
                }
                if json {
                    let mut v = serde_json::to_value(r)?;
                    v["per_point"] = per_point.as_ref().map(|p| p.display().to_string()).into();
                    println!("{v}");
                } else {
                    let bpd = match (r.bits_per_dim, r.bits_per_dim_se) {
                        (Some(b), Some(se)) => format!("  {b:.4} ± {se:.4} bits/dim"),
                        _ => String::new(),
                    };
                    let s = if r.exact { "exact (B = 0), S unused".to_string() } else { format!("S = {}", r.samples) };
                    println!(
                        "{} {} split: log-likelihood {:.4} ± {:.4}{bpd}  ({s}; first {} points; seed {}; {:.0} flow evaluations/s)",
                        r.data, r.split, r.ll, r.ll_se, r.points, r.seed, r.evals_per_s
                    );
                    println!("  units: {}", r.units);
                    if let Some(p) = &per_point {
                        println!("  per-point values: {}", p.display());
                    }
                }
            }
        }
        Command::Sample { model, n, temperature, out, data, no_real, density, density_samples, seed } => {
            let kind = mflow::output::check("--out", &out, &[Kind::Png, Kind::Npy, Kind::Csv], &[&model])?;
            if let Some(d) = &density {
                mflow::output::check("--density", d, &[Kind::Png], &[&model, &out])?;
            }
            let trained = mflow::run::load_model(&model)?;
            let flow = &trained.flow;
            let data = mflow::run::model_data(&trained, data.as_deref(), None)?;
            if density.is_some() && flow.config.d != 2 {
                anyhow::bail!("--density needs 2-D data (this model has D = {})", flow.config.d);
            }
            if kind == Kind::Png && data.image.is_none() && flow.config.d != 2 {
                anyhow::bail!(
                    "--out {}: pictures of samples need 2-D or image data (D = {}); write .npy or .csv instead",
                    out.display(),
                    flow.config.d
                );
            }
            let gpu = open_gpu(&choice)?;
            let samples = mflow::sample::sample(&gpu, flow, n, temperature, seed)?;
            let title = match &trained.run {
                Some(cfg) => mflow::run::finish::model_title(cfg, density_samples),
                None => format!("{}  D={} B={}", data.spec, flow.config.d, flow.config.b),
            };
            let title = format!("{title}  T = {temperature}");
            match (kind, &data.image) {
                (Kind::Png, Some(info)) => {
                    mflow::plot::image_grid(&samples, info, (!no_real).then_some(&data.test), 8, &title, &out)?
                }
                (Kind::Png, None) => {
                    let real = mflow::sample::to_data_units(&data.test, &data);
                    let fake = mflow::sample::to_data_units(&samples, &data);
                    mflow::plot::scatter(&real, &fake, &title, &out)?
                }
                _ => mflow::sample::write_raw(&out, &mflow::sample::to_data_units(&samples, &data))?,
            }
            println!("wrote {}", out.display());
            if let Some(path) = density {
                let real = mflow::sample::to_data_units(&data.test, &data);
                let view = mflow::plot::view_of(&real);
                let grid =
                    mflow::sample::density_grid(&gpu, flow, view, 256, density_samples, data.standardize.as_ref())?;
                let name = if flow.config.b == 0 {
                    "model (exact)".to_string()
                } else {
                    format!("model (S = {density_samples})")
                };
                mflow::plot::heatmaps(&[(name.as_str(), &grid)], 256, view, &format!("log p(x): {title}"), &path)?;
                println!("wrote {}", path.display());
            }
        }
        Command::Sweep {
            grid,
            out,
            data,
            seeds,
            shard,
            list,
            group,
            epochs,
            samples,
            hidden,
            batch,
            lr,
            train_size,
            test_size,
            eval_points,
            checkpoint_every,
        } => {
            let grid = match grid.as_str() {
                "gauss" => Grid::Gauss,
                "moons" => Grid::Moons,
                "images" => Grid::Images(DataSpec::parse(
                    data.as_deref().ok_or_else(|| anyhow::anyhow!("the images grid needs --data"))?,
                )?),
                other => anyhow::bail!("unknown grid {other:?}: gauss, moons or images"),
            };
            let o = Overrides {
                epochs,
                samples,
                hidden,
                batch,
                lr,
                train_size,
                test_size,
                eval_points,
                checkpoint_every,
                ..Default::default()
            };
            let mut runs = mflow::sweep::runs(&grid, seeds, &o)?;
            if let Some(s) = shard {
                let (i, n) = mflow::sweep::parse_shard(&s)?;
                runs = mflow::sweep::shard(runs, i, n);
            }
            if list {
                for r in &runs {
                    println!("{}", r.key);
                }
                return Ok(());
            }
            for r in &runs {
                r.cfg.validate().map_err(|e| anyhow::anyhow!("{e:#} (run {})", r.key))?;
            }
            let gpu = open_gpu(&choice)?;
            interrupt::install()?;
            let t = std::time::Instant::now();
            let o = mflow::sweep::run_sweep(&gpu, &runs, &out, group, true).inspect_err(|e| {
                if e.downcast_ref::<Interrupted>().is_some() {
                    eprintln!("to continue, run the same command: finished runs are kept, the others resume from their checkpoints");
                }
            })?;
            println!(
                "{} runs done, {} already finished, {} failed, {} held by another process, in {:.0} s; results in {}",
                o.ran,
                o.skipped,
                o.failed,
                o.busy,
                t.elapsed().as_secs_f64(),
                out.join("results.csv").display()
            );
            if o.failed > 0 {
                anyhow::bail!("{} runs failed (see above); rerun the same command to retry them", o.failed);
            }
        }
        Command::Report { dirs, out } => {
            let out = out.unwrap_or_else(|| dirs[0].clone());
            let refs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
            let md = mflow::report::report(&refs, &out)?;
            print!("{md}");
            println!("wrote {}", out.join("report.md").display());
        }
        Command::Demo { batch, seed } => mflow::demo::run(&Gpu::new(&choice)?, batch, seed)?,
        Command::Bench { what: BenchWhat::Gemm { quick, all } } => {
            let gpu = Gpu::new(&choice)?;
            let variants = if all {
                mflow::kernels::gemm::VARIANTS.to_vec()
            } else {
                // The families the tuner chose for this adapter's shape classes.
                let mut v: Vec<Variant> = Vec::new();
                for c in mflow::tune::gemm_choice(&gpu).by_class {
                    if !v.contains(&c) {
                        v.push(c);
                    }
                }
                v
            };
            mflow::bench::bench_gemm(&gpu, &variants, quick)?;
        }
        Command::Bench { what: BenchWhat::Sweep { models, dim, aux, hidden, batch, steps } } => {
            let config = FlowConfig { d: dim, b: aux, blocks: 4, depth: 2, hidden, seed: 0 };
            config.validate()?;
            mflow::bench::bench_sweep(&Gpu::new(&choice)?, config, batch, &models, steps)?;
        }
        Command::Bench { what: BenchWhat::Stream { data, aux, hidden, batch, steps } } => {
            let mut cfg = RunConfig::defaults(DataSpec::parse(&data)?, aux, 0);
            Overrides { hidden, batch, ..Default::default() }.apply(&mut cfg);
            cfg.validate()?;
            mflow::bench::bench_stream(&Gpu::new(&choice)?, &cfg, steps)?;
        }
        Command::Bench { what: BenchWhat::Eval { dim, aux, hidden, samples, points, trials } } => {
            let config = FlowConfig { d: dim, b: aux, blocks: 4, depth: 2, hidden, seed: 0 };
            config.validate()?;
            let gpu = open_gpu(&choice)?;
            println!("adapter: {}", gpu.describe());
            mflow::bench::bench_eval(&gpu, config, samples, points, trials)?;
        }
        Command::Bench { what: BenchWhat::Tune } => {
            let gpu = open_gpu(&choice)?;
            println!("adapter: {}", mflow::tune::adapter_key(&gpu));
            bench_tune(&gpu)?;
        }
        Command::Bench { what: BenchWhat::All { json, steps } } => {
            mflow::output::check("--json", &json, &[Kind::Json], &[])?;
            let gpu = open_gpu(&choice)?;
            println!("adapter: {}", gpu.describe());
            mflow::bench::bench_gemm(&gpu, &mflow::kernels::gemm::VARIANTS, true)?;
            bench_train_all(&gpu, steps, false)?;
            let moons = FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 128, seed: 0 };
            mflow::bench::bench_eval(&gpu, moons.clone(), 100, 2000, 3)?;
            bench_tune(&gpu)?;
            let gauss = FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 128, seed: 0 };
            mflow::bench::bench_sweep(&gpu, gauss, 256, &[1, 8, 64], 16)?;
            let report = mflow::bench::report_json(&gpu);
            mflow::checkpoint::write_atomic(&json, serde_json::to_string_pretty(&report)?.as_bytes())?;
            println!("wrote {}", json.display());
        }
        Command::Bench { what: BenchWhat::Train { steps, small } } => {
            let gpu = open_gpu(&choice)?;
            println!("adapter: {}", gpu.describe());
            bench_train_all(&gpu, steps, small)?;
        }
    }
    Ok(())
}
