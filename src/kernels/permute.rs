//! Wrapper of shaders/permute.wgsl. Twin: src/reference/permute.rs.

use crate::gpu::{grid, uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PermuteUniform {
    pub n: u32,
    pub q: u32,
    pub _pad: [u32; 2],
}

/// out[row, i] = x[row, idx[i]] over (n, q).
pub fn gather(gpu: &Gpu, n: usize, q: usize, idx: &wgpu::Buffer, x: &wgpu::Buffer, out: &wgpu::Buffer) -> Dispatch {
    let un = uniform(gpu, "permute_gather", &PermuteUniform { n: n as u32, q: q as u32, _pad: [0; 2] });
    gpu.pipelines().permute_gather.bind(gpu, &un, &[idx, x, out], grid(n * q, 64))
}
