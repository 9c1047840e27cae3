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
    fn uniform(&self, gpu: &Gpu, label: &str, x: &Planes, y: &Planes) -> wgpu::Buffer {
        let (flags, parity) = match self.split {
            Split::Checkerboard(p) => (CHECKER, p as u32),
            Split::Channels => (0, 0),
        };
        let u = ConvCouplingUniform {
            n: self.n as u32,
            c: self.c as u32,
            hw: (self.h * self.w) as u32,
            w: self.w as u32,
            flags,
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
    pub fn forward(&self, gpu: &Gpu, y: Planes, rm: &wgpu::Buffer, u: Planes, logdet: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "conv_coupling_forward", &y, &u);
        gpu.pipelines().conv_coupling_forward.bind(gpu, &un, &[y.buf, rm, u.buf, logdet], self.elements())
    }

    /// y = (u − m) ⊙ exp(−s) on the transformed elements.
    pub fn inverse(&self, gpu: &Gpu, u: Planes, rm: &wgpu::Buffer, y: Planes) -> Dispatch {
        let un = self.uniform(gpu, "conv_coupling_inverse", &u, &y);
        gpu.pipelines().conv_coupling_inverse.bind(gpu, &un, &[u.buf, rm, y.buf], self.elements())
    }

    /// dy (=, laid out as y) and drm (=) from du (laid out as the forward's output u) and dld.
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
    ) -> Dispatch {
        let un = self.uniform(gpu, "conv_coupling_backward", &y, &du);
        gpu.pipelines().conv_coupling_backward.bind(gpu, &un, &[y.buf, rm, du.buf, dld, dy, drm], self.elements())
    }
}
