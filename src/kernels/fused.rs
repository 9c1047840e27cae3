//! Wrapper of shaders/fused.wgsl: a whole coupling (conditioner MLP + affine + log-det) in
//! one dispatch, for evaluation and sampling. Twin: src/reference/fused.rs.

use crate::gpu::{grid, uniform, Dispatch, Gpu};
use crate::model::Linear;

/// The shader's tile and limits (fused.wgsl's TILE, MAX_W, MAX_LIN).
pub const TILE: usize = 8;
pub const MAX_W: usize = 256;
pub const MAX_LIN: usize = 17;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FusedUniform {
    pub n: u32,
    pub q: u32,
    pub h: u32,
    pub nlin: u32,
    pub ps: u32,
    pub flags: u32,
    pub _pad: [u32; 2],
    /// (weight offset, bias offset, fan_in, fan_out) per linear.
    pub lin: [[u32; 4]; MAX_LIN],
}

/// One coupling's conditioner and shape.
#[derive(Clone, Debug)]
pub struct FusedCoupling<'a> {
    pub n: usize,
    pub q: usize,
    pub linears: &'a [Linear],
    /// Parameters per model (the stride of each model's copy).
    pub ps: usize,
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

    fn uniform(&self, gpu: &Gpu, label: &str, flags: u32) -> wgpu::Buffer {
        let mut lin = [[0u32; 4]; MAX_LIN];
        for (slot, l) in lin.iter_mut().zip(self.linears) {
            *slot = [l.w as u32, l.b as u32, l.fan_in as u32, l.fan_out as u32];
        }
        let u = FusedUniform {
            n: self.n as u32,
            q: self.q as u32,
            h: (self.q / 2) as u32,
            nlin: self.linears.len() as u32,
            ps: self.ps as u32,
            flags,
            _pad: [0; 2],
            lin,
        };
        uniform(gpu, label, &u)
    }

    /// u = coupling(y) with its conditioner; logdet += Σ s. With `inv` (the inverse of the
    /// following permutation), u is stored permuted: that layer's gather is folded in.
    pub fn forward(
        &self,
        gpu: &Gpu,
        params: &wgpu::Buffer,
        y: &wgpu::Buffer,
        u: &wgpu::Buffer,
        logdet: &wgpu::Buffer,
        inv: Option<&wgpu::Buffer>,
    ) -> Dispatch {
        let un = self.uniform(gpu, "fused_coupling_forward", u32::from(inv.is_some()));
        // Unused when not permuted, but the binding must exist: the parameters stand in.
        let inv = inv.unwrap_or(params);
        gpu.kernels().fused_coupling_forward.bind(
            gpu,
            &un,
            &[params, y, u, logdet, inv],
            grid(self.n.div_ceil(TILE), 1),
        )
    }

    /// y = coupling⁻¹(u), the conditioner evaluated on u_a = y_a.
    pub fn inverse(&self, gpu: &Gpu, params: &wgpu::Buffer, u: &wgpu::Buffer, y: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "fused_coupling_inverse", 0);
        gpu.kernels().fused_coupling_inverse.bind(gpu, &un, &[params, u, y], grid(self.n.div_ceil(TILE), 1))
    }
}
