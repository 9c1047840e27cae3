//! `mflow demo`: builds a half-moons MF (D = 2, B = 2), initialises its ActNorms from a batch,
//! runs the flow forward and inverse on the GPU and checks it against the f64 reference.

use crate::data::{synthetic, Split};
use crate::gpu::Gpu;
use crate::gpu_flow::GpuFlow;
use crate::model::{Flow, FlowConfig};
use crate::reference::flow as rf;
use anyhow::Result;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// The largest demo batch: its f64 reference runs on the CPU.
pub const MAX_BATCH: usize = 1 << 16;

pub fn run(gpu: &Gpu, n: usize, seed: u64) -> Result<()> {
    if !(1..=MAX_BATCH).contains(&n) {
        anyhow::bail!(
            "--batch {n}: the demo takes 1..={MAX_BATCH} points (it checks each against the f64 reference on the CPU)"
        );
    }
    let config = FlowConfig { d: 2, b: 2, blocks: 4, depth: 2, hidden: 128, seed, conv: None };
    let mut flow = Flow::new(config.clone())?;
    // A fresh model's couplings are the identity; perturb them so the demo shows a real flow.
    flow.randomize(seed + 1, 0.5);
    let q = config.q();
    let x = synthetic::moons(n, 0.1, seed, Split::Train);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut y = Vec::with_capacity(n * q);
    for i in 0..n {
        y.extend_from_slice(&x.row(i));
        y.extend((0..config.b).map(|_| {
            let e: f64 = StandardNormal.sample(&mut rng);
            e as f32
        }));
    }
    let g = GpuFlow::new(gpu, &flow, n);
    let out = g.forward(gpu, &y);
    let back = g.inverse(gpu, &out.u);
    let round_trip = y.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let reference = rf::log_prob(&flow, &flow.params_f64(), &y.iter().map(|&v| v as f64).collect::<Vec<_>>(), n);
    let max_rel =
        out.logp.iter().zip(&reference).map(|(g, r)| (*g as f64 - r).abs() / r.abs().max(1.0)).fold(0.0, f64::max);
    let mean_lp = out.logp.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    println!("adapter: {}", gpu.describe());
    println!(
        "model: D={} B={} Q={} L={} depth={} H={} ({} parameters)",
        config.d,
        config.b,
        q,
        config.blocks,
        config.depth,
        config.hidden,
        flow.num_params()
    );
    println!("batch: {n} half-moons points, each with one ε ~ N(0, I_{})", config.b);
    println!("mean log p_T(x, ε): {mean_lp:.4} nats (random, untrained parameters)");
    println!("GPU vs f64 reference, max relative error of log p_T: {max_rel:.2e}");
    println!("inverse(forward(y)) max abs error: {round_trip:.2e}");
    Ok(())
}
