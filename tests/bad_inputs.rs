//! Hostile but ordinary uses of the `mflow` binary: bad flags (0, negative, NaN, huge),
//! bad files (IDX, CIFAR, safetensors, crafted metadata, a FIFO), and faults (kill -9 and
//! resume, SIGINT/SIGTERM, two writers, divergence, rerunning into a finished folder).
//! Each case asserts a non-zero exit without a panic, a message naming the flag or file, and
//! that no good file changed.

mod common;
use mflow::checkpoint;
use mflow::model::{Flow, FlowConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mflow");

fn tmp(name: &str) -> PathBuf {
    common::fresh_dir("bad", name)
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env("NODEVICE_SELECT", "1").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Runs mflow to the end, or fails the test after `secs` (a hang is a bug too).
fn run_for(args: &[&str], secs: u64) -> Output {
    let mut child = command(args).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mflow {args:?} hung for {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean refusal: exit status 1 or 2 (never 101, a panic, nor a signal), no panic
/// text, and every one of `names` in the message.
fn refused(args: &[&str], names: &[&str]) -> String {
    let o = run_for(args, 120);
    let e = stderr(&o);
    assert!(matches!(o.status.code(), Some(1) | Some(2)), "mflow {args:?}: status {:?}\n{e}", o.status);
    assert!(!e.contains("panicked") && !e.contains("RUST_BACKTRACE"), "mflow {args:?} panicked:\n{e}");
    for n in names {
        assert!(e.contains(n), "mflow {args:?}: the message does not name {n:?}:\n{e}");
    }
    e
}

/// A tiny moons run's flags (a few seconds on lavapipe).
fn tiny(out: &Path, epochs: usize) -> Vec<String> {
    let o = out.to_str().unwrap().to_string();
    let e = epochs.to_string();
    [
        "train",
        "--data",
        "moons",
        "--aux",
        "1",
        "--epochs",
        &e,
        "--train-size",
        "64",
        "--test-size",
        "40",
        "--batch",
        "32",
        "--hidden",
        "8",
        "--blocks",
        "1",
        "--samples",
        "2",
        "--checkpoint-every",
        "1",
        "--log-every",
        "4",
        "--quiet",
        "--out",
        &o,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A run folder and its files' bytes.
type Snapshot = (PathBuf, Vec<(PathBuf, Vec<u8>)>);

/// One finished run that cases may point at; none may change it.
fn finished() -> &'static Snapshot {
    static RUN: OnceLock<Snapshot> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tmp("finished");
        let o = run_for(&refs(&tiny(&dir, 2)), 300);
        assert!(o.status.success(), "{}", stderr(&o));
        let files = ["model.safetensors", "summary.json", "metrics.jsonl", "samples.png"]
            .iter()
            .map(|f| (dir.join(f), std::fs::read(dir.join(f)).unwrap()))
            .collect();
        (dir, files)
    })
}

fn assert_unchanged(files: &[(PathBuf, Vec<u8>)]) {
    for (p, bytes) in files {
        assert_eq!(&std::fs::read(p).unwrap_or_default(), bytes, "{} changed", p.display());
    }
}

#[test]
fn flags_out_of_range_name_their_flag() {
    let d = tmp("flags");
    let out = d.join("r");
    let out = out.to_str().unwrap();
    for (args, names) in [
        (vec!["train", "--batch", "0"], vec!["--batch"]),
        (vec!["train", "--lr", "0"], vec!["--lr"]),
        (vec!["train", "--lr", "-1"], vec!["--lr"]),
        (vec!["train", "--lr", "nan"], vec!["--lr"]),
        (vec!["train", "--clip", "-1"], vec!["--clip"]),
        (vec!["train", "--epochs", "0"], vec!["--epochs"]),
        (vec!["train", "--data", "gauss", "--psi", "-1"], vec!["--psi"]),
        (vec!["train", "--data", "gauss", "--dim", "0"], vec!["--dim"]),
        (vec!["train", "--noise", "nan"], vec!["--noise"]),
        (vec!["train", "--data", "digits:x"], vec!["digits"]),
        (vec!["train", "--data", "gauss:d=3", "--dim", "5"], vec!["--dim", "gauss:d=3"]),
        (vec!["train", "--data", "moons", "--psi", "2"], vec!["--psi"]),
        (vec!["train", "--aux", "100000"], vec!["--aux"]),
        (vec!["train", "--blocks", "100000"], vec!["--blocks"]),
        (vec!["train", "--depth", "100000"], vec!["--depth"]),
        (vec!["train", "--hidden", "1000000000000"], vec!["--hidden"]),
        (vec!["train", "--train-size", "1000000000000"], vec!["--train-size"]),
        (vec!["train", "--samples", "1000000000"], vec!["--samples"]),
        (vec!["train", "--samples", "0"], vec!["--samples"]),
        (vec!["train", "--epochs", "99999999999"], vec!["--epochs"]),
        (vec!["train", "--data", "mnist"], vec!["mnist:DIR"]),
        (vec!["train", "--arch", "conv"], vec!["--arch conv", "moons"]),
        (vec!["train", "--time-limit", "0"], vec!["--time-limit"]),
        (vec!["train", "--time-limit", "nan"], vec!["--time-limit"]),
        (vec!["train", "--data", "gauss", "--arch", "conv"], vec!["--arch conv", "not image data"]),
        (vec!["train", "--data", "digits", "--scales", "2"], vec!["--scales", "--arch conv"]),
        (vec!["train", "--data", "digits", "--aux-channels", "1"], vec!["--aux-channels", "--arch conv"]),
        (vec!["train", "--data", "digits", "--arch", "conv", "--blocks", "2"], vec!["--blocks", "--head-blocks"]),
        (vec!["train", "--data", "digits", "--arch", "conv", "--scales", "5"], vec!["--scales 5", "1×1"]),
        (vec!["train", "--data", "digits", "--arch", "conv", "--scales", "99"], vec!["--scales 99"]),
        (vec!["train", "--data", "digits", "--arch", "conv", "--hidden", "100000"], vec!["--hidden"]),
        (vec!["train", "--data", "digits", "--arch", "conv", "--head-hidden", "1000000"], vec!["--head-hidden"]),
        (vec!["train", "--data", "mnist:/nonexistent-mflow"], vec!["/nonexistent-mflow"]),
        (vec!["train", "--data", "digits", "--validation-size", "1499"], vec!["--validation-size 1499", "1500"]),
        (vec!["train", "--validation-points", "0"], vec!["--validation-points"]),
        (vec!["train", "--preprocess", "none"], vec!["--preprocess none", "moons"]),
        (vec!["sweep", "gauss", "--shard", "a/b", "--list", "--out", out], vec!["--shard", "i/n"]),
        (vec!["sweep", "gauss", "--seeds", "100000000", "--list", "--out", out], vec!["--seeds"]),
        (vec!["sweep", "gauss", "--batch", "0", "--out", out], vec!["--batch"]),
        (vec!["sample", "--model", "m.safetensors", "--n", "0"], vec!["--n"]),
        (vec!["sample", "--model", "m.safetensors", "--temperature", "nan"], vec!["--temperature"]),
        (vec!["eval", "--model", "m.safetensors", "--samples", "0"], vec!["--samples"]),
        (vec!["demo", "--batch", "0"], vec!["--batch"]),
        (vec!["bench", "sweep", "--models", "0"], vec!["--models"]),
    ] {
        let mut a = args.clone();
        if a[0] == "train" {
            a.extend(["--out", out]);
        }
        refused(&a, &names);
        assert!(!d.join("r").join("model.safetensors").exists(), "{a:?} wrote a model");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sizes_beyond_the_adapter_say_which_flag_to_lower() {
    let d = tmp("sizes");
    let out = d.join("r");
    let out = out.to_str().unwrap();
    // 545M parameters on 8x8 digits: refused before anything is allocated or written.
    let e = refused(&["train", "--data", "digits", "--hidden", "8192", "--out", out], &["--hidden"]);
    assert!(e.contains("parameters"), "{e}");
    assert!(!Path::new(out).join("model.safetensors").exists());
    // 4 GB of activations: more than any adapter binds (mflow asks for at most 1 GiB).
    let big = ["train", "--hidden", "1024", "--batch", "1000000", "--train-size", "1000000", "--out", out];
    let e = refused(&big, &["It fits with", "--batch"]);
    assert!(e.contains("largest buffer"), "{e}");
    assert!(!Path::new(out).exists(), "a refused run leaves no folder behind");
    let (run, files) = finished();
    let model = run.join("model.safetensors");
    let m = model.to_str().unwrap();
    refused(&["eval", "--model", m, "--samples", "10000000"], &["--samples"]);
    refused(&["sample", "--model", m, "--n", "1000000000", "--out", d.join("s.png").to_str().unwrap()], &["--n"]);
    assert_unchanged(files);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_files_are_named() {
    let d = tmp("files");
    let out = d.join("r");
    let out = out.to_str().unwrap();
    // A FIFO named like an IDX file must not hang the reader.
    let fifo = d.join("mnist");
    std::fs::create_dir_all(&fifo).unwrap();
    let ok = Command::new("mkfifo").arg(fifo.join("train-images-idx3-ubyte")).status().unwrap();
    assert!(ok.success());
    refused(
        &["train", "--data", &format!("mnist:{}", fifo.display()), "--out", out],
        &["train-images-idx3-ubyte", "not a regular file"],
    );
    // Truncated IDX.
    let cut = d.join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    let idx = mflow::data::idx::encode(&[3, 2, 2], &[1; 12]);
    std::fs::write(cut.join("train-images-idx3-ubyte"), &idx[..idx.len() - 3]).unwrap();
    std::fs::write(cut.join("t10k-images-idx3-ubyte"), &idx).unwrap();
    refused(
        &["train", "--data", &format!("mnist:{}", cut.display()), "--out", out],
        &["train-images-idx3-ubyte", "truncated"],
    );
    // Labels that do not match the images.
    let lab = d.join("labels");
    std::fs::create_dir_all(&lab).unwrap();
    std::fs::write(lab.join("train-images-idx3-ubyte"), &idx).unwrap();
    std::fs::write(lab.join("t10k-images-idx3-ubyte"), &idx).unwrap();
    std::fs::write(lab.join("train-labels-idx1-ubyte"), mflow::data::idx::encode(&[2], &[1, 2])).unwrap();
    std::fs::write(lab.join("t10k-labels-idx1-ubyte"), mflow::data::idx::encode(&[3], &[1, 2, 3])).unwrap();
    refused(
        &["train", "--data", &format!("mnist:{}", lab.display()), "--out", out],
        &["train-labels-idx1-ubyte", "2 labels", "3 images"],
    );
    // A CIFAR batch of the wrong length.
    let cifar = d.join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    std::fs::write(cifar.join("data_batch_1.bin"), vec![1u8; 5000]).unwrap();
    refused(&["train", "--data", &format!("cifar10:{}", cifar.display()), "--out", out], &["data_batch_1.bin"]);
    // Checkpoints: junk, truncated, crafted metadata.
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"not a model at all").unwrap();
    refused(&["eval", "--model", junk.to_str().unwrap()], &["junk.safetensors"]);
    let (run, files) = finished();
    let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    let cut_model = d.join("cut.safetensors");
    std::fs::write(&cut_model, &bytes[..bytes.len() / 2]).unwrap();
    refused(&["eval", "--model", cut_model.to_str().unwrap()], &["cut.safetensors"]);
    for (field, value) in [("d", "4611686018427387904"), ("hidden", "1000000000000"), ("blocks", "1000000000")] {
        let crafted = d.join(format!("crafted-{field}.safetensors"));
        std::fs::write(&crafted, craft(&bytes, field, value)).unwrap();
        refused(&["eval", "--model", crafted.to_str().unwrap()], &[&format!("crafted-{field}.safetensors")]);
        refused(&["train", "--resume", crafted.to_str().unwrap(), "--out", out], &[&format!("crafted-{field}")]);
    }
    assert!(!Path::new(out).join("model.safetensors").exists());
    assert_unchanged(files);
    let _ = std::fs::remove_dir_all(&d);
}

/// The checkpoint's bytes with its config's `field` set to `value`.
fn craft(bytes: &[u8], field: &str, value: &str) -> Vec<u8> {
    common::rewrite_safetensors_header(bytes, |header| {
        let mut v: serde_json::Value = serde_json::from_str(header).unwrap();
        let meta = v["__metadata__"].as_object_mut().unwrap();
        let mut config: serde_json::Value = serde_json::from_str(meta["config"].as_str().unwrap()).unwrap();
        config[field] = serde_json::Value::Number(value.parse::<u64>().unwrap().into());
        meta.insert("config".into(), serde_json::Value::String(config.to_string()));
        v.to_string()
    })
}

#[test]
fn outputs_never_replace_inputs_or_mislabel() {
    let (run, files) = finished();
    let model = run.join("model.safetensors");
    let m = model.to_str().unwrap();
    refused(&["sample", "--model", m, "--out", m], &["--out", ".png, .npy, .csv"]);
    refused(&["sample", "--model", m, "--out", run.join("summary.json").to_str().unwrap()], &["--out"]);
    let d = tmp("outputs");
    let notes = d.join("notes.png");
    std::fs::write(&notes, b"my notes, not a picture").unwrap();
    refused(&["sample", "--model", m, "--out", notes.to_str().unwrap()], &["notes.png", "not a .png file mflow wrote"]);
    assert_eq!(std::fs::read(&notes).unwrap(), b"my notes, not a picture");
    // Rerunning into the finished folder is refused and changes nothing.
    let e = refused(&refs(&tiny(run, 2)), &["--out", "finished run", "--force", "--resume"]);
    assert!(e.contains(&run.display().to_string()), "{e}");
    // A non-finite evaluation is an error, not a printed figure: ActNorm a = 100 overflows.
    let (mut flow, state) = checkpoint::load(&model, None).unwrap();
    let a = flow.tensor("an0.a").unwrap().clone();
    flow.params[a.offset..a.offset + a.len()].fill(100.0);
    let bad = d.join("overflow.safetensors");
    checkpoint::save(&bad, &flow, state.as_ref()).unwrap();
    let o = run_for(&["eval", "--model", bad.to_str().unwrap(), "--samples", "2"], 120);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not finite"), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("log-likelihood"), "no figure is printed");
    assert_unchanged(files);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn divergence_stops_and_keeps_only_good_checkpoints() {
    let d = tmp("diverge");
    let mut args = tiny(&d.join("lr10"), 50);
    args.extend(["--lr".into(), "10".into()]);
    let e = refused(&refs(&args), &["diverged", "--lr"]);
    let model = d.join("lr10/model.safetensors");
    if model.exists() {
        // Only a checkpoint taken before the loss went bad may be kept, and it must load.
        let (flow, _) = checkpoint::load(&model, None).unwrap();
        assert!(flow.params.iter().all(|p| p.is_finite()));
        assert!(e.contains("last good checkpoint"), "{e}");
    }
    assert!(!d.join("lr10/summary.json").exists());
    // lr 1 keeps the loss finite but sends it to ~1e20: caught as an explosion.
    let mut args = tiny(&d.join("lr1"), 50);
    let at = args.iter().position(|a| a == "--blocks").unwrap();
    args[at + 1] = "4".into();
    args.extend(["--lr".into(), "1".into()]);
    let e = refused(&refs(&args), &["diverged", "--lr"]);
    assert!(e.contains("far above") || e.contains("not finite"), "{e}");
    assert!(!d.join("lr1/summary.json").exists());
    let _ = std::fs::remove_dir_all(&d);
}

fn wait_for(path: &Path, child: &mut Child, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !path.exists() {
        assert!(child.try_wait().unwrap().is_none(), "mflow ended before {} appeared", path.display());
        assert!(Instant::now() < deadline, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, sig: &str) {
    assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
}

#[test]
fn interrupts_checkpoint_and_say_how_to_resume() {
    for (sig, code) in [("-INT", 130), ("-TERM", 143)] {
        let d = tmp(&format!("signal{code}"));
        let args = tiny(&d, 100_000);
        let mut child = command(&refs(&args)).spawn().unwrap();
        wait_for(&d.join("model.safetensors"), &mut child, 120);
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{sig}: {e}");
        assert!(e.contains("interrupted") && e.contains("--resume") && !e.contains("panicked"), "{e}");
        let (_, state) = checkpoint::load(&d.join("model.safetensors"), None).unwrap();
        assert!(state.unwrap().step > 0);
        assert!(!d.join("summary.json").exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn one_writer_per_folder() {
    let d = tmp("writers");
    let args = tiny(&d, 100_000);
    let mut first = command(&refs(&args)).spawn().unwrap();
    wait_for(&d.join("model.safetensors"), &mut first, 120);
    let mut second = args.clone();
    second.push("--force".into());
    let e = refused(&refs(&second), &["in use by another mflow process", &format!("pid {}", first.id())]);
    assert!(e.contains(&d.display().to_string()), "{e}");
    signal(&first, "-KILL");
    first.wait().unwrap();
    // The metrics were written by one process only: every line parses.
    let log = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    assert!(log.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{log}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn kill_9_then_resume_equals_an_uninterrupted_run() {
    let d = tmp("kill9");
    let (whole, cut) = (d.join("whole"), d.join("cut"));
    let o = run_for(&refs(&tiny(&whole, 60)), 300);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut child = command(&refs(&tiny(&cut, 60))).spawn().unwrap();
    wait_for(&cut.join("model.safetensors"), &mut child, 120);
    signal(&child, "-KILL");
    child.wait().unwrap();
    let mut resume = tiny(&cut, 60);
    resume.extend(["--resume".into(), cut.join("model.safetensors").to_str().unwrap().into()]);
    let o = run_for(&refs(&resume), 300);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, _) = checkpoint::load(&whole.join("model.safetensors"), None).unwrap();
    let (b, _) = checkpoint::load(&cut.join("model.safetensors"), None).unwrap();
    assert_eq!(a.params, b.params, "killed and resumed ends where the uninterrupted run ends");
    // No step is logged twice.
    let steps: Vec<u64> = std::fs::read_to_string(cut.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn flows_of_impossible_shape_are_refused_in_the_library_too() {
    let e =
        Flow::new(FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 1 << 40, seed: 0, conv: None }).unwrap_err();
    assert!(format!("{e:#}").contains("--hidden"));
}

// ---- Issue 16: the cases the features since issue 9 brought (own arrays, per-point output,
// raw samples, the numpy module). Each test failed on main before that issue's fixes.

/// A 2-D array of `n` moons-like points, as your own data.
fn own_array(n: usize, seed: u64) -> mflow::data::Table {
    let u = common::uniform(seed, 2 * n, 1.0);
    let data = u.chunks(2).flat_map(|r| [3.0 + 2.0 * r[0], -1.0 + 0.5 * (r[0] + r[1])]).collect();
    mflow::data::Table::new(2, data)
}

fn write_npy(path: &Path, t: &mflow::data::Table) {
    std::fs::write(path, mflow::data::tabular::npy_bytes(t)).unwrap();
}

/// A tiny run's flags on `--data SPEC`.
fn tiny_on(spec: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--data",
        spec,
        "--aux",
        "0",
        "--batch",
        "32",
        "--hidden",
        "8",
        "--blocks",
        "1",
        "--samples",
        "2",
        "--quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(out.to_str().unwrap().into());
    if !extra.contains(&"--epochs") {
        v.extend(["--epochs".into(), "2".into()]);
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn ran(args: &[String]) -> Output {
    let o = run_for(&refs(args), 300);
    assert!(o.status.success(), "mflow {args:?}: {}", stderr(&o));
    o
}

#[test]
fn outputs_never_replace_an_input_whatever_its_kind() {
    let d = tmp("inputs");
    let data = d.join("D.npy");
    write_npy(&data, &own_array(200, 1));
    let before = std::fs::read(&data).unwrap();
    let spec = format!("npy:{}", data.display());
    ran(&tiny_on(&spec, &d.join("run"), &[]));
    let model = d.join("run/model.safetensors");
    let (m, x) = (model.to_str().unwrap(), data.to_str().unwrap());
    // The data given, the data the model was trained on (read when --data is left out), and
    // another spelling of either: all inputs, whatever their format.
    refused(&["eval", "--model", m, "--data", &spec, "--per-point", x], &["--per-point", "D.npy", "reads"]);
    refused(&["eval", "--model", m, "--per-point", x], &["--per-point", "trained on", "reads"]);
    let other_spelling = d.join(".").join("D.npy");
    refused(&["sample", "--model", m, "--out", other_spelling.to_str().unwrap()], &["--out", "reads"]);
    let link = d.join("model-link.npy");
    std::fs::hard_link(&model, &link).unwrap();
    refused(&["sample", "--model", m, "--out", link.to_str().unwrap()], &["--out", "--model", "reads"]);
    assert_eq!(std::fs::read(&data).unwrap(), before, "the data was replaced");
    // Two outputs of one command are never one file, existing or not.
    let pic = d.join("X.png");
    refused(
        &["sample", "--model", m, "--out", pic.to_str().unwrap(), "--density", d.join("./X.png").to_str().unwrap()],
        &["--out", "--density", "one file"],
    );
    assert!(!pic.exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// The largest value an error advertises ("at most N ...").
fn advertised(e: &str) -> usize {
    let at = e.find("at most ").unwrap_or_else(|| panic!("no bound in {e}")) + "at most ".len();
    e[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn every_advertised_bound_holds_at_its_own_value() {
    let (run, files) = finished();
    let model = run.join("model.safetensors");
    let m = model.to_str().unwrap();
    let d = tmp("bounds");
    // sample --n: refused past the bound, which then works when asked for exactly.
    let out = d.join("s.npy");
    let e = refused(&["sample", "--model", m, "--n", "1000000000", "--out", out.to_str().unwrap()], &["--n"]);
    let most = advertised(&e);
    assert!(most < 1_000_000_000);
    let o = run_for(&["sample", "--model", m, "--n", &most.to_string(), "--out", out.to_str().unwrap()], 600);
    assert!(o.status.success(), "--n {most}: {}", stderr(&o));
    assert_eq!(std::fs::metadata(&out).unwrap().len() as usize, 128 + 8 * 2 * most);
    std::fs::remove_file(&out).unwrap();
    refused(&["sample", "--model", m, "--n", &(most + 1).to_string(), "--out", out.to_str().unwrap()], &["--n"]);
    // demo --batch: its bound named, never a panic.
    refused(&["demo", "--batch", "100000000"], &["--batch", "65536"]);
    // A checkpoint's recorded run is input too: absurd sizes are refused before allocating.
    let bytes = std::fs::read(&model).unwrap();
    let huge = common::rewrite_safetensors_header(&bytes, |h| {
        let mut v: serde_json::Value = serde_json::from_str(h).unwrap();
        let meta = v["__metadata__"].as_object_mut().unwrap();
        let mut run: serde_json::Value = serde_json::from_str(meta["run"].as_str().unwrap()).unwrap();
        run["sizes"]["test"] = 10_000_000_000u64.into();
        meta.insert("run".into(), run.to_string().into());
        v.to_string()
    });
    let crafted = d.join("huge.safetensors");
    std::fs::write(&crafted, huge).unwrap();
    refused(
        &["eval", "--model", crafted.to_str().unwrap(), "--samples", "2"],
        &["huge.safetensors", "run configuration"],
    );
    // actnorm_initialized is true or false, nothing else.
    let maybe = common::rewrite_safetensors_header(&bytes, |h| {
        h.replace("\"actnorm_initialized\":\"true\"", "\"actnorm_initialized\":\"maybe\"")
    });
    assert_ne!(maybe, bytes);
    std::fs::write(&crafted, maybe).unwrap();
    refused(
        &["eval", "--model", crafted.to_str().unwrap(), "--samples", "2"],
        &["huge.safetensors", "actnorm_initialized", "maybe"],
    );
    assert_unchanged(files);
    let _ = std::fs::remove_dir_all(&d);
}

/// The mean log-likelihood `mflow eval --json` prints.
fn eval_ll(args: &[&str]) -> f64 {
    let o = run_for(args, 300);
    assert!(o.status.success(), "mflow {args:?}: {}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    v["ll"].as_f64().unwrap()
}

#[test]
fn a_standardised_model_never_sees_unstandardised_data() {
    let d = tmp("standardised");
    // Moons' own test points, written as your array: the same points both ways.
    let sizes = mflow::data::SplitSizes { train: 2048, validation: 2048, test: 10_000, held_out_images: 0 };
    let moons =
        mflow::data::DataSpec::parse("moons").unwrap().load(sizes, 0, mflow::data::images::Mode::Dequant).unwrap();
    let train = d.join("train.npy");
    write_npy(&train, &moons.train);
    let test = d.join("moons_test.npy");
    write_npy(&test, &moons.test);
    let spec = format!("npy:{}", train.display());
    ran(&tiny_on(&spec, &d.join("run"), &["--epochs", "3"]));
    let m = d.join("run/model.safetensors");
    let m = m.to_str().unwrap();
    let a = eval_ll(&["eval", "--model", m, "--data", "moons", "--limit", "400", "--json"]);
    let b = eval_ll(&["eval", "--model", m, "--data", &format!("npy:{}", test.display()), "--limit", "400", "--json"]);
    assert!((a - b).abs() < 1e-3, "moons {a} vs the same points as npy {b}");
    // Resuming under another standardisation, other fractions, or changed data is a
    // different run: refused, naming what changed.
    let resume = |extra: &[&str]| {
        let mut v = tiny_on(&spec, &d.join("again"), &["--epochs", "4", "--resume", m, "--force"]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    refused(&refs(&resume(&["--no-standardize"])), &["standardised", "--allow-config-change"]);
    refused(&refs(&resume(&["--split-fractions", "0.7,0.1,0.2"])), &["split fractions"]);
    let mut changed = (*moons.train).clone();
    changed.data[0] += 1.0;
    write_npy(&train, &changed);
    refused(&refs(&resume(&[])), &["data content"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_summary_never_names_a_file_that_is_not_there() {
    let d = tmp("summary-names");
    let first = d.join("first");
    ran(&tiny(&first, 2));
    // Resumed at its last step into another folder: that folder gets the model too.
    let second = d.join("second");
    let mut args = tiny(&second, 2);
    args.extend(["--resume".into(), first.join("model.safetensors").to_str().unwrap().into()]);
    ran(&args);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(second.join("summary.json")).unwrap()).unwrap();
    let named = PathBuf::from(summary["model"].as_str().unwrap());
    assert!(named.starts_with(&second) && named.exists(), "summary names {}", named.display());
    let (a, _) = checkpoint::load(&named, None).unwrap();
    let (b, _) = checkpoint::load(&first.join("model.safetensors"), None).unwrap();
    assert_eq!(a.params, b.params);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn your_own_files_read_as_a_person_writes_them() {
    use mflow::data::tabular::{parse_csv, parse_npy, split_by_fractions};
    let err = |r: anyhow::Result<mflow::data::Table>| format!("{:#}", r.unwrap_err());
    // A byte-order mark is not a header: no row is lost.
    assert_eq!(parse_csv(b"\xef\xbb\xbf1,2\n3,4\n", "f.csv", None).unwrap().rows(), 2);
    assert_eq!(parse_csv(b"\xef\xbb\xbfx1,x2\n1,2\n3,4\n", "f.csv", None).unwrap().rows(), 2);
    // Lone carriage returns end lines, and errors count lines as the file has them.
    assert_eq!(parse_csv(b"1,2\r3,4\r5,6", "f.csv", None).unwrap().rows(), 3);
    assert!(err(parse_csv(b"1,2\r3\r", "f.csv", None)).contains("line 2"));
    assert!(err(parse_csv(b"1,2\r\n3,4\r\n5\r\n", "f.csv", None)).contains("line 3"));
    // Empty and header-only files say so.
    assert!(err(parse_csv(b"x1,x2\n", "f.csv", None)).contains("only a header row"));
    assert!(err(parse_csv(b"", "f.csv", None)).contains("empty"));
    // A float64 beyond float32's range is named as such, not as "inf".
    let big = mflow::data::tabular::npy_columns(&[vec![1.0, 2.0], vec![1e300, 3.0]]);
    assert!(err(parse_npy(&big, "b.npy")).contains("float32"));
    assert!(err(parse_csv(b"1,2\n1e300,3\n", "f.csv", None)).contains("float32"));
    // A truncated version-2 file is called truncated.
    assert!(err(parse_npy(b"\x93NUMPY\x02\x00\x10", "t.npy")).contains("truncated"));
    // Three rows at 0.34/0.33/0.33: the one-row training split is the problem, said so.
    let three = mflow::data::Table::new(2, vec![1.0, 2.0, 3.0, 5.0, 4.0, 7.0]);
    let e = format!("{:#}", split_by_fractions(&three, [0.34, 0.33, 0.33], 0, "t.npy").unwrap_err());
    assert!(e.contains("training split") && !e.contains("constant"), "{e}");
    // Your own arrays take MODEL.md's tabular width, not the images'.
    let spec = mflow::data::DataSpec::parse("npy:x.npy").unwrap();
    assert_eq!(mflow::run::RunConfig::defaults(spec, 2, 0).flow.hidden, 128);
    // Flags that do not apply to your own arrays are refused, and so is a constant column.
    let d = tmp("own-files");
    let x = d.join("x.npy");
    write_npy(&x, &own_array(100, 2));
    let spec = format!("npy:{}", x.display());
    refused(&refs(&tiny_on(&spec, &d.join("a"), &["--train-size", "50"])), &["--train-size", "--split-fractions"]);
    let mut constant = own_array(100, 3);
    for r in 0..100 {
        constant.data[2 * r + 1] = 7.0;
    }
    write_npy(&x, &constant);
    refused(&refs(&tiny_on(&spec, &d.join("b"), &["--no-standardize"])), &["x.npy", "constant"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn messages_name_the_path_and_where_it_came_from() {
    let (run, files) = finished();
    let d = tmp("messages");
    // report: a missing folder is an error, and so is --out onto a file.
    let missing = d.join("no-such-sweep");
    refused(&["report", run.parent().unwrap().to_str().unwrap(), missing.to_str().unwrap()], &["no-such-sweep"]);
    let file = d.join("file.txt");
    std::fs::write(&file, b"mine").unwrap();
    refused(&["report", d.to_str().unwrap(), "--out", file.to_str().unwrap()], &["--out", "file.txt"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    // sample's own flag is named.
    let m = run.join("model.safetensors");
    let pic = d.join("p.png");
    let dens = d.join("q.png");
    refused(
        &[
            "sample",
            "--model",
            m.to_str().unwrap(),
            "--out",
            pic.to_str().unwrap(),
            "--density",
            dens.to_str().unwrap(),
            "--density-samples",
            "1000000000",
        ],
        &["--density-samples"],
    );
    // Data recorded in a checkpoint is said to be that, not something the user typed.
    let x = d.join("gone.npy");
    write_npy(&x, &own_array(100, 4));
    ran(&tiny_on(&format!("npy:{}", x.display()), &d.join("r"), &[]));
    std::fs::remove_file(&x).unwrap();
    refused(&["eval", "--model", d.join("r/model.safetensors").to_str().unwrap()], &["gone.npy", "recorded"]);
    assert_unchanged(files);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_signal_during_a_slow_final_evaluation_stops_between_chunks() {
    let d = tmp("eval-signal");
    // H = 1024: one evaluation chunk of the old size (65536 rows) took tens of seconds here.
    let out = d.join("run");
    let mut args = tiny(&out, 1);
    let at = args.iter().position(|a| a == "--hidden").unwrap();
    args[at + 1] = "1024".into();
    let at = args.iter().position(|a| a == "--samples").unwrap();
    args[at + 1] = "16".into();
    let at = args.iter().position(|a| a == "--test-size").unwrap();
    args[at + 1] = "10000".into();
    let mut child = command(&refs(&args)).spawn().unwrap();
    // The last step's checkpoint is written just before the final evaluation starts.
    wait_for(&out.join("model.safetensors"), &mut child, 300);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the evaluation ended before the signal");
    signal(&child, "-TERM");
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(sent.elapsed() < Duration::from_secs(20), "still evaluating 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = sent.elapsed();
    let o = child.wait_with_output().unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(143), "{e}");
    assert!(e.contains("during evaluation") && e.contains("--resume"), "{e}");
    assert!(took < Duration::from_secs(8), "SIGTERM answered after {took:?}");
    // The trained model is kept, and no summary claims a finished run.
    assert!(checkpoint::load(&out.join("model.safetensors"), None).is_ok());
    assert!(!out.join("summary.json").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_full_disk_names_the_file_it_could_not_write() {
    // An 8 KiB file system, already full: the first write of a fresh run fails.
    let d = tmp("full-disk");
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=8k", "tmpfs"]).arg(&d).status();
    if !mounted.is_ok_and(|s| s.success()) {
        // Only root mounts; CI runs as root, where this must work.
        assert_ne!(uid(), 0, "as root, mounting a tmpfs for this test must work");
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let _ = std::fs::write(d.join("filler"), vec![0u8; 8192]);
    let out = d.join("run");
    let o = run_for(&refs(&tiny(&out, 2)), 300);
    let e = stderr(&o);
    let _ = Command::new("umount").arg(&d).status();
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(e.contains(&out.display().to_string()) && e.contains("No space left"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The user id this test runs as (Linux: /proc/self/status).
fn uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(u32::MAX)
}

#[test]
fn a_batch_whose_fused_activations_exceed_a_binding_trains_on_gemms() {
    use mflow::gpu_flow::{GpuFlow, Kernels, Mode};
    // A device of its own: a validation error must not reach the other tests' shared one.
    let gpu = mflow::gpu::Gpu::new(&mflow::gpu::AdapterChoice::default()).unwrap();
    let binding = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size) as usize;
    let flow = Flow::new(FlowConfig { d: 2, b: 2, blocks: 1, depth: 2, hidden: 128, seed: 0, conv: None }).unwrap();
    // One coupling's saved rows (Q, two hidden layers, the output, each padded to 4) exceed
    // one binding, while the GEMM path's widest buffer (H columns) fits.
    let n = binding / ((4 + 128 + 128 + 4) * 4) + 1;
    assert!(n * 128 * 4 <= binding);
    let g = GpuFlow::build(&gpu, &flow, n, Mode::Training, Kernels::defaults(&gpu).gemm);
    gpu.check().expect("the tuned fused path must not exceed a binding (train --batch at its bound)");
    assert!(g.forward_dispatches(false).iter().all(|d| d.kernel != "fused_coupling_forward"));
}
