//! Step lab: times every dispatch of one training step on its own (median of 5 trials of 20
//! repetitions) and prints them all, slowest first, to see where a step's time goes here.
//! usage: cargo run --release --example step_lab -- [D B H BATCH]

use mflow::gpu::{AdapterChoice, Gpu};
use mflow::measure::time_dispatches;
use mflow::model::{Flow, FlowConfig};
use mflow::train::{OptimConfig, Trainer};

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (d, b, h, batch) = if a.len() == 4 { (a[0], a[1], a[2], a[3]) } else { (2, 0, 128, 256) };
    let gpu = Gpu::new(&AdapterChoice::default()).unwrap();
    let mut flow = Flow::new(FlowConfig { d, b, blocks: 4, depth: 2, hidden: h, seed: 0, conv: None }).unwrap();
    flow.actnorm_initialized = true;
    let kernels = mflow::gpu_flow::Kernels::defaults(&gpu);
    let mut t =
        Trainer::new(&gpu, &flow, &OptimConfig { batch, lr: 1e-4, clip: None, noise_seed: 1, ema: None }, &kernels);
    t.step(&gpu, &vec![0.5; batch * d], false);
    t.drain(&gpu).unwrap();
    let prog = t.program();
    let mut rows: Vec<(f64, String)> = prog
        .iter()
        .enumerate()
        .map(|(i, disp)| {
            (time_dispatches(&gpu, &[disp], 20, 5), format!("#{i:<3} {:<18} {:?}", disp.kernel, disp.workgroups))
        })
        .collect();
    let total: f64 = rows.iter().map(|r| r.0).sum();
    let whole = time_dispatches(&gpu, &prog, 5, 3);
    rows.sort_by(|x, y| y.0.total_cmp(&x.0));
    println!("{} dispatches: sum of singles {:.1} ms, whole step {:.1} ms", prog.len(), total * 1e3, whole * 1e3);
    for (s, what) in &rows {
        println!("{:>8.3} ms  {what}", s * 1e3);
    }
}
