//! The end of a run: the honest evaluation (marginal LL on the training split and on the
//! held-out test split, beside the truth for synthetic data), samples, and `summary.json`,
//! written last so that a folder with a summary holds a finished run.

use super::config::RunConfig;
use super::evaluate::{eval_bar, split_log_likelihood, units, EVAL_SEED};
use super::folder::RunFolder;
use crate::data::images::Mode;
use crate::data::{Dataset, Split};
use crate::eval::{Estimate, Evaluator};
use crate::gpu::Gpu;
use crate::gpu_flow::Kernels;
use crate::model::Flow;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub data: String,
    pub adapter: String,
    pub config: RunConfig,
    pub samples: usize,
    pub train_ll: f64,
    pub train_ll_se: f64,
    /// The thesis's protocol: log of the mean likelihood over the training points.
    pub train_log_mean_likelihood: f64,
    pub heldout_ll: f64,
    pub heldout_ll_se: f64,
    pub heldout_split: String,
    /// Points evaluated per split.
    pub train_points: usize,
    pub heldout_points: usize,
    /// What the log-likelihoods measure: "nats" per point (synthetic data and thesis-mode
    /// images) or, in dequant mode, nats of log p(v) per image beside bits per dimension.
    pub units: String,
    pub train_bits_per_dim: Option<f64>,
    pub heldout_bits_per_dim: Option<f64>,
    pub heldout_bits_per_dim_se: Option<f64>,
    /// Mean exact log-density of the same held-out points (synthetic data).
    pub true_ll: Option<f64>,
    /// MODEL.md's analytic expected log-likelihood.
    pub true_ll_expected: Option<f64>,
    pub steps: u64,
    /// NaN (written as null) when the run logged no loss: resumed at its last step.
    #[serde(deserialize_with = "f64_or_nan")]
    pub final_train_loss: f64,
    pub train_seconds: f64,
    /// This run's samples per second of training wall time.
    pub train_samples_per_s: f64,
    /// How many models were trained in the same dispatches (a sweep group; 1: alone).
    #[serde(default = "one")]
    pub trained_with: usize,
    pub eval_seconds: f64,
    pub model: PathBuf,
    /// The model the figures above are of: "best" (validation) or "last" (a run recorded
    /// before selection, or one without validations: the last).
    #[serde(default = "last")]
    pub selected: String,
    /// Its step, and its validation log-likelihood (S = `validation_samples`) where validated.
    #[serde(default)]
    pub selected_step: u64,
    #[serde(default)]
    pub validation_ll: Option<f64>,
    #[serde(default)]
    pub validation_ll_se: Option<f64>,
    #[serde(default)]
    pub validation_samples: Option<usize>,
    /// Seconds spent on validations during training (not in `train_seconds`).
    #[serde(default)]
    pub validation_seconds: f64,
}

fn last() -> String {
    "last".into()
}

fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn one() -> usize {
    1
}

impl Summary {
    /// The human-readable lines `mflow train` prints.
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let mut r = String::new();
        let f = &self.config.flow;
        let _ = writeln!(
            r,
            "data {}  D={} {}  {} steps in {:.1} s ({:.0} samples/s)",
            self.data,
            f.d,
            f.aux_label(),
            self.steps,
            self.train_seconds,
            self.train_samples_per_s
        );
        let unit = if self.train_bits_per_dim.is_some() { "nats of log p(v)" } else { "nats" };
        let _ = writeln!(
            r,
            "train   log-likelihood {:>10.4} ± {:.4} {unit}  (train split, S = {}, {} points)",
            self.train_ll, self.train_ll_se, self.samples, self.train_points
        );
        let _ = writeln!(
            r,
            "heldout log-likelihood {:>10.4} ± {:.4} {unit}  (test split, S = {}, {} points)",
            self.heldout_ll, self.heldout_ll_se, self.samples, self.heldout_points
        );
        if let (Some(tr), Some(te), Some(se)) =
            (self.train_bits_per_dim, self.heldout_bits_per_dim, self.heldout_bits_per_dim_se)
        {
            let _ = writeln!(r, "bits/dim: train {tr:.4}, heldout {te:.4} ± {se:.4} (test split; {})", self.units);
        }
        if let Some(t) = self.true_ll {
            let _ = writeln!(
                r,
                "truth                  {t:>10.4} nats  (exact density of the same {} held-out points; the model is {:.4} below it)",
                self.heldout_points,
                t - self.heldout_ll
            );
        }
        match (self.validation_ll, self.validation_ll_se) {
            (Some(v), Some(se)) => {
                let s = if f.exact() {
                    "exact".to_string()
                } else {
                    format!("S = {}", self.validation_samples.unwrap_or(0))
                };
                let _ = writeln!(
                    r,
                    "model: the {} (step {} of {}; validation log-likelihood {v:.4} ± {se:.4}, {s}; validations took {:.1} s)",
                    self.selected, self.selected_step, self.steps, self.validation_seconds
                );
            }
            _ => {
                let _ = writeln!(r, "model: the {} (step {}; not validated)", self.selected, self.selected_step);
            }
        }
        if f.exact() {
            let _ = writeln!(r, "(B = 0: the estimate is exact, S is not used)");
        }
        r
    }
}

/// How a run's training went, for its summary.
pub(crate) struct Trained {
    pub steps: u64,
    pub final_train_loss: f64,
    pub train_seconds: f64,
    /// This run's own samples per second of training wall time.
    pub train_samples_per_s: f64,
    /// Models trained in the same dispatches (1: alone).
    pub trained_with: usize,
    /// Which model `flow` is, its step and validation figure (ll, se, S) where validated.
    pub selected: &'static str,
    pub selected_step: u64,
    pub validation: Option<(f64, f64, usize)>,
    pub validation_seconds: f64,
}

/// The end of a run: marginal LL on both splits, samples, `summary.json`.
pub(crate) fn finish(
    gpu: &Gpu,
    cfg: &RunConfig,
    data: &Dataset,
    flow: &Flow,
    folder: &RunFolder,
    trained: Trained,
    progress: bool,
    kernels: &Kernels,
) -> Result<Summary> {
    let t = Instant::now();
    // Chunks no larger than what is evaluated: a sweep's few hundred points must not pay
    // for a chunk sized to the whole test split.
    let points = data.train.rows().max(data.test.rows()).min(cfg.eval_points.unwrap_or(usize::MAX));
    let mut ev = Evaluator::for_points(gpu, flow, cfg.samples, points, kernels)?;
    ev.upload_params(gpu, &flow.params);
    if progress {
        let n = |t: &crate::data::Table| t.rows().min(cfg.eval_points.unwrap_or(usize::MAX)) as u64;
        ev.set_progress(eval_bar(n(&data.train) + n(&data.test), ev.s));
    }
    let seed = EVAL_SEED;
    let train_ll = split_log_likelihood(gpu, &ev, data, Split::Train, cfg.eval_points, seed)?;
    let heldout = split_log_likelihood(gpu, &ev, data, Split::Test, cfg.eval_points, seed)?;
    let (train_e, heldout_e) = (Estimate::of(&train_ll), Estimate::of(&heldout));
    let eval_seconds = t.elapsed().as_secs_f64();
    let dequant = data.image.as_ref().filter(|i| i.pre.mode == Mode::Dequant);
    let bpd = |ll: f64| dequant.map(|i| i.pre.bits_per_dim(ll, flow.config.d));
    let bpd_se = dequant.map(|_| heldout_e.se / (flow.config.d as f64 * std::f64::consts::LN_2));
    let title = model_title(cfg, ev.s, Some(trained.selected_step));
    if let Some(info) = &data.image {
        let samples = crate::sample::sample(gpu, flow, 64, 1.0, cfg.flow.seed, kernels)?;
        crate::plot::image_grid(&samples, info, Some(&data.test), 8, &title, &folder.samples())?;
    } else if flow.config.d == 2 {
        let samples = crate::sample::sample(gpu, flow, 2048, 1.0, cfg.flow.seed, kernels)?;
        let real = crate::sample::to_data_units(&data.test, data);
        let fake = crate::sample::to_data_units(&samples, data);
        crate::plot::scatter(&real, &fake, &title, &folder.samples())?;
        if cfg.density_map {
            density_map(gpu, flow, data, &real, &title, heldout_e, folder, kernels)?;
        }
    }
    let summary = Summary {
        data: data.spec.clone(),
        adapter: gpu.describe(),
        config: cfg.clone(),
        samples: ev.s,
        train_ll: train_e.mean,
        train_ll_se: train_e.se,
        train_log_mean_likelihood: crate::reference::marginal::logsumexp(&train_ll) - (train_ll.len() as f64).ln(),
        heldout_ll: heldout_e.mean,
        heldout_ll_se: heldout_e.se,
        heldout_split: "test".into(),
        train_points: train_e.n,
        heldout_points: heldout_e.n,
        units: units(data),
        train_bits_per_dim: bpd(train_e.mean),
        heldout_bits_per_dim: bpd(heldout_e.mean),
        heldout_bits_per_dim_se: bpd_se,
        true_ll: true_ll(data, heldout_e.n),
        true_ll_expected: data.true_ll_expected,
        steps: trained.steps,
        final_train_loss: trained.final_train_loss,
        train_seconds: trained.train_seconds,
        train_samples_per_s: trained.train_samples_per_s,
        trained_with: trained.trained_with,
        eval_seconds,
        model: folder.model(),
        selected: trained.selected.into(),
        selected_step: trained.selected_step,
        validation_ll: trained.validation.map(|v| v.0),
        validation_ll_se: trained.validation.map(|v| v.1),
        validation_samples: trained.validation.map(|v| v.2),
        validation_seconds: trained.validation_seconds,
    };
    crate::checkpoint::write_atomic(&folder.summary(), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

/// `curves.png`: the training loss and the validation log-likelihood against steps, from
/// the run's metrics.jsonl, with the selected step marked.
pub(crate) fn curves(folder: &RunFolder, cfg: &RunConfig, trained: &Trained) -> Result<()> {
    let text = std::fs::read_to_string(folder.metrics()).unwrap_or_default();
    let (mut loss, mut val) = (Vec::new(), Vec::new());
    for v in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        let step = v["step"].as_u64();
        match (step, v["loss"].as_f64(), v["event"].as_str(), v["ll"].as_f64()) {
            (Some(s), Some(l), None, _) => loss.push((s, -l)),
            (Some(s), _, Some("validation"), Some(ll)) => val.push((s, ll)),
            _ => {}
        }
    }
    if loss.is_empty() && val.is_empty() {
        return Ok(()); // nothing logged (resumed at its last step)
    }
    let s = if cfg.flow.exact() { "exact".to_string() } else { format!("S = {}", cfg.selection.validation_samples) };
    let title = format!("{}  D={} {}: training and validation", cfg.data.describe(), cfg.flow.d, cfg.flow.aux_label());
    let selected = (trained.selected, trained.selected_step);
    crate::plot::curves(&loss, &val, &s, selected, &title, &folder.dir.join("curves.png"))
}

/// What a figure's title says of a model: data, D and B, the step of its parameters (when
/// known: a run stopped early or selected on validation is not its schedule's end), and S.
pub fn model_title(cfg: &RunConfig, s: usize, step: Option<u64>) -> String {
    let f = &cfg.flow;
    let est = if f.exact() { "exact".to_string() } else { format!("S = {s}") };
    let when = step.map_or(format!("{} epochs", cfg.epochs), |n| format!("step {n}"));
    format!("{}  D={} {}  {when}  {est}", cfg.data.describe(), f.d, f.aux_label())
}

/// The model's density beside the truth (where it is known) on one colour scale:
/// `density.png`. The map's marginal estimate uses at most 16 importance samples.
fn density_map(
    gpu: &Gpu,
    flow: &Flow,
    data: &Dataset,
    real: &crate::data::Table,
    title: &str,
    heldout: Estimate,
    folder: &RunFolder,
    kernels: &Kernels,
) -> Result<()> {
    const RES: usize = 100;
    let view = crate::plot::view_of(real);
    let s = 16;
    let model = crate::sample::density_grid(gpu, flow, view, RES, s, data.standardize.as_ref(), kernels)?;
    let label = format!("model: held-out LL {:.3} ± {:.3}", heldout.mean, heldout.se);
    let mut panels: Vec<(String, Vec<f64>)> = vec![(label, model)];
    if let Some(truth) = &data.truth {
        let (w, h) = ((view[1] - view[0]) / RES as f64, (view[3] - view[2]) / RES as f64);
        let grid = (0..RES * RES)
            .map(|k| {
                let p = [
                    (view[0] + (k % RES) as f64 * w + w / 2.0) as f32,
                    (view[2] + (k / RES) as f64 * h + h / 2.0) as f32,
                ];
                truth(&p)
            })
            .collect();
        let t = true_ll(data, heldout.n).unwrap_or(f64::NAN);
        panels.push((format!("truth: exact density, mean {t:.3} on the same points"), grid));
    }
    let refs: Vec<(&str, &[f64])> = panels.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let title = format!("log p(x): {title} (map: S = {s})");
    crate::plot::heatmaps(&refs, RES, view, &title, &folder.dir.join("density.png"))
}

/// Mean exact log-density of the first `n` held-out points (the ones evaluated), where the
/// truth is known.
pub(crate) fn true_ll(data: &Dataset, n: usize) -> Option<f64> {
    let t = data.true_log_p(Split::Test, n)?;
    Some(t.iter().sum::<f64>() / t.len() as f64)
}
