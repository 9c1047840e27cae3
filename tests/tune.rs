//! The tuner: a cache miss measures and stores a choice, a hit is used as stored, a shape
//! the fused kernel cannot hold needs no choice, and `--no-tune` takes the built-in default;
//! for evaluation, training and the GEMM family alike.
//! (Its own test binary: it points XDG_CACHE_HOME at a temporary folder.)

mod common;
use common::*;
use mflow::gpu_flow::Mode;
use mflow::model::FlowConfig;
use mflow::tune;

#[test]
fn choices_are_measured_cached_and_reused() {
    let dir = std::env::temp_dir().join(format!("mflow-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // SAFETY: this test binary has this one test, so no other thread reads the environment.
    unsafe { std::env::set_var("XDG_CACHE_HOME", &dir) };
    let gpu = gpu();
    let cfg = FlowConfig { d: 2, b: 1, blocks: 2, depth: 2, hidden: 16, seed: 0 };
    let first = tune::inference_mode(gpu, &cfg);
    let path = tune::cache_path().unwrap();
    assert!(path.starts_with(&dir));
    let mut cache: tune::Cache = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let entry = &cache.adapters[&tune::adapter_key(gpu)][&tune::shape_class(&cfg)];
    assert!(entry.fused_s > 0.0 && entry.unfused_s > 0.0);
    assert_eq!(first == Mode::Inference, entry.fused, "the measured choice is the one used");
    // A stored choice is used as stored, without measuring again.
    let flipped = !entry.fused;
    cache.adapters.get_mut(&tune::adapter_key(gpu)).unwrap().get_mut(&tune::shape_class(&cfg)).unwrap().fused = flipped;
    std::fs::write(&path, serde_json::to_string(&cache).unwrap()).unwrap();
    assert_eq!(tune::inference_mode(gpu, &cfg) == Mode::Inference, flipped);
    // Too wide for the fused kernel: GEMMs, and nothing measured.
    let wide = FlowConfig { hidden: 300, ..cfg.clone() };
    assert_eq!(tune::inference_mode(gpu, &wide), Mode::InferenceUnfused);
    let cache: tune::Cache = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(!cache.adapters[&tune::adapter_key(gpu)].contains_key(&tune::shape_class(&wide)));
    // The GEMM family per shape class: measured once (every candidate checked against the
    // reference before it is timed), then read from the cache as stored.
    use mflow::kernels::gemm::{GemmChoice, CLASSES, VARIANTS};
    let chosen = tune::gemm_choice(gpu);
    let mut cache: tune::Cache = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let entry = cache.gemm.get_mut(&tune::adapter_key(gpu)).unwrap();
    assert_eq!(entry.gflops.len(), CLASSES.len());
    assert!(entry.gflops.values().all(|r| r.len() == VARIANTS.len() && r.values().all(|g| *g > 0.0)));
    // The fused couplings' layout is measured with them, and used as stored.
    assert!(entry.fused_rows_s["rows4"] > 0.0 && entry.fused_rows_s["rows8"] > 0.0);
    assert_eq!(chosen.fused_rows8, entry.fused_rows8);
    for (class, _) in CLASSES {
        assert_eq!(format!("{:?}", chosen.get(class)), entry.choice[&class.to_string()], "{class}");
    }
    let first = CLASSES[0].0;
    let other = if entry.choice[&first.to_string()] == "Reg" { "TiledWide" } else { "Reg" };
    entry.choice.insert(first.to_string(), other.into());
    std::fs::write(&path, serde_json::to_string(&cache).unwrap()).unwrap();
    assert_eq!(format!("{:?}", tune::gemm_choice(gpu).get(first)), other);
    // Training: fused couplings or GEMMs per (shape, batch), measured, cached, reused.
    let key = tune::adapter_key(gpu);
    let class = tune::training_class(&cfg, 32);
    let first = tune::training_mode(gpu, &cfg, 32);
    let mut cache: tune::Cache = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let entry = cache.training.get_mut(&key).unwrap().get_mut(&class).unwrap();
    assert!(entry.fused_s > 0.0 && entry.unfused_s > 0.0);
    assert_eq!(first == Mode::Training, entry.fused, "the measured choice is the one used");
    entry.fused = !entry.fused;
    let flipped = entry.fused;
    std::fs::write(&path, serde_json::to_string(&cache).unwrap()).unwrap();
    assert_eq!(tune::training_mode(gpu, &cfg, 32) == Mode::Training, flipped);
    assert_eq!(tune::training_mode(gpu, &wide, 32), Mode::TrainingUnfused, "too wide: GEMMs");
    // --no-tune: the built-in defaults.
    tune::disable();
    let default_training = if gpu.is_cpu() { Mode::TrainingUnfused } else { Mode::Training };
    assert_eq!(tune::training_mode(gpu, &cfg, 32), default_training);
    assert_eq!(tune::inference_mode(gpu, &cfg), tune::default_mode(gpu));
    assert_eq!(tune::gemm_choice(gpu), GemmChoice::default_for(gpu));
    std::fs::remove_dir_all(&dir).unwrap();
}
