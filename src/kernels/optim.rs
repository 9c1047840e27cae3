//! Wrapper of shaders/optim.wgsl: gradient norm, clipping, Adam. Twin: src/reference/optim.rs.

use crate::gpu::{grid, uniform, Dispatch, Gpu};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimUniform {
    pub count: u32,
    pub parts: u32,
    pub clip: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// The parameters' moving-average decay `--ema` (0: none kept; each step's own decay is
    /// in its `StepState`).
    pub ema: f32,
    pub _pad: u32,
}

/// The per-step values every step-dependent kernel reads from one small storage buffer,
/// written by the host before each submit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepState {
    /// Adam's step t (1-based), also the noise counter.
    pub t: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    /// The model's data dimension where models of one group differ in D (0: the kernel's own).
    pub d: u32,
    pub lr: f32,
    /// 1 − β1^t and 1 − β2^t, computed in f64.
    pub bc1: f32,
    pub bc2: f32,
    /// The parameters' moving-average decay at this step (`ema_decay`; 0 without `--ema`).
    pub ema: f32,
}

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPS: f64 = 1e-8;

impl StepState {
    pub fn new(t: u32, seed: u64, lr: f64) -> Self {
        Self {
            t,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            d: 0,
            lr: lr as f32,
            bc1: (1.0 - BETA1.powi(t as i32)) as f32,
            bc2: (1.0 - BETA2.powi(t as i32)) as f32,
            ema: 0.0,
        }
    }
}

/// The decay the parameters' average uses at step t (1-based): `decay`, but at most
/// (1 + t)/(10 + t), so that early in a run the average forgets the untrained parameters
/// quickly (the num_updates rule of TensorFlow's moving averages). A fixed 0.999 would
/// still hold 9% of step 1's parameters after the default job's 2,400 steps.
pub fn ema_decay(decay: f64, t: u32) -> f64 {
    decay.min((1.0 + t as f64) / (10.0 + t as f64))
}

/// Workgroups of the first norm pass: each thread sums at least 64 values, so small models
/// use few workgroups (on CPU adapters every workgroup barrier is expensive), and at most
/// 1024, few enough for the single-workgroup final pass; large models still fill a GPU.
pub fn norm_parts(count: usize) -> usize {
    count.div_ceil(256 * 64).clamp(1, 1024)
}

/// The three dispatches of one optimizer step over `count` parameters per model, for
/// `models` models laid out one after another in each buffer (`step` holds one
/// `StepState` per model, `norm` one value per model).
pub struct Optimizer {
    pub sumsq: Dispatch,
    pub norm: Dispatch,
    pub adam: Dispatch,
}

impl Optimizer {
    pub fn new(
        gpu: &Gpu,
        count: usize,
        models: usize,
        clip: Option<f64>,
        step: &wgpu::Buffer,
        partials: &wgpu::Buffer,
        norm: &wgpu::Buffer,
        grads: &wgpu::Buffer,
        params: &wgpu::Buffer,
        m: &wgpu::Buffer,
        v: &wgpu::Buffer,
        ema: Option<(&wgpu::Buffer, f64)>,
    ) -> Self {
        let parts = norm_parts(count);
        let u = OptimUniform {
            count: count as u32,
            parts: parts as u32,
            clip: clip.unwrap_or(0.0) as f32,
            beta1: BETA1 as f32,
            beta2: BETA2 as f32,
            eps: EPS as f32,
            ema: ema.map_or(0.0, |(_, d)| d as f32),
            _pad: 0,
        };
        // Without an average the binding still needs a buffer of its own (one buffer bound
        // twice read-write is a usage conflict): a 4-float stand-in the shader never touches.
        let stand_in;
        let avg = match ema {
            Some((b, _)) => b,
            None => {
                stand_in = crate::gpu::storage(gpu, "ema.none", 4);
                &stand_in
            }
        };
        let k = gpu.pipelines();
        let un = uniform(gpu, "optim", &u);
        Self {
            sumsq: k.grad_sumsq.bind(gpu, &un, &[grads, partials], [parts as u32, 1, 1]).models(models),
            norm: k.grad_norm.bind(gpu, &un, &[partials, norm], [1, 1, 1]).models(models),
            // Four parameters per thread where the count allows (mflow's always does).
            adam: if count.is_multiple_of(4) {
                k.adam4.bind(gpu, &un, &[step, norm, grads, params, m, v, avg], grid(count / 4, 64)).models(models)
            } else {
                k.adam.bind(gpu, &un, &[step, norm, grads, params, m, v, avg], grid(count, 64)).models(models)
            },
        }
    }

    pub fn dispatches(&self) -> [&Dispatch; 3] {
        [&self.sumsq, &self.norm, &self.adam]
    }
}
