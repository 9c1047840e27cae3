//! Wrapper of shaders/loss.wgsl. Twin: src/reference/loss.rs.

use crate::gpu::{grid, uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LossUniform {
    pub n: u32,
    pub q: u32,
    pub _pad: [u32; 2],
}

/// logp[row] = Σ_i log N(u_i; 0, 1) + logdet[row].
pub fn log_prob(
    gpu: &Gpu,
    n: usize,
    q: usize,
    u: &wgpu::Buffer,
    logdet: &wgpu::Buffer,
    logp: &wgpu::Buffer,
) -> Dispatch {
    let un = uniform(gpu, "log_prob", &LossUniform { n: n as u32, q: q as u32, _pad: [0; 2] });
    gpu.kernels().log_prob.bind(gpu, &un, &[u, logdet, logp], grid(n, 64))
}
