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
