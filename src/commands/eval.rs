//! `mflow eval`: the S-sample marginal log-likelihood of a trained model on a split.

use super::{at_least_one, Context};
use crate::data::images::Mode;
use crate::data::{DataSpec, Split};
use crate::interrupt;
use crate::output::Kind;
use crate::tune::{self, Need};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A model file written by `mflow train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Data (the --data syntax of train) [default: what the model was trained on].
    #[arg(long)]
    pub data: Option<String>,
    /// Split: train, validation or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Importance samples S; a list (1,10,100,1000) prints the S-curve.
    #[arg(long, default_value = "200", value_delimiter = ',', value_parser = at_least_one)]
    pub samples: Vec<usize>,
    /// Image preprocessing [default: the model's].
    #[arg(long, value_enum)]
    pub preprocess: Option<Mode>,
    /// Only the first N points of the split [default: all].
    #[arg(long, value_parser = at_least_one)]
    pub limit: Option<usize>,
    /// One JSON object per S instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write log p(x) of every point (and bits/dim for images, the exact log-density for
    /// synthetic data) to this .npy or .csv.
    #[arg(long)]
    pub per_point: Option<PathBuf>,
    /// Seed of the evaluation noise (ε, image dequantisation) [default: the fixed one
    /// training's summary uses]; vary it to measure the estimator's own spread.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Evaluates `args.model` on its split for each S and prints (or writes) the figures.
pub fn eval(ctx: &Context, args: EvalArgs) -> Result<()> {
    let EvalArgs { model, data, split, samples, preprocess, limit, json, per_point, seed } = args;
    let split = match split.as_str() {
        "train" => Split::Train,
        "validation" => Split::Validation,
        "test" => Split::Test,
        other => anyhow::bail!("--split {other:?}: expected train, validation or test"),
    };
    if per_point.is_some() && samples.len() > 1 {
        anyhow::bail!("--per-point writes one S: give --samples a single value");
    }
    let trained = crate::run::load_model(&model)?;
    let given = data.as_deref().map(DataSpec::parse).transpose()?;
    if let Some(p) = &per_point {
        let inputs = crate::run::evaluate::model_inputs(&model, &trained, given.as_ref());
        crate::output::check("--per-point", p, &[Kind::Npy, Kind::Csv], &inputs)?;
    }
    let data = crate::run::model_data(&trained, data.as_deref(), preprocess)?;
    let gpu = ctx.open_gpu()?;
    interrupt::install()?;
    let seed = seed.unwrap_or(crate::run::evaluate::EVAL_SEED);
    let kernels = tune::kernels(&gpu, ctx.tuning, &[Need::Inference(trained.flow.config.clone())])?;
    let rows = crate::run::evaluate(&gpu, &trained.flow, &data, split, &samples, limit, seed, &kernels)?;
    for r in &rows {
        if let Some(p) = &per_point {
            r.write_per_point(p)?;
        }
        if json {
            let mut v = serde_json::to_value(r)?;
            v["per_point"] = per_point.as_ref().map(|p| p.display().to_string()).into();
            println!("{v}");
        } else {
            let bpd = match (r.bits_per_dim, r.bits_per_dim_se) {
                (Some(b), Some(se)) => format!("  {b:.4} ± {se:.4} bits/dim"),
                _ => String::new(),
            };
            let s = if r.exact { "exact (B = 0), S unused".to_string() } else { format!("S = {}", r.samples) };
            println!(
                "{} {} split: log-likelihood {:.4} ± {:.4}{bpd}  ({s}; first {} points; seed {}; {:.0} flow evaluations/s)",
                r.data, r.split, r.ll, r.ll_se, r.points, r.seed, r.evals_per_s
            );
            println!("  units: {}", r.units);
            if let Some(t) = r.true_ll {
                println!(
                    "  truth: {t:.4} nats, the exact density of the same {} points (the model is {:.4} below it)",
                    r.points,
                    t - r.ll
                );
            }
            if let Some(p) = &per_point {
                println!("  per-point values: {}", p.display());
            }
        }
    }
    Ok(())
}
