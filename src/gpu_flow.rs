//! A flow laid out on the GPU for batches of up to `n` rows: the flat parameter buffer,
//! one activation buffer per layer boundary (kept for backprop), the conditioners'
//! workspaces, and the forward / inverse programs as lists of dispatches built once.
//! Running a program = one encoder, one submit.

use crate::gpu::kernel::record_all;
use crate::gpu::{read_back, storage, storage_init, Dispatch, Gpu};
use crate::kernels::gemm::{Gemm, Variant, View};
use crate::kernels::{actnorm::ActNorm, coupling::Coupling, loss, permute};
use crate::model::{invert_perm, Flow, Layer, Linear};

pub struct GpuFlow {
    /// Rows per batch.
    pub n: usize,
    pub q: usize,
    pub num_params: usize,
    /// Flat parameters, the layout of `Flow::tensors`.
    pub params: wgpu::Buffer,
    /// acts[0] = y, acts[k + 1] = output of layer k; the last is u. Each (n, q).
    pub acts: Vec<wgpu::Buffer>,
    /// Per layer: the conditioner's linear outputs (hidden layers post-ReLU, then rm).
    pub cond: Vec<Vec<wgpu::Buffer>>,
    pub logdet: wgpu::Buffer, // (n)
    pub logp: wgpu::Buffer,   // (n)
    forward: Vec<Dispatch>,
    forward_init: Vec<Dispatch>,
    inverse: Vec<Dispatch>,
}

/// The conditioner of a coupling as GEMMs reading the first h columns of `x`.
fn conditioner(
    gpu: &Gpu,
    variant: Variant,
    params: &wgpu::Buffer,
    linears: &[Linear],
    x: &wgpu::Buffer,
    outs: &[wgpu::Buffer],
    n: usize,
    q: usize,
    label: &str,
) -> Vec<Dispatch> {
    linears
        .iter()
        .enumerate()
        .map(|(k, lin)| {
            let a = if k == 0 { View::rows(x, 0, q) } else { View::rows(&outs[k - 1], 0, lin.fan_in) };
            Gemm {
                m: n,
                n: lin.fan_out,
                k: lin.fan_in,
                a,
                b: View::rows(params, lin.w, lin.fan_out),
                bias: Some((params, lin.b)),
                mask: None,
                c: View::rows(&outs[k], 0, lin.fan_out),
                relu: k + 1 < linears.len(),
                accumulate: false,
            }
            .dispatch(gpu, variant, &format!("{label}.W{k}"))
        })
        .collect()
}

/// Output of a forward run, read back.
pub struct ForwardOut {
    pub u: Vec<f32>,
    pub logdet: Vec<f32>,
    pub logp: Vec<f32>,
}

impl GpuFlow {
    pub fn new(gpu: &Gpu, flow: &Flow, n: usize) -> Self {
        Self::with_variant(gpu, flow, n, Variant::for_adapter(gpu))
    }

    pub fn with_variant(gpu: &Gpu, flow: &Flow, n: usize, variant: Variant) -> Self {
        assert!(n > 0, "a batch has at least one row");
        let q = flow.config.q();
        let params = storage_init(gpu, "params", &flow.params);
        let acts: Vec<_> = (0..=flow.layers.len()).map(|k| storage(gpu, &format!("acts{k}"), n * q)).collect();
        let cond: Vec<Vec<_>> = flow
            .layers
            .iter()
            .enumerate()
            .map(|(k, l)| match l {
                Layer::Coupling { linears, .. } => linears
                    .iter()
                    .enumerate()
                    .map(|(j, lin)| storage(gpu, &format!("layer{k}.out{j}"), n * lin.fan_out))
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        let logdet = storage(gpu, "logdet", n);
        let logp = storage(gpu, "logp", n);

        let mut forward = Vec::new();
        let mut forward_init = Vec::new();
        let mut inverse_rev = Vec::new(); // built per layer, reversed at the end
        for (k, layer) in flow.layers.iter().enumerate() {
            let (x, u) = (&acts[k], &acts[k + 1]);
            let mut fwd = Vec::new();
            let mut inv = Vec::new();
            match layer {
                Layer::ActNorm { beta, a, .. } => {
                    let an = ActNorm { n, q, beta_off: *beta, a_off: *a };
                    forward_init.push(an.init(gpu, &params, x));
                    fwd.push(an.forward(gpu, &params, x, u, &logdet));
                    inv.push(an.inverse(gpu, &params, u, x));
                }
                Layer::Coupling { index, linears } => {
                    let cp = Coupling { n, q };
                    let rm = cond[k].last().expect("output layer");
                    fwd.extend(conditioner(gpu, variant, &params, linears, x, &cond[k], n, q, &format!("cp{index}")));
                    fwd.push(cp.forward(gpu, x, rm, u, &logdet));
                    inv.extend(conditioner(
                        gpu,
                        variant,
                        &params,
                        linears,
                        u,
                        &cond[k],
                        n,
                        q,
                        &format!("cp{index}.inv"),
                    ));
                    inv.push(cp.inverse(gpu, u, rm, x));
                }
                Layer::Reverse | Layer::Shuffle { .. } => {
                    let idx = layer.gather_indices(q).expect("permutation");
                    let fwd_idx = storage_init(gpu, "perm", &idx);
                    let inv_idx = storage_init(gpu, "perm_inv", &invert_perm(&idx));
                    fwd.push(permute::gather(gpu, n, q, &fwd_idx, x, u));
                    inv.push(permute::gather(gpu, n, q, &inv_idx, u, x));
                }
            }
            forward_init.extend(fwd.iter().cloned());
            forward.extend(fwd);
            inverse_rev.push(inv);
        }
        let lp = loss::log_prob(gpu, n, q, &acts[flow.layers.len()], &logdet, &logp);
        forward_init.push(lp.clone());
        forward.push(lp);
        let inverse = inverse_rev.into_iter().rev().flatten().collect();
        Self { n, q, num_params: flow.params.len(), params, acts, cond, logdet, logp, forward, forward_init, inverse }
    }

    /// The buffer holding u after a forward run.
    pub fn u(&self) -> &wgpu::Buffer {
        self.acts.last().expect("acts")
    }

    pub fn upload_params(&self, gpu: &Gpu, params: &[f32]) {
        assert_eq!(params.len(), self.num_params);
        gpu.queue.write_buffer(&self.params, 0, bytemuck::cast_slice(params));
    }

    pub fn download_params(&self, gpu: &Gpu) -> Vec<f32> {
        read_back(gpu, &self.params, 0, self.num_params)
    }

    /// Records the forward (y in acts[0] → u, logdet, logp) into `encoder`; with `init`, each
    /// ActNorm first takes its input's batch statistics.
    pub fn record_forward(&self, encoder: &mut wgpu::CommandEncoder, init: bool) {
        encoder.clear_buffer(&self.logdet, 0, None);
        record_all(encoder, "forward", if init { &self.forward_init } else { &self.forward });
    }

    /// Records the inverse (u in the last acts buffer → y in acts[0]).
    pub fn record_inverse(&self, encoder: &mut wgpu::CommandEncoder) {
        record_all(encoder, "inverse", &self.inverse);
    }

    fn check_rows(&self, data: &[f32]) {
        assert_eq!(data.len(), self.n * self.q, "expected {} rows of {} values", self.n, self.q);
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
        self.record_forward(&mut enc, init);
        gpu.queue.submit([enc.finish()]);
        ForwardOut {
            u: read_back(gpu, self.u(), 0, self.n * self.q),
            logdet: read_back(gpu, &self.logdet, 0, self.n),
            logp: read_back(gpu, &self.logp, 0, self.n),
        }
    }

    /// Runs the inverse on `u` (n, q) and returns y.
    pub fn inverse(&self, gpu: &Gpu, u: &[f32]) -> Vec<f32> {
        self.check_rows(u);
        gpu.queue.write_buffer(self.u(), 0, bytemuck::cast_slice(u));
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("inverse") });
        self.record_inverse(&mut enc);
        gpu.queue.submit([enc.finish()]);
        read_back(gpu, &self.acts[0], 0, self.n * self.q)
    }
}
