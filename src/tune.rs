//! Per-adapter kernel choice. Where mflow has more than one correct way to run a piece of
//! work (each coupling as one fused dispatch or as GEMMs and the affine kernel; the GEMMs'
//! family; the fused couplings' rows per invocation; the conv kernels' tiles) the tuner times
//! the candidates on the user's adapter the first time they are needed, keeps the faster,
//! and caches the choice per adapter, driver and kernel version in the user's cache directory
//! (`$XDG_CACHE_HOME/mflow/tune.json`, else `~/.cache/mflow/tune.json`).
//!
//! The callers (`run/`, `sweep`, `bench`, the `sample` and `eval` commands) ask once, with
//! `kernels(gpu, tuning, needs)`, and hand the `Kernels` value down; `Tuning::Defaults`
//! (`--no-tune`, `MFLOW_NO_TUNE=1`) takes the built-in choices without measuring.
//!
//! Tuning is bounded: candidates race (`measure::race`), and one whose first timing is at
//! least twice the best so far is dropped at once; the first use says on stderr what it times
//! and about how long it takes; a signal during it exits at once (nothing is saved yet).
//! Every candidate is tested against the f64 reference (tests/gemm.rs, tests/fused.rs,
//! tests/flow.rs, tests/backward.rs, tests/conv.rs), so the tuner only ever chooses among
//! correct kernels.

use crate::gpu::Gpu;
use crate::gpu_flow::{inference_class, training_class, GpuFlow, Kernels, Mode};
use crate::interrupt;
use crate::kernels::conv::ConvTiles;
use crate::kernels::fused::FusedCoupling;
use crate::kernels::gemm::{GemmChoice, Size, Variant, CLASSES, VARIANTS};
use crate::measure::{fastest, race, time_once, GemmTrial};
use crate::model::{Flow, FlowConfig};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where kernel choices come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tuning {
    /// Measured on this adapter on first use, then read from the cache.
    Measure,
    /// The built-in choices (`Kernels::defaults`), nothing measured.
    #[default]
    Defaults,
}

impl Tuning {
    /// The command line's choice: `--no-tune`, or `MFLOW_NO_TUNE` set to anything but empty
    /// or 0, takes the defaults.
    pub fn from_flag(no_tune: bool) -> Self {
        if no_tune || env_no_tune() {
            Tuning::Defaults
        } else {
            Tuning::Measure
        }
    }
}

/// Whether `MFLOW_NO_TUNE` asks for the defaults.
pub fn env_no_tune() -> bool {
    std::env::var("MFLOW_NO_TUNE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A choice a caller's programs depend on.
#[derive(Clone, Debug)]
pub enum Need {
    /// Training flows shaped like `config` on batches of `batch` rows.
    Training { config: FlowConfig, batch: usize },
    /// Evaluating and sampling flows shaped like `config`.
    Inference(FlowConfig),
}

impl Need {
    /// Training and evaluating flows shaped like `config` (a training run needs both).
    pub fn run(config: &FlowConfig, batch: usize) -> [Need; 2] {
        [Need::Training { config: config.clone(), batch }, Need::Inference(config.clone())]
    }

    fn config(&self) -> &FlowConfig {
        match self {
            Need::Training { config, .. } | Need::Inference(config) => config,
        }
    }

    fn class(&self) -> String {
        match self {
            Need::Training { config, batch } => training_class(config, *batch),
            Need::Inference(config) => inference_class(config),
        }
    }
}

/// The kernels for `needs` on `gpu`: with `Tuning::Measure`, each choice read from the cache,
/// or measured on a miss (saying so on stderr) and stored; with `Tuning::Defaults`, the
/// built-in ones. Errors: a cache path that is not a regular file, and a signal (exits).
pub fn kernels(gpu: &Gpu, tuning: Tuning, needs: &[Need]) -> Result<Kernels> {
    if tuning == Tuning::Defaults {
        return Ok(Kernels::defaults(gpu));
    }
    let key = adapter_key(gpu);
    let cache = load()?;
    let gemm = cache.gemm.get(&key).and_then(choice_of);
    let stored = |need: &Need| cache.modes(need).get(&key).and_then(|m| m.get(&need.class())).is_some();
    let missing: Vec<&Need> = needs.iter().filter(|n| races(gpu, n) && !stored(n)).collect();
    if gemm.is_some() && missing.is_empty() {
        return Ok(from_cache(gpu, &cache, &key, needs));
    }
    announce(gpu, gemm.is_none(), &missing);
    let (gemm_entry, entries) = interrupt::at_once(|| measure_all(gpu, gemm, &missing))?;
    let after = update(|c| {
        if let Some(e) = gemm_entry {
            // The first valid entry stored wins; one naming a kernel this build lacks is
            // replaced, not kept (it would be measured again by every command).
            if c.gemm.get(&key).and_then(choice_of).is_none() {
                c.gemm.insert(key.clone(), e);
            }
        }
        for (need, e) in missing.iter().zip(&entries) {
            c.modes_mut(need).entry(key.clone()).or_default().entry(need.class()).or_insert(e.clone());
        }
    });
    Ok(from_cache(gpu, &after, &key, needs))
}

/// Whether fused couplings and GEMMs race for `need` here: nothing to choose where the fused
/// kernel cannot hold the flow, or where the fused couplings do not race.
fn races(gpu: &Gpu, need: &Need) -> bool {
    fused_races(gpu) && FusedCoupling::fits_config(need.config())
}

/// Measures what is missing: the GEMM families (and fused rows) unless `known`, then each
/// need with the GEMM families this adapter will use.
fn measure_all(gpu: &Gpu, known: Option<GemmChoice>, needs: &[&Need]) -> Result<(Option<GemmEntry>, Vec<Entry>)> {
    let gemm_entry = if known.is_none() { Some(measure_gemm(gpu)?) } else { None };
    let mut with = Kernels::defaults(gpu);
    if let Some(c) = known.or_else(|| gemm_entry.as_ref().and_then(choice_of)) {
        with.gemm = c;
    }
    let mut entries = Vec::new();
    for need in needs {
        entries.push(match need {
            Need::Training { config, batch } => measure_training(gpu, config, *batch, &with)?,
            Need::Inference(config) => measure_inference(gpu, config, &with)?,
        });
    }
    Ok((gemm_entry, entries))
}

/// The defaults with what the cache holds for `needs` on this adapter.
fn from_cache(gpu: &Gpu, cache: &Cache, key: &str, needs: &[Need]) -> Kernels {
    let mut k = Kernels::defaults(gpu);
    if let Some(c) = cache.gemm.get(key).and_then(choice_of) {
        k.gemm = c;
    }
    for need in needs {
        if let Some(e) = cache.modes(need).get(key).and_then(|m| m.get(&need.class())) {
            let map = match need {
                Need::Training { .. } => &mut k.training,
                Need::Inference(_) => &mut k.inference,
            };
            map.insert(need.class(), e.fused);
        }
    }
    k
}

/// The cache: adapter key → shape class → the chosen mode and the timings behind it; and
/// adapter key → the GEMM family chosen.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Cache {
    pub adapters: BTreeMap<String, BTreeMap<String, Entry>>,
    #[serde(default)]
    pub gemm: BTreeMap<String, GemmEntry>,
    /// adapter key → training shape class → fused or GEMM training steps.
    #[serde(default)]
    pub training: BTreeMap<String, BTreeMap<String, Entry>>,
}

type Modes = BTreeMap<String, BTreeMap<String, Entry>>;

impl Cache {
    fn modes(&self, need: &Need) -> &Modes {
        match need {
            Need::Training { .. } => &self.training,
            Need::Inference(_) => &self.adapters,
        }
    }
    fn modes_mut(&mut self, need: &Need) -> &mut Modes {
        match need {
            Need::Training { .. } => &mut self.training,
            Need::Inference(_) => &mut self.adapters,
        }
    }
}

/// The GEMM families chosen for an adapter, one per shape class (`kernels::gemm::CLASSES`,
/// named like "Nn small"), with each candidate's GFLOP/s on that class's shape (a dropped
/// candidate's from its one timing).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct GemmEntry {
    pub choice: BTreeMap<String, String>,
    pub gflops: BTreeMap<String, BTreeMap<String, f64>>,
    /// The fused couplings' vec4 linears: 8 rows per invocation (else 4), and the seconds of
    /// a moons-shaped evaluation forward each way ("rows4", "rows8").
    #[serde(default)]
    pub fused_rows8: bool,
    #[serde(default)]
    pub fused_rows_s: BTreeMap<String, f64>,
    /// Per class, the candidates dropped after one timing (at least twice the best so far).
    #[serde(default)]
    pub dropped: BTreeMap<String, Vec<String>>,
    /// conv.wgsl's tiles for wide layers, and the seconds per dispatch of each candidate
    /// ("fwd_c8", "fwd_c16", "wgrad3_o8", ...) on `measure_conv_tiles`' shapes.
    #[serde(default)]
    pub conv: ConvTiles,
    #[serde(default)]
    pub conv_s: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub fused: bool,
    /// Seconds per evaluation chunk (or training step) of each candidate (fused, unfused).
    pub fused_s: f64,
    pub unfused_s: f64,
}

fn variant_named(name: &str) -> Option<Variant> {
    VARIANTS.into_iter().find(|v| format!("{v:?}") == name)
}

/// The choice an entry stores; `None` where it names a class or kernel this build lacks.
fn choice_of(e: &GemmEntry) -> Option<GemmChoice> {
    let mut by_class = [Variant::Reg; CLASSES.len()];
    for (slot, (class, _)) in by_class.iter_mut().zip(CLASSES) {
        *slot = variant_named(e.choice.get(&class.to_string())?)?;
    }
    Some(GemmChoice { by_class, fused_rows8: e.fused_rows8, conv: e.conv })
}

/// The GEMM families that race on `gpu`, in order: the adapter's built-in family first
/// (usually the fastest, so the others meet a low bar and slow ones drop after one timing).
/// CPU adapters leave out the families that tile through workgroup memory: there tiles only
/// add copies (on lavapipe and GL's llvmpipe they lost every class by 2-6x), and GL's
/// llvmpipe spent 160 s compiling them with a cold shader cache.
pub fn candidates(gpu: &Gpu) -> Vec<Variant> {
    let first = Variant::for_adapter(gpu);
    let races = |v: &Variant| *v != first && !(gpu.is_cpu() && v.tiles_in_workgroup_memory());
    std::iter::once(first).chain(VARIANTS.into_iter().filter(races)).collect()
}

/// Whether the fused couplings race the GEMMs on `gpu`. Not on GL's llvmpipe: it ran them
/// 2-5x slower than the GEMMs in every training and evaluation class measured (Mesa 22.3),
/// and compiling them took about 50 s with a cold shader cache. There the GEMMs are taken
/// (`Kernels::defaults` on a CPU adapter) without measuring.
pub fn fused_races(gpu: &Gpu) -> bool {
    !(gpu.is_cpu() && gpu.info.backend == wgpu::Backend::Gl)
}

/// Races every family on every shape class and keeps the fastest per class; then the fused
/// couplings' row layout.
pub fn measure_gemm(gpu: &Gpu) -> Result<GemmEntry> {
    let mut choice = BTreeMap::new();
    let mut gflops = BTreeMap::new();
    let mut dropped = BTreeMap::new();
    let order = candidates(gpu);
    for (class, (m, k, n)) in CLASSES {
        interrupt::check("kernel tuning")?;
        // Small products take a millisecond or less: several per submit steady their timings.
        let (reps, trials) = match class.size {
            Size::Large => (1, 3),
            Size::Small => (4, 5),
            Size::Tiny => (8, 5),
        };
        let trials_of: Vec<GemmTrial> =
            order.iter().map(|&v| GemmTrial::new(gpu, v, class.op, m, k, n)).collect::<Result<_>>()?;
        let results = race(order.len(), trials, |i| Ok(trials_of[i].time(gpu, reps)))?;
        gpu.check()?;
        let rates: BTreeMap<String, f64> =
            order.iter().zip(&trials_of).zip(&results).map(|((v, t), r)| (format!("{v:?}"), t.gflops(r.0))).collect();
        choice.insert(class.to_string(), format!("{:?}", order[fastest(&results)]));
        let out = order.iter().zip(&results).filter(|(_, r)| r.1).map(|(v, _)| format!("{v:?}")).collect();
        dropped.insert(class.to_string(), out);
        gflops.insert(class.to_string(), rates);
    }
    let (fused_rows8, fused_rows_s) = if fused_races(gpu) {
        let s = measure_fused_rows(gpu)?;
        (s["rows8"] < s["rows4"], s)
    } else {
        (GemmChoice::default_for(gpu).fused_rows8, BTreeMap::new())
    };
    let (conv, conv_s) = measure_conv_tiles(gpu)?;
    Ok(GemmEntry { choice, gflops, fused_rows8, fused_rows_s, dropped, conv, conv_s })
}

/// Races each pair of conv.wgsl's wide tiles on a layer of CONV.md's conditioners at MNIST's
/// second scale (batch 32, 14×14, 64 channels): the forward of a 3×3 convolution from 4
/// channels (the tiles of its data gradient too), that convolution's weight gradient, and a
/// 1×1's (64 → 64). Every tile is tested against the f64 twin (tests/conv.rs).
fn measure_conv_tiles(gpu: &Gpu) -> Result<(ConvTiles, BTreeMap<String, f64>)> {
    use crate::gpu::storage_init;
    use crate::kernels::conv::{Conv, Planes};
    use crate::model::Conv2d;
    let (n, h, w, wc) = (32, 14, 14, 64);
    let buffers = |conv: Conv2d| {
        let ps = conv.b + conv.c_out;
        let len = |c: usize| vec![0.5f32; n * c * h * w];
        (
            storage_init(gpu, "tune conv params", &vec![0.01f32; ps]),
            storage_init(gpu, "tune conv x", &len(conv.c_in)),
            storage_init(gpu, "tune conv y", &len(conv.c_out)),
            storage_init(gpu, "tune conv grads", &vec![0f32; ps]),
        )
    };
    let c3 = Conv2d { w: 0, b: wc * 4 * 9, c_in: 4, c_out: wc, k: 3 };
    let c1 = Conv2d { w: 0, b: wc * wc, c_in: wc, c_out: wc, k: 1 };
    let (b3, b1) = (buffers(c3), buffers(c1));
    let planes = |buf, c: usize| Planes { buf, off: 0, rs: c * h * w, ms: 0 };
    let op = |conv, tiles| Conv { conv, n, h, w, mask: None, ps: 0, tiles };
    let with = |f: fn(&mut ConvTiles)| {
        let mut t = ConvTiles::default();
        f(&mut t);
        t
    };
    // (name of each candidate, its dispatch) per pair.
    let pairs: [[(&str, crate::gpu::Dispatch); 2]; 3] = [
        [ConvTiles::default(), with(|t| t.fwd_c16 = true)].map(|t| {
            (
                if t.fwd_c16 { "fwd_c16" } else { "fwd_c8" },
                op(c3, t).forward(gpu, &b3.0, planes(&b3.1, 4), planes(&b3.2, wc), false),
            )
        }),
        [ConvTiles::default(), with(|t| t.wgrad3_o4 = true)].map(|t| {
            let name = if t.wgrad3_o4 { "wgrad3_o4" } else { "wgrad3_o8" };
            (name, op(c3, t).backward_weights(gpu, planes(&b3.1, 4), planes(&b3.2, wc), &b3.3))
        }),
        [ConvTiles::default(), with(|t| t.wgrad1_o4 = true)].map(|t| {
            let name = if t.wgrad1_o4 { "wgrad1_o4" } else { "wgrad1_o8" };
            (name, op(c1, t).backward_weights(gpu, planes(&b1.1, wc), planes(&b1.2, wc), &b1.3))
        }),
    ];
    let mut seconds = BTreeMap::new();
    let mut wins = [false; 3];
    for (pair, win) in pairs.iter().zip(&mut wins) {
        interrupt::check("kernel tuning")?;
        for (_, d) in pair {
            time_once(gpu, &[d], 1); // warm-up: pipeline compilation
        }
        let r = race(2, 3, |i| Ok(time_once(gpu, &[&pair[i].1], 2)))?;
        gpu.check()?;
        *win = fastest(&r) == 1;
        for ((name, _), (t, _)) in pair.iter().zip(&r) {
            seconds.insert(name.to_string(), *t);
        }
    }
    Ok((ConvTiles { fwd_c16: wins[0], wgrad3_o4: wins[1], wgrad1_o4: wins[2] }, seconds))
}

/// Seconds of a fused evaluation forward (a moons-shaped flow, Q = 4, H = 128, 1024 rows)
/// with 4 and with 8 rows per invocation in the vec4 linears, raced. Both layouts are tested
/// against the f64 reference (tests/fused.rs).
fn measure_fused_rows(gpu: &Gpu) -> Result<BTreeMap<String, f64>> {
    let cfg = FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 128, seed: 0, conv: None };
    let mut flow = Flow::new(cfg)?;
    flow.randomize(1, 0.5);
    let flows = [false, true].map(|rows8| {
        let choice = GemmChoice { fused_rows8: rows8, ..GemmChoice::default_for(gpu) };
        GpuFlow::build(gpu, &flow, 1024, Mode::Inference, choice)
    });
    let programs: Vec<Vec<&crate::gpu::Dispatch>> =
        flows.iter().map(|f| f.forward_dispatches(false).iter().collect()).collect();
    for p in &programs {
        time_once(gpu, p, 1); // warm-up: pipeline compilation
    }
    let r = race(2, 3, |i| Ok(time_once(gpu, &programs[i], 2)))?;
    gpu.check()?;
    Ok(BTreeMap::from([("rows4".to_string(), r[0].0), ("rows8".to_string(), r[1].0)]))
}

/// Races one evaluation chunk of each program on a model of this shape with random
/// parameters (1024 rows, fewer where the binding is smaller), after a warm-up.
pub fn measure_inference(gpu: &Gpu, config: &FlowConfig, kernels: &Kernels) -> Result<Entry> {
    interrupt::check("kernel tuning")?;
    let mut flow = Flow::new(FlowConfig { seed: 0, ..config.clone() })?;
    flow.randomize(1, 0.5);
    let s = if config.exact() { 1 } else { 16 };
    let points = (1024 / s).max(1);
    let data = crate::data::Table::new(config.d, vec![0.25; points * config.d]);
    let evs = [Mode::Inference, Mode::InferenceUnfused]
        .map(|mode| crate::eval::Evaluator::with_mode(gpu, &flow, s, points, mode, kernels));
    let [fused, unfused] = evs;
    let evs = [fused?, unfused?];
    for ev in &evs {
        ev.upload_params(gpu, &flow.params);
        ev.log_likelihood(gpu, &data, 1)?;
    }
    let r = race(2, 3, |i| {
        let start = Instant::now();
        evs[i].log_likelihood(gpu, &data, 1)?;
        Ok(start.elapsed().as_secs_f64())
    })?;
    Ok(Entry { fused: fastest(&r) == 0, fused_s: r[0].0, unfused_s: r[1].0 })
}

/// Races training steps of each program on a model of this shape with random parameters:
/// one warm-up step each, then trials of 2 steps (waited for).
pub fn measure_training(gpu: &Gpu, config: &FlowConfig, batch: usize, kernels: &Kernels) -> Result<Entry> {
    use crate::train::{OptimConfig, Trainer};
    interrupt::check("kernel tuning")?;
    let mut flow = Flow::new(FlowConfig { seed: 0, ..config.clone() })?;
    flow.randomize(1, 0.5);
    let opt = OptimConfig { batch, lr: 1e-4, clip: None, noise_seed: 0, ema: None };
    let x = vec![0.25f32; batch * config.d];
    let mut trainers =
        [Mode::Training, Mode::TrainingUnfused].map(|m| Trainer::with_mode(gpu, &[&flow], &[0], &opt, m, kernels));
    let run = |t: &mut Trainer, steps: usize| -> Result<f64> {
        let start = Instant::now();
        for _ in 0..steps {
            t.step(gpu, &x, false);
        }
        gpu.wait()?;
        Ok(start.elapsed().as_secs_f64() / steps as f64)
    };
    for t in &mut trainers {
        run(t, 1)?;
    }
    let r = race(2, 3, |i| run(&mut trainers[i], 2))?;
    Ok(Entry { fused: fastest(&r) == 0, fused_s: r[0].0, unfused_s: r[1].0 })
}

/// `mflow bench tune`: measures the GEMM families and every need afresh, stores the results
/// (replacing what the cache held for them) and returns them for printing.
pub fn tune(gpu: &Gpu, needs: &[Need]) -> Result<(GemmEntry, Vec<(String, Entry)>)> {
    let key = adapter_key(gpu);
    load()?; // a cache path that is not a regular file is refused before any measuring
    let fits: Vec<&Need> = needs.iter().filter(|n| races(gpu, n)).collect();
    announce(gpu, true, &fits);
    let (gemm, entries) = interrupt::at_once(|| measure_all(gpu, None, &fits))?;
    let gemm = gemm.context("measured")?;
    update(|c| {
        c.gemm.insert(key.clone(), gemm.clone());
        for (need, e) in fits.iter().zip(&entries) {
            c.modes_mut(need).entry(key.clone()).or_default().insert(need.class(), e.clone());
        }
    });
    Ok((gemm, fits.iter().map(|n| n.class()).zip(entries).collect()))
}

/// The adapter, its driver, and the kernels timed on it (a shader fingerprint: choices made
/// for other kernels are not reused).
pub fn adapter_key(gpu: &Gpu) -> String {
    format!(
        "{} | {:?} | {} {}{}",
        gpu.info.name,
        gpu.info.backend,
        gpu.info.driver,
        gpu.info.driver_info,
        crate::kernels::fingerprint_tag()
    )
}

pub fn cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("mflow").join("tune.json"))
}

/// About how long measuring takes here, in seconds: figures measured with `mflow bench tune`
/// (lavapipe on 2 cores: GEMM families ~4 s, a training or evaluation class ~0.5 s; GL's
/// llvmpipe about 3x that; a GPU well under).
fn estimate(gpu: &Gpu, gemm: bool, needs: usize) -> f64 {
    let base = if gemm { 4.0 } else { 0.0 } + 0.5 * needs as f64;
    match (gpu.is_cpu(), gpu.info.backend) {
        (true, wgpu::Backend::Gl) => 3.0 * base,
        (true, _) => base,
        _ => 0.3 * base,
    }
}

/// One line on stderr, terminal or not: what is timed, about how long, and where it is kept.
fn announce(gpu: &Gpu, gemm: bool, needs: &[&Need]) {
    let mut what: Vec<String> = Vec::new();
    if gemm {
        what.push("GEMM families".into());
    }
    what.extend(needs.iter().map(|n| n.class()));
    let place = cache_path().map_or_else(|| "memory".to_string(), |p| p.display().to_string());
    eprintln!(
        "tuning kernels for {} (first use; about {:.0} s): {}; cached in {place} (--no-tune skips this)",
        gpu.info.name,
        estimate(gpu, gemm, needs.len()).ceil(),
        what.join(", ")
    );
}

/// Choices this process could not write to the cache file (see `store`).
static MEMORY: std::sync::Mutex<Option<Cache>> = std::sync::Mutex::new(None);

/// The largest cache file read: a real one holds a few KiB per adapter.
const MAX_CACHE_BYTES: u64 = 16 << 20;

/// The cache file's text; `None` where there is none. A path that is not a regular file
/// (a FIFO would block every command) or is implausibly large is refused.
fn read_cache(path: &Path) -> Result<Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("tuning cache {}: {e} (or run with --no-tune)", path.display()),
    };
    if !meta.is_file() || meta.len() > MAX_CACHE_BYTES {
        bail!(
            "tuning cache {}: {}; remove it, point XDG_CACHE_HOME at another folder, or run with --no-tune",
            path.display(),
            if meta.is_file() {
                format!("larger than {} MiB", MAX_CACHE_BYTES >> 20)
            } else {
                "not a regular file".into()
            }
        );
    }
    match crate::checkpoint::read_regular(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) => bail!("tuning cache {}: {e:#} (or run with --no-tune)", path.display()),
    }
}

fn load() -> Result<Cache> {
    // A file that does not parse (damaged, or another program's) is measured anew and replaced.
    let mut cache: Cache = match cache_path() {
        Some(p) => read_cache(&p)?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default(),
        None => Cache::default(),
    };
    if let Some(mem) = MEMORY.lock().ok().and_then(|m| m.clone()) {
        for (k, v) in mem.adapters {
            let m = cache.adapters.entry(k).or_default();
            for (class, e) in v {
                m.entry(class).or_insert(e);
            }
        }
        for (k, v) in mem.training {
            let m = cache.training.entry(k).or_default();
            for (class, e) in v {
                m.entry(class).or_insert(e);
            }
        }
        for (k, v) in mem.gemm {
            let valid = cache.gemm.get(&k).and_then(choice_of).is_some();
            if !valid {
                cache.gemm.insert(k, v);
            }
        }
    }
    Ok(cache)
}

/// Applies `change` to the cache as it is on disk now and stores the result, returning it:
/// processes tuning at the same time keep each other's entries, and a change made with
/// `or_insert` keeps the first choice stored, so every process then runs the same kernels
/// (a run resumed in another process computes exactly what it would have).
fn update(change: impl FnOnce(&mut Cache)) -> Cache {
    // Read failures were reported by the `load` before measuring; the file changing into
    // something unreadable meanwhile only costs the entries others stored.
    let mut cache = load().unwrap_or_default();
    change(&mut cache);
    // Entries of this adapter timed on other kernels (an older mflow) are never read again.
    let now = crate::kernels::fingerprint_tag();
    let stale = |k: &String| k.contains(" | kernels ") && !k.ends_with(&now);
    cache.adapters.retain(|k, _| !stale(k));
    cache.training.retain(|k, _| !stale(k));
    cache.gemm.retain(|k, _| !stale(k));
    store(&cache);
    cache
}

fn store(cache: &Cache) {
    // Where the file cannot be written (no HOME, a read-only home) the choices are kept in
    // memory, so each is measured once per process, not once per flow built.
    let written = cache_path().is_some_and(|p| {
        p.parent().is_some_and(|dir| std::fs::create_dir_all(dir).is_ok())
            && serde_json::to_string_pretty(cache)
                .is_ok_and(|json| crate::checkpoint::write_atomic(&p, json.as_bytes()).is_ok())
    });
    if !written {
        if let Ok(mut m) = MEMORY.lock() {
            *m = Some(cache.clone());
        }
    }
}
