//! Random and mutated bytes into every file reader (IDX, CIFAR-10, safetensors checkpoints):
//! thousands of cases from a fixed seed. Any panic or abort fails the test; every refusal
//! must be an error that names the file.

mod common;
use mflow::checkpoint;
use mflow::data::{cifar, idx};
use mflow::model::{Flow, FlowConfig};
use rand::{Rng, SeedableRng};
use std::path::Path;

/// A mutation of `good`: flipped bytes, a cut, an insertion, or a patched length field.
fn mutate(good: &[u8], r: &mut rand::rngs::StdRng) -> Vec<u8> {
    let mut b = good.to_vec();
    match r.random_range(0..5) {
        0 => {
            for _ in 0..r.random_range(1..8) {
                if !b.is_empty() {
                    let i = r.random_range(0..b.len());
                    b[i] = r.random();
                }
            }
        }
        1 => b.truncate(r.random_range(0..=b.len())),
        2 => {
            let i = r.random_range(0..=b.len());
            let extra: Vec<u8> = (0..r.random_range(1..64)).map(|_| r.random()).collect();
            b.splice(i..i, extra);
        }
        3 => {
            // Headers: big-endian dimensions (IDX) or the little-endian header length.
            let i = r.random_range(0..b.len().clamp(1, 24));
            for k in 0..4 {
                if i + k < b.len() {
                    b[i + k] = 0xff;
                }
            }
        }
        _ => b = (0..r.random_range(0..300)).map(|_| r.random()).collect(),
    }
    b
}

#[test]
fn idx_reader_never_panics() {
    let mut r = rand::rngs::StdRng::seed_from_u64(0x1d);
    let good = idx::encode(&[3, 4, 4], &[7; 48]);
    for _ in 0..4000 {
        let b = mutate(&good, &mut r);
        if let Err(e) = idx::parse(&b, "fuzz.idx") {
            assert!(format!("{e:#}").contains("fuzz.idx"));
        }
    }
}

#[test]
fn cifar_reader_never_panics() {
    let mut r = rand::rngs::StdRng::seed_from_u64(0xc1);
    let mut good = Vec::new();
    for l in 0..2u8 {
        good.push(l);
        good.extend((0..3072).map(|i| (i % 251) as u8));
    }
    for _ in 0..2000 {
        let b = mutate(&good, &mut r);
        if let Err(e) = cifar::parse(&b, "fuzz.bin") {
            assert!(format!("{e:#}").contains("fuzz.bin"));
        }
    }
}

#[test]
fn checkpoint_reader_never_panics() {
    let mut r = rand::rngs::StdRng::seed_from_u64(0x5a);
    let dir = common::scratch().join(format!("mflow-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut flow = Flow::new(FlowConfig { d: 3, b: 1, blocks: 2, depth: 1, hidden: 4, seed: 2, conv: None }).unwrap();
    flow.randomize(1, 0.5);
    let path = dir.join("good.safetensors");
    let p = flow.params.len();
    let state =
        checkpoint::TrainState { m: vec![0.0; p], v: vec![0.0; p], ema: None, step: 3, extra: Default::default() };
    checkpoint::save(&path, &flow, Some(&state)).unwrap();
    let good = std::fs::read(&path).unwrap();
    let name = Path::new("fuzz.safetensors");
    let (mut ok, mut refused) = (0, 0);
    for i in 0..3000 {
        let b = if i % 3 == 0 { mutate_header(&good, &mut r) } else { mutate(&good, &mut r) };
        match checkpoint::parse(&b, name, None) {
            Ok((f, _)) => {
                assert!(f.params.iter().all(|x| x.is_finite()));
                ok += 1;
            }
            Err(e) => {
                assert!(format!("{e:#}").contains("fuzz.safetensors"), "{e:#}");
                refused += 1;
            }
        }
    }
    assert!(refused > 1000 && ok > 0, "the mutations exercised both paths: {ok} loaded, {refused} refused");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Rewrites one number inside the header's JSON (config fields, offsets, shapes) to an
/// absurd or negative value, keeping the header length right, so that parsing gets past
/// the safetensors framing to mflow's own checks.
fn mutate_header(good: &[u8], r: &mut rand::rngs::StdRng) -> Vec<u8> {
    common::rewrite_safetensors_header(good, |header| {
        let digits: Vec<usize> = header.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
        let at = digits[r.random_range(0..digits.len())];
        let end = header[at..].find(|c: char| !c.is_ascii_digit()).map_or(header.len(), |k| at + k);
        let value =
            ["0", "4611686018427387904", "1000000000000", "99999999999999999999", "-1", "3"][r.random_range(0..6)];
        format!("{}{value}{}", &header[..at], &header[end..])
    })
}
