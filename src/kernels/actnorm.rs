//! Wrapper of shaders/actnorm.wgsl. Twin: src/reference/actnorm.rs.

use crate::gpu::{grid, uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ActNormUniform {
    pub n: u32,
    pub q: u32,
    pub beta_off: u32,
    pub a_off: u32,
    pub ps: u32,
    pub _pad: [u32; 3],
}

/// Shapes and parameter offsets of one ActNorm over (n, q) rows.
#[derive(Clone, Copy, Debug)]
pub struct ActNorm {
    pub n: usize,
    pub q: usize,
    pub beta_off: usize,
    pub a_off: usize,
    /// Parameters per model when several run at once (grid z); 0 for one model.
    pub ps: usize,
}

impl ActNorm {
    fn uniform(&self, gpu: &Gpu, label: &str) -> wgpu::Buffer {
        let u = ActNormUniform {
            n: self.n as u32,
            q: self.q as u32,
            beta_off: self.beta_off as u32,
            a_off: self.a_off as u32,
            ps: self.ps as u32,
            _pad: [0; 3],
        };
        uniform(gpu, label, &u)
    }

    /// u = (y − β)/(exp(a) + γ); logdet += −Σ log(exp(a) + γ).
    pub fn forward(
        &self,
        gpu: &Gpu,
        params: &wgpu::Buffer,
        y: &wgpu::Buffer,
        u: &wgpu::Buffer,
        logdet: &wgpu::Buffer,
    ) -> Dispatch {
        let un = self.uniform(gpu, "actnorm_forward");
        gpu.pipelines().actnorm_forward.bind(gpu, &un, &[params, y, u, logdet], grid(self.n * self.q, 64))
    }

    /// y = u (exp(a) + γ) + β.
    pub fn inverse(&self, gpu: &Gpu, params: &wgpu::Buffer, u: &wgpu::Buffer, y: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "actnorm_inverse");
        gpu.pipelines().actnorm_inverse.bind(gpu, &un, &[params, u, y], grid(self.n * self.q, 64))
    }

    /// Writes β and a from the batch statistics of `y`.
    pub fn init(&self, gpu: &Gpu, params: &wgpu::Buffer, y: &wgpu::Buffer) -> Dispatch {
        let un = self.uniform(gpu, "actnorm_init");
        gpu.pipelines().actnorm_init.bind(gpu, &un, &[params, y], grid(self.q, 64))
    }

    /// dx (=) and the gradients of β and a (=, into `grads` at the parameters' offsets).
    pub fn backward(
        &self,
        gpu: &Gpu,
        params: &wgpu::Buffer,
        y: &wgpu::Buffer,
        du: &wgpu::Buffer,
        dld: &wgpu::Buffer,
        dx: &wgpu::Buffer,
        grads: &wgpu::Buffer,
    ) -> Dispatch {
        let un = self.uniform(gpu, "actnorm_backward");
        gpu.pipelines().actnorm_backward.bind(gpu, &un, &[params, y, du, dld, dx, grads], grid(self.n * self.q, 64))
    }
}
