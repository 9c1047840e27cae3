//! Model selection on the validation split (issue 17): the best checkpoint is the one with
//! the best logged validation figure, early stopping stops where the logged figures say, a
//! run stopped and resumed selects what one trained straight through selects, and the
//! learning rate follows its schedule's formula.

mod common;
use common::*;
use mflow::checkpoint;
use mflow::data::DataSpec;
use mflow::run::config::{LrKind, LrSchedule, Select};
use mflow::run::{self, RunConfig, Summary};
use std::path::Path;

fn tmp(name: &str) -> std::path::PathBuf {
    fresh_dir("selection", name)
}

/// A small moons run validated every epoch on 300 points.
fn small(epochs: usize, lr: f64) -> RunConfig {
    let mut c = RunConfig::defaults(DataSpec::Moons { noise: 0.1 }, 1, 3);
    c.sizes.train = 256;
    c.sizes.validation = 300;
    c.sizes.test = 50;
    c.flow.hidden = 8;
    c.flow.blocks = 2;
    c.epochs = epochs;
    c.optim.batch = 32;
    c.optim.lr = lr;
    c.samples = 2;
    c.log_every = 4;
    c.checkpoint_every = 1;
    c.selection.validate_every = 1;
    c.selection.validation_samples = 4;
    c
}

/// The validation events of a run's metrics.jsonl: (step, ll).
fn validations(dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "validation")
        .map(|v| (v["step"].as_u64().unwrap(), v["ll"].as_f64().unwrap()))
        .collect()
}

fn summary(dir: &Path) -> Summary {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn the_best_checkpoint_is_the_best_logged_validation() {
    let d = tmp("best");
    let s = run::train(gpu(), &small(12, 1e-2), &d, None, &run::Options::default()).unwrap();
    let v = validations(&d);
    assert_eq!(v.len(), 12, "one validation per epoch");
    let best = v.iter().copied().fold((0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b });
    let (_, state) = checkpoint::load(&d.join("best.safetensors"), None).unwrap();
    assert_eq!(state.unwrap().step, best.0, "best.safetensors is the step of the best figure");
    assert_eq!((s.selected.as_str(), s.selected_step), ("best", best.0));
    assert_eq!(s.validation_ll, Some(best.1));
    assert_eq!(summary(&d).selected_step, best.0);
    assert!(d.join("curves.png").exists());
    // --select last: the last step's model and its own validation.
    let last = tmp("last");
    let mut c = small(12, 1e-2);
    c.selection.select = Select::Last;
    let s = run::train(gpu(), &c, &last, None, &run::Options::default()).unwrap();
    assert_eq!((s.selected.as_str(), s.selected_step), ("last", s.steps));
    assert_eq!(s.validation_ll, Some(v.last().unwrap().1), "the same run's last validation");
}

#[test]
fn early_stopping_stops_where_the_logged_figures_say() {
    let d = tmp("patience");
    let mut c = small(40, 2e-2);
    c.selection.patience = Some(2);
    let s = run::train(gpu(), &c, &d, None, &run::Options::default()).unwrap();
    let v = validations(&d);
    // Replay the rule on the logged figures: stop at the second validation in a row that
    // does not beat the best so far.
    let (mut best, mut since, mut stop) = (f64::NEG_INFINITY, 0, None);
    for &(step, ll) in &v {
        if ll > best {
            (best, since) = (ll, 0);
        } else {
            since += 1;
            if since == 2 {
                stop = Some(step);
                break;
            }
        }
    }
    let stop = stop.expect("lr 2e-2 over 40 validations: the validation figure stalls");
    assert_eq!(v.last().unwrap().0, stop, "no validation after the stop");
    assert_eq!(s.steps, stop, "the run ends at the step patience ran out");
    assert!(stop < 40 * 8, "it stopped early");
    let (_, state) = checkpoint::load(&d.join("model.safetensors"), None).unwrap();
    assert_eq!(state.unwrap().step, stop, "model.safetensors is the step it stopped at");
    let text = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    assert!(text.contains("\"event\":\"early_stop\""), "{text}");
}

#[test]
fn a_run_stopped_and_resumed_selects_what_one_run_straight_through_selects() {
    let (whole, split) = (tmp("whole"), tmp("split"));
    let opts = run::Options::default();
    let a = run::train(gpu(), &small(8, 1e-2), &whole, None, &opts).unwrap();
    run::train(gpu(), &small(4, 1e-2), &split, None, &opts).unwrap();
    let b = run::train(gpu(), &small(8, 1e-2), &split, Some(&split.join("model.safetensors")), &opts).unwrap();
    assert_eq!(validations(&whole), validations(&split));
    assert_eq!((a.selected_step, a.validation_ll), (b.selected_step, b.validation_ll));
    assert_eq!(a.heldout_ll, b.heldout_ll);
    let (fa, _) = checkpoint::load(&whole.join("best.safetensors"), None).unwrap();
    let (fb, _) = checkpoint::load(&split.join("best.safetensors"), None).unwrap();
    assert_eq!(fa.params, fb.params);
}

#[test]
fn the_parameter_average_is_validated_kept_and_resumed_exactly() {
    let mut c8 = small(8, 1e-2);
    c8.optim.ema = Some(0.9);
    let mut c4 = small(4, 1e-2);
    c4.optim.ema = Some(0.9);
    let (whole, split) = (tmp("ema-whole"), tmp("ema-split"));
    let opts = run::Options::default();
    let a = run::train(gpu(), &c8, &whole, None, &opts).unwrap();
    run::train(gpu(), &c4, &split, None, &opts).unwrap();
    let b = run::train(gpu(), &c8, &split, Some(&split.join("model.safetensors")), &opts).unwrap();
    assert_eq!(validations(&whole), validations(&split), "the average is in the checkpoint");
    assert_eq!((a.selected_step, a.heldout_ll), (b.selected_step, b.heldout_ll));
    // The checkpoint keeps the average beside the parameters; best.safetensors holds it.
    let (last, state) = checkpoint::load(&whole.join("model.safetensors"), None).unwrap();
    let avg = state.unwrap().ema.expect("the checkpoint keeps the average");
    assert_ne!(avg, last.params, "the average is not the last parameters");
    let (best, _) = checkpoint::load(&whole.join("best.safetensors"), None).unwrap();
    let (_, best_state) = checkpoint::load(&whole.join("best.safetensors"), None).unwrap();
    assert_eq!(Some(best.params), best_state.unwrap().ema, "the best model is an average");
}

#[test]
fn warm_up_and_cosine_rates_match_their_formula() {
    let lr = 1e-3;
    let constant = LrSchedule::default();
    assert_eq!(constant.lr_at(lr, 1, 100), lr);
    assert_eq!(constant.lr_at(lr, 100, 100), lr);
    let warm = LrSchedule { warmup: 10, ..Default::default() };
    assert!((warm.lr_at(lr, 1, 100) - 1e-4).abs() < 1e-15);
    assert!((warm.lr_at(lr, 5, 100) - 5e-4).abs() < 1e-15);
    assert_eq!(warm.lr_at(lr, 10, 100), lr);
    assert_eq!(warm.lr_at(lr, 11, 100), lr);
    let cos = LrSchedule { kind: LrKind::Cosine, warmup: 10, lr_min: 1e-5 };
    assert!((cos.lr_at(lr, 10, 110) - lr).abs() < 1e-15, "the warm-up ends at the full rate");
    // Half-way through the decay: the mean of the two ends; at the end: lr_min.
    assert!((cos.lr_at(lr, 60, 110) - (lr + 1e-5) / 2.0).abs() < 1e-12);
    assert!((cos.lr_at(lr, 110, 110) - 1e-5).abs() < 1e-15);
    let quarter = 1e-5 + (lr - 1e-5) * 0.5 * (1.0 + (std::f64::consts::PI * 0.25).cos());
    assert!((cos.lr_at(lr, 35, 110) - quarter).abs() < 1e-15);
}

#[test]
fn a_time_limit_stops_training_validates_checkpoints_and_evaluates() {
    let d = tmp("time-limit");
    // 400 epochs would take minutes; a 0.002-minute (0.12 s) limit stops at the first step
    // past it, logged or not.
    let mut c = small(400, 1e-2);
    c.time_limit = Some(0.002);
    // No step is logged, validated or checkpointed on schedule but the first and the last.
    (c.log_every, c.checkpoint_every, c.selection.validate_every) = (100_000, 400, 400);
    let s = run::train(gpu(), &c, &d, None, &run::Options::default()).unwrap();
    let total = 400 * (256 / 32) as u64;
    assert!(s.steps < total, "stopped early: {}", s.steps);
    let log = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let stop: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["event"] == "time_limit")
        .collect();
    assert_eq!(stop.len(), 1, "{log}");
    assert_eq!(stop[0]["step"].as_u64(), Some(s.steps));
    // Validated at the stop (selection has a figure for it), checkpointed there, evaluated.
    assert_eq!(validations(&d).last().map(|v| v.0), Some(s.steps));
    let (_, state) = checkpoint::load(&d.join("model.safetensors"), None).unwrap();
    assert_eq!(state.unwrap().step, s.steps);
    assert!(s.heldout_ll.is_finite());
    // Resuming the folder does not train past where the limit stopped it.
    let again = run::train(gpu(), &c, &d, Some(&d.join("model.safetensors")), &run::Options::default()).unwrap();
    assert_eq!(again.steps, s.steps);
}
