//! What a program embedding mflow (the Python package) builds on: arrays handed over in
//! memory are split and scaled exactly as the same array read from `npy:PATH`, a run on
//! them trains as a run on the file does, and a step hook sees every step and stops a run
//! as SIGINT does, with a checkpoint of the step it stopped at.

mod common;
use common::*;
use mflow::data::images::Mode;
use mflow::data::{array_dataset, tabular, ArraySpec, DataSpec, SplitSizes, Table};
use mflow::interrupt::Interrupted;
use mflow::run::{self, RunConfig, StepHook};
use std::sync::{Arc, Mutex};

/// Synthetic split sizes (unused by arrays and files).
const SIZES: SplitSizes = SplitSizes { train: 0, validation: 0, test: 0, held_out_images: 0 };

fn tmp(name: &str) -> std::path::PathBuf {
    fresh_dir("embedding", name)
}

/// 301 rows of 3 correlated columns in units far from standard.
fn points() -> Table {
    let u = uniform(4, 301 * 3, 1.0);
    let data = u.chunks(3).flat_map(|r| [10.0 + 3.0 * r[0], r[0] + 0.1 * r[1], -5.0 + r[2]]).collect();
    Table::new(3, data)
}

fn array_spec(t: &Table) -> DataSpec {
    DataSpec::Array(ArraySpec {
        rows: t.rows(),
        shape: vec![t.dim],
        fractions: mflow::data::SPLIT_FRACTIONS,
        standardize: true,
        content: mflow::data::fnv1a(&[bytemuck::cast_slice(&t.data)]),
    })
}

#[test]
fn arrays_in_memory_split_and_scale_as_the_same_npy_file() {
    let t = points();
    let dir = tmp("npy");
    let path = dir.join("x.npy");
    std::fs::write(&path, tabular::npy_bytes(&t)).unwrap();
    let file = DataSpec::parse(&format!("npy:{}", path.display())).unwrap();
    let from_file = file.load(SIZES, 7, Mode::Dequant).unwrap();
    let from_memory = array_dataset(&array_spec(&t), t.clone(), 7, Mode::Dequant).unwrap();
    for (a, b) in [
        (&*from_file.train, &*from_memory.train),
        (&from_file.validation, &from_memory.validation),
        (&from_file.test, &from_memory.test),
    ] {
        assert_eq!(a.dim, b.dim);
        assert!(a.rows() > 0);
        // Bit for bit: the file holds f64, the array f32 of the same values.
        assert_eq!(a.data, b.data);
    }
    assert_eq!(from_file.standardize, from_memory.standardize);
    assert_eq!(array_spec(&t).describe(), "array:301x3");
    // The spec cannot be read back: it names no file.
    let e = format!("{:#}", array_spec(&t).load(SIZES, 0, Mode::Dequant).err().unwrap());
    assert!(e.contains("handed over in memory") && e.contains("pass --data"), "{e}");
}

#[test]
fn image_arrays_keep_their_levels_and_shape() {
    let levels: Vec<u8> = (0..40 * 2 * 4 * 4).map(|i| (i * 37 % 256) as u8).collect();
    let spec = DataSpec::Array(ArraySpec {
        rows: 40,
        shape: vec![2, 4, 4],
        fractions: [0.5, 0.25, 0.25],
        standardize: true,
        content: String::new(),
    });
    assert!(spec.is_image());
    let d = array_dataset(&spec, Table::from_levels(32, levels.clone()), 1, Mode::Dequant).unwrap();
    let im = d.image.as_ref().unwrap();
    assert_eq!((im.channels, im.height, im.width, im.pre.levels), (2, 4, 4, 256));
    assert_eq!((d.train.rows(), d.validation.rows(), d.test.rows()), (20, 10, 10));
    assert!(d.standardize.is_none());
    // Every split is whole images of the original levels.
    for t in [&*d.train, &d.validation, &d.test] {
        assert_eq!(t.levels.len(), t.rows() * 32);
        for r in t.levels.chunks(32) {
            assert!(levels.chunks(32).any(|o| o == r));
        }
    }
    // A wrong count of values is refused.
    assert!(array_dataset(&spec, Table::from_levels(32, levels[..32 * 39].to_vec()), 1, Mode::Dequant).is_err());
}

fn small(spec: DataSpec) -> RunConfig {
    let mut c = RunConfig::defaults(spec, 1, 3);
    c.flow.hidden = 8;
    c.flow.blocks = 2;
    c.epochs = 3;
    c.optim.batch = 16;
    c.samples = 2;
    c.log_every = 4;
    c.selection.validate_every = 0;
    c
}

#[test]
fn a_run_on_arrays_trains_as_a_run_on_the_file() {
    let t = points();
    let dir = tmp("same_run");
    let path = dir.join("x.npy");
    std::fs::write(&path, tabular::npy_bytes(&t)).unwrap();
    let opts = run::Options::default();
    let file = small(DataSpec::parse(&format!("npy:{}", path.display())).unwrap());
    let a = run::train(gpu(), &file, &dir.join("file"), None, &opts).unwrap();
    let mem = small(array_spec(&t));
    let data = array_dataset(&mem.data, t, mem.data_seed, mem.preprocess).unwrap();
    let b = run::train_on(gpu(), &mem, Some(data), &dir.join("memory"), None, &opts).unwrap();
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.heldout_ll, b.heldout_ll);
    let pa = run::load_model(&dir.join("file/model.safetensors")).unwrap();
    let pb = run::load_model(&dir.join("memory/model.safetensors")).unwrap();
    assert_eq!(pa.flow.params, pb.flow.params);
    assert_eq!(pa.standardize, pb.standardize);
    assert_eq!(pb.run.unwrap().data.describe(), "array:301x3");
}

#[test]
fn a_step_hook_sees_every_step_and_stops_the_run_with_a_checkpoint() {
    let t = points();
    let cfg = small(array_spec(&t));
    let data = array_dataset(&cfg.data, t, cfg.data_seed, cfg.preprocess).unwrap();
    type Seen = Vec<(u64, u64, Vec<(u64, f64)>)>;
    let seen: Arc<Mutex<Seen>> = Default::default();
    let log = seen.clone();
    let opts = run::Options {
        on_step: Some(StepHook(Arc::new(move |step, total, logged| {
            log.lock().unwrap().push((step, total, logged.to_vec()));
            step < 9
        }))),
        ..Default::default()
    };
    let dir = tmp("hook");
    let e = run::train_on(gpu(), &cfg, Some(data), &dir, None, &opts).unwrap_err();
    let stop = e.downcast_ref::<Interrupted>().expect("a stop, as SIGINT");
    assert_eq!(stop.checkpoints.len(), 1);
    assert_eq!(stop.checkpoints[0].0, 9);
    let seen = seen.lock().unwrap();
    let steps: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(steps, (1..=9).collect::<Vec<_>>(), "every step, once, in order");
    let total = 3 * (240 / 16) as u64;
    assert!(seen.iter().all(|s| s.1 == total));
    // Every logged step's loss arrives once, in order, no later than two steps after it:
    // the first step, then every 4th.
    let logged: Vec<(u64, u64)> = seen.iter().flat_map(|s| s.2.iter().map(move |l| (l.0, s.0))).collect();
    assert_eq!(logged.iter().map(|l| l.0).collect::<Vec<_>>(), vec![1, 4, 8], "{logged:?}");
    assert!(logged.iter().all(|&(at, seen_at)| seen_at >= at && seen_at <= at + 2), "{logged:?}");
    assert!(seen.iter().flat_map(|s| &s.2).all(|l| l.1.is_finite()));
    assert_eq!(mflow::checkpoint::step_of(&dir.join("model.safetensors")).unwrap(), Some(9));
    assert!(!dir.join("summary.json").exists());
}
