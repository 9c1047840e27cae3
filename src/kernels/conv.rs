//! Wrapper of shaders/conv.wgsl: 3×3 and 1×1 convolutions as implicit GEMMs, forward, data
//! gradient and weight/bias gradient. Twin: src/reference/conv.rs (`conv2d`,
//! `conv2d_backward`).

use crate::gpu::{uniform, Dispatch, Gpu};
use crate::model::{Conv2d, Norm};

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
    pub norm_beta: u32,
    pub norm_a: u32,
    pub _pad: u32,
}

pub const BIAS: u32 = 1;
pub const ACCUM: u32 = 2;
pub const MASK_IN: u32 = 4;
pub const MASK_OUT: u32 = 8;
pub const FLIP: u32 = 16;
pub const NORM: u32 = 32;

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
    pub tiles: ConvTiles,
}

/// conv_fwd's tiles, by entry point (`Pipelines::conv_fwd3`, `conv_fwd1`): output channels
/// and pixels per workgroup (64 invocations; tools/gen_gemm.py's CONV_FWD).
pub const FWD: [(usize, usize); 4] = [(2, 256), (4, 256), (8, 256), (16, 128)];
/// (output, input) channels per conv_wgrad workgroup, by entry point, for k = 3 and k = 1.
pub const WGRAD3: [(usize, usize); 3] = [(8, 1), (4, 2), (2, 4)];
pub const WGRAD1: [(usize, usize); 3] = [(8, 8), (4, 16), (2, 32)];

/// The tiles the tuner chooses between per adapter (`tune::measure_gemm`), for layers wider
/// than the narrow tiles: each field takes the second candidate. Each tile is tested against
/// the f64 twin (tests/conv.rs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvTiles {
    /// conv_fwd: 16 channels × 128 pixels per workgroup for more than 8 output channels,
    /// not 8 × 256.
    pub fwd_c16: bool,
    /// 3×3 weight gradients of more than 4 output channels: 4 × 2 channels per workgroup, not 8 × 1.
    pub wgrad3_o4: bool,
    /// 1×1 weight gradients of more than 4 output channels: 4 × 16, not 8 × 8.
    pub wgrad1_o4: bool,
}

impl Conv {
    /// `mask_flag` (MASK_IN or MASK_OUT) joins `flags` when the convolution is masked; `norm`
    /// is the ActNorm a NORM forward folds in.
    #[allow(clippy::too_many_arguments)]
    fn uniform(
        &self,
        gpu: &Gpu,
        label: &str,
        flags: u32,
        mask_flag: u32,
        x: &Planes,
        y: &Planes,
        norm: Option<Norm>,
    ) -> wgpu::Buffer {
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
            norm_beta: norm.map_or(0, |n| n.beta as u32),
            norm_a: norm.map_or(0, |n| n.a as u32),
            _pad: 0,
        };
        uniform(gpu, label, &u)
    }

    /// The forward entry point for `n_out` output channels: the narrowest tile that holds
    /// them (a conditioner's last convolution, 64 → 2C, computes no clamped duplicates beyond
    /// its block), else the widest the tuner allows.
    fn run(&self, gpu: &Gpu, un: &wgpu::Buffer, bufs: &[&wgpu::Buffer], n_out: usize) -> Dispatch {
        let rows = self.n * self.h * self.w;
        let widest = if self.tiles.fwd_c16 { 3 } else { 2 };
        let t = FWD[..=widest].iter().position(|&(oc, _)| oc >= n_out).unwrap_or(widest);
        let (oc, pixels) = FWD[t];
        let wg = [rows.div_ceil(pixels) as u32, n_out.div_ceil(oc) as u32, 1];
        let kernels = if self.is_3x3() { &gpu.pipelines().conv_fwd3 } else { &gpu.pipelines().conv_fwd1 };
        kernels[t].bind(gpu, un, bufs, wg)
    }

    /// 3×3 (else 1×1). An invariant, not an input: CONV.md's conditioners have only these,
    /// and `model::conv` builds every `Conv2d` from that fixed shape, never from a flag or file.
    fn is_3x3(&self) -> bool {
        match self.conv.k {
            3 => true,
            1 => false,
            k => panic!("conv.wgsl has 3×3 and 1×1 convolutions, not {k}×{k}"),
        }
    }

    /// y = conv(x) + bias (`accumulate`: y +=), x read through the mask.
    pub fn forward(&self, gpu: &Gpu, params: &wgpu::Buffer, x: Planes, y: Planes, accumulate: bool) -> Dispatch {
        let flags = BIAS | if accumulate { ACCUM } else { 0 };
        let un = self.uniform(gpu, "conv_forward", flags, MASK_IN, &x, &y, None);
        self.run(gpu, &un, &[params, x.buf, y.buf], self.conv.c_out)
    }

    /// y = ReLU(ActNorm(conv(x) + bias)) in one dispatch: a conditioner's hidden layer, its
    /// per-channel ActNorm `norm` (`ChanNorm::forward` with `relu`) folded into the stores.
    pub fn forward_norm(&self, gpu: &Gpu, params: &wgpu::Buffer, x: Planes, y: Planes, norm: Norm) -> Dispatch {
        let un = self.uniform(gpu, "conv_forward_norm", BIAS | NORM, MASK_IN, &x, &y, Some(norm));
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
        let un = self.uniform(gpu, "conv_backward_data", flags, MASK_OUT, &dy, &dx, None);
        self.run(gpu, &un, &[params, dy.buf, dx.buf], self.conv.c_in)
    }

    /// ∂W and ∂bias (=) into `grads` at the parameters' offsets, from the forward's input x
    /// (read through the mask) and dy.
    pub fn backward_weights(&self, gpu: &Gpu, x: Planes, dy: Planes, grads: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "conv_wgrad", 0, MASK_IN, &x, &dy, None);
        let c = &self.conv;
        // Tiles run from wide to narrow in output channels; of those the tuner allows, the
        // first whose block c_out fills more than half of, else the narrowest.
        let (tiles, kernels, first): (&[(usize, usize)], &[crate::kernels::LazyKernel], usize) = if self.is_3x3() {
            (&WGRAD3, &gpu.pipelines().conv_wgrad3, self.tiles.wgrad3_o4 as usize)
        } else {
            (&WGRAD1, &gpu.pipelines().conv_wgrad1, self.tiles.wgrad1_o4 as usize)
        };
        let t = first + tiles[first..].iter().position(|&(ob, _)| 2 * c.c_out > ob).unwrap_or(tiles.len() - 1 - first);
        let (ob, cb) = tiles[t];
        let wg = [c.c_in.div_ceil(cb) as u32, c.c_out.div_ceil(ob) as u32, 1];
        kernels[t].bind(gpu, &un, &[dy.buf, x.buf, grads], wg)
    }
}
