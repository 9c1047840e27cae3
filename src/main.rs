//! The `mflow` command line: parses, then calls the library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use mflow::data::images::Mode;
use mflow::data::{DataSpec, Split, SplitSizes};
use mflow::gpu::{AdapterChoice, Gpu};
use mflow::kernels::gemm::Variant;
use mflow::model::FlowConfig;
use mflow::run::RunConfig;
use mflow::sweep::{Grid, Overrides};
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

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// Dataset: gauss[:d=D,psi=P], moons[:noise=S], mnist:DIR, fashion-mnist:DIR, kmnist:DIR,
    /// cifar10:DIR or digits (embedded). Without it, the default job: half-moons with B = 2
    /// on a short schedule (64 epochs) that finishes in a few minutes on a CPU adapter.
    #[arg(long)]
    data: Option<String>,
    /// Dimensions D of bare `gauss`.
    #[arg(long)]
    dim: Option<usize>,
    /// Power ψ of bare `gauss`.
    #[arg(long)]
    psi: Option<u32>,
    /// Noise σ of bare `moons`.
    #[arg(long)]
    noise: Option<f64>,
    /// Image preprocessing (MODEL.md): dequant (bits/dim) or thesis (nats per image).
    #[arg(long, value_enum, default_value = "dequant")]
    preprocess: Mode,
    /// Auxiliary dimensions B (0: an ordinary normalizing flow).
    #[arg(long, default_value_t = 2)]
    aux: usize,
    /// Seed of the model's initialisation, shuffles and training noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of synthetic data's splits.
    #[arg(long, default_value_t = 0)]
    data_seed: u64,
    /// Output folder: metrics.jsonl, model.safetensors, summary.json, samples.png.
    #[arg(long, default_value = "runs/default")]
    out: PathBuf,
    /// Epochs [default: MODEL.md's per dataset; 64 for the default job].
    #[arg(long)]
    epochs: Option<usize>,
    /// Minibatch [default: MODEL.md's per dataset].
    #[arg(long)]
    batch: Option<usize>,
    /// Adam learning rate [default: MODEL.md's per dataset].
    #[arg(long)]
    lr: Option<f64>,
    /// Clip the global gradient norm to this; 0 turns clipping off [default: MODEL.md's].
    #[arg(long)]
    clip: Option<f64>,
    /// Blocks L (2L couplings).
    #[arg(long)]
    blocks: Option<usize>,
    /// Hidden layers per conditioner.
    #[arg(long)]
    depth: Option<usize>,
    /// Hidden width H [default: 128 for 2–4-dimensional data, 1024 for images].
    #[arg(long)]
    hidden: Option<usize>,
    /// Importance samples S for the final marginal log-likelihood.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Steps between loss readbacks.
    #[arg(long)]
    log_every: Option<usize>,
    /// Training points of synthetic data.
    #[arg(long, default_value_t = 2048)]
    train_size: usize,
    /// Validation points of synthetic data.
    #[arg(long, default_value_t = 2048)]
    validation_size: usize,
    /// Held-out test points of synthetic data.
    #[arg(long, default_value_t = 10_000)]
    test_size: usize,
    /// Epochs between checkpoints [default: a tenth of the run].
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Evaluate only the first N points of each split at the end [default: all].
    #[arg(long)]
    eval_points: Option<usize>,
    /// Continue from this checkpoint (its configuration must match); exact: N steps, resume,
    /// M steps gives the parameters of N + M steps in one run.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The default job's schedule: MODEL.md's 1024 epochs take ~15 minutes on lavapipe.
const DEFAULT_JOB_EPOCHS: usize = 64;

impl TrainArgs {
    fn data_spec(&self) -> Result<DataSpec> {
        let mut spec = DataSpec::parse(self.data.as_deref().unwrap_or("moons"))?;
        match &mut spec {
            DataSpec::Gauss { d, psi } => {
                *d = self.dim.unwrap_or(*d);
                *psi = self.psi.unwrap_or(*psi);
            }
            DataSpec::Moons { noise } => *noise = self.noise.unwrap_or(*noise),
            _ => {}
        }
        Ok(spec)
    }

    fn config(&self) -> Result<RunConfig> {
        let mut c = RunConfig::defaults(self.data_spec()?, self.aux, self.seed);
        if self.data.is_none() {
            c.epochs = DEFAULT_JOB_EPOCHS;
        }
        c.preprocess = self.preprocess;
        c.data_seed = self.data_seed;
        c.sizes = SplitSizes { train: self.train_size, validation: self.validation_size, test: self.test_size };
        c.epochs = self.epochs.unwrap_or(c.epochs);
        c.optim.batch = self.batch.unwrap_or(c.optim.batch);
        c.optim.lr = self.lr.unwrap_or(c.optim.lr);
        if let Some(clip) = self.clip {
            c.optim.clip = (clip > 0.0).then_some(clip);
        }
        c.flow.blocks = self.blocks.unwrap_or(c.flow.blocks);
        c.flow.depth = self.depth.unwrap_or(c.flow.depth);
        c.flow.hidden = self.hidden.unwrap_or(c.flow.hidden);
        c.samples = self.samples;
        c.log_every = self.log_every.unwrap_or(c.log_every).max(1);
        c.checkpoint_every = self.checkpoint_every.unwrap_or((c.epochs / 10).max(1));
        c.eval_points = self.eval_points;
        Ok(c)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train a marginalizing flow on the GPU, then evaluate its marginal log-likelihood.
    Train(Box<TrainArgs>),
    /// The S-sample marginal log-likelihood (thesis eq. 8) of a trained model on a split.
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
        #[arg(long, default_value = "200", value_delimiter = ',')]
        samples: Vec<usize>,
        /// Image preprocessing [default: the model's].
        #[arg(long, value_enum)]
        preprocess: Option<Mode>,
        /// Only the first N points of the split [default: all].
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per S instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Samples from a trained model: an image grid, or a 2-D scatter over the data.
    Sample {
        #[arg(long)]
        model: PathBuf,
        /// Number of samples.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// Temperature T: u ~ N(0, T² I).
        #[arg(long, default_value_t = 1.0)]
        temperature: f32,
        /// Output PNG.
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
        #[arg(long, default_value_t = 50)]
        density_samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Run one of the thesis's experiment grids; resumable (finished runs are skipped) and
    /// shardable (--shard i/n).
    Sweep {
        /// gauss, moons or images (with --data).
        grid: String,
        #[arg(long)]
        out: PathBuf,
        /// Image data for the images grid (the --data syntax of train).
        #[arg(long)]
        data: Option<String>,
        /// Seeds per configuration (0..N).
        #[arg(long, default_value_t = 3)]
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
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        samples: Option<usize>,
        #[arg(long)]
        hidden: Option<usize>,
        #[arg(long)]
        batch: Option<usize>,
        #[arg(long)]
        lr: Option<f64>,
        #[arg(long)]
        train_size: Option<usize>,
        #[arg(long)]
        test_size: Option<usize>,
        #[arg(long)]
        eval_points: Option<usize>,
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
    /// Sweep training: samples/s of many models trained in the same dispatches vs one at a time.
    Sweep {
        /// Model counts to time.
        #[arg(long, value_delimiter = ',', default_value = "1,8,64,225")]
        models: Vec<usize>,
        /// Data dimensions D of each model.
        #[arg(long, default_value_t = 2)]
        dim: usize,
        #[arg(long, default_value_t = 2)]
        aux: usize,
        #[arg(long, default_value_t = 128)]
        hidden: usize,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Steps per trial for one model (divided among larger groups, at least 2).
        #[arg(long, default_value_t = 16)]
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
        #[arg(long)]
        hidden: Option<usize>,
        /// Minibatch [default: MODEL.md's].
        #[arg(long)]
        batch: Option<usize>,
        #[arg(long, default_value_t = 50)]
        steps: usize,
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
            let cfg = args.config()?;
            eprintln!("adapter: {}", gpu.describe());
            if args.data.is_none() {
                eprintln!(
                    "default job: half-moons MF with B = {}, {} epochs (MODEL.md's schedule: `mflow train --data moons`)",
                    cfg.flow.b, cfg.epochs
                );
            }
            let s = mflow::run::train(&gpu, &cfg, &args.out, args.resume.as_deref(), !args.quiet)?;
            print!("{}", s.report());
            println!("wrote {}", args.out.display());
        }
        Command::Eval { model, data, split, samples, preprocess, limit, json } => {
            let split = match split.as_str() {
                "train" => Split::Train,
                "validation" => Split::Validation,
                "test" => Split::Test,
                other => anyhow::bail!("--split {other:?}: expected train, validation or test"),
            };
            let (flow, run) = mflow::run::load_model(&model)?;
            let data = mflow::run::model_data(&flow, run.as_ref(), data.as_deref(), preprocess)?;
            let gpu = Gpu::new(&choice)?;
            let rows = mflow::run::evaluate(&gpu, &flow, &data, split, &samples, limit)?;
            for r in &rows {
                if json {
                    println!("{}", serde_json::to_string(r)?);
                } else {
                    let bpd = match (r.bits_per_dim, r.bits_per_dim_se) {
                        (Some(b), Some(se)) => format!("  {b:.4} ± {se:.4} bits/dim"),
                        _ => String::new(),
                    };
                    let s = if r.exact { "exact (B = 0), S unused".to_string() } else { format!("S = {}", r.samples) };
                    println!(
                        "{} {} split: log-likelihood {:.4} ± {:.4} nats{bpd}  ({s}; {} points, {:.0} flow evaluations/s)",
                        data.spec, r.split, r.ll, r.ll_se, r.points, r.evals_per_s
                    );
                }
            }
        }
        Command::Sample { model, n, temperature, out, data, no_real, density, density_samples, seed } => {
            let (flow, run) = mflow::run::load_model(&model)?;
            let data = mflow::run::model_data(&flow, run.as_ref(), data.as_deref(), None)?;
            let gpu = Gpu::new(&choice)?;
            let samples = mflow::sample::sample(&gpu, &flow, n, temperature, seed);
            match &data.image {
                Some(info) => mflow::plot::image_grid(&samples, info, (!no_real).then_some(&data.test), 8, &out)?,
                None if flow.config.d == 2 => mflow::plot::scatter(&data.test, &samples, 512, &out)?,
                None => anyhow::bail!("pictures of samples need 2-D or image data (D = {})", flow.config.d),
            }
            println!("wrote {}", out.display());
            if let Some(path) = density {
                if flow.config.d != 2 {
                    anyhow::bail!("--density needs 2-D data");
                }
                let view = mflow::plot::view_of(&data.test);
                let grid = mflow::sample::density_grid(&gpu, &flow, view, 256, density_samples)?;
                mflow::plot::heatmap(&grid, 256, &path)?;
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
        } => {
            let grid = match grid.as_str() {
                "gauss" => Grid::Gauss,
                "moons" => Grid::Moons,
                "images" => Grid::Images(DataSpec::parse(
                    data.as_deref().ok_or_else(|| anyhow::anyhow!("the images grid needs --data"))?,
                )?),
                other => anyhow::bail!("unknown grid {other:?}: gauss, moons or images"),
            };
            let o = Overrides { epochs, samples, hidden, batch, lr, train_size, test_size, eval_points };
            let mut runs = mflow::sweep::runs(&grid, seeds, &o);
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
            let gpu = Gpu::new(&choice)?;
            let t = std::time::Instant::now();
            let o = mflow::sweep::run_sweep(&gpu, &runs, &out, group, true)?;
            println!(
                "{} runs done, {} already finished, {} failed, in {:.0} s; results in {}",
                o.ran,
                o.skipped,
                o.failed,
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
            let variants =
                if all { vec![Variant::Reg, Variant::Tiled, Variant::Vec4] } else { vec![Variant::for_adapter(&gpu)] };
            mflow::bench::bench_gemm(&gpu, &variants, quick)?;
        }
        Command::Bench { what: BenchWhat::Sweep { models, dim, aux, hidden, batch, steps } } => {
            let config = FlowConfig { d: dim, b: aux, blocks: 4, depth: 2, hidden, seed: 0 };
            mflow::bench::bench_sweep(&Gpu::new(&choice)?, config, batch, &models, steps)?;
        }
        Command::Bench { what: BenchWhat::Stream { data, aux, hidden, batch, steps } } => {
            let mut cfg = RunConfig::defaults(DataSpec::parse(&data)?, aux, 0);
            cfg.flow.hidden = hidden.unwrap_or(cfg.flow.hidden);
            cfg.optim.batch = batch.unwrap_or(cfg.optim.batch);
            mflow::bench::bench_stream(&Gpu::new(&choice)?, &cfg, steps)?;
        }
        Command::Bench { what: BenchWhat::Train { steps, small } } => {
            let gpu = Gpu::new(&choice)?;
            println!("adapter: {}", gpu.describe());
            let gauss = FlowConfig { d: 2, b: 0, blocks: 4, depth: 2, hidden: 128, seed: 0 };
            let moons = FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 128, seed: 0 };
            mflow::bench::bench_train(&gpu, "gauss", gauss, 256, steps)?;
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
