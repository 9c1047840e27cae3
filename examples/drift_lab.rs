//! Drift lab: is a GPU training run's divergence from the f64 twin chaos or a bug? Trains
//! MODEL.md's heavy-tailed Gaussian (D = 2, ψ, B = 0, its width and schedule) on the GPU
//! and, every EVERY steps, recomputes that step's loss and gradient in f64 at the GPU's own
//! parameters. Two runs from the same start part within a few hundred steps (Adam's first
//! steps are lr·sign(g), so gradients that round to the other sign move a parameter by a
//! full lr); a faithful GPU still agrees with the twin at every step it is handed.
//! usage: cargo run --release --example drift_lab -- [STEPS PSI EVERY]   (default: 8192 3 25,
//! the cell's whole schedule: about 10 minutes on lavapipe)

use mflow::data::synthetic::gauss;
use mflow::data::Split;
use mflow::gpu::{read_back, AdapterChoice, Gpu};
use mflow::model::{Flow, FlowConfig};
use mflow::reference::flow::loss_and_grad;
use mflow::train::{OptimConfig, Trainer};
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("STEPS PSI EVERY: integers")).collect();
    let (steps, psi, every) = if a.len() == 3 { (a[0], a[1] as u32, a[2].max(2)) } else { (8192, 3, 25) };
    let (d, n, train_size) = (2, 256, 2048);
    let gpu = Gpu::new(&AdapterChoice::default()).unwrap();
    let kernels = mflow::gpu_flow::Kernels::defaults(&gpu);
    let data = gauss(d, psi, train_size, 0, Split::Train).data;
    let flow = Flow::new(FlowConfig { d, b: 0, blocks: 4, depth: 2, hidden: 128, seed: 0, conv: None }).unwrap();
    let opt = OptimConfig { batch: n, lr: 1e-3, clip: None, noise_seed: 0, ema: None };
    let mut t = Trainer::new(&gpu, &flow, &opt, &kernels);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut order: Vec<usize> = (0..train_size).collect();
    let (mut worst_loss, mut worst_grad) = (0.0f64, 0.0f64);
    println!("D = {d}, psi = {psi}, batch {n}, H = 128, lr 1e-3: the twin at the GPU's parameters every {every} steps");
    for step in 1..=steps {
        let b = (step - 1) % (train_size / n);
        if b == 0 {
            order.shuffle(&mut rng);
        }
        let x: Vec<f32> = order[b * n..][..n].iter().flat_map(|&i| data[i * d..][..d].to_vec()).collect();
        // The first step initialises the ActNorms from its minibatch: start checking after it.
        let check = step > 1 && step % every == 0;
        let params: Vec<f64> = if check {
            t.drain(&gpu).unwrap();
            t.download_params(&gpu, 0).unwrap().iter().map(|&p| p as f64).collect()
        } else {
            Vec::new()
        };
        // Logged every step, so that a logged loss is this step's alone, not an interval's mean.
        let mut logged = t.step(&gpu, &x, true);
        if !check {
            continue;
        }
        logged.extend(t.drain(&gpu).unwrap());
        let gpu_loss = logged.iter().find(|l| l.step == step as u64).expect("this step's loss").loss;
        let y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let (loss, grad, _) = loss_and_grad(&flow, &params, &y, n);
        let gpu_grad: Vec<f32> = read_back(&gpu, &t.gflow.grads, 0, grad.len());
        let diff: f64 = gpu_grad.iter().zip(&grad).map(|(&g, w)| (g as f64 - w).powi(2)).sum();
        let norm: f64 = grad.iter().map(|w| w * w).sum();
        let (rel_loss, rel_grad) = ((gpu_loss - loss).abs() / loss.abs(), (diff / norm).sqrt());
        worst_loss = worst_loss.max(rel_loss);
        worst_grad = worst_grad.max(rel_grad);
        if step % (every * 10) == 0 || step == steps {
            println!(
                "step {step:6}: loss GPU {gpu_loss:.6}, f64 {loss:.6} (relative {rel_loss:.1e}); gradient relative L2 {rel_grad:.1e}"
            );
        }
    }
    println!("worst over the run: loss {worst_loss:.1e}, gradient {worst_grad:.1e} (relative)");
}
