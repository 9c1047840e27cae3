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
