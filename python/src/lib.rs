//! `mflow._mflow`: the engine behind the Python package. Each function turns numpy arrays
//! into the library's tables and calls what the CLI calls (`run::train_on`, `run::evaluate`,
//! `sample::sample`), with the GIL released while the GPU works. `python/mflow/__init__.py`
//! is the API users see; this module only converts and maps errors.
//!
//! Errors: bad input (arrays, settings, a checkpoint that does not fit) raises `ValueError`
//! with the library's message; the adapter, the device and files raise `RuntimeError`; a
//! stop asked for during `fit` (Ctrl-C, or a callback returning False) raises
//! `KeyboardInterrupt` once the step's checkpoint is written.

use anyhow::Context as _;
use mflow::data::{images::Mode, tabular, ArraySpec, DataSpec, Dataset, Split, Table};
use mflow::gpu::{AdapterChoice, Gpu};
use mflow::interrupt::Interrupted;
use mflow::run::{self, Overrides, RunConfig, StepHook};
use mflow::tune::{self, Need};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

fn value_error(e: anyhow::Error) -> PyErr {
    PyValueError::new_err(format!("{e:#}"))
}

fn runtime_error(e: anyhow::Error) -> PyErr {
    PyRuntimeError::new_err(format!("{e:#}"))
}

/// Kernels tuned on the adapter's first use unless `MFLOW_NO_TUNE` says otherwise, as the
/// CLI without `--no-tune`.
fn tuning() -> mflow::tune::Tuning {
    mflow::tune::Tuning::from_flag(false)
}

/// One device per process, shared by every model and thread (wgpu's device and queue are
/// thread-safe), opened on first use.
fn gpu() -> PyResult<&'static Gpu> {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    static OPENING: Mutex<()> = Mutex::new(());
    if let Some(g) = GPU.get() {
        return Ok(g);
    }
    let _one = OPENING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(g) = GPU.get() {
        return Ok(g);
    }
    // `MFLOW_ADAPTER` picks the adapter, as `--adapter` does on the command line.
    let g = Gpu::new(&AdapterChoice::from_cli(None)).map_err(runtime_error)?;
    if let Some(hint) = g.slow_adapter_hint() {
        eprintln!("{hint}");
    }
    Ok(GPU.get_or_init(|| g))
}

/// Points handed over from Python: real-valued rows or images of 8-bit levels.
enum Points {
    Real(Table),
    Images { table: Table, shape: [usize; 3] },
}

impl Points {
    /// A float32 (N, D), or a float32 or uint8 (N, C, H, W) array, copied (the GPU work runs
    /// without the GIL, so it cannot borrow numpy's memory).
    fn extract(x: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(a) = x.extract::<PyReadonlyArray2<f32>>() {
            let [n, d] = [a.shape()[0], a.shape()[1]];
            let data = a.as_array().iter().copied().collect::<Vec<f32>>();
            let t = Table::new(d, data);
            if n == 0 {
                return Err(PyValueError::new_err(format!("{what}: no rows")));
            }
            tabular::check_shape(&t, what).map_err(value_error)?;
            tabular::check_finite(&t, what, 0).map_err(value_error)?;
            return Ok(Points::Real(t));
        }
        // (C, H, W) of an (N, C, H, W) array holding at least one image.
        let image_shape = |s: &[usize]| {
            let shape = [s[1], s[2], s[3]];
            if s[0] == 0 || shape.contains(&0) {
                return Err(PyValueError::new_err(format!("{what}: no images (shape {s:?})")));
            }
            Ok(shape)
        };
        if let Ok(a) = x.extract::<PyReadonlyArray4<f32>>() {
            let shape = image_shape(a.shape())?;
            let t = Table::new(shape.iter().product(), a.as_array().iter().copied().collect());
            tabular::check_finite(&t, what, 0).map_err(value_error)?;
            return Ok(Points::Images { table: t, shape });
        }
        if let Ok(a) = x.extract::<PyReadonlyArray4<u8>>() {
            let shape = image_shape(a.shape())?;
            let levels = a.as_array().iter().copied().collect::<Vec<u8>>();
            return Ok(Points::Images { table: Table::from_levels(shape.iter().product(), levels), shape });
        }
        Err(PyValueError::new_err(format!(
            "{what}: expected a float32 (N, D), or a uint8 or float32 (N, C, H, W) array"
        )))
    }

    fn table(self) -> Table {
        match self {
            Points::Real(t) | Points::Images { table: t, .. } => t,
        }
    }
}

/// `fit`'s settings: the CLI's training flags, by their Python names. Unknown keys are
/// refused so that a misspelt setting is never silently ignored.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FitOptions {
    aux: usize,
    seed: u64,
    arch: Option<String>,
    hidden: Option<usize>,
    blocks: Option<usize>,
    depth: Option<usize>,
    epochs: Option<usize>,
    batch: Option<usize>,
    lr: Option<f64>,
    clip: Option<f64>,
    samples: Option<usize>,
    log_every: Option<usize>,
    checkpoint_every: Option<usize>,
    validate_every: Option<usize>,
    validation_samples: Option<usize>,
    validation_points: Option<usize>,
    select: Option<String>,
    patience: Option<usize>,
    lr_schedule: Option<String>,
    warmup: Option<u64>,
    lr_min: Option<f64>,
    ema: Option<f64>,
    time_limit: Option<f64>,
    eval_points: Option<usize>,
    split_fractions: Option<[f64; 3]>,
    standardize: Option<bool>,
    data_seed: Option<u64>,
    scales: Option<usize>,
    head_blocks: Option<usize>,
    head_hidden: Option<usize>,
    aux_channels: Option<usize>,
    permute: Option<String>,
}

fn choice<T: clap::ValueEnum>(name: &str, v: &Option<String>) -> anyhow::Result<Option<T>> {
    v.as_deref()
        .map(|s| {
            T::from_str(s, true).map_err(|_| {
                let ok: Vec<String> = T::value_variants()
                    .iter()
                    .filter_map(|v| v.to_possible_value())
                    .map(|p| p.get_name().to_string())
                    .collect();
                anyhow::anyhow!("{name}={s:?}: expected one of {}", ok.join(", "))
            })
        })
        .transpose()
}

impl FitOptions {
    /// The run these settings describe on `spec`: MODEL.md's defaults for the data, then
    /// the one override path the CLI's flags take.
    fn config(&self, spec: DataSpec) -> anyhow::Result<RunConfig> {
        let mut c = RunConfig::defaults(spec, self.aux, self.seed);
        let conv = match self.arch.as_deref() {
            None | Some("dense") => None,
            Some("conv") => Some(run::config::ConvFlags {
                scales: self.scales,
                head_blocks: self.head_blocks,
                head_hidden: self.head_hidden,
                aux_channels: self.aux_channels,
                permute: choice("permute", &self.permute)?,
            }),
            Some(other) => anyhow::bail!("arch={other:?}: expected \"dense\" or \"conv\""),
        };
        if conv.is_none() {
            for (name, set) in [
                ("scales", self.scales.is_some()),
                ("head_blocks", self.head_blocks.is_some()),
                ("head_hidden", self.head_hidden.is_some()),
                ("aux_channels", self.aux_channels.is_some()),
                ("permute", self.permute.is_some()),
            ] {
                if set {
                    anyhow::bail!("{name} applies to arch=\"conv\" only");
                }
            }
        } else if self.blocks.is_some() {
            anyhow::bail!("blocks: a conv flow's couplings come from scales; its dense head's from head_blocks");
        }
        Overrides {
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            clip: self.clip,
            blocks: self.blocks,
            depth: self.depth,
            hidden: self.hidden,
            samples: self.samples,
            log_every: self.log_every,
            checkpoint_every: self.checkpoint_every,
            eval_points: self.eval_points,
            data_seed: self.data_seed,
            validate_every: self.validate_every,
            validation_samples: self.validation_samples,
            validation_points: self.validation_points,
            select: choice("select", &self.select)?,
            patience: self.patience,
            lr_schedule: choice("lr_schedule", &self.lr_schedule)?,
            warmup: self.warmup,
            lr_min: self.lr_min,
            ema: self.ema,
            time_limit: self.time_limit,
            conv,
            ..Default::default()
        }
        .apply(&mut c);
        Ok(c)
    }
}

/// The longest `fit` goes without entering Python (progress, Ctrl-C) between readbacks.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// A folder of its own when the user gave none, removed afterwards.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn scratch_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "mflow-py-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ))
}

/// Trains a model on `x` as `mflow train` would on the same array as `npy:PATH` (split by
/// `split_fractions`, standardised on the training split), in `out` (else a scratch folder).
/// Returns the summary (JSON) and the selected model's checkpoint bytes.
///
/// `hook(step, total, losses)` is called with the GIL held after a step that read losses
/// back, after the last step, and otherwise at most `PROGRESS_EVERY` apart (`losses`: the
/// (step, loss) pairs read back since the last call, in order; readbacks lag the GPU by a
/// step or two); a falsy return or an exception stops the run after the current step, as
/// does Ctrl-C.
#[pyfunction]
#[pyo3(signature = (x, options, out=None, force=false, hook=None, progress=false))]
fn fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    options: &str,
    out: Option<PathBuf>,
    force: bool,
    hook: Option<Py<PyAny>>,
    progress: bool,
) -> PyResult<(String, Bound<'py, PyBytes>)> {
    let opts: FitOptions =
        serde_json::from_str(options).map_err(|e| PyValueError::new_err(format!("fit settings: {e}")))?;
    let points = Points::extract(x, "X")?;
    let shape = match &points {
        Points::Real(t) => vec![t.dim],
        Points::Images { shape, .. } => shape.to_vec(),
    };
    let float_images = matches!(&points, Points::Images { table, .. } if table.levels.is_empty());
    let table = points.table();
    let bytes: &[u8] = if table.levels.is_empty() { bytemuck::cast_slice(&table.data) } else { &table.levels };
    let spec = DataSpec::Array(ArraySpec {
        rows: table.rows(),
        shape,
        fractions: opts.split_fractions.unwrap_or(mflow::data::SPLIT_FRACTIONS),
        standardize: opts.standardize.unwrap_or(true),
        content: mflow::data::fnv1a(&[bytes]),
    });
    let mut cfg = opts.config(spec).map_err(value_error)?;
    // 8-bit images are dequantised; float images modelled as their values.
    cfg.preprocess = if float_images { Mode::None } else { Mode::Dequant };
    cfg.validate().map_err(value_error)?;
    let data: Dataset =
        mflow::data::array_dataset(&cfg.data, table, cfg.data_seed, cfg.preprocess).map_err(value_error)?;
    if let Some(o) = &out {
        if o.exists() && !o.is_dir() {
            return Err(PyValueError::new_err(format!("out={}: not a folder", o.display())));
        }
    }
    let scratch = Scratch(out.is_none().then(scratch_dir));
    let dir = out.clone().or_else(|| scratch.0.clone()).expect("a folder");
    let gpu = gpu()?;
    // The hook runs on this thread with the GIL taken back; what it raised is kept and
    // raised here once training has stopped.
    let raised: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    let on_step = {
        let raised = raised.clone();
        // Python is entered only when there is something to say (a loss read back, the last
        // step) or PROGRESS_EVERY has passed: on a fast GPU a step takes less than taking the
        // GIL back and running the progress bar would. A signal is seen within that time.
        let since = Mutex::new((std::time::Instant::now(), Vec::<(u64, f64)>::new()));
        StepHook(Arc::new(move |step, total, logged| {
            let mut since = since.lock().unwrap_or_else(|p| p.into_inner());
            since.1.extend_from_slice(logged);
            if since.1.is_empty() && step < total && since.0.elapsed() < PROGRESS_EVERY {
                return true;
            }
            since.0 = std::time::Instant::now();
            let logged = std::mem::take(&mut since.1);
            Python::attach(|py| {
                let stop = |e: PyErr| {
                    *raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    false
                };
                if let Err(e) = py.check_signals() {
                    return stop(e);
                }
                match &hook {
                    None => true,
                    Some(h) => match h.call1(py, (step, total, logged)) {
                        Ok(v) => v.is_none(py) || v.is_truthy(py).unwrap_or(true),
                        Err(e) => stop(e),
                    },
                }
            })
        }))
    };
    let run_opts = run::Options { progress, force, allow_changes: false, tuning: tuning(), on_step: Some(on_step) };
    // Refusals of the input, the folder or the adapter's limits come before any GPU work.
    let member = py.detach(|| run::prepare_run(gpu, &cfg, Some(data), &dir, None, &run_opts)).map_err(value_error)?;
    let result = py.detach(|| {
        let mut results = run::train_members(gpu, vec![member], false, run_opts.tuning, run_opts.on_step.clone())?;
        results.pop().context("no result")?
    });
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            if let Some(err) = raised.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(err);
            }
            return Err(match e.downcast_ref::<Interrupted>() {
                Some(_) => PyKeyboardInterrupt::new_err(format!("{e:#}")),
                None => runtime_error(e),
            });
        }
    };
    // The model the summary evaluated: the best validated one, or the last.
    let model = if summary.selected == "best" {
        summary.model.with_file_name("best.safetensors")
    } else {
        summary.model.clone()
    };
    let bytes = mflow::checkpoint::read_regular(&model).map_err(runtime_error)?;
    let json = serde_json::to_string(&summary).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok((json, PyBytes::new(py, &bytes)))
}

fn model_of(bytes: &[u8]) -> PyResult<run::evaluate::Model> {
    run::parse_model(bytes, Path::new("the model")).map_err(value_error)
}

/// One value per point, float64.
type Column<'py> = Bound<'py, PyArray1<f64>>;

/// Per-point log p(x) of `x` under the model (`mflow eval --per-point` on the same points,
/// S samples, noise seed `seed`), and bits/dim per point for image models.
#[pyfunction]
#[pyo3(signature = (model, x, samples, seed))]
fn score<'py>(
    py: Python<'py>,
    model: &[u8],
    x: &Bound<'py, PyAny>,
    samples: usize,
    seed: u64,
) -> PyResult<(Column<'py>, Option<Column<'py>>)> {
    if samples == 0 {
        return Err(PyValueError::new_err("samples=0: at least one importance sample"));
    }
    let m = model_of(model)?;
    let table = Points::extract(x, "X")?.table();
    let spec = m.run.as_ref().map_or_else(|| "X".to_string(), |r| r.data.describe());
    let data = run::points_dataset(&m, &spec, table, "X").map_err(value_error)?;
    let gpu = gpu()?;
    let rows = py
        .detach(|| {
            let kernels = tune::kernels(gpu, tuning(), &[Need::Inference(m.flow.config.clone())])?;
            run::evaluate(gpu, &m.flow, &data, Split::Test, &[samples], None, seed, &kernels)
        })
        .map_err(runtime_error)?;
    let row = rows.into_iter().next().ok_or_else(|| PyRuntimeError::new_err("no evaluation"))?;
    let bpd = row.bits_per_dim_per_point.map(|b| PyArray1::from_vec(py, b));
    Ok((PyArray1::from_vec(py, row.log_p), bpd))
}

/// `n` samples at `temperature` in the data's units: (n, D) float32, or (n, C, H, W) uint8
/// levels for image models.
#[pyfunction]
#[pyo3(signature = (model, n, temperature, seed))]
fn sample<'py>(py: Python<'py>, model: &[u8], n: usize, temperature: f32, seed: u64) -> PyResult<Bound<'py, PyAny>> {
    if n == 0 {
        return Err(PyValueError::new_err("n=0: ask for at least one sample"));
    }
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(PyValueError::new_err(format!("temperature={temperature}: must be finite and ≥ 0")));
    }
    let m = model_of(model)?;
    let d = m.flow.config.d;
    let empty = Table { dim: d, ..Default::default() };
    let data = run::points_dataset(&m, "", empty, "the model").map_err(value_error)?;
    let gpu = gpu()?;
    let t = py
        .detach(|| {
            let kernels = tune::kernels(gpu, tuning(), &[Need::Inference(m.flow.config.clone())])?;
            let s = mflow::sample::sample(gpu, &m.flow, n, temperature, seed, &kernels)?;
            Ok::<_, anyhow::Error>(mflow::sample::to_data_units(&s, &data))
        })
        .map_err(runtime_error)?;
    match &data.image {
        Some(i) if i.pre.mode == Mode::None => {
            let a = PyArray1::from_vec(py, t.data);
            Ok(a.reshape([n, i.channels, i.height, i.width])?.into_any())
        }
        Some(i) => {
            let levels: Vec<u8> = t.data.iter().map(|&v| v as u8).collect();
            let a = PyArray1::from_vec(py, levels);
            Ok(a.reshape([n, i.channels, i.height, i.width])?.into_any())
        }
        None => {
            let a = PyArray1::from_vec(py, t.data);
            Ok(a.reshape([n, d])?.into_any())
        }
    }
}

/// A 2-D model's log-density as a PNG heat map over the region its samples cover, with S
/// importance samples per grid point (`mflow sample --density`).
#[pyfunction]
fn plot_density(py: Python<'_>, model: &[u8], path: PathBuf, samples: usize, resolution: usize) -> PyResult<()> {
    let m = model_of(model)?;
    if m.flow.config.d != 2 {
        return Err(PyValueError::new_err(format!(
            "plot_density needs a 2-D model (this one has D = {})",
            m.flow.config.d
        )));
    }
    if !(8..=1024).contains(&resolution) || samples == 0 {
        return Err(PyValueError::new_err(format!(
            "resolution={resolution}, samples={samples}: resolution in 8..=1024 and at least one sample"
        )));
    }
    mflow::output::check("path", &path, &[mflow::output::Kind::Png], &[]).map_err(value_error)?;
    let data = run::points_dataset(&m, "", Table { dim: 2, ..Default::default() }, "the model").map_err(value_error)?;
    let gpu = gpu()?;
    py.detach(|| {
        let kernels = tune::kernels(gpu, tuning(), &[Need::Inference(m.flow.config.clone())])?;
        let s = mflow::sample::sample(gpu, &m.flow, 2048, 1.0, m.flow.config.seed, &kernels)?;
        let view = mflow::plot::view_of(&mflow::sample::to_data_units(&s, &data));
        let grid =
            mflow::sample::density_grid(gpu, &m.flow, view, resolution, samples, data.standardize.as_ref(), &kernels)?;
        let name = if m.flow.config.exact() { "model (exact)".to_string() } else { format!("model (S = {samples})") };
        let title = m.run.as_ref().map_or(String::new(), |r| mflow::run::finish::model_title(r, samples, m.step));
        mflow::plot::heatmaps(&[(name.as_str(), &grid)], resolution, view, &format!("log p(x): {title}"), &path)
    })
    .map_err(runtime_error)
}

/// What a checkpoint holds besides its parameters, as JSON: the flow's configuration, the
/// run's (when trained by `mflow train` or `fit`), the standardisation and the step.
#[pyfunction]
fn describe(model: &[u8]) -> PyResult<String> {
    let m = model_of(model)?;
    let v = serde_json::json!({
        "flow": m.flow.config,
        "run": m.run,
        "standardize": m.standardize,
        "step": m.step,
        "parameters": m.flow.params.len(),
    });
    Ok(v.to_string())
}

/// The model's parameters as one float32 array (in the checkpoint's order).
#[pyfunction]
fn parameters<'py>(py: Python<'py>, model: &[u8]) -> PyResult<Bound<'py, PyArray1<f32>>> {
    Ok(PyArray1::from_vec(py, model_of(model)?.flow.params))
}

/// Checks a checkpoint's bytes (as `mflow eval` would on loading it).
#[pyfunction]
fn check_model(model: &[u8]) -> PyResult<()> {
    model_of(model).map(|_| ())
}

/// Writes a checkpoint's bytes to `path` atomically (a finished file or none).
#[pyfunction]
fn write_model(py: Python<'_>, model: &[u8], path: PathBuf) -> PyResult<()> {
    model_of(model)?;
    py.detach(|| mflow::checkpoint::write_atomic(&path, model)).map_err(runtime_error)
}

/// Reads and checks a checkpoint written by `mflow train` or `save`.
#[pyfunction]
fn read_model<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = mflow::checkpoint::read_regular(&path).map_err(value_error)?;
    run::parse_model(&bytes, &path).map_err(value_error)?;
    Ok(PyBytes::new(py, &bytes))
}

/// The adapters `mflow info` lists, and the one mflow uses (the last entry's `selected`).
#[pyfunction]
fn adapters(py: Python<'_>) -> PyResult<Vec<(String, String, String, String)>> {
    Ok(py.detach(|| {
        mflow::gpu::list_adapters()
            .iter()
            .map(|a| {
                let i = a.get_info();
                (i.name.clone(), format!("{:?}", i.backend), format!("{:?}", i.device_type), i.driver.clone())
            })
            .collect()
    }))
}

/// The adapter models run on (opening it if needed), as `mflow train` prints it.
#[pyfunction]
fn adapter() -> PyResult<String> {
    Ok(gpu()?.describe())
}

#[pymodule]
fn _mflow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(sample, m)?)?;
    m.add_function(wrap_pyfunction!(describe, m)?)?;
    m.add_function(wrap_pyfunction!(plot_density, m)?)?;
    m.add_function(wrap_pyfunction!(parameters, m)?)?;
    m.add_function(wrap_pyfunction!(check_model, m)?)?;
    m.add_function(wrap_pyfunction!(write_model, m)?)?;
    m.add_function(wrap_pyfunction!(read_model, m)?)?;
    m.add_function(wrap_pyfunction!(adapters, m)?)?;
    m.add_function(wrap_pyfunction!(adapter, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
