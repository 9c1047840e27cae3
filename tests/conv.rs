//! conv.wgsl against src/reference/conv.rs (itself checked against a hand-computed direct
//! convolution and central differences): forward, forward with the ActNorm and ReLU folded
//! in (against src/reference/channorm.rs after it), data gradient, weight and bias gradient,
//! on awkward shapes: C = 1, 3, 5, odd channel counts, H = W = 2, 7×7, batch 1, channel and
//! pixel counts off the tiles (256 pixels × 2, 4 or 8 channels, 128 × 16; weight-gradient
//! blocks of 8 × 1, 4 × 2, 2 × 4, 8 × 8, 4 × 16 and 2 × 32 channels), every generated entry
//! point with the tuner's choices either way, the
//! checkerboard mask of either parity, inputs that are a region of longer rows, and two
//! models in one dispatch.

mod common;
use common::*;
use mflow::gpu::{read_back, storage_init, submit};
use mflow::kernels::conv::{Conv, ConvTiles, Planes};
use mflow::model::{Conv2d, Norm};
use mflow::reference::{channorm, conv as r};

struct Case {
    c_in: usize,
    c_out: usize,
    k: usize,
    h: usize,
    w: usize,
    n: usize,
    mask: Option<usize>,
    /// Extra values before and after each sample's planes (a region of a flow row).
    row_pad: (usize, usize),
    models: usize,
}

const CASES: [Case; 9] = [
    Case { c_in: 1, c_out: 3, k: 3, h: 2, w: 2, n: 1, mask: None, row_pad: (0, 0), models: 1 },
    Case { c_in: 3, c_out: 5, k: 3, h: 7, w: 7, n: 2, mask: None, row_pad: (0, 0), models: 1 },
    Case { c_in: 5, c_out: 33, k: 1, h: 3, w: 5, n: 3, mask: None, row_pad: (0, 0), models: 1 },
    Case { c_in: 2, c_out: 7, k: 3, h: 4, w: 4, n: 5, mask: Some(1), row_pad: (3, 2), models: 1 },
    Case { c_in: 1, c_out: 6, k: 3, h: 8, w: 6, n: 1, mask: Some(0), row_pad: (5, 0), models: 2 },
    Case { c_in: 37, c_out: 2, k: 3, h: 5, w: 3, n: 2, mask: None, row_pad: (0, 1), models: 2 },
    // 507 pixels: two pixel tiles and a partial third; 9 output channels: a block of 8 and 1.
    Case { c_in: 2, c_out: 9, k: 3, h: 13, w: 13, n: 3, mask: Some(1), row_pad: (0, 0), models: 1 },
    Case { c_in: 37, c_out: 2, k: 1, h: 3, w: 3, n: 2, mask: Some(0), row_pad: (1, 0), models: 2 },
    Case { c_in: 2, c_out: 4, k: 1, h: 2, w: 5, n: 3, mask: None, row_pad: (0, 0), models: 1 },
];

/// Model z's sample s as a contiguous (c, h, w) block, from rows of `rs` values.
fn planes(v: &[f32], z: usize, ms: usize, s: usize, rs: usize, off: usize, len: usize) -> Vec<f64> {
    to_f64(&v[z * ms + s * rs + off..z * ms + s * rs + off + len])
}

#[test]
fn conv_kernels_match_the_direct_convolution_twin() {
    let gpu = gpu();
    // The tuner's choices: the built-in tiles, and every alternative it may take instead.
    let wide = ConvTiles { fwd_c16: true, wgrad3_o4: true, wgrad1_o4: true };
    for (ci, cs, tiles) in CASES.iter().enumerate().flat_map(|(i, c)| [(i, c, ConvTiles::default()), (i, c, wide)]) {
        let seed = 10 * ci as u64;
        let (hw, n) = (cs.h * cs.w, cs.n);
        let conv =
            Conv2d { w: 3, b: 3 + cs.c_out * cs.c_in * cs.k * cs.k + 1, c_in: cs.c_in, c_out: cs.c_out, k: cs.k };
        // After the bias, a per-channel ActNorm's β and a for the folded forward (NORM).
        let norm = Norm { beta: conv.b + cs.c_out, a: conv.b + 2 * cs.c_out, c: cs.c_out };
        let ps = (conv.b + 3 * cs.c_out + 2).next_multiple_of(4);
        let (x_len, y_len) = (cs.c_in * hw, cs.c_out * hw);
        let x_rs = cs.row_pad.0 + x_len + cs.row_pad.1;
        let (x_ms, y_ms) = (n * x_rs, n * y_len);
        let params = uniform(seed + 1, cs.models * ps, 0.5);
        let x = uniform(seed + 2, cs.models * x_ms, 1.5);
        let y0 = uniform(seed + 3, cs.models * y_ms, 1.0);
        let dy = uniform(seed + 4, cs.models * y_ms, 1.0);
        let dx0 = uniform(seed + 5, cs.models * x_ms, 1.0);
        let (pb, xb, yb, dyb, dxb) = (
            storage_init(gpu, "params", &params),
            storage_init(gpu, "x", &x),
            storage_init(gpu, "y", &y0),
            storage_init(gpu, "dy", &dy),
            storage_init(gpu, "dx", &dx0),
        );
        let gb = storage_init(gpu, "grads", &vec![f32::NAN; cs.models * ps]);
        let nb = storage_init(gpu, "y normed", &vec![f32::NAN; cs.models * y_ms]);
        let op = Conv { conv, n, h: cs.h, w: cs.w, mask: cs.mask, ps, tiles };
        let xp = Planes { buf: &xb, off: cs.row_pad.0, rs: x_rs, ms: x_ms };
        let dxp = Planes { buf: &dxb, ..xp };
        let yp = Planes { buf: &yb, off: 0, rs: y_len, ms: y_ms };
        let dyp = Planes { buf: &dyb, ..yp };
        // Accumulate into y and dx on odd cases, overwrite on even ones.
        let acc = ci % 2 == 1;
        let f = op.forward(gpu, &pb, xp, yp, acc).models(cs.models);
        let bd = op.backward_data(gpu, &pb, dyp, dxp, acc).models(cs.models);
        let bw = op.backward_weights(gpu, xp, dyp, &gb).models(cs.models);
        let fnorm = op.forward_norm(gpu, &pb, xp, Planes { buf: &nb, ..yp }, norm).models(cs.models);
        submit(gpu, "conv test", &[&f, &bd, &bw, &fnorm]);
        let (got_y, got_dx, got_g) = (
            read_back::<f32>(gpu, &yb, 0, y0.len()),
            read_back::<f32>(gpu, &dxb, 0, dx0.len()),
            read_back::<f32>(gpu, &gb, 0, ps * cs.models),
        );
        let got_norm = read_back::<f32>(gpu, &nb, 0, cs.models * y_ms);
        for z in 0..cs.models {
            let p64 = to_f64(&params[z * ps..(z + 1) * ps]);
            let on = |i: usize, j: usize| cs.mask.is_none_or(|p| r::mask(p, i, j));
            // The input as the conditioner sees it: masked where the checkerboard hides it.
            let mut xin = Vec::new();
            for s in 0..n {
                let v = planes(&x, z, x_ms, s, x_rs, cs.row_pad.0, x_len);
                xin.extend(v.iter().enumerate().map(|(e, &v)| if on(e / cs.w % cs.h, e % cs.w) { v } else { 0.0 }));
            }
            let mut want_y = r::conv2d(&p64, &conv, &xin, n, cs.h, cs.w);
            let want_norm = channorm::forward(&p64, &norm, &want_y, hw, true);
            let dy64 = to_f64(&dy[z * y_ms..(z + 1) * y_ms]);
            let mut g = vec![0.0; ps];
            let mut want_dx = r::conv2d_backward(&p64, &conv, &xin, &dy64, n, cs.h, cs.w, &mut g);
            for (e, v) in want_dx.iter_mut().enumerate() {
                if !on(e / cs.w % cs.h, e % cs.w) {
                    *v = 0.0;
                }
            }
            if acc {
                for (w, y) in want_y.iter_mut().zip(&y0[z * y_ms..]) {
                    *w += *y as f64;
                }
                for s in 0..n {
                    let before = planes(&dx0, z, x_ms, s, x_rs, cs.row_pad.0, x_len);
                    for (e, b) in before.iter().enumerate() {
                        want_dx[s * x_len + e] += b;
                    }
                }
            }
            let what = |t: &str| format!("case {ci} model {z} {tiles:?}: {t}");
            assert_close(&what("y"), &got_y[z * y_ms..(z + 1) * y_ms], &want_y, 1e-4, 1e-4);
            assert_close(&what("ReLU(ActNorm(y))"), &got_norm[z * y_ms..(z + 1) * y_ms], &want_norm, 1e-4, 1e-4);
            for s in 0..n {
                let base = z * x_ms + s * x_rs;
                let got = &got_dx[base + cs.row_pad.0..base + cs.row_pad.0 + x_len];
                assert_close(&what("dx"), got, &want_dx[s * x_len..(s + 1) * x_len], 1e-4, 1e-4);
                // Values around the region are never written.
                assert_eq!(
                    &got_dx[base..base + cs.row_pad.0],
                    &dx0[base..base + cs.row_pad.0],
                    "{}",
                    what("dx padding")
                );
            }
            let wlen = conv.c_out * conv.c_in * conv.k * conv.k;
            assert_close(
                &what("dW"),
                &got_g[z * ps + conv.w..z * ps + conv.w + wlen],
                &g[conv.w..conv.w + wlen],
                1e-4,
                1e-4,
            );
            assert_close(
                &what("dbias"),
                &got_g[z * ps + conv.b..z * ps + conv.b + conv.c_out],
                &g[conv.b..conv.b + conv.c_out],
                1e-4,
                1e-4,
            );
        }
    }
}
