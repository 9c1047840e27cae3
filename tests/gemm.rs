//! gemm.wgsl (every entry point) against src/reference/gemm.rs: plain, transposed views,
//! column blocks, bias, an ActNorm by rows (against channorm's formula), ReLU, accumulate;
//! sizes that are not tile or vector multiples.

mod common;
use common::*;
use mflow::gpu::{read_back, storage_init, submit};
use mflow::kernels::gemm::{Entry, Gemm, Variant, View};
use mflow::reference::gemm::{gemm, Strided};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// C = A·B, both row-major.
    Nn,
    /// C = A·Bᵀ (dX = dY·Wᵀ).
    Nt,
    /// C = Aᵀ·B (dW = Xᵀ·dY).
    Tn,
}

/// What the aux binding carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aux {
    None,
    Bias,
    /// The bias by rows (ROWBIAS: a 1×1 convolution's per output channel).
    RowBias,
    /// RowBias, then an ActNorm per row (NORM: a conditioner's hidden 1×1 convolution).
    RowNorm,
    Mask,
}

/// Checks one GEMM and returns the entry point that ran.
#[allow(clippy::too_many_arguments)]
fn check(
    variant: Variant,
    layout: Layout,
    m: usize,
    n: usize,
    k: usize,
    aux: Aux,
    relu: bool,
    accumulate: bool,
) -> Entry {
    check_models(variant, layout, m, n, k, aux, relu, accumulate, 1, false)
}

/// `check` for `models` independent GEMMs in one dispatch (grid z), each operand's copies a
/// per-model stride apart (a multiple of 4, so the vec4 paths stay eligible).
#[allow(clippy::too_many_arguments)]
fn check_models(
    variant: Variant,
    layout: Layout,
    m: usize,
    n: usize,
    k: usize,
    aux: Aux,
    relu: bool,
    accumulate: bool,
    models: usize,
    colsum: bool,
) -> Entry {
    let aligned = matches!(variant, Variant::Vec4 | Variant::Vec4Small) && [m, n, k].iter().all(|x| x % 4 == 0);
    check_views(variant, layout, m, n, k, aux, relu, accumulate, models, colsum, aligned)
}

/// `check_models` with every offset and stride a multiple of 4 when `aligned` (whatever
/// m, n and k are), as a coupling's first layer reads h < 4 or odd columns of 4-aligned rows.
#[allow(clippy::too_many_arguments)]
fn check_views(
    variant: Variant,
    layout: Layout,
    m: usize,
    n: usize,
    k: usize,
    aux: Aux,
    relu: bool,
    accumulate: bool,
    models: usize,
    colsum: bool,
    aligned: bool,
) -> Entry {
    let bias = matches!(aux, Aux::Bias | Aux::RowBias | Aux::RowNorm);
    let rows = matches!(aux, Aux::RowBias | Aux::RowNorm);
    let gpu = gpu();
    // Offsets and an extra leading dimension on A test strided views and column blocks;
    // for the vec4 paths they are multiples of 4 (else those paths must fall back).
    let (a_off, b_off, c_off, bias_off) = if aligned { (4, 8, 2, 1) } else { (3, 5, 2, 1) };
    let lda_extra = if aligned { 4 - (if layout == Layout::Tn { m } else { k }) % 4 } else { 2 };
    let (a_rows, a_cols) = match layout {
        Layout::Tn => (k, m + lda_extra),
        _ => (m, k + lda_extra),
    };
    let (b_rows, b_cols) = match layout {
        Layout::Nt => (n, k),
        _ => (k, n),
    };
    let a_ms = (a_off + a_rows * a_cols).next_multiple_of(4);
    let b_ms = (b_off + b_rows * b_cols).next_multiple_of(4);
    // With COLSUM, B's column sums go right after each model's C.
    let cs_off = c_off + m * n;
    let c_ms = (cs_off + if colsum { n } else { 0 }).next_multiple_of(4);
    // The aux buffer holds the bias, then RowNorm's β and a (m each), or a ReLU mask like C.
    let aux_ms = (bias_off + (m * n).max(3 * m)).next_multiple_of(4);
    let norm = (aux == Aux::RowNorm).then_some((bias_off + m, bias_off + 2 * m));
    let seed = (m * 1000 + n * 10 + k + 7 * models) as u64;
    let a = uniform(seed, models * a_ms, 1.0);
    let b = uniform(seed + 1, models * b_ms, 1.0);
    // The aux buffer holds the bias (first n values) or a ReLU mask shaped like C (about
    // half its entries ≤ 0).
    let bias_v = uniform(seed + 2, models * aux_ms, 1.0);
    let c0 = uniform(seed + 3, models * c_ms, 1.0);
    let av = match layout {
        Layout::Tn => Strided::transposed(a_off, a_cols),
        _ => Strided::rows(a_off, a_cols),
    };
    let bv = match layout {
        Layout::Nt => Strided::transposed(b_off, b_cols),
        _ => Strided::rows(b_off, b_cols),
    };
    let mut want = to_f64(&c0);
    let (a64, b64, bias64) = (to_f64(&a), to_f64(&b), to_f64(&bias_v));
    for z in 0..models {
        let auxz = &bias64[z * aux_ms..(z + 1) * aux_ms];
        if rows {
            let cz = &mut want[z * c_ms..(z + 1) * c_ms];
            mflow::reference::gemm::gemm_bias_rows(
                cz,
                Strided::rows(c_off, n),
                &a64[z * a_ms..(z + 1) * a_ms],
                av,
                &b64[z * b_ms..(z + 1) * b_ms],
                bv,
                (auxz, bias_off),
                m,
                n,
                k,
                relu && norm.is_none(),
                accumulate,
            );
            // channorm's forward over the rows (channels) of C, then the ReLU.
            if let Some((beta, a)) = norm {
                for i in 0..m {
                    let sigma = auxz[a + i].exp() + 1e-6;
                    for v in &mut cz[c_off + i * n..c_off + (i + 1) * n] {
                        *v = (*v - auxz[beta + i]) / sigma;
                        if relu {
                            *v = v.max(0.0);
                        }
                    }
                }
            }
        } else {
            gemm(
                &mut want[z * c_ms..(z + 1) * c_ms],
                Strided::rows(c_off, n),
                &a64[z * a_ms..(z + 1) * a_ms],
                av,
                &b64[z * b_ms..(z + 1) * b_ms],
                bv,
                bias.then_some((auxz, bias_off)),
                (aux == Aux::Mask).then_some((auxz, bias_off)),
                m,
                n,
                k,
                relu,
                accumulate,
            );
        }
        if colsum {
            let bz = &b64[z * b_ms..(z + 1) * b_ms];
            for j in 0..n {
                want[z * c_ms + cs_off + j] = (0..k).map(|kk| bz[bv.off + kk * bv.rs + j * bv.cs]).sum();
            }
        }
    }

    let (ab, bb, biasb, cb) = (
        storage_init(gpu, "a", &a),
        storage_init(gpu, "b", &b),
        storage_init(gpu, "bias", &bias_v),
        storage_init(gpu, "c", &c0),
    );
    let view = |buf, s: Strided, ms| View { buf, off: s.off, rs: s.rs, cs: s.cs, ms };
    let g = Gemm {
        m,
        n,
        k,
        a: view(&ab, av, a_ms),
        b: view(&bb, bv, b_ms),
        bias: bias.then_some((&biasb, bias_off, aux_ms)),
        bias_rows: rows,
        mask: (aux == Aux::Mask).then_some((&biasb, bias_off, aux_ms)),
        c: View::rows(&cb, c_off, n).per_model(c_ms),
        relu,
        accumulate,
        colsum: colsum.then_some(cs_off),
        norm,
        models,
    };
    let entry = g.entry(variant);
    let d = g.dispatch(gpu, variant, "gemm test");
    submit(gpu, "gemm test", &[&d]);
    let got = read_back::<f32>(gpu, &cb, 0, models * c_ms);
    let tol = 1e-5 * (k as f64).sqrt() + 1e-6;
    let what =
        format!("{entry:?} m={m} n={n} k={k} {aux:?} relu={relu} acc={accumulate} models={models} colsum={colsum}");
    assert_close(&what, &got, &want, tol, 1e-5);
    entry
}

// Off every tile (32, 64, 128, 512 rows) and slab (16): the last shape spans two wide tiles.
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (1, 7, 3),
    (5, 3, 2),
    (33, 17, 9),
    (31, 65, 1),
    (64, 64, 16),
    (67, 130, 35),
    (2, 300, 70),
    (130, 260, 19),
];

#[test]
fn gemm_reg_matches_reference() {
    for &(m, n, k) in &SHAPES {
        check(Variant::Reg, Layout::Nn, m, n, k, Aux::Bias, true, false);
        check(Variant::Reg, Layout::Nn, m, n, k, Aux::RowBias, true, true);
        check(Variant::Reg, Layout::Nn, m, n, k, Aux::RowNorm, true, false);
        check(Variant::Reg, Layout::Nt, m, n, k, Aux::Mask, false, true);
        check(Variant::Reg, Layout::Tn, m, n, k, Aux::None, false, false);
    }
}

#[test]
fn gemm_tiled_matches_reference() {
    for &(m, n, k) in &SHAPES {
        for v in [Variant::Tiled, Variant::TiledWide] {
            check(v, Layout::Nn, m, n, k, Aux::Bias, true, false);
            check(v, Layout::Nn, m, n, k, Aux::RowBias, false, false);
            check(v, Layout::Nn, m, n, k, Aux::RowNorm, true, false);
            check(v, Layout::Nt, m, n, k, Aux::Mask, false, true);
            check(v, Layout::Tn, m, n, k, Aux::Bias, false, true);
        }
    }
}

#[test]
fn gemm_vec4_paths_match_reference() {
    // Multiples of 4 that are not multiples of the 64×128 tiles.
    // Fewer than 16 columns take gemm_nn4_narrow (512-row tiles: 513 is one past).
    for &(m, n, k) in
        &[(4, 4, 4), (12, 8, 20), (68, 132, 36), (132, 260, 4), (4, 128, 64), (516, 12, 36), (8, 4, 128), (600, 16, 8)]
    {
        let nn = if n < 16 { Entry::Nn4Narrow } else { Entry::Nn4 };
        assert_eq!(check(Variant::Vec4, Layout::Nn, m, n, k, Aux::Bias, true, false), nn);
        assert_eq!(check(Variant::Vec4, Layout::Nn, m, n, k, Aux::None, false, false), nn);
        assert_eq!(check(Variant::Vec4, Layout::Nn, m, n, k, Aux::RowBias, false, true), nn);
        assert_eq!(check(Variant::Vec4, Layout::Nn, m, n, k, Aux::RowNorm, true, false), nn);
        assert_eq!(check(Variant::Vec4, Layout::Tn, m, n, k, Aux::RowBias, true, false), Entry::Tn4);
        // The small-tile family: the same conditions, a quarter of the work per thread.
        let nn_s = if n < 16 { Entry::Nn4Narrow } else { Entry::Nn4S };
        assert_eq!(check(Variant::Vec4Small, Layout::Nn, m, n, k, Aux::Bias, true, false), nn_s);
        assert_eq!(check(Variant::Vec4Small, Layout::Nn, m, n, k, Aux::RowNorm, true, false), nn_s);
        assert_eq!(check(Variant::Vec4Small, Layout::Nt, m, n, k, Aux::Mask, false, true), Entry::Nt4S);
        assert_eq!(check(Variant::Vec4Small, Layout::Tn, m, n, k, Aux::Bias, false, true), Entry::Tn4S);
        assert_eq!(check(Variant::Vec4, Layout::Nt, m, n, k, Aux::Mask, false, true), Entry::Nt4);
        assert_eq!(check(Variant::Vec4, Layout::Tn, m, n, k, Aux::Bias, false, true), Entry::Tn4);
    }
}

#[test]
fn gemm_vec4_paths_take_any_k_or_m_inside_aligned_rows() {
    // A coupling's first layer: X·W reads h (any count) of each 4-aligned row's columns, and
    // its weight gradient Xᵀ·dZ has h rows. The partial last vec4 is masked (k) or dropped (m).
    for &(m, n, k) in &[(8, 16, 1), (8, 16, 2), (13, 128, 3), (70, 4, 394), (1, 8, 5), (600, 12, 2)] {
        let nn = if n < 16 { Entry::Nn4Narrow } else { Entry::Nn4 };
        assert_eq!(check_views(Variant::Vec4, Layout::Nn, m, n, k, Aux::Bias, true, false, 1, false, true), nn);
        assert_eq!(check_views(Variant::Vec4, Layout::Nn, m, n, k, Aux::None, false, true, 3, false, true), nn);
        let nn_s = if n < 16 { Entry::Nn4Narrow } else { Entry::Nn4S };
        assert_eq!(check_views(Variant::Vec4Small, Layout::Nn, m, n, k, Aux::Bias, true, false, 2, false, true), nn_s);
    }
    for &(m, n, k) in &[(1, 16, 8), (2, 128, 64), (3, 4, 33), (394, 128, 7), (6, 8, 1)] {
        assert_eq!(check_views(Variant::Vec4, Layout::Tn, m, n, k, Aux::None, false, false, 1, true, true), Entry::Tn4);
        assert_eq!(check_views(Variant::Vec4, Layout::Tn, m, n, k, Aux::None, false, true, 2, true, true), Entry::Tn4);
        let tn_s = check_views(Variant::Vec4Small, Layout::Tn, m, n, k, Aux::None, false, true, 2, true, true);
        assert_eq!(tn_s, Entry::Tn4S);
    }
}

#[test]
fn gemm_vec4_falls_back_on_awkward_shapes() {
    // Thin (an output side below 16): one output per invocation.
    for &(m, n, k) in &[(1, 1, 1), (5, 3, 2), (2, 300, 70), (256, 2, 128), (1, 128, 256)] {
        assert_eq!(check(Variant::Vec4, Layout::Nn, m, n, k, Aux::Bias, true, false), Entry::Thin);
        assert_eq!(check(Variant::Vec4, Layout::Nt, m, n, k, Aux::Mask, false, true), Entry::Thin);
        assert_eq!(check(Variant::Vec4, Layout::Tn, m, n, k, Aux::None, false, true), Entry::Thin);
    }
    // Not thin, not vec4-aligned: gemm_reg.
    for &(m, n, k) in &[(33, 17, 9), (67, 130, 35), (256, 128, 1)] {
        assert_eq!(check(Variant::Vec4, Layout::Nn, m, n, k, Aux::Bias, true, false), Entry::Reg);
        assert_eq!(check(Variant::Vec4, Layout::Tn, m, n, k, Aux::None, false, true), Entry::Reg);
    }
}

#[test]
fn gemm_thin_folds_a_large_grid() {
    // 2 × 2.2M outputs: more than 65535 workgroups of 64, so the grid folds into y.
    assert_eq!(check(Variant::Vec4, Layout::Nn, 2, 2_200_000, 1, Aux::Bias, false, false), Entry::Thin);
}

#[test]
fn gemm_runs_many_models_in_one_dispatch() {
    // Each model reads and writes its own copies; an odd count and shapes off the tiles.
    for variant in [Variant::Reg, Variant::Tiled, Variant::TiledWide] {
        check_models(variant, Layout::Nn, 5, 3, 2, Aux::Bias, true, false, 3, false);
        check_models(variant, Layout::Nt, 33, 17, 9, Aux::Mask, false, true, 3, false);
        check_models(variant, Layout::Tn, 31, 65, 1, Aux::None, false, true, 2, false);
    }
    assert_eq!(check_models(Variant::Vec4, Layout::Nn, 12, 8, 20, Aux::Bias, true, false, 3, false), Entry::Nn4Narrow);
    assert_eq!(check_models(Variant::Vec4, Layout::Nn, 12, 16, 20, Aux::Bias, true, false, 3, false), Entry::Nn4);
    assert_eq!(check_models(Variant::Vec4, Layout::Nt, 68, 132, 36, Aux::Mask, false, true, 3, false), Entry::Nt4);
    assert_eq!(check_models(Variant::Vec4, Layout::Tn, 4, 128, 64, Aux::Bias, false, true, 5, false), Entry::Tn4);
    assert_eq!(check_models(Variant::Vec4, Layout::Nn, 30, 2, 20, Aux::Bias, true, false, 3, false), Entry::Thin);
    assert_eq!(check_models(Variant::Vec4, Layout::Tn, 1, 33, 40, Aux::None, false, true, 4, false), Entry::Thin);
}

#[test]
fn gemm_colsum_epilogue_gives_the_bias_gradient() {
    // dW = Xᵀ·dZ with db = Σ_rows dZ from the same loads, on every entry point that carries
    // it (Nn and Nt requests fall back to gemm_reg), odd shapes, several models.
    for &(m, n, k) in &[(1, 1, 1), (5, 3, 2), (33, 17, 9), (2, 300, 70), (64, 64, 16), (67, 130, 35)] {
        for variant in mflow::kernels::gemm::VARIANTS {
            check_models(variant, Layout::Tn, m, n, k, Aux::None, false, false, 1, true);
            check_models(variant, Layout::Tn, m, n, k, Aux::None, false, false, 3, true);
        }
        check_models(Variant::Reg, Layout::Nn, m, n, k, Aux::Bias, true, false, 2, true);
        check_models(Variant::Tiled, Layout::Nt, m, n, k, Aux::Mask, false, true, 2, true);
    }
    for &(m, n, k) in &[(4, 128, 64), (12, 8, 20), (68, 132, 36)] {
        assert_eq!(check_models(Variant::Vec4, Layout::Tn, m, n, k, Aux::None, false, false, 3, true), Entry::Tn4);
        assert_eq!(check_models(Variant::Vec4, Layout::Nn, m, n, k, Aux::Bias, true, false, 1, true), Entry::Reg);
    }
    assert_eq!(check_models(Variant::Vec4, Layout::Tn, 2, 33, 40, Aux::None, false, false, 2, true), Entry::Thin);
}
