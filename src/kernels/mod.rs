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
    pub gemm_nn4: Kernel,
    pub gemm_nt4: Kernel,
    pub gemm_tn4: Kernel,
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
    pub assemble: Kernel,
    pub normal_fill: Kernel,
    pub marginal_reduce: Kernel,
}

fn module(gpu: &Gpu, name: &str, src: &str) -> wgpu::ShaderModule {
    gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    })
}

impl Kernels {
    pub fn new(gpu: &Gpu) -> Self {
        let gemm = module(gpu, "gemm.wgsl", include_str!("../../shaders/gemm.wgsl"));
        let actnorm = module(gpu, "actnorm.wgsl", include_str!("../../shaders/actnorm.wgsl"));
        let coupling = module(gpu, "coupling.wgsl", include_str!("../../shaders/coupling.wgsl"));
        let fused = module(gpu, "fused.wgsl", include_str!("../../shaders/fused.wgsl"));
        let wgrad = module(gpu, "wgrad.wgsl", include_str!("../../shaders/wgrad.wgsl"));
        let permute = module(gpu, "permute.wgsl", include_str!("../../shaders/permute.wgsl"));
        let loss = module(gpu, "loss.wgsl", include_str!("../../shaders/loss.wgsl"));
        let optim = module(gpu, "optim.wgsl", include_str!("../../shaders/optim.wgsl"));
        let rng = module(gpu, "rng.wgsl", include_str!("../../shaders/rng.wgsl"));
        let marginal = module(gpu, "marginal.wgsl", include_str!("../../shaders/marginal.wgsl"));
        Self {
            gemm_reg: Kernel::new(gpu, &gemm, "gemm_reg"),
            gemm_thin: Kernel::new(gpu, &gemm, "gemm_thin"),
            gemm_tiled: Kernel::new(gpu, &gemm, "gemm_tiled"),
            gemm_nn4: Kernel::new(gpu, &gemm, "gemm_nn4"),
            gemm_nt4: Kernel::new(gpu, &gemm, "gemm_nt4"),
            gemm_tn4: Kernel::new(gpu, &gemm, "gemm_tn4"),
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
            assemble: Kernel::new(gpu, &rng, "assemble"),
            normal_fill: Kernel::new(gpu, &rng, "normal_fill"),
            marginal_reduce: Kernel::new(gpu, &marginal, "marginal_reduce"),
        }
    }
}
