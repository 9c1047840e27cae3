//! Evaluating trained models: per-point marginal log-likelihoods of a split, the S-curve of
//! `mflow eval`, and loading a model with the data it was trained on.

use super::config::RunConfig;
use crate::checkpoint;
use crate::data::images::Mode;
use crate::data::tabular::{self, Standardize};
use crate::data::{DataSpec, Dataset, Split, Table};
use crate::eval::{Estimate, Evaluator};
use crate::gpu::Gpu;
use crate::gpu_flow::Kernels;
use crate::model::Flow;
use crate::output::Input;
use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use std::path::Path;
use std::time::Instant;

/// The seed of evaluation noise (ε, dequantisation) unless `mflow eval --seed` says.
pub const EVAL_SEED: u64 = 0xE7A1;

/// Per-point log-likelihoods of a split: the marginal estimate of the flow's input density,
/// plus the Jacobian back to the data's units (dequant mode: to v ∈ [0,1]^D; standardised
/// tabular data: −Σ log std). Noise (ε, dequantisation) comes from `seed`.
pub fn split_log_likelihood(
    gpu: &Gpu,
    ev: &Evaluator,
    data: &Dataset,
    split: Split,
    limit: Option<usize>,
    seed: u64,
) -> Result<Vec<f64>> {
    let full = data.split(split);
    let limited;
    let t = match limit {
        Some(n) if n < full.rows() => {
            limited = full.slice(0..n);
            &limited
        }
        _ => full,
    };
    if t.rows() == 0 {
        let hint = if data.spec.starts_with("array:") {
            " (the model was trained on arrays handed over in memory, from Python: pass --data)"
        } else {
            ""
        };
        bail!("the {} split of {} is empty{hint}", split.name(), data.spec);
    }
    let ll: Vec<f64> = match &data.image {
        None => {
            let jac = data.standardize.as_ref().map_or(0.0, |s| s.log_jacobian());
            ev.log_likelihood(gpu, t, seed)?.into_iter().map(|l| l + jac).collect()
        }
        Some(info) => {
            // Pixels become f32 one block of whole chunks at a time, so host memory stays
            // near the dataset's bytes; the noise stream and ε continue across blocks.
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ split.stream());
            let block = ev.points * 16;
            let mut ll = Vec::with_capacity(t.rows());
            for start in (0..t.rows()).step_by(block) {
                let end = (start + block).min(t.rows());
                let mut x = Table::new(t.dim, Vec::with_capacity((end - start) * t.dim));
                t.extend_rows(start..end, &mut x.data);
                let jac = info.pre.apply(&mut x.data, x.dim, &mut rng);
                let part = ev.log_likelihood_from(gpu, &x, seed, start / ev.points)?;
                ll.extend(part.iter().zip(&jac).map(|(l, j)| l + j));
            }
            ll
        }
    };
    // A non-finite figure is never a result: say where it came from instead.
    let bad: Vec<usize> = ll.iter().enumerate().filter(|(_, v)| !v.is_finite()).map(|(i, _)| i).collect();
    if let Some(&i) = bad.first() {
        bail!(
            "the marginal log-likelihood is not finite for {} of {} points of the {} split (first: point {i}, {}); the model may have diverged",
            bad.len(),
            ll.len(),
            split.name(),
            ll[i]
        );
    }
    Ok(ll)
}

/// A trained model as its checkpoint holds it: the flow, the run configuration it was
/// trained under, and (tabular data) the standardisation it learned in.
pub struct Model {
    pub flow: Flow,
    pub run: Option<RunConfig>,
    pub standardize: Option<Standardize>,
    /// The training step of these parameters (a checkpoint with training state).
    pub step: Option<u64>,
}

pub fn load_model(path: &Path) -> Result<Model> {
    parse_model(&checkpoint::read_regular(path)?, path)
}

/// `load_model` on a checkpoint's bytes (the Python package keeps models in memory); `path`
/// names it in errors.
pub fn parse_model(bytes: &[u8], path: &Path) -> Result<Model> {
    let (flow, state) = checkpoint::parse(bytes, path, None)?;
    let extra = |key: &str| state.as_ref().and_then(|s| s.extra.get(key));
    let run: Option<RunConfig> = match extra("run") {
        Some(json) => Some(
            serde_json::from_str(json).with_context(|| format!("{}: unreadable run configuration", path.display()))?,
        ),
        None => None,
    };
    // The recorded run is input like any flag: its sizes are checked before anything is read.
    if let Some(r) = &run {
        r.validate().with_context(|| format!("{}: the run configuration recorded in it", path.display()))?;
    }
    let standardize: Option<Standardize> = match extra("standardize") {
        Some(json) => Some(
            serde_json::from_str(json).with_context(|| format!("{}: unreadable standardisation", path.display()))?,
        ),
        None => None,
    };
    if let Some(s) = &standardize {
        if s.mean.len() != flow.config.d
            || s.std.len() != flow.config.d
            || s.std.iter().any(|v| !v.is_finite() || *v <= 0.0)
        {
            bail!("{}: the standardisation does not fit the model (D = {})", path.display(), flow.config.d);
        }
    }
    let step = state.as_ref().map(|s| s.step);
    Ok(Model { flow, run, standardize, step })
}

/// What a command reading `model` (at `path`) reads besides: the data given (`--data`),
/// else the data the model was trained on, which the command then reads.
pub fn model_inputs<'a>(path: &'a Path, model: &'a Model, given: Option<&'a DataSpec>) -> Vec<Input<'a>> {
    let mut inputs: Vec<Input> = vec![("--model".to_string(), path)];
    match (given, &model.run) {
        (Some(spec), _) => inputs.extend(spec.files().into_iter().map(|p| ("--data".to_string(), p))),
        (None, Some(run)) => inputs.extend(
            run.data.files().into_iter().map(|p| ("the data the model was trained on (recorded in it)".to_string(), p)),
        ),
        (None, None) => {}
    }
    inputs
}

/// The dataset a model is evaluated or sampled against: `spec` when given, else the one it
/// was trained on; `mode` overrides the preprocessing it was trained with. Tabular data is
/// scaled with the model's own standardisation, and a single file named by `spec` is
/// evaluated whole: every row is its test split.
pub fn model_data(model: &Model, spec: Option<&str>, mode: Option<Mode>) -> Result<Dataset> {
    let flow = &model.flow;
    let mut cfg = match (&model.run, spec) {
        (Some(r), _) => r.clone(),
        (None, Some(s)) => RunConfig::defaults(DataSpec::parse(s)?, flow.config.b, flow.config.seed),
        (None, None) => bail!("the checkpoint does not say which data it was trained on: pass --data"),
    };
    if let Some(s) = spec {
        cfg.data = DataSpec::parse(s)?;
    }
    if let Some(m) = mode {
        cfg.preprocess = m;
    }
    let data = match &cfg.data {
        DataSpec::Tabular(t) => {
            cfg.data.validate()?;
            match (&t.path, spec.is_some()) {
                (Some(path), true) => {
                    let all = tabular::read(path, t.format, t.header)?;
                    points_dataset(model, &cfg.data.describe(), all, &path.display().to_string())?
                }
                _ => crate::data::tabular_dataset(
                    &cfg.data,
                    t,
                    cfg.data_seed,
                    model.standardize.as_ref(),
                    cfg.preprocess,
                )
                .with_context(|| recorded(spec))?,
            }
        }
        // Arrays handed over in memory are gone: the model's scaling, and no points.
        DataSpec::Array(a) => {
            let empty = Table { dim: a.shape.iter().product(), ..Default::default() };
            points_dataset(model, &cfg.data.describe(), empty, "the model's data")?
        }
        _ => {
            let mut data = cfg.data.load(cfg.sizes, cfg.data_seed, cfg.preprocess).with_context(|| recorded(spec))?;
            // A model trained on standardised data sees any data through its standardisation.
            if let Some(s) = &model.standardize {
                if data.image.is_some() || s.mean.len() != data.train.dim.max(data.test.dim) {
                    bail!("{} does not fit a model trained on standardised {}-column data", data.spec, s.mean.len());
                }
                let mut train = (*data.train).clone();
                for t in [&mut train, &mut data.validation, &mut data.test] {
                    s.apply(t);
                }
                data.train = train.into();
                data.standardize = Some(s.clone());
                data.truth = None; // the truth is a density in the data's units, not the model's
            }
            data
        }
    };
    let dim = data.train.dim.max(data.test.dim);
    if dim != flow.config.d {
        bail!("{} has {dim} dimensions per point but the model has D = {}", data.spec, flow.config.d);
    }
    Ok(data)
}

/// Where the data came from, for errors: given with --data, or recorded in the checkpoint.
fn recorded(spec: Option<&str>) -> String {
    match spec {
        Some(s) => format!("--data {s}"),
        None => "the data the model was trained on, as recorded in it (pass --data to use other data)".into(),
    }
}

/// Points a trained model evaluates, as the test split of a dataset seen the way the model
/// was trained: real values (in the data's units) through its standardisation, images (8-bit
/// levels, the model's shape) through its dequantisation. `what` names the points in errors.
pub fn points_dataset(model: &Model, spec: &str, mut points: Table, what: &str) -> Result<Dataset> {
    let d = model.flow.config.d;
    let run = model.run.as_ref();
    // Images of the user's own (arrays, npy files) are known by the shape the run recorded.
    let image = match run.and_then(|r| r.data.image_shape()) {
        Some([channels, height, width]) => {
            let mode = run.map_or(Mode::Dequant, |r| r.preprocess);
            let pre = match mode {
                Mode::Thesis => {
                    bail!("{what}: the model was trained in {mode:?} mode, whose scaling needs its training images")
                }
                // Float images: their values, drawn over the range of these points.
                Mode::None => crate::data::images::Preprocess::none(&points),
                Mode::Dequant => crate::data::images::Preprocess {
                    mode,
                    levels: 256,
                    mean: 0.0,
                    std: 1.0,
                    noise: 0.0,
                    lo: 0.0,
                    hi: 255.0,
                },
            };
            Some(crate::data::ImageInfo { channels, height, width, pre })
        }
        None => None,
    };
    if points.dim != d {
        bail!("{what}: {} values per point, but the model was trained on D = {d}", points.dim);
    }
    // 8-bit images are levels; float images and other points real values.
    let want_levels = image.as_ref().is_some_and(|i| i.pre.mode != Mode::None);
    let kind = |levels: bool| {
        if levels {
            "images of 8-bit levels"
        } else if image.is_some() {
            "float images"
        } else {
            "real values"
        }
    };
    let has_levels = !points.levels.is_empty();
    if want_levels != has_levels && points.rows() > 0 {
        bail!(
            "{what}: the model was trained on {}, these points are {}",
            kind(want_levels),
            if want_levels { "real values" } else { "8-bit levels" }
        );
    }
    if let Some(s) = &model.standardize {
        s.apply(&mut points);
    }
    Ok(Dataset {
        spec: spec.to_string(),
        train: Table { dim: d, ..Default::default() }.into(),
        validation: Table { dim: d, ..Default::default() },
        test: points,
        truth: None,
        true_ll_expected: None,
        image,
        train_labels: None,
        test_labels: None,
        standardize: model.standardize.clone(),
    })
}

/// A progress bar over the points of a long evaluation (drawn only on a terminal).
pub fn eval_bar(points: u64, s: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(points);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} evaluating, S = {s} [{{bar:30}}] {{pos}}/{{len}} points  ETA {{eta}}"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// One row of `mflow eval`: the estimate at one S.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalRow {
    /// The data and split evaluated, and how many of its points (the first `points`).
    pub data: String,
    pub split: &'static str,
    /// What the figures measure (see `units`).
    pub units: String,
    /// The seed of the evaluation noise (ε, and dequantisation for images).
    pub seed: u64,
    pub samples: usize,
    pub exact: bool,
    pub ll: f64,
    pub ll_se: f64,
    pub bits_per_dim: Option<f64>,
    pub bits_per_dim_se: Option<f64>,
    pub points: usize,
    pub seconds: f64,
    /// Flow evaluations (points × S) per second.
    pub evals_per_s: f64,
    /// log p(x) of each point, in order.
    #[serde(skip)]
    pub log_p: Vec<f64>,
    /// Bits per dimension of each point (dequantised images).
    #[serde(skip)]
    pub bits_per_dim_per_point: Option<Vec<f64>>,
    /// Where the data's density is known (MODEL.md's synthetic sets): its mean exact
    /// log-density over the same points, which no model beats in expectation.
    pub true_ll: Option<f64>,
    /// The exact log-density of each point, where it is known.
    #[serde(skip)]
    pub true_log_p: Option<Vec<f64>>,
}

/// What a dataset's log-likelihoods measure, said wherever a figure is printed or stored.
pub fn units(data: &Dataset) -> String {
    match (&data.image, &data.standardize) {
        (Some(i), _) if i.pre.mode == Mode::Dequant => format!(
            "nats of log p(v) per image; bits/dim in the data's {} grey levels{}",
            i.pre.levels,
            if i.pre.levels == 256 { "" } else { " (not 256: not comparable with 8-bit figures)" }
        ),
        (Some(_), _) => "nats per image of standardised pixels (thesis mode)".into(),
        (None, Some(_)) => "nats, in the data's own units (the standardisation's Jacobian is included)".into(),
        (None, None) => "nats".into(),
    }
}

impl EvalRow {
    /// Writes the per-point values to `path`, atomically. .npy: a 1-D array of log p, or one
    /// column each of log p, bits/dim (images) and the true log-density (synthetic data);
    /// .csv: index, log_p[, bits_per_dim][, true_log_p].
    pub fn write_per_point(&self, path: &Path) -> Result<()> {
        let mut cols = vec![self.log_p.clone()];
        let mut names = vec!["index", "log_p"];
        if let Some(b) = &self.bits_per_dim_per_point {
            cols.push(b.clone());
            names.push("bits_per_dim");
        }
        if let Some(t) = &self.true_log_p {
            cols.push(t.clone());
            names.push("true_log_p");
        }
        let bytes = match tabular::Format::of(path, "--per-point")? {
            tabular::Format::Npy => tabular::npy_columns(&cols),
            tabular::Format::Csv => {
                let index: Vec<f64> = (0..self.log_p.len()).map(|i| i as f64).collect();
                cols.insert(0, index);
                tabular::csv_columns(&names, &cols).into_bytes()
            }
        };
        checkpoint::write_atomic(path, &bytes)
    }
}

/// Thesis eq. 8 on a split for each S in `samples` (the S-curve), with noise from `seed`;
/// each row keeps its per-point values (log p(x), and bits/dim for dequantised images).
pub fn evaluate(
    gpu: &Gpu,
    flow: &Flow,
    data: &Dataset,
    split: Split,
    samples: &[usize],
    limit: Option<usize>,
    seed: u64,
    kernels: &Kernels,
) -> Result<Vec<EvalRow>> {
    let mut rows = Vec::new();
    let n = data.split(split).rows().min(limit.unwrap_or(usize::MAX));
    // The same points' exact log-density, where the data's is known (the same for every S).
    let truth = data.true_log_p(split, n);
    for &s in samples {
        let mut ev = Evaluator::for_points(gpu, flow, s, data.split(split).rows(), kernels)?;
        ev.set_progress(eval_bar(n as u64, ev.s));
        // The evaluation's own rate: building the evaluator (and tuning, on an adapter's
        // first use) is not part of it.
        let t = Instant::now();
        let ll = split_log_likelihood(gpu, &ev, data, split, limit, seed)?;
        let secs = t.elapsed().as_secs_f64();
        let e = Estimate::of(&ll);
        let dequant = data.image.as_ref().filter(|i| i.pre.mode == Mode::Dequant);
        let d = flow.config.d as f64;
        let bpd_each = dequant.map(|i| ll.iter().map(|&l| i.pre.bits_per_dim(l, flow.config.d)).collect());
        rows.push(EvalRow {
            data: data.spec.clone(),
            split: split.name(),
            units: units(data),
            seed,
            samples: ev.s,
            exact: flow.config.exact(),
            ll: e.mean,
            ll_se: e.se,
            bits_per_dim: dequant.map(|i| i.pre.bits_per_dim(e.mean, flow.config.d)),
            bits_per_dim_se: dequant.map(|_| e.se / (d * std::f64::consts::LN_2)),
            points: e.n,
            seconds: secs,
            evals_per_s: (e.n * ev.s) as f64 / secs,
            log_p: ll,
            bits_per_dim_per_point: bpd_each,
            true_ll: truth.as_ref().map(|t| t.iter().sum::<f64>() / t.len().max(1) as f64),
            true_log_p: truth.clone(),
        });
        if flow.config.exact() {
            break; // exact: every S gives the same number
        }
    }
    Ok(rows)
}
