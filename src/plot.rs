//! 2-D pictures as PNG: a scatter of generated samples over the data, and a heat map of
//! log p on a grid. Plain rasterisation with `image`; no plotting stack needed.

use crate::data::Table;
use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use std::path::Path;

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

fn pixel(view: &[f64; 4], size: u32, x: f64, y: f64) -> Option<(u32, u32)> {
    let px = (x - view[0]) / (view[1] - view[0]) * size as f64;
    let py = (1.0 - (y - view[2]) / (view[3] - view[2])) * size as f64;
    (px >= 0.0 && py >= 0.0 && px < size as f64 && py < size as f64).then_some((px as u32, py as u32))
}

fn dot(img: &mut RgbImage, x: u32, y: u32, c: Rgb<u8>) {
    for dy in 0..2 {
        for dx in 0..2 {
            if x + dx < img.width() && y + dy < img.height() {
                img.put_pixel(x + dx, y + dy, c);
            }
        }
    }
}

pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Data in grey, samples in blue, on a white square of `size` pixels (first two dims).
pub fn scatter(data: &Table, samples: &Table, size: u32, path: &Path) -> Result<()> {
    let view = view_of(data);
    let mut img = RgbImage::from_pixel(size, size, Rgb([255, 255, 255]));
    for (t, c) in [(data, Rgb([170, 170, 170])), (samples, Rgb([31, 90, 200]))] {
        for i in 0..t.rows() {
            let r = t.row(i);
            if let Some((x, y)) = pixel(&view, size, r[0] as f64, r[1] as f64) {
                dot(&mut img, x, y, c);
            }
        }
    }
    save_png(&img, path)
}

/// A heat map of `values` (row-major, `res`×`res`, y up) with a perceptual-ish ramp.
pub fn heatmap(values: &[f64], res: usize, path: &Path) -> Result<()> {
    let finite: Vec<f64> = values.iter().cloned().filter(|v| v.is_finite()).collect();
    let hi = finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lo = (hi - 12.0).max(finite.iter().cloned().fold(f64::INFINITY, f64::min));
    let mut img = RgbImage::new(res as u32, res as u32);
    for j in 0..res {
        for i in 0..res {
            let v = values[j * res + i];
            let t = if v.is_finite() { ((v - lo) / (hi - lo).max(1e-9)).clamp(0.0, 1.0) } else { 0.0 };
            // dark blue → teal → yellow
            let c = [(255.0 * t.powf(1.5)) as u8, (40.0 + 200.0 * t) as u8, (90.0 + 80.0 * (1.0 - t) * t * 4.0) as u8];
            img.put_pixel(i as u32, (res - 1 - j) as u32, Rgb(c));
        }
    }
    save_png(&img, path)
}

/// A grid of images, `cols` per row: `samples` in the flow's input space (preprocessing
/// inverted and clamped), then, with `real`, one row of real images as in the thesis's
/// figures 10–13. Small images are enlarged by pixel repetition to at least 28 pixels.
pub fn image_grid(
    samples: &Table,
    info: &crate::data::ImageInfo,
    real: Option<&Table>,
    cols: usize,
    path: &Path,
) -> Result<()> {
    let (c, h, w) = (info.channels, info.height, info.width);
    let zoom = 28usize.div_ceil(h.max(1)).max(1);
    let (th, tw) = (h * zoom + 2, w * zoom + 2);
    let sample_rows = samples.rows().div_ceil(cols);
    let rows = sample_rows + usize::from(real.is_some());
    let mut img = RgbImage::from_pixel((cols * tw) as u32, (rows * th) as u32, Rgb([255, 255, 255]));
    let max = (info.pre.levels - 1) as f32;
    let mut draw = |slot: usize, levels: &dyn Fn(usize) -> f32| {
        let (gy, gx) = (slot / cols, slot % cols);
        for y in 0..h * zoom {
            for x in 0..w * zoom {
                let px = |ch: usize| (levels(ch * h * w + (y / zoom) * w + x / zoom) / max * 255.0).round() as u8;
                let rgb = if c == 3 { [px(0), px(1), px(2)] } else { [px(0); 3] };
                img.put_pixel((gx * tw + 1 + x) as u32, (gy * th + 1 + y) as u32, Rgb(rgb));
            }
        }
    };
    for i in 0..samples.rows() {
        let row = samples.row(i);
        draw(i, &|k| info.pre.invert(row[k]));
    }
    if let Some(real) = real {
        for i in 0..cols.min(real.rows()) {
            let row = real.row(i);
            draw(sample_rows * cols + i, &|k| row[k]);
        }
    }
    save_png(&img, path)
}
