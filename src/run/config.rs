//! A run's configuration: MODEL.md's defaults per dataset, the one path by which flags or a
//! sweep override them (`Overrides`), and the checks every configuration passes before
//! anything is allocated or written (`validate` on its own, `check_device` against the
//! adapter's limits once the data has fixed D).

use crate::data::images::Mode;
use crate::data::{DataSpec, SplitSizes};
use crate::gpu::Gpu;
use crate::gpu_flow::{human_bytes, Footprint, Mode as FlowMode};
use crate::model::{ChannelPermute, ConvArch, FlowConfig, LIMITS};
use crate::train::OptimConfig;
use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunConfig {
    pub data: DataSpec,
    /// How image levels become the flow's input.
    pub preprocess: Mode,
    pub data_seed: u64,
    pub sizes: SplitSizes,
    pub flow: FlowConfig,
    pub optim: OptimConfig,
    pub epochs: usize,
    /// Importance samples S for the final marginal likelihood.
    pub samples: usize,
    /// Steps between loss readbacks (and divergence checks).
    pub log_every: usize,
    /// Epochs between checkpoints (the last epoch always writes one).
    pub checkpoint_every: usize,
    /// Evaluate only the first N points of each split (all when absent); the summary says so.
    #[serde(default)]
    pub eval_points: Option<usize>,
    /// 2-D data: also draw the model's density beside the truth (`density.png`).
    #[serde(default)]
    pub density_map: bool,
    /// Model selection on the validation split (a run recorded before it: none).
    #[serde(default)]
    pub selection: Selection,
    /// The learning rate over the run (a run recorded before it: constant).
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Minutes of training after which the run stops (validating and checkpointing that
    /// step) and is evaluated: runs compared at equal training time.
    #[serde(default)]
    pub time_limit: Option<f64>,
}

/// Which model a run's final evaluation uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// The parameters with the best validation log-likelihood.
    #[default]
    Best,
    /// The parameters at the last step.
    Last,
}

/// Model selection on the validation split: MODEL.md's "model selection uses a validation
/// split; the test split is evaluated once".
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Selection {
    /// Epochs between validations (0: none).
    pub validate_every: usize,
    /// Importance samples S of a validation (B > 0), with a fixed ε seed so that the figures
    /// are comparable; B = 0 is exact.
    pub validation_samples: usize,
    /// At most this many validation points (the split's first).
    pub validation_points: usize,
    pub select: Select,
    /// Stop after this many validations without improvement (none: MODEL.md's fixed schedule).
    pub patience: Option<usize>,
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            validate_every: 0,
            validation_samples: 10,
            validation_points: 1000,
            select: Select::Best,
            patience: None,
        }
    }
}

/// Epochs between validations unless asked: twenty per run.
pub fn default_validate_every(epochs: usize) -> usize {
    (epochs / 20).max(1)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrKind {
    /// MODEL.md's: the same rate throughout (after any warm-up).
    #[default]
    Constant,
    /// Cosine decay from the rate to `lr_min` over the steps after the warm-up.
    Cosine,
}

/// The learning rate at each step: a linear warm-up over `warmup` steps, then constant or a
/// cosine decay to `lr_min` at the last step.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LrSchedule {
    pub kind: LrKind,
    pub warmup: u64,
    pub lr_min: f64,
}

impl LrSchedule {
    /// The rate of step `step` (1-based) of `total`, for a base rate `lr`.
    pub fn lr_at(&self, lr: f64, step: u64, total: u64) -> f64 {
        if step <= self.warmup {
            return lr * step as f64 / self.warmup as f64;
        }
        match self.kind {
            LrKind::Constant => lr,
            LrKind::Cosine => {
                let span = total.saturating_sub(self.warmup).max(1) as f64;
                let progress = ((step - self.warmup) as f64 / span).min(1.0);
                self.lr_min + (lr - self.lr_min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// Bounds on flags that no adapter limit decides.
pub const MAX_BATCH: usize = 1 << 20;
pub const MAX_SAMPLES: usize = 1 << 20;
/// Rows of one synthetic split (what fits is also checked against host memory).
pub const MAX_ROWS: usize = 1 << 26;
pub const MAX_EPOCHS: usize = 1 << 24;

/// Training images an image dataset holds out for validation unless asked: a tenth of the
/// embedded digits' 1,500, and 5,000 of MNIST's 60,000 or CIFAR-10's 50,000 (as is usual).
pub fn held_out_images(data: &DataSpec) -> usize {
    match data {
        DataSpec::Digits => 150,
        DataSpec::Mnist { .. } | DataSpec::Cifar10 { .. } => 5000,
        _ => 0,
    }
}

/// Epochs between checkpoints unless asked: ten per run, at least one epoch apart.
pub fn default_checkpoint_every(epochs: usize) -> usize {
    (epochs / 10).max(1)
}

impl RunConfig {
    /// MODEL.md's defaults for a dataset (thesis table 1), the model's D taken from the data
    /// when it is loaded.
    pub fn defaults(data: DataSpec, b: usize, seed: u64) -> Self {
        let image = data.is_image();
        let (batch, lr, clip, epochs, hidden) = match &data {
            DataSpec::Gauss { .. } => (256, 1e-3, None, 1024, 128),
            DataSpec::Moons { .. } => (64, 1e-3, None, 1024, 128),
            DataSpec::Cifar10 { .. } => (32, 5e-4, Some(0.6), 16, 1024),
            // Your own arrays: the images' schedule, with the tabular width (MODEL.md's 128).
            DataSpec::Tabular(_) => (32, 5e-4, Some(0.6), 10, 128),
            DataSpec::Array(a) if a.shape.len() == 1 => (32, 5e-4, Some(0.6), 10, 128),
            _ => (32, 5e-4, Some(0.6), 10, 1024),
        };
        let d = match &data {
            DataSpec::Gauss { d, .. } => *d,
            DataSpec::Moons { .. } => 2,
            _ => 0,
        };
        let sizes = SplitSizes { train: 2048, validation: 2048, test: 10_000, held_out_images: held_out_images(&data) };
        RunConfig {
            data,
            preprocess: Mode::Dequant,
            data_seed: 0,
            sizes,
            flow: FlowConfig { d, b, blocks: 4, depth: 2, hidden, seed, conv: None },
            optim: OptimConfig { batch, lr, clip, noise_seed: seed, ema: None },
            epochs,
            samples: 200,
            log_every: if image { 50 } else { 64 },
            checkpoint_every: default_checkpoint_every(epochs),
            eval_points: None,
            density_map: false,
            selection: Selection { validate_every: default_validate_every(epochs), ..Default::default() },
            lr_schedule: LrSchedule::default(),
            time_limit: None,
        }
    }

    /// Every bound that needs no adapter and no data, each error naming its flag.
    pub fn validate(&self) -> Result<()> {
        self.data.validate()?;
        let f = &self.flow;
        if let Some(a) = &f.conv {
            if !self.data.may_be_image() {
                bail!(
                    "--arch conv models images (digits, mnist:DIR, fashion-mnist:DIR, kmnist:DIR, cifar10:DIR, npy:PATH of uint8 images); --data {} is not image data",
                    self.data.describe()
                );
            }
            if !(1..=crate::model::conv::MAX_CONV_HIDDEN).contains(&a.hidden) {
                bail!(
                    "--hidden {}: a conv flow's conditioner channels must be in 1..={}",
                    a.hidden,
                    crate::model::conv::MAX_CONV_HIDDEN
                );
            }
            if !(1..=crate::model::conv::MAX_CONV_DEPTH).contains(&a.depth) {
                bail!(
                    "--depth {}: a conv flow's conditioner depth must be in 1..={}",
                    a.depth,
                    crate::model::conv::MAX_CONV_DEPTH
                );
            }
            if a.scales > crate::model::conv::MAX_SCALES {
                bail!("--scales {}: at most {}", a.scales, crate::model::conv::MAX_SCALES);
            }
            if a.aux_channels > crate::model::conv::MAX_CHANNELS {
                bail!("--aux-channels {}: at most {}", a.aux_channels, crate::model::conv::MAX_CHANNELS);
            }
        }
        if f.b > LIMITS.max_b {
            bail!("--aux {}: at most {} auxiliary dimensions", f.b, LIMITS.max_b);
        }
        let (blocks_flag, hidden_flag) =
            if f.conv.is_some() { ("--head-blocks", "--head-hidden") } else { ("--blocks", "--hidden") };
        if !(1..=LIMITS.max_blocks).contains(&f.blocks) {
            bail!("{blocks_flag} {}: must be in 1..={}", f.blocks, LIMITS.max_blocks);
        }
        if f.depth > LIMITS.max_depth {
            bail!("--depth {}: at most {}", f.depth, LIMITS.max_depth);
        }
        if !(1..=LIMITS.max_hidden).contains(&f.hidden) {
            bail!("{hidden_flag} {}: must be in 1..={}", f.hidden, LIMITS.max_hidden);
        }
        if f.d > 0 {
            f.validate()?;
        }
        let o = &self.optim;
        if !(1..=MAX_BATCH).contains(&o.batch) {
            bail!("--batch {}: must be in 1..={MAX_BATCH}", o.batch);
        }
        if !(o.lr.is_finite() && o.lr > 0.0) {
            bail!("--lr {}: the learning rate must be a positive finite number", o.lr);
        }
        if let Some(c) = o.clip {
            if !(c.is_finite() && c > 0.0) {
                bail!("--clip {c}: the gradient-norm bound must be positive and finite (0 turns clipping off)");
            }
        }
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            bail!("--epochs {}: must be in 1..={MAX_EPOCHS}", self.epochs);
        }
        if !(1..=MAX_SAMPLES).contains(&self.samples) {
            bail!("--samples {}: the importance samples S must be in 1..={MAX_SAMPLES}", self.samples);
        }
        if self.log_every == 0 {
            bail!("--log-every 0: must be at least 1");
        }
        if self.checkpoint_every == 0 {
            bail!("--checkpoint-every 0: must be at least 1 epoch");
        }
        if let Some(d) = o.ema {
            if !(d > 0.0 && d < 1.0) {
                bail!("--ema {d}: the average's decay must be in (0, 1), e.g. 0.999");
            }
        }
        let sel = &self.selection;
        if !(1..=MAX_SAMPLES).contains(&sel.validation_samples) {
            bail!("--validation-samples {}: must be in 1..={MAX_SAMPLES}", sel.validation_samples);
        }
        if !(1..=MAX_ROWS).contains(&sel.validation_points) {
            bail!("--validation-points {}: must be in 1..={MAX_ROWS}", sel.validation_points);
        }
        if sel.patience == Some(0) {
            bail!("--patience 0: must be at least 1 validation (leave it out for no early stopping)");
        }
        if sel.patience.is_some() && sel.validate_every == 0 {
            bail!("--patience needs validations: --validate-every 0 turns them off");
        }
        let s = &self.lr_schedule;
        if !(s.lr_min.is_finite() && s.lr_min >= 0.0 && s.lr_min <= self.optim.lr) {
            bail!("--lr-min {}: must be in 0..=--lr ({})", s.lr_min, self.optim.lr);
        }
        if let Some(t) = self.time_limit {
            if !(t.is_finite() && t > 0.0 && t <= 1e6) {
                bail!("--time-limit {t}: minutes of training, positive and at most 1000000");
            }
        }
        if self.eval_points == Some(0) {
            bail!("--eval-points 0: must be at least 1 (leave it out to evaluate every point)");
        }
        if !self.data.is_image() {
            let s = &self.sizes;
            for (flag, n) in [("--train-size", s.train), ("--validation-size", s.validation), ("--test-size", s.test)] {
                if n > MAX_ROWS {
                    bail!("{flag} {n}: at most {MAX_ROWS} points");
                }
            }
            if s.train == 0 || s.test == 0 {
                bail!("--train-size and --test-size must be at least 1 (got {} and {})", s.train, s.test);
            }
            let d = self.flow.d.max(1) as u64;
            let bytes = (s.train + s.validation + s.test) as u64 * d * 4;
            if let Some(avail) = crate::gpu::context::host_memory_available() {
                if bytes > avail / 2 {
                    bail!(
                        "--train-size {}, --validation-size {}, --test-size {}: the data would take {} of host memory, more than half of the {} available",
                        s.train,
                        s.validation,
                        s.test,
                        human_bytes(bytes),
                        human_bytes(avail)
                    );
                }
            }
        }
        Ok(())
    }

    /// Fixes what the data decides: D, and a conv flow's image shape and default scales
    /// (refusing a size its squeezes cannot halve, naming --scales and the size).
    pub fn fit_data(&mut self, data: &crate::data::Dataset) -> Result<()> {
        self.flow.d = data.train.dim;
        if let Some(a) = &mut self.flow.conv {
            let Some(im) = &data.image else {
                bail!("--arch conv models images; --data {} is not image data", self.data.describe());
            };
            (a.channels, a.height, a.width) = (im.channels, im.height, im.width);
            if a.scales == 0 {
                a.scales = ConvArch::default_scales(im.height, im.width);
            }
        }
        self.flow.validate()
    }

    /// What training and evaluating this run asks of `gpu` (D known): `models` flows trained
    /// together, then evaluated with S samples per point. The error names the flag to lower
    /// and the largest value that fits.
    pub fn check_device(&self, gpu: &Gpu, models: usize) -> Result<()> {
        let f = &self.flow;
        f.validate()?;
        let n = self.optim.batch;
        let fits = |c: &FlowConfig, n: usize| {
            Footprint::of(c, n, FlowMode::Training, models).is_some_and(|fp| fp.fits(gpu))
                && Footprint::of(c, 1, FlowMode::Inference, 1).is_some_and(|fp| fp.fits(gpu))
        };
        if !fits(f, n) {
            let fp = Footprint::of(f, n, FlowMode::Training, models);
            let need = fp.map_or("more than 2^64 bytes".into(), |fp| {
                format!("{} in all, {} in its largest buffer", human_bytes(fp.total), human_bytes(fp.largest))
            });
            let room = format!(
                "this adapter binds at most {} per buffer{}",
                human_bytes(gpu.limits.max_storage_buffer_binding_size),
                gpu.memory_budget()
                    .map_or(String::new(), |b| format!(" and mflow may use {} of memory", human_bytes(b)))
            );
            // The largest value of each flag that fits, the others as given.
            let largest = |ok: &dyn Fn(usize) -> bool, hi: usize| -> Option<usize> {
                Some(crate::gpu_flow::largest_fitting(ok, hi)).filter(|&v| v > 0)
            };
            let mut hints = Vec::new();
            if let Some(b) = largest(&|b| fits(&FlowConfig { b, ..f.clone() }, n), f.b) {
                hints.push(format!("--aux {b}"));
            }
            if let Some(h) = largest(&|h| fits(&FlowConfig { hidden: h, ..f.clone() }, n), f.hidden) {
                hints.push(format!("--hidden {h}"));
            }
            if let Some(l) = largest(&|l| fits(&FlowConfig { blocks: l, ..f.clone() }, n), f.blocks) {
                hints.push(format!("--blocks {l}"));
            }
            if let Some(b) = largest(&|b| fits(f, b), n) {
                hints.push(format!("--batch {b}"));
            }
            let what = if models > 1 { format!("{models} models of this shape") } else { "this model".into() };
            bail!(
                "{what} (D={}, B={}, H={}, L={}, batch {n}) needs {need}; {room}. {}",
                f.d,
                f.b,
                f.hidden,
                f.blocks,
                if hints.is_empty() {
                    "No smaller --aux, --hidden, --blocks or --batch alone makes it fit: lower several".to_string()
                } else {
                    format!("It fits with {} (each alone, the other flags as given)", hints.join(" or "))
                }
            );
        }
        let most = crate::eval::max_samples(gpu, f);
        if self.samples > most {
            bail!(
                "--samples {}: at most {most} importance samples per point fit one evaluation pass of this model on this adapter",
                self.samples
            );
        }
        Ok(())
    }

    /// The settings that change a training trajectory, as "name: this → other" lines
    /// (resuming under other settings continues a different run).
    pub fn training_changes(&self, other: &RunConfig) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}: {a} → {b}"));
            }
        };
        cmp("data", self.data.describe(), other.data.describe());
        if let (DataSpec::Tabular(a), DataSpec::Tabular(b)) = (&self.data, &other.data) {
            cmp("split fractions", format!("{:?}", a.fractions), format!("{:?}", b.fractions));
            cmp("standardised", a.standardize.to_string(), b.standardize.to_string());
            if let (Some(x), Some(y)) = (&a.content, &b.content) {
                cmp("data content (hash of the files)", x.clone(), y.clone());
            }
        }
        cmp("preprocess", format!("{:?}", self.preprocess), format!("{:?}", other.preprocess));
        cmp("data seed", self.data_seed.to_string(), other.data_seed.to_string());
        cmp("train size", self.sizes.train.to_string(), other.sizes.train.to_string());
        cmp("batch", self.optim.batch.to_string(), other.optim.batch.to_string());
        cmp("lr", self.optim.lr.to_string(), other.optim.lr.to_string());
        cmp("clip", format!("{:?}", self.optim.clip), format!("{:?}", other.optim.clip));
        cmp("noise seed", self.optim.noise_seed.to_string(), other.optim.noise_seed.to_string());
        cmp("ema", format!("{:?}", self.optim.ema), format!("{:?}", other.optim.ema));
        cmp("lr schedule", format!("{:?}", self.lr_schedule), format!("{:?}", other.lr_schedule));
        cmp("epochs (the schedule's length)", self.lr_len(), other.lr_len());
        cmp("patience", format!("{:?}", self.selection.patience), format!("{:?}", other.selection.patience));
        out
    }

    /// What the learning rate's course depends on besides its settings: the run's length,
    /// for a cosine decay.
    fn lr_len(&self) -> String {
        match self.lr_schedule.kind {
            LrKind::Constant => String::new(),
            LrKind::Cosine => self.epochs.to_string(),
        }
    }

    /// Every setting that differs (a sweep's finished run counts only under its own).
    pub fn changes(&self, other: &RunConfig) -> Vec<String> {
        let mut out = self.training_changes(other);
        let mut cmp = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}: {a} → {b}"));
            }
        };
        // Image data fixes D when loaded: a configuration asked for before loading has D = 0.
        let (mut fa, mut fb) = (self.flow.clone(), other.flow.clone());
        if fa.d == 0 || fb.d == 0 {
            (fa.d, fb.d) = (0, 0);
            for a in [&mut fa.conv, &mut fb.conv].into_iter().flatten() {
                (a.channels, a.height, a.width, a.scales) = (0, 0, 0, 0);
            }
        }
        cmp("flow", format!("{fa:?}"), format!("{fb:?}"));
        cmp("epochs", self.epochs.to_string(), other.epochs.to_string());
        cmp("samples", self.samples.to_string(), other.samples.to_string());
        cmp("validation size", self.sizes.validation.to_string(), other.sizes.validation.to_string());
        cmp(
            "held-out training images",
            self.sizes.held_out_images.to_string(),
            other.sizes.held_out_images.to_string(),
        );
        cmp("test size", self.sizes.test.to_string(), other.sizes.test.to_string());
        cmp("eval points", format!("{:?}", self.eval_points), format!("{:?}", other.eval_points));
        cmp("selection", format!("{:?}", self.selection), format!("{:?}", other.selection));
        cmp("time limit", format!("{:?}", self.time_limit), format!("{:?}", other.time_limit));
        out
    }
}

/// Settings that override MODEL.md's defaults: the flags of `mflow train`, and a sweep's for
/// every run. `None` keeps the default.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub epochs: Option<usize>,
    pub batch: Option<usize>,
    pub lr: Option<f64>,
    /// 0 turns clipping off.
    pub clip: Option<f64>,
    pub blocks: Option<usize>,
    pub depth: Option<usize>,
    pub hidden: Option<usize>,
    pub samples: Option<usize>,
    pub log_every: Option<usize>,
    pub train_size: Option<usize>,
    pub validation_size: Option<usize>,
    pub test_size: Option<usize>,
    pub checkpoint_every: Option<usize>,
    pub eval_points: Option<usize>,
    pub preprocess: Option<Mode>,
    pub data_seed: Option<u64>,
    /// Epochs between validations (0: none).
    pub validate_every: Option<usize>,
    pub validation_samples: Option<usize>,
    pub validation_points: Option<usize>,
    pub select: Option<Select>,
    pub patience: Option<usize>,
    pub lr_schedule: Option<LrKind>,
    pub warmup: Option<u64>,
    pub lr_min: Option<f64>,
    pub ema: Option<f64>,
    /// Minutes of training.
    pub time_limit: Option<f64>,
    /// A convolutional multiscale flow (CONV.md) instead of the dense one.
    pub conv: Option<ConvFlags>,
}

/// The flow's architecture (`--arch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// MODEL.md's Real NVP over flattened data.
    #[default]
    Dense,
    /// CONV.md's convolutional multiscale flow, for images.
    Conv,
}

/// `--arch conv`'s flags; `None` keeps CONV.md's defaults. `--hidden` and `--depth` are the
/// conditioners' (`Overrides::hidden`, `depth`).
#[derive(Clone, Debug, Default)]
pub struct ConvFlags {
    /// Scales K [default: CONV.md's for the image size].
    pub scales: Option<usize>,
    pub head_blocks: Option<usize>,
    pub head_hidden: Option<usize>,
    pub aux_channels: Option<usize>,
    pub permute: Option<ChannelPermute>,
}

/// CONV.md's defaults: conditioner channels 64, depth 2; dense head 2 blocks of width 256.
pub const CONV_HIDDEN: usize = 64;
pub const HEAD_BLOCKS: usize = 2;
pub const HEAD_HIDDEN: usize = 256;

impl Overrides {
    pub fn apply(&self, c: &mut RunConfig) {
        c.epochs = self.epochs.unwrap_or(c.epochs);
        c.checkpoint_every = self.checkpoint_every.unwrap_or(default_checkpoint_every(c.epochs));
        c.optim.batch = self.batch.unwrap_or(c.optim.batch);
        c.optim.lr = self.lr.unwrap_or(c.optim.lr);
        if let Some(clip) = self.clip {
            c.optim.clip = (clip != 0.0).then_some(clip);
        }
        match &self.conv {
            // The image's shape is filled in when the data is loaded (`RunConfig::fit_data`);
            // scales 0 there means CONV.md's default for it.
            Some(f) => {
                c.flow.conv = Some(ConvArch {
                    channels: 0,
                    height: 0,
                    width: 0,
                    aux_channels: f.aux_channels.unwrap_or(0),
                    scales: f.scales.unwrap_or(0),
                    hidden: self.hidden.unwrap_or(CONV_HIDDEN),
                    depth: self.depth.unwrap_or(2),
                    permute: f.permute.unwrap_or(ChannelPermute::Reverse),
                });
                c.flow.blocks = f.head_blocks.unwrap_or(HEAD_BLOCKS);
                c.flow.depth = 2;
                c.flow.hidden = f.head_hidden.unwrap_or(HEAD_HIDDEN);
            }
            None => {
                c.flow.blocks = self.blocks.unwrap_or(c.flow.blocks);
                c.flow.depth = self.depth.unwrap_or(c.flow.depth);
                c.flow.hidden = self.hidden.unwrap_or(c.flow.hidden);
            }
        }
        c.samples = self.samples.unwrap_or(c.samples);
        c.log_every = self.log_every.unwrap_or(c.log_every);
        c.sizes.train = self.train_size.unwrap_or(c.sizes.train);
        // An image dataset's validation split is held out of its training images.
        if c.data.is_image_dataset() {
            c.sizes.held_out_images = self.validation_size.unwrap_or(c.sizes.held_out_images);
        } else {
            c.sizes.validation = self.validation_size.unwrap_or(c.sizes.validation);
        }
        c.sizes.test = self.test_size.unwrap_or(c.sizes.test);
        c.eval_points = self.eval_points.or(c.eval_points);
        c.preprocess = self.preprocess.unwrap_or(c.preprocess);
        c.data_seed = self.data_seed.unwrap_or(c.data_seed);
        let sel = &mut c.selection;
        sel.validate_every = self.validate_every.unwrap_or(default_validate_every(c.epochs));
        sel.validation_samples = self.validation_samples.unwrap_or(sel.validation_samples);
        sel.validation_points = self.validation_points.unwrap_or(sel.validation_points);
        sel.select = self.select.unwrap_or(sel.select);
        sel.patience = self.patience.or(sel.patience);
        let s = &mut c.lr_schedule;
        s.kind = self.lr_schedule.unwrap_or(s.kind);
        s.warmup = self.warmup.unwrap_or(s.warmup);
        s.lr_min = self.lr_min.unwrap_or(s.lr_min);
        c.optim.ema = self.ema.or(c.optim.ema);
        c.time_limit = self.time_limit.or(c.time_limit);
    }
}
