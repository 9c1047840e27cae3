//! Training on the GPU: one whole step against the f64 reference (same Philox ε, same
//! data-dependent init), a short run that lowers the loss, and non-finite losses detected.

mod common;
use common::*;
use mflow::gpu::read_back;
use mflow::gpu_flow::Mode;
use mflow::kernels::rng::stream;
use mflow::model::{Flow, FlowConfig};
use mflow::reference::{flow as rf, optim, rng};
use mflow::train::{OptimConfig, Trainer};

#[test]
fn first_step_matches_reference() {
    let gpu = gpu();
    let (n, seed, lr) = (6, 99, 1e-3);
    let mut flow = Flow::new(FlowConfig { d: 2, b: 1, blocks: 2, depth: 2, hidden: 8, seed: 1, conv: None }).unwrap();
    flow.randomize(5, 0.6);
    flow.actnorm_initialized = false; // the step must initialise them from its minibatch
    let x = uniform(2, n * 2, 2.0);
    let mut trainer =
        Trainer::new(gpu, &flow, &OptimConfig { batch: n, lr, clip: None, noise_seed: seed, ema: None }, kernels());
    let logged = trainer.step(gpu, &x, true);
    let logged = if logged.is_empty() { trainer.drain(gpu).unwrap() } else { logged };
    let gpu_params = trainer.gflow.download_params(gpu);

    // The reference: the same ε (Philox, step 1), init, loss, gradient, one Adam step.
    let q = flow.config.q();
    let mut y = vec![0.0; n * q];
    rng::assemble(seed, 1, stream::TRAIN_EPS, &to_f64(&x), &mut y, n, 2, q, 1);
    assert_close("assembled [x, ε]", &read_back(gpu, &trainer.gflow.acts[0], 0, n * q), &y, 2e-5, 1e-5);
    let mut p = flow.params_f64();
    rf::init_actnorms(&flow, &mut p, &y, n);
    let (loss, grads, _) = rf::loss_and_grad(&flow, &p, &y, n);
    assert_eq!(logged.len(), 1);
    assert!((logged[0].loss - loss).abs() < 1e-4 * (1.0 + loss.abs()), "loss {} vs {loss}", logged[0].loss);
    let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
    let before = p.clone();
    optim::adam(&mut p, &grads, &mut m, &mut v, 1, lr, None);
    // Adam's first step is lr·sign(g): compare where the sign is beyond f32 doubt.
    let mut checked = 0;
    for i in 0..p.len() {
        if grads[i].abs() > 1e-4 {
            let (got, want) = (gpu_params[i] as f64, p[i]);
            assert!((got - want).abs() < 2e-6 * (1.0 + want.abs()), "param {i}: {got} vs {want} (was {})", before[i]);
            checked += 1;
        }
    }
    assert!(checked > p.len() / 3, "only {checked} of {} parameters had clear gradients", p.len());
}

#[test]
fn short_run_lowers_the_loss() {
    let gpu = gpu();
    let n = 64;
    let flow = Flow::new(FlowConfig { d: 2, b: 0, blocks: 2, depth: 1, hidden: 16, seed: 3, conv: None }).unwrap();
    let mut trainer = Trainer::new(
        gpu,
        &flow,
        &OptimConfig { batch: n, lr: 5e-3, clip: Some(10.0), noise_seed: 1, ema: None },
        kernels(),
    );
    // A correlated Gaussian scaled far from the standard one: the flow must learn it.
    let base = uniform(8, 4096 * 2, 1.0);
    let data: Vec<f32> = base.chunks(2).flat_map(|r| [3.0 * r[0] + 1.0, 0.5 * (r[0] + r[1]) - 2.0]).collect();
    let mut losses = Vec::new();
    for s in 0..300 {
        let start = (s * n) % 4096;
        let x = &data[start * 2..(start + n) * 2];
        losses.extend(trainer.step(gpu, x, s % 50 == 49).into_iter().map(|l| l.loss));
    }
    losses.extend(trainer.drain(gpu).unwrap().into_iter().map(|l| l.loss));
    assert_eq!(losses.len(), 6);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[5] < losses[0] - 0.1, "loss did not fall: {losses:?}");
}

#[test]
fn non_finite_loss_is_reported() {
    let gpu = gpu();
    let mut flow = Flow::new(FlowConfig { d: 2, b: 1, blocks: 1, depth: 1, hidden: 4, seed: 3, conv: None }).unwrap();
    // Initialised already: a NaN minibatch must not reach the parameters through Adam.
    flow.actnorm_initialized = true;
    let mut trainer =
        Trainer::new(gpu, &flow, &OptimConfig { batch: 4, lr: 1e-3, clip: None, noise_seed: 1, ema: None }, kernels());
    let x = [0.0, 1.0, 2.0, f32::NAN, 1.0, 1.0, 0.5, 0.5];
    let mut logged = trainer.step(gpu, &x, true);
    logged.extend(trainer.drain(gpu).unwrap());
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].nonfinite, 1);
    // The NaN gradient norm makes Adam skip the update: parameters stay finite.
    assert!(trainer.gflow.download_params(gpu).iter().all(|p| p.is_finite()));
}

/// Trains `flows` together and each alone for `steps` steps on the same minibatches and
/// seeds; returns (together, alone) parameters and losses per model.
fn together_and_alone(flows: &[Flow], n: usize, steps: usize, clip: Option<f64>) {
    together_and_alone_in(flows, n, steps, clip, Mode::Training);
    together_and_alone_in(flows, n, steps, clip, Mode::TrainingUnfused);
}

/// Fused couplings (`Mode::Training`) or GEMMs, the same for both sides.
fn together_and_alone_in(flows: &[Flow], n: usize, steps: usize, clip: Option<f64>, mode: Mode) {
    let gpu = gpu();
    let dmax = flows.iter().map(|f| f.config.d).max().unwrap();
    let seeds: Vec<u64> = (0..flows.len() as u64).map(|z| 40 + z).collect();
    let opt = OptimConfig { batch: n, lr: 3e-2, clip, noise_seed: 0, ema: None };
    // Each model's own data, then padded to dmax-wide rows for the batched step.
    let data: Vec<Vec<Vec<f32>>> = flows
        .iter()
        .enumerate()
        .map(|(z, f)| (0..steps).map(|s| uniform((100 * z + s) as u64, n * f.config.d, 2.0)).collect())
        .collect();
    let refs: Vec<&Flow> = flows.iter().collect();
    let mut together = Trainer::with_mode(gpu, &refs, &seeds, &opt, mode, kernels());
    let mut logged_together = Vec::new();
    let padded = |s: usize| -> Vec<f32> {
        let mut x = vec![0f32; flows.len() * n * dmax];
        for (z, f) in flows.iter().enumerate() {
            let d = f.config.d;
            for (r, row) in data[z][s].chunks(d).enumerate() {
                x[(z * n + r) * dmax..][..d].copy_from_slice(row);
            }
        }
        x
    };
    for s in 0..steps {
        logged_together.extend(together.step(gpu, &padded(s), true));
    }
    logged_together.extend(together.drain(gpu).unwrap());
    for (z, f) in flows.iter().enumerate() {
        let mut alone = Trainer::with_mode(
            gpu,
            &[f],
            &[seeds[z]],
            &OptimConfig { noise_seed: seeds[z], ..opt.clone() },
            mode,
            kernels(),
        );
        let mut logged = Vec::new();
        for x in &data[z] {
            logged.extend(alone.step(gpu, x, true));
        }
        logged.extend(alone.drain(gpu).unwrap());
        let (p1, m1, v1) = alone.download(gpu).unwrap();
        let (p2, m2, v2) = together.download_model(gpu, z).unwrap();
        let what = format!("{mode:?}: model {z} (D={}, B={}) n={n}", f.config.d, f.config.b);
        assert_close(&format!("{what} params"), &p2, &to_f64(&p1), 1e-6, 1e-5);
        assert_close(&format!("{what} adam.m"), &m2, &to_f64(&m1), 1e-9, 1e-5);
        assert_close(&format!("{what} adam.v"), &v2, &to_f64(&v1), 1e-12, 1e-5);
        let mine: Vec<f64> = logged_together.iter().filter(|l| l.model == z).map(|l| l.loss).collect();
        let alone: Vec<f64> = logged.iter().map(|l| l.loss).collect();
        assert_eq!(mine.len(), steps, "{what}: one loss per step");
        assert_close(
            &format!("{what} losses"),
            &mine.iter().map(|&l| l as f32).collect::<Vec<_>>(),
            &alone,
            1e-5,
            1e-5,
        );
        assert!(p1 != f.params, "{what}: training moved the parameters");
    }
}

#[test]
fn models_trained_together_equal_models_trained_alone() {
    // One Q = 4 shape: different D (2 and 3), seeds (init, shuffles, noise) and data.
    let cfg = |d, b, seed| FlowConfig { d, b, blocks: 2, depth: 2, hidden: 8, seed, conv: None };
    let flows: Vec<Flow> =
        [cfg(2, 2, 1), cfg(3, 1, 2), cfg(2, 2, 3)].into_iter().map(|c| Flow::new(c).unwrap()).collect();
    // n = 16 takes the vec4 GEMMs, n = 6 the general ones; a small clip makes each model's
    // own gradient norm matter.
    together_and_alone(&flows, 16, 4, Some(0.5));
    together_and_alone(&flows, 6, 3, None);
    // B = 0 and a single model through the batched path.
    let flows: Vec<Flow> = [cfg(2, 0, 5), cfg(2, 0, 6)].into_iter().map(|c| Flow::new(c).unwrap()).collect();
    together_and_alone(&flows, 8, 3, Some(1.0));
    together_and_alone(&flows[..1], 5, 2, None);
}

#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    // A device of its own: destroying it must not disturb the other tests' shared one.
    let gpu = mflow::gpu::Gpu::new(&mflow::gpu::AdapterChoice::default()).unwrap();
    let flow = Flow::new(FlowConfig { d: 2, b: 1, blocks: 1, depth: 1, hidden: 4, seed: 3, conv: None }).unwrap();
    let k = mflow::gpu_flow::Kernels::defaults(&gpu);
    let mut trainer =
        Trainer::new(&gpu, &flow, &OptimConfig { batch: 4, lr: 1e-3, clip: None, noise_seed: 1, ema: None }, &k);
    trainer.step(&gpu, &[0.5; 8], true);
    trainer.drain(&gpu).unwrap();
    gpu.device.destroy();
    trainer.step(&gpu, &[0.5; 8], true);
    let lost = [trainer.drain(&gpu).err(), trainer.download(&gpu).err(), gpu.check().err()];
    assert!(lost.iter().any(|e| e.is_some()), "a destroyed device went unnoticed");
    for e in lost.into_iter().flatten() {
        assert!(e.downcast_ref::<mflow::gpu::DeviceError>().is_some() || format!("{e:#}").contains("GPU"), "{e:#}");
    }
}

/// A group of runs as a sweep trains them: gauss D=2 and D=3 at Q = 4, two seeds.
fn group_runs(epochs: usize) -> Vec<mflow::run::RunConfig> {
    use mflow::data::DataSpec;
    [(2, 2, 0), (3, 1, 1), (2, 2, 2)]
        .into_iter()
        .map(|(d, b, seed)| {
            let mut c = mflow::run::RunConfig::defaults(DataSpec::Gauss { d, psi: 3 }, b, seed);
            mflow::run::Overrides {
                epochs: Some(epochs),
                batch: Some(16),
                hidden: Some(8),
                blocks: Some(2),
                train_size: Some(64),
                test_size: Some(20),
                samples: Some(2),
                log_every: Some(3),
                checkpoint_every: Some(1),
                ..Default::default()
            }
            .apply(&mut c);
            c
        })
        .collect()
}

fn train_group(dirs: &[std::path::PathBuf], epochs: usize) -> Vec<mflow::run::Summary> {
    use mflow::run::{folder::RunFolder, Member, Start};
    let members = group_runs(epochs)
        .iter()
        .zip(dirs)
        .map(|(c, d)| Member::prepare(gpu(), c, RunFolder::lock(d).unwrap(), Start::Auto, false).unwrap())
        .collect();
    mflow::run::train_members(gpu(), members, false, Default::default(), None)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_group_stopped_and_resumed_equals_one_trained_straight_through() {
    let base = common::scratch().join(format!("mflow-train-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let dirs = |name: &str| -> Vec<std::path::PathBuf> { (0..3).map(|z| base.join(format!("{name}{z}"))).collect() };
    let whole = train_group(&dirs("whole"), 4);
    // Two epochs, then the same group continued to four from its checkpoints.
    let first = train_group(&dirs("split"), 2);
    assert!(first.iter().all(|s| s.steps == 8 && s.trained_with == 3));
    let resumed = train_group(&dirs("split"), 4);
    for (z, (a, b)) in whole.iter().zip(&resumed).enumerate() {
        assert_eq!((a.steps, b.steps), (16, 16));
        let load = |d: &std::path::Path| mflow::checkpoint::load(&d.join("model.safetensors"), None).unwrap();
        let ((fa, sa), (fb, sb)) = (load(&dirs("whole")[z]), load(&dirs("split")[z]));
        assert_eq!(fa.params, fb.params, "model {z}: parameters");
        assert_eq!(sa.unwrap().v, sb.unwrap().v, "model {z}: Adam's second moments");
        assert_eq!(a.final_train_loss, b.final_train_loss, "model {z}: final loss");
        let log = std::fs::read_to_string(dirs("split")[z].join("metrics.jsonl")).unwrap();
        assert!(log.contains("\"event\":\"resumed\""), "{log}");
    }
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn conv_models_trained_together_equal_conv_models_trained_alone() {
    use mflow::model::{ChannelPermute, ConvArch};
    // A sweep's conv runs of one shape (4×4, two scales, an ε channel, flat ε): different
    // seeds (initialisation, head shuffles, noise) and data, in the same dispatches.
    let arch = ConvArch {
        channels: 1,
        height: 4,
        width: 4,
        aux_channels: 1,
        scales: 2,
        hidden: 3,
        depth: 2,
        permute: ChannelPermute::Reverse,
    };
    let cfg = |seed| FlowConfig { d: 16, b: 1, blocks: 2, depth: 2, hidden: 6, seed, conv: Some(arch.clone()) };
    let flows: Vec<Flow> = [cfg(1), cfg(2)].into_iter().map(|c| Flow::new(c).unwrap()).collect();
    together_and_alone_in(&flows, 5, 3, Some(0.5), Mode::TrainingUnfused);
    // With 1×1 convolutions, whose fixed permutations and signs differ by seed.
    let arch = ConvArch { permute: ChannelPermute::Conv1x1, ..arch };
    let cfg = |seed| FlowConfig { d: 16, b: 1, blocks: 2, depth: 2, hidden: 6, seed, conv: Some(arch.clone()) };
    let flows: Vec<Flow> = [cfg(3), cfg(4)].into_iter().map(|c| Flow::new(c).unwrap()).collect();
    together_and_alone_in(&flows, 5, 3, None, Mode::TrainingUnfused);
}
