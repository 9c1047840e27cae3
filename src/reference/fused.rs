//! Twin of shaders/fused.wgsl: the conditioner (reference::flow::conditioner, the GEMMs'
//! twin) followed by the affine coupling (reference::coupling), row for row.

use crate::model::Linear;
use crate::reference::{coupling, flow};

/// u = coupling(y); logdet += Σ s.
pub fn forward(params: &[f64], linears: &[Linear], y: &[f64], u: &mut [f64], logdet: &mut [f64], n: usize, q: usize) {
    let outs = flow::conditioner(params, linears, y, n, q);
    coupling::forward(y, outs.last().expect("an output layer"), u, logdet, n, q);
}

/// y = coupling⁻¹(u).
pub fn inverse(params: &[f64], linears: &[Linear], u: &[f64], y: &mut [f64], n: usize, q: usize) {
    let outs = flow::conditioner(params, linears, u, n, q);
    coupling::inverse(u, outs.last().expect("an output layer"), y, n, q);
}

/// The training forward: `forward`, returning what fused.wgsl's SAVE keeps — the input
/// rows (n, q), then each linear's output (n, fan_out). With `actnorm` (β and a offsets),
/// the ActNorm in front is folded in (ACTNORM): `x` is its input, and the saved input rows
/// are its output.
#[allow(clippy::too_many_arguments)]
pub fn forward_saved(
    params: &[f64],
    linears: &[Linear],
    actnorm: Option<(usize, usize)>,
    x: &[f64],
    u: &mut [f64],
    logdet: &mut [f64],
    n: usize,
    q: usize,
) -> Vec<Vec<f64>> {
    let y = match actnorm {
        Some((beta, a)) => {
            let mut y = vec![0.0; n * q];
            super::actnorm::forward(params, beta, a, x, &mut y, logdet, n, q);
            y
        }
        None => x.to_vec(),
    };
    let y = y.as_slice();
    let outs = flow::conditioner(params, linears, y, n, q);
    coupling::forward(y, outs.last().expect("an output layer"), u, logdet, n, q);
    std::iter::once(y.to_vec()).chain(outs).collect()
}

/// The fused backward: returns dx = ∂L/∂(the input), each linear's output gradient dz_k
/// (n, fan_out_k) and g = ∂L/∂(the coupling's input), given `forward_saved`'s result,
/// du = ∂L/∂u (with `inv`, ∂L/∂ of the following permutation's output, read through it as
/// the shader does) and dld. With `actnorm` folded in, dx is ∂L/∂(its input) = g / σ; else
/// dx = g.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    params: &[f64],
    linears: &[Linear],
    actnorm: Option<(usize, usize)>,
    saved: &[Vec<f64>],
    du: &[f64],
    dld: &[f64],
    inv: Option<&[u32]>,
    n: usize,
    q: usize,
) -> (Vec<f64>, Vec<Vec<f64>>, Vec<f64>) {
    let du: Vec<f64> = match inv {
        Some(inv) => (0..n * q).map(|e| du[e - e % q + inv[e % q] as usize]).collect(),
        None => du.to_vec(),
    };
    let (y, rm) = (&saved[0], saved.last().expect("an output layer"));
    let mut dx = vec![0.0; n * q];
    let mut drm = vec![0.0; rm.len()];
    coupling::backward(y, rm, &du, dld, &mut dx, &mut drm, n, q);
    let mut dz = vec![Vec::new(); linears.len()];
    dz[linears.len() - 1] = drm;
    for (k, lin) in linears.iter().enumerate().rev() {
        let (fi, fo) = (lin.fan_in, lin.fan_out);
        let mut d = vec![0.0; n * fi];
        for row in 0..n {
            for i in 0..fi {
                d[row * fi + i] = (0..fo).map(|j| dz[k][row * fo + j] * params[lin.w + i * fo + j]).sum();
            }
        }
        if k == 0 {
            for row in 0..n {
                for i in 0..fi {
                    dx[row * q + i] += d[row * fi + i];
                }
            }
        } else {
            // Through the ReLU: saved[k] is linear k − 1's post-ReLU output.
            for (v, &out) in d.iter_mut().zip(&saved[k]) {
                if out <= 0.0 {
                    *v = 0.0;
                }
            }
            dz[k - 1] = d;
        }
    }
    let g = dx.clone();
    if let Some((_, a)) = actnorm {
        for (e, v) in dx.iter_mut().enumerate() {
            *v /= params[a + e % q].exp() + super::actnorm::GAMMA;
        }
    }
    (dx, dz, g)
}
