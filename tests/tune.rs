//! The tuner: a cache miss measures and stores a choice, a hit is used as stored, a shape
//! the fused kernel cannot hold needs no choice, `Tuning::Defaults` takes the built-in
//! choices, an entry naming an unknown kernel is replaced, and a cache path that is not a
//! regular file is refused; for evaluation, training and the GEMM family alike. At the
//! command line: first use says so on stderr, a signal during tuning exits at once, and
//! `bench tune --no-tune` is refused.
//! (Its own test binary: it points XDG_CACHE_HOME at temporary folders.)

mod common;
use common::*;
use mflow::gpu_flow::{inference_class, training_class, Kernels, Mode};
use mflow::kernels::gemm::{CLASSES, VARIANTS};
use mflow::model::FlowConfig;
use mflow::tune::{self, Need, Tuning};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn read_cache(path: &std::path::Path) -> tune::Cache {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_cache(path: &std::path::Path, cache: &tune::Cache) {
    std::fs::write(path, serde_json::to_string(cache).unwrap()).unwrap();
}

#[test]
fn choices_are_measured_cached_reused_and_replaced_when_unknown() {
    let dir = fresh_dir("tune", "cache");
    // SAFETY: the only test in this binary that touches the environment, and it does so
    // before starting any thread of its own.
    unsafe { std::env::set_var("XDG_CACHE_HOME", &dir) };
    let gpu = gpu();
    let key = tune::adapter_key(gpu);
    let cfg = FlowConfig { d: 2, b: 1, blocks: 2, depth: 2, hidden: 16, seed: 0, conv: None };
    let wide = FlowConfig { hidden: 300, ..cfg.clone() };
    let needs = [
        Need::Inference(cfg.clone()),
        Need::Training { config: cfg.clone(), batch: 32 },
        Need::Inference(wide.clone()),
        Need::Training { config: wide.clone(), batch: 32 },
    ];
    // The defaults measure nothing and write nothing.
    assert_eq!(tune::kernels(gpu, Tuning::Defaults, &needs).unwrap(), Kernels::defaults(gpu));
    let path = tune::cache_path().unwrap();
    assert!(path.starts_with(&dir) && !path.exists());

    let k = tune::kernels(gpu, Tuning::Measure, &needs).unwrap();
    let mut cache = read_cache(&path);
    // Evaluation and training: measured, and the measured choice is the one used.
    let e = &cache.adapters[&key][&inference_class(&cfg)];
    assert!(e.fused_s > 0.0 && e.unfused_s > 0.0);
    assert_eq!(k.inference_mode(&cfg) == Mode::Inference, e.fused);
    let t = &cache.training[&key][&training_class(&cfg, 32)];
    assert!(t.fused_s > 0.0 && t.unfused_s > 0.0);
    assert_eq!(k.training_mode(&cfg, 32) == Mode::Training, t.fused);
    // Too wide for the fused kernel: GEMMs, and nothing measured.
    assert_eq!(k.inference_mode(&wide), Mode::InferenceUnfused);
    assert_eq!(k.training_mode(&wide, 32), Mode::TrainingUnfused);
    assert!(!cache.adapters[&key].contains_key(&inference_class(&wide)));
    assert!(!cache.training[&key].contains_key(&training_class(&wide, 32)));
    // The GEMM families: every class measured over every candidate (each checked against the
    // reference first), the cheapest kept, and the fused rows' layout with them.
    let g = &cache.gemm[&key];
    assert_eq!(g.gflops.len(), CLASSES.len());
    let raced = tune::candidates(gpu).len();
    assert!(g.gflops.values().all(|r| r.len() == raced && r.values().all(|x| *x > 0.0)));
    assert!(g.fused_rows_s["rows4"] > 0.0 && g.fused_rows_s["rows8"] > 0.0);
    assert_eq!(k.gemm.fused_rows8, g.fused_rows8);
    for (class, _) in CLASSES {
        assert_eq!(format!("{:?}", k.gemm.get(class)), g.choice[&class.to_string()], "{class}");
    }

    // Stored choices are used as stored, without measuring again.
    let flipped_eval = !cache.adapters[&key][&inference_class(&cfg)].fused;
    cache.adapters.get_mut(&key).unwrap().get_mut(&inference_class(&cfg)).unwrap().fused = flipped_eval;
    let flipped_train = !cache.training[&key][&training_class(&cfg, 32)].fused;
    cache.training.get_mut(&key).unwrap().get_mut(&training_class(&cfg, 32)).unwrap().fused = flipped_train;
    let first = CLASSES[0].0;
    let other = if cache.gemm[&key].choice[&first.to_string()] == "Reg" { "Vec4Small" } else { "Reg" };
    cache.gemm.get_mut(&key).unwrap().choice.insert(first.to_string(), other.into());
    write_cache(&path, &cache);
    let k = tune::kernels(gpu, Tuning::Measure, &needs).unwrap();
    assert_eq!(k.inference_mode(&cfg) == Mode::Inference, flipped_eval);
    assert_eq!(k.training_mode(&cfg, 32) == Mode::Training, flipped_train);
    assert_eq!(format!("{:?}", k.gemm.get(first)), other);

    // An entry naming a kernel this build lacks is measured again and replaced, so the
    // next command reads a valid choice instead of re-measuring every time.
    let mut cache = read_cache(&path);
    cache.gemm.get_mut(&key).unwrap().choice.insert(first.to_string(), "GemmOfTheFuture".into());
    write_cache(&path, &cache);
    tune::kernels(gpu, Tuning::Measure, &needs).unwrap();
    let replaced = read_cache(&path).gemm[&key].choice[&first.to_string()].clone();
    assert!(VARIANTS.iter().any(|v| format!("{v:?}") == replaced), "still {replaced}");

    // A cache path that is not a regular file (a FIFO would block every read) is refused,
    // naming the path, before anything is measured.
    std::fs::remove_file(&path).unwrap();
    assert!(Command::new("mkfifo").arg(&path).status().unwrap().success());
    let start = Instant::now();
    let err = format!("{:#}", tune::kernels(gpu, Tuning::Measure, &needs).unwrap_err());
    assert!(err.contains(&path.display().to_string()) && err.contains("not a regular file"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "refusing took {:?}", start.elapsed());
    std::fs::remove_dir_all(&dir).unwrap();
}

const BIN: &str = env!("CARGO_BIN_EXE_mflow");

fn mflow(args: &[&str], cache: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("XDG_CACHE_HOME", cache)
        .env("NODEVICE_SELECT", "1")
        .env_remove("MFLOW_NO_TUNE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn first_use_says_so_and_a_signal_during_tuning_exits_at_once() {
    use std::io::{BufRead, BufReader};
    let cache = fresh_dir("tune", "signal");
    let out = cache.join("run");
    let mut child =
        mflow(&["train", "--data", "moons", "--epochs", "1", "--quiet", "--out", out.to_str().unwrap()], &cache)
            .spawn()
            .unwrap();
    // The announcement comes on stderr although it is a pipe, not a terminal.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        said += &line;
        if line.starts_with("tuning kernels for") {
            break;
        }
        line.clear();
    }
    assert!(line.starts_with("tuning kernels for") && line.contains("about") && line.contains(" s)"), "{said}");
    std::thread::sleep(Duration::from_millis(300)); // well inside the measuring
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(sent.elapsed() < Duration::from_secs(5), "still tuning 5 s after SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(took < Duration::from_millis(1500), "exited {took:?} after SIGINT");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn bench_tune_with_no_tune_is_a_contradiction() {
    let cache = fresh_dir("tune", "contradiction");
    for (args, env, by) in
        [(&["bench", "tune", "--no-tune"][..], None, "--no-tune"), (&["bench", "tune"], Some("1"), "MFLOW_NO_TUNE")]
    {
        let mut c = mflow(args, &cache);
        if let Some(v) = env {
            c.env("MFLOW_NO_TUNE", v);
        }
        let o = c.output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains(by) && e.contains("contradict"), "{e}");
    }
    assert!(!cache.join("mflow").exists(), "nothing was measured");
    let _ = std::fs::remove_dir_all(&cache);
}
