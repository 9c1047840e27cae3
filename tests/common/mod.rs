//! Shared by every GPU test binary: one device (tests run in parallel threads and share
//! it), seeded inputs, and a closeness check that names the worst element.
#![allow(dead_code)]

use mflow::gpu::{AdapterChoice, Gpu};
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new(&AdapterChoice::from_cli(None)) {
        Ok(g) => g,
        // A missing adapter is a failure, not a skip: CI installs lavapipe.
        Err(e) => panic!("GPU tests need an adapter: {e:#}"),
    })
}

/// The built-in kernel choices for the shared device (tests never tune).
pub fn kernels() -> &'static mflow::gpu_flow::Kernels {
    static K: OnceLock<mflow::gpu_flow::Kernels> = OnceLock::new();
    K.get_or_init(|| mflow::gpu_flow::Kernels::defaults(gpu()))
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// `len` values uniform in ±scale.
pub fn uniform(seed: u64, len: usize, scale: f64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..len).map(|_| (r.random_range(-1.0..1.0) * scale) as f32).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Asserts |got − want| ≤ abs + rel·|want| elementwise, reporting the worst offender.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], abs: f64, rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        let excess = (g - w).abs() - (abs + rel * w.abs());
        if !g.is_finite() || excess > 0.0 {
            let e = if g.is_finite() { excess } else { f64::INFINITY };
            if worst.is_none_or(|(_, we)| e > we) {
                worst = Some((i, e));
            }
        }
    }
    if let Some((i, _)) = worst {
        panic!("{what}: element {i} is {} but the reference says {} (abs {abs}, rel {rel})", got[i], want[i]);
    }
}

/// Relative error ‖got − want‖∞ / max(‖want‖∞, floor).
pub fn rel_err(got: &[f32], want: &[f64], floor: f64) -> f64 {
    let num = got.iter().zip(want).map(|(&g, &w)| (g as f64 - w).abs()).fold(0.0, f64::max);
    let den = want.iter().map(|w| w.abs()).fold(floor, f64::max);
    num / den
}

/// A safetensors file's bytes with its JSON header replaced by `edit(header)`, padded and
/// re-framed (tests that craft metadata).
pub fn rewrite_safetensors_header(bytes: &[u8], edit: impl FnOnce(&str) -> String) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let mut h = edit(header).into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(&bytes[8 + n..]);
    out
}

/// An empty folder `mflow-<binary>-<pid>-<name>` under the temporary directory (made anew).
/// Where tests write: cargo's scratch folder for integration tests (target/tmp), so that
/// the suite leaves nothing behind in the system's temporary folder.
pub fn scratch() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

pub fn fresh_dir(binary: &str, name: &str) -> std::path::PathBuf {
    let d = scratch().join(format!("mflow-{binary}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
