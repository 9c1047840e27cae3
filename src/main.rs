//! The `mflow` command line: parses, then calls the library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use mflow::gpu::{AdapterChoice, Gpu};
use mflow::kernels::gemm::Variant;

#[derive(Parser)]
#[command(name = "mflow", version, about = "Marginalizing flows on the GPU through WebGPU")]
struct Cli {
    /// Use the adapter whose name contains this (case-insensitive); also MFLOW_ADAPTER.
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        Command::Demo { batch, seed } => mflow::demo::run(&Gpu::new(&choice)?, batch, seed)?,
        Command::Bench { what: BenchWhat::Gemm { quick, all } } => {
            let gpu = Gpu::new(&choice)?;
            let variants =
                if all { vec![Variant::Reg, Variant::Tiled, Variant::Vec4] } else { vec![Variant::for_adapter(&gpu)] };
            mflow::bench::bench_gemm(&gpu, &variants, quick)?;
        }
    }
    Ok(())
}
