//! Every figure mflow writes, as PNG: a scatter of samples over the data, density heat maps
//! (with a colour bar, the model beside the truth where it is known), log-likelihood against
//! B with its confidence band, and image grids. Each has a title naming the model, axes
//! with ticks and units, and a legend. Drawn with `plotters` into a pixel buffer (its own
//! font renderer, with DejaVu Sans embedded: no system fonts needed), saved with `image`.

use crate::data::Table;
use anyhow::{anyhow, Context, Result};
use image::{Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const SANS: &str = "sans-serif";
const DATA_GREY: RGBColor = RGBColor(160, 160, 160);
const SAMPLE_BLUE: RGBColor = RGBColor(31, 90, 200);
const BEST_ORANGE: RGBColor = RGBColor(230, 120, 20);
const BAND_BLUE: RGBColor = RGBColor(200, 215, 245);

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid; a failure would only leave text undrawn.
        let _ = plotters::style::register_font(SANS, FontStyle::Normal, FONT);
    });
}

fn pe<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the figure: {e:?}")
}

/// The series legend every chart draws: at `at`, on a translucent white box with a border.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
    size: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((SANS, size))
        .draw()
        .map_err(pe)
}

/// Draws with `f` on a white `w`×`h` canvas, then writes the PNG atomically.
fn render(w: u32, h: u32, path: &Path, f: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>) -> Result<()> {
    register_font();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        f(&root)?;
        root.present().map_err(pe)?;
    }
    let img = RgbImage::from_raw(w, h, buf).context("figure buffer")?;
    save_png(&img, path)
}

pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .with_context(|| format!("encoding {}", path.display()))?;
    crate::checkpoint::write_atomic(path, &bytes)
}

/// The square view that holds the central 99.5% of `t`'s points in both coordinates, padded.
pub fn view_of(t: &Table) -> [f64; 4] {
    let q = |col: usize, p: f64| {
        let mut v: Vec<f64> = (0..t.rows()).map(|i| t.row(i)[col] as f64).filter(|v| v.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        v[((v.len() - 1) as f64 * p) as usize]
    };
    let (x0, x1, y0, y1) = (q(0, 0.0025), q(0, 0.9975), q(1, 0.0025), q(1, 0.9975));
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let half = ((x1 - x0).max(y1 - y0) / 2.0 * 1.15).max(1e-3);
    [cx - half, cx + half, cy - half, cy + half]
}

/// Samples (blue) over the data (grey) in the first two dimensions, in the data's units.
pub fn scatter(data: &Table, samples: &Table, title: &str, path: &Path) -> Result<()> {
    let view = view_of(data);
    let inside = |t: &Table| -> Vec<(f64, f64)> {
        (0..t.rows())
            .map(|i| (t.row(i)[0] as f64, t.row(i)[1] as f64))
            .filter(|&(x, y)| x >= view[0] && x <= view[1] && y >= view[2] && y <= view[3])
            .collect()
    };
    render(640, 640, path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (SANS, 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(54)
            .build_cartesian_2d(view[0]..view[1], view[2]..view[3])
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("x₁ (data units)")
            .y_desc("x₂ (data units)")
            .label_style((SANS, 13))
            .draw()
            .map_err(pe)?;
        let n = (data.rows(), samples.rows());
        chart
            .draw_series(inside(data).into_iter().map(|p| Circle::new(p, 2, DATA_GREY.filled())))
            .map_err(pe)?
            .label(format!("data (test split, {} points)", n.0))
            .legend(|p| Circle::new(p, 4, DATA_GREY.filled()));
        chart
            .draw_series(inside(samples).into_iter().map(|p| Circle::new(p, 2, SAMPLE_BLUE.filled())))
            .map_err(pe)?
            .label(format!("model samples ({})", n.1))
            .legend(|p| Circle::new(p, 4, SAMPLE_BLUE.filled()));
        legend(&mut chart, SeriesLabelPosition::UpperRight, 13)
    })
}

/// A colour ramp from dark blue through teal to yellow, t in [0, 1].
fn ramp(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    RGBColor((255.0 * t.powf(1.5)) as u8, (40.0 + 200.0 * t) as u8, (90.0 + 80.0 * (1.0 - t) * t * 4.0) as u8)
}

/// Heat maps of log p(x) on a res×res grid over `view` (row-major, y up), one panel per
/// entry side by side on one colour scale (12 nats below the top), with a colour bar.
pub fn heatmaps(panels: &[(&str, &[f64])], res: usize, view: [f64; 4], title: &str, path: &Path) -> Result<()> {
    let finite = || panels.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite());
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    let lo = (hi - 12.0).max(finite().fold(f64::INFINITY, f64::min));
    let (hi, lo) = if hi.is_finite() { (hi, lo) } else { (0.0, -1.0) };
    let panel_w = 520u32;
    let w = panel_w * panels.len() as u32 + 110;
    render(w, 580, path, |root| {
        let (title_area, body) = root.split_vertically(36);
        title_area.draw(&Text::new(title.to_string(), (12, 8), (SANS, 17).into_font())).map_err(pe)?;
        let (maps, bar) = body.split_horizontally(panel_w * panels.len() as u32);
        let areas = maps.split_evenly((1, panels.len()));
        let cell = ((view[1] - view[0]) / res as f64, (view[3] - view[2]) / res as f64);
        for ((name, values), area) in panels.iter().zip(&areas) {
            let mut chart = ChartBuilder::on(area)
                .caption(*name, (SANS, 15))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(52)
                .build_cartesian_2d(view[0]..view[1], view[2]..view[3])
                .map_err(pe)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("x₁ (data units)")
                .y_desc("x₂ (data units)")
                .label_style((SANS, 12))
                .draw()
                .map_err(pe)?;
            chart
                .draw_series((0..res * res).map(|k| {
                    let (i, j) = (k % res, k / res);
                    let v = values[k];
                    let t = if v.is_finite() { (v - lo) / (hi - lo).max(1e-9) } else { 0.0 };
                    let x0 = view[0] + i as f64 * cell.0;
                    let y0 = view[2] + j as f64 * cell.1;
                    Rectangle::new([(x0, y0), (x0 + cell.0, y0 + cell.1)], ramp(t).filled())
                }))
                .map_err(pe)?;
        }
        let mut cb = ChartBuilder::on(&bar)
            .margin_top(40)
            .margin_bottom(50)
            .margin_right(10)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(pe)?;
        cb.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc("log p(x) [nats]")
            .label_style((SANS, 12))
            .draw()
            .map_err(pe)?;
        let steps = 100;
        cb.draw_series((0..steps).map(|s| {
            let (a, b) = (lo + (hi - lo) * s as f64 / steps as f64, lo + (hi - lo) * (s + 1) as f64 / steps as f64);
            Rectangle::new([(0.0, a), (1.0, b)], ramp(s as f64 / steps as f64).filled())
        }))
        .map_err(pe)?;
        Ok(())
    })
}

/// One point of a log-likelihood-against-B figure.
pub struct LlPoint {
    pub b: usize,
    /// Held-out mean and the half-width of its 95% interval (0: one seed).
    pub mean: f64,
    pub ci: f64,
    /// The thesis protocol's figure: the best training log-mean-likelihood.
    pub best: f64,
}

/// Log-likelihood against B: held-out mean with its 95% band, the thesis protocol's best
/// training figure, and the truth (dashed) where known.
pub fn ll_vs_b(points: &[LlPoint], truth: Option<f64>, title: &str, path: &Path) -> Result<()> {
    let ys = points.iter().flat_map(|p| [p.mean - p.ci, p.mean + p.ci, p.best]).chain(truth);
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let span = (hi - lo).max(1e-3);
    let (lo, hi) = (lo - 0.1 * span, hi + 0.15 * span);
    let bs: Vec<usize> = points.iter().map(|p| p.b).collect();
    let x = |i: usize| i as f64;
    render(640, 420, path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (SANS, 16))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.3..(points.len().max(2) - 1) as f64 + 0.3, lo..hi)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_labels(points.len().max(2))
            .x_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < bs.len() {
                    bs[i as usize].to_string()
                } else {
                    String::new()
                }
            })
            .x_desc("auxiliary dimensions B")
            .y_desc("log-likelihood [nats]")
            .label_style((SANS, 12))
            .draw()
            .map_err(pe)?;
        let upper: Vec<(f64, f64)> = points.iter().enumerate().map(|(i, p)| (x(i), p.mean + p.ci)).collect();
        let lower: Vec<(f64, f64)> = points.iter().enumerate().rev().map(|(i, p)| (x(i), p.mean - p.ci)).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                upper.into_iter().chain(lower).collect::<Vec<_>>(),
                BAND_BLUE.filled(),
            )))
            .map_err(pe)?
            .label("held-out 95% interval")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], BAND_BLUE.filled()));
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| (x(i), p.mean)),
                SAMPLE_BLUE.stroke_width(2),
            ))
            .map_err(pe)?
            .label("held-out mean (test split)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], SAMPLE_BLUE.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| (x(i), p.best)),
                BEST_ORANGE.stroke_width(2),
            ))
            .map_err(pe)?
            .label("thesis protocol (best training figure)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BEST_ORANGE.stroke_width(2)));
        if let Some(t) = truth {
            let n = points.len().max(2) - 1;
            let dashes = (0..(n * 10)).step_by(2).map(|k| {
                PathElement::new([(k as f64 / 10.0, t), ((k + 1) as f64 / 10.0, t)], DATA_GREY.stroke_width(2))
            });
            chart
                .draw_series(dashes)
                .map_err(pe)?
                .label("truth (expected log-likelihood)")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 7, y)], DATA_GREY.stroke_width(2)));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight, 12)
    })
}

/// A grid of images, `cols` per row: `samples` in the flow's input space (preprocessing
/// inverted and clamped), then, with `real`, one row of real images as in the thesis's
/// figures 10–13; a title above, each row labelled, a scale of pixel positions below.
/// Every image is enlarged by pixel repetition (nearest neighbour), at least 3× and to at
/// least 84 pixels a side, so that a 28×28 digit is readable.
pub fn image_grid(
    samples: &Table,
    info: &crate::data::ImageInfo,
    real: Option<&Table>,
    cols: usize,
    title: &str,
    path: &Path,
) -> Result<()> {
    let (c, h, w) = (info.channels, info.height, info.width);
    let zoom = 84usize.div_ceil(h.max(1)).max(3);
    let (th, tw) = (h * zoom + 2, w * zoom + 2);
    let sample_rows = samples.rows().div_ceil(cols);
    let rows = sample_rows + usize::from(real.is_some());
    let (left, top, bottom) = (110usize, 40usize, 30usize);
    let (gw, gh) = (cols * tw, rows * th);
    let (cw, ch) = ((left + gw + 10).max(420) as u32, (top + gh + bottom) as u32);
    let mut img = RgbImage::from_pixel(cw, ch, Rgb([255, 255, 255]));
    let mut draw = |slot: usize, shade: &dyn Fn(usize) -> f32| {
        let (gy, gx) = (slot / cols, slot % cols);
        for y in 0..h * zoom {
            for x in 0..w * zoom {
                let px = |ch: usize| (shade(ch * h * w + (y / zoom) * w + x / zoom) * 255.0).round() as u8;
                let rgb = if c == 3 { [px(0), px(1), px(2)] } else { [px(0); 3] };
                img.put_pixel((left + gx * tw + 1 + x) as u32, (top + gy * th + 1 + y) as u32, Rgb(rgb));
            }
        }
    };
    for i in 0..samples.rows() {
        let row = samples.row(i);
        draw(i, &|k| info.pre.shade(info.pre.invert(row[k])));
    }
    if let Some(real) = real {
        for i in 0..cols.min(real.rows()) {
            let row = real.row(i);
            draw(sample_rows * cols + i, &|k| info.pre.shade(row[k]));
        }
    }
    // The labels go on top of the composed pixels.
    register_font();
    let mut buf = img.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (cw, ch)).into_drawing_area();
        let text =
            |s: String, x: usize, y: usize, size: u32| Text::new(s, (x as i32, y as i32), (SANS, size).into_font());
        root.draw(&text(title.to_string(), 8, 10, 16)).map_err(pe)?;
        root.draw(&text(format!("samples ({})", samples.rows()), 6, top + sample_rows * th / 2 - 6, 13)).map_err(pe)?;
        if real.is_some() {
            root.draw(&text("real test images".into(), 6, top + sample_rows * th + th / 2 - 6, 13)).map_err(pe)?;
        }
        let range = match info.pre.mode {
            crate::data::images::Mode::None => {
                format!("values {:.3}..{:.3} (the training split's range) black to white", info.pre.lo, info.pre.hi)
            }
            _ => format!("grey levels 0..{}", info.pre.levels.saturating_sub(1)),
        };
        let scale = format!(
            "each image {w}×{h} pixels{}, {range}",
            if zoom > 1 { format!(" (shown ×{zoom})") } else { String::new() },
        );
        root.draw(&text(scale, left, top + gh + 8, 12)).map_err(pe)?;
        root.present().map_err(pe)?;
    }
    let img = RgbImage::from_raw(cw, ch, buf).context("figure buffer")?;
    save_png(&img, path)
}

/// Training curves: the training objective (−loss: log p_T of x and ε per minibatch, nats)
/// and the validation log-likelihood (nats, with its S) against steps, one axis, with the
/// selected model's step marked by a dashed line.
pub fn curves(
    loss: &[(u64, f64)],
    validation: &[(u64, f64)],
    s: &str,
    selected: (&str, u64),
    title: &str,
    path: &Path,
) -> Result<()> {
    let finite = |v: &&(u64, f64)| v.1.is_finite();
    let all: Vec<(u64, f64)> = loss.iter().chain(validation).filter(finite).copied().collect();
    let x_hi = all.iter().map(|p| p.0).max().unwrap_or(1).max(selected.1).max(1) as f64;
    // The y range from the later half of the training curve and every validation, so the
    // first steps' large losses do not flatten the rest.
    let tail = loss.iter().filter(finite).skip(loss.len() / 4).chain(validation.iter().filter(finite));
    let (lo, hi) = tail.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (-1.0, 1.0) };
    let span = (hi - lo).max(1e-3);
    let (lo, hi) = (lo - 0.15 * span, hi + 0.1 * span);
    render(720, 440, path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (SANS, 16))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_hi, lo..hi)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("training step")
            .y_desc("log-likelihood [nats]")
            .label_style((SANS, 12))
            .draw()
            .map_err(pe)?;
        let clip = |v: f64| v.clamp(lo, hi);
        chart
            .draw_series(LineSeries::new(
                loss.iter().filter(finite).map(|&(s, v)| (s as f64, clip(v))),
                DATA_GREY.stroke_width(1),
            ))
            .map_err(pe)?
            .label("training: −loss (log p_T of x and ε, per minibatch)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], DATA_GREY.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                validation.iter().filter(finite).map(|&(s, v)| (s as f64, clip(v))),
                SAMPLE_BLUE.stroke_width(2),
            ))
            .map_err(pe)?
            .label(format!("validation: log p(x), {s}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], SAMPLE_BLUE.stroke_width(2)));
        chart
            .draw_series(
                validation
                    .iter()
                    .filter(finite)
                    .map(|&(s, v)| Circle::new((s as f64, clip(v)), 3, SAMPLE_BLUE.filled())),
            )
            .map_err(pe)?;
        let x = selected.1 as f64;
        let dashes = (0..20).step_by(2).map(|k| {
            let (a, b) = (lo + (hi - lo) * k as f64 / 20.0, lo + (hi - lo) * (k + 1) as f64 / 20.0);
            PathElement::new([(x, a), (x, b)], BEST_ORANGE.stroke_width(2))
        });
        chart
            .draw_series(dashes)
            .map_err(pe)?
            .label(format!("selected: the {} model, step {}", selected.0, selected.1))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 7, y)], BEST_ORANGE.stroke_width(2)));
        legend(&mut chart, SeriesLabelPosition::LowerRight, 12)
    })
}

/// One run's validation curve for `curve_panels`: its name, (step, log-likelihood) points,
/// and the step of the model it selected.
pub struct Curve {
    pub name: String,
    pub points: Vec<(u64, f64)>,
    pub selected: u64,
}

/// Validation log-likelihood against steps, one panel per configuration (`panels`: a title
/// and its runs' curves), the selected step of each run marked with a filled dot.
pub fn curve_panels(panels: &[(String, Vec<Curve>)], title: &str, path: &Path) -> Result<()> {
    let colours = [SAMPLE_BLUE, BEST_ORANGE, RGBColor(40, 150, 60), RGBColor(150, 40, 150), DATA_GREY];
    let n = panels.len().max(1);
    render(360 * n as u32, 400, path, |root| {
        let (top, body) = root.split_vertically(34);
        top.titled(title, (SANS, 16)).map_err(pe)?;
        for (area, (name, curves)) in body.split_evenly((1, n)).iter().zip(panels) {
            let pts = curves.iter().flat_map(|c| c.points.iter()).filter(|p| p.1.is_finite());
            let (x_hi, lo, hi) =
                pts.fold((1u64, f64::INFINITY, f64::NEG_INFINITY), |(x, a, b), p| (x.max(p.0), a.min(p.1), b.max(p.1)));
            let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (-1.0, 1.0) };
            let span = (hi - lo).max(1e-3);
            let mut chart = ChartBuilder::on(area)
                .caption(name, (SANS, 13))
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..x_hi as f64, (lo - 0.1 * span)..(hi + 0.1 * span))
                .map_err(pe)?;
            chart
                .configure_mesh()
                .x_desc("training step")
                .y_desc("validation log-likelihood [nats]")
                .x_labels(4)
                .label_style((SANS, 11))
                .draw()
                .map_err(pe)?;
            for (i, c) in curves.iter().enumerate() {
                let colour = colours[i % colours.len()];
                let line = c.points.iter().filter(|p| p.1.is_finite()).map(|&(s, v)| (s as f64, v));
                chart
                    .draw_series(LineSeries::new(line, colour.stroke_width(2)))
                    .map_err(pe)?
                    .label(c.name.clone())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
                let sel = c.points.iter().find(|p| p.0 == c.selected && p.1.is_finite());
                chart.draw_series(sel.map(|&(s, v)| Circle::new((s as f64, v), 5, colour.filled()))).map_err(pe)?;
            }
            legend(&mut chart, SeriesLabelPosition::LowerRight, 11)?;
        }
        Ok(())
    })
}
