//! The S-sample marginal log-likelihood (thesis eq. 8) on the GPU: each chunk of points is
//! repeated S times with fresh ε from a fixed evaluation seed, run through the flow in one
//! pass, and reduced per point by a stable logsumexp; one small readback per chunk.

use crate::data::Table;
use crate::gpu::kernel::record_all;
use crate::gpu::{storage, uniform_storage, Dispatch, Gpu};
use crate::gpu_flow::{GpuFlow, Kernels, Mode};
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
    /// Two MAP_READ buffers, made once: chunk c's result is mapped while chunk c + 1 runs.
    staging: [wgpu::Buffer; 2],
    /// Advanced by the points evaluated (hidden unless a caller sets one).
    progress: indicatif::ProgressBar,
    /// Queue the next chunk before reading the last back (false: one chunk at a time, the
    /// old path, kept for `mflow bench eval`'s before/after).
    pub overlap: bool,
}

/// A chunk in flight: its staging slot, its rows, its submission and its map callback.
struct Pending {
    slot: usize,
    len: usize,
    index: wgpu::SubmissionIndex,
    rx: std::sync::mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
}

/// The conditioner work of one evaluation chunk, at most: about a second on lavapipe, still
/// milliseconds of a GPU's time.
pub const MAX_CHUNK_FLOPS: f64 = (1u64 << 34) as f64;

/// Rows per evaluation pass: as many as the largest buffer allows, capped to keep memory modest.
pub fn max_rows(gpu: &Gpu, config: &FlowConfig) -> usize {
    let (q, h) = (config.q(), config.h());
    let widest = config.hidden.max(2 * (q - h)).max(q) as u64 * 4;
    let by_binding = gpu.limits.max_storage_buffer_binding_size / widest;
    (by_binding as usize).clamp(1, 1 << 16)
}

/// The most importance samples S one point may take: its S rows share one pass.
pub fn max_samples(gpu: &Gpu, config: &FlowConfig) -> usize {
    if config.exact() {
        usize::MAX // exact: S is not used
    } else {
        max_rows(gpu, config)
    }
}

impl Evaluator {
    pub fn new(gpu: &Gpu, flow: &Flow, s: usize, kernels: &Kernels) -> Result<Self> {
        Self::for_points(gpu, flow, s, usize::MAX, kernels)
    }

    /// An evaluator whose chunks hold at most `max_points` points (no larger than the data),
    /// with `kernels`' program for this shape.
    pub fn for_points(gpu: &Gpu, flow: &Flow, s: usize, max_points: usize, kernels: &Kernels) -> Result<Self> {
        Self::with_mode(gpu, flow, s, max_points, kernels.inference_mode(&flow.config), kernels)
    }

    /// `for_points` with the flow built in `mode` (`Mode::InferenceUnfused`: the GEMM path).
    pub fn with_mode(
        gpu: &Gpu,
        flow: &Flow,
        s: usize,
        max_points: usize,
        mode: Mode,
        kernels: &Kernels,
    ) -> Result<Self> {
        let s = if flow.config.exact() { 1 } else { s.max(1) };
        let most = max_samples(gpu, &flow.config);
        if s > most {
            bail!("--samples {s}: at most {most} importance samples per point fit one evaluation pass of this model on this adapter");
        }
        // A chunk is also bounded in work, so that a signal is answered between chunks within
        // seconds even on a CPU adapter (an H = 1024 chunk of 65536 rows took minutes).
        let by_work = (MAX_CHUNK_FLOPS / (flow.config.conditioner_flops() * s as f64)) as usize;
        let most = (max_rows(gpu, &flow.config) / s).min(by_work).clamp(1, 4096);
        // Equal chunks: 2000 points in chunks of at most 655 run as 4 chunks of 500, not three
        // full ones and a 35-point one that still computes every row.
        let wanted = max_points.max(1);
        let points = wanted.div_ceil(wanted.div_ceil(most)).min(most);
        let (d, q) = (flow.config.d, flow.config.q());
        let n = points * s;
        let gflow = GpuFlow::build(gpu, flow, n, mode, kernels.gemm);
        let x = storage(gpu, "eval.x", points * d);
        let step = uniform_storage(gpu, "eval.step", &StepState::default());
        let out = storage(gpu, "eval.out", points);
        let mut program = vec![rng::assemble(gpu, n, d, q, s, rng::stream::EVAL_EPS, &step, &x, &gflow.acts[0])];
        program.extend(gflow.forward_dispatches(false).iter().cloned());
        program.push(marginal::reduce(gpu, points, s, d, q, &gflow.acts[0], &gflow.logp, &out));
        let staging = [0, 1].map(|i| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("eval.staging{i}")),
                size: (points * 4) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        gpu.check()?;
        Ok(Self {
            s,
            points,
            d,
            gflow,
            x,
            step,
            out,
            program,
            staging,
            progress: indicatif::ProgressBar::hidden(),
            overlap: true,
        })
    }

    /// Dispatches per chunk (noise and assembly, the forward flow, the logsumexp).
    pub fn dispatches(&self) -> usize {
        self.program.len()
    }

    /// One chunk's dispatches in order (for profiling).
    pub fn program(&self) -> Vec<&crate::gpu::Dispatch> {
        self.program.iter().collect()
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
        // Chunk c is submitted before chunk c − 1's result is waited for, so the GPU always
        // has the next chunk queued while the host reads the last one back.
        let mut pending: Option<Pending> = None;
        for (c, start) in (0..data.rows()).step_by(self.points).enumerate() {
            crate::interrupt::check("evaluation")?;
            let len = self.points.min(data.rows() - start);
            chunk.clear();
            data.extend_rows(start..start + len, &mut chunk);
            chunk.resize(self.points * self.d, 0.0); // padding rows (zeros): computed, then ignored
            gpu.queue.write_buffer(&self.x, 0, bytemuck::cast_slice(&chunk));
            let state = StepState::new((first_chunk + c) as u32 + 1, seed, 0.0);
            gpu.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&state));
            let slot = c % 2;
            let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("eval") });
            enc.clear_buffer(&self.gflow.logdet, 0, None);
            record_all(&mut enc, "eval", &self.program);
            enc.copy_buffer_to_buffer(&self.out, 0, &self.staging[slot], 0, (len * 4) as u64);
            let index = gpu.queue.submit([enc.finish()]);
            let (tx, rx) = std::sync::mpsc::channel();
            self.staging[slot].slice(..(len * 4) as u64).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            if let Some(prev) = pending.replace(Pending { slot, len, index, rx }) {
                self.collect(gpu, prev, &mut out)?;
            }
            if !self.overlap {
                if let Some(p) = pending.take() {
                    self.collect(gpu, p, &mut out)?;
                }
            }
        }
        if let Some(prev) = pending {
            self.collect(gpu, prev, &mut out)?;
        }
        Ok(out)
    }

    /// Waits for one chunk's mapped result and appends it.
    fn collect(&self, gpu: &Gpu, p: Pending, out: &mut Vec<f64>) -> Result<()> {
        let Pending { slot, len, index, rx } = p;
        // Waiting for this chunk's submission alone: the next chunk keeps running.
        gpu.wait_for(index)?;
        let mapped = match rx.try_recv() {
            Ok(r) => r,
            Err(_) => {
                gpu.wait()?;
                rx.recv().map_err(|_| crate::gpu::DeviceError("an evaluation readback was dropped".into()))?
            }
        };
        mapped.map_err(|e| crate::gpu::DeviceError(format!("mapping an evaluation result failed: {e}")))?;
        let buf = &self.staging[slot];
        {
            let view =
                buf.slice(..(len * 4) as u64).get_mapped_range().map_err(|e| anyhow::anyhow!("reading back: {e}"))?;
            out.extend(bytemuck::cast_slice::<u8, f32>(&view).iter().map(|&v| v as f64));
        }
        buf.unmap();
        self.progress.inc(len as u64);
        Ok(())
    }

    /// Shows the points evaluated on `bar` (a long evaluation's progress).
    pub fn set_progress(&mut self, bar: indicatif::ProgressBar) {
        self.progress = bar;
    }

    pub fn upload_params(&self, gpu: &Gpu, params: &[f32]) {
        self.gflow.upload_params(gpu, params);
    }
}
