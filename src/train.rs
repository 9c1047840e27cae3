//! Training on the GPU. `Trainer` owns everything a step touches, built once in `new`; a step
//! is one `write_buffer` of the minibatch, one of the step state, one encoder and one submit:
//! ε drawn on the GPU → forward per layer → loss → backward in reverse → gradient norm →
//! clip + Adam. The loss is summed on the GPU and read back every `log_every` steps through
//! a ring of staging buffers mapped asynchronously, so the host never waits on a step.
//!
//! `Trainer::new_models` trains several flows of one shape in the same dispatches (see
//! `gpu_flow`): each with its own data, noise seed, Adam state, gradient norm and loss, so
//! that each model follows exactly the path it would follow trained alone.

use crate::gpu::{storage, storage_init, try_read_back, Dispatch, Gpu};
use crate::gpu_flow::{GpuFlow, Kernels, Mode};
use crate::kernels::optim::{norm_parts, Optimizer, StepState};
use crate::kernels::{loss, rng};
use crate::model::Flow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Optimisation settings (MODEL.md's table gives the defaults per dataset).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimConfig {
    pub batch: usize,
    pub lr: f64,
    /// Clip the global gradient norm to this (none when absent).
    pub clip: Option<f64>,
    /// Seed of the training noise (ε) stream.
    pub noise_seed: u64,
    /// Keep an exponential moving average of the parameters with this decay (`--ema`).
    #[serde(default)]
    pub ema: Option<f64>,
}

/// What a logging interval reports, per model.
#[derive(Clone, Copy, Debug)]
pub struct Logged {
    /// Which model (0 when one is trained).
    pub model: usize,
    /// The step at the end of the interval.
    pub step: u64,
    /// Mean training loss (−log p_T) over the interval's finite steps.
    pub loss: f64,
    /// Steps whose loss was not finite.
    pub nonfinite: u32,
}

const X_RING: usize = 3;
const IDLE: u8 = 0;
const MAPPING: u8 = 1;
const MAPPED: u8 = 2;
const FAILED: u8 = 3;

struct Slot {
    buf: wgpu::Buffer,
    state: Arc<AtomicU8>,
    step: u64,
}

pub struct Trainer {
    pub gflow: GpuFlow,
    pub batch: usize,
    /// Row stride of a minibatch: the widest D of the models.
    d: usize,
    /// Each model's step state (its noise seed and D fixed; t, lr and the bias corrections
    /// rewritten every step), kept so that a step allocates nothing.
    states: Vec<StepState>,
    /// Steps taken so far (Adam's t after the last step).
    pub step: u64,
    lr: f64,
    /// `--ema`'s decay, when the parameters' average is kept.
    ema_decay: Option<f64>,
    initialized: bool,
    /// A ring of minibatch buffers, each with its own noise-and-assemble dispatch: the host
    /// writes minibatch t + 1 while the GPU may still read minibatch t.
    x_ring: Vec<(wgpu::Buffer, Dispatch)>,
    step_state: wgpu::Buffer,
    pub m: wgpu::Buffer,
    pub v: wgpu::Buffer,
    /// The parameters' moving average (`--ema`), the layout of `params`.
    pub ema: Option<wgpu::Buffer>,
    metrics: wgpu::Buffer,
    accumulate: Dispatch,
    optimizer: Optimizer,
    slots: Vec<Slot>,
}

impl Trainer {
    pub fn new(gpu: &Gpu, flow: &Flow, opt: &OptimConfig, kernels: &Kernels) -> Self {
        Self::new_models(gpu, &[flow], &[opt.noise_seed], opt, kernels)
    }

    /// Trains `flows` (one shape, see `gpu_flow::same_shape`) together, model z drawing its
    /// noise from `noise_seeds[z]`; `opt`'s batch, lr and clip apply to all of them. A group
    /// is never empty (run::train_members builds them from members), so an empty one panics.
    /// The program (fused couplings or GEMMs) and GEMM families are `kernels`' choices.
    pub fn new_models(gpu: &Gpu, flows: &[&Flow], noise_seeds: &[u64], opt: &OptimConfig, kernels: &Kernels) -> Self {
        let first = flows.first().expect("at least one flow");
        let mode = kernels.training_mode(&first.config, opt.batch);
        Self::with_mode(gpu, flows, noise_seeds, opt, mode, kernels)
    }

    /// `new_models` with the flow's program given (`Mode::Training`: fused couplings where
    /// they fit; `Mode::TrainingUnfused`: GEMMs); the GEMM families are `kernels`'.
    pub fn with_mode(
        gpu: &Gpu,
        flows: &[&Flow],
        noise_seeds: &[u64],
        opt: &OptimConfig,
        mode: Mode,
        kernels: &Kernels,
    ) -> Self {
        assert!(mode.training(), "a trainer needs a training mode");
        assert_eq!(flows.len(), noise_seeds.len(), "one noise seed per model");
        let models = flows.len();
        let first = flows.first().expect("at least one flow");
        let (q, p, n) = (first.config.q(), first.params.len(), opt.batch);
        let d = flows.iter().map(|f| f.config.d).max().expect("flows");
        let states: Vec<StepState> = flows
            .iter()
            .zip(noise_seeds)
            .map(|(f, &seed)| StepState { d: f.config.d as u32, ..StepState::new(0, seed, opt.lr) })
            .collect();
        let gflow = GpuFlow::build_models(gpu, flows, n, mode, kernels.gemm);
        let step_state = storage_init(gpu, "train.step", &states);
        let x_ring = (0..X_RING)
            .map(|i| {
                let x = storage(gpu, &format!("train.x{i}"), models * n * d);
                let a = rng::assemble(gpu, n, d, q, 1, rng::stream::TRAIN_EPS, &step_state, &x, &gflow.acts[0])
                    .models(models);
                (x, a)
            })
            .collect();
        let (m, v) = (storage(gpu, "adam.m", models * p), storage(gpu, "adam.v", models * p));
        let ema = opt.ema.map(|_| storage(gpu, "ema", models * p));
        let partials = storage(gpu, "norm.partials", models * norm_parts(p));
        let norm = storage(gpu, "norm", models);
        let metrics = storage(gpu, "metrics", 4 * models);
        let accumulate = loss::accumulate(gpu, n, &gflow.logp, &metrics).models(models);
        let optimizer = Optimizer::new(
            gpu,
            p,
            models,
            opt.clip,
            &step_state,
            &partials,
            &norm,
            &gflow.grads,
            &gflow.params,
            &m,
            &v,
            ema.as_ref().map(|b| (b, opt.ema.unwrap_or(0.0))),
        );
        let slots = (0..4)
            .map(|i| Slot {
                buf: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("metrics staging {i}")),
                    size: 16 * models as u64,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                state: Arc::new(AtomicU8::new(IDLE)),
                step: 0,
            })
            .collect();
        Self {
            gflow,
            batch: n,
            d,
            states,
            step: 0,
            lr: opt.lr,
            ema_decay: opt.ema,
            initialized: first.actnorm_initialized,
            x_ring,
            step_state,
            m,
            v,
            ema,
            metrics,
            accumulate,
            optimizer,
            slots,
        }
    }

    pub fn models(&self) -> usize {
        self.gflow.models
    }

    /// Restores Adam's moments, the parameters' average where one is kept, and the step
    /// count (resuming; every model's values one after another).
    pub fn restore(&mut self, gpu: &Gpu, m: &[f32], v: &[f32], ema: Option<&[f32]>, step: u64) {
        gpu.queue.write_buffer(&self.m, 0, bytemuck::cast_slice(m));
        gpu.queue.write_buffer(&self.v, 0, bytemuck::cast_slice(v));
        if let (Some(buf), Some(avg)) = (&self.ema, ema) {
            gpu.queue.write_buffer(buf, 0, bytemuck::cast_slice(avg));
        }
        self.step = step;
    }

    /// One training step on the minibatch `x` (batch, D) — for several models, each model's
    /// minibatch in turn, rows `d` wide (the widest D; narrower models' rows padded). With
    /// `log`, the interval's loss is queued for readback; finished readbacks are returned
    /// (possibly from earlier steps).
    pub fn step(&mut self, gpu: &Gpu, x: &[f32], log: bool) -> Vec<Logged> {
        assert_eq!(x.len(), self.models() * self.batch * self.d, "minibatch shape");
        self.step += 1;
        let t = u32::try_from(self.step).expect("fewer than 2^32 steps");
        let ring = (self.step % X_RING as u64) as usize;
        gpu.queue.write_buffer(&self.x_ring[ring].0, 0, bytemuck::cast_slice(x));
        let fresh = StepState {
            ema: self.ema_decay.map_or(0.0, |d| crate::kernels::optim::ema_decay(d, t) as f32),
            ..StepState::new(t, 0, self.lr)
        };
        for s in &mut self.states {
            *s = StepState { seed_lo: s.seed_lo, seed_hi: s.seed_hi, d: s.d, ..fresh };
        }
        gpu.queue.write_buffer(&self.step_state, 0, bytemuck::cast_slice(&self.states));
        let mut out = Vec::new();
        let slot = if log { self.free_slot(gpu, &mut out) } else { None };
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train step") });
        enc.clear_buffer(&self.gflow.logdet, 0, None);
        {
            let mut pass = enc
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("train step"), timestamp_writes: None });
            self.x_ring[ring].1.record(&mut pass);
            // The first minibatch initialises the ActNorms (MODEL.md), inside the same pass.
            for d in self.gflow.forward_dispatches(!self.initialized) {
                d.record(&mut pass);
            }
            self.accumulate.record(&mut pass);
            for d in self.gflow.backward_dispatches() {
                d.record(&mut pass);
            }
            for d in self.optimizer.dispatches() {
                d.record(&mut pass);
            }
        }
        self.initialized = true;
        if let Some(i) = slot {
            enc.copy_buffer_to_buffer(&self.metrics, 0, &self.slots[i].buf, 0, 16 * self.models() as u64);
            enc.clear_buffer(&self.metrics, 0, None);
        }
        gpu.queue.submit([enc.finish()]);
        if let Some(i) = slot {
            let s = &mut self.slots[i];
            s.step = self.step;
            s.state.store(MAPPING, Ordering::SeqCst);
            let state = s.state.clone();
            s.buf.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                state.store(if r.is_ok() { MAPPED } else { FAILED }, Ordering::SeqCst);
            });
        }
        // Drives map callbacks without waiting for the GPU.
        let _ = gpu.device.poll(wgpu::PollType::Poll);
        self.harvest(&mut out);
        out
    }

    /// A staging slot for this step's loss; none when the device has failed (the caller's
    /// `Gpu::check` reports that).
    fn free_slot(&mut self, gpu: &Gpu, out: &mut Vec<Logged>) -> Option<usize> {
        loop {
            self.harvest(out);
            if let Some(i) = self.slots.iter().position(|s| s.state.load(Ordering::SeqCst) == IDLE) {
                return Some(i);
            }
            // Every slot is in flight: the GPU is far behind, so waiting costs nothing.
            gpu.wait().ok()?;
        }
    }

    fn harvest(&mut self, out: &mut Vec<Logged>) {
        let mut ready: Vec<usize> = (0..self.slots.len())
            .filter(|&i| matches!(self.slots[i].state.load(Ordering::SeqCst), MAPPED | FAILED))
            .collect();
        ready.sort_by_key(|&i| self.slots[i].step);
        for i in ready {
            let s = &self.slots[i];
            if s.state.load(Ordering::SeqCst) == MAPPED {
                let Ok(range) = s.buf.slice(..).get_mapped_range() else {
                    s.state.store(IDLE, Ordering::SeqCst);
                    continue;
                };
                let v: Vec<f32> = bytemuck::cast_slice(&range).to_vec();
                drop(range);
                s.buf.unmap();
                for (model, v) in v.chunks(4).enumerate() {
                    let finite_steps = (v[1] - v[2]).max(0.0) as f64;
                    let loss = if finite_steps > 0.0 { v[0] as f64 / finite_steps } else { f64::NAN };
                    out.push(Logged { model, step: s.step, loss, nonfinite: v[2] as u32 });
                }
            }
            s.state.store(IDLE, Ordering::SeqCst);
        }
    }

    /// Waits for the GPU and returns every pending readback.
    pub fn drain(&mut self, gpu: &Gpu) -> anyhow::Result<Vec<Logged>> {
        let mut out = Vec::new();
        loop {
            gpu.wait()?;
            self.harvest(&mut out);
            // The wait can return while another thread polling the same device is still
            // running the map callback it completed (tests share one device): until every
            // readback has landed, a loss would go missing.
            if !self.slots.iter().any(|s| s.state.load(Ordering::SeqCst) == MAPPING) {
                return Ok(out);
            }
            std::thread::yield_now();
        }
    }

    /// Current parameters and Adam moments (blocking readback; model 0).
    pub fn download(&self, gpu: &Gpu) -> anyhow::Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        self.download_model(gpu, 0)
    }

    /// Model z's parameters and Adam moments.
    pub fn download_model(&self, gpu: &Gpu, z: usize) -> anyhow::Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (p, ps) = (self.gflow.num_params, &self.gflow.params);
        Ok((
            try_read_back(gpu, ps, z * p, p)?,
            try_read_back(gpu, &self.m, z * p, p)?,
            try_read_back(gpu, &self.v, z * p, p)?,
        ))
    }

    /// Model z's parameters alone (a validation reads no moments).
    pub fn download_params(&self, gpu: &Gpu, z: usize) -> anyhow::Result<Vec<f32>> {
        let p = self.gflow.num_params;
        try_read_back(gpu, &self.gflow.params, z * p, p)
    }

    /// Model z's parameter average (`--ema`), if one is kept.
    pub fn download_ema(&self, gpu: &Gpu, z: usize) -> anyhow::Result<Option<Vec<f32>>> {
        let p = self.gflow.num_params;
        self.ema.as_ref().map(|b| try_read_back(gpu, b, z * p, p)).transpose()
    }

    /// One step's dispatches in order (for profiling): noise, forward, loss, backward, Adam.
    pub fn program(&self) -> Vec<&Dispatch> {
        let mut v = vec![&self.x_ring[0].1];
        v.extend(self.gflow.forward_dispatches(false));
        v.push(&self.accumulate);
        v.extend(self.gflow.backward_dispatches());
        v.extend(self.optimizer.dispatches());
        v
    }

    /// The learning rate of the steps that follow (a schedule sets it step by step).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn initialized(&self) -> bool {
        self.initialized
    }
}
