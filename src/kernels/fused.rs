//! Wrapper of shaders/fused.wgsl: a whole coupling (conditioner MLP + affine + log-det) in
//! one dispatch — forward and inverse, and for training a forward that keeps its
//! activations (`Saved`) and a backward that runs the data gradient through the whole
//! conditioner in one pass (the weight gradients are then one wgrad.wgsl dispatch).
//! Twin: src/reference/fused.rs.

use crate::gpu::{grid, storage, uniform, Dispatch, Gpu};
use crate::model::Linear;

/// The shader's tile and limits (fused.wgsl's TILE, MAX_W, MAX_LIN, MAX_REG).
pub const TILE: usize = 8;
pub const MAX_W: usize = 256;
pub const MAX_LIN: usize = 17;
pub const MAX_REG: usize = MAX_LIN + 1;

/// What the training forward keeps of one coupling, in one buffer per model block: region 0
/// the input rows (Q columns), region k + 1 linear k's output; region k is `n` rows of
/// `ld[k]` floats (the width rounded up to 4) at `offset[k]`. The backward's dz buffer has
/// the same layout (region 0 unused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub offset: Vec<usize>,
    pub ld: Vec<usize>,
    /// Floats per model (a multiple of 4).
    pub per_model: usize,
}

impl Saved {
    pub fn new(n: usize, q: usize, linears: &[Linear]) -> Self {
        let widths = std::iter::once(q).chain(linears.iter().map(|l| l.fan_out));
        let (mut offset, mut ld, mut at) = (Vec::new(), Vec::new(), 0);
        for w in widths {
            let l = w.next_multiple_of(4);
            offset.push(at);
            ld.push(l);
            at += n * l;
        }
        Self { offset, ld, per_model: at }
    }

    /// Whether `models` copies fit the shaders' u32 indices.
    pub fn fits(&self, models: usize) -> bool {
        self.per_model.checked_mul(models).is_some_and(|v| v < u32::MAX as usize)
    }

    /// Element (row, col) of region k (model 0).
    pub fn at(&self, k: usize, row: usize, col: usize) -> usize {
        self.offset[k] + row * self.ld[k] + col
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FusedUniform {
    pub n: u32,
    pub q: u32,
    pub h: u32,
    pub nlin: u32,
    pub ps: u32,
    pub flags: u32,
    pub sv_ms: u32,
    pub an_beta: u32,
    pub an_a: u32,
    pub _pad: [u32; 3],
    /// (weight offset, bias offset, fan_in, fan_out) per linear.
    pub lin: [[u32; 4]; MAX_LIN],
    /// (offset, ld, 0, 0) per saved region.
    pub reg: [[u32; 4]; MAX_REG],
}

const PERMUTED: u32 = 1;
const SAVE: u32 = 2;
const ACTNORM: u32 = 4;
const ROWS8: u32 = 8;

/// One coupling's conditioner and shape.
#[derive(Clone, Debug)]
pub struct FusedCoupling<'a> {
    pub n: usize,
    pub q: usize,
    pub linears: &'a [Linear],
    /// Parameters per model (the stride of each model's copy).
    pub ps: usize,
    /// The ActNorm in front, folded in (its β and a offsets): the forward reads its input,
    /// the backward writes its input's gradient (fused.wgsl's ACTNORM).
    pub actnorm: Option<(usize, usize)>,
    /// The forward's vec4 linears take all 8 rows of a tile per invocation (fused.wgsl's
    /// ROWS8) instead of 4: fewer, fuller invocations (the tuner's choice per adapter).
    pub rows8: bool,
}

impl FusedCoupling<'_> {
    /// Whether the shader can hold this coupling: every layer at most MAX_W wide, at most
    /// MAX_LIN linears, offsets within u32.
    pub fn fits(q: usize, linears: &[Linear], ps: usize) -> bool {
        linears.len() <= MAX_LIN
            && linears.iter().all(|l| l.fan_in <= MAX_W && l.fan_out <= MAX_W)
            && q / 2 <= MAX_W
            && ps < u32::MAX as usize
    }

    /// `fits` for every coupling of a flow shaped like `c`, from the shape alone (no flow is
    /// built: the tuner asks this on every evaluator's creation).
    pub fn fits_config(c: &crate::model::FlowConfig) -> bool {
        let (q, h) = (c.q(), c.h());
        c.depth < MAX_LIN
            && h <= MAX_W
            && 2 * (q - h) <= MAX_W
            && (c.depth == 0 || c.hidden <= MAX_W)
            && c.padded_params().is_some_and(|p| p < u32::MAX as u64)
    }

    /// The layout of this coupling's saved activations (training).
    pub fn saved(&self) -> Saved {
        Saved::new(self.n, self.q, self.linears)
    }

    fn uniform(&self, gpu: &Gpu, label: &str, flags: u32) -> wgpu::Buffer {
        let mut lin = [[0u32; 4]; MAX_LIN];
        for (slot, l) in lin.iter_mut().zip(self.linears) {
            *slot = [l.w as u32, l.b as u32, l.fan_in as u32, l.fan_out as u32];
        }
        let saved = self.saved();
        let mut reg = [[0u32; 4]; MAX_REG];
        for (slot, (o, l)) in reg.iter_mut().zip(saved.offset.iter().zip(&saved.ld)) {
            *slot = [*o as u32, *l as u32, 0, 0];
        }
        let (an_beta, an_a) = self.actnorm.unwrap_or((0, 0));
        let flags = flags | if self.actnorm.is_some() { ACTNORM } else { 0 } | if self.rows8 { ROWS8 } else { 0 };
        let u = FusedUniform {
            n: self.n as u32,
            q: self.q as u32,
            h: (self.q / 2) as u32,
            nlin: self.linears.len() as u32,
            ps: self.ps as u32,
            flags,
            sv_ms: saved.per_model as u32,
            an_beta: an_beta as u32,
            an_a: an_a as u32,
            _pad: [0; 3],
            lin,
            reg,
        };
        uniform(gpu, label, &u)
    }

    /// u = coupling(y) with its conditioner; logdet += Σ s. With `inv` (the inverse of the
    /// following permutation), u is stored permuted: that layer's gather is folded in. With
    /// `saved` (training), the input and every linear's output are kept (`Saved`'s layout).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        gpu: &Gpu,
        params: &wgpu::Buffer,
        y: &wgpu::Buffer,
        u: &wgpu::Buffer,
        logdet: &wgpu::Buffer,
        inv: Option<&wgpu::Buffer>,
        saved: Option<&wgpu::Buffer>,
    ) -> Dispatch {
        let flags = if inv.is_some() { PERMUTED } else { 0 } | if saved.is_some() { SAVE } else { 0 };
        let un = self.uniform(gpu, "fused_coupling_forward", flags);
        // Unused bindings must still exist: the parameters stand in for inv, a scrap buffer
        // for saved (it is bound writable, so no other binding of this dispatch can).
        let inv = inv.unwrap_or(params);
        let scrap;
        let saved = match saved {
            Some(s) => s,
            None => {
                scrap = storage(gpu, "fused.unsaved", 4);
                &scrap
            }
        };
        gpu.pipelines().fused_coupling_forward.bind(
            gpu,
            &un,
            &[params, y, u, saved, logdet, inv],
            grid(self.n.div_ceil(TILE), 1),
        )
    }

    /// ∂L/∂y (=, all of dx) and every linear's output gradient (dz, `Saved`'s layout) from
    /// du = ∂L/∂u and dld = ∂L/∂logdet, given what the forward saved. With `inv`, du is
    /// ∂L/∂(the following permutation's output), read through it.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        gpu: &Gpu,
        params: &wgpu::Buffer,
        saved: &wgpu::Buffer,
        du: &wgpu::Buffer,
        dld: &wgpu::Buffer,
        dx: &wgpu::Buffer,
        dz: &wgpu::Buffer,
        inv: Option<&wgpu::Buffer>,
    ) -> Dispatch {
        let un = self.uniform(gpu, "fused_coupling_backward", if inv.is_some() { PERMUTED } else { 0 });
        let inv = inv.unwrap_or(params);
        gpu.pipelines().fused_coupling_backward.bind(
            gpu,
            &un,
            &[params, saved, du, dld, dx, dz, inv],
            grid(self.n.div_ceil(TILE), 1),
        )
    }

    /// y = coupling⁻¹(u), the conditioner evaluated on u_a = y_a.
    pub fn inverse(&self, gpu: &Gpu, params: &wgpu::Buffer, u: &wgpu::Buffer, y: &wgpu::Buffer) -> Dispatch {
        // The folded ActNorm's inverse stays a dispatch of its own.
        let un = FusedCoupling { actnorm: None, ..self.clone() }.uniform(gpu, "fused_coupling_inverse", 0);
        let scrap = storage(gpu, "fused.unsaved", 4);
        gpu.pipelines().fused_coupling_inverse.bind(gpu, &un, &[params, u, y, &scrap], grid(self.n.div_ceil(TILE), 1))
    }
}
