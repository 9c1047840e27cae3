//! optim.wgsl (grad norm, clipping, Adam) against src/reference/optim.rs.

mod common;
use common::*;
use mflow::gpu::{read_back, storage, storage_init, submit};
use mflow::kernels::optim::{norm_parts, Optimizer, StepState};
use mflow::reference::optim as r;

fn run(count: usize, clip: Option<f64>, steps: u32, grad_scale: f64) {
    run_with(count, clip, steps, grad_scale, None);
}

/// Adam (and, with `decay`, the parameters' moving average it keeps in the same pass) for
/// `steps` steps against the f64 twin.
fn run_with(count: usize, clip: Option<f64>, steps: u32, grad_scale: f64, decay: Option<f64>) {
    let gpu = gpu();
    let p0 = uniform(1, count, 1.0);
    let (pb, mb, vb) = (storage_init(gpu, "p", &p0), storage(gpu, "m", count), storage(gpu, "v", count));
    let (gb, partials, norm, step) = (
        storage(gpu, "g", count),
        storage(gpu, "partials", norm_parts(count)),
        storage(gpu, "norm", 1),
        storage(gpu, "step", 8),
    );
    let eb = storage(gpu, "ema", count);
    let opt = Optimizer::new(gpu, count, 1, clip, &step, &partials, &norm, &gb, &pb, &mb, &vb, decay.map(|d| (&eb, d)));
    let (mut p, mut m, mut v) = (to_f64(&p0), vec![0.0; count], vec![0.0; count]);
    let mut avg = vec![0.0; count];
    for t in 1..=steps {
        let g = uniform(100 + t as u64, count, grad_scale);
        gpu.queue.write_buffer(&gb, 0, bytemuck::cast_slice(&g));
        let ema = decay.map_or(0.0, |d| mflow::kernels::optim::ema_decay(d, t) as f32);
        gpu.queue.write_buffer(&step, 0, bytemuck::bytes_of(&StepState { ema, ..StepState::new(t, 0, 1e-2) }));
        submit(gpu, "adam test", &opt.dispatches());
        let g64 = to_f64(&g);
        let want_norm = r::grad_norm(&g64);
        let got_norm = read_back::<f32>(gpu, &norm, 0, 1)[0] as f64;
        assert!((got_norm - want_norm).abs() < 1e-5 * want_norm, "norm {got_norm} vs {want_norm}");
        r::adam(&mut p, &g64, &mut m, &mut v, t, 1e-2, clip);
        if let Some(d) = decay {
            r::ema(&mut avg, &p, &g64, d, t);
        }
    }
    if decay.is_some() {
        assert_close(&format!("the average after {steps} steps"), &read_back(gpu, &eb, 0, count), &avg, 1e-5, 1e-4);
    } else {
        assert!(read_back::<f32>(gpu, &eb, 0, count).iter().all(|&x| x == 0.0), "no average without --ema");
    }
    assert_close(
        &format!("params after {steps} Adam steps, clip {clip:?}"),
        &read_back(gpu, &pb, 0, count),
        &p,
        1e-5,
        1e-4,
    );
    assert_close("m", &read_back(gpu, &mb, 0, count), &m, 1e-6, 1e-4);
    assert_close("v", &read_back(gpu, &vb, 0, count), &v, 1e-7, 1e-4);
}

#[test]
fn adam_matches_reference() {
    // 1,100,003 > 4096 workgroups × 256: each thread strides over several parameters.
    // Multiples of 4 take adam4 (four parameters per thread).
    for count in [1, 3, 4, 255, 256, 257, 70_001, 70_004, 1_100_003] {
        run(count, None, 3, 1.0);
    }
}

#[test]
fn the_parameter_average_matches_its_twin() {
    // t = 1 starts the average at the parameters; later steps blend, at (1 + t)/(10 + t)
    // while that is below the decay. Both kernels (adam4 for counts ≡ 0 mod 4, adam
    // otherwise), odd sizes, with clipping engaged, and past step 80, where 0.9 takes over.
    for count in [1, 3, 4, 257, 70_004] {
        run_with(count, None, 4, 1.0, Some(0.9));
    }
    run_with(1000, Some(0.6), 3, 1.0, Some(0.99));
    run_with(257, None, 120, 1.0, Some(0.9));
}

#[test]
fn the_average_forgets_early_steps_at_the_warm_up_rule() {
    use mflow::kernels::optim::ema_decay;
    assert_eq!(ema_decay(0.999, 1), 2.0 / 11.0);
    assert_eq!(ema_decay(0.999, 90), 91.0 / 100.0);
    assert_eq!(ema_decay(0.9, 90), 0.9);
    assert_eq!(ema_decay(0.999, 100_000), 0.999);
}

#[test]
fn clipping_matches_reference() {
    // Norms far above and below η = 0.6: clipping engages and stays out.
    run(1000, Some(0.6), 3, 1.0);
    run(1000, Some(0.6), 2, 1e-3);
}
