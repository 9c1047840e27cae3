//! Wrapper of shaders/conv.wgsl: 3×3 and 1×1 convolutions as implicit GEMMs, forward, data
//! gradient and weight/bias gradient. Twin: src/reference/conv.rs (`conv2d`,
//! `conv2d_backward`).

use crate::gpu::{uniform, Dispatch, Gpu};
use crate::model::Conv2d;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvUniform {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub k: u32,
    pub c_in: u32,
    pub c_out: u32,
    pub flags: u32,
    pub parity: u32,
    pub x_off: u32,
    pub x_rs: u32,
    pub y_off: u32,
    pub y_rs: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub x_ms: u32,
    pub y_ms: u32,
    pub p_ms: u32,
    pub _pad: [u32; 3],
}

pub const BIAS: u32 = 1;
pub const ACCUM: u32 = 2;
pub const MASK_IN: u32 = 4;
pub const MASK_OUT: u32 = 8;
pub const FLIP: u32 = 16;

/// A (n, c, h, w) tensor inside a buffer: element (s, c, p) of model z at
/// `off + z·ms + s·rs + c·h·w + p` (a region of flow rows: rs = Q; contiguous: rs = c·h·w).
#[derive(Clone, Copy, Debug)]
pub struct Planes<'a> {
    pub buf: &'a wgpu::Buffer,
    pub off: usize,
    pub rs: usize,
    pub ms: usize,
}

/// One convolution over a batch: its layer, image size, the checkerboard parity whose
/// complement the input is masked with (a checkerboard coupling's conditioner reads b ⊙ y),
/// and the parameters per model when several run at once (grid z).
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    pub conv: Conv2d,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub mask: Option<usize>,
    pub ps: usize,
}

/// Output tile of one workgroup of conv_forward and conv_wgrad (8×8 invocations of 4×4).
pub const TILE: usize = 32;
/// Pixels of one workgroup of conv_forward_narrow (64 invocations of 8).
pub const NARROW_ROWS: usize = 512;

impl Conv {
    /// `mask_flag` (MASK_IN or MASK_OUT) joins `flags` when the convolution is masked.
    fn uniform(&self, gpu: &Gpu, label: &str, flags: u32, mask_flag: u32, x: &Planes, y: &Planes) -> wgpu::Buffer {
        let c = &self.conv;
        let u = ConvUniform {
            n: self.n as u32,
            h: self.h as u32,
            w: self.w as u32,
            k: c.k as u32,
            c_in: c.c_in as u32,
            c_out: c.c_out as u32,
            flags: flags | if self.mask.is_some() { mask_flag } else { 0 },
            parity: self.mask.unwrap_or(0) as u32,
            x_off: x.off as u32,
            x_rs: x.rs as u32,
            y_off: y.off as u32,
            y_rs: y.rs as u32,
            w_off: c.w as u32,
            b_off: c.b as u32,
            x_ms: x.ms as u32,
            y_ms: y.ms as u32,
            p_ms: self.ps as u32,
            _pad: [0; 3],
        };
        uniform(gpu, label, &u)
    }

    /// The forward entry point for `n_out` output channels: 4-channel blocks, or one
    /// channel per thread where fewer than 4 would leave most of a block clamped duplicates.
    fn run(&self, gpu: &Gpu, un: &wgpu::Buffer, bufs: &[&wgpu::Buffer], n_out: usize) -> Dispatch {
        let rows = self.n * self.h * self.w;
        if n_out < 4 {
            let wg = [rows.div_ceil(NARROW_ROWS) as u32, n_out as u32, 1];
            gpu.pipelines().conv_forward_narrow.bind(gpu, un, bufs, wg)
        } else {
            let wg = [n_out.div_ceil(TILE) as u32, rows.div_ceil(TILE) as u32, 1];
            gpu.pipelines().conv_forward.bind(gpu, un, bufs, wg)
        }
    }

    /// y = conv(x) + bias (`accumulate`: y +=), x read through the mask.
    pub fn forward(&self, gpu: &Gpu, params: &wgpu::Buffer, x: Planes, y: Planes, accumulate: bool) -> Dispatch {
        let flags = BIAS | if accumulate { ACCUM } else { 0 };
        let un = self.uniform(gpu, "conv_forward", flags, MASK_IN, &x, &y);
        self.run(gpu, &un, &[params, x.buf, y.buf], self.conv.c_out)
    }

    /// dx (=, or += with `accumulate`) from dy: the transposed, flipped convolution, stored
    /// through the mask (zero where the forward's input was hidden).
    pub fn backward_data(
        &self,
        gpu: &Gpu,
        params: &wgpu::Buffer,
        dy: Planes,
        dx: Planes,
        accumulate: bool,
    ) -> Dispatch {
        let flags = FLIP | if accumulate { ACCUM } else { 0 };
        let un = self.uniform(gpu, "conv_backward_data", flags, MASK_OUT, &dy, &dx);
        self.run(gpu, &un, &[params, dy.buf, dx.buf], self.conv.c_in)
    }

    /// ∂W and ∂bias (=) into `grads` at the parameters' offsets, from the forward's input x
    /// (read through the mask) and dy.
    pub fn backward_weights(&self, gpu: &Gpu, x: Planes, dy: Planes, grads: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "conv_wgrad", 0, MASK_IN, &x, &dy);
        let c = &self.conv;
        let wg = [(c.c_in * c.k * c.k).div_ceil(TILE) as u32, c.c_out.div_ceil(TILE) as u32, 1];
        gpu.pipelines().conv_wgrad.bind(gpu, &un, &[dy.buf, x.buf, grads], wg)
    }
}
