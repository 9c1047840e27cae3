//! Sweeps: a tiny grid end to end (runs, results, report), resuming skips finished runs,
//! and shards partition the grid exactly once.

mod common;
use common::*;
use mflow::run::Overrides;
use mflow::sweep::{self, Grid};

fn tiny() -> Overrides {
    Overrides {
        epochs: Some(2),
        samples: Some(2),
        hidden: Some(8),
        batch: Some(32),
        train_size: Some(64),
        test_size: Some(40),
        ..Default::default()
    }
}

#[test]
fn tiny_grid_runs_resumes_and_reports() {
    let gpu = gpu();
    let dir = common::scratch().join(format!("mflow-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Two configurations (B = 0, 1) × two seeds.
    let runs: Vec<_> =
        sweep::runs(&Grid::Moons, 2, &tiny()).unwrap().into_iter().filter(|r| r.cfg.flow.b <= 1).collect();
    assert_eq!(runs.len(), 4);
    let done = |ran, skipped| sweep::Outcome { ran, skipped, ..Default::default() };
    assert_eq!(sweep::run_sweep(gpu, &runs, &dir, 0, false, Default::default()).unwrap(), done(4, 0));
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert_eq!(std::fs::read_to_string(dir.join("results.jsonl")).unwrap().lines().count(), 4);
    // Restarted with the same runs: nothing is redone.
    let stamp = std::fs::metadata(dir.join("runs/moons_b0_s0/summary.json")).unwrap().modified().unwrap();
    assert_eq!(sweep::run_sweep(gpu, &runs, &dir, 0, false, Default::default()).unwrap(), done(0, 4));
    assert_eq!(std::fs::metadata(dir.join("runs/moons_b0_s0/summary.json")).unwrap().modified().unwrap(), stamp);
    let md = mflow::report::report(&[&dir], &dir).unwrap();
    assert!(md.contains("Table 3") && md.contains("| moons |"), "{md}");
    assert!(md.contains("(n=2)") && md.contains("(n=2, S="), "two seeds per cell, S where estimated: {md}");
    assert!(dir.join("ll_vs_b_moons.png").exists() && dir.join("samples_by_b_moons.png").exists());
    // The runs validated during training: their curves, one panel per configuration.
    assert!(md.contains("curves_moons.png") && dir.join("curves_moons.png").exists(), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn runs_trained_together_match_runs_trained_alone() {
    let gpu = gpu();
    let base = common::scratch().join(format!("mflow-sweep-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    // Gauss D = 2 and D = 3 with B chosen so both have Q = 4: one group of mixed D.
    let runs: Vec<_> = sweep::runs(&Grid::Gauss, 1, &tiny())
        .unwrap()
        .into_iter()
        .filter(|r| r.cfg.flow.q() == 4 && r.cfg.flow.d <= 3 && r.key.contains("psi3"))
        .collect();
    assert_eq!(runs.len(), 2);
    let (together, alone) = (base.join("together"), base.join("alone"));
    assert_eq!(sweep::run_sweep(gpu, &runs, &together, 0, false, Default::default()).unwrap().ran, 2);
    assert_eq!(sweep::run_sweep(gpu, &runs, &alone, 1, false, Default::default()).unwrap().ran, 2);
    // results.csv parses: gauss data specs hold commas, so they are quoted.
    let csv = std::fs::read_to_string(together.join("results.csv")).unwrap();
    let fields = |line: &str| {
        let mut quoted = false;
        1 + line
            .chars()
            .filter(|&c| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ',' && !quoted
            })
            .count()
    };
    let header = fields(csv.lines().next().unwrap());
    assert!(csv.lines().all(|l| fields(l) == header), "{csv}");
    assert!(csv.contains("\"gauss:d=2,psi=3\""), "{csv}");
    // Sweeps record which model each run's figures are of, and its step.
    assert!(csv.lines().next().unwrap().ends_with(",selected,selected_step,validation_ll"), "{csv}");
    for (_, s) in sweep::summaries(&together).unwrap() {
        assert!(csv.contains(&format!(",{},{},", s.selected, s.selected_step)), "{csv}");
    }
    let (a, b) = (sweep::summaries(&together).unwrap(), sweep::summaries(&alone).unwrap());
    for ((ka, sa), (kb, sb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert_eq!((sa.trained_with, sb.trained_with), (2, 1), "{ka}");
        for (what, x, y) in [
            ("heldout", sa.heldout_ll, sb.heldout_ll),
            ("train", sa.train_ll, sb.train_ll),
            ("final loss", sa.final_train_loss, sb.final_train_loss),
        ] {
            assert!((x - y).abs() < 1e-4 * (1.0 + y.abs()), "{ka} {what}: together {x} vs alone {y}");
        }
    }
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn shards_partition_the_grid() {
    let all: Vec<String> = sweep::runs(&Grid::Gauss, 3, &tiny()).unwrap().into_iter().map(|r| r.key).collect();
    assert_eq!(all.len(), 3 * 3 * 5 * 3);
    for n in 1..=7 {
        let mut seen: Vec<String> = (0..n)
            .flat_map(|i| sweep::shard(sweep::runs(&Grid::Gauss, 3, &tiny()).unwrap(), i, n))
            .map(|r| r.key)
            .collect();
        seen.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(seen, want, "{n} shards");
    }
    assert!(sweep::parse_shard("3/3").is_err() && sweep::parse_shard("x").is_err());
    assert_eq!(sweep::parse_shard("1/4").unwrap(), (1, 4));
}

#[test]
fn confidence_intervals_use_student_t() {
    let (m, ci) = mflow::report::mean_ci(&[1.0, 2.0, 3.0]);
    assert!((m - 2.0).abs() < 1e-12);
    // sd = 1, n = 3: t(2) = 4.303, half-width 4.303/√3
    assert!((ci - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{ci}");
    assert!(mflow::report::mean_ci(&[1.0]).1.is_nan());
    // Welch by hand: a = (1, 2, 3), b = (0, 0, 2): diff 2 − 2/3 = 4/3;
    // var a = 1, var b = 4/3; se² = 1/3 + 4/9 = 7/9; df = (7/9)² / ((1/3)²/2 + (4/9)²/2) = 3.92 → 3.
    let (d, ci) = mflow::report::diff_ci(&[1.0, 2.0, 3.0], &[0.0, 0.0, 2.0]);
    assert!((d - 4.0 / 3.0).abs() < 1e-12);
    assert!((ci - 3.182 * (7.0f64 / 9.0).sqrt()).abs() < 1e-9, "{ci}");
    assert!(mflow::report::diff_ci(&[1.0], &[0.0, 1.0]).1.is_nan());
}

#[test]
fn image_runs_train_together() {
    let gpu = gpu();
    let dir = common::scratch().join(format!("mflow-sweep-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o =
        Overrides { epochs: Some(1), samples: Some(2), hidden: Some(8), eval_points: Some(40), ..Default::default() };
    // Two seeds of B = 0 and of B = 1: two groups (Q = 64, 65) of two, each model with its
    // own dequantisation noise stream.
    let runs: Vec<_> = sweep::runs(&Grid::Images(mflow::data::DataSpec::Digits), 2, &o)
        .unwrap()
        .into_iter()
        .filter(|r| r.cfg.flow.b <= 1)
        .collect();
    assert_eq!(sweep::run_sweep(gpu, &runs, &dir, 0, false, Default::default()).unwrap().ran, 4);
    let all = sweep::summaries(&dir).unwrap();
    assert_eq!(all.len(), 4);
    for (key, s) in &all {
        assert_eq!(s.trained_with, 2, "{key}");
        let bpd = s.heldout_bits_per_dim.expect("dequant mode reports bits/dim");
        assert!(bpd.is_finite() && bpd > 0.0, "{key}: {bpd}");
    }
    // Different seeds trained side by side end in different places.
    assert_ne!(all[0].1.heldout_ll, all[1].1.heldout_ll);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `mflow sweep` on half-moons, two seeds (so each flow width Q trains a group of two).
fn sweep_cmd(out: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mflow"));
    c.args(["sweep", "moons", "--seeds", "2", "--epochs", "100", "--train-size", "64", "--test-size", "40"])
        .args(["--batch", "32", "--hidden", "8", "--samples", "2", "--checkpoint-every", "10", "--eval-points", "40"])
        .arg("--out")
        .arg(out)
        .env("NODEVICE_SELECT", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    c
}

#[test]
fn a_sweep_killed_mid_group_resumes_to_the_same_parameters() {
    let base = common::scratch().join(format!("mflow-sweep-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (whole, cut) = (base.join("whole"), base.join("cut"));
    let o = sweep_cmd(&whole).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // kill -9 once the first group has written a checkpoint.
    let mut child = sweep_cmd(&cut).spawn().unwrap();
    let first = cut.join("runs/moons_b0_s0/model.safetensors");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !first.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the sweep ended before its first checkpoint");
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!cut.join("runs/moons_b4_s1/summary.json").exists(), "killed mid-sweep");
    let at_kill = mflow::checkpoint::load(&first, None).map(|(_, s)| s.unwrap().step).unwrap_or(0);
    // The same command again: it continues from the checkpoints.
    let o = sweep_cmd(&cut).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (sweep::summaries(&whole).unwrap(), sweep::summaries(&cut).unwrap());
    assert_eq!(a.len(), 10);
    assert_eq!(b.len(), 10);
    for ((ka, _), (kb, sb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        let (fa, _) = mflow::checkpoint::load(&whole.join("runs").join(ka).join("model.safetensors"), None).unwrap();
        let (fb, _) = mflow::checkpoint::load(&cut.join("runs").join(kb).join("model.safetensors"), None).unwrap();
        assert_close(&format!("{ka} parameters"), &fb.params, &to_f64(&fa.params), 1e-6, 1e-5);
        assert_eq!(sb.steps, 200, "{kb}");
    }
    // The interrupted run lost at most one checkpoint interval: it resumed where it stopped.
    let log = std::fs::read_to_string(cut.join("runs/moons_b0_s0/metrics.jsonl")).unwrap();
    let resumed: Vec<u64> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "resumed")
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert!(at_kill == 0 || resumed == [at_kill], "resumed at {resumed:?}, checkpoint at {at_kill}");
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_finished_run_under_other_settings_is_not_skipped_nor_overwritten() {
    let gpu = gpu();
    let dir = common::scratch().join(format!("mflow-sweep-changed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runs: Vec<_> =
        sweep::runs(&Grid::Moons, 1, &tiny()).unwrap().into_iter().filter(|r| r.cfg.flow.b == 0).collect();
    assert_eq!(sweep::run_sweep(gpu, &runs, &dir, 0, false, Default::default()).unwrap().ran, 1);
    let summary = dir.join("runs/moons_b0_s0/summary.json");
    let before = std::fs::read(&summary).unwrap();
    let longer = Overrides { epochs: Some(3), ..tiny() };
    let runs: Vec<_> =
        sweep::runs(&Grid::Moons, 1, &longer).unwrap().into_iter().filter(|r| r.cfg.flow.b == 0).collect();
    let o = sweep::run_sweep(gpu, &runs, &dir, 0, false, Default::default()).unwrap();
    assert_eq!((o.ran, o.skipped, o.failed), (0, 0, 1));
    assert_eq!(std::fs::read(&summary).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_conv_images_grid_runs_and_reports_b_by_eps_channels() {
    use mflow::data::DataSpec;
    use mflow::run::config::ConvFlags;
    let gpu = gpu();
    let dir = common::scratch().join(format!("mflow-sweep-conv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Overrides {
        epochs: Some(1),
        samples: Some(2),
        hidden: Some(3),
        batch: Some(300),
        eval_points: Some(30),
        conv: Some(ConvFlags { head_blocks: Some(1), head_hidden: Some(8), ..Default::default() }),
        ..Default::default()
    };
    let runs = sweep::runs(&Grid::Images(DataSpec::Digits), 1, &o).unwrap();
    let keys: Vec<&str> = runs.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "digits_conv_k0_b0_s0",
            "digits_conv_k0_b2_s0",
            "digits_conv_k0_b4_s0",
            "digits_conv_k1_b0_s0",
            "digits_conv_k1_b2_s0",
            "digits_conv_k1_b4_s0"
        ]
    );
    let out = sweep::run_sweep(gpu, &runs, &dir, 0, false, Default::default()).unwrap();
    assert_eq!((out.ran, out.failed), (6, 0));
    let md = mflow::report::report(&[&dir], &dir).unwrap();
    // Rows: ε channels K_ε; columns: flat ε B.
    assert!(md.contains("| digits_conv_k0 |") && md.contains("| digits_conv_k1 |"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}
