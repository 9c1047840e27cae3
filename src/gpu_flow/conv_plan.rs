//! A conv flow (CONV.md) on the GPU: its conv layers planned here, its dense head by
//! `plan_dense` on rows of the head's width, joined through the full-width rows the rest of
//! mflow reads and writes (`acts[0]`, the input `[x, ε channels, flat ε]`, and the latent u).
//!
//! Each conv layer writes its output region compactly, (n, C, h, w) per model, into a buffer
//! of its own (a `Slot`); a factor-out is a view of its input's second half (no buffer, no
//! copy of the kept values), and copies the half that leaves into u, where the loss reads
//! the whole latent. The last conv layer writes straight into the head's input rows, whose
//! tail gets flat ε from the input. Backprop mirrors every slot in a gradient buffer.

use super::{plan_dense, Common, Footprint, Mode, Program};
use crate::gpu::{storage, storage_init, Dispatch, Gpu};
use crate::kernels::channorm::ChanNorm;
use crate::kernels::conv::{Conv, Planes};
use crate::kernels::conv_coupling::ConvCoupling;
use crate::kernels::gemm::{Gemm, GemmChoice, View};
use crate::kernels::inv1x1::{self, Inv1x1};
use crate::kernels::permute;
use crate::model::{invert_perm, Flow, FlowConfig, Layer, Norm, Region, Split};

/// Where a layer boundary's region lives: planes in buffer `buf` of the part's list.
#[derive(Clone, Copy, Debug)]
struct Slot {
    buf: usize,
    off: usize,
    rs: usize,
    ms: usize,
}

impl Slot {
    fn planes<'a>(&self, bufs: &'a [wgpu::Buffer]) -> Planes<'a> {
        Planes { buf: &bufs[self.buf], off: self.off, rs: self.rs, ms: self.ms }
    }
    fn cols<'a>(&self, bufs: &'a [wgpu::Buffer], extra: usize) -> (&'a wgpu::Buffer, usize, usize, usize) {
        (&bufs[self.buf], self.off + extra, self.rs, self.ms)
    }
}

/// A compact (n, len) planes buffer per model.
fn compact(buf: usize, n: usize, len: usize) -> Slot {
    Slot { buf, off: 0, rs: len, ms: n * len }
}

/// Everything the layers' plans share.
struct Ctx<'a> {
    gpu: &'a Gpu,
    gemms: GemmChoice,
    n: usize,
    models: usize,
    ps: usize,
    training: bool,
    c: &'a Common,
    bufs: Vec<wgpu::Buffer>,
    dbufs: Vec<wgpu::Buffer>,
    /// Inference scratch of the conditioners (and the inverse in training): pre-norm, two
    /// post-ReLU buffers taken in turn, rm.
    pre: wgpu::Buffer,
    post: [wgpu::Buffer; 2],
    rm: wgpu::Buffer,
    /// Backprop scratch: ∂L/∂pre-norm, ∂L/∂post-ReLU, ∂L/∂rm.
    dpre: wgpu::Buffer,
    dpost: wgpu::Buffer,
    drm: wgpu::Buffer,
}

impl Ctx<'_> {
    fn scratch(&self, label: &str, len: usize) -> wgpu::Buffer {
        storage(self.gpu, label, if self.training { self.models * len } else { 1 })
    }

    /// A new output slot (and its gradient mirror) of `len` values per row.
    fn slot(&mut self, label: &str, len: usize) -> Slot {
        self.bufs.push(storage(self.gpu, label, self.models * self.n * len));
        self.dbufs.push(self.scratch(&format!("d{label}"), self.n * len));
        compact(self.bufs.len() - 1, self.n, len)
    }

    /// Per-model copies of gather indices over a compact region (same for every model).
    fn indices(&self, idx: &[u32]) -> wgpu::Buffer {
        let all: Vec<u32> = (0..self.models).flat_map(|_| idx.iter().copied()).collect();
        storage_init(self.gpu, "conv.perm", &all)
    }
}

/// One layer's programs; `init` replaces `forward` on a first step (data initialisation
/// interleaved with the forward, in forward order).
#[derive(Default)]
struct Plan {
    forward: Vec<Dispatch>,
    init: Vec<Dispatch>,
    inverse: Vec<Dispatch>,
    backward: Vec<Dispatch>,
}

impl Plan {
    /// Every dispatch run for `models` models (grid z).
    fn with_models(self, models: usize) -> Plan {
        let z = |v: Vec<Dispatch>| v.into_iter().map(|d| d.models(models)).collect();
        Plan { forward: z(self.forward), init: z(self.init), inverse: z(self.inverse), backward: z(self.backward) }
    }
}

/// Plans a conv flow: returns its full-width buffers (input first, latent u last), its
/// programs (without the loss) and the buffer the loss's backward writes ∂L/∂u into.
pub(super) fn build(
    gpu: &Gpu,
    flows: &[&Flow],
    n: usize,
    mode: Mode,
    gemms: GemmChoice,
    c: &Common,
) -> (Vec<wgpu::Buffer>, Program, wgpu::Buffer) {
    let flow = flows[0];
    let models = flows.len();
    let (q, ps) = (flow.config.q(), flow.params.len());
    let (head_off, qh) = flow.config.head();
    let flat = flow.config.b;
    let training = mode.training();
    // The head starts at its first ActNorm: every layer before it is a conv layer.
    let n_conv = flow.layers.iter().position(|l| matches!(l, Layer::ActNorm { .. })).expect("a dense head");
    let head_in = storage(gpu, "head.in", models * n * qh);
    let head = plan_dense(gpu, flows, n_conv, n, mode, gemms, c, Some(head_in.clone()));
    let u_full = storage(gpu, "u", models * n * q);
    let du_full = storage(gpu, "du", if training { models * n * q } else { 1 });

    // The conditioners' widest activations size the shared scratch.
    let (mut hidden, mut rm_len) = (1, 1);
    for l in &flow.layers[..n_conv] {
        if let Some((split, at, net)) = l.conv_coupling() {
            hidden = hidden.max(net.convs[0].c_out * at.hw());
            rm_len = rm_len.max(split.rm_channels(at.c) * at.hw());
        }
    }
    let full = |label: &str| storage(gpu, label, models * n * hidden);
    let mut cx = Ctx {
        gpu,
        gemms,
        n,
        models,
        ps,
        training,
        c,
        bufs: vec![storage(gpu, "acts0", models * n * q), head_in],
        dbufs: vec![storage(gpu, "dacts0", if training { models * n * q } else { 1 }), head.dx_in.clone()],
        pre: full("cond.pre"),
        post: [full("cond.post0"), full("cond.post1")],
        rm: storage(gpu, "cond.rm", models * n * rm_len),
        dpre: storage(gpu, "cond.dpre", if training { models * n * hidden } else { 1 }),
        dpost: storage(gpu, "cond.dpost", if training { models * n * hidden } else { 1 }),
        drm: storage(gpu, "cond.drm", if training { models * n * rm_len } else { 1 }),
    };
    // slots[k] is layer k's input, slots[k + 1] its output.
    let mut slots = vec![Slot { buf: 0, off: 0, rs: q, ms: n * q }];
    for (k, layer) in flow.layers[..n_conv].iter().enumerate() {
        let (at, slot) = (region(layer), slots[k]);
        slots.push(match layer {
            Layer::FactorOut { at } => Slot { off: slot.off + at.c / 2 * at.hw(), ..slot },
            _ if k + 1 == n_conv => Slot { buf: 1, off: 0, rs: qh, ms: n * qh },
            _ => cx.slot(&format!("acts{}", k + 1), at.len()),
        });
    }
    // A squeeze or channel reversal after a coupling is a gather over its compact output
    // region: the coupling stores (and its backward reads) through it (`folded`).
    let gather_of = |layer: &Layer| -> Option<Vec<u32>> {
        let at = region(layer);
        match layer {
            Layer::Squeeze { .. } => Some((0..at.len()).map(|e| at.squeeze_source(e) as u32).collect()),
            Layer::ChannelReverse { .. } => {
                Some((0..at.len()).map(|e| ((at.c - 1 - e / at.hw()) * at.hw() + e % at.hw()) as u32).collect())
            }
            _ => None,
        }
    };
    let mut plans = Vec::new();
    let mut folded = false;
    for (k, layer) in flow.layers[..n_conv].iter().enumerate() {
        let at = region(layer);
        let (slot, out) = (slots[k], slots[k + 1]);
        let p = match layer {
            Layer::ChannelNorm { norm, .. } => {
                let cn = ChanNorm { norm: *norm, n, hw: at.hw(), relu: false, ps };
                let (x, u) = (slot.planes(&cx.bufs), out.planes(&cx.bufs));
                let mut p = Plan {
                    forward: vec![cn.forward(gpu, &c.params, x, u, &c.logdet)],
                    inverse: vec![cn.inverse(gpu, &c.params, u, x)],
                    ..Plan::default()
                };
                p.init = vec![cn.init(gpu, &c.params, x), p.forward[0].clone()];
                if training {
                    let (dx, du) = (slot.planes(&cx.dbufs), &cx.dbufs[out.buf]);
                    p.backward.push(cn.backward(gpu, &c.params, u, du, &c.dld, dx, &c.grads));
                }
                p
            }
            Layer::Checkerboard { index, .. } | Layer::ChannelCoupling { index, .. } => {
                // The gather after it, when it folds in: where it stores, and through what.
                let next = flow.layers.get(k + 1).filter(|_| k + 2 <= n_conv).and_then(&gather_of);
                let fold = next.map(|fwd| (slots[k + 2], cx.indices(&invert_perm(&fwd))));
                folded = fold.is_some();
                coupling(&cx, layer, *index, slot, out, fold.as_ref().map(|(s, b)| (*s, b)))
            }
            Layer::ChannelReverse { .. } | Layer::Squeeze { .. } => {
                assert!(slot.off == 0 && slot.rs == at.len(), "a permutation reads a compact region");
                let fwd = gather_of(layer).expect("a permutation");
                let (fi, ii) = (cx.indices(&fwd), cx.indices(&invert_perm(&fwd)));
                let len = at.len();
                let (x, u) = (&cx.bufs[slot.buf], &cx.bufs[out.buf]);
                // The inverse always gathers (the coupling before reads its output in place).
                let mut p = Plan { inverse: vec![permute::gather(gpu, n, len, &ii, u, x)], ..Plan::default() };
                if !std::mem::take(&mut folded) {
                    p.forward.push(permute::gather(gpu, n, len, &fi, x, u));
                    if training {
                        p.backward.push(permute::gather(gpu, n, len, &ii, &cx.dbufs[out.buf], &cx.dbufs[slot.buf]));
                    }
                    p.init = p.forward.clone();
                }
                p
            }
            Layer::FactorOut { at } => {
                let half = at.c / 2 * at.hw();
                let latent = (&u_full, at.off, q, n * q);
                let mut p = Plan {
                    forward: vec![permute::copy_columns(gpu, n, half, slot.cols(&cx.bufs, 0), latent)],
                    inverse: vec![permute::copy_columns(gpu, n, half, latent, slot.cols(&cx.bufs, 0))],
                    ..Plan::default()
                };
                if training {
                    let dlatent = (&du_full, at.off, q, n * q);
                    p.backward.push(permute::copy_columns(gpu, n, half, dlatent, slot.cols(&cx.dbufs, 0)));
                }
                p.init = p.forward.clone();
                p
            }
            Layer::Inv1x1 { index, lu, .. } => {
                let op = Inv1x1 { n, c: at.c, hw: at.hw(), lu: *lu, ps };
                let (perms, signs): (Vec<&[u32]>, Vec<&[i8]>) = flows
                    .iter()
                    .map(|f| match &f.layers[k] {
                        Layer::Inv1x1 { perm, sign, .. } => (perm.as_slice(), sign.as_slice()),
                        _ => unreachable!("flows of one GpuFlow share their layers"),
                    })
                    .unzip();
                let fixed = storage_init(gpu, &format!("inv{index}.fixed"), &inv1x1::fixed(&perms, &signs));
                let mats = storage(gpu, &format!("inv{index}.mats"), models * inv1x1::mats_len(at.c));
                let (x, u) = (slot.planes(&cx.bufs), out.planes(&cx.bufs));
                let weights = op.weights(gpu, &c.params, &fixed, &mats);
                let mut p = Plan {
                    forward: vec![weights.clone(), op.apply(gpu, &c.params, &mats, x, u, &c.logdet, false, false)],
                    inverse: vec![weights, op.apply(gpu, &c.params, &mats, u, x, &c.logdet, true, false)],
                    ..Plan::default()
                };
                if training {
                    let (dx, du) = (slot.planes(&cx.dbufs), out.planes(&cx.dbufs));
                    p.backward = vec![
                        op.apply(gpu, &c.params, &mats, du, dx, &c.logdet, false, true),
                        op.wgrad(gpu, du, x, &mats),
                        op.lu_grad(gpu, &c.params, &fixed, &mats, &c.dld, &c.grads),
                    ];
                }
                p.init = p.forward.clone();
                p
            }
            Layer::ActNorm { .. } | Layer::Coupling { .. } | Layer::Reverse | Layer::Shuffle { .. } => {
                unreachable!("the head starts at the first dense layer")
            }
        };
        // A coupling's plan sets each dispatch's grid z itself (its 1×1 convolutions may run
        // as GEMMs over the batch's samples).
        let coupling = matches!(layer, Layer::Checkerboard { .. } | Layer::ChannelCoupling { .. });
        plans.push(if coupling { p } else { p.with_models(models) });
    }

    // Flat ε joins the head's rows after the last scale's values.
    let d_k = qh - flat;
    let (acts0, head_in) = (&cx.bufs[0], &cx.bufs[1]);
    let eps_in = (flat > 0)
        .then(|| permute::copy_columns(gpu, n, flat, (acts0, q - flat, q, n * q), (head_in, d_k, qh, n * qh)));
    let eps_back = (flat > 0)
        .then(|| permute::copy_columns(gpu, n, flat, (head_in, d_k, qh, n * qh), (acts0, q - flat, q, n * q)));
    let head_out = head.acts.last().expect("head acts");
    let to_u = permute::copy_columns(gpu, n, qh, (head_out, 0, qh, n * qh), (&u_full, head_off, q, n * q));
    let from_u = permute::copy_columns(gpu, n, qh, (&u_full, head_off, q, n * q), (head_out, 0, qh, n * qh));

    let mut prog = Program::default();
    let m = |d: Dispatch| d.models(models);
    for p in &plans {
        prog.forward.extend(p.forward.iter().cloned());
        prog.forward_init.extend(p.init.iter().cloned());
    }
    prog.forward.extend(eps_in.clone().map(m));
    prog.forward_init.extend(eps_in.map(m));
    prog.forward.extend(head.prog.forward);
    prog.forward_init.extend(head.prog.forward_init);
    prog.forward.push(m(to_u.clone()));
    prog.forward_init.push(m(to_u));
    prog.inverse.push(m(from_u));
    prog.inverse.extend(head.prog.inverse);
    prog.inverse.extend(eps_back.map(m));
    for p in plans.iter().rev() {
        prog.inverse.extend(p.inverse.iter().cloned());
    }
    if training {
        prog.backward.push(m(permute::copy_columns(
            gpu,
            n,
            qh,
            (&du_full, head_off, q, n * q),
            (&head.du_out, 0, qh, n * qh),
        )));
        prog.backward.extend(head.prog.backward);
        for p in plans.iter().rev() {
            prog.backward.extend(p.backward.iter().cloned());
        }
    }
    let mut acts = vec![cx.bufs[0].clone()];
    acts.extend(head.acts);
    acts.push(u_full);
    (acts, prog, du_full)
}

/// A conv layer's input region.
fn region(layer: &Layer) -> Region {
    match layer {
        Layer::ChannelNorm { at, .. }
        | Layer::Checkerboard { at, .. }
        | Layer::ChannelCoupling { at, .. }
        | Layer::ChannelReverse { at }
        | Layer::Inv1x1 { at, .. }
        | Layer::Squeeze { at }
        | Layer::FactorOut { at } => *at,
        _ => unreachable!("a conv layer"),
    }
}

/// A checkerboard or channel coupling: its conditioner (conv → ActNorm → ReLU, …, conv) and
/// its affine part; in training each keeps its post-ReLU activations and rm for backprop.
/// With `fold` (the following gather's output slot and inverse indices), the forward stores
/// through that gather and the backward reads its gradient through it.
fn coupling(cx: &Ctx, layer: &Layer, index: usize, x: Slot, out: Slot, fold: Option<(Slot, &wgpu::Buffer)>) -> Plan {
    let (split, at, net) = layer.conv_coupling().expect("a conv coupling");
    let (gpu, n, ps, c) = (cx.gpu, cx.n, cx.ps, cx.c);
    let hw = at.hw();
    let last = net.convs.len() - 1;
    let mask = match split {
        Split::Checkerboard(parity) => Some(parity),
        Split::Channels => None,
    };
    let convs: Vec<Conv> = net
        .convs
        .iter()
        .enumerate()
        .map(|(j, conv)| Conv {
            conv: *conv,
            n,
            h: at.h,
            w: at.w,
            mask: if j == 0 { mask } else { None },
            ps,
            tiles: cx.gemms.conv,
        })
        .collect();
    let norms: Vec<ChanNorm> = net.norms.iter().map(|norm| ChanNorm { norm: *norm, n, hw, relu: true, ps }).collect();
    let c_rm = split.rm_channels(at.c);
    let wc = net.convs[0].c_out;
    fn act(buf: &wgpu::Buffer, ch: usize, hw: usize, n: usize) -> Planes<'_> {
        Planes { buf, off: 0, rs: ch * hw, ms: n * ch * hw }
    }
    // Training keeps each hidden layer's output and rm; inference takes turns in the scratch.
    let (own_post, own_rm): (Vec<wgpu::Buffer>, Option<wgpu::Buffer>) = if cx.training {
        let post = (0..last).map(|j| storage(gpu, &format!("cp{index}.post{j}"), cx.models * n * wc * hw)).collect();
        (post, Some(storage(gpu, &format!("cp{index}.rm"), cx.models * n * c_rm * hw)))
    } else {
        (Vec::new(), None)
    };
    let posts: Vec<&wgpu::Buffer> = (0..last).map(|j| own_post.get(j).unwrap_or(&cx.post[j % 2])).collect();
    let shared: Vec<&wgpu::Buffer> = (0..last).map(|j| &cx.post[j % 2]).collect();
    let rm = own_rm.as_ref().unwrap_or(&cx.rm);
    let (xp, up) = (x.planes(&cx.bufs), out.planes(&cx.bufs));
    // The conditioner on `input`'s planes into `rm` (`init`: each ActNorm first takes its
    // input's statistics), reading and writing the given hidden buffers.
    let models = cx.models;
    let z = |d: Dispatch| d.models(models);
    // A 1×1 convolution of one model is a GEMM per sample, C_s = W·X_s (+ bias per output
    // channel), run by the tuned GEMM families with the sample as the grid's z.
    let as_gemm = |conv: &Conv| conv.conv.k == 1 && models == 1 && n <= 65535;
    // Convolution j from `src` into `dst`; with `norm`, a hidden layer stored whole,
    // ReLU(ActNorm(conv)), the ActNorm and ReLU folded into the stores.
    let conv_forward = |j: usize, src: Planes, dst: Planes, norm: Option<Norm>| -> Dispatch {
        let conv = &convs[j];
        if !as_gemm(conv) {
            return z(match norm {
                Some(norm) => conv.forward_norm(gpu, &c.params, src, dst, norm),
                None => conv.forward(gpu, &c.params, src, dst, false),
            });
        }
        let k = conv.conv;
        Gemm {
            m: k.c_out,
            n: hw,
            k: k.c_in,
            a: View { buf: &c.params, off: k.w, rs: k.c_in, cs: 1, ms: 0 },
            b: View { buf: src.buf, off: src.off, rs: hw, cs: 1, ms: src.rs },
            bias: Some((&c.params, k.b, 0)),
            bias_rows: true,
            mask: None,
            c: View { buf: dst.buf, off: dst.off, rs: hw, cs: 1, ms: dst.rs },
            relu: norm.is_some(),
            accumulate: false,
            colsum: None,
            norm: norm.map(|n| (n.beta, n.a)),
            models: n,
        }
        .run(gpu, cx.gemms, &format!("cp{index}.conv{j}"))
    };
    // ∂L/∂(input) (=) of hidden convolution j from ∂L/∂(output): Wᵀ·dY_s for a 1×1.
    let conv_backward_data = |j: usize, dy: Planes, dx: Planes| -> Dispatch {
        let conv = &convs[j];
        if !as_gemm(conv) {
            return z(conv.backward_data(gpu, &c.params, dy, dx, false));
        }
        let k = conv.conv;
        Gemm {
            m: k.c_in,
            n: hw,
            k: k.c_out,
            a: View { buf: &c.params, off: k.w, rs: 1, cs: k.c_in, ms: 0 },
            b: View { buf: dy.buf, off: dy.off, rs: hw, cs: 1, ms: dy.rs },
            bias: None,
            bias_rows: false,
            mask: None,
            c: View { buf: dx.buf, off: dx.off, rs: hw, cs: 1, ms: dx.rs },
            relu: false,
            accumulate: false,
            colsum: None,
            norm: None,
            models: n,
        }
        .run(gpu, cx.gemms, &format!("cp{index}.dconv{j}"))
    };
    let conditioner = |input: Planes, post: &[&wgpu::Buffer], rm: &wgpu::Buffer, init: bool| {
        let mut d = Vec::new();
        let mut src = input;
        for j in 0..convs.len() {
            if j == last {
                d.push(conv_forward(j, src, act(rm, c_rm, hw, n), None));
            } else if !init {
                // The ActNorm and ReLU in the convolution's stores: no pre-activation pass.
                d.push(conv_forward(j, src, act(post[j], wc, hw, n), Some(net.norms[j])));
                src = act(post[j], wc, hw, n);
            } else {
                // Data initialisation needs the pre-activations' statistics first.
                d.push(conv_forward(j, src, act(&cx.pre, wc, hw, n), None));
                if init {
                    d.push(z(norms[j].init(gpu, &c.params, act(&cx.pre, wc, hw, n))));
                }
                d.push(z(norms[j].forward(
                    gpu,
                    &c.params,
                    act(&cx.pre, wc, hw, n),
                    act(post[j], wc, hw, n),
                    &c.logdet,
                )));
                src = act(post[j], wc, hw, n);
            }
        }
        d
    };
    let cc = ConvCoupling { split, n, c: at.c, h: at.h, w: at.w, rm_off: 0, rm_ms: n * c_rm * hw };
    let mut p = Plan {
        forward: conditioner(xp, &posts, rm, false),
        init: conditioner(xp, &posts, rm, true),
        // The inverse's conditioner reads the output: its conditioning elements are the input's.
        inverse: conditioner(up, &shared, &cx.rm, false),
        backward: Vec::new(),
    };
    let (store, inv) = match fold {
        Some((s, inv)) => (s, Some(inv)),
        None => (out, None),
    };
    let sp = store.planes(&cx.bufs);
    p.forward.push(z(cc.forward(gpu, xp, rm, sp, &c.logdet, inv)));
    p.init.push(z(cc.forward(gpu, xp, rm, sp, &c.logdet, inv)));
    p.inverse.push(z(cc.inverse(gpu, up, &cx.rm, xp)));
    if cx.training {
        let (dxp, dup) = (x.planes(&cx.dbufs), store.planes(&cx.dbufs));
        p.backward.push(z(cc.backward(gpu, xp, rm, dup, &c.dld, &cx.dbufs[x.buf], &cx.drm, inv)));
        for j in (0..=last).rev() {
            let dy = if j == last { act(&cx.drm, c_rm, hw, n) } else { act(&cx.dpre, wc, hw, n) };
            let input = if j == 0 { xp } else { act(posts[j - 1], wc, hw, n) };
            p.backward.push(z(convs[j].backward_weights(gpu, input, dy, &c.grads)));
            if j == 0 {
                p.backward.push(z(convs[0].backward_data(gpu, &c.params, dy, dxp, true)));
            } else {
                p.backward.push(conv_backward_data(j, dy, act(&cx.dpost, wc, hw, n)));
                let (post, dpost, dpre) = (act(posts[j - 1], wc, hw, n), &cx.dpost, act(&cx.dpre, wc, hw, n));
                p.backward.push(z(norms[j - 1].backward(gpu, &c.params, post, dpost, &c.dld, dpre, &c.grads)));
            }
        }
    }
    p
}

/// `Footprint::of` for a conv flow: its conv part's buffers as `build` allocates them, plus
/// its dense head's (`dense`, the dense formula at the head's width). `None` on overflow.
pub(super) fn footprint(
    config: &FlowConfig,
    n: usize,
    mode: Mode,
    models: usize,
    dense: Footprint,
) -> Option<Footprint> {
    let arch = config.conv.as_ref()?;
    let (n64, m) = (n as u64, models as u64);
    let training = mode.training() as u64;
    let q = config.q() as u64;
    let (mut slots, mut widest, mut kept) = (0u64, 1u64, 0u64);
    for (c, _, co, px) in arch.conditioners() {
        let (hidden, rm) = ((arch.hidden * px) as u64, (co * px) as u64);
        widest = widest.max(hidden).max(rm);
        // The coupling's ActNorm and the coupling each write a region of c·px values (some
        // permutations and squeezes one more); training keeps the hidden layers and rm.
        slots = slots.checked_add((3 * c * px) as u64)?;
        kept = kept.checked_add(training * ((arch.depth as u64).checked_mul(hidden)?.checked_add(rm)?))?;
    }
    // Per row: input, u, ∂L/∂u and the input's gradient; the slots and their gradients; the
    // conditioners' scratch (pre, two posts, rm, and backprop's three); kept activations.
    let per_row = (4 * q)
        .checked_add(slots.checked_mul(1 + training)?)?
        .checked_add(widest.checked_mul(4 + 3 * training)?)?
        .checked_add(kept)?;
    let floats = per_row.checked_mul(n64)?.checked_mul(m)?;
    let largest = n64.checked_mul(widest.max(q))?.checked_mul(m)?.checked_mul(4)?;
    Some(Footprint { largest: dense.largest.max(largest), total: dense.total.checked_add(floats.checked_mul(4)?)? })
}
