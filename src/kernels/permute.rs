//! Wrapper of shaders/permute.wgsl. Twin: src/reference/permute.rs.

use crate::gpu::{grid, uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PermuteUniform {
    pub n: u32,
    pub q: u32,
    pub in_off: u32,
    pub in_rs: u32,
    pub out_off: u32,
    pub out_rs: u32,
    pub in_ms: u32,
    pub out_ms: u32,
}

/// out[row, i] = x[row, idx[i]] over (n, q).
pub fn gather(gpu: &Gpu, n: usize, q: usize, idx: &wgpu::Buffer, x: &wgpu::Buffer, out: &wgpu::Buffer) -> Dispatch {
    let un = uniform(gpu, "permute_gather", &PermuteUniform { n: n as u32, q: q as u32, ..Default::default() });
    gpu.pipelines().permute_gather.bind(gpu, &un, &[idx, x, out], grid(n * q, 64))
}

/// A block of `cols` columns of `n` rows: out(row, j) = x(row, j), each side at its own
/// offset, row stride and model stride `(off, rs, ms)`.
pub fn copy_columns(
    gpu: &Gpu,
    n: usize,
    cols: usize,
    x: (&wgpu::Buffer, usize, usize, usize),
    out: (&wgpu::Buffer, usize, usize, usize),
) -> Dispatch {
    let u = PermuteUniform {
        n: n as u32,
        q: cols as u32,
        in_off: x.1 as u32,
        in_rs: x.2 as u32,
        out_off: out.1 as u32,
        out_rs: out.2 as u32,
        in_ms: x.3 as u32,
        out_ms: out.3 as u32,
    };
    let un = uniform(gpu, "copy_columns", &u);
    gpu.pipelines().copy_columns.bind(gpu, &un, &[x.0, out.0], grid(n * cols, 64))
}
