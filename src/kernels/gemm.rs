//! Wrapper of shaders/gemm.wgsl: C = A·B (+ bias) (→ ReLU) over strided views.
//! Twin: src/reference/gemm.rs.

use crate::gpu::{uniform, Dispatch, Gpu};

/// A strided matrix view into a flat buffer: element (i, j) of model z at
/// `off + z·ms + i·rs + j·cs` (z = 0 when one model runs; `ms` = 0 for a shared operand).
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub buf: &'a wgpu::Buffer,
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
    pub ms: usize,
}

impl<'a> View<'a> {
    /// Row-major with `cols` columns starting at element `off`.
    pub fn rows(buf: &'a wgpu::Buffer, off: usize, cols: usize) -> Self {
        Self { buf, off, rs: cols, cs: 1, ms: 0 }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(buf: &'a wgpu::Buffer, off: usize, cols: usize) -> Self {
        Self { buf, off, rs: 1, cs: cols, ms: 0 }
    }
    /// The same view with model z's copy `ms` elements after model z − 1's.
    pub fn per_model(self, ms: usize) -> Self {
        Self { ms, ..self }
    }
}

/// An epilogue operand (bias or ReLU mask): buffer, offset, model stride.
pub type Aux<'a> = (&'a wgpu::Buffer, usize, usize);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmUniform {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub flags: u32,
    pub a_off: u32,
    pub a_rs: u32,
    pub a_cs: u32,
    pub b_off: u32,
    pub b_rs: u32,
    pub b_cs: u32,
    pub c_off: u32,
    pub c_rs: u32,
    pub aux_off: u32,
    pub a_ms: u32,
    pub b_ms: u32,
    pub c_ms: u32,
    pub aux_ms: u32,
    pub cs_off: u32,
    pub norm_beta: u32,
    pub norm_a: u32,
}

pub const BIAS: u32 = 1;
pub const RELU: u32 = 2;
pub const ACCUM: u32 = 4;
pub const MASK: u32 = 8;
pub const COLSUM: u32 = 16;
pub const ROWBIAS: u32 = 32;
pub const NORM: u32 = 64;

/// Which family of gemm.wgsl entry points runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// gemm_reg: register-blocked, any strides, no workgroup memory.
    Reg,
    /// gemm_tiled: workgroup-memory tiling, any strides: for real GPUs.
    Tiled,
    /// gemm_tiled_wide: 128×128 tiles, 8×8 outputs per thread: large products on GPUs.
    TiledWide,
    /// gemm_nn4 / gemm_nt4 / gemm_tn4 where the views allow vec4 loads, else gemm_thin for
    /// thin products and gemm_reg for the rest: the fast paths on CPU adapters (lavapipe),
    /// where tiling only adds copies.
    Vec4,
    /// Vec4 with a quarter of the work per thread (gemm_nn4_s / gemm_nt4_s / gemm_tn4_s):
    /// four times the workgroups, for small products (a batch of 64 rows).
    Vec4Small,
}

/// Every family, each a candidate of the tuner (all tested against the f64 reference).
pub const VARIANTS: [Variant; 5] =
    [Variant::Reg, Variant::Tiled, Variant::TiledWide, Variant::Vec4, Variant::Vec4Small];

impl Variant {
    /// Whether the family tiles through workgroup memory (the GPU-shaped families).
    pub fn tiles_in_workgroup_memory(self) -> bool {
        matches!(self, Variant::Tiled | Variant::TiledWide)
    }
}

/// The kind of product, by its operands' layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// C = X·W: A and B row-major.
    Nn,
    /// C = dY·Wᵀ: B transposed.
    Nt,
    /// C = Xᵀ·dY: A transposed.
    Tn,
}

/// A GEMM's size class: tiny (under `SMALL_MACS` multiply-adds: a batch of 64 through an
/// H = 128 layer, too few outputs to fill a machine with large tiles), small (the synthetic
/// models' layers at larger batches) or large (at least `LARGE_MACS`: an MNIST-sized layer,
/// where bigger tiles pay on GPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Size {
    Tiny,
    Small,
    Large,
}

pub const SMALL_MACS: usize = 1 << 21;
pub const LARGE_MACS: usize = 1 << 25;

impl Size {
    pub fn of(m: usize, k: usize, n: usize) -> Self {
        match m.saturating_mul(k).saturating_mul(n) {
            x if x >= LARGE_MACS => Size::Large,
            x if x >= SMALL_MACS => Size::Small,
            _ => Size::Tiny,
        }
    }
}

/// A GEMM's shape class for the tuner: its kind and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Class {
    pub op: Op,
    pub size: Size,
}

/// The most rows (m) one GEMM takes: 65535 workgroups of the smallest row tile (32). Batches,
/// evaluation passes and sample counts are bounded by it before anything is built.
pub const MAX_ROWS: usize = 65535 * 32;

/// Every class, each with the shape (m, k, n) the tuner times it on.
pub const CLASSES: [(Class, (usize, usize, usize)); 9] = [
    (Class { op: Op::Nn, size: Size::Tiny }, (64, 128, 128)),
    (Class { op: Op::Nt, size: Size::Tiny }, (64, 128, 128)),
    (Class { op: Op::Tn, size: Size::Tiny }, (128, 64, 128)),
    (Class { op: Op::Nn, size: Size::Small }, (256, 128, 128)),
    (Class { op: Op::Nt, size: Size::Small }, (256, 128, 128)),
    (Class { op: Op::Tn, size: Size::Small }, (128, 256, 128)),
    (Class { op: Op::Nn, size: Size::Large }, (256, 512, 512)),
    (Class { op: Op::Nt, size: Size::Large }, (256, 512, 512)),
    (Class { op: Op::Tn, size: Size::Large }, (512, 256, 512)),
];

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.op, format!("{:?}", self.size).to_lowercase())
    }
}

/// The family each shape class of product runs: the tuner's choice on an adapter, or one
/// family for all (`From<Variant>`); and the layout of the fused couplings' vec4 linears,
/// chosen by the same measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmChoice {
    /// Indexed like `CLASSES`.
    pub by_class: [Variant; CLASSES.len()],
    /// fused.wgsl's ROWS8: 8 rows per invocation in the forward's vec4 linears, not 4.
    pub fused_rows8: bool,
    /// conv.wgsl's tiles for wide layers.
    pub conv: crate::kernels::conv::ConvTiles,
}

impl From<Variant> for GemmChoice {
    fn from(v: Variant) -> Self {
        Self { by_class: [v; CLASSES.len()], fused_rows8: false, conv: Default::default() }
    }
}

impl GemmChoice {
    /// The built-in choice (`--no-tune`): `Variant::for_adapter`, 8 rows per invocation on
    /// CPU adapters, which prefer fewer, fuller invocations, and conv.wgsl's first tiles.
    pub fn default_for(gpu: &Gpu) -> Self {
        Self { fused_rows8: gpu.is_cpu(), ..Self::from(Variant::for_adapter(gpu)) }
    }

    pub fn get(&self, class: Class) -> Variant {
        let i = CLASSES.iter().position(|(c, _)| *c == class).expect("every class is listed");
        self.by_class[i]
    }

    /// The family for `g`, from its class.
    pub fn for_gemm(&self, g: &Gemm) -> Variant {
        self.get(g.class())
    }

    /// The family for an `op` product of m×k by k×n.
    pub fn for_shape(&self, op: Op, m: usize, k: usize, n: usize) -> Variant {
        self.get(Class { op, size: Size::of(m, k, n) })
    }
}

impl Variant {
    pub fn for_adapter(gpu: &Gpu) -> Self {
        if gpu.is_cpu() {
            Variant::Vec4
        } else {
            Variant::Tiled
        }
    }
}

/// The entry point a GEMM actually runs, with its tile (rows, columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Reg,
    Thin,
    Tiled,
    TiledWide,
    Nn4,
    /// gemm_nn4_narrow: gemm_nn4's conditions with fewer than 16 columns.
    Nn4Narrow,
    Nt4,
    Tn4,
    Nn4S,
    Nt4S,
    Tn4S,
}

impl Entry {
    fn tile(self) -> (usize, usize) {
        match self {
            Entry::Reg => (32, 32),
            Entry::Thin => (1, 1), // one output per invocation; dispatched 1-D
            Entry::Tiled | Entry::Nt4 => (64, 64),
            Entry::TiledWide => (128, 128),
            Entry::Nn4 | Entry::Tn4 => (64, 128),
            Entry::Nn4Narrow => (512, 4), // dispatched (row tiles, column vec4s)
            Entry::Nn4S | Entry::Tn4S => (32, 64),
            Entry::Nt4S => (32, 32),
        }
    }
}

/// The GEMM's shape, epilogue and output. C must be row-major (`cs = 1`).
pub struct Gemm<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: View<'a>,
    pub b: View<'a>,
    /// Bias; added per column (per row with `bias_rows`).
    pub bias: Option<Aux<'a>>,
    /// The bias indexes rows: a 1×1 convolution's per output channel (C = W·X per sample).
    pub bias_rows: bool,
    /// ReLU mask (m×n, row stride `c.rs`): zeroes C where the mask is ≤ 0. Excludes `bias`.
    pub mask: Option<Aux<'a>>,
    pub c: View<'a>,
    pub relu: bool,
    pub accumulate: bool,
    /// An ActNorm after the bias, (x − β)/(exp(a) + γ), indexed like the bias: β's and a's
    /// offsets in the bias's buffer (a conditioner's hidden 1×1 convolution, with `relu`).
    pub norm: Option<(usize, usize)>,
    /// Also write (=) the column sums of B, Σ_k B(k, j), at this offset of C's buffer (each
    /// model's `c.ms` apart): a weight gradient's GEMM then gives its bias gradient too.
    pub colsum: Option<usize>,
    /// Independent models computed by one dispatch (grid z); each operand's `ms` apart.
    pub models: usize,
}

fn u32_of(x: usize, what: &str) -> u32 {
    u32::try_from(x).unwrap_or_else(|_| panic!("gemm {what} = {x} does not fit in u32"))
}

impl Gemm<'_> {
    /// The kind of product: A stepping along its rows with unit stride is Aᵀ (Xᵀ·dY), B
    /// likewise is Bᵀ (dY·Wᵀ).
    pub fn op(&self) -> Op {
        if self.a.rs == 1 && self.a.cs != 1 {
            Op::Tn
        } else if self.b.rs == 1 && self.b.cs != 1 {
            Op::Nt
        } else {
            Op::Nn
        }
    }

    /// The tuner's shape class of this product.
    pub fn class(&self) -> Class {
        Class { op: self.op(), size: Size::of(self.m, self.k, self.n) }
    }

    pub fn uniform(&self) -> GemmUniform {
        assert_eq!(self.c.cs, 1, "gemm writes row-major C");
        let mut flags = 0;
        if self.bias.is_some() {
            flags |= BIAS;
            if self.bias_rows {
                flags |= ROWBIAS;
            }
        }
        if self.relu {
            flags |= RELU;
        }
        if self.accumulate {
            flags |= ACCUM;
        }
        assert!(self.bias.is_none() || self.mask.is_none(), "bias and mask share the aux binding");
        if self.mask.is_some() {
            flags |= MASK;
        }
        if self.colsum.is_some() {
            flags |= COLSUM;
        }
        if self.norm.is_some() {
            assert!(self.bias.is_some(), "the ActNorm's parameters are read from the bias's buffer");
            flags |= NORM;
        }
        GemmUniform {
            m: u32_of(self.m, "m"),
            n: u32_of(self.n, "n"),
            k: u32_of(self.k, "k"),
            flags,
            a_off: u32_of(self.a.off, "a_off"),
            a_rs: u32_of(self.a.rs, "a_rs"),
            a_cs: u32_of(self.a.cs, "a_cs"),
            b_off: u32_of(self.b.off, "b_off"),
            b_rs: u32_of(self.b.rs, "b_rs"),
            b_cs: u32_of(self.b.cs, "b_cs"),
            c_off: u32_of(self.c.off, "c_off"),
            c_rs: u32_of(self.c.rs, "c_rs"),
            aux_off: self.bias.or(self.mask).map_or(0, |(_, o, _)| u32_of(o, "aux_off")),
            a_ms: u32_of(self.a.ms, "a_ms"),
            b_ms: u32_of(self.b.ms, "b_ms"),
            c_ms: u32_of(self.c.ms, "c_ms"),
            aux_ms: self.bias.or(self.mask).map_or(0, |(_, _, s)| u32_of(s, "aux_ms")),
            cs_off: self.colsum.map_or(0, |o| u32_of(o, "colsum offset")),
            norm_beta: self.norm.map_or(0, |(b, _)| u32_of(b, "norm β offset")),
            norm_a: self.norm.map_or(0, |(_, a)| u32_of(a, "norm a offset")),
        }
    }

    /// The entry point `variant` runs for these views: a vec4 path needs its operands
    /// contiguous along the vectorised dimension and everything else a multiple of 4
    /// (16-byte alignment of every vec4 it loads).
    pub fn entry(&self, variant: Variant) -> Entry {
        match self.vec4_entry(variant) {
            // Column sums ride on the loads of gemm_reg, gemm_thin, gemm_tiled and gemm_tn4.
            Entry::Nn4 | Entry::Nn4Narrow | Entry::Nt4 | Entry::Nn4S | Entry::Nt4S if self.colsum.is_some() => {
                Entry::Reg
            }
            e => e,
        }
    }

    fn vec4_entry(&self, variant: Variant) -> Entry {
        let (a, b) = (&self.a, &self.b);
        let m4 = |x: usize| x.is_multiple_of(4);
        let offs = m4(a.off) && m4(b.off) && m4(a.ms) && m4(b.ms);
        let small = variant == Variant::Vec4Small;
        match variant {
            Variant::Reg => Entry::Reg,
            Variant::Tiled => Entry::Tiled,
            Variant::TiledWide => Entry::TiledWide,
            Variant::Vec4 | Variant::Vec4Small => {
                // Any k: the last, partial vec4 of an A row stays inside its stride (a.rs ≡ 0
                // mod 4 and a.rs ≥ k) and is masked.
                if offs && a.cs == 1 && b.cs == 1 && m4(self.n) && m4(a.rs) && m4(b.rs) && a.rs >= self.k {
                    if self.n < 16 {
                        Entry::Nn4Narrow
                    } else if small {
                        Entry::Nn4S
                    } else {
                        Entry::Nn4
                    }
                } else if offs && a.cs == 1 && b.rs == 1 && m4(self.k) && m4(a.rs) && m4(b.cs) {
                    if small {
                        Entry::Nt4S
                    } else {
                        Entry::Nt4
                    }
                // Any m, likewise along A's columns (a.cs ≥ m).
                } else if offs && a.rs == 1 && b.cs == 1 && m4(self.n) && m4(a.cs) && m4(b.rs) && a.cs >= self.m {
                    if small {
                        Entry::Tn4S
                    } else {
                        Entry::Tn4
                    }
                // An output side below 16: gemm_reg's 32×32 blocks would be mostly clamped
                // waste. (A short K alone is not enough: many outputs want gemm_reg's fewer,
                // larger workgroups, each of which costs microseconds on lavapipe.)
                } else if self.m.min(self.n) < 16 {
                    Entry::Thin
                } else {
                    Entry::Reg
                }
            }
        }
    }

    /// `dispatch` with the family `choice` gives this kind of product.
    pub fn run(&self, gpu: &Gpu, choice: GemmChoice, label: &str) -> Dispatch {
        self.dispatch(gpu, choice.for_gemm(self), label)
    }

    /// Builds the dispatch (uniform and bind group created now, once).
    pub fn dispatch(&self, gpu: &Gpu, variant: Variant, label: &str) -> Dispatch {
        let u = uniform(gpu, label, &self.uniform());
        let kernels = gpu.pipelines();
        let entry = self.entry(variant);
        let kernel = match entry {
            Entry::Reg => &kernels.gemm_reg,
            Entry::Thin => &kernels.gemm_thin,
            Entry::Tiled => &kernels.gemm_tiled,
            Entry::TiledWide => &kernels.gemm_tiled_wide,
            Entry::Nn4 => &kernels.gemm_nn4,
            Entry::Nn4Narrow => &kernels.gemm_nn4_narrow,
            Entry::Nt4 => &kernels.gemm_nt4,
            Entry::Tn4 => &kernels.gemm_tn4,
            Entry::Nn4S => &kernels.gemm_nn4_s,
            Entry::Nt4S => &kernels.gemm_nt4_s,
            Entry::Tn4S => &kernels.gemm_tn4_s,
        };
        // The aux binding must exist even when unused; A stands in for it.
        let aux = self.bias.or(self.mask).map_or(self.a.buf, |(b, _, _)| b);
        let (tm, tn) = entry.tile();
        let groups = if self.m == 0 || self.n == 0 {
            [0, 0, 0]
        } else if entry == Entry::Thin {
            let [x, y, _] = crate::gpu::grid(self.m * self.n, 64);
            [x, y, u32_of(self.models, "models")]
        } else if entry == Entry::Nn4Narrow {
            [self.m.div_ceil(tm) as u32, self.n.div_ceil(tn) as u32, u32_of(self.models, "models")]
        } else {
            [self.n.div_ceil(tn) as u32, self.m.div_ceil(tm) as u32, u32_of(self.models, "models")]
        };
        assert!(
            groups.iter().all(|&g| g <= 65535),
            "gemm {}x{} ×{} exceeds the dispatch grid",
            self.m,
            self.n,
            self.models
        );
        kernel.bind(gpu, &u, &[self.a.buf, self.b.buf, aux, self.c.buf], groups)
    }
}
