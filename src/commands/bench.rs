//! `mflow bench`: every benchmark, each checked against its reference before it is timed.
//! Figures are medians of alternating trials; tests never time anything.

use super::{at_least_one, Context};
use crate::data::DataSpec;
use crate::gpu::Gpu;
use crate::model::FlowConfig;
use crate::output::Kind;
use crate::run::{Overrides, RunConfig};
use crate::tune::{self, Need, Tuning};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum BenchWhat {
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
        /// conv: a conv flow (CONV.md) at MNIST's shape, 28×28×1, batch 32, 3 scales,
        /// conditioner channels 64 (--hidden to change them).
        #[arg(long, value_enum, default_value_t = crate::run::config::Arch::Dense)]
        arch: crate::run::config::Arch,
        /// conv: conditioner channels W_c.
        #[arg(long, default_value_t = 64, value_parser = at_least_one)]
        hidden: usize,
    },
}

/// Runs the benchmark `what` names.
pub fn bench(ctx: &Context, what: BenchWhat) -> Result<()> {
    let tuning = ctx.tuning;
    match what {
        BenchWhat::Gemm { quick, all } => {
            let gpu = Gpu::new(&ctx.adapter)?;
            let variants = if all {
                crate::kernels::gemm::VARIANTS.to_vec()
            } else {
                // The families chosen for this adapter's shape classes.
                tune::kernels(&gpu, tuning, &[])?.gemm_families()
            };
            crate::bench::bench_gemm(&gpu, &variants, quick)?;
        }
        BenchWhat::Sweep { models, dim, aux, hidden, batch, steps } => {
            let config = FlowConfig { d: dim, b: aux, blocks: 4, depth: 2, hidden, seed: 0, conv: None };
            config.validate()?;
            crate::bench::bench_sweep(&Gpu::new(&ctx.adapter)?, tuning, config, batch, &models, steps)?;
        }
        BenchWhat::Stream { data, aux, hidden, batch, steps } => {
            let mut cfg = RunConfig::defaults(DataSpec::parse(&data)?, aux, 0);
            Overrides { hidden, batch, ..Default::default() }.apply(&mut cfg);
            cfg.validate()?;
            crate::bench::bench_stream(&Gpu::new(&ctx.adapter)?, tuning, &cfg, steps)?;
        }
        BenchWhat::Eval { dim, aux, hidden, samples, points, trials } => {
            let config = FlowConfig { d: dim, b: aux, blocks: 4, depth: 2, hidden, seed: 0, conv: None };
            config.validate()?;
            let gpu = ctx.open_gpu()?;
            println!("adapter: {}", gpu.describe());
            crate::bench::bench_eval(&gpu, tuning, config, samples, points, trials)?;
        }
        BenchWhat::Tune => {
            if let Some(by) = ctx.no_tune_by {
                anyhow::bail!(
                    "`mflow bench tune` measures the kernels and {by} says not to: they contradict each other; drop one"
                );
            }
            let gpu = ctx.open_gpu()?;
            println!("adapter: {}", tune::adapter_key(&gpu));
            bench_tune(&gpu)?;
        }
        BenchWhat::All { json, steps } => {
            crate::output::check("--json", &json, &[Kind::Json], &[])?;
            let gpu = ctx.open_gpu()?;
            println!("adapter: {}", gpu.describe());
            crate::bench::bench_gemm(&gpu, &crate::kernels::gemm::VARIANTS, true)?;
            bench_train_all(&gpu, tuning, steps, false)?;
            crate::bench::bench_train_conv(&gpu, tuning, mnist_conv(64), 32, steps.min(5))?;
            let moons = FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 128, seed: 0, conv: None };
            crate::bench::bench_eval(&gpu, tuning, moons.clone(), 100, 2000, 3)?;
            if ctx.no_tune_by.is_none() {
                bench_tune(&gpu)?;
            }
            crate::bench::bench_sweep(&gpu, tuning, moons, 256, &[1, 8, 64], 16)?;
            let report = crate::bench::report_json(&gpu);
            crate::checkpoint::write_atomic(&json, serde_json::to_string_pretty(&report)?.as_bytes())?;
            println!("wrote {}", json.display());
        }
        BenchWhat::Train { steps, small, arch, hidden } => {
            let gpu = ctx.open_gpu()?;
            println!("adapter: {}", gpu.describe());
            match arch {
                crate::run::config::Arch::Dense => bench_train_all(&gpu, tuning, steps, small)?,
                crate::run::config::Arch::Conv => {
                    let config = mnist_conv(hidden);
                    config.validate()?;
                    crate::bench::bench_train_conv(&gpu, tuning, config, 32, steps)?;
                }
            }
        }
    }
    Ok(())
}

/// CONV.md's MNIST shape: 28×28×1, 3 scales, `hidden` conditioner channels, depth 2, the
/// default dense head, B = 0.
pub fn mnist_conv(hidden: usize) -> FlowConfig {
    use crate::model::{ChannelPermute, ConvArch};
    use crate::run::config::{HEAD_BLOCKS, HEAD_HIDDEN};
    let arch = ConvArch {
        channels: 1,
        height: 28,
        width: 28,
        aux_channels: 0,
        scales: 3,
        hidden,
        depth: 2,
        permute: ChannelPermute::Reverse,
    };
    FlowConfig { d: 784, b: 0, blocks: HEAD_BLOCKS, depth: 2, hidden: HEAD_HIDDEN, seed: 0, conv: Some(arch) }
}

/// `mflow bench train`'s configurations: gauss Q = 2 and moons (Q = 4) at MODEL.md's
/// batches, and (unless `small`) MNIST-shaped models.
fn bench_train_all(gpu: &Gpu, tuning: Tuning, steps: usize, small: bool) -> Result<()> {
    let gauss = FlowConfig { d: 2, b: 0, blocks: 4, depth: 2, hidden: 128, seed: 0, conv: None };
    let moons = FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 128, seed: 0, conv: None };
    crate::bench::bench_train(gpu, tuning, "gauss", gauss, 256, steps)?;
    for batch in [64, 256] {
        crate::bench::bench_train(gpu, tuning, "moons", moons.clone(), batch, steps)?;
    }
    if !small {
        let mnist = FlowConfig { d: 784, b: 4, blocks: 4, depth: 2, hidden: 1024, seed: 0, conv: None };
        for batch in [32, 256] {
            crate::bench::bench_train(gpu, tuning, "mnist", mnist.clone(), batch, (steps / 5).max(2))?;
        }
    }
    Ok(())
}

/// What `mflow bench tune` measures: the GEMM families, then fused couplings or GEMMs for
/// the default job and MODEL.md's synthetic shapes (training at their batches, evaluation).
pub fn tune_needs() -> Vec<Need> {
    let flow = |q: usize| FlowConfig { d: 2, b: q - 2, blocks: 4, depth: 2, hidden: 128, seed: 0, conv: None };
    let mut needs: Vec<Need> =
        [(4, 256), (4, 64), (2, 256)].into_iter().map(|(q, batch)| Need::Training { config: flow(q), batch }).collect();
    needs.extend([4, 2].into_iter().map(|q| Need::Inference(flow(q))));
    needs
}

/// `mflow bench tune`: measures afresh, stores, and prints the tables.
fn bench_tune(gpu: &Gpu) -> Result<()> {
    let t = std::time::Instant::now();
    let (e, rows) = tune::tune(gpu, &tune_needs())?;
    println!("GEMM family per shape class (GFLOP/s of each candidate, * dropped after one timing at 2x the best so far; tiny: 64x128x128, small: 256x128x128, large: 256x512x512):");
    for (class, rates) in &e.gflops {
        let out = e.dropped.get(class);
        let mark = |v: &String| if out.is_some_and(|o| o.contains(v)) { "*" } else { "" };
        let r: Vec<String> = rates.iter().map(|(v, g)| format!("{v} {g:.2}{}", mark(v))).collect();
        println!("  {class:<10} {}  choice: {}", r.join(", "), e.choice.get(class).map_or("?", |c| c.as_str()));
    }
    match (e.fused_rows_s.get("rows4"), e.fused_rows_s.get("rows8")) {
        (Some(r4), Some(r8)) => println!(
            "fused couplings' vec4 linears (s per moons-shaped forward of 1024 rows): 4 rows/invocation {r4:.4}, 8 rows {r8:.4}  choice: {}",
            if e.fused_rows8 { "8 rows" } else { "4 rows" }
        ),
        _ => println!("fused couplings: not raced on this adapter (GL's llvmpipe: the GEMMs, see `tune::fused_races`)"),
    }
    let ms = |name: &str| e.conv_s.get(name).map_or("?".to_string(), |s| format!("{:.2}", s * 1e3));
    let pick = |wide: bool, a: &'static str, b: &'static str| if wide { b } else { a };
    println!(
        "conv tiles (ms per dispatch, batch 32 at 14x14, 64 channels): forward 3x3 4->64: 8 channels x 256 pixels {}, 16 x 128 {}  choice: {}; weight gradient 3x3: 8 x 1 channels {}, 4 x 2 {}  choice: {}; 1x1: 8 x 8 {}, 4 x 16 {}  choice: {}",
        ms("fwd_c8"),
        ms("fwd_c16"),
        pick(e.conv.fwd_c16, "8 x 256", "16 x 128"),
        ms("wgrad3_o8"),
        ms("wgrad3_o4"),
        pick(e.conv.wgrad3_o4, "8 x 1", "4 x 2"),
        ms("wgrad1_o8"),
        ms("wgrad1_o4"),
        pick(e.conv.wgrad1_o4, "8 x 8", "4 x 16"),
    );
    crate::bench::record(serde_json::json!({
        "bench": "tune_gemm", "gflops": e.gflops, "choice": e.choice, "fused_rows_s": e.fused_rows_s, "fused_rows8": e.fused_rows8, "dropped": e.dropped,
        "conv_s": e.conv_s, "conv_tiles": e.conv,
    }));
    if !rows.is_empty() {
        println!("{:<32} {:>12} {:>12}  choice", "shape class", "fused s", "GEMMs s");
    }
    for (class, e) in &rows {
        println!("{class:<32} {:>12.5} {:>12.5}  {}", e.fused_s, e.unfused_s, if e.fused { "fused" } else { "GEMMs" });
        crate::bench::record(serde_json::json!({
            "bench": "tune", "class": class, "fused_s": e.fused_s, "gemms_s": e.unfused_s, "choice": if e.fused { "fused" } else { "gemms" },
        }));
    }
    println!("tuned in {:.1} s", t.elapsed().as_secs_f64());
    if let Some(p) = tune::cache_path() {
        println!("cached in {}", p.display());
    }
    Ok(())
}
