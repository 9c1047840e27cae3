//! Image datasets and MODEL.md's two preprocessing modes.
//!
//! Pixels are kept as their integer levels (as f32) and preprocessed per minibatch, because
//! the noise (uniform in `thesis` mode, dequantisation in `dequant` mode) is drawn afresh for
//! every training minibatch and from a fixed seed for evaluation.

use super::{cifar, idx, Table};
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::path::Path;

/// The logit transform's squeeze λ (MODEL.md).
pub const LAMBDA: f64 = 1e-6;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// (p/max − mean)/std + U(−a, a) noise (a = 0.3; none for CIFAR-10), nats per image.
    Thesis,
    /// v = (p + U(0,1))/levels, z = logit(λ + (1 − 2λ) v); bits per dimension.
    Dequant,
    /// Float images (npy arrays) modelled as their values, no noise; nats per image.
    None,
}

/// How raw pixel levels become the flow's input.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocess {
    pub mode: Mode,
    /// Number of pixel levels (256 for 8-bit images, 17 for the 8×8 digits).
    pub levels: u32,
    /// Training set's scalar mean and std of p/(levels − 1) (thesis mode).
    pub mean: f64,
    pub std: f64,
    /// Half-width of the thesis mode's uniform noise.
    pub noise: f64,
    /// The values drawn black and white: levels 0 and levels − 1, or (none mode) the
    /// training split's lowest and highest value.
    #[serde(default)]
    pub lo: f64,
    #[serde(default)]
    pub hi: f64,
}

impl Preprocess {
    pub fn new(mode: Mode, levels: u32, train: &Table, noise: f64) -> Self {
        let scale = 1.0 / levels.saturating_sub(1).max(1) as f64;
        let n = (train.rows() * train.dim) as f64;
        let mean = train.values().map(|p| p * scale).sum::<f64>() / n;
        let var = train.values().map(|p| (p * scale - mean).powi(2)).sum::<f64>() / n;
        let hi = levels.saturating_sub(1) as f64;
        Self { mode, levels, mean, std: var.sqrt().max(1e-12), noise, lo: 0.0, hi }
    }

    /// Float images taken as they are (`--preprocess none`): only their range is kept, to
    /// draw them.
    pub fn none(train: &Table) -> Self {
        let (lo, hi) = train.values().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        Self { lo, hi, ..Self::new(Mode::None, 0, train, 0.0) }
    }

    /// Maps raw levels (in place) to the flow's input, with noise from `rng`. Returns the
    /// per-row log-Jacobian that turns log p(model input) into log p(v) (dequant mode; 0 in
    /// thesis mode, whose figure is the density of the standardised data itself).
    pub fn apply(&self, rows: &mut [f32], dim: usize, rng: &mut impl Rng) -> Vec<f64> {
        let n = rows.len() / dim;
        let mut jac = vec![0.0; n];
        match self.mode {
            Mode::None => {}
            Mode::Thesis => {
                let scale = 1.0 / (self.levels - 1) as f64;
                for v in rows.iter_mut() {
                    let u = if self.noise > 0.0 { rng.random_range(-self.noise..self.noise) } else { 0.0 };
                    *v = ((*v as f64 * scale - self.mean) / self.std + u) as f32;
                }
            }
            Mode::Dequant => {
                let k = self.levels as f64;
                let log_squeeze = (1.0 - 2.0 * LAMBDA).ln();
                for (r, row) in rows.chunks_exact_mut(dim).enumerate() {
                    let mut j = 0.0;
                    for v in row.iter_mut() {
                        let vv = (*v as f64 + rng.random::<f64>()) / k;
                        let w = LAMBDA + (1.0 - 2.0 * LAMBDA) * vv;
                        *v = (w.ln() - (1.0 - w).ln()) as f32;
                        j += log_squeeze - w.ln() - (1.0 - w).ln();
                    }
                    jac[r] = j;
                }
            }
        }
        jac
    }

    /// Back to pixel levels, clamped to 0..levels−1 (for pictures of samples); float images'
    /// values as they are.
    pub fn invert(&self, x: f32) -> f32 {
        let max = self.levels.saturating_sub(1) as f64;
        let p = match self.mode {
            Mode::None => return x,
            Mode::Thesis => (x as f64 * self.std + self.mean) * max,
            Mode::Dequant => {
                let w = 1.0 / (1.0 + (-(x as f64)).exp());
                ((w - LAMBDA) / (1.0 - 2.0 * LAMBDA)) * self.levels as f64 - 0.5
            }
        };
        p.round().clamp(0.0, max) as f32
    }

    /// How bright a value in the data's units (a level, or a float image's value) is drawn:
    /// 0 black to 1 white.
    pub fn shade(&self, v: f32) -> f32 {
        let (lo, hi) = (self.lo, self.hi);
        if hi > lo {
            (((v as f64 - lo) / (hi - lo)) as f32).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }

    /// Bits per dimension in the data's own pixel space from log p(v) (dequant mode).
    pub fn bits_per_dim(&self, log_pv: f64, dim: usize) -> f64 {
        -(log_pv - dim as f64 * (self.levels as f64).ln()) / (dim as f64 * std::f64::consts::LN_2)
    }
}

/// Pixel data of an image dataset, as levels.
pub struct Images {
    pub name: &'static str,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub levels: u32,
    pub train: Table,
    pub test: Table,
    /// Class labels per image, where the dataset has them (checked against the images).
    pub train_labels: Option<Vec<u8>>,
    pub test_labels: Option<Vec<u8>>,
}

impl Images {
    /// Moves `k` training images, chosen by `seed`, out of the training split and returns
    /// them (in their file order) as the validation split; the rest keep theirs.
    pub fn hold_out(&mut self, k: usize, seed: u64) -> Result<Table> {
        let n = self.train.rows();
        let dim = self.train.dim;
        if k == 0 {
            return Ok(Table::from_levels(dim, Vec::new()));
        }
        if k + 2 > n {
            bail!(
                "--validation-size {k}: {} has {n} training images; hold out at most {} (0: none, the last model is evaluated)",
                self.name,
                n.saturating_sub(2)
            );
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0x7a11d));
        let mut held = vec![false; n];
        for &i in &order[..k] {
            held[i] = true;
        }
        let (mut train, mut val) = (Vec::with_capacity((n - k) * dim), Vec::with_capacity(k * dim));
        for (i, row) in self.train.levels.chunks_exact(dim).enumerate() {
            if held[i] { &mut val } else { &mut train }.extend_from_slice(row);
        }
        self.train = Table::from_levels(dim, train);
        if let Some(l) = &mut self.train_labels {
            *l = l.iter().zip(&held).filter(|(_, &h)| !h).map(|(&label, _)| label).collect();
        }
        Ok(Table::from_levels(dim, val))
    }
}

fn table(pixels: Vec<u8>, dim: usize) -> Table {
    Table::from_levels(dim, pixels)
}

fn check_levels(t: &Table, levels: u32, what: &str) -> Result<()> {
    if let Some(p) = t.values().find(|&p| p >= levels as f64) {
        bail!("{what}: pixel value {p} exceeds the dataset's {} levels", levels);
    }
    Ok(())
}

/// An MNIST-family folder: train-images-idx3-ubyte[.gz] and t10k-images-idx3-ubyte[.gz].
pub fn mnist_family(name: &'static str, dir: &Path) -> Result<Images> {
    let find = |stem: &str| -> Result<std::path::PathBuf> {
        for cand in [format!("{stem}.gz"), stem.to_string()] {
            let p = dir.join(&cand);
            if p.exists() {
                return Ok(p);
            }
        }
        bail!("{}: no {stem}[.gz] in this folder ({name} needs the IDX files)", dir.display())
    };
    let (n1, h, w, train) = idx::read_images(&find("train-images-idx3-ubyte")?)?;
    let test_path = find("t10k-images-idx3-ubyte")?;
    let (n2, h2, w2, test) = idx::read_images(&test_path)?;
    if (h, w) != (h2, w2) {
        bail!("{}: test images are {h2}×{w2} but training images {h}×{w}", test_path.display());
    }
    // Labels are optional (a folder of images alone trains), but present ones must match.
    let labels = |stem: &str, n: usize| -> Result<Option<Vec<u8>>> {
        match find(stem) {
            Err(_) => Ok(None),
            Ok(path) => idx::read_labels(&path, n).map(Some),
        }
    };
    Ok(Images {
        name,
        channels: 1,
        height: h,
        width: w,
        levels: 256,
        train: table(train, h * w),
        test: table(test, h * w),
        train_labels: labels("train-labels-idx1-ubyte", n1)?,
        test_labels: labels("t10k-labels-idx1-ubyte", n2)?,
    })
}

pub fn cifar10(dir: &Path) -> Result<Images> {
    let (train, train_labels) = cifar::read_split(dir, true)?;
    let (test, test_labels) = cifar::read_split(dir, false)?;
    Ok(Images {
        name: "cifar10",
        channels: 3,
        height: 32,
        width: 32,
        levels: 256,
        train: table(train, 3072),
        test: table(test, 3072),
        train_labels: Some(train_labels),
        test_labels: Some(test_labels),
    })
}

/// The embedded 8×8 digits (levels 0..16): a fixed split of 1500 training and 297 test images.
pub fn digits() -> Result<Images> {
    let bytes = include_bytes!("../../assets/digits8x8-images-idx3-ubyte.gz");
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut raw)?;
    let img = idx::parse(&raw, "assets/digits8x8-images-idx3-ubyte.gz")?;
    let mut raw = Vec::new();
    let labels = include_bytes!("../../assets/digits8x8-labels-idx1-ubyte.gz");
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&labels[..]), &mut raw)?;
    let labels = idx::parse(&raw, "assets/digits8x8-labels-idx1-ubyte.gz")?.data;
    if labels.len() != img.dims[0] {
        bail!("assets/digits8x8: {} labels for {} images", labels.len(), img.dims[0]);
    }
    let all = table(img.data, 64);
    check_levels(&all, 17, "assets/digits8x8")?;
    let split = 1500;
    Ok(Images {
        name: "digits",
        channels: 1,
        height: 8,
        width: 8,
        levels: 17,
        train: all.slice(0..split),
        test: all.slice(split..all.rows()),
        train_labels: Some(labels[..split].to_vec()),
        test_labels: Some(labels[split..].to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dequant_round_trips_and_its_jacobian_matches_finite_differences() {
        let t = Table::new(3, vec![0.0, 128.0, 255.0]);
        let pre = Preprocess::new(Mode::Dequant, 256, &t, 0.0);
        let mut rows = t.data.clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let jac = pre.apply(&mut rows, 3, &mut rng);
        for (z, p) in rows.iter().zip(&t.data) {
            assert_eq!(pre.invert(*z), *p);
        }
        // d z / d v = (1 − 2λ) / (w (1 − w)): log p(v) = log p(z) + Σ log |dz/dv|.
        let want: f64 = rows
            .iter()
            .map(|&z| {
                let w = 1.0 / (1.0 + (-(z as f64)).exp());
                ((1.0 - 2.0 * LAMBDA) / (w * (1.0 - w))).ln()
            })
            .sum();
        assert!((jac[0] - want).abs() < 1e-3 * want.abs(), "{} vs {want}", jac[0]);
        // A uniform density on [0,1]^D is 8 bits per dimension in 8-bit space.
        assert!((pre.bits_per_dim(0.0, 784) - 8.0).abs() < 1e-12);
    }

    #[test]
    fn thesis_mode_standardises() {
        let t = Table::new(2, vec![0.0, 255.0, 0.0, 255.0]);
        let pre = Preprocess::new(Mode::Thesis, 256, &t, 0.0);
        let mut rows = t.data.clone();
        pre.apply(&mut rows, 2, &mut rand::rngs::StdRng::seed_from_u64(0));
        assert_eq!(rows, vec![-1.0, 1.0, -1.0, 1.0]);
        assert_eq!(pre.invert(1.0), 255.0);
    }

    #[test]
    fn embedded_digits_load() {
        let d = digits().unwrap();
        assert_eq!((d.train.rows(), d.test.rows(), d.train.dim), (1500, 297, 64));
        let max = d.train.values().fold(0.0, f64::max);
        assert_eq!(max, 16.0);
        assert!(d.train.data.is_empty() && d.train.levels.len() == 1500 * 64, "pixels kept as bytes");
        let (tl, vl) = (d.train_labels.unwrap(), d.test_labels.unwrap());
        assert_eq!((tl.len(), vl.len()), (1500, 297));
        assert!(tl.iter().chain(&vl).all(|&l| l < 10) && tl.contains(&9));
    }

    #[test]
    fn held_out_images_leave_the_training_split_with_their_labels() {
        let full = digits().unwrap();
        let mut d = digits().unwrap();
        let val = d.hold_out(150, 3).unwrap();
        assert_eq!((d.train.rows(), val.rows(), d.train_labels.as_ref().unwrap().len()), (1350, 150, 1350));
        // Every image lands in exactly one split, with its own label, in file order.
        let (mut t, mut v) = (0, 0);
        for i in 0..1500 {
            let row = &full.train.levels[i * 64..(i + 1) * 64];
            if t < 1350 && &d.train.levels[t * 64..(t + 1) * 64] == row {
                assert_eq!(d.train_labels.as_ref().unwrap()[t], full.train_labels.as_ref().unwrap()[i]);
                t += 1;
            } else {
                assert_eq!(&val.levels[v * 64..(v + 1) * 64], row, "image {i}");
                v += 1;
            }
        }
        assert_eq!((t, v), (1350, 150));
        // The data seed chooses them; the same seed the same ones.
        let other = digits().unwrap().hold_out(150, 4).unwrap();
        assert_ne!(other.levels, val.levels);
        assert_eq!(digits().unwrap().hold_out(150, 3).unwrap().levels, val.levels);
        assert_eq!(digits().unwrap().hold_out(0, 3).unwrap().rows(), 0);
        let err = digits().unwrap().hold_out(1499, 0).unwrap_err().to_string();
        assert!(err.contains("--validation-size 1499") && err.contains("at most 1498"), "{err}");
    }
}
