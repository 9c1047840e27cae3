//! GEMM lab (llm.c's dev/cuda style): times an experimental WGSL GEMM file on this adapter.
//! usage: cargo run --release --example gemm_lab -- FILE ENTRY TILE_M TILE_N [M K N]
//! The shader must use gemm.wgsl's bindings and uniform; C = A·B row-major, no epilogue.

use mflow::gpu::{read_back, storage_init, uniform, AdapterChoice, Gpu, Kernel};
use mflow::kernels::gemm::GemmUniform;
use mflow::measure::time_dispatches;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let src = std::fs::read_to_string(&args[1]).unwrap();
    let entry: &'static str = Box::leak(args[2].clone().into_boxed_str());
    let (tm, tn): (usize, usize) = (args[3].parse().unwrap(), args[4].parse().unwrap());
    let layout = std::env::var("LAYOUT").unwrap_or_else(|_| "nn".into());
    let dims: Vec<usize> = args[5..].iter().map(|s| s.parse().unwrap()).collect();
    let (m, k, n) = if dims.len() == 3 { (dims[0], dims[1], dims[2]) } else { (256, 1024, 784) };
    let gpu = Gpu::new(&AdapterChoice::default()).unwrap();
    let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let kern = Kernel::new(&gpu, &module, entry);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 17) as f32 / 17.0 - 0.5).collect();
    let (ab, bb, cb) =
        (storage_init(&gpu, "a", &a), storage_init(&gpu, "b", &b), storage_init(&gpu, "c", &vec![0f32; m * n]));
    // A is stored (m, k) for nn/nt and (k, m) for tn; B is (k, n) for nn/tn and (n, k) for nt.
    let (a_rs, a_cs) = if layout == "tn" { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if layout == "nt" { (1, k) } else { (n, 1) };
    let u = GemmUniform {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        a_rs: a_rs as u32,
        a_cs: a_cs as u32,
        b_rs: b_rs as u32,
        b_cs: b_cs as u32,
        c_rs: n as u32,
        ..Default::default()
    };
    let ub = uniform(&gpu, "u", &u);
    let d = kern.bind(&gpu, &ub, &[&ab, &bb, &ab, &cb], [n.div_ceil(tn) as u32, m.div_ceil(tm) as u32, 1]);
    let secs = time_dispatches(&gpu, &[&d], 3, 5);
    let c = read_back::<f32>(&gpu, &cb, 0, m * n);
    let mut maxerr = 0f64;
    for &(i, j) in &[(0, 0), (m - 1, n - 1), (m / 2, n / 3), (m / 3, n - 1)] {
        let want: f64 = (0..k).map(|kk| a[i * a_rs + kk * a_cs] as f64 * b[kk * b_rs + j * b_cs] as f64).sum();
        maxerr = maxerr.max((c[i * n + j] as f64 - want).abs());
    }
    println!("{entry} {m}x{k}x{n}: {:.2} GFLOP/s, max err {maxerr:.2e}", 2.0 * (m * n * k) as f64 / secs / 1e9);
}
