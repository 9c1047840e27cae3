//! The conv layers of CONV.md in f64: direct convolution loops (no GEMM), per-channel
//! ActNorm, the checkerboard and channel couplings, squeeze, channel reversal and the
//! invertible 1×1 convolution, each on its `Region` of the row (see `model::conv`).
//! Straightforward on purpose: the oracle the GPU kernels and the numpy module answer to.

use super::{channorm, conv_coupling};
use crate::model::conv::inv1x1_matrix;
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

/// The inverse of a C×C matrix by Gauss–Jordan with partial pivoting.
fn invert(m: &[f64], c: usize) -> Vec<f64> {
    let mut a = m.to_vec();
    let mut inv: Vec<f64> = (0..c * c).map(|e| if e / c == e % c { 1.0 } else { 0.0 }).collect();
    for col in 0..c {
        let p = (col..c).max_by(|&i, &j| a[i * c + col].abs().total_cmp(&a[j * c + col].abs())).unwrap_or(col);
        for k in 0..c {
            a.swap(col * c + k, p * c + k);
            inv.swap(col * c + k, p * c + k);
        }
        let piv = a[col * c + col];
        for k in 0..c {
            a[col * c + k] /= piv;
            inv[col * c + k] /= piv;
        }
        for r in (0..c).filter(|&r| r != col) {
            let f = a[r * c + col];
            for k in 0..c {
                a[r * c + k] -= f * a[col * c + k];
                inv[r * c + k] -= f * inv[col * c + k];
            }
        }
    }
    inv
}

fn inv1x1_weights(params: &[f64], at: &Region, lu: usize, perm: &[u32], sign: &[i8]) -> Vec<f64> {
    inv1x1_matrix(&params[lu..lu + at.c * at.c], perm, sign, at.c)
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
            let ld = at.hw() as f64 * (0..at.c).map(|c| params[lu + c * at.c + c]).sum::<f64>();
            logdet.iter_mut().for_each(|l| *l += ld);
            mix_channels(&inv1x1_weights(params, at, *lu, perm, sign), at, y, n, q)
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
            let w = inv1x1_weights(params, at, *lu, perm, sign);
            mix_channels(&invert(&w, at.c), at, u, n, q)
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
