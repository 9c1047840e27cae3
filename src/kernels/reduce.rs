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
    pub _pad: [u32; 3],
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
    let u = ReduceUniform {
        rows: rows as u32,
        cols: cols as u32,
        in_off: in_off as u32,
        in_rs: in_rs as u32,
        out_off: out_off as u32,
        _pad: [0; 3],
    };
    let un = uniform(gpu, "colsum", &u);
    gpu.kernels().colsum.bind(gpu, &un, &[x, out], [cols.div_ceil(64) as u32, 1, 1])
}
