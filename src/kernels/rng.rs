//! Wrapper of shaders/rng.wgsl: Philox noise, [x, ε] assembly. Twin: src/reference/rng.rs.

use crate::gpu::{grid, uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RngUniform {
    pub n: u32,
    pub d: u32,
    pub q: u32,
    pub repeat: u32,
    pub stream: u32,
    pub temperature: f32,
    pub _pad: [u32; 2],
}

/// Noise streams: each use of randomness draws from its own, so they never overlap.
pub mod stream {
    pub const TRAIN_EPS: u32 = 1;
    pub const EVAL_EPS: u32 = 2;
    pub const SAMPLE: u32 = 3;
}

/// y (n, q) = [x row ⌊r/repeat⌋, ε], ε at index r·(q−d) + b of `stream`.
pub fn assemble(
    gpu: &Gpu,
    n: usize,
    d: usize,
    q: usize,
    repeat: usize,
    stream: u32,
    step: &wgpu::Buffer,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Dispatch {
    let u = RngUniform {
        n: n as u32,
        d: d as u32,
        q: q as u32,
        repeat: repeat as u32,
        stream,
        temperature: 1.0,
        _pad: [0; 2],
    };
    let un = uniform(gpu, "assemble", &u);
    gpu.pipelines().assemble.bind(gpu, &un, &[step, x, y], grid(n * q, 64))
}

/// out[i] = temperature · N(0, 1) at index i of `stream`, for i < count.
pub fn normal_fill(
    gpu: &Gpu,
    count: usize,
    stream: u32,
    temperature: f32,
    step: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Dispatch {
    let u = RngUniform { n: count as u32, stream, temperature, ..Default::default() };
    let un = uniform(gpu, "normal_fill", &u);
    gpu.pipelines().normal_fill.bind(gpu, &un, &[step, out], grid(count, 64))
}
