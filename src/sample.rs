//! Sampling: u ~ N(0, T² I_Q) drawn on the GPU, y = f⁻¹(u), keep the first D dimensions.

use crate::data::Table;
use crate::gpu::kernel::record_all;
use crate::gpu::{try_read_back, uniform_storage, Gpu};
use crate::gpu_flow::{Footprint, GpuFlow, Kernels, Mode};
use crate::kernels::optim::StepState;
use crate::kernels::rng;
use crate::model::Flow;
use anyhow::{bail, Result};

/// The most samples one call can draw from `flow` on this device (one pass).
pub fn max_samples(gpu: &Gpu, flow: &Flow) -> usize {
    let fits = |n: usize| Footprint::of(&flow.config, n, Mode::Inference, 1).is_some_and(|f| f.fits(gpu));
    crate::gpu_flow::largest_fitting(fits, crate::kernels::gemm::MAX_ROWS)
}

pub fn sample(gpu: &Gpu, flow: &Flow, n: usize, temperature: f32, seed: u64, kernels: &Kernels) -> Result<Table> {
    let (d, q) = (flow.config.d, flow.config.q());
    if n == 0 {
        bail!("--n 0: draw at least one sample");
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        bail!("--temperature {temperature}: must be a positive finite number");
    }
    let most = max_samples(gpu, flow);
    if n > most {
        bail!("--n {n}: at most {most} samples of this model fit one pass on this adapter");
    }
    let g = GpuFlow::build(gpu, flow, n, kernels.inference_mode(&flow.config), kernels.gemm);
    let step = uniform_storage(gpu, "sample.step", &StepState::new(1, seed, 0.0));
    let fill = rng::normal_fill(gpu, n * q, rng::stream::SAMPLE, temperature, &step, g.u());
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("sample") });
    record_all(&mut enc, "sample", std::iter::once(&fill).chain(g.inverse_dispatches()));
    gpu.queue.submit([enc.finish()]);
    let y: Vec<f32> = try_read_back(gpu, &g.acts[0], 0, n * q)?;
    let data = y.chunks_exact(q).flat_map(|r| r[..d].to_vec()).collect();
    Ok(Table::new(d, data))
}

/// log p(x) on a res×res grid over `view` ([x0, x1, y0, y1]) for 2-D data (marginal estimate
/// with S samples when B > 0), row-major with y up. With `standardize`, the view is in the
/// data's units and so is the density.
pub fn density_grid(
    gpu: &Gpu,
    flow: &Flow,
    view: [f64; 4],
    res: usize,
    s: usize,
    standardize: Option<&crate::data::tabular::Standardize>,
    kernels: &Kernels,
) -> anyhow::Result<Vec<f64>> {
    let mut pts = Vec::with_capacity(res * res * 2);
    for j in 0..res {
        for i in 0..res {
            pts.push((view[0] + (i as f64 + 0.5) / res as f64 * (view[1] - view[0])) as f32);
            pts.push((view[2] + (j as f64 + 0.5) / res as f64 * (view[3] - view[2])) as f32);
        }
    }
    let mut t = Table::new(2, pts);
    let jac = standardize.map_or(0.0, |st| {
        st.apply(&mut t);
        st.log_jacobian()
    });
    let ev = crate::eval::Evaluator::new(gpu, flow, s, kernels)?;
    ev.upload_params(gpu, &flow.params);
    Ok(ev.log_likelihood(gpu, &t, 0xD0)?.into_iter().map(|l| l + jac).collect())
}

/// Samples in the data's own units: standardised tabular data mapped back, image samples as
/// pixel levels; synthetic data is already in its units.
pub fn to_data_units(samples: &Table, data: &crate::data::Dataset) -> Table {
    let mut t = samples.clone();
    if let Some(s) = &data.standardize {
        s.invert(&mut t);
    }
    if let Some(info) = &data.image {
        for v in &mut t.data {
            *v = info.pre.invert(*v);
        }
    }
    t
}

/// Writes raw samples as .npy (N×D float64) or .csv (header x1..xD), atomically.
pub fn write_raw(path: &std::path::Path, t: &Table) -> Result<()> {
    use crate::data::tabular::{csv_bytes, npy_bytes, Format};
    let bytes = match Format::of(path, "--out")? {
        Format::Npy => npy_bytes(t),
        Format::Csv => csv_bytes(t).into_bytes(),
    };
    crate::checkpoint::write_atomic(path, &bytes)
}
