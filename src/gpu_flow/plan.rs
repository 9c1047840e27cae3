//! One plan per layer kind: the buffers a layer of that kind owns and its forward, inverse
//! and backward dispatches, built from what the whole flow shares (`Build`) and the layer's
//! place in it (`At`). `GpuFlow::build_models` is a loop over the layers calling these.
//!
//! Neighbours fold into each other where a kernel can take the work in its loads and stores
//! (`Folds`): an ActNorm into the fused coupling after it, a Reverse/Shuffle into the
//! coupling before it. A folded layer dispatches nothing of its own in that direction and
//! shares its neighbour's backprop boundary (`LayerPlan::own_gradient` is false).
//!
//! To add a layer kind: its `model::Layer` variant (parameters, layout, f64 twin in
//! `reference::flow`), a plan function here returning its `LayerPlan` (and what it folds),
//! one arm in `build_models`' match, and its buffers in `Footprint::of`.

use crate::gpu::{storage, storage_init, Dispatch, Gpu};
use crate::kernels::fused::{FusedCoupling, Saved};
use crate::kernels::gemm::{Gemm, GemmChoice, View};
use crate::kernels::{actnorm::ActNorm, coupling::Coupling, permute, wgrad::Wgrad};
use crate::model::{invert_perm, Flow, Layer, Linear};

/// Shapes shared by every dispatch of one `GpuFlow`.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub gemms: GemmChoice,
    pub n: usize,
    pub q: usize,
    pub models: usize,
    /// Parameters per model.
    pub ps: usize,
    /// The largest buffer one binding takes, in bytes.
    pub binding: u64,
}

impl Shape {
    /// A row-major (n, cols) activation, one per model.
    fn act<'a>(&self, buf: &'a wgpu::Buffer, cols: usize) -> View<'a> {
        View::rows(buf, 0, cols).per_model(self.n * cols)
    }
    fn act_t<'a>(&self, buf: &'a wgpu::Buffer, cols: usize) -> View<'a> {
        View::transposed(buf, 0, cols).per_model(self.n * cols)
    }
}

/// The conditioner of a coupling as GEMMs reading the first h columns of `x`.
pub(super) fn conditioner(
    gpu: &Gpu,
    s: Shape,
    params: &wgpu::Buffer,
    linears: &[Linear],
    x: &wgpu::Buffer,
    outs: &[wgpu::Buffer],
    label: &str,
) -> Vec<Dispatch> {
    linears
        .iter()
        .enumerate()
        .map(|(k, lin)| {
            let a = if k == 0 { s.act(x, s.q) } else { s.act(&outs[k - 1], lin.fan_in) };
            Gemm {
                m: s.n,
                n: lin.fan_out,
                k: lin.fan_in,
                a,
                b: View::rows(params, lin.w, lin.fan_out).per_model(s.ps),
                bias: Some((params, lin.b, s.ps)),
                bias_rows: false,
                mask: None,
                c: s.act(&outs[k], lin.fan_out),
                relu: k + 1 < linears.len(),
                accumulate: false,
                colsum: None,
                norm: None,
                models: s.models,
            }
            .run(gpu, s.gemms, &format!("{label}.W{k}"))
        })
        .collect()
}

/// Backprop through a conditioner (twin: reference::flow::conditioner_backward). dz[j] holds
/// ∂L/∂(output of linear j); dz[last] must already hold ∂L/∂rm. Parameter gradients are
/// written (=); ∂L/∂y_a is added (ACCUM) into the first h columns of dx.
pub(super) fn conditioner_backward(
    gpu: &Gpu,
    s: Shape,
    params: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    linears: &[Linear],
    x: &wgpu::Buffer,
    outs: &[wgpu::Buffer],
    dz: &[wgpu::Buffer],
    dx: &wgpu::Buffer,
    label: &str,
) -> Vec<Dispatch> {
    let mut out = Vec::new();
    for (j, lin) in linears.iter().enumerate().rev() {
        // inputᵀ as a view: element (feature, row) of the layer's input
        let input_t = if j == 0 { s.act_t(x, s.q) } else { s.act_t(&outs[j - 1], lin.fan_in) };
        // dW = inputᵀ·dz, and db = Σ_rows dz from the same loads (the COLSUM epilogue).
        let dw = Gemm {
            m: lin.fan_in,
            n: lin.fan_out,
            k: s.n,
            a: input_t,
            b: s.act(&dz[j], lin.fan_out),
            bias: None,
            bias_rows: false,
            mask: None,
            c: View::rows(grads, lin.w, lin.fan_out).per_model(s.ps),
            relu: false,
            accumulate: false,
            colsum: Some(lin.b),
            norm: None,
            models: s.models,
        };
        out.push(dw.run(gpu, s.gemms, &format!("{label}.dW{j}")));
        let (c, mask, accumulate) = if j == 0 {
            (s.act(dx, s.q), None, true)
        } else {
            (s.act(&dz[j - 1], lin.fan_in), Some((&outs[j - 1], 0, s.n * lin.fan_in)), false)
        };
        let dinput = Gemm {
            m: s.n,
            n: lin.fan_in,
            k: lin.fan_out,
            a: s.act(&dz[j], lin.fan_out),
            b: View::transposed(params, lin.w, lin.fan_out).per_model(s.ps),
            bias: None,
            bias_rows: false,
            mask,
            c,
            relu: false,
            accumulate,
            colsum: None,
            norm: None,
            models: s.models,
        };
        out.push(dinput.run(gpu, s.gemms, &format!("{label}.dX{j}")));
    }
    out
}

/// What every layer's plan builds from: the flows' shape, the buffers the whole flow shares,
/// and which paths the mode takes.
pub(super) struct Build<'a> {
    pub gpu: &'a Gpu,
    pub flows: &'a [&'a Flow],
    /// The flows' layer index of this part's layer 0 (a conv flow's head starts past its
    /// conv layers).
    pub first: usize,
    pub s: Shape,
    pub training: bool,
    /// Couplings run as fused.wgsl's dispatches where they fit.
    pub fuse: bool,
    pub params: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    /// acts[k] is layer k's input, acts[k + 1] its output.
    pub acts: &'a [wgpu::Buffer],
    pub logdet: &'a wgpu::Buffer,
    /// ∂L/∂logdet, per row.
    pub dld: &'a wgpu::Buffer,
    /// The GEMM path's ∂L/∂(each linear's output), shared by the couplings.
    pub dz: &'a [wgpu::Buffer],
    /// The fused backward's linear-output gradients, one coupling at a time.
    pub dz_fused: &'a wgpu::Buffer,
    /// The inference conditioner's outputs, shared by the couplings.
    pub shared: &'a [wgpu::Buffer],
}

/// Layer k's place: its input and output, the buffer holding ∂L/∂(its output) and the one
/// receiving ∂L/∂(its input), and the layer after it.
pub(super) struct At<'a> {
    pub k: usize,
    pub x: &'a wgpu::Buffer,
    pub u: &'a wgpu::Buffer,
    pub du: &'a wgpu::Buffer,
    pub dx: &'a wgpu::Buffer,
    pub next: Option<&'a Layer>,
}

impl At<'_> {
    fn next_is_perm(&self) -> bool {
        matches!(self.next, Some(Layer::Reverse | Layer::Shuffle { .. }))
    }
}

/// One layer's program.
pub(super) struct LayerPlan {
    pub forward: Vec<Dispatch>,
    /// Run before the forward on a first training step only (data-dependent initialisation).
    pub init: Vec<Dispatch>,
    pub inverse: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
    /// False where the layer is folded into a neighbour and shares its backprop boundary.
    pub own_gradient: bool,
}

impl Default for LayerPlan {
    fn default() -> Self {
        Self { forward: Vec::new(), init: Vec::new(), inverse: Vec::new(), backward: Vec::new(), own_gradient: true }
    }
}

/// What a layer hands to a neighbour that takes its work.
#[derive(Default)]
pub(super) struct Folds {
    /// An ActNorm folded into the fused coupling after it: its β and a offsets.
    pub actnorm: Option<(usize, usize)>,
    /// A permutation folded into the coupling before it: its gather indices and their
    /// inverse (the inverse program still gathers).
    pub perm: Option<(wgpu::Buffer, wgpu::Buffer)>,
}

impl<'a> Build<'a> {
    /// Whether a coupling runs as fused.wgsl's dispatches.
    pub fn fused_coupling(&self, linears: &[Linear]) -> bool {
        fuses(&self.s, self.fuse, self.training, linears)
    }

    /// Layer k's gather indices and their inverse, each model's own (shuffles differ by
    /// seed), q apart. Only called for a Reverse or Shuffle, which have gather indices (the
    /// flows share their layer list: same_shape).
    fn perm_buffers(&self, k: usize) -> (wgpu::Buffer, wgpu::Buffer) {
        let q = self.s.q;
        let idx: Vec<u32> =
            self.flows.iter().flat_map(|f| f.layers[self.first + k].gather_indices(q).expect("permutation")).collect();
        let inv_perm: Vec<u32> = idx.chunks(q).flat_map(invert_perm).collect();
        (storage_init(self.gpu, "perm", &idx), storage_init(self.gpu, "perm_inv", &inv_perm))
    }

    /// Where a coupling stores, and the inverse permutation it stores through: the
    /// permutation after it when that folds in (its buffers then handed on in `folds`), else
    /// its own output and none.
    fn coupling_out<'f>(&self, at: &At<'a>, folds: &'f mut Folds) -> (&'a wgpu::Buffer, Option<&'f wgpu::Buffer>) {
        if at.next_is_perm() {
            let (_, inv) = folds.perm.insert(self.perm_buffers(at.k + 1));
            (&self.acts[at.k + 2], Some(inv))
        } else {
            (at.u, None)
        }
    }
}

/// Whether a coupling runs as fused.wgsl's dispatches (else GEMMs + coupling.wgsl): the
/// mode fuses, its layers fit the shader, and in training its saved activations fit u32
/// indices and one binding.
pub(super) fn fuses(s: &Shape, fuse: bool, training: bool, linears: &[Linear]) -> bool {
    let saved = || Saved::new(s.n, s.q, linears);
    // The saved activations are one buffer per coupling: where they exceed a binding (a huge
    // batch), the coupling trains on GEMMs, whose buffers Footprint::of bounds.
    let bytes = |sv: &Saved| (sv.per_model as u64).saturating_mul(s.models as u64).saturating_mul(4);
    fuse && FusedCoupling::fits(s.q, linears, s.ps)
        && (!training || saved().fits(s.models) && bytes(&saved()) <= s.binding)
}

/// One buffer per linear's output, one copy per model.
pub(super) fn workspace(gpu: &Gpu, s: &Shape, label: &str, linears: &[Linear]) -> Vec<wgpu::Buffer> {
    linears
        .iter()
        .enumerate()
        .map(|(j, lin)| storage(gpu, &format!("{label}.out{j}"), s.models * s.n * lin.fan_out))
        .collect()
}

/// Per-dimension ActNorm: its data initialisation always; forward and backward unless the
/// fused coupling after it takes them.
pub(super) fn actnorm(b: &Build, at: &At, beta: usize, a: usize, folds: &mut Folds) -> LayerPlan {
    let s = &b.s;
    let an = ActNorm { n: s.n, q: s.q, beta_off: beta, a_off: a, ps: s.ps };
    let mut p = LayerPlan::default();
    p.init.push(an.init(b.gpu, b.params, at.x).models(s.models));
    p.inverse.push(an.inverse(b.gpu, b.params, at.u, at.x).models(s.models));
    if matches!(at.next, Some(Layer::Coupling { linears, .. }) if b.fused_coupling(linears)) {
        // Forward and backward ride on the coupling's dispatches; for backprop the two are
        // one layer.
        folds.actnorm = Some((beta, a));
        p.own_gradient = false;
    } else {
        p.forward.push(an.forward(b.gpu, b.params, at.x, at.u, b.logdet).models(s.models));
        if b.training {
            p.backward.push(an.backward(b.gpu, b.params, at.x, at.du, b.dld, at.dx, b.grads).models(s.models));
        }
    }
    p
}

/// A coupling as fused.wgsl's dispatches: one forward (keeping its activations in training),
/// one data-gradient backward and one grouped weight-gradient dispatch; the ActNorm before
/// it and the permutation after it folded in.
pub(super) fn fused_coupling<'a>(
    b: &Build<'a>,
    at: &At<'a>,
    index: usize,
    linears: &[Linear],
    folds: &mut Folds,
) -> LayerPlan {
    let (s, gpu, models) = (&b.s, b.gpu, b.s.models);
    let actnorm = folds.actnorm.take();
    let fc = FusedCoupling { n: s.n, q: s.q, linears, ps: s.ps, actnorm, rows8: s.gemms.fused_rows8 };
    // With the ActNorm folded in, the forward reads that layer's input.
    let x_fwd = if actnorm.is_some() { &b.acts[at.k - 1] } else { at.x };
    let (out, perm_inv) = b.coupling_out(at, folds);
    let mut p = LayerPlan::default();
    if b.training {
        let layout = fc.saved();
        let saved = storage(gpu, &format!("cp{index}.saved"), models * layout.per_model);
        p.forward.push(fc.forward(gpu, b.params, x_fwd, out, b.logdet, perm_inv, Some(&saved)).models(models));
        p.backward.push(fc.backward(gpu, b.params, &saved, at.du, b.dld, at.dx, b.dz_fused, perm_inv).models(models));
        let wg = Wgrad { n: s.n, linears, saved: &layout, ps: s.ps, q: s.q, actnorm };
        p.backward.push(wg.dispatch(gpu, &saved, b.dz_fused, b.grads, b.params, b.dld).models(models));
    } else {
        p.forward.push(fc.forward(gpu, b.params, x_fwd, out, b.logdet, perm_inv, None).models(models));
    }
    p.inverse.push(fc.inverse(gpu, b.params, at.u, at.x).models(models));
    p
}

/// A coupling as GEMMs (its conditioner) and coupling.wgsl (the affine part); the
/// permutation after it folded into the affine part's store.
pub(super) fn gemm_coupling<'a>(
    b: &Build<'a>,
    at: &At<'a>,
    index: usize,
    linears: &[Linear],
    folds: &mut Folds,
) -> LayerPlan {
    let (s, gpu, models) = (&b.s, b.gpu, b.s.models);
    let cp = Coupling { n: s.n, q: s.q };
    let label = format!("cp{index}");
    // Training keeps each coupling's activations; inference shares one workspace.
    let own = if b.training { workspace(gpu, s, &label, linears) } else { Vec::new() };
    let outs = if b.training { &own } else { b.shared };
    let rm = outs.last().expect("a coupling has an output layer");
    let (out, perm_inv) = b.coupling_out(at, folds);
    let mut p = LayerPlan::default();
    p.forward.extend(conditioner(gpu, *s, b.params, linears, at.x, outs, &label));
    p.forward.push(cp.forward(gpu, at.x, rm, out, b.logdet, perm_inv).models(models));
    p.inverse.extend(conditioner(gpu, *s, b.params, linears, at.u, outs, &format!("{label}.inv")));
    p.inverse.push(cp.inverse(gpu, at.u, rm, at.x).models(models));
    if b.training {
        // dz holds one buffer per linear, and a coupling has at least one.
        let drm = b.dz.last().expect("dz");
        p.backward.push(cp.backward(gpu, at.x, rm, at.du, b.dld, at.dx, drm, perm_inv).models(models));
        p.backward.extend(conditioner_backward(gpu, *s, b.params, b.grads, linears, at.x, outs, b.dz, at.dx, &label));
    }
    p
}

/// A Reverse or Shuffle: a gather each way, or, folded into the coupling before it, only the
/// inverse's gather (the forward stores and the backward reads through the permutation).
pub(super) fn permutation(b: &Build, at: &At, folds: &mut Folds) -> LayerPlan {
    let (s, gpu, models) = (&b.s, b.gpu, b.s.models);
    let mut p = LayerPlan::default();
    match folds.perm.take() {
        Some((_, inv_idx)) => {
            p.inverse.push(permute::gather(gpu, s.n, s.q, &inv_idx, at.u, at.x).models(models));
            p.own_gradient = false;
        }
        None => {
            let (fwd_idx, inv_idx) = b.perm_buffers(at.k);
            p.forward.push(permute::gather(gpu, s.n, s.q, &fwd_idx, at.x, at.u).models(models));
            p.inverse.push(permute::gather(gpu, s.n, s.q, &inv_idx, at.u, at.x).models(models));
            if b.training {
                p.backward.push(permute::gather(gpu, s.n, s.q, &inv_idx, at.du, at.dx).models(models));
            }
        }
    }
    p
}
