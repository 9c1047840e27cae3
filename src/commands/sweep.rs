//! `mflow sweep`: one of the thesis's experiment grids, resumable and shardable.

use super::{Context, ScheduleArgs};
use crate::data::DataSpec;
use crate::interrupt::{self, Interrupted};
use crate::sweep::Grid;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// gauss, moons or images (with --data).
    pub grid: String,
    #[arg(long)]
    pub out: PathBuf,
    /// Image data for the images grid (the --data syntax of train).
    #[arg(long)]
    pub data: Option<String>,
    /// Seeds per configuration (0..N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=crate::sweep::MAX_SEEDS))]
    pub seeds: u64,
    /// Run only shard i of n (i/n): every n-th run from the i-th.
    #[arg(long)]
    pub shard: Option<String>,
    /// Print the runs and exit.
    #[arg(long)]
    pub list: bool,
    /// At most this many runs of one flow width Q trained together in the same
    /// dispatches [default: 0, as many as fit; 1 trains one at a time].
    #[arg(long, default_value_t = 0)]
    pub group: usize,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    #[command(flatten)]
    pub conv: super::train::ConvArgs,
}

/// Runs the grid's pending runs (or lists them) and says what was done.
pub fn sweep(ctx: &Context, args: SweepArgs) -> Result<()> {
    let SweepArgs { grid, out, data, seeds, shard, list, group, schedule, conv } = args;
    let grid = match grid.as_str() {
        "gauss" => Grid::Gauss,
        "moons" => Grid::Moons,
        "images" => Grid::Images(DataSpec::parse(
            data.as_deref().ok_or_else(|| anyhow::anyhow!("the images grid needs --data"))?,
        )?),
        other => anyhow::bail!("unknown grid {other:?}: gauss, moons or images"),
    };
    let mut o = schedule.overrides();
    o.conv = conv.flags(false)?;
    if o.conv.is_some() {
        if !matches!(grid, Grid::Images(_)) {
            anyhow::bail!("--arch conv applies to the images grid (sweep images --data ...)");
        }
        if conv.aux_channels.is_some() {
            anyhow::bail!("--aux-channels: the conv images grid varies the ε channels itself (K_ε = 0 and 1)");
        }
    }
    let mut runs = crate::sweep::runs(&grid, seeds, &o)?;
    if let Some(s) = shard {
        let (i, n) = crate::sweep::parse_shard(&s)?;
        runs = crate::sweep::shard(runs, i, n);
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
    let gpu = ctx.open_gpu()?;
    interrupt::install()?;
    let t = std::time::Instant::now();
    let o = crate::sweep::run_sweep(&gpu, &runs, &out, group, true, ctx.tuning).inspect_err(|e| {
        if e.downcast_ref::<Interrupted>().is_some() {
            eprintln!(
                "to continue, run the same command: finished runs are kept, the others resume from their checkpoints"
            );
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
    Ok(())
}
