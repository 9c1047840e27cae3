//! The MODEL.md architecture: configuration, layer list, flat parameter layout and
//! initialisation. The model knows layers and parameter offsets, never GPU buffers.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub mod conv;
pub use conv::{ChannelPermute, Conv2d, ConvArch, ConvNet, Norm, Region, Split};

/// `(D, B, L, depth, H, seed)`: everything that fixes a flow's shape and its initialisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowConfig {
    /// Data dimensions D.
    pub d: usize,
    /// Auxiliary dimensions B.
    pub b: usize,
    /// Blocks L (2L couplings).
    pub blocks: usize,
    /// Hidden layers per conditioner.
    pub depth: usize,
    /// Hidden width H.
    pub hidden: usize,
    pub seed: u64,
    /// A convolutional multiscale flow (CONV.md) over C×H×W images; then `blocks`, `depth`
    /// and `hidden` describe its dense head, and `d` = C·H·W. Absent for a dense flow (and
    /// from its JSON, so dense checkpoints and run folders read as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<ConvArch>,
}

impl FlowConfig {
    /// FLOPs of one flow evaluation's conditioner GEMMs (and a conv flow's convolutions), per
    /// row: 2·fan_in·fan_out per linear of every coupling, 2·c_in·k²·c_out per pixel of every
    /// convolution (what a forward costs, the rest being elementwise).
    pub fn conditioner_flops(&self) -> f64 {
        let (q, h, hid) = (self.head().1, self.h(), self.hidden);
        let mut fan_in = h;
        let mut per = 0.0;
        for k in 0..=self.depth {
            let fan_out = if k == self.depth { 2 * (q - h) } else { hid };
            per += 2.0 * (fan_in * fan_out) as f64;
            fan_in = fan_out;
        }
        per * 2.0 * self.blocks as f64 + self.conv.as_ref().map_or(0.0, ConvArch::conv_flops)
    }

    /// Flow width Q = D + B, plus a conv flow's ε channels (K_ε·H·W): a sample's row.
    pub fn q(&self) -> usize {
        self.d + self.aux()
    }
    /// Every auxiliary value of a row, drawn N(0, 1) after x: ε channels, then flat ε.
    pub fn aux(&self) -> usize {
        self.b + self.conv.as_ref().map_or(0, |c| c.aux_channels * c.height * c.width)
    }
    /// The auxiliary dimensions as titles name them: `B=2`, and a conv flow's ε channels
    /// (`B=0 K_eps=1`).
    pub fn aux_label(&self) -> String {
        match self.conv.as_ref().map_or(0, |c| c.aux_channels) {
            0 => format!("B={}", self.b),
            k => format!("B={} K_eps={k}", self.b),
        }
    }
    /// No auxiliary dimensions (no flat ε, no ε channels): log p(x) is exact, S unused.
    pub fn exact(&self) -> bool {
        self.aux() == 0
    }
    /// The columns the dense layers act on, `(offset, width)`: the whole row for a dense flow,
    /// the head's `concat(flatten(h_K), ε)` (the row's tail) for a conv flow.
    pub fn head(&self) -> (usize, usize) {
        match &self.conv {
            None => (0, self.q()),
            Some(c) => {
                let width = c.last_scale().len() + self.b;
                (self.q() - width, width)
            }
        }
    }
    /// h = ⌊Q/2⌋, the coupling's conditioning half.
    /// h = ⌊Q/2⌋ of the dense layers' width (the head's, in a conv flow).
    pub fn h(&self) -> usize {
        self.head().1 / 2
    }
    /// Checks the shape against `LIMITS` (before anything is allocated: a crafted checkpoint
    /// or flag must not be able to ask for 2^62 parameters).
    pub fn validate(&self) -> Result<()> {
        let l = &LIMITS;
        // A conv flow's image first: the row width and the head are computed from it.
        if let Some(c) = &self.conv {
            c.validate(self.d)?;
        }
        let (blocks_flag, hidden_flag) =
            if self.conv.is_some() { ("--head-blocks", "--head-hidden") } else { ("--blocks", "--hidden") };
        if self.d > l.max_d {
            bail!("data dimensions D = {} exceed mflow's bound of {}", self.d, l.max_d);
        }
        if self.b > l.max_b {
            bail!("auxiliary dimensions B = {} exceed mflow's bound of {} (--aux)", self.b, l.max_b);
        }
        if self.head().1 < 2 {
            bail!(
                "flow width Q = {} = {} must be at least 2 (a coupling needs two halves)",
                if self.conv.is_some() { "the last scale's values + B, the dense head's width," } else { "D + B" },
                self.head().1
            );
        }
        if !(1..=l.max_blocks).contains(&self.blocks) {
            bail!("blocks L = {} must be in 1..={} ({blocks_flag})", self.blocks, l.max_blocks);
        }
        if self.depth > l.max_depth {
            bail!("conditioner depth {} exceeds mflow's bound of {} (--depth)", self.depth, l.max_depth);
        }
        if !(1..=l.max_hidden).contains(&self.hidden) {
            bail!("hidden width H = {} must be in 1..={} ({hidden_flag})", self.hidden, l.max_hidden);
        }
        match self.padded_params() {
            Some(p) if p <= l.max_params => Ok(()),
            p => bail!(
                "the flow would have {} parameters, more than mflow's bound of {} (lower --hidden, --blocks or --aux)",
                p.map_or("over 2^64".to_string(), |p| p.to_string()),
                l.max_params
            ),
        }
    }

    /// The length of `Flow::params` for this shape (every tensor padded to a multiple of 4),
    /// computed without building the flow; `None` on overflow.
    pub fn padded_params(&self) -> Option<u64> {
        let conv = match &self.conv {
            Some(c) => c.padded_params()?,
            None => 0,
        };
        let (q, h) = (self.head().1 as u64, self.h() as u64);
        let pad = |n: u64| n.checked_next_multiple_of(4);
        let actnorm = pad(q)?.checked_mul(2)?;
        let mut coupling = 0u64;
        let mut fan_in = h;
        for k in 0..=self.depth {
            let fan_out = if k == self.depth { 2 * (q - h) } else { self.hidden as u64 };
            coupling = coupling.checked_add(pad(fan_in.checked_mul(fan_out)?)?)?.checked_add(pad(fan_out)?)?;
            fan_in = fan_out;
        }
        let blocks = self.blocks as u64;
        actnorm.checked_mul(blocks)?.checked_add(coupling.checked_mul(2 * blocks)?)?.checked_add(conv)
    }
}

/// mflow's own bounds on a flow's shape, far above the thesis's models (Q ≤ 3088, H = 1024,
/// L = 4) and far below what would overflow an index. What a given adapter can hold is
/// checked separately, against its limits (`gpu_flow::Footprint`).
pub struct Limits {
    pub max_d: usize,
    pub max_b: usize,
    pub max_blocks: usize,
    pub max_depth: usize,
    pub max_hidden: usize,
    /// Parameters per model: 2^28 f32s is 1 GiB, the largest binding mflow asks for.
    pub max_params: u64,
}

pub const LIMITS: Limits =
    Limits { max_d: 1 << 16, max_b: 4096, max_blocks: 64, max_depth: 16, max_hidden: 16384, max_params: 1 << 28 };

/// A linear layer of a conditioner: `out = in · W + b`, W stored `[in][out]` at `w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    pub w: usize,
    pub b: usize,
    pub fan_in: usize,
    pub fan_out: usize,
}

/// One layer in the data → latent direction. The dense kinds (`ActNorm`, `Coupling`,
/// `Reverse`, `Shuffle`) act on `FlowConfig::head`'s columns (the whole row of a dense flow);
/// the conv kinds on their `Region` (see `conv`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layer {
    ActNorm {
        index: usize,
        beta: usize,
        a: usize,
    },
    Coupling {
        index: usize,
        linears: Vec<Linear>,
    },
    Reverse,
    /// `u_i = y_{perm[i]}`.
    Shuffle {
        index: usize,
        perm: Vec<u32>,
    },
    /// Per-channel ActNorm (CONV.md): one (β_c, a_c) per channel, shared over (i, j).
    ChannelNorm {
        index: usize,
        norm: Norm,
        at: Region,
    },
    /// Checkerboard coupling: the mask is 1 where (i + j) mod 2 = parity; the conditioner
    /// reads the masked input and outputs (r, m), C channels each.
    Checkerboard {
        index: usize,
        parity: usize,
        at: Region,
        net: ConvNet,
    },
    /// Channel coupling (half 0): the first ⌊C/2⌋ channels condition, the rest transform.
    ChannelCoupling {
        index: usize,
        at: Region,
        net: ConvNet,
    },
    /// Channel c ↦ C − 1 − c.
    ChannelReverse {
        at: Region,
    },
    /// Glow's invertible 1×1 convolution `u = W y` per pixel; `lu` packs L, U and log_s
    /// (see `conv::initialise`); `perm` and `sign` are fixed.
    Inv1x1 {
        index: usize,
        at: Region,
        lu: usize,
        perm: Vec<u32>,
        sign: Vec<i8>,
    },
    /// `(C, H, W) → (4C, H/2, W/2)` in Glow's order (`Region::squeeze_source`).
    Squeeze {
        at: Region,
    },
    /// The first half of `at`'s channels leave the flow; the data stay where they are.
    FactorOut {
        at: Region,
    },
}

impl Layer {
    /// A conv coupling's split, its region and its conditioner.
    pub fn conv_coupling(&self) -> Option<(Split, &Region, &ConvNet)> {
        match self {
            Layer::Checkerboard { parity, at, net, .. } => Some((Split::Checkerboard(*parity), at, net)),
            Layer::ChannelCoupling { at, net, .. } => Some((Split::Channels, at, net)),
            _ => None,
        }
    }

    /// The gather indices of a permutation layer (Reverse or Shuffle).
    pub fn gather_indices(&self, q: usize) -> Option<Vec<u32>> {
        match self {
            Layer::Reverse => Some((0..q as u32).rev().collect()),
            Layer::Shuffle { perm, .. } => Some(perm.clone()),
            _ => None,
        }
    }
}

/// The inverse permutation of a gather: if u_i = y_{p_i} then y_j = u_{inv_j}.
pub fn invert_perm(p: &[u32]) -> Vec<u32> {
    let mut inv = vec![0u32; p.len()];
    for (i, &pi) in p.iter().enumerate() {
        inv[pi as usize] = i as u32;
    }
    inv
}

/// A named slice of the flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A marginalizing flow: layers, parameter layout and the parameters themselves.
#[derive(Clone, Debug)]
pub struct Flow {
    pub config: FlowConfig,
    pub layers: Vec<Layer>,
    pub tensors: Vec<Tensor>,
    pub params: Vec<f32>,
    /// Whether the ActNorms have had their data-dependent initialisation.
    pub actnorm_initialized: bool,
}

struct Builder {
    tensors: Vec<Tensor>,
    len: usize,
}

impl Builder {
    fn add(&mut self, name: String, shape: Vec<usize>) -> usize {
        // Every tensor starts on a 16-byte boundary so that GEMMs over it can take the vec4
        // paths; the padding holds zeros, gets zero gradients and never moves.
        let offset = self.len.next_multiple_of(4);
        self.len = offset + shape.iter().product::<usize>();
        self.tensors.push(Tensor { name, shape, offset });
        offset
    }
}

/// MODEL.md's R-block flow over the head's columns (`FlowConfig::head`), its tensors named
/// with `prefix`; draws the shuffles from `rng` in layer order.
fn dense_layers(config: &FlowConfig, prefix: &str, b: &mut Builder, layers: &mut Vec<Layer>, rng: &mut impl Rng) {
    let q = config.head().1;
    let h = config.h();
    let (mut n_an, mut n_cp, mut n_sh) = (0, 0, 0);
    let mut actnorm = |b: &mut Builder, layers: &mut Vec<Layer>| {
        let beta = b.add(format!("{prefix}an{n_an}.beta"), vec![q]);
        let a = b.add(format!("{prefix}an{n_an}.a"), vec![q]);
        layers.push(Layer::ActNorm { index: n_an, beta, a });
        n_an += 1;
    };
    let mut coupling = |b: &mut Builder, layers: &mut Vec<Layer>| {
        let mut linears = Vec::new();
        let mut fan_in = h;
        for k in 0..=config.depth {
            let fan_out = if k == config.depth { 2 * (q - h) } else { config.hidden };
            let w = b.add(format!("{prefix}cp{n_cp}.W{k}"), vec![fan_in, fan_out]);
            let bias = b.add(format!("{prefix}cp{n_cp}.b{k}"), vec![fan_out]);
            linears.push(Linear { w, b: bias, fan_in, fan_out });
            fan_in = fan_out;
        }
        layers.push(Layer::Coupling { index: n_cp, linears });
        n_cp += 1;
    };
    actnorm(b, layers);
    for block in 0..config.blocks {
        coupling(b, layers);
        layers.push(Layer::Reverse);
        coupling(b, layers);
        if block + 1 < config.blocks {
            let mut perm: Vec<u32> = (0..q as u32).collect();
            // Fisher–Yates, drawn in layer order so the seed fixes every permutation.
            for i in (1..q).rev() {
                let j = rng.random_range(0..=i);
                perm.swap(i, j);
            }
            layers.push(Layer::Shuffle { index: n_sh, perm });
            n_sh += 1;
            actnorm(b, layers);
        }
    }
}

impl Flow {
    /// Builds the flow and initialises it as MODEL.md says: He-uniform hidden weights, zero
    /// biases and output layers (each coupling starts as the identity), identity ActNorms
    /// awaiting data-dependent initialisation, shuffles drawn from the seed.
    pub fn new(config: FlowConfig) -> Result<Self> {
        config.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
        let mut b = Builder { tensors: Vec::new(), len: 0 };
        let mut layers = Vec::new();
        if let Some(arch) = &config.conv {
            conv::build(arch, &mut b, &mut layers);
        }
        let prefix = if config.conv.is_some() { "head." } else { "" };
        let conv_layers = layers.len();
        dense_layers(&config, prefix, &mut b, &mut layers, &mut rng);
        let mut params = vec![0f32; b.len.next_multiple_of(4)];
        conv::initialise(&mut layers[..conv_layers], &mut params, &mut rng);
        for layer in &layers {
            if let Layer::Coupling { linears, .. } = layer {
                for lin in &linears[..linears.len() - 1] {
                    let bound = (6.0 / lin.fan_in as f64).sqrt();
                    for p in &mut params[lin.w..lin.w + lin.fan_in * lin.fan_out] {
                        *p = rng.random_range(-bound..bound) as f32;
                    }
                }
            }
        }
        Ok(Self { config, layers, tensors: b.tensors, params, actnorm_initialized: false })
    }

    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The number of parameters (without the alignment padding of the flat vector).
    pub fn num_params(&self) -> usize {
        self.tensors.iter().map(Tensor::len).sum()
    }

    /// The widest conditioner activation per row (for sizing workspaces): a dense layer's,
    /// or a conv conditioner's channels × pixels.
    pub fn max_linear_width(&self) -> usize {
        let dense = self.config.hidden.max(2 * (self.config.head().1 - self.config.h()));
        let conv = self
            .config
            .conv
            .as_ref()
            .map_or(0, |a| a.conditioners().iter().map(|&(_, _, co, px)| a.hidden.max(co) * px).max().unwrap_or(0));
        dense.max(conv)
    }

    /// Parameters as f64 for the reference.
    pub fn params_f64(&self) -> Vec<f64> {
        self.params.iter().map(|&p| p as f64).collect()
    }

    /// Sets every parameter uniformly in ±scale, weights in ±scale/√fan_in so activations
    /// keep their size (tests: a non-identity flow whose log-det is far from zero).
    pub fn randomize(&mut self, seed: u64, scale: f64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for t in &self.tensors {
            let s = match t.shape.len() {
                2 => scale / (t.shape[0] as f64).sqrt(),
                // Conv weights (c_out, c_in, k, k): fan-in c_in·k².
                4 => scale / (t.shape[1..].iter().product::<usize>() as f64).sqrt(),
                _ => scale,
            };
            for p in &mut self.params[t.offset..t.offset + t.len()] {
                *p = (rng.random_range(-1.0..1.0) * s) as f32;
            }
        }
        self.actnorm_initialized = true;
    }
}

impl Flow {
    /// Overwrites the tensor `name` (row-major, its declared shape).
    pub fn set_tensor(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let Some(t) = self.tensor(name).cloned() else { bail!("the flow has no tensor {name:?}") };
        if values.len() != t.len() {
            bail!("tensor {name:?} has {} values, got {}", t.len(), values.len());
        }
        self.params[t.offset..t.offset + t.len()].copy_from_slice(values);
        Ok(())
    }

    /// Replaces the permutation of Shuffle `index`.
    pub fn set_perm(&mut self, index: usize, perm: &[u32]) -> Result<()> {
        let q = self.config.head().1;
        let mut seen = vec![false; q];
        if perm.len() != q || perm.iter().any(|&p| (p as usize) >= q || std::mem::replace(&mut seen[p as usize], true))
        {
            bail!("perm{index} is not a permutation of 0..{q}: {perm:?}");
        }
        for layer in &mut self.layers {
            if let Layer::Shuffle { index: i, perm: p } = layer {
                if *i == index {
                    *p = perm.to_vec();
                    return Ok(());
                }
            }
        }
        bail!("the flow has no shuffle {index}")
    }

    /// Replaces the fixed permutation and signs of 1×1 convolution `index` (a checkpoint's).
    pub fn set_inv1x1(&mut self, index: usize, perm: &[u32], sign: &[f32]) -> Result<()> {
        for layer in &mut self.layers {
            if let Layer::Inv1x1 { index: i, at, perm: p, sign: s, .. } = layer {
                if *i == index {
                    let c = at.c;
                    let mut seen = vec![false; c];
                    if perm.len() != c
                        || perm.iter().any(|&v| (v as usize) >= c || std::mem::replace(&mut seen[v as usize], true))
                    {
                        bail!("inv{index}.perm is not a permutation of 0..{c}");
                    }
                    if sign.len() != c || sign.iter().any(|&v| v != 1.0 && v != -1.0) {
                        bail!("inv{index}.sign must hold {c} values of +1 or −1");
                    }
                    *p = perm.to_vec();
                    *s = sign.iter().map(|&v| v as i8).collect();
                    return Ok(());
                }
            }
        }
        bail!("the flow has no 1×1 convolution {index}")
    }

    /// The layer sequence as `(kind, index)` names, as MODEL.md's fixtures write it.
    pub fn arch(&self) -> Vec<(&'static str, Option<usize>)> {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::ActNorm { index, .. } => ("actnorm", Some(*index)),
                Layer::Coupling { index, .. } => ("coupling", Some(*index)),
                Layer::Reverse => ("reverse", None),
                Layer::Shuffle { index, .. } => ("shuffle", Some(*index)),
                Layer::ChannelNorm { index, .. } => ("channel_actnorm", Some(*index)),
                Layer::Checkerboard { index, .. } => ("checkerboard", Some(*index)),
                Layer::ChannelCoupling { index, .. } => ("channel_coupling", Some(*index)),
                Layer::ChannelReverse { .. } => ("channel_reverse", None),
                Layer::Inv1x1 { index, .. } => ("conv1x1", Some(*index)),
                Layer::Squeeze { .. } => ("squeeze", None),
                Layer::FactorOut { .. } => ("factor_out", None),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crafted_shapes_are_refused_before_allocating() {
        let ok = FlowConfig { d: 784, b: 4, blocks: 4, depth: 2, hidden: 1024, seed: 0, conv: None };
        assert_eq!(ok.padded_params(), Some(Flow::new(ok.clone()).unwrap().params.len() as u64));
        for (cfg, what) in [
            (FlowConfig { d: 1 << 62, ..ok.clone() }, "D = "),
            (FlowConfig { hidden: 1_000_000_000_000, ..ok.clone() }, "--hidden"),
            (FlowConfig { blocks: 1_000_000_000, ..ok.clone() }, "--blocks"),
            (FlowConfig { depth: 100_000, ..ok.clone() }, "--depth"),
            (FlowConfig { b: 100_000, ..ok.clone() }, "--aux"),
            (FlowConfig { d: 60_000, b: 0, hidden: 16384, ..ok.clone() }, "parameters"),
            (FlowConfig { d: 1, b: 0, ..ok.clone() }, "at least 2"),
        ] {
            let e = format!("{:#}", Flow::new(cfg).unwrap_err());
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn layout_is_aligned_and_initialised_as_model_md_says() {
        for (d, b) in [(2, 0), (3, 0), (5, 2)] {
            let f = Flow::new(FlowConfig { d, b, blocks: 3, depth: 2, hidden: 6, seed: 1, conv: None }).unwrap();
            assert!(f.tensors.iter().all(|t| t.offset % 4 == 0), "vec4-aligned tensors");
            let covered: usize = f.tensors.iter().map(Tensor::len).sum();
            assert_eq!(f.num_params(), covered);
            for layer in &f.layers {
                if let Layer::Coupling { linears, .. } = layer {
                    let out = linears.last().unwrap();
                    assert!(
                        f.params[out.w..out.w + out.fan_in * out.fan_out].iter().all(|&w| w == 0.0),
                        "zero output layer"
                    );
                    let hid = &linears[0];
                    let bound = (6.0 / hid.fan_in as f64).sqrt() as f32;
                    let w = &f.params[hid.w..hid.w + hid.fan_in * hid.fan_out];
                    assert!(w.iter().all(|&x| x.abs() <= bound) && w.iter().any(|&x| x != 0.0), "He-uniform hidden");
                }
            }
            assert_eq!(f.arch().len(), 1 + 5 * 2 + 3, "ActNorm, (L−1) R-blocks, last block");
            assert_eq!(f.config.padded_params(), Some(f.params.len() as u64), "arithmetic parameter count");
        }
    }
}
