//! Twin of shaders/coupling.wgsl: the affine part of a coupling given the conditioner
//! output rm = (r, m) (n, 2(q−h)); s = bound(r) = tanh(r) everywhere.

/// s = tanh(r), clamped as the shader does (tanh(±15) is ±1 in f32).
pub fn bound(r: f64) -> f64 {
    r.clamp(-15.0, 15.0).tanh()
}

/// u_a = y_a, u_b = y_b ⊙ exp(s) + m; logdet += Σ s.
pub fn forward(y: &[f64], rm: &[f64], u: &mut [f64], logdet: &mut [f64], n: usize, q: usize) {
    let h = q / 2;
    let nb = q - h;
    for row in 0..n {
        let rm0 = row * 2 * nb;
        for i in 0..q {
            let e = row * q + i;
            u[e] = if i < h {
                y[e]
            } else {
                let j = i - h;
                y[e] * bound(rm[rm0 + j]).exp() + rm[rm0 + nb + j]
            };
        }
        logdet[row] += (0..nb).map(|j| bound(rm[rm0 + j])).sum::<f64>();
    }
}

/// y_a = u_a, y_b = (u_b − m) ⊙ exp(−s).
pub fn inverse(u: &[f64], rm: &[f64], y: &mut [f64], n: usize, q: usize) {
    let h = q / 2;
    let nb = q - h;
    for row in 0..n {
        let rm0 = row * 2 * nb;
        for i in 0..q {
            let e = row * q + i;
            y[e] = if i < h {
                u[e]
            } else {
                let j = i - h;
                (u[e] - rm[rm0 + nb + j]) * (-bound(rm[rm0 + j])).exp()
            };
        }
    }
}

/// d bound / dr: 1 − tanh² inside the clamp, 0 outside.
pub fn bound_grad(r: f64) -> f64 {
    if r.abs() > 15.0 {
        0.0
    } else {
        1.0 - r.tanh().powi(2)
    }
}

/// dx (=) and drm (=) from du (n, q) and dld (n); dx_a = du_a before the conditioner adds
/// its share.
pub fn backward(y: &[f64], rm: &[f64], du: &[f64], dld: &[f64], dx: &mut [f64], drm: &mut [f64], n: usize, q: usize) {
    let h = q / 2;
    let nb = q - h;
    for row in 0..n {
        let rm0 = row * 2 * nb;
        for i in 0..q {
            let e = row * q + i;
            if i < h {
                dx[e] = du[e];
                continue;
            }
            let j = i - h;
            let r = rm[rm0 + j];
            let es = bound(r).exp();
            dx[e] = du[e] * es;
            let ds = du[e] * y[e] * es + dld[row];
            drm[rm0 + j] = ds * bound_grad(r);
            drm[rm0 + nb + j] = du[e];
        }
    }
}

/// `forward` with the following permutation folded into the store: element i of each row
/// goes to position inv[i] (coupling.wgsl's PERMUTED).
pub fn forward_permuted(y: &[f64], rm: &[f64], inv: &[u32], u: &mut [f64], logdet: &mut [f64], n: usize, q: usize) {
    let mut plain = vec![0.0; n * q];
    forward(y, rm, &mut plain, logdet, n, q);
    for row in 0..n {
        for i in 0..q {
            u[row * q + inv[i] as usize] = plain[row * q + i];
        }
    }
}

/// `backward` reading ∂L/∂u_i at position inv[i] of `du` (the following permutation's
/// output gradient).
pub fn backward_permuted(
    y: &[f64],
    rm: &[f64],
    inv: &[u32],
    du: &[f64],
    dld: &[f64],
    dx: &mut [f64],
    drm: &mut [f64],
    n: usize,
    q: usize,
) {
    let mut plain = vec![0.0; n * q];
    for row in 0..n {
        for i in 0..q {
            plain[row * q + i] = du[row * q + inv[i] as usize];
        }
    }
    backward(y, rm, &plain, dld, dx, drm, n, q);
}
