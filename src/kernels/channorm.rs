//! Wrapper of shaders/channorm.wgsl: CONV.md's per-channel ActNorm (forward with an optional
//! ReLU and log-det, inverse, data initialisation, backward). Twin: src/reference/channorm.rs.

use super::conv::Planes;
use crate::gpu::{grid, uniform, Dispatch, Gpu};
use crate::model::Norm;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ChanNormUniform {
    pub n: u32,
    pub c: u32,
    pub hw: u32,
    pub flags: u32,
    pub x_off: u32,
    pub x_rs: u32,
    pub y_off: u32,
    pub y_rs: u32,
    pub beta: u32,
    pub a: u32,
    pub x_ms: u32,
    pub y_ms: u32,
    pub p_ms: u32,
    pub ld_ms: u32,
    pub _pad: [u32; 2],
}

pub const RELU: u32 = 1;
pub const LOGDET: u32 = 2;

/// One per-channel ActNorm over a batch of `n` samples of `hw` pixels: `relu` for a
/// conditioner's hidden layers; else a flow layer whose log-det enters each sample's logdet
/// (`n` values per model). `ps`: parameters per model.
#[derive(Clone, Copy, Debug)]
pub struct ChanNorm {
    pub norm: Norm,
    pub n: usize,
    pub hw: usize,
    pub relu: bool,
    pub ps: usize,
}

impl ChanNorm {
    fn uniform(&self, gpu: &Gpu, label: &str, x: &Planes, y: &Planes) -> wgpu::Buffer {
        let u = ChanNormUniform {
            n: self.n as u32,
            c: self.norm.c as u32,
            hw: self.hw as u32,
            flags: if self.relu { RELU } else { LOGDET },
            x_off: x.off as u32,
            x_rs: x.rs as u32,
            y_off: y.off as u32,
            y_rs: y.rs as u32,
            beta: self.norm.beta as u32,
            a: self.norm.a as u32,
            x_ms: x.ms as u32,
            y_ms: y.ms as u32,
            p_ms: self.ps as u32,
            ld_ms: self.n as u32,
            _pad: [0; 2],
        };
        uniform(gpu, label, &u)
    }

    fn elements(&self) -> [u32; 3] {
        grid(self.n * self.norm.c * self.hw, 64)
    }

    /// y = (x − β)/σ (→ ReLU); a flow layer adds its log-det into `logdet`.
    pub fn forward(&self, gpu: &Gpu, params: &wgpu::Buffer, x: Planes, y: Planes, logdet: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "channorm_forward", &x, &y);
        gpu.pipelines().channorm_forward.bind(gpu, &un, &[params, x.buf, y.buf, logdet], self.elements())
    }

    /// x = u σ + β (flow layers only: a ReLU has no inverse).
    pub fn inverse(&self, gpu: &Gpu, params: &wgpu::Buffer, u: Planes, x: Planes) -> Dispatch {
        let un = self.uniform(gpu, "channorm_inverse", &u, &x);
        gpu.pipelines().channorm_inverse.bind(gpu, &un, &[params, u.buf, x.buf], self.elements())
    }

    /// β and a from x's statistics over (n, i, j).
    pub fn init(&self, gpu: &Gpu, params: &wgpu::Buffer, x: Planes) -> Dispatch {
        let un = self.uniform(gpu, "channorm_init", &x, &x);
        gpu.pipelines().channorm_init.bind(gpu, &un, &[params, x.buf], [self.norm.c as u32, 1, 1])
    }

    /// dx (=) and ∂β, ∂a (=, into `grads`) from the forward's output and its gradient (both
    /// laid out as `out`), and the log-det's gradient `dld` for a flow layer.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        gpu: &Gpu,
        params: &wgpu::Buffer,
        out: Planes,
        dout: &wgpu::Buffer,
        dld: &wgpu::Buffer,
        dx: Planes,
        grads: &wgpu::Buffer,
    ) -> Dispatch {
        let un = self.uniform(gpu, "channorm_backward", &dx, &out);
        let bufs = [params, out.buf, dout, dld, dx.buf, grads];
        gpu.pipelines().channorm_backward.bind(gpu, &un, &bufs, [self.norm.c as u32, 1, 1])
    }
}
