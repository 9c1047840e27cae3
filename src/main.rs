//! The `mflow` command line: parses, then hands each command to the library
//! (`mflow::commands`), which checks, runs and prints it.

use clap::{Parser, Subcommand};
use mflow::commands::{self, bench::BenchWhat, Context, EvalArgs, SampleArgs, SweepArgs, TrainArgs};
use mflow::interrupt::Interrupted;
use std::path::PathBuf;

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

#[derive(Subcommand)]
enum Command {
    /// Train a marginalizing flow on the GPU, then evaluate its marginal log-likelihood.
    #[command(allow_negative_numbers = true)]
    Train(Box<TrainArgs>),
    /// The S-sample marginal log-likelihood (thesis eq. 8) of a trained model on a split.
    #[command(allow_negative_numbers = true)]
    Eval(EvalArgs),
    /// Samples from a trained model: an image grid, or a 2-D scatter over the data.
    #[command(allow_negative_numbers = true)]
    Sample(SampleArgs),
    /// Run one of the thesis's experiment grids; resumable (finished runs are skipped,
    /// interrupted ones continue from their checkpoints) and shardable (--shard i/n).
    #[command(allow_negative_numbers = true)]
    Sweep(SweepArgs),
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
        #[arg(long, default_value_t = 256, value_parser = commands::at_least_one)]
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

fn main() {
    let cli = Cli::parse();
    let ctx = Context::new(cli.adapter, cli.no_tune);
    let done = match cli.command {
        Command::Train(args) => commands::train(&ctx, &args),
        Command::Eval(args) => commands::eval(&ctx, args),
        Command::Sample(args) => commands::sample(&ctx, args),
        Command::Sweep(args) => commands::sweep(&ctx, args),
        Command::Report { dirs, out } => commands::report(&dirs, out),
        Command::Info => commands::info(&ctx),
        Command::Demo { batch, seed } => commands::demo(&ctx, batch, seed),
        Command::Bench { what } => commands::bench::bench(&ctx, what),
    };
    if let Err(e) = done {
        if let Some(i) = e.downcast_ref::<Interrupted>() {
            eprintln!("{i}");
            std::process::exit(i.exit_code());
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
