//! One wrapper per WGSL file, same stem: each owns its uniform struct and builds
//! [`Dispatch`]es for its entry points. Twins live in `crate::reference` under the same names.

pub mod actnorm;
pub mod coupling;
pub mod gemm;
pub mod loss;
pub mod permute;

use crate::gpu::{Gpu, Kernel};

/// Every pipeline mflow uses, built once per device.
pub struct Kernels {
    pub gemm_reg: Kernel,
    pub gemm_tiled: Kernel,
    pub gemm_nn4: Kernel,
    pub gemm_nt4: Kernel,
    pub gemm_tn4: Kernel,
    pub actnorm_forward: Kernel,
    pub actnorm_inverse: Kernel,
    pub actnorm_init: Kernel,
    pub coupling_forward: Kernel,
    pub coupling_inverse: Kernel,
    pub permute_gather: Kernel,
    pub log_prob: Kernel,
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
        let permute = module(gpu, "permute.wgsl", include_str!("../../shaders/permute.wgsl"));
        let loss = module(gpu, "loss.wgsl", include_str!("../../shaders/loss.wgsl"));
        Self {
            gemm_reg: Kernel::new(gpu, &gemm, "gemm_reg"),
            gemm_tiled: Kernel::new(gpu, &gemm, "gemm_tiled"),
            gemm_nn4: Kernel::new(gpu, &gemm, "gemm_nn4"),
            gemm_nt4: Kernel::new(gpu, &gemm, "gemm_nt4"),
            gemm_tn4: Kernel::new(gpu, &gemm, "gemm_tn4"),
            actnorm_forward: Kernel::new(gpu, &actnorm, "actnorm_forward"),
            actnorm_inverse: Kernel::new(gpu, &actnorm, "actnorm_inverse"),
            actnorm_init: Kernel::new(gpu, &actnorm, "actnorm_init"),
            coupling_forward: Kernel::new(gpu, &coupling, "coupling_forward"),
            coupling_inverse: Kernel::new(gpu, &coupling, "coupling_inverse"),
            permute_gather: Kernel::new(gpu, &permute, "permute_gather"),
            log_prob: Kernel::new(gpu, &loss, "log_prob"),
        }
    }
}
