//! Datasets: synthetic Gaussian powers and half-moons (generated, seeded, i.i.d. splits).

pub mod cifar;
pub mod idx;
pub mod images;
pub mod synthetic;
pub mod tabular;

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
    /// Shared with the minibatch thread, so a run holds one copy of its training data.
    pub train: std::sync::Arc<Table>,
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
    /// Tabular data the flow sees standardised: the map back to the data's units.
    pub standardize: Option<tabular::Standardize>,
}

impl Dataset {
    pub fn split(&self, s: Split) -> &Table {
        match s {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        }
    }

    /// The exact log-density of the first `n` points of split `s`, where it is known.
    pub fn true_log_p(&self, s: Split, n: usize) -> Option<Vec<f64>> {
        let f = self.truth.as_ref()?;
        let t = self.split(s);
        Some((0..n.min(t.rows())).map(|i| f(&t.row(i))).collect())
    }
}

/// Gaussian powers: u^ψ stays finite in f32 for the normal's range.
pub const MAX_PSI: u32 = 5;
pub const MAX_GAUSS_DIM: usize = 1024;

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
    /// The user's own N×D array (`npy:PATH`, `csv:PATH`, or explicit split files).
    Tabular(TabularSpec),
    /// Arrays a program embedding mflow handed over in memory (the Python package's `fit`):
    /// split and scaled as `npy:PATH` is. Only their shape and a hash of their bytes are
    /// recorded; nothing can reload them from the spec.
    Array(ArraySpec),
}

/// What a run records of arrays handed over in memory.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArraySpec {
    pub rows: usize,
    /// One point's shape: `[D]` for real-valued rows, `[C, H, W]` for images of 8-bit levels.
    pub shape: Vec<usize>,
    /// (train, validation, test) fractions, shuffled by the data seed (`--split-fractions`).
    pub fractions: [f64; 3],
    /// Standardise real-valued columns with the training split's mean and std.
    pub standardize: bool,
    /// FNV-1a of the array's bytes (as `content_hash` of a file).
    pub content: String,
}

/// FNV-1a over `bytes`, as a hex string: what identifies a user's data.
pub fn fnv1a(chunks: &[&[u8]]) -> String {
    let mut h = 0xcbf29ce484222325u64;
    for chunk in chunks {
        for b in chunk.iter().chain(&[0xff]) {
            h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

/// Where a user's array comes from and how it is split and scaled.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TabularSpec {
    pub format: tabular::Format,
    /// One file, split by `fractions`.
    pub path: Option<std::path::PathBuf>,
    /// Or one file per split (train and test required).
    pub train: Option<std::path::PathBuf>,
    pub validation: Option<std::path::PathBuf>,
    pub test: Option<std::path::PathBuf>,
    /// CSV: whether the first row is a header (None: detected).
    pub header: Option<bool>,
    /// (train, validation, test) fractions of one file, shuffled by the data seed.
    pub fractions: [f64; 3],
    /// Standardise columns with the training split's mean and std (`--no-standardize`).
    pub standardize: bool,
    /// A hash of the files' contents when a run was trained on them (`content_hash`): a run
    /// resumed on changed data continues a different run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// (C, H, W) when the files hold uint8 images, recorded when a run loads them: a
    /// model's points are then images of that shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<[usize; 3]>,
}

/// The default `--split-fractions`.
pub const SPLIT_FRACTIONS: [f64; 3] = [0.8, 0.1, 0.1];

/// Split sizes of synthetic data: MODEL.md's training set, held-out splits of at least
/// 10,000 for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitSizes {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
    /// Image datasets (digits, IDX files, CIFAR-10), which ship a training and a test split:
    /// this many training images, chosen by the data seed, are held out as the validation
    /// split that model selection uses (a run recorded before it held none out: 0).
    #[serde(default)]
    pub held_out_images: usize,
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
            "npy" | "csv" => {
                let format = if kind == "npy" { tabular::Format::Npy } else { tabular::Format::Csv };
                let mut t = TabularSpec {
                    format,
                    path: None,
                    train: None,
                    validation: None,
                    test: None,
                    header: None,
                    fractions: SPLIT_FRACTIONS,
                    standardize: true,
                    content: None,
                    image: None,
                };
                for item in rest.split(',').filter(|s| !s.is_empty()) {
                    match item.split_once('=') {
                        Some(("train", p)) => t.train = Some(p.into()),
                        Some(("validation", p)) => t.validation = Some(p.into()),
                        Some(("test", p)) => t.test = Some(p.into()),
                        Some(("header", h)) if format == tabular::Format::Csv => {
                            t.header = Some(match h {
                                "yes" | "true" => true,
                                "no" | "false" => false,
                                _ => anyhow::bail!("--data {spec:?}: header takes yes or no"),
                            })
                        }
                        Some((k, _)) => anyhow::bail!(
                            "--data {spec:?}: unknown option {k:?} (a path, or train=, test=, validation={})",
                            if format == tabular::Format::Csv { ", header=yes|no" } else { "" }
                        ),
                        None if t.path.is_none() => t.path = Some(item.into()),
                        None => anyhow::bail!("--data {spec:?}: two paths; name the splits (train=A,test=B)"),
                    }
                }
                match (&t.path, &t.train, &t.test) {
                    (Some(_), None, None) if t.validation.is_none() => {}
                    (None, Some(_), Some(_)) => {}
                    _ => anyhow::bail!(
                        "--data {spec:?}: give one file ({kind}:PATH, split by --split-fractions) or train= and test= files ({kind}:train=A,test=B[,validation=C])"
                    ),
                }
                DataSpec::Tabular(t)
            }
            "digits" => {
                if !rest.is_empty() {
                    anyhow::bail!("--data {spec:?}: digits (the embedded 8×8 digits) takes no options");
                }
                DataSpec::Digits
            }
            _ => anyhow::bail!(
                "--data {spec:?}: unknown dataset {kind:?} (gauss, moons, mnist:DIR, fashion-mnist:DIR, kmnist:DIR, cifar10:DIR, digits, npy:PATH, csv:PATH)"
            ),
        })
    }

    /// The array files this data is read from (your own npy/csv data), so that a command
    /// can tell its outputs from its inputs.
    pub fn files(&self) -> Vec<&std::path::Path> {
        match self {
            DataSpec::Tabular(t) => {
                [&t.path, &t.train, &t.validation, &t.test].into_iter().flatten().map(|p| p.as_path()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// FNV-1a over the bytes of every file the data is read from (your own arrays), in the
    /// spec's order; `None` for data mflow generates or ships.
    pub fn content_hash(&self) -> anyhow::Result<Option<String>> {
        let files = self.files();
        if files.is_empty() {
            return Ok(None);
        }
        let bytes = files.into_iter().map(crate::checkpoint::read_regular).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(fnv1a(&bytes.iter().map(|b| b.as_slice()).collect::<Vec<_>>())))
    }

    /// The spec's own bounds (a bad one is refused before anything is generated or read).
    pub fn validate(&self) -> anyhow::Result<()> {
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
            DataSpec::Array(a) => {
                check_fractions(a.fractions)?;
                if !(a.shape.len() == 1 || a.shape.len() == 3) || a.shape.contains(&0) {
                    anyhow::bail!("the array's points have shape {:?}: expected (D,) or (C, H, W)", a.shape);
                }
            }
            DataSpec::Tabular(t) => {
                check_fractions(t.fractions)?;
                for p in [&t.path, &t.train, &t.validation, &t.test].into_iter().flatten() {
                    if !p.is_file() {
                        anyhow::bail!("--data {}: {} is not a file", self.describe(), p.display());
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether this is image data, as far as the spec alone says (`npy:` files say once
    /// read: `image_shape` then).
    pub fn is_image(&self) -> bool {
        self.image_shape().is_some() || self.is_image_dataset()
    }

    /// The image datasets (digits, IDX files, CIFAR-10): a training and a test split only,
    /// so their validation split is held out of the training images.
    pub fn is_image_dataset(&self) -> bool {
        matches!(self, DataSpec::Mnist { .. } | DataSpec::Cifar10 { .. } | DataSpec::Digits)
    }

    /// Whether the data may be images (then `RunConfig::fit_data` decides, once loaded).
    pub fn may_be_image(&self) -> bool {
        self.is_image() || matches!(self, DataSpec::Tabular(t) if t.format == tabular::Format::Npy)
    }

    /// The (C, H, W) of images a spec records: arrays handed over in memory, or `npy:`
    /// files of uint8 images once a run has read them.
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self {
            DataSpec::Array(a) => match a.shape[..] {
                [c, h, w] => Some([c, h, w]),
                _ => None,
            },
            DataSpec::Tabular(t) => t.image,
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DataSpec::Array(a) => {
                let dims: Vec<String> =
                    std::iter::once(a.rows).chain(a.shape.iter().copied()).map(|v| v.to_string()).collect();
                format!("array:{}", dims.join("x"))
            }
            DataSpec::Gauss { d, psi } => format!("gauss:d={d},psi={psi}"),
            DataSpec::Moons { noise } => format!("moons:noise={noise}"),
            DataSpec::Mnist { name, dir } => format!("{name}:{}", dir.display()),
            DataSpec::Cifar10 { dir } => format!("cifar10:{}", dir.display()),
            DataSpec::Digits => "digits".to_string(),
            DataSpec::Tabular(t) => {
                let kind = if t.format == tabular::Format::Npy { "npy" } else { "csv" };
                let mut parts: Vec<String> = Vec::new();
                if let Some(p) = &t.path {
                    parts.push(p.display().to_string());
                }
                for (k, p) in [("train", &t.train), ("validation", &t.validation), ("test", &t.test)] {
                    if let Some(p) = p {
                        parts.push(format!("{k}={}", p.display()));
                    }
                }
                if let Some(h) = t.header {
                    parts.push(format!("header={}", if h { "yes" } else { "no" }));
                }
                format!("{kind}:{}", parts.join(","))
            }
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
                    train: synthetic::gauss(d, psi, sizes.train, seed, Split::Train).into(),
                    validation: synthetic::gauss(d, psi, sizes.validation, seed, Split::Validation),
                    test: synthetic::gauss(d, psi, sizes.test, seed, Split::Test),
                    truth: Some(Box::new(move |x| synthetic::gauss_log_density_any(x, psi))),
                    true_ll_expected: synthetic::gauss_true_ll_per_dim(psi).map(|v| v * d as f64),
                    image: None,
                    train_labels: None,
                    test_labels: None,
                    standardize: None,
                }
            }
            &DataSpec::Moons { noise } => {
                if !(noise > 0.0 && noise.is_finite()) {
                    anyhow::bail!("moons noise must be positive (got {noise})");
                }
                Dataset {
                    spec: self.describe(),
                    train: synthetic::moons(sizes.train, noise, seed, Split::Train).into(),
                    validation: synthetic::moons(sizes.validation, noise, seed, Split::Validation),
                    test: synthetic::moons(sizes.test, noise, seed, Split::Test),
                    truth: Some(Box::new(move |x| synthetic::moons_log_density(x, noise))),
                    true_ll_expected: (noise == 0.1).then_some(synthetic::MOONS_TRUE_LL_SIGMA_0_1),
                    image: None,
                    train_labels: None,
                    test_labels: None,
                    standardize: None,
                }
            }
            DataSpec::Mnist { name, dir } => {
                let name: &'static str = match name.as_str() {
                    "mnist" => "mnist",
                    "fashion-mnist" => "fashion-mnist",
                    _ => "kmnist",
                };
                image_dataset(self, images::mnist_family(name, dir)?, mode, 0.3, sizes.held_out_images, seed)?
            }
            DataSpec::Cifar10 { dir } => {
                image_dataset(self, images::cifar10(dir)?, mode, 0.0, sizes.held_out_images, seed)?
            }
            DataSpec::Digits => image_dataset(self, images::digits()?, mode, 0.3, sizes.held_out_images, seed)?,
            DataSpec::Tabular(t) => tabular_dataset(self, t, seed, None, mode)?,
            DataSpec::Array(_) => anyhow::bail!(
                "the data ({}) was handed over in memory by the program that trained the model (Python's fit), so it cannot be read again: pass --data",
                self.describe()
            ),
        })
    }
}

fn check_fractions(f: [f64; 3]) -> anyhow::Result<()> {
    if f.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || (f.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
        anyhow::bail!("--split-fractions {f:?}: three fractions ≥ 0 (train, validation, test) that sum to 1");
    }
    Ok(())
}

/// Arrays handed over in memory (`DataSpec::Array`): `table` holds every point, real values
/// or (images) 8-bit levels. Split by the spec's fractions and the data seed exactly as
/// `npy:PATH` is, then standardised (real values) or dequantised like the image datasets.
pub fn array_dataset(spec: &DataSpec, table: Table, seed: u64, mode: images::Mode) -> anyhow::Result<Dataset> {
    let DataSpec::Array(a) = spec else { anyhow::bail!("array_dataset takes an array spec") };
    spec.validate()?;
    let dim: usize = a.shape.iter().product();
    if table.dim != dim || table.rows() != a.rows {
        anyhow::bail!("the array holds {} points of {}, the spec says {} of {dim}", table.rows(), table.dim, a.rows);
    }
    let what = format!("the array ({})", spec.describe());
    let [train, validation, test] = tabular::split_by_fractions(&table, a.fractions, seed, &what)?;
    if let [c, h, w] = a.shape[..] {
        return split_images_dataset(spec, [train, validation, test], [c, h, w], mode);
    }
    real_dataset(spec, [train, validation, test], a.standardize, None, &what)
}

/// A user's array: read, split, and (by default) standardised. `fitted` replaces the fit
/// on the training split (a trained model's own standardisation, when evaluating).
pub fn tabular_dataset(
    spec: &DataSpec,
    t: &TabularSpec,
    seed: u64,
    fitted: Option<&tabular::Standardize>,
    mode: images::Mode,
) -> anyhow::Result<Dataset> {
    // Every file holds the same kind of points: images of one shape and type, or real values.
    type Kind = (Option<[usize; 3]>, bool);
    let kind = std::cell::Cell::new(None::<(Kind, std::path::PathBuf)>);
    let read = |p: &std::path::Path| -> anyhow::Result<Table> {
        let (table, shape) = tabular::read_points(p, t.format, t.header)?;
        let this = (shape, !table.levels.is_empty());
        match kind.take() {
            Some((first, f)) if first != this => anyhow::bail!(
                "{}: {} but {} holds {}",
                p.display(),
                describe_points(this),
                f.display(),
                describe_points(first)
            ),
            Some(k) => kind.set(Some(k)),
            None => kind.set(Some((this, p.to_path_buf()))),
        }
        Ok(table)
    };
    let [train, mut validation, test] = match (&t.path, &t.train, &t.test) {
        (Some(p), _, _) => tabular::split_by_fractions(&read(p)?, t.fractions, seed, &p.display().to_string())?,
        (None, Some(a), Some(b)) => {
            let (a, b) = (read(a)?, read(b)?);
            let v = match &t.validation {
                Some(c) => read(c)?,
                None => Table { dim: a.dim, ..Default::default() },
            };
            [a, v, b]
        }
        _ => anyhow::bail!("--data {}: no files", spec.describe()),
    };
    if let Some(((Some(shape), _), _)) = kind.take() {
        if fitted.is_some() {
            anyhow::bail!("--data {}: images, but the model was trained on standardised real values", spec.describe());
        }
        return split_images_dataset(spec, [train, validation, test], shape, mode);
    }
    let dim = train.dim;
    for (name, table, file) in [("test", &test, &t.test), ("validation", &validation, &t.validation)] {
        if table.rows() > 0 && table.dim != dim {
            let file = file.as_ref().or(t.path.as_ref()).map(|p| p.display().to_string()).unwrap_or_default();
            anyhow::bail!("{file}: the {name} split has {} columns, the training split {dim}", table.dim);
        }
    }
    validation.dim = dim;
    real_dataset(spec, [train, validation, test], t.standardize, fitted, &spec.describe())
}

/// Real-valued splits (a user's files or arrays) as a dataset, standardised with `fitted`
/// or (`standardize`) the training split's fit; `what` names the data in errors.
fn real_dataset(
    spec: &DataSpec,
    [mut train, mut validation, mut test]: [Table; 3],
    standardize: bool,
    fitted: Option<&tabular::Standardize>,
    what: &str,
) -> anyhow::Result<Dataset> {
    let dim = train.dim;
    let standardize = match (fitted, standardize) {
        (Some(s), _) => Some(s.clone()),
        (None, true) => Some(tabular::Standardize::fit(&train, what)?),
        (None, false) => {
            // A constant column is refused either way: ActNorm would divide by its zero spread.
            tabular::Standardize::fit(&train, what)?;
            None
        }
    };
    if let Some(s) = &standardize {
        if s.mean.len() != dim {
            anyhow::bail!("{}: {dim} columns, but the model was trained on {}", spec.describe(), s.mean.len());
        }
        for table in [&mut train, &mut validation, &mut test] {
            s.apply(table);
        }
    }
    Ok(Dataset {
        spec: spec.describe(),
        train: train.into(),
        validation,
        test,
        truth: None,
        true_ll_expected: None,
        image: None,
        train_labels: None,
        test_labels: None,
        standardize,
    })
}

fn describe_points((shape, levels): (Option<[usize; 3]>, bool)) -> String {
    match shape {
        Some([c, h, w]) => format!("{} images of {c}×{h}×{w}", if levels { "uint8" } else { "float" }),
        None => "real-valued rows".into(),
    }
}

/// Splits of a user's 8-bit images (arrays or `npy:` files) as an image dataset: dequantised,
/// or (thesis mode) standardised with the training split's statistics and MNIST's noise for
/// one channel.
fn split_images_dataset(
    spec: &DataSpec,
    [train, validation, test]: [Table; 3],
    [c, h, w]: [usize; 3],
    mode: images::Mode,
) -> anyhow::Result<Dataset> {
    let im = images::Images {
        name: "array",
        channels: c,
        height: h,
        width: w,
        levels: 256,
        train,
        test,
        train_labels: None,
        test_labels: None,
    };
    let mut data = image_dataset(spec, im, mode, if c == 1 { 0.3 } else { 0.0 }, 0, 0)?;
    data.validation = validation;
    Ok(data)
}

/// An image dataset's splits: `held_out` training images (chosen by the data seed) become
/// the validation split; the preprocessing is fitted on the images left for training.
fn image_dataset(
    spec: &DataSpec,
    mut im: images::Images,
    mode: images::Mode,
    noise: f64,
    held_out: usize,
    seed: u64,
) -> anyhow::Result<Dataset> {
    // Float images are modelled as their values (--preprocess none), pixels otherwise.
    let (floats, [c, h, w]) = (im.train.levels.is_empty(), [im.channels, im.height, im.width]);
    if floats != (mode == images::Mode::None) {
        let what = spec.describe();
        anyhow::bail!(if floats {
            format!("{what}: float images ({c}×{h}×{w}): give --preprocess none to model their values as they are (nats), or save 8-bit pixels as uint8 to dequantise them")
        } else {
            format!("--preprocess none takes float images (npy: arrays); {what} holds uint8 pixels ({c}×{h}×{w}): drop it to dequantise them, or --preprocess thesis")
        });
    }
    let validation = im.hold_out(held_out, seed)?;
    let pre = match mode {
        images::Mode::None => images::Preprocess::none(&im.train),
        _ => images::Preprocess::new(mode, im.levels, &im.train, noise),
    };
    Ok(Dataset {
        spec: spec.describe(),
        validation,
        train: im.train.into(),
        test: im.test,
        truth: None,
        true_ll_expected: None,
        image: Some(ImageInfo { channels: im.channels, height: im.height, width: im.width, pre }),
        train_labels: im.train_labels,
        test_labels: im.test_labels,
        standardize: None,
    })
}
