//! `mflow sample`: samples of a trained model as an image grid, a 2-D scatter (with its
//! density beside), or raw values in the data's units.

use super::{at_least_one, positive_f32, Context};
use crate::data::DataSpec;
use crate::output::{Kind, Output};
use crate::tune::{self, Need};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    pub n: usize,
    /// Temperature T: u ~ N(0, T² I).
    #[arg(long, default_value_t = 1.0, value_parser = positive_f32)]
    pub temperature: f32,
    /// Output: .png (image grid or 2-D scatter), or .npy / .csv (raw samples in the data's
    /// units, any D). Never an existing file of another kind, nor the model.
    #[arg(long, default_value = "samples.png")]
    pub out: PathBuf,
    /// Data to draw beside the samples [default: what the model was trained on].
    #[arg(long)]
    pub data: Option<String>,
    /// Images: leave out the last row of real images.
    #[arg(long)]
    pub no_real: bool,
    /// 2-D data: also write a heat map of log p to this PNG.
    #[arg(long)]
    pub density: Option<PathBuf>,
    /// Importance samples for the density heat map (B > 0).
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    pub density_samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Draws `args.n` samples and writes them where `args.out` says.
pub fn sample(ctx: &Context, args: SampleArgs) -> Result<()> {
    let SampleArgs { model, n, temperature, out, data, no_real, density, density_samples, seed } = args;
    let trained = crate::run::load_model(&model)?;
    let given = data.as_deref().map(DataSpec::parse).transpose()?;
    let mut outputs = vec![Output { flag: "--out", path: &out, kinds: &[Kind::Png, Kind::Npy, Kind::Csv] }];
    if let Some(d) = &density {
        outputs.push(Output { flag: "--density", path: d, kinds: &[Kind::Png] });
    }
    let inputs = crate::run::evaluate::model_inputs(&model, &trained, given.as_ref());
    let kind = crate::output::check_all(&outputs, &inputs)?[0];
    let flow = &trained.flow;
    let data = crate::run::model_data(&trained, data.as_deref(), None)?;
    if density.is_some() && flow.config.d != 2 {
        anyhow::bail!("--density needs 2-D data (this model has D = {})", flow.config.d);
    }
    if kind == Kind::Png && data.image.is_none() && flow.config.d != 2 {
        anyhow::bail!(
            "--out {}: pictures of samples need 2-D or image data (D = {}); write .npy or .csv instead",
            out.display(),
            flow.config.d
        );
    }
    let gpu = ctx.open_gpu()?;
    if density.is_some() {
        let most = crate::eval::max_samples(&gpu, &flow.config);
        if density_samples > most {
            anyhow::bail!(
                "--density-samples {density_samples}: at most {most} importance samples per point fit one pass of this model on this adapter"
            );
        }
    }
    let kernels = tune::kernels(&gpu, ctx.tuning, &[Need::Inference(flow.config.clone())])?;
    let samples = crate::sample::sample(&gpu, flow, n, temperature, seed, &kernels)?;
    let title = match &trained.run {
        Some(cfg) => crate::run::finish::model_title(cfg, density_samples, trained.step),
        None => format!("{}  D={} {}", data.spec, flow.config.d, flow.config.aux_label()),
    };
    let title = format!("{title}  T = {temperature}");
    match (kind, &data.image) {
        (Kind::Png, Some(info)) => {
            crate::plot::image_grid(&samples, info, (!no_real).then_some(&data.test), 8, &title, &out)?
        }
        (Kind::Png, None) => {
            let real = crate::sample::to_data_units(&data.test, &data);
            let fake = crate::sample::to_data_units(&samples, &data);
            crate::plot::scatter(&real, &fake, &title, &out)?
        }
        _ => crate::sample::write_raw(&out, &crate::sample::to_data_units(&samples, &data))?,
    }
    println!("wrote {}", out.display());
    if let Some(path) = density {
        let real = crate::sample::to_data_units(&data.test, &data);
        let view = crate::plot::view_of(&real);
        let grid =
            crate::sample::density_grid(&gpu, flow, view, 256, density_samples, data.standardize.as_ref(), &kernels)?;
        let name =
            if flow.config.exact() { "model (exact)".to_string() } else { format!("model (S = {density_samples})") };
        crate::plot::heatmaps(&[(name.as_str(), &grid)], 256, view, &format!("log p(x): {title}"), &path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
