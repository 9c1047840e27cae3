//! Conv flows through the one training loop: a digits run stopped and resumed equals one
//! trained straight through (parameters, Adam's moments, the loss, the selected model), and
//! training lowers the held-out bits/dim below a uniform model's.

mod common;
use common::*;
use mflow::checkpoint;
use mflow::data::DataSpec;
use mflow::run::config::ConvFlags;
use mflow::run::{self, Overrides, RunConfig};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = common::scratch().join(format!("mflow-conv-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A small conv flow on the digits with an ε channel and flat ε: a few seconds per epoch.
fn small(epochs: usize) -> RunConfig {
    let mut c = RunConfig::defaults(DataSpec::Digits, 1, 3);
    Overrides {
        epochs: Some(epochs),
        hidden: Some(4),
        batch: Some(100),
        samples: Some(2),
        log_every: Some(5),
        checkpoint_every: Some(1),
        conv: Some(ConvFlags {
            head_blocks: Some(1),
            head_hidden: Some(16),
            aux_channels: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
    .apply(&mut c);
    c
}

#[test]
fn a_conv_run_stopped_and_resumed_equals_one_trained_straight_through() {
    let gpu = gpu();
    let (a, b) = (tmp("whole"), tmp("split"));
    let opts = run::Options::default();
    let whole = run::train(gpu, &small(2), &a, None, &opts).unwrap();
    run::train(gpu, &small(1), &b, None, &opts).unwrap();
    let resumed = run::train(gpu, &small(2), &b, Some(&b.join("model.safetensors")), &opts).unwrap();
    let (fa, sa) = checkpoint::load(&a.join("model.safetensors"), None).unwrap();
    let (fb, sb) = checkpoint::load(&b.join("model.safetensors"), None).unwrap();
    assert!(fa.config.conv.as_ref().is_some_and(|c| (c.channels, c.height, c.width, c.scales) == (1, 8, 8, 2)));
    // 1,350 training images (150 are held out for validation) at batch 100: 13 steps an epoch.
    assert_eq!((whole.steps, resumed.steps), (26, 26));
    assert_eq!(fa.params, fb.params, "parameters after 1 + 1 epochs equal those after 2");
    assert_eq!(sa.unwrap().v, sb.unwrap().v, "Adam's second moments");
    assert_eq!(whole.final_train_loss, resumed.final_train_loss);
    // The held-out images select the model, straight through and resumed alike.
    assert_eq!(whole.selected, "best");
    assert!(whole.validation_ll.is_some_and(f64::is_finite), "validated on the held-out images");
    assert_eq!((whole.selected_step, whole.validation_ll), (resumed.selected_step, resumed.validation_ll));
    // Two epochs already beat a uniform model of the 17 levels (log2 17 ≈ 4.09 bits/dim).
    let bpd = whole.heldout_bits_per_dim.expect("image runs report bits/dim");
    assert!(bpd.is_finite() && bpd < 4.0, "held-out bits/dim {bpd}");
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
