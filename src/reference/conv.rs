//! The conv layers of CONV.md in f64: direct convolution loops (no GEMM), per-channel
//! ActNorm, the checkerboard and channel couplings, squeeze, channel reversal and the
//! invertible 1×1 convolution, each on its `Region` of the row (see `model::conv`).
//! Straightforward on purpose: the oracle the GPU kernels and the numpy module answer to.

use super::{channorm, conv_coupling, inv1x1};
use crate::model::{Conv2d, ConvNet, Layer, Region, Split};

/// Direct 2-D convolution, stride 1, zero padding k/2: x (n, c_in, h, w) → (n, c_out, h, w),
/// `out[s, o, i, j] = bias[o] + Σ_{c, di, dj} W[o, c, di, dj] · x[s, c, i + di − k/2, j + dj − k/2]`.
pub fn conv2d(params: &[f64], conv: &Conv2d, x: &[f64], n: usize, h: usize, w: usize) -> Vec<f64> {
    let (k, pad) = (conv.k, (conv.k / 2) as isize);
    let mut out = vec![0.0; n * conv.c_out * h * w];
    for s in 0..n {
        for o in 0..conv.c_out {
            for i in 0..h {
                for j in 0..w {
                    let mut acc = params[conv.b + o];
                    for c in 0..conv.c_in {
                        for di in 0..k {
                            for dj in 0..k {
                                let (ii, jj) = (i as isize + di as isize - pad, j as isize + dj as isize - pad);
                                if ii < 0 || jj < 0 || ii >= h as isize || jj >= w as isize {
                                    continue;
                                }
                                let wt = params[conv.w + ((o * conv.c_in + c) * k + di) * k + dj];
                                acc += wt * x[((s * conv.c_in + c) * h + ii as usize) * w + jj as usize];
                            }
                        }
                    }
                    out[((s * conv.c_out + o) * h + i) * w + j] = acc;
                }
            }
        }
    }
    out
}

/// conv2d's gradients from dy (n, c_out, h, w): returns dx (n, c_in, h, w) and writes (=) ∂W
/// and ∂bias into `grads` at the convolution's offsets.
pub fn conv2d_backward(
    params: &[f64],
    conv: &Conv2d,
    x: &[f64],
    dy: &[f64],
    n: usize,
    h: usize,
    w: usize,
    grads: &mut [f64],
) -> Vec<f64> {
    let (k, pad) = (conv.k, (conv.k / 2) as isize);
    let mut dx = vec![0.0; n * conv.c_in * h * w];
    grads[conv.w..conv.w + conv.c_out * conv.c_in * k * k].fill(0.0);
    grads[conv.b..conv.b + conv.c_out].fill(0.0);
    for s in 0..n {
        for o in 0..conv.c_out {
            for i in 0..h {
                for j in 0..w {
                    let g = dy[((s * conv.c_out + o) * h + i) * w + j];
                    grads[conv.b + o] += g;
                    for c in 0..conv.c_in {
                        for di in 0..k {
                            for dj in 0..k {
                                let (ii, jj) = (i as isize + di as isize - pad, j as isize + dj as isize - pad);
                                if ii < 0 || jj < 0 || ii >= h as isize || jj >= w as isize {
                                    continue;
                                }
                                let wi = conv.w + ((o * conv.c_in + c) * k + di) * k + dj;
                                let xi = ((s * conv.c_in + c) * h + ii as usize) * w + jj as usize;
                                grads[wi] += g * x[xi];
                                dx[xi] += g * params[wi];
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}

/// The conditioner on x (n, c_in, h, w): every conv but the last → ActNorm → ReLU; returns
/// the last conv's output rm (n, c_out, h, w).
pub fn net_forward(params: &[f64], net: &ConvNet, x: &[f64], n: usize, h: usize, w: usize) -> Vec<f64> {
    let mut a = x.to_vec();
    for (k, conv) in net.convs.iter().enumerate() {
        a = conv2d(params, conv, &a, n, h, w);
        if let Some(norm) = net.norms.get(k) {
            a = channorm::forward(params, norm, &a, h * w, true);
        }
    }
    a
}

/// `net_forward` that first data-initialises each ActNorm from its own input, in forward
/// order (CONV.md).
pub fn net_init(params: &mut [f64], net: &ConvNet, x: &[f64], n: usize, h: usize, w: usize) {
    let mut a = x.to_vec();
    for (k, conv) in net.convs.iter().enumerate() {
        a = conv2d(params, conv, &a, n, h, w);
        if let Some(norm) = net.norms.get(k) {
            channorm::init(params, norm, &a, h * w);
            a = channorm::forward(params, norm, &a, h * w, true);
        }
    }
}

/// The region of every row, gathered into (n, c, h, w).
fn gather(at: &Region, y: &[f64], n: usize, q: usize) -> Vec<f64> {
    (0..n).flat_map(|s| y[s * q + at.off..s * q + at.off + at.len()].iter().copied()).collect()
}

/// Writes (n, c, h, w) back into the region of every row.
fn scatter(at: &Region, v: &[f64], out: &mut [f64], n: usize, q: usize) {
    for s in 0..n {
        out[s * q + at.off..s * q + at.off + at.len()].copy_from_slice(&v[s * at.len()..(s + 1) * at.len()]);
    }
}

/// The checkerboard mask b[c, i, j]: 1 where (i + j) mod 2 = parity.
pub fn mask(parity: usize, i: usize, j: usize) -> bool {
    (i + j) % 2 == parity
}

/// A conv coupling's conditioner input (n, c_in, h, w): the masked region (b ⊙ y) or its
/// first ⌊C/2⌋ channels.
fn coupling_input(split: Split, at: &Region, y: &[f64], n: usize, q: usize) -> Vec<f64> {
    match split {
        Split::Checkerboard(parity) => {
            let mut x = gather(at, y, n, q);
            for (e, v) in x.iter_mut().enumerate() {
                if !mask(parity, e / at.w % at.h, e % at.w) {
                    *v = 0.0;
                }
            }
            x
        }
        Split::Channels => gather(&Region { c: at.c / 2, ..*at }, y, n, q),
    }
}

/// A conv coupling, either direction (the log-det is added in the forward). The conditioner
/// input is the same both ways: the conditioning elements pass through.
fn coupling(layer: &Layer, params: &[f64], x: &[f64], logdet: Option<&mut [f64]>, n: usize, q: usize) -> Vec<f64> {
    let (split, at, net) = layer.conv_coupling().expect("a conv coupling");
    let rm = net_forward(params, net, &coupling_input(split, at, x, n, q), n, at.h, at.w);
    let region = gather(at, x, n, q);
    let done = match logdet {
        Some(ld) => conv_coupling::forward(split, at.c, at.w, &region, &rm, ld),
        None => conv_coupling::inverse(split, at.c, at.w, n, &region, &rm),
    };
    let mut out = x.to_vec();
    scatter(at, &done, &mut out, n, q);
    out
}

/// `u = W y` per pixel over the region's channels (W C×C, row-major).
fn mix_channels(wm: &[f64], at: &Region, y: &[f64], n: usize, q: usize) -> Vec<f64> {
    let mut u = y.to_vec();
    for s in 0..n {
        for p in 0..at.hw() {
            for o in 0..at.c {
                u[s * q + at.off + o * at.hw() + p] =
                    (0..at.c).map(|k| wm[o * at.c + k] * y[s * q + at.off + k * at.hw() + p]).sum();
            }
        }
    }
    u
}

fn inv1x1_lu<'a>(params: &'a [f64], at: &Region, lu: usize) -> &'a [f64] {
    &params[lu..lu + at.c * at.c]
}

/// A conv layer forward on rows (n, q), adding its log-det; `None` for the dense kinds.
pub fn layer_forward(
    layer: &Layer,
    params: &[f64],
    y: &[f64],
    logdet: &mut [f64],
    n: usize,
    q: usize,
) -> Option<Vec<f64>> {
    Some(match layer {
        Layer::ChannelNorm { norm, at, .. } => {
            let mut u = y.to_vec();
            scatter(at, &channorm::forward(params, norm, &gather(at, y, n, q), at.hw(), false), &mut u, n, q);
            let ld = channorm::logdet(params, norm, at.hw());
            logdet.iter_mut().for_each(|l| *l += ld);
            u
        }
        Layer::Checkerboard { .. } | Layer::ChannelCoupling { .. } => coupling(layer, params, y, Some(logdet), n, q),
        Layer::ChannelReverse { at } => {
            let mut u = y.to_vec();
            for s in 0..n {
                for c in 0..at.c {
                    for p in 0..at.hw() {
                        u[s * q + at.off + c * at.hw() + p] = y[s * q + at.off + (at.c - 1 - c) * at.hw() + p];
                    }
                }
            }
            u
        }
        Layer::Inv1x1 { at, lu, perm, sign, .. } => {
            let f = inv1x1_lu(params, at, *lu);
            let ld = inv1x1::logdet(f, at.c, at.hw());
            logdet.iter_mut().for_each(|l| *l += ld);
            mix_channels(&inv1x1::weights(f, perm, sign, at.c), at, y, n, q)
        }
        Layer::Squeeze { at } => {
            let mut u = y.to_vec();
            for s in 0..n {
                for e in 0..at.len() {
                    u[s * q + at.off + e] = y[s * q + at.off + at.squeeze_source(e)];
                }
            }
            u
        }
        Layer::FactorOut { .. } => y.to_vec(),
        Layer::ActNorm { .. } | Layer::Coupling { .. } | Layer::Reverse | Layer::Shuffle { .. } => return None,
    })
}

/// A conv layer inverse on rows (n, q); `None` for the dense kinds.
pub fn layer_inverse(layer: &Layer, params: &[f64], u: &[f64], n: usize, q: usize) -> Option<Vec<f64>> {
    Some(match layer {
        Layer::ChannelNorm { norm, at, .. } => {
            let mut y = u.to_vec();
            scatter(at, &channorm::inverse(params, norm, &gather(at, u, n, q), at.hw()), &mut y, n, q);
            y
        }
        Layer::Checkerboard { .. } | Layer::ChannelCoupling { .. } => coupling(layer, params, u, None, n, q),
        Layer::ChannelReverse { .. } => return layer_forward(layer, params, u, &mut vec![0.0; n], n, q),
        Layer::Inv1x1 { at, lu, perm, sign, .. } => {
            mix_channels(&inv1x1::inverse(inv1x1_lu(params, at, *lu), perm, sign, at.c), at, u, n, q)
        }
        Layer::Squeeze { at } => {
            let mut y = u.to_vec();
            for s in 0..n {
                for e in 0..at.len() {
                    y[s * q + at.off + at.squeeze_source(e)] = u[s * q + at.off + e];
                }
            }
            y
        }
        Layer::FactorOut { .. } => u.to_vec(),
        Layer::ActNorm { .. } | Layer::Coupling { .. } | Layer::Reverse | Layer::Shuffle { .. } => return None,
    })
}

/// Data initialisation of a conv layer's ActNorms (its own, or its conditioner's in forward
/// order) from its input rows y; false for layers without any.
pub fn layer_init(layer: &Layer, params: &mut [f64], y: &[f64], n: usize, q: usize) -> bool {
    match layer {
        Layer::ChannelNorm { norm, at, .. } => channorm::init(params, norm, &gather(at, y, n, q), at.hw()),
        Layer::Checkerboard { .. } | Layer::ChannelCoupling { .. } => {
            let (split, at, net) = layer.conv_coupling().expect("a conv coupling");
            net_init(params, net, &coupling_input(split, at, y, n, q), n, at.h, at.w);
        }
        _ => return false,
    }
    true
}

/// The conditioner's activations: its input, then each hidden layer's post-ReLU output, then
/// rm (what backprop reads).
fn net_tape(params: &[f64], net: &ConvNet, x: &[f64], n: usize, h: usize, w: usize) -> Vec<Vec<f64>> {
    let mut acts = vec![x.to_vec()];
    for (k, conv) in net.convs.iter().enumerate() {
        let mut a = conv2d(params, conv, acts.last().expect("input"), n, h, w);
        if let Some(norm) = net.norms.get(k) {
            a = channorm::forward(params, norm, &a, h * w, true);
        }
        acts.push(a);
    }
    acts
}

/// Backprop through a conditioner from drm: parameter gradients written (=) into `grads`,
/// returns ∂L/∂(its input).
fn net_backward(
    params: &[f64],
    net: &ConvNet,
    acts: &[Vec<f64>],
    drm: Vec<f64>,
    grads: &mut [f64],
    n: usize,
    h: usize,
    w: usize,
) -> Vec<f64> {
    let mut d = drm;
    for (k, conv) in net.convs.iter().enumerate().rev() {
        if let Some(norm) = net.norms.get(k) {
            d = channorm::backward(params, norm, &acts[k + 1], &d, None, h * w, true, grads);
        }
        d = conv2d_backward(params, conv, &acts[k], &d, n, h, w, grads);
    }
    d
}

/// A conv layer's backprop on rows (n, q): dx (=) from du and dld, parameter gradients
/// written (=) into `grads`; recomputes what it needs from its input x. `None` for the dense
/// kinds.
#[allow(clippy::too_many_arguments)]
pub fn layer_backward(
    layer: &Layer,
    params: &[f64],
    x: &[f64],
    du: &[f64],
    dld: &[f64],
    grads: &mut [f64],
    n: usize,
    q: usize,
) -> Option<Vec<f64>> {
    let mut dx = du.to_vec();
    match layer {
        Layer::ChannelNorm { norm, at, .. } => {
            let out = channorm::forward(params, norm, &gather(at, x, n, q), at.hw(), false);
            let d = channorm::backward(params, norm, &out, &gather(at, du, n, q), Some(dld), at.hw(), false, grads);
            scatter(at, &d, &mut dx, n, q);
        }
        Layer::Checkerboard { .. } | Layer::ChannelCoupling { .. } => {
            let (split, at, net) = layer.conv_coupling().expect("a conv coupling");
            let acts = net_tape(params, net, &coupling_input(split, at, x, n, q), n, at.h, at.w);
            let rm = acts.last().expect("rm");
            let (mut dy, drm) =
                conv_coupling::backward(split, at.c, at.w, &gather(at, x, n, q), rm, &gather(at, du, n, q), dld);
            let dxin = net_backward(params, net, &acts, drm, grads, n, at.h, at.w);
            // The conditioner read b ⊙ y, or the first ⌊C/2⌋ channels.
            let c_in = net.convs[0].c_in;
            for s in 0..n {
                for e in 0..c_in * at.hw() {
                    let on = match split {
                        Split::Checkerboard(parity) => mask(parity, e / at.w % at.h, e % at.w),
                        Split::Channels => true,
                    };
                    if on {
                        dy[s * at.len() + e] += dxin[s * c_in * at.hw() + e];
                    }
                }
            }
            scatter(at, &dy, &mut dx, n, q);
        }
        Layer::ChannelReverse { .. } => return layer_forward(layer, params, du, &mut vec![0.0; n], n, q),
        Layer::Squeeze { at } => {
            for s in 0..n {
                for e in 0..at.len() {
                    dx[s * q + at.off + at.squeeze_source(e)] = du[s * q + at.off + e];
                }
            }
        }
        Layer::Inv1x1 { at, lu, perm, sign, .. } => {
            let (c, hw, f) = (at.c, at.hw(), inv1x1_lu(params, at, *lu));
            let (xr, dur) = (gather(at, x, n, q), gather(at, du, n, q));
            let w = inv1x1::weights(f, perm, sign, c);
            scatter(at, &inv1x1::apply(&w, true, &dur, c, hw), &mut dx, n, q);
            let g = inv1x1::lu_grad(f, perm, sign, &inv1x1::weight_grad(&dur, &xr, c, hw), dld.iter().sum(), c, hw);
            grads[*lu..*lu + c * c].copy_from_slice(&g);
        }
        Layer::FactorOut { .. } => {}
        Layer::ActNorm { .. } | Layer::Coupling { .. } | Layer::Reverse | Layer::Shuffle { .. } => return None,
    }
    Some(dx)
}
