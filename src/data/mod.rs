//! Datasets: synthetic Gaussian powers and half-moons (generated, seeded, i.i.d. splits).

pub mod synthetic;

/// Rows of `dim` values, row-major.
#[derive(Clone, Debug)]
pub struct Table {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
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

/// A dataset as a run sees it: its three splits and, for synthetic data, the truth.
pub struct Dataset {
    /// How the data was specified (`gauss:d=2,psi=3`, `moons:noise=0.1`), for summaries.
    pub spec: String,
    pub train: Table,
    pub validation: Table,
    pub test: Table,
    /// The exact log-density of one point, where it is known in closed or numerical form.
    pub truth: Option<Density>,
    /// The analytic expected log-likelihood (MODEL.md), where known.
    pub true_ll_expected: Option<f64>,
}

/// Synthetic data as MODEL.md defines it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum DataSpec {
    Gauss { d: usize, psi: u32 },
    Moons { noise: f64 },
}

/// Split sizes: MODEL.md's training set, and held-out splits of at least 10,000 for tests.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct SplitSizes {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

impl DataSpec {
    pub fn dim(&self) -> usize {
        match self {
            DataSpec::Gauss { d, .. } => *d,
            DataSpec::Moons { .. } => 2,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DataSpec::Gauss { d, psi } => format!("gauss:d={d},psi={psi}"),
            DataSpec::Moons { noise } => format!("moons:noise={noise}"),
        }
    }

    pub fn load(&self, sizes: SplitSizes, seed: u64) -> anyhow::Result<Dataset> {
        Ok(match *self {
            DataSpec::Gauss { d, psi } => {
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
                }
            }
            DataSpec::Moons { noise } => {
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
                }
            }
        })
    }
}
