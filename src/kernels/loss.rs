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
    gpu.pipelines().log_prob.bind(gpu, &un, &[u, logdet, logp], grid(n, 64))
}

/// du = u / n (=), dld = −1/n (=): the gradient of L = −mean log p_T.
pub fn backward(gpu: &Gpu, n: usize, q: usize, u: &wgpu::Buffer, du: &wgpu::Buffer, dld: &wgpu::Buffer) -> Dispatch {
    let un = uniform(gpu, "loss_backward", &LossUniform { n: n as u32, q: q as u32, _pad: [0; 2] });
    gpu.pipelines().loss_backward.bind(gpu, &un, &[u, du, dld], grid(n * q, 64))
}

/// metrics[0] += L (if finite, else metrics[2] += 1); metrics[1] += 1.
pub fn accumulate(gpu: &Gpu, n: usize, logp: &wgpu::Buffer, metrics: &wgpu::Buffer) -> Dispatch {
    let un = uniform(gpu, "loss_accumulate", &LossUniform { n: n as u32, q: 0, _pad: [0; 2] });
    gpu.pipelines().loss_accumulate.bind(gpu, &un, &[logp, metrics], [1, 1, 1])
}
