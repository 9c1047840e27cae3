//! The whole flow in f64: every layer in order, forward (y → u, log-det), inverse, and the
//! data-dependent ActNorm initialisation. Built from the per-kernel twins.

use super::gemm::{gemm, Strided};
use super::{actnorm, conv, coupling, loss, permute};
use crate::model::{invert_perm, Flow, Layer, Linear};

/// The conditioner MLP on the first h columns of x (n, q): returns every linear layer's
/// output, the last being rm = (r, m) (n, 2(q−h)). Hidden layers are post-ReLU.
pub fn conditioner(params: &[f64], linears: &[Linear], x: &[f64], n: usize, q: usize) -> Vec<Vec<f64>> {
    let mut outs: Vec<Vec<f64>> = Vec::new();
    for (k, lin) in linears.iter().enumerate() {
        let mut out = vec![0.0; n * lin.fan_out];
        let (input, iv) = match outs.last() {
            None => (x, Strided::rows(0, q)),
            Some(prev) => (prev.as_slice(), Strided::rows(0, lin.fan_in)),
        };
        let relu = k + 1 < linears.len();
        gemm(
            &mut out,
            Strided::rows(0, lin.fan_out),
            input,
            iv,
            params,
            Strided::rows(lin.w, lin.fan_out),
            Some((params, lin.b)),
            None,
            n,
            lin.fan_out,
            lin.fan_in,
            relu,
            false,
        );
        outs.push(out);
    }
    outs
}

/// The head's columns (`FlowConfig::head`) of every row of `y`, as rows of their own.
fn head_columns(flow: &Flow, y: &[f64], n: usize) -> Vec<f64> {
    let q = flow.config.q();
    let off = flow.config.head().0;
    (0..n).flat_map(|s| y[s * q + off..(s + 1) * q].iter().copied()).collect()
}

/// Runs a dense layer's `f` on the head's columns of every row (the whole row of a dense
/// flow; the tail of a conv flow's), leaving the others as they are.
fn on_head(flow: &Flow, y: &[f64], n: usize, f: impl FnOnce(&[f64], usize) -> Vec<f64>) -> Vec<f64> {
    let q = flow.config.q();
    let (off, width) = flow.config.head();
    if width == q {
        return f(y, q);
    }
    let done = f(&head_columns(flow, y, n), width);
    let mut out = y.to_vec();
    for s in 0..n {
        out[s * q + off..(s + 1) * q].copy_from_slice(&done[s * width..(s + 1) * width]);
    }
    out
}

/// Any layer of `flow` forward on its rows (n, Q), adding its log-det into `logdet`.
pub fn step_forward(flow: &Flow, layer: &Layer, params: &[f64], y: &[f64], logdet: &mut [f64], n: usize) -> Vec<f64> {
    conv::layer_forward(layer, params, y, logdet, n, flow.config.q())
        .unwrap_or_else(|| on_head(flow, y, n, |y, q| layer_forward(layer, params, y, logdet, n, q)))
}

/// Any layer of `flow` inverse on its rows (n, Q).
pub fn step_inverse(flow: &Flow, layer: &Layer, params: &[f64], u: &[f64], n: usize) -> Vec<f64> {
    conv::layer_inverse(layer, params, u, n, flow.config.q())
        .unwrap_or_else(|| on_head(flow, u, n, |u, q| layer_inverse(layer, params, u, n, q)))
}

/// One dense layer forward: y (n, q) → u, adding its log-det into `logdet`.
pub fn layer_forward(layer: &Layer, params: &[f64], y: &[f64], logdet: &mut [f64], n: usize, q: usize) -> Vec<f64> {
    let mut u = vec![0.0; n * q];
    match layer {
        Layer::ActNorm { beta, a, .. } => actnorm::forward(params, *beta, *a, y, &mut u, logdet, n, q),
        Layer::Coupling { linears, .. } => {
            let rm = conditioner(params, linears, y, n, q).pop().expect("a conditioner has an output layer");
            coupling::forward(y, &rm, &mut u, logdet, n, q);
        }
        Layer::Reverse | Layer::Shuffle { .. } => {
            permute::gather(&layer.gather_indices(q).expect("permutation"), y, &mut u, n, q)
        }
        _ => unreachable!("a conv layer: step_forward runs it through reference::conv"),
    }
    u
}

/// One dense layer inverse: u (n, q) → y.
pub fn layer_inverse(layer: &Layer, params: &[f64], u: &[f64], n: usize, q: usize) -> Vec<f64> {
    let mut y = vec![0.0; n * q];
    match layer {
        Layer::ActNorm { beta, a, .. } => actnorm::inverse(params, *beta, *a, u, &mut y, n, q),
        Layer::Coupling { linears, .. } => {
            // u_a = y_a, so the conditioner sees the same input as in the forward.
            let rm = conditioner(params, linears, u, n, q).pop().expect("a conditioner has an output layer");
            coupling::inverse(u, &rm, &mut y, n, q);
        }
        Layer::Reverse | Layer::Shuffle { .. } => {
            let idx = invert_perm(&layer.gather_indices(q).expect("permutation"));
            permute::gather(&idx, u, &mut y, n, q)
        }
        _ => unreachable!("a conv layer: step_inverse runs it through reference::conv"),
    }
    y
}

/// y (n, q) → (u, logdet).
pub fn forward(flow: &Flow, params: &[f64], y: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut logdet = vec![0.0; n];
    let mut x = y.to_vec();
    for layer in &flow.layers {
        x = step_forward(flow, layer, params, &x, &mut logdet, n);
    }
    (x, logdet)
}

/// u (n, q) → y.
pub fn inverse(flow: &Flow, params: &[f64], u: &[f64], n: usize) -> Vec<f64> {
    let mut x = u.to_vec();
    for layer in flow.layers.iter().rev() {
        x = step_inverse(flow, layer, params, &x, n);
    }
    x
}

/// log p_T(y) per row.
pub fn log_prob(flow: &Flow, params: &[f64], y: &[f64], n: usize) -> Vec<f64> {
    let (u, logdet) = forward(flow, params, y, n);
    let mut logp = vec![0.0; n];
    loss::log_prob(&u, &logdet, &mut logp, n, flow.config.q());
    logp
}

/// Data-dependent initialisation: each ActNorm (a conv conditioner's included) takes the
/// statistics of its own input as the batch `y` flows through the layers before it (already
/// initialised).
pub fn init_actnorms(flow: &Flow, params: &mut [f64], y: &[f64], n: usize) {
    let q = flow.config.q();
    let width = flow.config.head().1;
    let mut logdet = vec![0.0; n];
    let mut x = y.to_vec();
    for layer in &flow.layers {
        if let Layer::ActNorm { beta, a, .. } = layer {
            actnorm::init(params, *beta, *a, &head_columns(flow, &x, n), n, width);
        }
        conv::layer_init(layer, params, &x, n, q);
        x = step_forward(flow, layer, params, &x, &mut logdet, n);
    }
}

/// Backprop through a conditioner, given drm = ∂L/∂rm: parameter gradients written (=) into
/// `grads`, and ∂L/∂y_a added into the first h columns of dx.
pub fn conditioner_backward(
    params: &[f64],
    linears: &[Linear],
    x: &[f64],
    outs: &[Vec<f64>],
    drm: Vec<f64>,
    dx: &mut [f64],
    grads: &mut [f64],
    n: usize,
    q: usize,
) {
    let mut dz = drm;
    for (j, lin) in linears.iter().enumerate().rev() {
        let (input, iv) =
            if j == 0 { (x, Strided::rows(0, q)) } else { (outs[j - 1].as_slice(), Strided::rows(0, lin.fan_in)) };
        // dW = inputᵀ · dz, (fan_in × fan_out)
        let input_t = Strided { off: iv.off, rs: iv.cs, cs: iv.rs };
        gemm(
            grads,
            Strided::rows(lin.w, lin.fan_out),
            input,
            input_t,
            &dz,
            Strided::rows(0, lin.fan_out),
            None,
            None,
            lin.fan_in,
            lin.fan_out,
            n,
            false,
            false,
        );
        super::reduce::colsum(n, lin.fan_out, &dz, 0, lin.fan_out, grads, lin.b);
        // d input = dz · Wᵀ, through the ReLU of the layer below (or into dx_a)
        let w_t = Strided::transposed(lin.w, lin.fan_out);
        if j == 0 {
            gemm(
                dx,
                Strided::rows(0, q),
                &dz,
                Strided::rows(0, lin.fan_out),
                params,
                w_t,
                None,
                None,
                n,
                lin.fan_in,
                lin.fan_out,
                false,
                true,
            );
        } else {
            let mut dprev = vec![0.0; n * lin.fan_in];
            let mask = Some((outs[j - 1].as_slice(), 0));
            gemm(
                &mut dprev,
                Strided::rows(0, lin.fan_in),
                &dz,
                Strided::rows(0, lin.fan_out),
                params,
                w_t,
                None,
                mask,
                n,
                lin.fan_in,
                lin.fan_out,
                false,
                false,
            );
            dz = dprev;
        }
    }
}

/// One dense layer's backprop on rows (n, q): dx (=) from du and dld, its parameter
/// gradients written (=) into `grads`; recomputes what it needs from its input x.
fn dense_backward(
    layer: &Layer,
    params: &[f64],
    x: &[f64],
    du: &[f64],
    dld: &[f64],
    grads: &mut [f64],
    n: usize,
    q: usize,
) -> Vec<f64> {
    let mut dx = vec![0.0; n * q];
    match layer {
        Layer::ActNorm { beta, a, .. } => actnorm::backward(params, *beta, *a, x, du, dld, &mut dx, grads, n, q),
        Layer::Coupling { linears, .. } => {
            let outs = conditioner(params, linears, x, n, q);
            let rm = outs.last().expect("output layer");
            let mut drm = vec![0.0; rm.len()];
            coupling::backward(x, rm, du, dld, &mut dx, &mut drm, n, q);
            conditioner_backward(params, linears, x, &outs, drm, &mut dx, grads, n, q);
        }
        Layer::Reverse | Layer::Shuffle { .. } => {
            let inv = invert_perm(&layer.gather_indices(q).expect("permutation"));
            permute::gather(&inv, du, &mut dx, n, q);
        }
        _ => unreachable!("a conv layer: loss_and_grad runs it through reference::conv"),
    }
    dx
}

/// The training loss L = −mean log p_T(y) and its gradient with respect to every parameter
/// (and to y), by backprop through the tape: the forward list read in reverse. Dense layers
/// act on the head's columns; conv layers on their regions (`reference::conv`).
pub fn loss_and_grad(flow: &Flow, params: &[f64], y: &[f64], n: usize) -> (f64, Vec<f64>, Vec<f64>) {
    let q = flow.config.q();
    let (off, width) = flow.config.head();
    let mut inputs = Vec::new();
    let mut logdet = vec![0.0; n];
    let mut x = y.to_vec();
    for layer in &flow.layers {
        let u = step_forward(flow, layer, params, &x, &mut logdet, n);
        inputs.push(std::mem::replace(&mut x, u));
    }
    let mut logp = vec![0.0; n];
    loss::log_prob(&x, &logdet, &mut logp, n, q);
    let l = -logp.iter().sum::<f64>() / n as f64;
    let mut grads = vec![0.0; params.len()];
    let mut du = vec![0.0; n * q];
    let mut dld = vec![0.0; n];
    loss::backward(&x, &mut du, &mut dld, n, q);
    let cols = |v: &[f64]| head_columns(flow, v, n);
    for (k, layer) in flow.layers.iter().enumerate().rev() {
        let x = &inputs[k];
        du = match conv::layer_backward(layer, params, x, &du, &dld, &mut grads, n, q) {
            Some(dx) => dx,
            None if width == q => dense_backward(layer, params, x, &du, &dld, &mut grads, n, q),
            None => {
                let dh = dense_backward(layer, params, &cols(x), &cols(&du), &dld, &mut grads, n, width);
                for s in 0..n {
                    du[s * q + off..(s + 1) * q].copy_from_slice(&dh[s * width..(s + 1) * width]);
                }
                du
            }
        };
    }
    (l, grads, du)
}
