//! Evaluating trained models: per-point marginal log-likelihoods of a split, the S-curve of
//! `mflow eval`, and loading a model with the data it was trained on.

use super::config::RunConfig;
use crate::checkpoint;
use crate::data::images::Mode;
use crate::data::{DataSpec, Dataset, Split, Table};
use crate::eval::{Estimate, Evaluator};
use crate::gpu::Gpu;
use crate::model::Flow;
use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use std::path::Path;
use std::time::Instant;

/// Per-point log-likelihoods of a split: the marginal estimate of the flow's input density,
/// plus (dequant mode) the Jacobian back to v ∈ [0,1]^D. Preprocessing noise comes from a
/// fixed seed, ε from another.
pub fn split_log_likelihood(
    gpu: &Gpu,
    ev: &Evaluator,
    data: &Dataset,
    split: Split,
    limit: Option<usize>,
) -> Result<Vec<f64>> {
    const EVAL_SEED: u64 = 0xE7A1;
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
        bail!("the {} split of {} is empty", split.name(), data.spec);
    }
    let ll: Vec<f64> = match &data.image {
        None => ev.log_likelihood(gpu, t, EVAL_SEED)?,
        Some(info) => {
            // Pixels become f32 one block of whole chunks at a time, so host memory stays
            // near the dataset's bytes; the noise stream and ε continue across blocks.
            let mut rng = rand::rngs::StdRng::seed_from_u64(EVAL_SEED ^ split.stream());
            let block = ev.points * 16;
            let mut ll = Vec::with_capacity(t.rows());
            for start in (0..t.rows()).step_by(block) {
                let end = (start + block).min(t.rows());
                let mut x = Table::new(t.dim, Vec::with_capacity((end - start) * t.dim));
                t.extend_rows(start..end, &mut x.data);
                let jac = info.pre.apply(&mut x.data, x.dim, &mut rng);
                let part = ev.log_likelihood_from(gpu, &x, EVAL_SEED, start / ev.points)?;
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

/// A trained model with the run configuration it was trained under (from its checkpoint).
pub fn load_model(path: &Path) -> Result<(Flow, Option<RunConfig>)> {
    let (flow, state) = checkpoint::load(path, None)?;
    let run = match state.as_ref().and_then(|s| s.extra.get("run")) {
        Some(json) => Some(
            serde_json::from_str(json).with_context(|| format!("{}: unreadable run configuration", path.display()))?,
        ),
        None => None,
    };
    Ok((flow, run))
}

/// The dataset a model is evaluated or sampled against: `spec` when given, else the one it
/// was trained on; `mode` overrides the preprocessing it was trained with.
pub fn model_data(flow: &Flow, run: Option<&RunConfig>, spec: Option<&str>, mode: Option<Mode>) -> Result<Dataset> {
    let mut cfg = match (run, spec) {
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
    let data = cfg.data.load(cfg.sizes, cfg.data_seed, cfg.preprocess)?;
    if data.train.dim != flow.config.d {
        bail!("{} has {} dimensions per point but the model has D = {}", data.spec, data.train.dim, flow.config.d);
    }
    Ok(data)
}

/// One row of `mflow eval`: the estimate at one S.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalRow {
    pub split: &'static str,
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
}

/// Thesis eq. 8 on a split for each S in `samples` (the S-curve).
pub fn evaluate(
    gpu: &Gpu,
    flow: &Flow,
    data: &Dataset,
    split: Split,
    samples: &[usize],
    limit: Option<usize>,
) -> Result<Vec<EvalRow>> {
    let mut rows = Vec::new();
    for &s in samples {
        let t = Instant::now();
        let ev = Evaluator::for_points(gpu, flow, s, data.split(split).rows())?;
        let ll = split_log_likelihood(gpu, &ev, data, split, limit)?;
        let secs = t.elapsed().as_secs_f64();
        let e = Estimate::of(&ll);
        let dequant = data.image.as_ref().filter(|i| i.pre.mode == Mode::Dequant);
        let d = flow.config.d as f64;
        rows.push(EvalRow {
            split: split.name(),
            samples: ev.s,
            exact: flow.config.b == 0,
            ll: e.mean,
            ll_se: e.se,
            bits_per_dim: dequant.map(|i| i.pre.bits_per_dim(e.mean, flow.config.d)),
            bits_per_dim_se: dequant.map(|_| e.se / (d * std::f64::consts::LN_2)),
            points: e.n,
            seconds: secs,
            evals_per_s: (e.n * ev.s) as f64 / secs,
        });
        if flow.config.b == 0 {
            break; // exact: every S gives the same number
        }
    }
    Ok(rows)
}
