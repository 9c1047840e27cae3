//! The S-sample marginal log-likelihood (thesis eq. 8) on the GPU: each chunk of points is
//! repeated S times with fresh ε from a fixed evaluation seed, run through the flow in one
//! pass, and reduced per point by a stable logsumexp; one small readback per chunk.

use crate::data::Table;
use crate::gpu::kernel::record_all;
use crate::gpu::{storage, try_read_back, uniform_storage, Dispatch, Gpu};
use crate::gpu_flow::{GpuFlow, Mode};
use crate::kernels::gemm::Variant;
use crate::kernels::optim::StepState;
use crate::kernels::{marginal, rng};
use crate::model::{Flow, FlowConfig};
use anyhow::{bail, Result};

/// Mean and standard error of per-point values.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub se: f64,
    pub n: usize,
}

impl Estimate {
    pub fn of(v: &[f64]) -> Self {
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        Self { mean, se: (var / n as f64).sqrt(), n }
    }
}

pub struct Evaluator {
    /// Importance samples per point (1 when B = 0: the estimate is exact).
    pub s: usize,
    pub points: usize,
    d: usize,
    gflow: GpuFlow,
    x: wgpu::Buffer,
    step: wgpu::Buffer,
    out: wgpu::Buffer,
    program: Vec<Dispatch>,
    /// Advanced by the points evaluated (hidden unless a caller sets one).
    progress: indicatif::ProgressBar,
}

/// Rows per evaluation pass: as many as the largest buffer allows, capped to keep memory modest.
pub fn max_rows(gpu: &Gpu, config: &FlowConfig) -> usize {
    let (q, h) = (config.q(), config.h());
    let widest = config.hidden.max(2 * (q - h)).max(q) as u64 * 4;
    let by_binding = gpu.limits.max_storage_buffer_binding_size / widest;
    (by_binding as usize).clamp(1, 1 << 16)
}

/// The most importance samples S one point may take: its S rows share one pass.
pub fn max_samples(gpu: &Gpu, config: &FlowConfig) -> usize {
    if config.b == 0 {
        usize::MAX // exact: S is not used
    } else {
        max_rows(gpu, config)
    }
}

impl Evaluator {
    pub fn new(gpu: &Gpu, flow: &Flow, s: usize) -> Result<Self> {
        Self::for_points(gpu, flow, s, usize::MAX)
    }

    /// An evaluator whose chunks hold at most `max_points` points (no larger than the data).
    pub fn for_points(gpu: &Gpu, flow: &Flow, s: usize, max_points: usize) -> Result<Self> {
        let s = if flow.config.b == 0 { 1 } else { s.max(1) };
        let most = max_samples(gpu, &flow.config);
        if s > most {
            bail!("--samples {s}: at most {most} importance samples per point fit one evaluation pass of this model on this adapter");
        }
        let points = (max_rows(gpu, &flow.config) / s).clamp(1, 4096).min(max_points.max(1));
        let (d, q) = (flow.config.d, flow.config.q());
        let n = points * s;
        let gflow = GpuFlow::build(gpu, flow, n, Mode::Inference, Variant::for_adapter(gpu));
        let x = storage(gpu, "eval.x", points * d);
        let step = uniform_storage(gpu, "eval.step", &StepState::default());
        let out = storage(gpu, "eval.out", points);
        let mut program = vec![rng::assemble(gpu, n, d, q, s, rng::stream::EVAL_EPS, &step, &x, &gflow.acts[0])];
        program.extend(gflow.forward_dispatches(false).iter().cloned());
        program.push(marginal::reduce(gpu, points, s, d, q, &gflow.acts[0], &gflow.logp, &out));
        gpu.check()?;
        Ok(Self { s, points, d, gflow, x, step, out, program, progress: indicatif::ProgressBar::hidden() })
    }

    /// log p(x) per row of `data`, with ε drawn from `seed` (the same seed, the same ε).
    pub fn log_likelihood(&self, gpu: &Gpu, data: &Table, seed: u64) -> Result<Vec<f64>> {
        self.log_likelihood_from(gpu, data, seed, 0)
    }

    /// `log_likelihood` of rows that continue a larger set at chunk `first_chunk` (whose
    /// ε they draw), so a split evaluated in blocks of whole chunks gets the same numbers.
    pub fn log_likelihood_from(&self, gpu: &Gpu, data: &Table, seed: u64, first_chunk: usize) -> Result<Vec<f64>> {
        if data.dim != self.d {
            bail!("data has {} dimensions, the model {}", data.dim, self.d);
        }
        let mut out = Vec::with_capacity(data.rows());
        let mut chunk = vec![0f32; self.points * self.d];
        for (c, start) in (0..data.rows()).step_by(self.points).enumerate() {
            crate::run::interrupt::check("evaluation")?;
            let len = self.points.min(data.rows() - start);
            chunk.clear();
            data.extend_rows(start..start + len, &mut chunk);
            chunk.resize(self.points * self.d, 0.0);
            // padding rows (zeros): computed, then ignored
            gpu.queue.write_buffer(&self.x, 0, bytemuck::cast_slice(&chunk));
            gpu.queue.write_buffer(
                &self.step,
                0,
                bytemuck::bytes_of(&StepState::new((first_chunk + c) as u32 + 1, seed, 0.0)),
            );
            let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("eval") });
            enc.clear_buffer(&self.gflow.logdet, 0, None);
            record_all(&mut enc, "eval", &self.program);
            gpu.queue.submit([enc.finish()]);
            let ll: Vec<f32> = try_read_back(gpu, &self.out, 0, len)?;
            self.progress.inc(len as u64);
            out.extend(ll.iter().map(|&v| v as f64));
        }
        Ok(out)
    }

    /// Shows the points evaluated on `bar` (a long evaluation's progress).
    pub fn set_progress(&mut self, bar: indicatif::ProgressBar) {
        self.progress = bar;
    }

    pub fn upload_params(&self, gpu: &Gpu, params: &[f32]) {
        self.gflow.upload_params(gpu, params);
    }
}
