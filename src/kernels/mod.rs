//! One wrapper per WGSL file, same stem: each owns its uniform struct and builds
//! [`Dispatch`]es for its entry points. Twins live in `crate::reference` under the same names.

pub mod actnorm;
pub mod coupling;
pub mod fused;
pub mod gemm;
pub mod loss;
pub mod marginal;
pub mod optim;
pub mod permute;
pub mod rng;
pub mod wgrad;

use crate::gpu::{Gpu, Kernel};

/// Every pipeline mflow uses, built once per device.
pub struct Kernels {
    pub gemm_reg: Kernel,
    pub gemm_thin: Kernel,
    pub gemm_tiled: Kernel,
    pub gemm_tiled_wide: Kernel,
    pub gemm_nn4: Kernel,
    pub gemm_nn4_narrow: Kernel,
    pub gemm_nt4: Kernel,
    pub gemm_tn4: Kernel,
    pub gemm_nn4_s: Kernel,
    pub gemm_nt4_s: Kernel,
    pub gemm_tn4_s: Kernel,
    pub actnorm_forward: Kernel,
    pub actnorm_inverse: Kernel,
    pub actnorm_init: Kernel,
    pub coupling_forward: Kernel,
    pub coupling_inverse: Kernel,
    pub fused_coupling_forward: Kernel,
    pub fused_coupling_inverse: Kernel,
    pub fused_coupling_backward: Kernel,
    pub wgrad: Kernel,
    pub actnorm_backward: Kernel,
    pub coupling_backward: Kernel,
    pub permute_gather: Kernel,
    pub log_prob: Kernel,
    pub loss_backward: Kernel,
    pub loss_accumulate: Kernel,
    pub grad_sumsq: Kernel,
    pub grad_norm: Kernel,
    pub adam: Kernel,
    pub adam4: Kernel,
    pub assemble: Kernel,
    pub normal_fill: Kernel,
    pub marginal_reduce: Kernel,
}

/// Every shader's source, by file name.
pub const SOURCES: [(&str, &str); 10] = [
    ("gemm.wgsl", include_str!("../../shaders/gemm.wgsl")),
    ("actnorm.wgsl", include_str!("../../shaders/actnorm.wgsl")),
    ("coupling.wgsl", include_str!("../../shaders/coupling.wgsl")),
    ("fused.wgsl", include_str!("../../shaders/fused.wgsl")),
    ("wgrad.wgsl", include_str!("../../shaders/wgrad.wgsl")),
    ("permute.wgsl", include_str!("../../shaders/permute.wgsl")),
    ("loss.wgsl", include_str!("../../shaders/loss.wgsl")),
    ("optim.wgsl", include_str!("../../shaders/optim.wgsl")),
    ("rng.wgsl", include_str!("../../shaders/rng.wgsl")),
    ("marginal.wgsl", include_str!("../../shaders/marginal.wgsl")),
];

/// A fingerprint of every shader (FNV-1a over their sources): the tuner's cache keys carry
/// it, so timings taken with other kernels are never reused.
pub fn fingerprint() -> u64 {
    SOURCES
        .iter()
        .flat_map(|(_, src)| src.bytes())
        .fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// The fingerprint as the tuner's cache keys end with it.
pub fn fingerprint_tag() -> String {
    format!(" | kernels {:016x}", fingerprint())
}

fn source(name: &str) -> &'static str {
    SOURCES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s).expect("a shader of mflow")
}

fn module(gpu: &Gpu, name: &str, src: &str) -> wgpu::ShaderModule {
    gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    })
}

impl Kernels {
    pub fn new(gpu: &Gpu) -> Self {
        let gemm = module(gpu, "gemm.wgsl", source("gemm.wgsl"));
        let actnorm = module(gpu, "actnorm.wgsl", source("actnorm.wgsl"));
        let coupling = module(gpu, "coupling.wgsl", source("coupling.wgsl"));
        let fused = module(gpu, "fused.wgsl", source("fused.wgsl"));
        let wgrad = module(gpu, "wgrad.wgsl", source("wgrad.wgsl"));
        let permute = module(gpu, "permute.wgsl", source("permute.wgsl"));
        let loss = module(gpu, "loss.wgsl", source("loss.wgsl"));
        let optim = module(gpu, "optim.wgsl", source("optim.wgsl"));
        let rng = module(gpu, "rng.wgsl", source("rng.wgsl"));
        let marginal = module(gpu, "marginal.wgsl", source("marginal.wgsl"));
        Self {
            gemm_reg: Kernel::new(gpu, &gemm, "gemm_reg"),
            gemm_thin: Kernel::new(gpu, &gemm, "gemm_thin"),
            gemm_tiled: Kernel::new(gpu, &gemm, "gemm_tiled"),
            gemm_tiled_wide: Kernel::new(gpu, &gemm, "gemm_tiled_wide"),
            gemm_nn4: Kernel::new(gpu, &gemm, "gemm_nn4"),
            gemm_nn4_narrow: Kernel::new(gpu, &gemm, "gemm_nn4_narrow"),
            gemm_nt4: Kernel::new(gpu, &gemm, "gemm_nt4"),
            gemm_tn4: Kernel::new(gpu, &gemm, "gemm_tn4"),
            gemm_nn4_s: Kernel::new(gpu, &gemm, "gemm_nn4_s"),
            gemm_nt4_s: Kernel::new(gpu, &gemm, "gemm_nt4_s"),
            gemm_tn4_s: Kernel::new(gpu, &gemm, "gemm_tn4_s"),
            actnorm_forward: Kernel::new(gpu, &actnorm, "actnorm_forward"),
            actnorm_inverse: Kernel::new(gpu, &actnorm, "actnorm_inverse"),
            actnorm_init: Kernel::new(gpu, &actnorm, "actnorm_init"),
            coupling_forward: Kernel::new(gpu, &coupling, "coupling_forward"),
            coupling_inverse: Kernel::new(gpu, &coupling, "coupling_inverse"),
            fused_coupling_forward: Kernel::new(gpu, &fused, "fused_coupling_forward"),
            fused_coupling_inverse: Kernel::new(gpu, &fused, "fused_coupling_inverse"),
            fused_coupling_backward: Kernel::new(gpu, &fused, "fused_coupling_backward"),
            wgrad: Kernel::new(gpu, &wgrad, "wgrad"),
            permute_gather: Kernel::new(gpu, &permute, "permute_gather"),
            log_prob: Kernel::new(gpu, &loss, "log_prob"),
            loss_backward: Kernel::new(gpu, &loss, "loss_backward"),
            loss_accumulate: Kernel::new(gpu, &loss, "loss_accumulate"),
            actnorm_backward: Kernel::new(gpu, &actnorm, "actnorm_backward"),
            coupling_backward: Kernel::new(gpu, &coupling, "coupling_backward"),
            grad_sumsq: Kernel::new(gpu, &optim, "grad_sumsq"),
            grad_norm: Kernel::new(gpu, &optim, "grad_norm"),
            adam: Kernel::new(gpu, &optim, "adam"),
            adam4: Kernel::new(gpu, &optim, "adam4"),
            assemble: Kernel::new(gpu, &rng, "assemble"),
            normal_fill: Kernel::new(gpu, &rng, "normal_fill"),
            marginal_reduce: Kernel::new(gpu, &marginal, "marginal_reduce"),
        }
    }
}
