//! Wrapper of shaders/reduce.wgsl. Twin: src/reference/reduce.rs.

use crate::gpu::{uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceUniform {
    pub rows: u32,
    pub cols: u32,
    pub in_off: u32,
    pub in_rs: u32,
    pub out_off: u32,
    pub in_ms: u32,
    pub out_ms: u32,
    pub _pad: u32,
}

/// out[out_off + j] = Σ_rows x[in_off + row·in_rs + j] (=).
pub fn colsum(
    gpu: &Gpu,
    rows: usize,
    cols: usize,
    x: &wgpu::Buffer,
    in_off: usize,
    in_rs: usize,
    out: &wgpu::Buffer,
    out_off: usize,
) -> Dispatch {
    colsum_models(gpu, rows, cols, x, in_off, in_rs, out, out_off, 1, 0, 0)
}

/// `colsum` for `models` models at once, model z's input `in_ms` and output `out_ms`
/// elements after model z − 1's.
pub fn colsum_models(
    gpu: &Gpu,
    rows: usize,
    cols: usize,
    x: &wgpu::Buffer,
    in_off: usize,
    in_rs: usize,
    out: &wgpu::Buffer,
    out_off: usize,
    models: usize,
    in_ms: usize,
    out_ms: usize,
) -> Dispatch {
    let u = ReduceUniform {
        rows: rows as u32,
        cols: cols as u32,
        in_off: in_off as u32,
        in_rs: in_rs as u32,
        out_off: out_off as u32,
        in_ms: in_ms as u32,
        out_ms: out_ms as u32,
        _pad: 0,
    };
    let un = uniform(gpu, "colsum", &u);
    gpu.kernels().colsum.bind(gpu, &un, &[x, out], [cols.div_ceil(64) as u32, 1, 1]).models(models)
}
