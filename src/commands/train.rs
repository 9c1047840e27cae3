//! `mflow train`: one run, from flags to a finished folder.

use super::{at_least_one, non_negative, positive, Context, ScheduleArgs};
use crate::data::images::Mode;
use crate::data::DataSpec;
use crate::interrupt::{self, Interrupted};
use crate::model::ChannelPermute;
use crate::run::config::{Arch, ConvFlags, LrKind, Select};
use crate::run::{Overrides, RunConfig};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Dataset: gauss[:d=D,psi=P], moons[:noise=S], mnist:DIR, fashion-mnist:DIR, kmnist:DIR,
    /// cifar10:DIR or digits (embedded). Without it, the default job: half-moons with B = 2
    /// on a short schedule (64 epochs) that finishes in a few minutes on a CPU adapter.
    #[arg(long)]
    pub data: Option<String>,
    /// Dimensions D of bare `gauss`.
    #[arg(long, value_parser = at_least_one)]
    pub dim: Option<usize>,
    /// Power ψ of bare `gauss`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=crate::data::MAX_PSI as i64))]
    pub psi: Option<u32>,
    /// Noise σ of bare `moons`.
    #[arg(long, value_parser = positive)]
    pub noise: Option<f64>,
    /// Image preprocessing (MODEL.md): dequant (bits/dim) or thesis (nats per image).
    #[arg(long, value_enum)]
    pub preprocess: Option<Mode>,
    /// npy:PATH / csv:PATH: train, validation and test fractions of the file's rows,
    /// shuffled by --data-seed [default: 0.8,0.1,0.1].
    #[arg(long, value_delimiter = ',')]
    pub split_fractions: Option<Vec<f64>>,
    /// npy / csv data: model the columns as they are, not standardised by the training
    /// split's mean and std (figures are in the data's units either way).
    #[arg(long)]
    pub no_standardize: bool,
    /// Auxiliary dimensions B (0: an ordinary normalizing flow).
    #[arg(long, default_value_t = 2)]
    pub aux: usize,
    /// Seed of the model's initialisation, shuffles and training noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of synthetic data's splits.
    #[arg(long)]
    pub data_seed: Option<u64>,
    /// Output folder: metrics.jsonl, model.safetensors, summary.json, samples.png.
    #[arg(long, default_value = "runs/default")]
    pub out: PathBuf,
    /// Replace the run that --out holds (its files are removed first).
    #[arg(long)]
    pub force: bool,
    /// Clip the global gradient norm to this; 0 turns clipping off [default: MODEL.md's].
    #[arg(long, value_parser = non_negative)]
    pub clip: Option<f64>,
    /// Blocks L (2L couplings) [default: MODEL.md's 4; 6 for the default job].
    #[arg(long, value_parser = at_least_one)]
    pub blocks: Option<usize>,
    /// Hidden layers per conditioner.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Steps between loss readbacks and divergence checks.
    #[arg(long, value_parser = at_least_one)]
    pub log_every: Option<usize>,
    /// Validation points of synthetic data [default: 2048], or training images an image
    /// dataset holds out for validation [default: 150 of digits, 5000 of MNIST's or CIFAR-10's;
    /// 0: none, and the last model is evaluated].
    #[arg(long)]
    pub validation_size: Option<usize>,
    /// Continue from this checkpoint (its configuration must match); exact: N steps, resume,
    /// M steps gives the parameters of N + M steps in one run.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// With --resume: continue although the data or optimiser settings differ from the
    /// checkpoint's (what changed is printed and logged in metrics.jsonl).
    #[arg(long)]
    pub allow_config_change: bool,
    /// 2-D data: also draw the model's density beside the truth (density.png).
    #[arg(long)]
    pub density_map: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Epochs between validations on the validation split; 0 turns them off [default: a
    /// twentieth of the run].
    #[arg(long)]
    pub validate_every: Option<usize>,
    /// Importance samples S of each validation (B > 0; a fixed ε seed) [default: 10].
    #[arg(long, value_parser = at_least_one)]
    pub validation_samples: Option<usize>,
    /// Validate on at most this many points of the validation split (its first) [default: 1000].
    #[arg(long, value_parser = at_least_one)]
    pub validation_points: Option<usize>,
    /// The model the final evaluation uses: the best validation, or the last step.
    #[arg(long, value_enum)]
    pub select: Option<Select>,
    /// Stop after this many validations without improvement [default: never, MODEL.md's
    /// fixed schedule].
    #[arg(long, value_parser = at_least_one)]
    pub patience: Option<usize>,
    /// Learning rate over the run, after --warmup: constant, or a cosine decay to --lr-min.
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrKind>,
    /// Steps of linear warm-up from 0 to --lr [default: 0].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// The cosine decay's final learning rate [default: 0].
    #[arg(long, value_parser = non_negative)]
    pub lr_min: Option<f64>,
    /// Keep an exponential moving average of the parameters with this decay (e.g. 0.999),
    /// updated with Adam's step on the GPU; validation and the final evaluation use it
    /// [default: none; 0.999 for the default job].
    #[arg(long, value_parser = positive)]
    pub ema: Option<f64>,
    /// Stop training after this many minutes (validating and checkpointing that step), then
    /// evaluate as usual: runs compared at equal training time.
    #[arg(long, value_parser = positive)]
    pub time_limit: Option<f64>,
    #[command(flatten)]
    pub conv: ConvArgs,
}

/// The architecture and `--arch conv`'s flags (shared by train and sweep).
#[derive(clap::Args, Debug, Default)]
pub struct ConvArgs {
    /// Flow: dense (MODEL.md: Real NVP over the flattened data) or conv (CONV.md: a
    /// convolutional multiscale flow with a dense head, for images; --hidden and --depth are
    /// then its conditioners' channels and depth [default: 64 and 2]).
    #[arg(long, value_enum, default_value_t = Arch::Dense)]
    pub arch: Arch,
    /// Conv flows: scales K [default: 1 + the squeezes that keep at least 4×4, at most 3].
    #[arg(long, value_parser = at_least_one)]
    pub scales: Option<usize>,
    /// Conv flows: blocks of the dense head [default: 2].
    #[arg(long, value_parser = at_least_one)]
    pub head_blocks: Option<usize>,
    /// Conv flows: the dense head's hidden width [default: 256].
    #[arg(long, value_parser = at_least_one)]
    pub head_hidden: Option<usize>,
    /// Conv flows: ε channels K_ε joined to the image's (VFlow's augmentation) [default: 0].
    #[arg(long)]
    pub aux_channels: Option<usize>,
    /// Conv flows: what runs between channel couplings.
    #[arg(long, value_enum)]
    pub permute: Option<ChannelPermute>,
}

impl ConvArgs {
    /// The conv flags as overrides; each is refused, by name, on a dense flow, as is --blocks
    /// (`blocks_given`) on a conv flow.
    pub fn flags(&self, blocks_given: bool) -> Result<Option<ConvFlags>> {
        let given = [
            ("--scales", self.scales.is_some()),
            ("--head-blocks", self.head_blocks.is_some()),
            ("--head-hidden", self.head_hidden.is_some()),
            ("--aux-channels", self.aux_channels.is_some()),
            ("--permute", self.permute.is_some()),
        ];
        match self.arch {
            Arch::Dense => {
                if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                    anyhow::bail!("{flag} applies to conv flows: add --arch conv");
                }
                Ok(None)
            }
            Arch::Conv => {
                if blocks_given {
                    anyhow::bail!("--blocks sets a dense flow's blocks; a conv flow's dense head takes --head-blocks");
                }
                Ok(Some(ConvFlags {
                    scales: self.scales,
                    head_blocks: self.head_blocks,
                    head_hidden: self.head_hidden,
                    aux_channels: self.aux_channels,
                    permute: self.permute,
                }))
            }
        }
    }
}

/// The default job (`mflow train` alone): half-moons with B = 2 on a schedule that ends
/// within 0.06 nats of the truth in under 2 minutes of training on lavapipe (MODEL.md's
/// 1024 epochs at batch 64 take ~20): 6 blocks of width 64 (cheaper per step than MODEL.md's
/// 4 of 128, and closer: 0.058, 0.032, 0.042 nats below the truth at seeds 0-2 against
/// 0.087, 0.140, 0.090), batch 256, lr 2e-3, 300 epochs, the parameters averaged
/// (`--ema 0.999`); evaluated with S = 100 on 2000 points per split (standard error ≈ 0.016),
/// with the density map beside the truth.
fn default_job(c: &mut RunConfig) {
    c.epochs = 300;
    c.flow.hidden = 64;
    c.flow.blocks = 6;
    c.optim.ema = Some(0.999);
    c.optim.batch = 256;
    c.optim.lr = 2e-3;
    c.samples = 100;
    c.eval_points = Some(2000);
    c.density_map = true;
}

impl TrainArgs {
    fn data_spec(&self) -> Result<DataSpec> {
        let text = self.data.as_deref().unwrap_or("moons");
        let mut spec = DataSpec::parse(text)?;
        let given = |key: &str| {
            text.split_once(':').is_some_and(|(_, o)| o.split(',').any(|kv| kv.trim().starts_with(&format!("{key}="))))
        };
        let conflict = |flag: &str, key: &str, v: String, w: String| -> Result<()> {
            if given(key) && v != w {
                anyhow::bail!("{flag} {v} conflicts with --data {text} ({key}={w}): give it once");
            }
            Ok(())
        };
        match &mut spec {
            DataSpec::Gauss { d, psi } => {
                if let Some(v) = self.dim {
                    conflict("--dim", "d", v.to_string(), d.to_string())?;
                    *d = v;
                }
                if let Some(v) = self.psi {
                    conflict("--psi", "psi", v.to_string(), psi.to_string())?;
                    *psi = v;
                }
            }
            DataSpec::Moons { noise } => {
                if let Some(v) = self.noise {
                    conflict("--noise", "noise", v.to_string(), noise.to_string())?;
                    *noise = v;
                }
            }
            _ => {}
        }
        if let DataSpec::Tabular(t) = &mut spec {
            if let Some(f) = &self.split_fractions {
                if t.path.is_none() {
                    anyhow::bail!("--split-fractions applies to one file (npy:PATH); --data {text} names its splits");
                }
                let [a, b, c] = f[..] else {
                    anyhow::bail!("--split-fractions takes three fractions, train,validation,test (e.g. 0.8,0.1,0.1)");
                };
                t.fractions = [a, b, c];
            }
            t.standardize = !self.no_standardize;
            for (flag, set) in [
                ("--train-size", self.schedule.train_size.is_some()),
                ("--validation-size", self.validation_size.is_some()),
                ("--test-size", self.schedule.test_size.is_some()),
            ] {
                if set {
                    anyhow::bail!(
                        "{flag} applies to synthetic data; --data {text} is split by --split-fractions (or name the split files)"
                    );
                }
            }
        } else if self.split_fractions.is_some() || self.no_standardize {
            anyhow::bail!("--split-fractions and --no-standardize apply to npy: and csv: data only");
        }
        let gauss = matches!(spec, DataSpec::Gauss { .. });
        let moons = matches!(spec, DataSpec::Moons { .. });
        for (flag, set, ok) in [
            ("--dim", self.dim.is_some(), gauss),
            ("--psi", self.psi.is_some(), gauss),
            ("--noise", self.noise.is_some(), moons),
        ] {
            if set && !ok {
                anyhow::bail!(
                    "{flag} applies to {} data only, not --data {text}",
                    if moons || !gauss && flag == "--noise" { "moons" } else { "gauss" }
                );
            }
        }
        if let Some(p) = self.preprocess.filter(|_| !spec.may_be_image()) {
            anyhow::bail!(
                "--preprocess {} applies to images (digits, mnist:DIR, fashion-mnist:DIR, kmnist:DIR, cifar10:DIR, npy: images), not --data {text}",
                format!("{p:?}").to_lowercase()
            );
        }
        Ok(spec)
    }

    /// The run these flags describe, validated.
    pub fn config(&self) -> Result<RunConfig> {
        let mut c = RunConfig::defaults(self.data_spec()?, self.aux, self.seed);
        if self.data.is_none() {
            default_job(&mut c);
        }
        c.density_map |= self.density_map;
        Overrides {
            clip: self.clip,
            blocks: self.blocks,
            depth: self.depth,
            log_every: self.log_every,
            validation_size: self.validation_size,
            preprocess: self.preprocess,
            data_seed: self.data_seed,
            validate_every: self.validate_every,
            validation_samples: self.validation_samples,
            validation_points: self.validation_points,
            select: self.select,
            patience: self.patience,
            lr_schedule: self.lr_schedule,
            warmup: self.warmup,
            lr_min: self.lr_min,
            ema: self.ema,
            time_limit: self.time_limit,
            conv: self.conv.flags(self.blocks.is_some())?,
            ..self.schedule.overrides()
        }
        .apply(&mut c);
        c.validate()?;
        Ok(c)
    }
}

/// Trains the run `args` describe, prints its summary and says where it went.
pub fn train(ctx: &Context, args: &TrainArgs) -> Result<()> {
    let cfg = args.config()?;
    if args.allow_config_change && args.resume.is_none() {
        anyhow::bail!("--allow-config-change applies to --resume only");
    }
    let gpu = ctx.open_gpu()?;
    interrupt::install()?;
    eprintln!("adapter: {}", gpu.describe());
    if args.data.is_none() {
        eprintln!(
            "default job: half-moons MF with B = {}, {} blocks of width {}, {} epochs at batch {}, S = {} on {} points (MODEL.md's model and schedule: `mflow train --data moons`)",
            cfg.flow.b,
            cfg.flow.blocks,
            cfg.flow.hidden,
            cfg.epochs,
            cfg.optim.batch,
            cfg.samples,
            cfg.eval_points.unwrap_or(0)
        );
    }
    let opts = crate::run::Options {
        progress: !args.quiet,
        force: args.force,
        allow_changes: args.allow_config_change,
        tuning: ctx.tuning,
        on_step: None,
    };
    match crate::run::train(&gpu, &cfg, &args.out, args.resume.as_deref(), &opts) {
        Ok(s) => {
            print!("{}", s.report());
            let figures: Vec<String> = ["samples.png", "density.png", "curves.png"]
                .iter()
                .map(|f| args.out.join(f))
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect();
            println!("wrote {} (figures: {})", args.out.display(), figures.join(", "));
        }
        Err(e) => {
            if let Some(i) = e.downcast_ref::<Interrupted>() {
                if let Some((_, path)) = i.checkpoints.first() {
                    eprintln!("to continue, run the same command with --resume {}", path.display());
                }
            }
            return Err(e);
        }
    }
    Ok(())
}
