//! Wrapper of shaders/marginal.wgsl. Twin: src/reference/marginal.rs.

use crate::gpu::{grid, uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MarginalUniform {
    pub points: u32,
    pub s: u32,
    pub d: u32,
    pub q: u32,
}

/// out[p] = logsumexp_s [logp − log N(ε)] − log S over the S rows of point p.
pub fn reduce(
    gpu: &Gpu,
    points: usize,
    s: usize,
    d: usize,
    q: usize,
    y: &wgpu::Buffer,
    logp: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Dispatch {
    let u = MarginalUniform { points: points as u32, s: s as u32, d: d as u32, q: q as u32 };
    let un = uniform(gpu, "marginal_reduce", &u);
    gpu.pipelines().marginal_reduce.bind(gpu, &un, &[y, logp, out], grid(points, 64))
}
