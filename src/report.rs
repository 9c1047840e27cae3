//! `mflow report DIR…`: the thesis's tables 2–4 in their layout, each cell twice — the
//! thesis's protocol (training split, log of the mean likelihood, best of the seeds) and the
//! honest one (held-out test split, mean ± 95% confidence interval over seeds) — beside the
//! analytic truth for synthetic data; and figures: log-likelihood against B with confidence
//! bands, and samples side by side per B.

use crate::run::Summary;
use crate::sweep::summaries;
use anyhow::{bail, Context, Result};
use image::{Rgb, RgbImage};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Student's t at 97.5% for 1..=30 degrees of freedom (normal beyond).
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    if df == 0 {
        f64::NAN
    } else {
        T.get(df - 1).copied().unwrap_or(1.96)
    }
}

/// Mean and 95% half-width over seeds (NaN half-width with one seed).
pub fn mean_ci(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    (mean, t975(n - 1) * sd / (n as f64).sqrt())
}

/// Difference of means a − b with its 95% half-width (Welch: unequal variances, the
/// Welch–Satterthwaite degrees of freedom rounded down). NaN half-width below two per side.
pub fn diff_ci(a: &[f64], b: &[f64]) -> (f64, f64) {
    let stats = |v: &[f64]| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0), n)
    };
    let ((ma, va, na), (mb, vb, nb)) = (stats(a), stats(b));
    if a.len() < 2 || b.len() < 2 {
        return (ma - mb, f64::NAN);
    }
    let (sa, sb) = (va / na, vb / nb);
    let se2 = sa + sb;
    if se2 == 0.0 {
        return (ma - mb, 0.0);
    }
    let df = se2 * se2 / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    (ma - mb, t975(df.floor().max(1.0) as usize) * se2.sqrt())
}

/// A row of a table: a dataset configuration; cells by B.
struct Row {
    label: String,
    truth: Option<f64>,
    by_b: BTreeMap<usize, Vec<(String, Summary)>>,
}

fn group(all: Vec<(String, Summary)>) -> BTreeMap<String, Row> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (key, s) in all {
        // The key is "<row>_b<B>_s<seed>"; the row label is everything before "_b".
        let label = key.rsplit_once("_b").map(|(l, _)| l.to_string()).unwrap_or(key.clone());
        let row = rows.entry(label.clone()).or_insert(Row { label, truth: None, by_b: BTreeMap::new() });
        row.truth = row.truth.or(s.true_ll_expected);
        row.by_b.entry(s.config.flow.b).or_default().push((key, s));
    }
    rows
}

fn fmt_cell(v: f64, ci: f64) -> String {
    if ci.is_nan() {
        format!("{v:.3}")
    } else {
        format!("{v:.3} ± {ci:.3}")
    }
}

/// Writes report.md, report.csv and the figures into `out`; returns the Markdown.
pub fn report(dirs: &[&Path], out: &Path) -> Result<String> {
    if out.exists() && !out.is_dir() {
        bail!(
            "--out {}: exists and is not a folder; report writes report.md, report.csv and figures into a folder",
            out.display()
        );
    }
    let mut all = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            bail!("{}: no such sweep folder (every folder given must exist)", d.display());
        }
        all.extend(summaries(d)?);
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.dedup_by(|a, b| a.0 == b.0);
    if all.is_empty() {
        bail!("no finished runs under {:?}", dirs);
    }
    std::fs::create_dir_all(out).with_context(|| format!("--out {}: creating the folder", out.display()))?;
    let rows = group(all);
    let mut md = String::from("# mflow sweep report\n\n");
    let mut csv = String::from("row,b,seeds,honest_heldout_mean,honest_heldout_ci95,thesis_best_train,truth\n");
    type Pick = fn(&str) -> bool;
    let families: [(&str, Pick); 3] = [
        ("Table 2 — synthetic Gaussian (rows: D, ψ)", |l| l.starts_with("gauss")),
        ("Table 3 — half-moons", |l| l.starts_with("moons")),
        ("Table 4 — images", |l| !l.starts_with("gauss") && !l.starts_with("moons")),
    ];
    for (title, pick) in families {
        let chosen: Vec<&Row> = rows.values().filter(|r| pick(&r.label)).collect();
        if chosen.is_empty() {
            continue;
        }
        let bs: Vec<usize> = {
            let mut b: Vec<usize> = chosen.iter().flat_map(|r| r.by_b.keys().copied()).collect();
            b.sort();
            b.dedup();
            b
        };
        let _ = writeln!(md, "## {title}\n");
        let _ = writeln!(
            md,
            "Each cell: **honest** = held-out test split, mean ± 95% CI over seeds · *thesis* = training split, log of the mean likelihood, best of the seeds. Units: nats per point (images in dequant mode: nats of log p(v) per image). S: the importance samples of each estimate (none: exact, the flow has no auxiliary dimensions).\n"
        );
        results_table(&mut md, &mut csv, &chosen, &bs);
        md.push('\n');
        // The question the thesis asks of each row, answered on held-out data.
        if bs.len() > 1 && bs[0] == 0 {
            gain_table(&mut md, &chosen, &bs);
        }
        for r in &chosen {
            if curves_of(r, dirs, &out.join(format!("curves_{}.png", r.label)))? {
                let _ = writeln!(md, "![validation curves of {0}](curves_{0}.png)\n", r.label);
            }
            let fig = out.join(format!("ll_vs_b_{}.png", r.label));
            ll_vs_b(r, &fig)?;
            let strip = out.join(format!("samples_by_b_{}.png", r.label));
            if samples_strip(r, dirs, &strip)? {
                let _ = writeln!(md, "![{0}](ll_vs_b_{0}.png) ![samples](samples_by_b_{0}.png)\n", r.label);
            } else {
                let _ = writeln!(md, "![{0}](ll_vs_b_{0}.png)\n", r.label);
            }
        }
    }
    let _ = writeln!(
        md,
        "Figures: log-likelihood (y) against B (x, equally spaced in the order of the columns); blue: honest held-out mean with its 95% band, orange: the thesis protocol (best training figure), grey dashed: the truth where known."
    );
    crate::checkpoint::write_atomic(&out.join("report.md"), md.as_bytes())?;
    crate::checkpoint::write_atomic(&out.join("report.csv"), csv.as_bytes())?;
    Ok(md)
}

/// A family's table: each row's honest held-out mean ± 95% CI and the thesis protocol's best
/// training figure per B; the same cells go to `csv`.
fn results_table(md: &mut String, csv: &mut String, chosen: &[&Row], bs: &[usize]) {
    let mut head = String::from("| row | truth |");
    let mut sep = String::from("|---|---|");
    for b in bs {
        let _ = write!(head, " B = {b} |");
        sep += "---|";
    }
    let _ = writeln!(md, "{head}\n{sep}");
    for r in chosen {
        let truth = r.truth.map(|t| format!("{t:.3}")).unwrap_or("—".into());
        let mut line = format!("| {} | {truth} |", r.label);
        for b in bs {
            match r.by_b.get(b) {
                None => line += " — |",
                Some(runs) => {
                    let held: Vec<f64> = runs.iter().map(|(_, s)| s.heldout_ll).collect();
                    let best = runs.iter().map(|(_, s)| s.train_log_mean_likelihood).fold(f64::NEG_INFINITY, f64::max);
                    let (m, ci) = mean_ci(&held);
                    // How each held-out figure was estimated: exact, or with S importance samples.
                    let est = match runs.iter().find(|(_, s)| !s.config.flow.exact()) {
                        Some((_, s)) => format!(", S={}", s.samples),
                        None => String::new(),
                    };
                    let _ = write!(line, " **{}** (n={}{est}) · *{best:.3}* |", fmt_cell(m, ci), runs.len());
                    let _ = writeln!(
                        csv,
                        "{},{b},{},{m},{ci},{best},{}",
                        r.label,
                        runs.len(),
                        r.truth.map(|t| t.to_string()).unwrap_or_default()
                    );
                }
            }
        }
        let _ = writeln!(md, "{line}");
    }
}

/// Whether B > 0 beats B = 0 on held-out data, per row and B, with Welch intervals.
fn gain_table(md: &mut String, chosen: &[&Row], bs: &[usize]) {
    let _ = writeln!(
        md,
        "Does B > 0 beat B = 0 on held-out data? Each cell: mean held-out gain over B = 0 (nats) with its 95% CI over seeds (Welch); **yes** when the whole interval is above 0, **no** when it is below, *unclear* when it straddles 0.\n"
    );
    let mut head = String::from("| row |");
    let mut sep = String::from("|---|");
    for b in &bs[1..] {
        let _ = write!(head, " B = {b} |");
        sep += "---|";
    }
    let _ = writeln!(md, "{head}\n{sep}");
    for r in chosen {
        let held = |b: &usize| -> Option<Vec<f64>> {
            r.by_b.get(b).map(|runs| runs.iter().map(|(_, s)| s.heldout_ll).collect())
        };
        let base = held(&0);
        let mut line = format!("| {} |", r.label);
        for b in &bs[1..] {
            match (held(b), &base) {
                (Some(x), Some(y)) => {
                    let (d, ci) = diff_ci(&x, y);
                    let verdict = if d - ci > 0.0 {
                        "**yes**"
                    } else if d + ci < 0.0 {
                        "**no**"
                    } else {
                        "*unclear*"
                    };
                    if ci.is_nan() {
                        let _ = write!(line, " {d:+.3} *(one seed: no interval)* |");
                    } else {
                        let _ = write!(line, " {d:+.3} [{:+.3}, {:+.3}] {verdict} |", d - ci, d + ci);
                    }
                }
                _ => line += " — |",
            }
        }
        let _ = writeln!(md, "{line}");
    }
    md.push('\n');
}

/// Log-likelihood against B: held-out mean with its 95% band, the thesis protocol's best
/// training figure, and the truth where known.
fn ll_vs_b(r: &Row, path: &Path) -> Result<()> {
    let points: Vec<crate::plot::LlPoint> = r
        .by_b
        .iter()
        .map(|(b, runs)| {
            let held: Vec<f64> = runs.iter().map(|(_, s)| s.heldout_ll).collect();
            let (mean, ci) = mean_ci(&held);
            let best = runs.iter().map(|(_, s)| s.train_log_mean_likelihood).fold(f64::NEG_INFINITY, f64::max);
            crate::plot::LlPoint { b: *b, mean, ci: if ci.is_nan() { 0.0 } else { ci }, best }
        })
        .collect();
    let first = r.by_b.values().next().and_then(|runs| runs.first()).map(|(_, s)| s);
    let seeds = r.by_b.values().map(Vec::len).max().unwrap_or(0);
    // B = 0 is exact (S unused): the S of the figure is the largest the runs used.
    let s_max = r.by_b.values().flatten().map(|(_, s)| s.samples).max().unwrap_or(1);
    let title = match first {
        Some(s) => format!("{}: {} epochs, S = {s_max}, {seeds} seed(s) per B", s.data, s.config.epochs),
        None => r.label.clone(),
    };
    crate::plot::ll_vs_b(&points, r.truth, &title, path)
}

/// The first seed's samples.png for each B, side by side; false when none exist.
/// The validation curves of a row's runs, one panel per B, each seed a line with its
/// selected step marked (from each run's metrics.jsonl); false when no run was validated.
fn curves_of(r: &Row, dirs: &[&Path], path: &Path) -> Result<bool> {
    let mut panels = Vec::new();
    for (b, runs) in &r.by_b {
        let mut curves = Vec::new();
        for (key, s) in runs {
            let Some(log) = dirs.iter().map(|d| d.join("runs").join(key).join("metrics.jsonl")).find(|p| p.exists())
            else {
                continue;
            };
            let points: Vec<(u64, f64)> = std::fs::read_to_string(&log)
                .with_context(|| format!("reading {}", log.display()))?
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["event"] == "validation")
                .filter_map(|v| Some((v["step"].as_u64()?, v["ll"].as_f64()?)))
                .collect();
            if !points.is_empty() {
                let name = format!("seed {} ({} model: step {})", s.config.flow.seed, s.selected, s.selected_step);
                curves.push(crate::plot::Curve { name, points, selected: s.selected_step });
            }
        }
        if !curves.is_empty() {
            panels.push((format!("B = {b}"), curves));
        }
    }
    if panels.is_empty() {
        return Ok(false);
    }
    crate::plot::curve_panels(&panels, &format!("{}: validation log-likelihood during training", r.label), path)?;
    Ok(true)
}

fn samples_strip(r: &Row, dirs: &[&Path], path: &Path) -> Result<bool> {
    let mut tiles = Vec::new();
    for runs in r.by_b.values() {
        let key = &runs[0].0;
        if let Some(p) = dirs.iter().map(|d| d.join("runs").join(key).join("samples.png")).find(|p| p.exists()) {
            tiles.push(image::open(&p)?.to_rgb8());
        }
    }
    if tiles.is_empty() {
        return Ok(false);
    }
    let th = tiles.iter().map(|t| t.height()).max().unwrap_or(1);
    let tw: u32 = tiles.iter().map(|t| t.width() + 8).sum();
    let mut img = RgbImage::from_pixel(tw, th, Rgb([255, 255, 255]));
    let mut x0 = 0;
    for t in &tiles {
        image::imageops::overlay(&mut img, t, x0 as i64, 0);
        x0 += t.width() + 8;
    }
    crate::plot::save_png(&img, path)?;
    Ok(true)
}
