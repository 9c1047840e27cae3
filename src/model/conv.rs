//! CONV.md's convolutional multiscale flow as layers of the one layer list.
//!
//! A sample is one row, as in the dense flow: `[x, ε channels, flat ε]`, every image
//! flattened in CONV.md's `(c, i, j)` order. Each conv layer acts on a `Region` of that row:
//! an offset and a `(C, H, W)` shape. That order makes both multiscale operations cheap:
//! - a factor-out leaves the first half of the channels, which are the region's first half
//!   of values: the region just moves on, and what left stays in place as part of the latent;
//! - after the last scale the region is followed by flat ε, so the dense head acts on the
//!   row's tail, `concat(flatten(h_K), ε)`, and the row *is* the latent
//!   `concat(z_1, …, z_{K−1}, head output)`.
//!
//! A squeeze permutes values inside its region (Glow's order, see `Region::squeeze_source`).

use super::{Builder, Layer};
use anyhow::{bail, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What runs between channel couplings (`--permute`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ChannelPermute {
    /// Channel c ↦ C − 1 − c.
    Reverse,
    /// Glow's invertible 1×1 convolution in LU form.
    Conv1x1,
}

/// The convolutional part of a flow's shape (CONV.md); the dense head's is `FlowConfig`'s
/// `blocks`, `depth` and `hidden`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvArch {
    /// Image channels C, rows H, columns W.
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// ε channels K_ε joined after x's (`--aux-channels`).
    pub aux_channels: usize,
    /// Scales K (`--scales`).
    pub scales: usize,
    /// Conditioner channels W_c (`--hidden`).
    pub hidden: usize,
    /// Conditioner depth (`--depth`): conv3×3, depth − 1 conv1×1, conv3×3.
    pub depth: usize,
    pub permute: ChannelPermute,
}

/// mflow's bounds on a conv flow's image (the parameter count is bounded with the rest).
pub const MAX_CHANNELS: usize = 256;
pub const MAX_SIDE: usize = 1024;
pub const MAX_SCALES: usize = 6;
pub const MAX_CONV_HIDDEN: usize = 4096;
pub const MAX_CONV_DEPTH: usize = 16;
/// The most channels a 1×1 convolution mixes (inv1x1.wgsl solves one column of W⁻¹ per
/// invocation in a private array of this size).
pub const MAX_INV1X1_CHANNELS: usize = 256;

/// The part of a row a conv layer acts on: `c·h·w` values from `off`, in `(c, i, j)` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub off: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Region {
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    /// The row index of element (c, i, j).
    pub fn at(&self, c: usize, i: usize, j: usize) -> usize {
        self.off + (c * self.h + i) * self.w + j
    }
    /// The squeezed shape `(4C, H/2, W/2)`, same offset.
    pub fn squeezed(&self) -> Region {
        Region { off: self.off, c: 4 * self.c, h: self.h / 2, w: self.w / 2 }
    }
    /// What continues after a factor-out: the second half of the channels.
    pub fn kept(&self) -> Region {
        let left = self.c / 2;
        Region { off: self.off + left * self.hw(), c: self.c - left, ..*self }
    }
    /// Glow's squeeze as a gather: output element `e` of the squeezed region (its index
    /// inside the region) reads input element `squeeze_source(e)`, where
    /// `out[(2·di + dj)·C + c, i, j] = in[c, 2i + di, 2j + dj]`.
    pub fn squeeze_source(&self, e: usize) -> usize {
        let (h2, w2) = (self.h / 2, self.w / 2);
        let (oc, rest) = (e / (h2 * w2), e % (h2 * w2));
        let (i, j) = (rest / w2, rest % w2);
        let (pos, c) = (oc / self.c, oc % self.c);
        let (di, dj) = (pos / 2, pos % 2);
        (c * self.h + 2 * i + di) * self.w + 2 * j + dj
    }
}

/// Which elements of a conv coupling's region condition and which are transformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Elements where (i + j) mod 2 = parity condition (the mask b is 1 there).
    Checkerboard(usize),
    /// The first ⌊C/2⌋ channels condition.
    Channels,
}

impl Split {
    /// For element (c, i, j) of a coupling over `channels` channels: the channels of rm
    /// holding its (r, m) when it is transformed, `None` when it conditions.
    pub fn transformed(self, channels: usize, c: usize, i: usize, j: usize) -> Option<(usize, usize)> {
        match self {
            Split::Checkerboard(parity) => ((i + j) % 2 != parity).then_some((c, channels + c)),
            Split::Channels => {
                let (ca, cb) = (channels / 2, channels - channels / 2);
                (c >= ca).then(|| (c - ca, cb + c - ca))
            }
        }
    }

    /// The conditioner's output channels, (r, m): 2C, or 2(C − ⌊C/2⌋).
    pub fn rm_channels(self, channels: usize) -> usize {
        match self {
            Split::Checkerboard(_) => 2 * channels,
            Split::Channels => 2 * (channels - channels / 2),
        }
    }
}

/// A convolution of a conditioner: weights `(c_out, c_in, k, k)` at `w`, bias `(c_out)` at
/// `b`; stride 1, zero padding k/2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub w: usize,
    pub b: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
}

/// A per-channel ActNorm's parameters: β and a, `c` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Norm {
    pub beta: usize,
    pub a: usize,
    pub c: usize,
}

/// A coupling's conditioner (Glow's network): `convs[k]` → `norms[k]` → ReLU for every
/// conv but the last, whose output is `(r, m)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvNet {
    pub convs: Vec<Conv2d>,
    pub norms: Vec<Norm>,
}

impl ConvArch {
    /// CONV.md's default K: 1 + the squeezes whose input has even H, W and whose output is at
    /// least 4×4, at most 3.
    pub fn default_scales(height: usize, width: usize) -> usize {
        let (mut h, mut w, mut k) = (height, width, 1);
        while k < 3 && h % 2 == 0 && w % 2 == 0 && h / 2 >= 4 && w / 2 >= 4 {
            (h, w, k) = (h / 2, w / 2, k + 1);
        }
        k
    }

    /// The first scale's region: x's channels and the ε channels, from the row's start.
    pub fn input(&self) -> Region {
        Region { off: 0, c: self.channels + self.aux_channels, h: self.height, w: self.width }
    }

    /// The region the last scale acts on (what the dense head reads, before flat ε).
    pub fn last_scale(&self) -> Region {
        let mut r = self.input();
        for _ in 1..self.scales {
            r = r.squeezed().kept();
        }
        r
    }

    /// Checks the image and the conditioners against mflow's bounds and the squeezes against
    /// the image size, naming the flag; `d` must be C·H·W.
    pub fn validate(&self, d: usize) -> Result<()> {
        let (c, h, w) = (self.channels, self.height, self.width);
        if !(1..=MAX_CHANNELS).contains(&c) || !(1..=MAX_SIDE).contains(&h) || !(1..=MAX_SIDE).contains(&w) {
            bail!("an image of {c}×{h}×{w} (C×H×W) is outside mflow's bounds for conv flows: 1..={MAX_CHANNELS} channels, sides 1..={MAX_SIDE}");
        }
        if self.aux_channels > MAX_CHANNELS {
            bail!("--aux-channels {} exceeds mflow's bound of {MAX_CHANNELS}", self.aux_channels);
        }
        if c * h * w != d {
            bail!("a conv flow over {c}×{h}×{w} images has D = {}, not {d}", c * h * w);
        }
        if !(1..=MAX_SCALES).contains(&self.scales) {
            bail!("--scales {} must be in 1..={MAX_SCALES}", self.scales);
        }
        let (mut sh, mut sw) = (h, w);
        for k in 1..self.scales {
            if sh % 2 == 1 || sw % 2 == 1 {
                bail!(
                    "--scales {}: scale {k} would squeeze a {sh}×{sw} image, and a squeeze needs even height and width \
                     (at most --scales {k} for {h}×{w} images)",
                    self.scales
                );
            }
            (sh, sw) = (sh / 2, sw / 2);
        }
        if self.permute == ChannelPermute::Conv1x1 {
            let widest = self.conditioners().iter().map(|&(c, ..)| c).max().unwrap_or(0);
            if widest > MAX_INV1X1_CHANNELS {
                bail!(
                    "--permute conv1x1: the 1×1 convolutions would mix {widest} channels, more than mflow's bound of {}",
                    MAX_INV1X1_CHANNELS
                );
            }
        }
        if !(1..=MAX_CONV_HIDDEN).contains(&self.hidden) {
            bail!("conditioner channels {} must be in 1..={MAX_CONV_HIDDEN} (--hidden)", self.hidden);
        }
        if !(1..=MAX_CONV_DEPTH).contains(&self.depth) {
            bail!("conditioner depth {} must be in 1..={MAX_CONV_DEPTH} (--depth)", self.depth);
        }
        Ok(())
    }

    /// Every coupling in layer order: `(its region's channels, its conditioner's c_in and
    /// c_out, pixels)`.
    pub fn conditioners(&self) -> Vec<(usize, usize, usize, usize)> {
        let mut out = Vec::new();
        let mut r = self.input();
        for s in 1..=self.scales {
            let last = s == self.scales;
            for _ in 0..if last { 4 } else { 3 } {
                out.push((r.c, r.c, 2 * r.c, r.hw()));
            }
            if last {
                break;
            }
            r = r.squeezed();
            for _ in 0..3 {
                let ca = r.c / 2;
                out.push((r.c, ca, 2 * (r.c - ca), r.hw()));
            }
            r = r.kept();
        }
        out
    }

    /// The convolutions of a conditioner `c_in → c_out`: `(c_in, c_out, k)`.
    pub fn net_shape(&self, c_in: usize, c_out: usize) -> Vec<(usize, usize, usize)> {
        let mut v = vec![(c_in, self.hidden, 3)];
        v.extend((1..self.depth).map(|_| (self.hidden, self.hidden, 1)));
        v.push((self.hidden, c_out, 3));
        v
    }

    /// FLOPs of every convolution of one forward, per sample.
    pub fn conv_flops(&self) -> f64 {
        let mut f = 0.0;
        for (_, ci, co, px) in self.conditioners() {
            for (a, b, k) in self.net_shape(ci, co) {
                f += 2.0 * (a * k * k * b * px) as f64;
            }
        }
        f
    }

    /// The conv layers' share of `Flow::params` (padded as `Builder` pads), without building
    /// them; `None` on overflow. Call after `validate`.
    pub fn padded_params(&self) -> Option<u64> {
        let pad = |n: u64| n.checked_next_multiple_of(4);
        let norm = |c: u64| pad(c)?.checked_mul(2);
        let mut total = 0u64;
        for (c, ci, co, _) in self.conditioners() {
            total = total.checked_add(norm(c as u64)?)?; // the coupling's own ActNorm
            for (a, b, k) in self.net_shape(ci, co) {
                let w = pad((a as u64).checked_mul(b as u64)?.checked_mul((k * k) as u64)?)?;
                total = total.checked_add(w)?.checked_add(pad(b as u64)?)?;
            }
            total = total.checked_add(norm(self.hidden as u64)?.checked_mul(self.depth as u64)?)?;
        }
        if self.permute == ChannelPermute::Conv1x1 {
            let mut r = self.input();
            for _ in 1..self.scales {
                r = r.squeezed();
                total = total.checked_add(pad((r.c as u64).checked_mul(r.c as u64)?)?.checked_mul(2)?)?;
                r = r.kept();
            }
        }
        Some(total)
    }
}

/// Counters for tensor names, one per kind (`an{i}`, `cp{i}`, `inv{i}`).
#[derive(Default)]
struct Names {
    an: usize,
    cp: usize,
    inv: usize,
}

/// Appends the conv layers (everything before the dense head) to `layers`, allocating their
/// tensors (`initialise` then draws their values).
pub(super) fn build(arch: &ConvArch, b: &mut Builder, layers: &mut Vec<Layer>) {
    let mut names = Names::default();
    let mut r = arch.input();
    for s in 1..=arch.scales {
        let last = s == arch.scales;
        for k in 0..if last { 4 } else { 3 } {
            norm_layer(b, layers, &mut names, r);
            let net = net(arch, b, &names, r.c, 2 * r.c);
            layers.push(Layer::Checkerboard { index: names.cp, parity: k % 2, at: r, net });
            names.cp += 1;
        }
        if last {
            break;
        }
        layers.push(Layer::Squeeze { at: r });
        r = r.squeezed();
        for k in 0..3 {
            norm_layer(b, layers, &mut names, r);
            let ca = r.c / 2;
            let net = net(arch, b, &names, ca, 2 * (r.c - ca));
            layers.push(Layer::ChannelCoupling { index: names.cp, at: r, net });
            names.cp += 1;
            if k < 2 {
                layers.push(match arch.permute {
                    ChannelPermute::Reverse => Layer::ChannelReverse { at: r },
                    ChannelPermute::Conv1x1 => {
                        let lu = b.add(format!("inv{}.lu", names.inv), vec![r.c, r.c]);
                        names.inv += 1;
                        Layer::Inv1x1 { index: names.inv - 1, at: r, lu, perm: Vec::new(), sign: Vec::new() }
                    }
                });
            }
        }
        layers.push(Layer::FactorOut { at: r });
        r = r.kept();
    }
}

fn norm_layer(b: &mut Builder, layers: &mut Vec<Layer>, names: &mut Names, at: Region) {
    let beta = b.add(format!("an{}.beta", names.an), vec![at.c]);
    let a = b.add(format!("an{}.a", names.an), vec![at.c]);
    layers.push(Layer::ChannelNorm { index: names.an, norm: Norm { beta, a, c: at.c }, at });
    names.an += 1;
}

fn net(arch: &ConvArch, b: &mut Builder, names: &Names, c_in: usize, c_out: usize) -> ConvNet {
    let i = names.cp;
    let shape = arch.net_shape(c_in, c_out);
    let mut convs = Vec::new();
    let mut norms = Vec::new();
    for (k, &(ci, co, ks)) in shape.iter().enumerate() {
        let w = b.add(format!("cp{i}.conv{k}.weight"), vec![co, ci, ks, ks]);
        let bias = b.add(format!("cp{i}.conv{k}.bias"), vec![co]);
        convs.push(Conv2d { w, b: bias, c_in: ci, c_out: co, k: ks });
        if k + 1 < shape.len() {
            let beta = b.add(format!("cp{i}.an{k}.beta"), vec![co]);
            let a = b.add(format!("cp{i}.an{k}.a"), vec![co]);
            norms.push(Norm { beta, a, c: co });
        }
    }
    ConvNet { convs, norms }
}

/// Initialises the conv layers as CONV.md says, drawing from `rng` in layer order: He-uniform
/// conditioner convolutions but the last (which stays zero, so every coupling starts as the
/// identity), zero biases, identity ActNorms awaiting data, and each 1×1 convolution a
/// random rotation in LU form, `W = P L (U + diag(sign ⊙ exp(log_s)))`, stored as one C×C
/// tensor `inv{i}.lu` (strictly lower: L; strictly upper: U; diagonal: log_s); P and the
/// signs are fixed and kept in the layer.
pub(super) fn initialise(layers: &mut [Layer], params: &mut [f32], rng: &mut impl Rng) {
    for layer in layers {
        match layer {
            Layer::Checkerboard { net, .. } | Layer::ChannelCoupling { net, .. } => {
                for conv in &net.convs[..net.convs.len() - 1] {
                    let bound = (6.0 / (conv.c_in * conv.k * conv.k) as f64).sqrt();
                    for p in &mut params[conv.w..conv.w + conv.c_out * conv.c_in * conv.k * conv.k] {
                        *p = rng.random_range(-bound..bound) as f32;
                    }
                }
            }
            Layer::Inv1x1 { at, lu, perm, sign, .. } => {
                let c = at.c;
                let (p, factors) = lu_decompose(random_rotation(c, rng), c);
                *perm = p;
                *sign = (0..c).map(|i| if factors[i * c + i] < 0.0 { -1 } else { 1 }).collect();
                for e in 0..c * c {
                    let v = if e / c == e % c { factors[e].abs().ln() } else { factors[e] };
                    params[*lu + e] = v as f32;
                }
            }
            _ => {}
        }
    }
}

/// A uniformly random C×C rotation: Gram–Schmidt on a Gaussian matrix (rows orthonormal).
fn random_rotation(c: usize, rng: &mut impl Rng) -> Vec<f64> {
    use rand_distr::{Distribution, StandardNormal};
    loop {
        let mut m: Vec<f64> = (0..c * c).map(|_| StandardNormal.sample(rng)).collect();
        let mut ok = true;
        for i in 0..c {
            for j in 0..i {
                let d: f64 = (0..c).map(|k| m[i * c + k] * m[j * c + k]).sum();
                for k in 0..c {
                    m[i * c + k] -= d * m[j * c + k];
                }
            }
            let norm = (0..c).map(|k| m[i * c + k].powi(2)).sum::<f64>().sqrt();
            ok &= norm > 1e-6;
            for k in 0..c {
                m[i * c + k] /= norm;
            }
        }
        if ok {
            return m;
        }
    }
}

/// `A = P L U` with partial pivoting: returns `perm` (`(P v)_i = v_{perm[i]}`) and the packed
/// factors (L strictly below the diagonal, unit diagonal implied; U on and above it).
pub fn lu_decompose(mut a: Vec<f64>, c: usize) -> (Vec<u32>, Vec<f64>) {
    // Row swaps give R·A = L·U with R a permutation; then A = Rᵀ L U, so P = Rᵀ.
    let mut rows: Vec<usize> = (0..c).collect();
    for col in 0..c {
        let p = (col..c).max_by(|&i, &j| a[i * c + col].abs().total_cmp(&a[j * c + col].abs())).unwrap_or(col);
        if p != col {
            for k in 0..c {
                a.swap(col * c + k, p * c + k);
            }
            rows.swap(col, p);
        }
        let piv = a[col * c + col];
        for r in col + 1..c {
            let f = a[r * c + col] / piv;
            a[r * c + col] = f;
            for k in col + 1..c {
                a[r * c + k] -= f * a[col * c + k];
            }
        }
    }
    // Row i of R·A is row rows[i] of A, so A's row rows[i] is (LU)'s row i: P[rows[i]][i] = 1.
    let mut perm = vec![0u32; c];
    for (i, &r) in rows.iter().enumerate() {
        perm[r] = i as u32;
    }
    (perm, a)
}

/// The 1×1 convolution's matrix `W = P L (U + diag(sign ⊙ exp(log_s)))` from its packed
/// parameters (`lu`, C×C as stored), in f64.
pub fn inv1x1_matrix(lu: &[f64], perm: &[u32], sign: &[i8], c: usize) -> Vec<f64> {
    let mut prod = vec![0.0; c * c];
    for i in 0..c {
        for j in 0..c {
            let mut v = 0.0;
            for k in 0..=i.min(j) {
                let l = if k == i { 1.0 } else { lu[i * c + k] };
                let u = if k == j { sign[j] as f64 * lu[j * c + j].exp() } else { lu[k * c + j] };
                v += l * u;
            }
            prod[i * c + j] = v;
        }
    }
    let mut w = vec![0.0; c * c];
    for i in 0..c {
        let src = perm[i] as usize;
        w[i * c..(i + 1) * c].copy_from_slice(&prod[src * c..(src + 1) * c]);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flow, FlowConfig};
    use rand::SeedableRng;

    fn arch(c: usize, h: usize, w: usize, scales: usize, permute: ChannelPermute) -> ConvArch {
        ConvArch { channels: c, height: h, width: w, aux_channels: 1, scales, hidden: 6, depth: 2, permute }
    }

    #[test]
    fn default_scales_follow_conv_md() {
        assert_eq!(ConvArch::default_scales(8, 8), 2);
        assert_eq!(ConvArch::default_scales(28, 28), 3);
        assert_eq!(ConvArch::default_scales(32, 32), 3);
        assert_eq!(ConvArch::default_scales(7, 7), 1);
        assert_eq!(ConvArch::default_scales(4, 4), 1);
    }

    #[test]
    fn squeeze_is_glows_order_and_a_permutation() {
        let r = Region { off: 0, c: 3, h: 4, w: 6 };
        let mut seen = vec![false; r.len()];
        for e in 0..r.len() {
            seen[r.squeeze_source(e)] = true;
        }
        assert!(seen.iter().all(|&s| s));
        // out[(2·di + dj)·C + c, i, j] = in[c, 2i + di, 2j + dj]: channel (2·1 + 0)·3 + 2 = 8
        // at (1, 2) reads in[2, 3, 4].
        let s = r.squeezed();
        assert_eq!(r.squeeze_source((8 * s.h + 1) * s.w + 2), (2 * 4 + 3) * 6 + 4);
    }

    #[test]
    fn lu_factors_rebuild_the_rotation() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for c in [1, 2, 5, 8] {
            let w = random_rotation(c, &mut rng);
            let (perm, f) = lu_decompose(w.clone(), c);
            let sign: Vec<i8> = (0..c).map(|i| if f[i * c + i] < 0.0 { -1 } else { 1 }).collect();
            let packed: Vec<f64> = (0..c * c).map(|e| if e / c == e % c { f[e].abs().ln() } else { f[e] }).collect();
            let back = inv1x1_matrix(&packed, &perm, &sign, c);
            let err = w.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-12, "C = {c}: W rebuilt from its LU factors is off by {err}");
            let logdet: f64 = (0..c).map(|i| packed[i * c + i]).sum();
            assert!(logdet.abs() < 1e-9, "a rotation has |det| 1, got log {logdet}");
        }
    }

    #[test]
    fn layout_counts_and_regions_match_the_architecture() {
        for permute in [ChannelPermute::Reverse, ChannelPermute::Conv1x1] {
            for (c, h, w, k) in [(1, 4, 4, 1), (1, 4, 4, 2), (3, 8, 4, 3), (2, 2, 2, 2)] {
                let a = arch(c, h, w, k, permute);
                let cfg =
                    FlowConfig { d: c * h * w, b: 2, blocks: 2, depth: 2, hidden: 8, seed: 1, conv: Some(a.clone()) };
                let f = Flow::new(cfg.clone()).unwrap();
                assert_eq!(cfg.padded_params(), Some(f.params.len() as u64), "{a:?}: arithmetic parameter count");
                assert!(f.tensors.iter().all(|t| t.offset % 4 == 0));
                let (off, width) = cfg.head();
                assert_eq!(off + width, cfg.q());
                assert_eq!(width, a.last_scale().len() + 2);
                assert_eq!(
                    a.last_scale().off + a.last_scale().len(),
                    cfg.q() - 2,
                    "the last scale ends where flat ε begins"
                );
                let couplings = f
                    .layers
                    .iter()
                    .filter(|l| matches!(l, Layer::Checkerboard { .. } | Layer::ChannelCoupling { .. }))
                    .count();
                assert_eq!(couplings, 6 * (k - 1) + 4);
                for l in &f.layers {
                    if let Layer::Checkerboard { net, .. } | Layer::ChannelCoupling { net, .. } = l {
                        let out = net.convs.last().unwrap();
                        assert!(
                            f.params[out.w..out.w + out.c_out * out.c_in * 9].iter().all(|&v| v == 0.0),
                            "zero last conv"
                        );
                        let first = net.convs[0];
                        let bound = (6.0 / (first.c_in * 9) as f64).sqrt() as f32;
                        let wts = &f.params[first.w..first.w + first.c_out * first.c_in * 9];
                        assert!(wts.iter().all(|v| v.abs() <= bound) && wts.iter().any(|&v| v != 0.0), "He-uniform");
                    }
                }
            }
        }
    }

    #[test]
    fn impossible_squeezes_and_bounds_name_the_flag() {
        let ok = FlowConfig {
            d: 49,
            b: 0,
            blocks: 2,
            depth: 2,
            hidden: 8,
            seed: 0,
            conv: Some(arch(1, 7, 7, 1, ChannelPermute::Reverse)),
        };
        Flow::new(ok.clone()).unwrap();
        for (conv, want) in [
            (ConvArch { scales: 2, ..arch(1, 7, 7, 1, ChannelPermute::Reverse) }, "--scales 2"),
            (ConvArch { scales: 0, ..arch(1, 7, 7, 1, ChannelPermute::Reverse) }, "--scales"),
            (ConvArch { hidden: 0, ..arch(1, 7, 7, 1, ChannelPermute::Reverse) }, "--hidden"),
            (ConvArch { aux_channels: 100_000, ..arch(1, 7, 7, 1, ChannelPermute::Reverse) }, "--aux-channels"),
            (ConvArch { channels: 2, ..arch(1, 7, 7, 1, ChannelPermute::Reverse) }, "D = 98"),
        ] {
            let e = format!("{:#}", Flow::new(FlowConfig { conv: Some(conv), ..ok.clone() }).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
        let huge = FlowConfig {
            conv: Some(ConvArch { hidden: 4096, depth: 16, ..arch(1, 7, 7, 1, ChannelPermute::Reverse) }),
            ..ok
        };
        assert!(format!("{:#}", Flow::new(huge).unwrap_err()).contains("parameters"));
    }
}
