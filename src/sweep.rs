//! Experiment sweeps over the thesis's grids: every run writes `DIR/runs/KEY/` as
//! `run::train` would. A run whose summary holds the configuration asked for is skipped, and
//! one with a checkpoint continues from it, so an interrupted sweep (kill -9 included)
//! restarted with the same command loses at most one checkpoint interval per group;
//! `--shard i/n` takes a deterministic 1/n of the runs. Pending runs of one flow width Q,
//! schedule and starting step are trained together, in the same dispatches
//! (`run::train_members`): tiny models are dispatch-bound on a GPU. Results go to
//! `DIR/results.jsonl` and `DIR/results.csv` after every group.

use crate::data::DataSpec;
use crate::gpu::Gpu;
use crate::run::folder::{Busy, RunFolder};
use crate::run::{self, Member, Overrides, RunConfig, Start, Summary};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The thesis's experiment grids.
#[derive(Clone, Debug)]
pub enum Grid {
    /// D ∈ {2,3,4} × ψ ∈ {1,2,3} × B ∈ {0..4} (table 2, figures 3–5).
    Gauss,
    /// B ∈ {0..4} (table 3, figure 6).
    Moons,
    /// B ∈ {0,1,2,4,8,16} on one image dataset (table 4, figures 7–13); with --arch conv
    /// (CONV.md), B ∈ {0, 2, 4} flat ε by K_ε ∈ {0, 1} ε channels.
    Images(DataSpec),
}

/// One run of a sweep: its key (also its folder name) and configuration.
#[derive(Clone, Debug)]
pub struct SweepRun {
    pub key: String,
    pub cfg: RunConfig,
}

/// Seeds a sweep may ask for (`--seeds`).
pub const MAX_SEEDS: u64 = 1000;

/// Every run of `grid` for seeds 0..seeds, in a fixed order.
pub fn runs(grid: &Grid, seeds: u64, o: &Overrides) -> Result<Vec<SweepRun>> {
    if !(1..=MAX_SEEDS).contains(&seeds) {
        bail!("--seeds {seeds}: must be in 1..={MAX_SEEDS}");
    }
    let mut out = Vec::new();
    let mut add_with = |key: String, data: DataSpec, b: usize, seed: u64, o: &Overrides| {
        let mut cfg = RunConfig::defaults(data, b, seed);
        o.apply(&mut cfg);
        out.push(SweepRun { key, cfg });
    };
    for seed in 0..seeds {
        match grid {
            Grid::Gauss => {
                for d in 2..=4 {
                    for psi in 1..=3 {
                        for b in 0..=4 {
                            add_with(
                                format!("gauss_d{d}_psi{psi}_b{b}_s{seed}"),
                                DataSpec::Gauss { d, psi },
                                b,
                                seed,
                                o,
                            );
                        }
                    }
                }
            }
            Grid::Moons => {
                for b in 0..=4 {
                    add_with(format!("moons_b{b}_s{seed}"), DataSpec::Moons { noise: 0.1 }, b, seed, o);
                }
            }
            Grid::Images(spec) => {
                let name = spec.describe().split(':').next().unwrap_or("images").to_string();
                match &o.conv {
                    // Rows K_ε (ε channels), columns B (flat ε): the thesis's question asked
                    // of a flow that exploits spatial structure.
                    Some(conv) => {
                        for k in [0, 1] {
                            for b in [0, 2, 4] {
                                let mut ok = o.clone();
                                ok.conv = Some(crate::run::config::ConvFlags { aux_channels: Some(k), ..conv.clone() });
                                add_with(format!("{name}_conv_k{k}_b{b}_s{seed}"), spec.clone(), b, seed, &ok);
                            }
                        }
                    }
                    None => {
                        for b in [0, 1, 2, 4, 8, 16] {
                            add_with(format!("{name}_b{b}_s{seed}"), spec.clone(), b, seed, o);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Parses `i/n` (0 ≤ i < n).
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let syntax = || anyhow::anyhow!("--shard {s:?}: expected i/n with whole numbers 0 ≤ i < n, e.g. --shard 0/4");
    let (i, n) = s.split_once('/').ok_or_else(syntax)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| syntax())?, n.trim().parse().map_err(|_| syntax())?);
    if n == 0 || i >= n {
        return Err(syntax());
    }
    Ok((i, n))
}

/// The runs of shard i of n: every n-th run starting at i, so shards partition the grid.
pub fn shard(runs: Vec<SweepRun>, i: usize, n: usize) -> Vec<SweepRun> {
    runs.into_iter().enumerate().filter(|(k, _)| k % n == i).map(|(_, r)| r).collect()
}

/// Reads every finished run's summary under `dir/runs/`.
pub fn summaries(dir: &Path) -> Result<Vec<(String, Summary)>> {
    let mut out = Vec::new();
    let runs = dir.join("runs");
    if !runs.exists() {
        return Ok(out);
    }
    let mut entries: Vec<_> = std::fs::read_dir(&runs)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let f = e.path().join("summary.json");
        if f.exists() {
            let text = std::fs::read_to_string(&f)?;
            let s: Summary = serde_json::from_str(&text).with_context(|| format!("reading {}", f.display()))?;
            out.push((e.file_name().to_string_lossy().into_owned(), s));
        }
    }
    Ok(out)
}

pub const CSV_HEADER: &str = "key,data,d,b,seed,epochs,samples,train_ll,train_ll_se,train_log_mean_likelihood,heldout_ll,heldout_ll_se,heldout_split,heldout_bits_per_dim,true_ll,train_seconds,eval_seconds,train_samples_per_s,trained_with,adapter,units,selected,selected_step,validation_ll";

/// A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

pub fn csv_row(key: &str, s: &Summary) -> String {
    let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.1},{:.0},{},{},{},{},{},{}",
        csv_field(key),
        csv_field(&s.data),
        s.config.flow.d,
        s.config.flow.b,
        s.config.flow.seed,
        s.config.epochs,
        s.samples,
        s.train_ll,
        s.train_ll_se,
        s.train_log_mean_likelihood,
        s.heldout_ll,
        s.heldout_ll_se,
        s.heldout_split,
        opt(s.heldout_bits_per_dim),
        opt(s.true_ll),
        s.train_seconds,
        s.eval_seconds,
        s.train_samples_per_s,
        s.trained_with,
        csv_field(&s.adapter),
        csv_field(&s.units),
        s.selected,
        s.selected_step,
        opt(s.validation_ll)
    )
}

/// Rewrites `results.csv` and `results.jsonl` from the finished runs.
pub fn write_results(dir: &Path) -> Result<usize> {
    let all = summaries(dir)?;
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    let mut jsonl = String::new();
    for (key, s) in &all {
        csv += &csv_row(key, s);
        csv.push('\n');
        jsonl += &serde_json::to_string(&serde_json::json!({ "key": key, "summary": s }))?;
        jsonl.push('\n');
    }
    crate::checkpoint::write_atomic(&dir.join("results.csv"), csv.as_bytes())?;
    crate::checkpoint::write_atomic(&dir.join("results.jsonl"), jsonl.as_bytes())?;
    Ok(all.len())
}

/// What `run_sweep` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub ran: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Runs whose folder another process holds (another sweep on the same folder).
    pub busy: usize,
}

/// Runs what is not finished yet. Pending runs that share a `run::group_key` (same Q and
/// schedule) and starting step are trained together, at most `group` at a time (0: as many
/// as fit); a run that fails is reported and left pending, and the others go on. A finished
/// run under other settings is never retrained over: it counts as failed, with what differs.
pub fn run_sweep(
    gpu: &Gpu,
    runs: &[SweepRun],
    dir: &Path,
    group: usize,
    progress: bool,
    tuning: crate::tune::Tuning,
) -> Result<Outcome> {
    for r in runs {
        r.cfg.validate().with_context(|| format!("run {}", r.key))?;
    }
    std::fs::create_dir_all(dir.join("runs")).with_context(|| format!("creating {}", dir.display()))?;
    let mut outcome = Outcome::default();
    let groups = pending_groups(runs, dir, &mut outcome)?;
    let pending: usize = groups.iter().map(|(_, g)| g.len()).sum();
    let mut done = 0;
    for (key, members) in groups {
        let size = if group == 0 { members.len() } else { group };
        let mut members = members.into_iter().peekable();
        while members.peek().is_some() {
            let part: Vec<(&SweepRun, RunFolder)> = members.by_ref().take(size).collect();
            if progress {
                let keys: Vec<&str> = part.iter().map(|(r, _)| r.key.as_str()).collect();
                eprintln!(
                    "[{}-{} of {pending}] {} together ({key}): {}",
                    done + 1,
                    done + part.len(),
                    part.len(),
                    keys.join(" ")
                );
            }
            done += part.len();
            train_part(gpu, part, progress, tuning, &mut outcome).inspect_err(|_| {
                // Interrupted or a failed device: what finished is recorded, the rest
                // continues from its checkpoints when the same command runs again.
                let _ = write_results(dir);
            })?;
            write_results(dir)?;
        }
    }
    write_results(dir)?;
    Ok(outcome)
}

/// A group key and its runs still to train, each with its locked folder.
type Pending<'r> = (String, Vec<(&'r SweepRun, RunFolder)>);

/// The runs still to train, locked and grouped by `run::group_key` and starting step;
/// finished, unreadable and busy runs are counted in `outcome` and said on stderr.
fn pending_groups<'r>(runs: &'r [SweepRun], dir: &Path, outcome: &mut Outcome) -> Result<Vec<Pending<'r>>> {
    let mut groups: Vec<Pending> = Vec::new();
    for r in runs {
        let run_dir = dir.join("runs").join(&r.key);
        let summary = run_dir.join("summary.json");
        if summary.exists() {
            let recorded = std::fs::read_to_string(&summary)
                .map_err(anyhow::Error::from)
                .and_then(|t| Ok(serde_json::from_str::<Summary>(&t)?));
            match recorded.map(|s| s.config.changes(&r.cfg)) {
                Ok(changes) if changes.is_empty() => outcome.skipped += 1,
                Ok(changes) => {
                    outcome.failed += 1;
                    eprintln!(
                        "    {}: finished under other settings ({}); not retrained over. Use another --out, or move {} away",
                        r.key,
                        changes.join("; "),
                        run_dir.display()
                    );
                }
                Err(e) => {
                    outcome.failed += 1;
                    eprintln!(
                        "    {}: unreadable {} ({e:#}); move the folder away to rerun it",
                        r.key,
                        summary.display()
                    );
                }
            }
            continue;
        }
        let folder = match RunFolder::lock(&run_dir) {
            Ok(f) => f,
            Err(e) if e.downcast_ref::<Busy>().is_some() => {
                outcome.busy += 1;
                eprintln!("    {}: {e}", r.key);
                continue;
            }
            Err(e) => return Err(e),
        };
        let step = match folder.model().exists() {
            false => 0,
            // The header says where the run stopped; Member::prepare loads and checks it.
            true => match crate::checkpoint::step_of(&folder.model()) {
                Ok(Some(step)) => step,
                Ok(None) => {
                    outcome.failed += 1;
                    eprintln!("    {}: {} has no training state to continue from", r.key, folder.model().display());
                    continue;
                }
                Err(e) => {
                    outcome.failed += 1;
                    eprintln!("    {}: {e:#}", r.key);
                    continue;
                }
            },
        };
        let key = format!("{} from step {step}", run::group_key(&r.cfg));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push((r, folder)),
            None => groups.push((key, vec![(r, folder)])),
        }
    }
    Ok(groups)
}

/// Trains one part of a group together and counts each run's result in `outcome`. The error
/// is what stops the sweep (an interrupt, a failed device).
fn train_part(
    gpu: &Gpu,
    part: Vec<(&SweepRun, RunFolder)>,
    progress: bool,
    tuning: crate::tune::Tuning,
    outcome: &mut Outcome,
) -> Result<()> {
    let mut ready = Vec::new();
    let mut keys = Vec::new();
    for (r, folder) in part {
        match Member::prepare(gpu, &r.cfg, folder, Start::Auto, false) {
            Ok(m) => {
                ready.push(m);
                keys.push(r.key.as_str());
            }
            Err(e) => {
                outcome.failed += 1;
                eprintln!("    {}: failed: {e:#}", r.key);
            }
        }
    }
    for (key, res) in keys.into_iter().zip(run::train_members(gpu, ready, progress, tuning, None)?) {
        match res {
            Ok(s) => {
                outcome.ran += 1;
                if progress {
                    eprintln!(
                        "    {:<28} heldout {:.4} ± {:.4} (train {:.4}) train {:.0} s, eval {:.0} s",
                        key, s.heldout_ll, s.heldout_ll_se, s.train_ll, s.train_seconds, s.eval_seconds
                    );
                }
            }
            Err(e) => {
                outcome.failed += 1;
                eprintln!("    {key}: failed: {e:#}");
            }
        }
    }
    Ok(())
}
