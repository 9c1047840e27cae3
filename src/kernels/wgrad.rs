//! Wrapper of shaders/wgrad.wgsl: one conditioner's weight and bias gradients, every linear
//! in one dispatch, from the regions fused.wgsl's training passes store (`Saved`).
//! Twin: src/reference/wgrad.rs.

use super::fused::{Saved, MAX_LIN};
use crate::gpu::{uniform, Dispatch, Gpu};
use crate::model::Linear;

/// Output tile of one workgroup (wgrad.wgsl: 8×8 invocations of 8×8).
pub const TILE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct WgradUniform {
    pub n: u32,
    pub nprob: u32,
    pub ps: u32,
    pub sv_ms: u32,
    pub an_beta: u32,
    pub an_a: u32,
    pub an_on: u32,
    pub q: u32,
    /// Per problem: (in offset, dz offset, W offset, b offset), (fan_in, fan_out, ld_in,
    /// ld_dz), (first tile, tile columns, 0, 0).
    pub prob: [[u32; 4]; 3 * MAX_LIN],
}

/// The weight gradients of one coupling's `linears` over batches of `n` rows.
#[derive(Clone, Debug)]
pub struct Wgrad<'a> {
    pub n: usize,
    pub linears: &'a [Linear],
    pub saved: &'a Saved,
    /// Parameters per model (the stride of each model's gradients).
    pub ps: usize,
    /// Flow width Q.
    pub q: usize,
    /// The ActNorm folded into the coupling (β and a offsets): its gradients too.
    pub actnorm: Option<(usize, usize)>,
}

impl Wgrad<'_> {
    /// dW_k = in_kᵀ·dz_k and db_k = Σ_rows dz_k for every linear k, written (=) into `grads`,
    /// and the folded ActNorm's dβ, da (which read `params` and `dld`).
    pub fn dispatch(
        &self,
        gpu: &Gpu,
        saved: &wgpu::Buffer,
        dz: &wgpu::Buffer,
        grads: &wgpu::Buffer,
        params: &wgpu::Buffer,
        dld: &wgpu::Buffer,
    ) -> Dispatch {
        assert!(self.linears.len() <= MAX_LIN, "at most {MAX_LIN} linears");
        let mut prob = [[0u32; 4]; 3 * MAX_LIN];
        let mut tiles = 0;
        for (k, l) in self.linears.iter().enumerate() {
            let (rows, cols) = (l.fan_in.div_ceil(TILE), l.fan_out.div_ceil(TILE));
            let s = self.saved;
            prob[3 * k] = [s.offset[k] as u32, s.offset[k + 1] as u32, l.w as u32, l.b as u32];
            prob[3 * k + 1] = [l.fan_in as u32, l.fan_out as u32, s.ld[k] as u32, s.ld[k + 1] as u32];
            prob[3 * k + 2] = [tiles as u32, cols as u32, (rows * cols) as u32, 0];
            tiles += rows * cols;
        }
        let (an_beta, an_a) = self.actnorm.unwrap_or((0, 0));
        let u = WgradUniform {
            n: self.n as u32,
            nprob: self.linears.len() as u32,
            ps: self.ps as u32,
            sv_ms: self.saved.per_model as u32,
            an_beta: an_beta as u32,
            an_a: an_a as u32,
            an_on: u32::from(self.actnorm.is_some()),
            q: self.q as u32,
            prob,
        };
        let un = uniform(gpu, "wgrad", &u);
        let groups = tiles + usize::from(self.actnorm.is_some());
        gpu.pipelines().wgrad.bind(gpu, &un, &[saved, dz, grads, params, dld], [groups as u32, 1, 1])
    }
}
