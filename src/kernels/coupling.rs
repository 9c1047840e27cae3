//! Wrapper of shaders/coupling.wgsl (the affine part; the conditioner is GEMMs).
//! Twin: src/reference/coupling.rs.

use crate::gpu::{grid, uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CouplingUniform {
    pub n: u32,
    pub q: u32,
    pub h: u32,
    pub flags: u32,
}

/// The following permutation layer is folded in (see coupling.wgsl's PERMUTED).
pub const PERMUTED: u32 = 1;

#[derive(Clone, Copy, Debug)]
pub struct Coupling {
    pub n: usize,
    pub q: usize,
}

impl Coupling {
    fn uniform(&self, gpu: &Gpu, label: &str, flags: u32) -> wgpu::Buffer {
        let u = CouplingUniform { n: self.n as u32, q: self.q as u32, h: (self.q / 2) as u32, flags };
        uniform(gpu, label, &u)
    }

    /// u_b = y_b ⊙ exp(s) + m; logdet += Σ s. With `inv` (the inverse of the following
    /// permutation, Q per model), u is stored permuted: that layer's gather is folded in.
    pub fn forward(
        &self,
        gpu: &Gpu,
        y: &wgpu::Buffer,
        rm: &wgpu::Buffer,
        u: &wgpu::Buffer,
        logdet: &wgpu::Buffer,
        inv: Option<&wgpu::Buffer>,
    ) -> Dispatch {
        let un = self.uniform(gpu, "coupling_forward", if inv.is_some() { PERMUTED } else { 0 });
        // Unused when not permuted, but the binding must exist: rm (read-only) stands in.
        let inv = inv.unwrap_or(rm);
        gpu.pipelines().coupling_forward.bind(gpu, &un, &[y, rm, u, logdet, inv], grid(self.n * self.q, 64))
    }

    /// y_b = (u_b − m) ⊙ exp(−s).
    pub fn inverse(&self, gpu: &Gpu, u: &wgpu::Buffer, rm: &wgpu::Buffer, y: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "coupling_inverse", 0);
        gpu.pipelines().coupling_inverse.bind(gpu, &un, &[u, rm, y], grid(self.n * self.q, 64))
    }

    /// dx (=) and drm (=) from du and dld; the conditioner's GEMMs then add into dx_a. With
    /// `inv`, du is ∂L/∂(the following permutation's output), read through it.
    pub fn backward(
        &self,
        gpu: &Gpu,
        y: &wgpu::Buffer,
        rm: &wgpu::Buffer,
        du: &wgpu::Buffer,
        dld: &wgpu::Buffer,
        dx: &wgpu::Buffer,
        drm: &wgpu::Buffer,
        inv: Option<&wgpu::Buffer>,
    ) -> Dispatch {
        let un = self.uniform(gpu, "coupling_backward", if inv.is_some() { PERMUTED } else { 0 });
        let inv = inv.unwrap_or(rm);
        gpu.pipelines().coupling_backward.bind(gpu, &un, &[y, rm, du, dld, dx, drm, inv], grid(self.n * self.q, 64))
    }
}
