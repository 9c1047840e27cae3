//! A user's own data through the `mflow` binary: NPY and CSV in (good files and each bad
//! case), per-point log-likelihoods and raw samples out, the numpy module
//! (tools/mflow_np.py) against `mflow eval --per-point`, and the truth over the points
//! actually evaluated.

mod common;
use mflow::data::tabular::{npy_bytes, parse_npy};
use mflow::data::Table;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mflow");

fn tmp(name: &str) -> std::path::PathBuf {
    common::fresh_dir("tab", name)
}

fn mflow(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("NODEVICE_SELECT", "1").output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = mflow(args);
    assert!(o.status.success(), "mflow {args:?}:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn refused(args: &[&str], names: &[&str]) {
    let o = mflow(args);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "mflow {args:?}: {e}");
    assert!(!e.contains("panicked"), "{e}");
    for n in names {
        assert!(e.contains(n), "mflow {args:?}: the message does not name {n:?}:\n{e}");
    }
}

/// A correlated 3-D Gaussian far from standard (means ~100, stds ~10 and 0.01): what a
/// researcher's measurements look like, and what standardisation is for.
fn measurements(n: usize, seed: u64) -> Table {
    let u = common::uniform(seed, n * 3, 1.0);
    let data =
        u.chunks(3).flat_map(|r| [100.0 + 10.0 * r[0], 5.0 + 0.01 * (r[0] + r[1]), -3.0 + r[2] * r[1]]).collect();
    Table::new(3, data)
}

fn train_args<'a>(data: &'a str, out: &'a str, aux: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--aux",
        aux,
        "--epochs",
        "3",
        "--batch",
        "32",
        "--hidden",
        "16",
        "--blocks",
        "2",
        "--samples",
        "8",
        "--quiet",
        "--out",
        out,
    ]
}

fn read_npy(p: &Path) -> Table {
    parse_npy(&std::fs::read(p).unwrap(), "t").unwrap_or_else(|_| {
        // A 1-D array: read it as one column.
        let b = std::fs::read(p).unwrap();
        let n = u16::from_le_bytes([b[8], b[9]]) as usize;
        let v: Vec<f32> =
            b[10 + n..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect();
        Table::new(1, v)
    })
}

#[test]
fn own_data_in_per_point_results_and_samples_out() {
    let d = tmp("roundtrip");
    let x = d.join("x.npy");
    std::fs::write(&x, npy_bytes(&measurements(400, 1))).unwrap();
    let out = d.join("run");
    let spec = format!("npy:{}", x.display());
    ok(&train_args(&spec, out.to_str().unwrap(), "1"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["heldout_points"], 40, "0.8/0.1/0.1 of 400 rows");
    assert!(summary["units"].as_str().unwrap().contains("data's own units"));
    let model = out.join("model.safetensors");
    let m = model.to_str().unwrap();

    // Per-point values: every test point, their mean the reported figure; seeds differ.
    let pp = d.join("pp.npy");
    let json =
        ok(&["eval", "--model", m, "--samples", "16", "--per-point", pp.to_str().unwrap(), "--json", "--seed", "3"]);
    let row: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(
        (row["split"].as_str(), row["seed"].as_u64(), row["samples"].as_u64()),
        (Some("test"), Some(3), Some(16))
    );
    assert_eq!(row["per_point"].as_str(), Some(pp.to_str().unwrap()));
    let ll = read_npy(&pp);
    assert_eq!(ll.rows(), 40);
    let mean = ll.data.iter().map(|&v| v as f64).sum::<f64>() / 40.0;
    assert!((mean - row["ll"].as_f64().unwrap()).abs() < 1e-4, "{mean} vs {row}");
    let csv = d.join("pp.csv");
    ok(&["eval", "--model", m, "--samples", "16", "--per-point", csv.to_str().unwrap(), "--seed", "4"]);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("index,log_p\n") && text.lines().count() == 41, "{text}");

    // Raw samples in the data's units: the first column lives near 100, not near 0.
    let s = d.join("s.npy");
    ok(&["sample", "--model", m, "--n", "300", "--out", s.to_str().unwrap()]);
    let t = read_npy(&s);
    assert_eq!((t.rows(), t.dim), (300, 3));
    let mean0 = (0..300).map(|i| t.row(i)[0] as f64).sum::<f64>() / 300.0;
    assert!((mean0 - 100.0).abs() < 5.0, "samples in data units: mean {mean0}");
    ok(&["sample", "--model", m, "--n", "5", "--out", d.join("s.csv").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(d.join("s.csv")).unwrap().lines().count(), 6);
    refused(&["sample", "--model", m, "--out", d.join("s.txt").to_str().unwrap()], &["--out", ".npy"]);
    refused(&["sample", "--model", m, "--out", d.join("s.png").to_str().unwrap()], &["D = 3", ".npy"]);

    // Any compatible file, evaluated whole with the model's own standardisation.
    let other = d.join("other.csv");
    let rows: Vec<String> = (0..25).map(|i| format!("{},{},{}", 100 + i % 5, 5.0 + 0.001 * i as f64, -3)).collect();
    std::fs::write(&other, format!("a,b,c\n{}\n", rows.join("\n"))).unwrap();
    let text = ok(&["eval", "--model", m, "--data", &format!("csv:{}", other.display()), "--samples", "4"]);
    assert!(text.contains("first 25 points"), "{text}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_tables_name_file_row_and_column() {
    let d = tmp("bad");
    let out = d.join("run");
    let o = out.to_str().unwrap();
    let cases: [(&str, &str, &[&str]); 6] = [
        ("ragged.csv", "1,2,3\n4,5,6\n7,8\n", &["ragged.csv", "line 3", "2 columns"]),
        ("text.csv", "a,b\n1,2\n3,x\n", &["text.csv", "line 3, column 2", "\"x\""]),
        ("nan.csv", "1,2\n3,nan\n", &["nan.csv", "line 2, column 2"]),
        ("const.csv", "1,7\n2,7\n3,7\n4,7\n5,7\n6,7\n7,7\n8,7\n9,7\n10,7\n", &["const.csv", "column 2 is constant"]),
        ("narrow.csv", "1\n2\n3\n", &["narrow.csv", "D ≥ 2"]),
        ("tiny.csv", "1,2\n3,4\n", &["tiny.csv", "test split"]),
    ];
    for (name, text, names) in cases {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        refused(&["train", "--data", &format!("csv:{}", p.display()), "--out", o], names);
    }
    let mut nan = measurements(10, 2);
    nan.data[7] = f32::INFINITY;
    std::fs::write(d.join("inf.npy"), npy_bytes(&nan)).unwrap();
    refused(
        &["train", "--data", &format!("npy:{}", d.join("inf.npy").display()), "--out", o],
        &["inf.npy", "row 2, column 2"],
    );
    std::fs::write(d.join("a.npy"), npy_bytes(&measurements(50, 3))).unwrap();
    std::fs::write(d.join("b.npy"), npy_bytes(&Table::new(2, vec![1.0, 2.0, 3.0, 4.0]))).unwrap();
    let two = format!("npy:train={},test={}", d.join("a.npy").display(), d.join("b.npy").display());
    refused(&["train", "--data", &two, "--out", o], &["b.npy", "2 columns", "training split 3"]);
    refused(
        &[
            "train",
            "--data",
            &format!("npy:{}", d.join("a.npy").display()),
            "--split-fractions",
            "0.5,0.5,0.5",
            "--out",
            o,
        ],
        &["--split-fractions"],
    );
    assert!(!out.exists(), "nothing written");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Runs tools/mflow_np.py; numpy is installed by the README's test command.
fn numpy_module(args: &[&str]) -> serde_json::Value {
    let o = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/mflow_np.py"))
        .args(args)
        .output()
        .expect("python3 is needed for the numpy module's test (tools/test.sh installs numpy)");
    assert!(o.status.success(), "mflow_np.py {args:?}:\n{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn the_numpy_module_agrees_with_mflow_eval() {
    let d = tmp("numpy");
    let x = d.join("x.npy");
    std::fs::write(&x, npy_bytes(&measurements(300, 5))).unwrap();
    let test = d.join("test.npy");
    std::fs::write(&test, npy_bytes(&measurements(60, 6))).unwrap();
    let spec = format!("npy:train={},test={}", x.display(), test.display());
    for aux in ["0", "2"] {
        let out = d.join(format!("b{aux}"));
        ok(&train_args(&spec, out.to_str().unwrap(), aux));
        let m = out.join("model.safetensors");
        let pp = d.join(format!("pp{aux}.npy"));
        let mine = ok(&[
            "eval",
            "--model",
            m.to_str().unwrap(),
            "--samples",
            "200",
            "--per-point",
            pp.to_str().unwrap(),
            "--json",
        ]);
        let mine: serde_json::Value = serde_json::from_str(mine.lines().next().unwrap()).unwrap();
        let py_out = d.join(format!("py{aux}.npy"));
        let theirs = numpy_module(&[
            "eval",
            "--model",
            m.to_str().unwrap(),
            "--data",
            test.to_str().unwrap(),
            "--samples",
            "200",
            "--out",
            py_out.to_str().unwrap(),
        ]);
        let (a, b) = (read_npy(&pp), read_npy(&py_out));
        assert_eq!(a.rows(), b.rows());
        if aux == "0" {
            // Exact on both sides: the same numbers to f32 precision, point by point.
            for (i, (p, q)) in a.data.iter().zip(&b.data).enumerate() {
                assert!((p - q).abs() < 2e-3 * (1.0 + q.abs()), "point {i}: mflow {p} vs numpy {q}");
            }
        } else {
            // Different ε: the estimates agree within their standard errors.
            let (ma, mb) = (mine["ll"].as_f64().unwrap(), theirs["ll"].as_f64().unwrap());
            let se = mine["ll_se"].as_f64().unwrap();
            assert!((ma - mb).abs() < 2.0 * se, "mflow {ma} vs numpy {mb} (se {se})");
        }
    }
    // Samples from the module are in the data's units too.
    let s = d.join("np_samples.npy");
    let o = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/mflow_np.py"))
        .args([
            "sample",
            "--model",
            d.join("b2/model.safetensors").to_str().unwrap(),
            "--n",
            "200",
            "--out",
            s.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_npy(&s);
    let mean0 = (0..t.rows()).map(|i| t.row(i)[0] as f64).sum::<f64>() / t.rows() as f64;
    assert!((mean0 - 100.0).abs() < 5.0, "{mean0}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_truth_is_computed_over_the_points_evaluated() {
    let d = tmp("truth");
    let out = d.join("run");
    ok(&[
        "train",
        "--data",
        "moons",
        "--aux",
        "0",
        "--epochs",
        "1",
        "--train-size",
        "64",
        "--batch",
        "32",
        "--hidden",
        "8",
        "--blocks",
        "1",
        "--eval-points",
        "30",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let test = mflow::data::synthetic::moons(10_000, 0.1, 0, mflow::data::Split::Test);
    let want = (0..30).map(|i| mflow::data::synthetic::moons_log_density(&test.row(i), 0.1)).sum::<f64>() / 30.0;
    assert_eq!(s["heldout_points"], 30);
    assert!((s["true_ll"].as_f64().unwrap() - want).abs() < 1e-9, "{} vs {want}", s["true_ll"]);

    // `mflow eval` gives the same truth beside its figure, and each point's beside its log p.
    let m = out.join("model.safetensors");
    let m = m.to_str().unwrap();
    let (csv, npy) = (d.join("pp.csv"), d.join("pp.npy"));
    let json = ok(&["eval", "--model", m, "--limit", "30", "--per-point", npy.to_str().unwrap(), "--json"]);
    let row: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert!((row["true_ll"].as_f64().unwrap() - want).abs() < 1e-9, "{} vs {want}", row["true_ll"]);
    let text = ok(&["eval", "--model", m, "--limit", "30", "--per-point", csv.to_str().unwrap()]);
    assert!(text.contains(&format!("truth: {want:.4} nats")), "{text}");
    let written = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!((lines[0], lines.len()), ("index,log_p,true_log_p", 31));
    let table = read_npy(&npy);
    assert_eq!((table.rows(), table.dim), (30, 2), "log p and the truth, a column each");
    for i in 0..30 {
        let truth = mflow::data::synthetic::moons_log_density(&test.row(i), 0.1);
        let from_csv: f64 = lines[i + 1].split(',').nth(2).unwrap().parse().unwrap();
        assert!((from_csv - truth).abs() < 1e-9 * (1.0 + truth.abs()), "point {i}: {from_csv} vs {truth}");
        let from_npy = table.row(i)[1] as f64;
        assert!((from_npy - truth).abs() < 1e-5 * (1.0 + truth.abs()), "point {i}: {from_npy} vs {truth}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// tools/mflow_np.py meets the CLI's standard on hostile files (tests/fuzz_mflow_np.py:
/// mutated and crafted checkpoints and arrays from a fixed seed, absurd sizes, outputs onto
/// inputs): every case succeeds with finite figures or exits 1 with a message naming the
/// file or flag, never with a traceback. Run for a B = 0 and a B = 2 model.
#[test]
fn the_numpy_module_refuses_hostile_files_cleanly() {
    let d = tmp("numpy-fuzz");
    let x = d.join("x.npy");
    std::fs::write(&x, npy_bytes(&measurements(200, 8))).unwrap();
    for aux in ["0", "2"] {
        let out = d.join(format!("b{aux}"));
        ok(&train_args(&format!("npy:{}", x.display()), out.to_str().unwrap(), aux));
        let o = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_mflow_np.py"))
            .args([out.join("model.safetensors").to_str().unwrap(), x.to_str().unwrap(), "--cases", "300"])
            .output()
            .expect("python3 is needed for the numpy module's test (tools/test.sh installs numpy)");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "B = {aux}:\n{text}\n{}", String::from_utf8_lossy(&o.stderr));
        assert!(text.contains(" passed, 0 failed"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// tools/mflow_np.py evaluates conv models (CONV.md) as the engine does: log p_T of the same
/// rows, point by point, from the same checkpoint (B = 0 and no ε channels: exact on both
/// sides), for one, two and three scales with a dense head, and with 1×1 convolutions.
#[test]
fn the_numpy_module_evaluates_conv_models_as_the_engine_does() {
    use mflow::gpu_flow::GpuFlow;
    use mflow::model::{ChannelPermute, ConvArch, Flow, FlowConfig};
    let d = tmp("numpy-conv");
    for (i, (c, h, w, scales)) in [(1, 4, 4, 1), (2, 4, 6, 2), (1, 8, 8, 3)].into_iter().enumerate() {
        let arch = ConvArch {
            channels: c,
            height: h,
            width: w,
            aux_channels: 0,
            scales,
            hidden: 5,
            depth: 2,
            permute: ChannelPermute::Reverse,
        };
        let cfg = FlowConfig { d: c * h * w, b: 0, blocks: 2, depth: 2, hidden: 9, seed: i as u64, conv: Some(arch) };
        let mut flow = Flow::new(cfg).unwrap();
        flow.randomize(40 + i as u64, 0.6);
        let m = d.join(format!("conv{i}.safetensors"));
        mflow::checkpoint::save(&m, &flow, None).unwrap();
        let n = 7;
        let y = common::uniform(i as u64, n * flow.config.q(), 1.5);
        let x = d.join(format!("y{i}.npy"));
        std::fs::write(&x, npy_bytes(&Table::new(flow.config.q(), y.clone()))).unwrap();
        let out = d.join(format!("ll{i}.npy"));
        let (m, x, out_s) = (m.to_str().unwrap(), x.to_str().unwrap(), out.to_str().unwrap());
        numpy_module(&["eval", "--model", m, "--data", x, "--out", out_s]);
        let theirs = read_npy(&out);
        let g = GpuFlow::new(common::gpu(), &flow, n);
        let mine = g.forward(common::gpu(), &y).logp;
        assert_eq!(theirs.rows(), n);
        for (k, (p, q)) in mine.iter().zip(&theirs.data).enumerate() {
            assert!((p - q).abs() < 1e-3 * (1.0 + q.abs()), "conv model {i}, point {k}: mflow {p} vs numpy {q}");
        }
        // The same rows round-trip through the module's inverse (its sampler's path).
        let back = Command::new("python3")
            .args(["-c", &format!("import sys; sys.path.insert(0, {:?}); import mflow_np, numpy as np; m = mflow_np.load({m:?}); y = np.load({x:?}); u, _ = m.forward(y); print(np.abs(m.inverse(u) - y).max())", concat!(env!("CARGO_MANIFEST_DIR"), "/tools"))])
            .output()
            .unwrap();
        let err: f64 = String::from_utf8_lossy(&back.stdout).trim().parse().unwrap_or(f64::NAN);
        assert!(
            err < 1e-9,
            "conv model {i}: the numpy inverse misses by {err}: {}",
            String::from_utf8_lossy(&back.stderr)
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// A uint8 NPY (version 1) of `shape`, as numpy writes one.
fn npy_u8(shape: &[usize], levels: &[u8]) -> Vec<u8> {
    npy_of("|u1", shape, levels)
}

/// An NPY (version 1) of dtype `descr` and `shape` holding `data`.
fn npy_of(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}), }}", dims.join(", "));
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((header.len() as u16).to_le_bytes());
    b.extend(header.as_bytes());
    b.extend(data);
    b
}

/// Bright 3×3 squares on a dark noisy background, `n` images of c×8×8.
fn squares(n: usize, c: usize, seed: u64) -> Vec<u8> {
    let u = common::uniform(seed, n * c * 64 + 2 * n, 1.0);
    let mut x: Vec<u8> = u[..n * c * 64].iter().map(|v| (20.0 + 20.0 * v) as u8).collect();
    for k in 0..n {
        let (i, j) =
            (((u[n * c * 64 + 2 * k] + 1.0) * 2.5) as usize, ((u[n * c * 64 + 2 * k + 1] + 1.0) * 2.5) as usize);
        for ch in 0..c {
            for di in 0..3 {
                for dj in 0..3 {
                    x[((k * c + ch) * 8 + i + di) * 8 + j + dj] = 220;
                }
            }
        }
    }
    x
}

/// One epoch of a small `arch` flow (conv or dense) with one flat ε on image `data`.
fn image_train_args<'a>(data: &'a str, arch: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--data", data, "--arch", arch, "--aux", "1", "--epochs", "1", "--batch", "8"];
    args.extend(["--samples", "2", "--quiet", "--out", out, "--hidden", "8"]);
    if arch == "conv" {
        args.extend(["--head-hidden", "16", "--head-blocks", "1"]);
    } else {
        args.extend(["--blocks", "2"]);
    }
    args.extend(extra);
    args
}

#[test]
fn uint8_npy_images_train_conv_and_dense_flows_and_evaluate_in_bits_per_dim() {
    let dir = tmp("images");
    let (grey, colour) = (dir.join("grey.npy"), dir.join("colour.npy"));
    std::fs::write(&grey, npy_u8(&[80, 8, 8], &squares(80, 1, 1))).unwrap();
    std::fs::write(&colour, npy_u8(&[60, 3, 8, 8], &squares(60, 3, 2))).unwrap();
    let (g, c) = (format!("npy:{}", grey.display()), format!("npy:{}", colour.display()));
    for (data, arch, out) in [(&g, "conv", "conv"), (&c, "dense", "dense")] {
        let out = dir.join(out);
        ok(&image_train_args(data, arch, out.to_str().unwrap(), &[]));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        let bpd = s["heldout_bits_per_dim"].as_f64().expect("image runs report bits/dim");
        assert!(bpd.is_finite() && bpd > 0.0 && bpd < 16.0, "{bpd}");
        assert!(out.join("samples.png").exists());
        // The CLI evaluates the model on the same file (every row: its test split), per point.
        let model = out.join("model.safetensors");
        let pp = dir.join(format!("{arch}.csv"));
        let text = ok(&["eval", "--model", model.to_str().unwrap(), "--data", data, "--samples", "2"]);
        assert!(text.contains("bits/dim"), "{text}");
        ok(&["eval", "--model", model.to_str().unwrap(), "--data", data, "--samples", "2", "--per-point"]
            .into_iter()
            .chain([pp.to_str().unwrap()])
            .collect::<Vec<_>>());
        let rows = std::fs::read_to_string(&pp).unwrap().lines().count();
        assert_eq!(rows, 1 + if arch == "conv" { 80 } else { 60 }, "a header and every image");
    }
    // Images of another shape, real rows and uint8 rows are refused, naming the files.
    let other = dir.join("other.npy");
    std::fs::write(&other, npy_u8(&[10, 4, 4], &[7; 160])).unwrap();
    let model = dir.join("conv/model.safetensors");
    refused(
        &["eval", "--model", model.to_str().unwrap(), "--data", &format!("npy:{}", other.display())],
        &["other.npy", "16 values per point", "D = 64"],
    );
    let rows = dir.join("rows.npy");
    std::fs::write(&rows, npy_u8(&[10, 4], &[7; 40])).unwrap();
    refused(
        &["eval", "--model", model.to_str().unwrap(), "--data", &format!("npy:{}", rows.display())],
        &["rows.npy", "uint8 arrays are images"],
    );
    let real = dir.join("real.npy");
    std::fs::write(&real, npy_bytes(&measurements(50, 1))).unwrap();
    let split = format!("npy:train={},test={}", real.display(), grey.display());
    let out = dir.join("mixed");
    refused(&train_args(&split, out.to_str().unwrap(), "1"), &["grey.npy", "real.npy", "uint8 images of 1×8×8"]);
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
}

#[test]
fn float_npy_images_are_modelled_as_their_values_with_preprocess_none() {
    let dir = tmp("float-images");
    // The squares as floats in about [-1, 1], with a little noise (a density of values).
    let noise = common::uniform(4, 80 * 64, 0.02);
    let vals: Vec<f32> = squares(80, 1, 3).iter().zip(&noise).map(|(&p, e)| p as f32 / 127.5 - 1.0 + e).collect();
    let floats = dir.join("floats.npy");
    std::fs::write(&floats, npy_of("<f4", &[80, 1, 8, 8], bytemuck::cast_slice(&vals))).unwrap();
    let data = format!("npy:{}", floats.display());
    for arch in ["conv", "dense"] {
        let out = dir.join(arch);
        ok(&image_train_args(&data, arch, out.to_str().unwrap(), &["--preprocess", "none"]));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        assert!(s["heldout_bits_per_dim"].is_null(), "no bits/dim for values: {}", s["heldout_bits_per_dim"]);
        let ll = s["heldout_ll"].as_f64().unwrap();
        assert!(ll.is_finite(), "{ll}");
        assert!(out.join("samples.png").exists());
        // mflow eval on the same file: nats, every image, and the summary's figure for its
        // test split's images.
        let model = out.join("model.safetensors");
        let m = model.to_str().unwrap();
        let text = ok(&["eval", "--model", m, "--data", &data, "--samples", "2"]);
        assert!(text.contains("nats") && !text.contains("bits/dim"), "{text}");
        let pp = dir.join(format!("{arch}.csv"));
        ok(&["eval", "--model", m, "--data", &data, "--samples", "2", "--per-point", pp.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(&pp).unwrap().lines().count(), 81, "a header and every image");
        // Samples come back as values (not levels), and draw as a grid.
        let raw = dir.join(format!("{arch}-samples.npy"));
        ok(&["sample", "--model", m, "--n", "5", "--out", raw.to_str().unwrap()]);
        let t = read_npy(&raw);
        assert_eq!((t.rows(), t.dim), (5, 64));
        assert!(t.data.iter().any(|v| v.fract() != 0.0), "values, not levels");
        ok(&["sample", "--model", m, "--n", "4", "--out", dir.join(format!("{arch}.png")).to_str().unwrap()]);
    }
    // Float images need --preprocess none, which takes nothing else: each refused by name.
    let out = dir.join("refused");
    let o = out.to_str().unwrap();
    refused(&["train", "--data", &data, "--out", o, "--quiet"], &["floats.npy", "--preprocess none", "1×8×8"]);
    let grey = dir.join("grey.npy");
    std::fs::write(&grey, npy_u8(&[40, 8, 8], &squares(40, 1, 1))).unwrap();
    let g = format!("npy:{}", grey.display());
    refused(
        &["train", "--data", &g, "--preprocess", "none", "--out", o, "--quiet"],
        &["grey.npy", "uint8", "--preprocess none"],
    );
    refused(
        &["train", "--data", "digits", "--preprocess", "none", "--out", o, "--quiet"],
        &["digits", "--preprocess none takes float images"],
    );
    refused(
        &["train", "--data", "moons", "--preprocess", "none", "--out", o, "--quiet"],
        &["--preprocess none applies to images", "moons"],
    );
    // Float and uint8 images of one shape are not one dataset.
    let split = format!("npy:train={},test={}", floats.display(), grey.display());
    refused(
        &["train", "--data", &split, "--preprocess", "none", "--out", o, "--quiet"],
        &["grey.npy", "floats.npy", "uint8 images of 1×8×8", "float images of 1×8×8"],
    );
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
