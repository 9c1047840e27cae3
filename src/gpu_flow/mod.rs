//! A flow laid out on the GPU for batches of `n` rows: the flat parameter buffer, one
//! activation buffer per layer boundary, the conditioners' workspaces, and the forward,
//! inverse and (for training) backward programs as lists of dispatches built once.
//! Callers record those lists into their own encoders; nothing here allocates after `new`.
//!
//! Several flows of one shape (same Q, L, depth, H; their D, B, parameters and shuffles may
//! differ) can live in one `GpuFlow` (`build_models`): every buffer then holds one copy per
//! model, model z's `z·stride` elements in, and each dispatch runs all of them with the model
//! index as its grid's z. That is what makes a sweep of tiny models fast: one dispatch
//! instead of one per model.
//!
//! `build_models` is a loop over the layers: each layer kind has a plan in `plan` (its
//! buffers and its forward, inverse and backward dispatches), and `plan`'s header says how a
//! new kind is added.

mod conv_plan;
mod kernels;
mod plan;
pub use kernels::{inference_class, training_class, Kernels};

use crate::gpu::kernel::record_all;
use crate::gpu::{read_back, storage, storage_init, Dispatch, Gpu};
use crate::kernels::fused::Saved;
use crate::kernels::gemm::{GemmChoice, Variant};
use crate::kernels::loss;
use crate::model::{Flow, Layer};
use plan::{At, Build, Folds, Shape};

/// Whether the flow keeps what backprop needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward and inverse only (evaluation, sampling): each coupling is one fused dispatch
    /// (fused.wgsl) where its layers fit, else GEMMs sharing one workspace.
    Inference,
    /// Inference through the GEMMs and coupling.wgsl only: the unfused path, kept for
    /// before/after benchmarks.
    InferenceUnfused,
    /// Every conditioner keeps its activations; adds the backward program and `grads`. Each
    /// coupling whose layers fit is one fused dispatch forward (keeping its activations), one
    /// fused data-gradient dispatch and one grouped weight-gradient dispatch (wgrad.wgsl)
    /// backward: 3 dispatches where the GEMM path takes 2·depth + 3 + 2·(depth + 1).
    Training,
    /// Training through the GEMMs and coupling.wgsl only: the unfused path, kept for
    /// before/after benchmarks and for adapters where it is faster.
    TrainingUnfused,
}

impl Mode {
    pub fn training(self) -> bool {
        matches!(self, Mode::Training | Mode::TrainingUnfused)
    }
    fn fused(self) -> bool {
        matches!(self, Mode::Inference | Mode::Training)
    }
}

pub struct GpuFlow {
    /// Rows per batch (per model).
    pub n: usize,
    pub q: usize,
    /// Flows laid out side by side.
    pub models: usize,
    /// Parameters per model (`Flow::params.len()`, a multiple of 4).
    pub num_params: usize,
    /// Flat parameters, the layout of `Flow::tensors`, one copy per model.
    pub params: wgpu::Buffer,
    /// acts[0] = y, acts[k + 1] = output of layer k; the last is u. Each (n, q).
    pub acts: Vec<wgpu::Buffer>,
    pub logdet: wgpu::Buffer, // (n)
    pub logp: wgpu::Buffer,   // (n)
    /// ∂L/∂params, the layout of `params` (training only; a 1-element stand-in otherwise).
    pub grads: wgpu::Buffer,
    forward: Vec<Dispatch>,
    forward_init: Vec<Dispatch>,
    inverse: Vec<Dispatch>,
    backward: Vec<Dispatch>,
}

/// Whether two flows can share one `GpuFlow`: the same layers at the same parameter offsets
/// (same Q, L, depth, H). D, B, parameter values, shuffle permutations and 1×1
/// convolutions' fixed permutations and signs (drawn from the seed; every model gets its own
/// copy on the GPU) may differ.
pub fn same_shape(a: &Flow, b: &Flow) -> bool {
    let strip = |f: &Flow| -> Vec<Layer> {
        f.layers
            .iter()
            .map(|l| match l {
                Layer::Shuffle { index, .. } => Layer::Shuffle { index: *index, perm: Vec::new() },
                Layer::Inv1x1 { index, at, lu, .. } => {
                    Layer::Inv1x1 { index: *index, at: *at, lu: *lu, perm: Vec::new(), sign: Vec::new() }
                }
                l => l.clone(),
            })
            .collect()
    };
    a.config.q() == b.config.q() && a.params.len() == b.params.len() && strip(a) == strip(b)
}

/// What a `GpuFlow` (and a trainer around it) asks of the device, computed from the shape
/// alone so that a configuration can be checked before anything is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// The largest single buffer, in bytes (it must fit one storage binding).
    pub largest: u64,
    /// Every buffer together, in bytes.
    pub total: u64,
}

impl Footprint {
    /// `models` flows shaped like `config` on batches of `n` rows; training adds gradients,
    /// Adam's moments, per-coupling activations and the backprop scratch. `None` on overflow.
    pub fn of(config: &crate::model::FlowConfig, n: usize, mode: Mode, models: usize) -> Option<Self> {
        let dense = Self::dense(config, n, mode, models)?;
        match config.conv {
            Some(_) => conv_plan::footprint(config, n, mode, models, dense),
            None => Some(dense),
        }
    }

    /// The dense layers' share: the whole of a dense flow, a conv flow's head.
    fn dense(config: &crate::model::FlowConfig, n: usize, mode: Mode, models: usize) -> Option<Self> {
        let (q, h, l) = (config.head().1 as u64, config.h() as u64, config.blocks as u64);
        let (n, m, hid) = (n as u64, models as u64, config.hidden as u64);
        let p = config.padded_params()?;
        let width = hid.max(2 * (q - h)).max(q);
        let largest = p.max(n.checked_mul(width)?).checked_mul(m)?.checked_mul(4)?;
        // ActNorm + L·(coupling, reverse, coupling) + (L−1)·(shuffle, actnorm): 5L − 1 layers.
        let acts = (5 * l).checked_mul(n)?.checked_mul(q)?;
        let workspace = (config.depth as u64).checked_mul(hid)?.checked_add(2 * (q - h))?.checked_mul(n)?;
        let floats = match mode {
            Mode::Inference | Mode::InferenceUnfused => p.checked_add(acts)?.checked_add(workspace)?,
            Mode::Training | Mode::TrainingUnfused => (4 * p)
                .checked_add(acts)?
                .checked_add(workspace.checked_mul(2 * l + 1)?)?
                // the fused path also keeps each coupling's input rows
                .checked_add((2 * l).checked_mul(n)?.checked_mul(q + 4)?)?
                .checked_add(n.checked_mul(q)?.checked_mul(5)?)?,
        };
        Some(Self { largest, total: floats.checked_add(4 * n)?.checked_mul(m)?.checked_mul(4)? })
    }

    /// Whether this device can hold it: the largest buffer within one storage binding, the
    /// whole within the memory mflow may use (`Gpu::memory_budget`).
    pub fn fits(&self, gpu: &Gpu) -> bool {
        let binding = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
        self.largest <= binding && gpu.memory_budget().is_none_or(|b| self.total <= b)
    }
}

/// The largest value in 1..=hi for which `ok` holds, assuming `ok` is monotone (true up to
/// some value, false past it); 0 when none. Sizes the largest batch, width or sample count
/// that fits a device.
pub fn largest_fitting(ok: impl Fn(usize) -> bool, hi: usize) -> usize {
    let (mut lo, mut hi) = (0usize, hi);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if ok(mid) {
            lo = mid
        } else {
            hi = mid - 1
        }
    }
    lo
}

/// Bytes as "1.5 GiB" for messages.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// The buffers every part of a `GpuFlow` shares.
pub(crate) struct Common {
    pub params: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub logdet: wgpu::Buffer,
    pub logp: wgpu::Buffer,
    /// ∂L/∂logdet per row (training; a stand-in otherwise).
    pub dld: wgpu::Buffer,
}

/// A part's programs, each in running order (the backward from the last layer down).
#[derive(Default)]
pub(crate) struct Program {
    pub forward: Vec<Dispatch>,
    pub forward_init: Vec<Dispatch>,
    pub inverse: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
}

/// The dense layers from `first` on, over rows of their width (`FlowConfig::head`): the whole
/// flow of a dense flow, the head of a conv flow.
pub(crate) struct DensePart {
    /// acts[0] is the first layer's input; the last, the output.
    pub acts: Vec<wgpu::Buffer>,
    pub prog: Program,
    /// Where the backward reads ∂L/∂(output) ...
    pub du_out: wgpu::Buffer,
    /// ... and leaves ∂L/∂(input) (training).
    pub dx_in: wgpu::Buffer,
}

/// Plans the dense layers `flows[..].layers[first..]` (see `DensePart`); `input` replaces the
/// first layer's own input buffer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_dense(
    gpu: &Gpu,
    flows: &[&Flow],
    first: usize,
    n: usize,
    mode: Mode,
    gemms: GemmChoice,
    c: &Common,
    input: Option<wgpu::Buffer>,
) -> DensePart {
    let flow = flows[0];
    let layers = &flow.layers[first..];
    let models = flows.len();
    let (q, ps) = (flow.config.head().1, flow.params.len());
    let binding = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
    let s = Shape { gemms, n, q, models, ps, binding };
    let training = mode.training();
    let mut input = input;
    let acts: Vec<_> = (0..=layers.len())
        .map(|k| match input.take().filter(|_| k == 0) {
            Some(b) => b,
            None => storage(gpu, &format!("acts{}", first + k), models * n * q),
        })
        .collect();
    // Every coupling has the same layout, so scratch sized for the first serves all.
    let first_linears = layers.iter().find_map(|l| match l {
        Layer::Coupling { linears, .. } => Some(linears.clone()),
        _ => None,
    });
    // Backprop scratch: ∂L/∂u ping-pong (1-element stand-ins otherwise).
    let scratch = |label: &str, len: usize| storage(gpu, label, if training { len } else { 1 });
    let dacts = [scratch("dacts0", models * n * q), scratch("dacts1", models * n * q)];
    let fuse = mode.fused();
    let (shared, dz) = match (&first_linears, training) {
        (Some(l), false) => (plan::workspace(gpu, &s, "cond", l), Vec::new()),
        (Some(l), true) => (Vec::new(), plan::workspace(gpu, &s, "dz", l)),
        (None, _) => (Vec::new(), Vec::new()),
    };
    let dz_fused = match &first_linears {
        Some(l) if training && plan::fuses(&s, fuse, training, l) => {
            storage(gpu, "dz.fused", models * Saved::new(n, q, l).per_model)
        }
        _ => storage(gpu, "dz.fused", 1),
    };
    let b = Build {
        gpu,
        flows,
        first,
        s,
        training,
        fuse,
        params: &c.params,
        grads: &c.grads,
        acts: &acts,
        logdet: &c.logdet,
        dld: &c.dld,
        dz: &dz,
        dz_fused: &dz_fused,
        shared: &shared,
    };
    let mut prog = Program::default();
    let (mut inverse_rev, mut backward_rev) = (Vec::new(), Vec::new()); // per layer, reversed at the end
    let mut folds = Folds::default();
    // Which dacts buffer holds ∂L/∂(output of the layer being planned).
    let mut cur = 0;
    for (k, layer) in layers.iter().enumerate() {
        let (du, dx) = (&dacts[cur], &dacts[1 - cur]);
        let at = At { k, x: &acts[k], u: &acts[k + 1], du, dx, next: layers.get(k + 1) };
        let p = match layer {
            Layer::ActNorm { beta, a, .. } => plan::actnorm(&b, &at, *beta, *a, &mut folds),
            Layer::Coupling { index, linears } if b.fused_coupling(linears) => {
                plan::fused_coupling(&b, &at, *index, linears, &mut folds)
            }
            Layer::Coupling { index, linears } => plan::gemm_coupling(&b, &at, *index, linears, &mut folds),
            Layer::Reverse | Layer::Shuffle { .. } => plan::permutation(&b, &at, &mut folds),
            _ => unreachable!("conv layers are planned by conv_plan"),
        };
        prog.forward_init.extend(p.init);
        prog.forward_init.extend(p.forward.iter().cloned());
        prog.forward.extend(p.forward);
        inverse_rev.push(p.inverse);
        backward_rev.push(p.backward);
        // Layer k's backward reads ∂L/∂(its output) from dacts[cur] and writes ∂L/∂(its
        // input) to the other; layer k − 1 then reads that one. A layer folded into a
        // neighbour shares its boundary.
        if p.own_gradient {
            cur = 1 - cur;
        }
    }
    prog.inverse = inverse_rev.into_iter().rev().flatten().collect();
    prog.backward = backward_rev.into_iter().rev().flatten().collect();
    // The last layer was planned with cur flipped after it: its du is dacts[1 − cur]; the
    // first layer's dx is dacts[1] (planned with cur = 0; a first layer folded into the
    // second shares the second's boundary, which also starts at 0).
    let [d0, d1] = dacts;
    let (du_out, dx_in) = if cur == 0 { (d1.clone(), d1) } else { (d0, d1) };
    DensePart { acts, prog, du_out, dx_in }
}

/// Output of a forward run, read back.
pub struct ForwardOut {
    pub u: Vec<f32>,
    pub logdet: Vec<f32>,
    pub logp: Vec<f32>,
}

impl GpuFlow {
    pub fn new(gpu: &Gpu, flow: &Flow, n: usize) -> Self {
        Self::build(gpu, flow, n, Mode::Inference, Variant::for_adapter(gpu))
    }

    pub fn with_variant(gpu: &Gpu, flow: &Flow, n: usize, variant: Variant) -> Self {
        Self::build(gpu, flow, n, Mode::Inference, variant)
    }

    /// `gemms`: one `Variant` for every product, or the tuner's `GemmChoice` per kind.
    pub fn build(gpu: &Gpu, flow: &Flow, n: usize, mode: Mode, gemms: impl Into<GemmChoice>) -> Self {
        Self::build_models(gpu, &[flow], n, mode, gemms)
    }

    /// Several flows of one shape side by side (see the module header). Panics when their
    /// shapes differ: `same_shape` says whether they can share.
    pub fn build_models(gpu: &Gpu, flows: &[&Flow], n: usize, mode: Mode, gemms: impl Into<GemmChoice>) -> Self {
        assert!(n > 0, "a batch has at least one row");
        let flow = flows.first().expect("at least one flow");
        assert!(flows.iter().all(|f| same_shape(flow, f)), "flows of one GpuFlow must share their shape");
        let models = flows.len();
        let (q, ps) = (flow.config.q(), flow.params.len());
        let training = mode.training();
        let all_params: Vec<f32> = flows.iter().flat_map(|f| f.params.iter().copied()).collect();
        let c = Common {
            params: storage_init(gpu, "params", &all_params),
            grads: storage(gpu, "grads", if training { models * ps } else { 1 }),
            logdet: storage(gpu, "logdet", models * n),
            logp: storage(gpu, "logp", models * n),
            dld: storage(gpu, "dld", if training { models * n } else { 1 }),
        };
        let gemms = gemms.into();
        let (acts, mut prog, du_last) = if flow.config.conv.is_some() {
            conv_plan::build(gpu, flows, n, mode, gemms, &c)
        } else {
            let d = plan_dense(gpu, flows, 0, n, mode, gemms, &c, None);
            let du = d.du_out;
            (d.acts, d.prog, du)
        };
        let u = acts.last().expect("acts");
        let lp = loss::log_prob(gpu, n, q, u, &c.logdet, &c.logp).models(models);
        prog.forward_init.push(lp.clone());
        prog.forward.push(lp);
        if training {
            let mut backward = vec![loss::backward(gpu, n, q, u, &du_last, &c.dld).models(models)];
            backward.append(&mut prog.backward);
            prog.backward = backward;
        }
        Self {
            n,
            q,
            models,
            num_params: ps,
            params: c.params,
            acts,
            logdet: c.logdet,
            logp: c.logp,
            grads: c.grads,
            forward: prog.forward,
            forward_init: prog.forward_init,
            inverse: prog.inverse,
            backward: prog.backward,
        }
    }

    /// How many flows shaped like `flow` fit in one `GpuFlow` of `n` rows: its largest buffer
    /// (parameters, or the widest activation) must fit one storage binding of this device.
    pub fn max_models(gpu: &Gpu, flow: &Flow, n: usize) -> usize {
        let per_model = flow.params.len().max(n * flow.max_linear_width().max(flow.config.q())).max(1) * 4;
        let limit = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size) as usize;
        (limit / per_model).clamp(1, 65535)
    }

    /// The buffer holding u after a forward run.
    pub fn u(&self) -> &wgpu::Buffer {
        self.acts.last().expect("acts")
    }

    /// The forward program (y in acts[0] → u, logdet, logp); logdet must be cleared first.
    /// With `init`, each ActNorm first takes its input's batch statistics.
    pub fn forward_dispatches(&self, init: bool) -> &[Dispatch] {
        if init {
            &self.forward_init
        } else {
            &self.forward
        }
    }

    /// The backward program: loss gradient, then every layer in reverse; fills `grads`.
    pub fn backward_dispatches(&self) -> &[Dispatch] {
        &self.backward
    }

    /// The inverse program (u in the last acts buffer → y in acts[0]).
    pub fn inverse_dispatches(&self) -> &[Dispatch] {
        &self.inverse
    }

    /// Uploads the parameters of every model, one after another.
    pub fn upload_params(&self, gpu: &Gpu, params: &[f32]) {
        assert_eq!(params.len(), self.models * self.num_params);
        gpu.queue.write_buffer(&self.params, 0, bytemuck::cast_slice(params));
    }

    /// Model 0's parameters.
    pub fn download_params(&self, gpu: &Gpu) -> Vec<f32> {
        self.download_model(gpu, 0)
    }

    pub fn download_model(&self, gpu: &Gpu, z: usize) -> Vec<f32> {
        assert!(z < self.models);
        read_back(gpu, &self.params, z * self.num_params, self.num_params)
    }

    fn check_rows(&self, data: &[f32]) {
        let rows = self.models * self.n;
        assert_eq!(data.len(), rows * self.q, "expected {rows} rows of {} values", self.q);
    }

    /// Runs the forward on `y` (n, q) and reads everything back.
    pub fn forward(&self, gpu: &Gpu, y: &[f32]) -> ForwardOut {
        self.run_forward(gpu, y, false)
    }

    /// Data-dependent ActNorm initialisation from the batch `y`, then the forward.
    pub fn init_and_forward(&self, gpu: &Gpu, y: &[f32]) -> ForwardOut {
        self.run_forward(gpu, y, true)
    }

    fn run_forward(&self, gpu: &Gpu, y: &[f32], init: bool) -> ForwardOut {
        self.check_rows(y);
        gpu.queue.write_buffer(&self.acts[0], 0, bytemuck::cast_slice(y));
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        enc.clear_buffer(&self.logdet, 0, None);
        record_all(&mut enc, "forward", self.forward_dispatches(init));
        gpu.queue.submit([enc.finish()]);
        let rows = self.models * self.n;
        ForwardOut {
            u: read_back(gpu, self.u(), 0, rows * self.q),
            logdet: read_back(gpu, &self.logdet, 0, rows),
            logp: read_back(gpu, &self.logp, 0, rows),
        }
    }

    /// Forward then backward on `y` (training mode): returns the loss and reads `grads` back.
    pub fn loss_and_grad(&self, gpu: &Gpu, y: &[f32]) -> (f64, Vec<f32>) {
        assert!(!self.backward.is_empty(), "built without a training mode");
        assert_eq!(self.models, 1, "loss_and_grad runs one model");
        self.check_rows(y);
        gpu.queue.write_buffer(&self.acts[0], 0, bytemuck::cast_slice(y));
        let mut enc =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("loss_and_grad") });
        enc.clear_buffer(&self.logdet, 0, None);
        record_all(&mut enc, "forward+backward", self.forward.iter().chain(&self.backward));
        gpu.queue.submit([enc.finish()]);
        let logp: Vec<f32> = read_back(gpu, &self.logp, 0, self.n);
        let loss = -logp.iter().map(|&v| v as f64).sum::<f64>() / self.n as f64;
        (loss, read_back(gpu, &self.grads, 0, self.num_params))
    }

    /// Runs the inverse on `u` (n, q) and returns y.
    pub fn inverse(&self, gpu: &Gpu, u: &[f32]) -> Vec<f32> {
        self.check_rows(u);
        gpu.queue.write_buffer(self.u(), 0, bytemuck::cast_slice(u));
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("inverse") });
        record_all(&mut enc, "inverse", self.inverse_dispatches());
        gpu.queue.submit([enc.finish()]);
        read_back(gpu, &self.acts[0], 0, self.models * self.n * self.q)
    }
}
