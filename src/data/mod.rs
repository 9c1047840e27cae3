//! Datasets: synthetic Gaussian powers and half-moons (generated, seeded, i.i.d. splits).

pub mod cifar;
pub mod idx;
pub mod images;
pub mod synthetic;

/// Rows of `dim` values, row-major. Real-valued data lives in `data`; image pixels stay the
/// bytes they were on disk, in `levels` (a quarter of f32's memory), and become f32 one
/// minibatch or evaluation block at a time.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub dim: usize,
    pub data: Vec<f32>,
    pub levels: Vec<u8>,
}

impl Table {
    pub fn new(dim: usize, data: Vec<f32>) -> Self {
        Self { dim, data, levels: Vec::new() }
    }
    pub fn from_levels(dim: usize, levels: Vec<u8>) -> Self {
        Self { dim, data: Vec::new(), levels }
    }
    pub fn rows(&self) -> usize {
        self.data.len().max(self.levels.len()).checked_div(self.dim).unwrap_or(0)
    }
    /// Row i as f32: borrowed for real-valued data, converted for pixel levels.
    pub fn row(&self, i: usize) -> std::borrow::Cow<'_, [f32]> {
        let r = i * self.dim..(i + 1) * self.dim;
        if self.levels.is_empty() {
            std::borrow::Cow::Borrowed(&self.data[r])
        } else {
            std::borrow::Cow::Owned(self.levels[r].iter().map(|&p| p as f32).collect())
        }
    }
    /// Rows `rows` as f32, appended to `out`.
    pub fn extend_rows(&self, rows: std::ops::Range<usize>, out: &mut Vec<f32>) {
        let r = rows.start * self.dim..rows.end * self.dim;
        if self.levels.is_empty() {
            out.extend_from_slice(&self.data[r]);
        } else {
            out.extend(self.levels[r].iter().map(|&p| p as f32));
        }
    }
    /// Rows `rows` as a table of the same kind.
    pub fn slice(&self, rows: std::ops::Range<usize>) -> Table {
        let r = rows.start * self.dim..rows.end * self.dim;
        if self.levels.is_empty() {
            Table::new(self.dim, self.data[r].to_vec())
        } else {
            Table::from_levels(self.dim, self.levels[r].to_vec())
        }
    }
    /// Every value, as f64 (statistics).
    pub fn values(&self) -> Box<dyn Iterator<Item = f64> + '_> {
        if self.levels.is_empty() {
            Box::new(self.data.iter().map(|&v| v as f64))
        } else {
            Box::new(self.levels.iter().map(|&p| p as f64))
        }
    }
}

/// Which split a set of rows is: each is drawn from its own seed stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub fn stream(self) -> u64 {
        match self {
            Split::Train => 1,
            Split::Validation => 2,
            Split::Test => 3,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// The exact log-density of one point.
pub type Density = Box<dyn Fn(&[f32]) -> f64 + Send + Sync>;

/// What an image dataset adds: its shape and how its levels become the flow's input.
#[derive(Clone, Debug)]
pub struct ImageInfo {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pre: images::Preprocess,
}

/// A dataset as a run sees it: its splits (image splits hold raw pixel levels) and, for
/// synthetic data, the truth.
pub struct Dataset {
    /// How the data was specified (`gauss:d=2,psi=3`, `mnist:DIR`), for summaries.
    pub spec: String,
    pub train: Table,
    pub validation: Table,
    pub test: Table,
    /// The exact log-density of one point, where it is known in closed or numerical form.
    pub truth: Option<Density>,
    /// The analytic expected log-likelihood (MODEL.md), where known.
    pub true_ll_expected: Option<f64>,
    pub image: Option<ImageInfo>,
    /// Class labels of the training and test images, where the dataset has them.
    pub train_labels: Option<Vec<u8>>,
    pub test_labels: Option<Vec<u8>>,
}

impl Dataset {
    pub fn split(&self, s: Split) -> &Table {
        match s {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        }
    }
}

/// A dataset, as the `--data` syntax every command shares names it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum DataSpec {
    Gauss {
        d: usize,
        psi: u32,
    },
    Moons {
        noise: f64,
    },
    /// MNIST, Fashion-MNIST or KMNIST IDX files in a folder.
    Mnist {
        name: String,
        dir: std::path::PathBuf,
    },
    Cifar10 {
        dir: std::path::PathBuf,
    },
    /// The embedded 8×8 digits.
    Digits,
}

/// Split sizes of synthetic data: MODEL.md's training set, held-out splits of at least
/// 10,000 for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitSizes {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

fn kv(opts: &str, spec: &str) -> anyhow::Result<std::collections::HashMap<String, String>> {
    opts.split(',')
        .filter(|s| !s.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => anyhow::bail!("--data {spec:?}: expected key=value, got {p:?}"),
        })
        .collect()
}

fn num<T: std::str::FromStr>(
    m: &std::collections::HashMap<String, String>,
    k: &str,
    default: T,
    spec: &str,
) -> anyhow::Result<T> {
    match m.get(k) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| anyhow::anyhow!("--data {spec:?}: {k}={v} is not a valid number")),
    }
}

impl DataSpec {
    /// Parses `gauss[:d=2,psi=3]`, `moons[:noise=0.1]`, `mnist:DIR`, `fashion-mnist:DIR`,
    /// `kmnist:DIR`, `cifar10:DIR` or `digits`.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        Ok(match kind {
            "gauss" => {
                let m = kv(rest, spec)?;
                for k in m.keys() {
                    if k != "d" && k != "psi" {
                        anyhow::bail!("--data {spec:?}: gauss takes d and psi, not {k:?}");
                    }
                }
                DataSpec::Gauss { d: num(&m, "d", 2, spec)?, psi: num(&m, "psi", 1, spec)? }
            }
            "moons" => {
                let m = kv(rest, spec)?;
                if let Some(k) = m.keys().find(|k| *k != "noise") {
                    anyhow::bail!("--data {spec:?}: moons takes noise, not {k:?}");
                }
                DataSpec::Moons { noise: num(&m, "noise", 0.1, spec)? }
            }
            "mnist" | "fashion-mnist" | "kmnist" | "cifar10" => {
                if rest.is_empty() {
                    anyhow::bail!("--data {spec:?}: {kind} needs its folder, as {kind}:DIR");
                }
                let dir = std::path::PathBuf::from(rest);
                if kind == "cifar10" {
                    DataSpec::Cifar10 { dir }
                } else {
                    DataSpec::Mnist { name: kind.to_string(), dir }
                }
            }
            "digits" => {
                if !rest.is_empty() {
                    anyhow::bail!("--data {spec:?}: digits (the embedded 8×8 digits) takes no options");
                }
                DataSpec::Digits
            }
            _ => anyhow::bail!(
                "--data {spec:?}: unknown dataset {kind:?} (gauss, moons, mnist:DIR, fashion-mnist:DIR, kmnist:DIR, cifar10:DIR, digits)"
            ),
        })
    }

    /// The spec's own bounds (a bad one is refused before anything is generated or read).
    pub fn validate(&self) -> anyhow::Result<()> {
        use crate::run::config::{MAX_GAUSS_DIM, MAX_PSI};
        match self {
            &DataSpec::Gauss { d, psi } => {
                if !(1..=MAX_GAUSS_DIM).contains(&d) {
                    anyhow::bail!("--dim {d}: gauss takes 1..={MAX_GAUSS_DIM} dimensions (MODEL.md's grid: 2, 3, 4)");
                }
                if !(1..=MAX_PSI).contains(&psi) {
                    anyhow::bail!("--psi {psi}: gauss takes powers 1..={MAX_PSI} (MODEL.md's grid: 1, 2, 3)");
                }
            }
            &DataSpec::Moons { noise } => {
                if !(noise.is_finite() && noise > 0.0 && noise <= 10.0) {
                    anyhow::bail!("--noise {noise}: the moons' noise σ must be in (0, 10]");
                }
            }
            DataSpec::Mnist { dir, .. } | DataSpec::Cifar10 { dir } => {
                if !dir.is_dir() {
                    anyhow::bail!("--data {}: {} is not a folder", self.describe(), dir.display());
                }
            }
            DataSpec::Digits => {}
        }
        Ok(())
    }

    pub fn is_image(&self) -> bool {
        matches!(self, DataSpec::Mnist { .. } | DataSpec::Cifar10 { .. } | DataSpec::Digits)
    }

    pub fn describe(&self) -> String {
        match self {
            DataSpec::Gauss { d, psi } => format!("gauss:d={d},psi={psi}"),
            DataSpec::Moons { noise } => format!("moons:noise={noise}"),
            DataSpec::Mnist { name, dir } => format!("{name}:{}", dir.display()),
            DataSpec::Cifar10 { dir } => format!("cifar10:{}", dir.display()),
            DataSpec::Digits => "digits".to_string(),
        }
    }

    /// Loads the splits; `mode` says how image levels are preprocessed.
    pub fn load(&self, sizes: SplitSizes, seed: u64, mode: images::Mode) -> anyhow::Result<Dataset> {
        self.validate()?;
        Ok(match self {
            &DataSpec::Gauss { d, psi } => {
                if d == 0 || psi == 0 {
                    anyhow::bail!("gauss needs d ≥ 1 and psi ≥ 1 (got d={d}, psi={psi})");
                }
                Dataset {
                    spec: self.describe(),
                    train: synthetic::gauss(d, psi, sizes.train, seed, Split::Train),
                    validation: synthetic::gauss(d, psi, sizes.validation, seed, Split::Validation),
                    test: synthetic::gauss(d, psi, sizes.test, seed, Split::Test),
                    truth: Some(Box::new(move |x| synthetic::gauss_log_density_any(x, psi))),
                    true_ll_expected: synthetic::gauss_true_ll_per_dim(psi).map(|v| v * d as f64),
                    image: None,
                    train_labels: None,
                    test_labels: None,
                }
            }
            &DataSpec::Moons { noise } => {
                if !(noise > 0.0 && noise.is_finite()) {
                    anyhow::bail!("moons noise must be positive (got {noise})");
                }
                Dataset {
                    spec: self.describe(),
                    train: synthetic::moons(sizes.train, noise, seed, Split::Train),
                    validation: synthetic::moons(sizes.validation, noise, seed, Split::Validation),
                    test: synthetic::moons(sizes.test, noise, seed, Split::Test),
                    truth: Some(Box::new(move |x| synthetic::moons_log_density(x, noise))),
                    true_ll_expected: (noise == 0.1).then_some(synthetic::MOONS_TRUE_LL_SIGMA_0_1),
                    image: None,
                    train_labels: None,
                    test_labels: None,
                }
            }
            DataSpec::Mnist { name, dir } => {
                let name: &'static str = match name.as_str() {
                    "mnist" => "mnist",
                    "fashion-mnist" => "fashion-mnist",
                    _ => "kmnist",
                };
                image_dataset(self, images::mnist_family(name, dir)?, mode, 0.3)?
            }
            DataSpec::Cifar10 { dir } => image_dataset(self, images::cifar10(dir)?, mode, 0.0)?,
            DataSpec::Digits => image_dataset(self, images::digits()?, mode, 0.3)?,
        })
    }
}

fn image_dataset(spec: &DataSpec, im: images::Images, mode: images::Mode, noise: f64) -> anyhow::Result<Dataset> {
    let pre = images::Preprocess::new(mode, im.levels, &im.train, noise);
    let dim = im.train.dim;
    Ok(Dataset {
        spec: spec.describe(),
        validation: Table::new(dim, Vec::new()),
        train: im.train,
        test: im.test,
        truth: None,
        true_ll_expected: None,
        image: Some(ImageInfo { channels: im.channels, height: im.height, width: im.width, pre }),
        train_labels: im.train_labels,
        test_labels: im.test_labels,
    })
}
