//! Wrapper of shaders/conv_coupling.wgsl: the affine part of the checkerboard and channel
//! couplings. Twin: src/reference/conv_coupling.rs.

use super::conv::Planes;
use crate::gpu::{grid, uniform, Dispatch, Gpu};
use crate::model::Split;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvCouplingUniform {
    pub n: u32,
    pub c: u32,
    pub hw: u32,
    pub w: u32,
    pub flags: u32,
    pub parity: u32,
    pub x_off: u32,
    pub x_rs: u32,
    pub y_off: u32,
    pub y_rs: u32,
    pub x_ms: u32,
    pub y_ms: u32,
    pub rm_off: u32,
    pub rm_ms: u32,
    pub ld_ms: u32,
    pub _pad: u32,
}

pub const CHECKER: u32 = 1;
/// The squeeze or channel reversal after the coupling is folded in (see the shader's header).
pub const PERMUTED: u32 = 2;

/// One coupling's affine part over `n` samples of a (c, h, w) region; rm is contiguous
/// (n, c_rm, h·w) from `rm_off`, `rm_ms` apart per model.
#[derive(Clone, Copy, Debug)]
pub struct ConvCoupling {
    pub split: Split,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub rm_off: usize,
    pub rm_ms: usize,
}

impl ConvCoupling {
    fn uniform(&self, gpu: &Gpu, label: &str, x: &Planes, y: &Planes, permuted: bool) -> wgpu::Buffer {
        let (flags, parity) = match self.split {
            Split::Checkerboard(p) => (CHECKER, p as u32),
            Split::Channels => (0, 0),
        };
        let u = ConvCouplingUniform {
            n: self.n as u32,
            c: self.c as u32,
            hw: (self.h * self.w) as u32,
            w: self.w as u32,
            flags: flags | if permuted { PERMUTED } else { 0 },
            parity,
            x_off: x.off as u32,
            x_rs: x.rs as u32,
            y_off: y.off as u32,
            y_rs: y.rs as u32,
            x_ms: x.ms as u32,
            y_ms: y.ms as u32,
            rm_off: self.rm_off as u32,
            rm_ms: self.rm_ms as u32,
            ld_ms: self.n as u32,
            _pad: 0,
        };
        uniform(gpu, label, &u)
    }

    fn elements(&self) -> [u32; 3] {
        grid(self.n * self.c * self.h * self.w, 64)
    }

    /// u = y ⊙ exp(s) + m on the transformed elements (the rest copied); logdet += Σ s.
    /// With `inv` (the inverse of the following gather over the compact output region, one
    /// per model), u is stored permuted: that layer is folded in.
    pub fn forward(
        &self,
        gpu: &Gpu,
        y: Planes,
        rm: &wgpu::Buffer,
        u: Planes,
        logdet: &wgpu::Buffer,
        inv: Option<&wgpu::Buffer>,
    ) -> Dispatch {
        let un = self.uniform(gpu, "conv_coupling_forward", &y, &u, inv.is_some());
        // Unused when not permuted, but the binding must exist: rm (read-only) stands in.
        let inv = inv.unwrap_or(rm);
        gpu.pipelines().conv_coupling_forward.bind(gpu, &un, &[y.buf, rm, u.buf, logdet, inv], self.elements())
    }

    /// y = (u − m) ⊙ exp(−s) on the transformed elements.
    pub fn inverse(&self, gpu: &Gpu, u: Planes, rm: &wgpu::Buffer, y: Planes) -> Dispatch {
        let un = self.uniform(gpu, "conv_coupling_inverse", &u, &y, false);
        gpu.pipelines().conv_coupling_inverse.bind(gpu, &un, &[u.buf, rm, y.buf], self.elements())
    }

    /// dy (=, laid out as y) and drm (=) from du (laid out as the forward's output u; with
    /// `inv`, ∂L/∂(the folded permutation's output), read through it) and dld.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        gpu: &Gpu,
        y: Planes,
        rm: &wgpu::Buffer,
        du: Planes,
        dld: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        drm: &wgpu::Buffer,
        inv: Option<&wgpu::Buffer>,
    ) -> Dispatch {
        let un = self.uniform(gpu, "conv_coupling_backward", &y, &du, inv.is_some());
        let inv = inv.unwrap_or(rm);
        let bufs = [y.buf, rm, du.buf, dld, dy, drm, inv];
        gpu.pipelines().conv_coupling_backward.bind(gpu, &un, &bufs, self.elements())
    }
}
