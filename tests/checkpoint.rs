//! Model files: bit-exact round trips, clear errors for other models and corrupt files, and
//! resuming that reproduces an uninterrupted run.

mod common;
use common::*;
use mflow::checkpoint::{self, TrainState};
use mflow::data::DataSpec;
use mflow::model::{Flow, FlowConfig};
use mflow::run::{self, RunConfig};

fn tmp(name: &str) -> std::path::PathBuf {
    common::fresh_dir("ckpt", name)
}

#[test]
fn conv_flows_round_trip_bit_exact_with_their_head_shuffles() {
    use mflow::model::{ChannelPermute, ConvArch};
    let dir = tmp("rt-conv");
    for permute in [ChannelPermute::Reverse, ChannelPermute::Conv1x1] {
        let arch =
            ConvArch { channels: 1, height: 4, width: 4, aux_channels: 1, scales: 2, hidden: 3, depth: 2, permute };
        let cfg = FlowConfig { d: 16, b: 2, blocks: 3, depth: 2, hidden: 5, seed: 9, conv: Some(arch) };
        let mut flow = Flow::new(cfg).unwrap();
        flow.randomize(1, 1.0);
        let path = dir.join("m.safetensors");
        checkpoint::save(&path, &flow, None).unwrap();
        let (back, _) = checkpoint::load(&path, Some(&flow.config)).unwrap();
        let bits = |f: &Flow| f.params.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&flow));
        assert_eq!(back.layers, flow.layers, "head shuffles (over the head's width), 1×1 convolutions' P and signs");
    }
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = tmp("rt");
    let mut flow = Flow::new(FlowConfig { d: 3, b: 2, blocks: 3, depth: 2, hidden: 5, seed: 9, conv: None }).unwrap();
    flow.randomize(1, 1.0);
    let p = flow.params.len();
    let state = TrainState {
        m: uniform(2, p, 1e-3),
        v: uniform(3, p, 1e-6).iter().map(|x| x.abs()).collect(), // second moments are ≥ 0
        ema: Some(uniform(4, p, 1.0)),
        step: 12345,
        extra: [("note".to_string(), "x".to_string())].into(),
    };
    let path = dir.join("m.safetensors");
    checkpoint::save(&path, &flow, Some(&state)).unwrap();
    let (back, st) = checkpoint::load(&path, Some(&flow.config)).unwrap();
    assert_eq!(
        back.params.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        flow.params.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(back.layers, flow.layers, "permutations and layout");
    assert!(back.actnorm_initialized);
    assert_eq!(st.unwrap(), state);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["m.safetensors"], "written atomically through a temporary file, which is gone");
}

#[test]
fn other_models_and_corrupt_files_are_clear_errors() {
    let dir = tmp("bad");
    let flow = Flow::new(FlowConfig { d: 2, b: 1, blocks: 2, depth: 1, hidden: 4, seed: 0, conv: None }).unwrap();
    let path = dir.join("m.safetensors");
    checkpoint::save(&path, &flow, None).unwrap();
    let other = FlowConfig { hidden: 8, ..flow.config.clone() };
    let e = format!("{:#}", checkpoint::load(&path, Some(&other)).unwrap_err());
    assert!(e.contains("m.safetensors") && e.contains("hidden: 4") && e.contains("hidden: 8"), "{e}");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(dir.join("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let e = format!("{:#}", checkpoint::load(&dir.join("cut.safetensors"), None).unwrap_err());
    assert!(e.contains("cut.safetensors"), "{e}");
    std::fs::write(dir.join("junk.safetensors"), b"not a model").unwrap();
    let e = format!("{:#}", checkpoint::load(&dir.join("junk.safetensors"), None).unwrap_err());
    assert!(e.contains("junk.safetensors"), "{e}");
}

fn small_run(epochs: usize) -> RunConfig {
    let mut c = RunConfig::defaults(DataSpec::Moons { noise: 0.1 }, 1, 4);
    c.sizes.train = 256;
    c.sizes.test = 50;
    c.flow.hidden = 8;
    c.flow.blocks = 2;
    c.epochs = epochs;
    c.samples = 2;
    c.log_every = 3;
    c.checkpoint_every = 1;
    c
}

#[test]
fn resume_equals_an_uninterrupted_run() {
    let gpu = gpu();
    let (a, b) = (tmp("whole"), tmp("split"));
    let opts = run::Options::default();
    run::train(gpu, &small_run(4), &a, None, &opts).unwrap();
    run::train(gpu, &small_run(2), &b, None, &opts).unwrap();
    let half = tmp("half").join("half.safetensors");
    std::fs::copy(b.join("model.safetensors"), &half).unwrap();
    // Continuing the folder's own run: its summary goes (it would describe another model).
    run::train(gpu, &small_run(4), &b, Some(&b.join("model.safetensors")), &opts).unwrap();
    let (fa, sa) = checkpoint::load(&a.join("model.safetensors"), None).unwrap();
    let (fb, sb) = checkpoint::load(&b.join("model.safetensors"), None).unwrap();
    assert_eq!(sa.as_ref().unwrap().step, 16);
    assert_eq!(sb.as_ref().unwrap().step, 16);
    assert_eq!(fa.params, fb.params, "parameters after 2 + 2 epochs equal those after 4");
    // Resumed at its last step: nothing to train, evaluated again, and the summary (with no
    // loss logged) reads back.
    let again = run::train(gpu, &small_run(4), &b, Some(&b.join("model.safetensors")), &opts).unwrap();
    assert_eq!(again.steps, 16);
    let text = std::fs::read_to_string(b.join("summary.json")).unwrap();
    let back: run::Summary = serde_json::from_str(&text).unwrap();
    assert!(back.final_train_loss.is_nan() && back.heldout_ll.is_finite(), "{text}");
    assert_eq!(sa.unwrap().m, sb.unwrap().m, "Adam moments too");
    // A checkpoint of another configuration cannot be resumed.
    let mut other = small_run(4);
    other.flow.hidden = 16;
    let e = format!("{:#}", run::train(gpu, &other, &tmp("other"), Some(&half), &opts).unwrap_err());
    assert!(e.contains("half.safetensors"), "{e}");
    // Nor one trained under other optimiser settings, unless the user allows it.
    let mut faster = small_run(4);
    faster.optim.lr *= 2.0;
    let c = tmp("changed");
    let e = format!("{:#}", run::train(gpu, &faster, &c, Some(&half), &opts).unwrap_err());
    assert!(e.contains("lr: 0.001 → 0.002") && e.contains("--allow-config-change"), "{e}");
    assert!(!c.join("model.safetensors").exists(), "a refused resume writes nothing");
    let allow = run::Options { allow_changes: true, ..Default::default() };
    run::train(gpu, &faster, &c, Some(&half), &allow).unwrap();
    let log = std::fs::read_to_string(c.join("metrics.jsonl")).unwrap();
    assert!(log.contains("\"event\":\"resumed\"") && log.contains("lr: 0.001 → 0.002"), "{log}");
}
