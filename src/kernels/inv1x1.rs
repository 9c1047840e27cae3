//! Wrapper of shaders/inv1x1.wgsl: Glow's invertible 1×1 convolution (weights from the LU
//! factors and the inverse's columns, the per-pixel product either way, the weight gradient
//! and the LU factors' gradient). Twin: src/reference/inv1x1.rs.

use super::conv::Planes;
use crate::gpu::{grid, uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Inv1x1Uniform {
    pub n: u32,
    pub c: u32,
    pub hw: u32,
    pub flags: u32,
    pub lu: u32,
    pub ps: u32,
    pub x_off: u32,
    pub x_rs: u32,
    pub y_off: u32,
    pub y_rs: u32,
    pub x_ms: u32,
    pub y_ms: u32,
    pub _pad: [u32; 4],
}

pub const INVERSE: u32 = 1;
pub const TRANSPOSE: u32 = 2;
pub const LOGDET: u32 = 4;
/// The most channels the shader's column solves hold (its MAX_C); the model refuses more.
pub const MAX_C: usize = crate::model::conv::MAX_INV1X1_CHANNELS;

/// One 1×1 convolution over `n` samples of `c` channels × `hw` pixels; its packed LU tensor
/// at `lu` in the parameters (`ps` per model).
#[derive(Clone, Copy, Debug)]
pub struct Inv1x1 {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub lu: usize,
    pub ps: usize,
}

/// The fixed part, per model: perm, then the signs as 1 (+1) or 0 (−1).
pub fn fixed(perms: &[&[u32]], signs: &[&[i8]]) -> Vec<u32> {
    perms.iter().zip(signs).flat_map(|(p, s)| p.iter().copied().chain(s.iter().map(|&v| u32::from(v > 0)))).collect()
}

/// `mats` holds 3·C² per model: W, W⁻¹, and the weight gradient.
pub fn mats_len(c: usize) -> usize {
    3 * c * c
}

impl Inv1x1 {
    fn uniform(&self, gpu: &Gpu, label: &str, flags: u32, x: Option<&Planes>, y: Option<&Planes>) -> wgpu::Buffer {
        let (xo, xr, xm) = x.map_or((0, 0, 0), |p| (p.off, p.rs, p.ms));
        let (yo, yr, ym) = y.map_or((0, 0, 0), |p| (p.off, p.rs, p.ms));
        let u = Inv1x1Uniform {
            n: self.n as u32,
            c: self.c as u32,
            hw: self.hw as u32,
            flags,
            lu: self.lu as u32,
            ps: self.ps as u32,
            x_off: xo as u32,
            x_rs: xr as u32,
            y_off: yo as u32,
            y_rs: yr as u32,
            x_ms: xm as u32,
            y_ms: ym as u32,
            _pad: [0; 4],
        };
        uniform(gpu, label, &u)
    }

    /// W and W⁻¹ into `mats` from the parameters.
    pub fn weights(&self, gpu: &Gpu, params: &wgpu::Buffer, fixed: &wgpu::Buffer, mats: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "inv1x1_weights", 0, None, None);
        gpu.pipelines().inv1x1_weights.bind(
            gpu,
            &un,
            &[params, fixed, mats],
            [(self.c * self.c).div_ceil(64) as u32, 1, 1],
        )
    }

    /// out = W x (`inverse`: W⁻¹ x; `transpose`: Wᵀ x, the data gradient); a forward adds
    /// its log-det (`logdet`).
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        gpu: &Gpu,
        params: &wgpu::Buffer,
        mats: &wgpu::Buffer,
        x: Planes,
        out: Planes,
        logdet: &wgpu::Buffer,
        inverse: bool,
        transpose: bool,
    ) -> Dispatch {
        let flags = if inverse { INVERSE } else { 0 }
            | if transpose { TRANSPOSE } else { 0 }
            | if !inverse && !transpose { LOGDET } else { 0 };
        let un = self.uniform(gpu, "inv1x1_apply", flags, Some(&x), Some(&out));
        gpu.pipelines().inv1x1_apply.bind(
            gpu,
            &un,
            &[params, mats, x.buf, out.buf, logdet],
            grid(self.n * self.c * self.hw, 64),
        )
    }

    /// ∂L/∂W into `mats` from du and the forward's input y.
    pub fn wgrad(&self, gpu: &Gpu, du: Planes, y: Planes, mats: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "inv1x1_wgrad", 0, Some(&y), Some(&du));
        gpu.pipelines().inv1x1_wgrad.bind(gpu, &un, &[du.buf, y.buf, mats], [self.c as u32, self.c as u32, 1])
    }

    /// The packed LU tensor's gradient (=) into `grads`, from `mats`' ∂L/∂W and dld.
    pub fn lu_grad(
        &self,
        gpu: &Gpu,
        params: &wgpu::Buffer,
        fixed: &wgpu::Buffer,
        mats: &wgpu::Buffer,
        dld: &wgpu::Buffer,
        grads: &wgpu::Buffer,
    ) -> Dispatch {
        let un = self.uniform(gpu, "inv1x1_lu_grad", 0, None, None);
        let wg = [(self.c * self.c).div_ceil(64) as u32, 1, 1];
        gpu.pipelines().inv1x1_lu_grad.bind(gpu, &un, &[params, fixed, mats, dld, grads], wg)
    }
}
