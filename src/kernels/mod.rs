//! One wrapper per WGSL file, same stem: each owns its uniform struct and builds
//! [`Dispatch`]es for its entry points. Twins live in `crate::reference` under the same names.

pub mod actnorm;
pub mod channorm;
pub mod conv;
pub mod conv_coupling;
pub mod coupling;
pub mod fused;
pub mod gemm;
pub mod inv1x1;
pub mod loss;
pub mod marginal;
pub mod optim;
pub mod permute;
pub mod rng;
pub mod wgrad;

use crate::gpu::{Dispatch, Gpu, Kernel};
use std::sync::OnceLock;

/// A kernel built on its first use: a run compiles only the pipelines it dispatches (on a
/// CPU adapter each costs compile time at start-up, and most runs use a handful).
pub struct LazyKernel {
    file: &'static str,
    entry: &'static str,
    kernel: OnceLock<Kernel>,
}

impl LazyKernel {
    fn new(file: &'static str, entry: &'static str) -> Self {
        Self { file, entry, kernel: OnceLock::new() }
    }

    pub fn get(&self, gpu: &Gpu) -> &Kernel {
        self.kernel.get_or_init(|| Kernel::new(gpu, gpu.pipelines().module(gpu, self.file), self.entry))
    }

    /// `Kernel::bind`, building the pipeline first if this is its first use.
    pub fn bind(&self, gpu: &Gpu, uniform: &wgpu::Buffer, storage: &[&wgpu::Buffer], workgroups: [u32; 3]) -> Dispatch {
        self.get(gpu).bind(gpu, uniform, storage, workgroups)
    }
}

/// Every pipeline mflow uses, each built once per device on first use.
pub struct Pipelines {
    /// The shader modules, indexed like `SOURCES`, each built on first use.
    modules: [OnceLock<wgpu::ShaderModule>; SOURCES.len()],
    pub gemm_reg: LazyKernel,
    pub gemm_thin: LazyKernel,
    pub gemm_tiled: LazyKernel,
    pub gemm_tiled_wide: LazyKernel,
    pub gemm_nn4: LazyKernel,
    pub gemm_nn4_narrow: LazyKernel,
    pub gemm_nt4: LazyKernel,
    pub gemm_tn4: LazyKernel,
    pub gemm_nn4_s: LazyKernel,
    pub gemm_nt4_s: LazyKernel,
    pub gemm_tn4_s: LazyKernel,
    pub actnorm_forward: LazyKernel,
    pub actnorm_inverse: LazyKernel,
    pub actnorm_init: LazyKernel,
    pub coupling_forward: LazyKernel,
    pub coupling_inverse: LazyKernel,
    pub fused_coupling_forward: LazyKernel,
    pub fused_coupling_inverse: LazyKernel,
    pub fused_coupling_backward: LazyKernel,
    pub wgrad: LazyKernel,
    pub actnorm_backward: LazyKernel,
    pub coupling_backward: LazyKernel,
    pub permute_gather: LazyKernel,
    pub copy_columns: LazyKernel,
    pub log_prob: LazyKernel,
    pub loss_backward: LazyKernel,
    pub loss_accumulate: LazyKernel,
    pub grad_sumsq: LazyKernel,
    pub grad_norm: LazyKernel,
    pub adam: LazyKernel,
    pub adam4: LazyKernel,
    pub assemble: LazyKernel,
    pub normal_fill: LazyKernel,
    pub marginal_reduce: LazyKernel,
    /// conv.wgsl's generated tiles, indexed like `conv::FWD` and `conv::WGRAD3`/`WGRAD1`.
    pub conv_fwd3: [LazyKernel; 4],
    pub conv_fwd1: [LazyKernel; 4],
    pub conv_wgrad3: [LazyKernel; 3],
    pub conv_wgrad1: [LazyKernel; 3],
    pub channorm_forward: LazyKernel,
    pub channorm_inverse: LazyKernel,
    pub channorm_init: LazyKernel,
    pub channorm_backward: LazyKernel,
    pub conv_coupling_forward: LazyKernel,
    pub conv_coupling_inverse: LazyKernel,
    pub conv_coupling_backward: LazyKernel,
    pub inv1x1_weights: LazyKernel,
    pub inv1x1_apply: LazyKernel,
    pub inv1x1_wgrad: LazyKernel,
    pub inv1x1_lu_grad: LazyKernel,
}

/// Every shader's source, by file name.
pub const SOURCES: [(&str, &str); 14] = [
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
    ("conv.wgsl", include_str!("../../shaders/conv.wgsl")),
    ("channorm.wgsl", include_str!("../../shaders/channorm.wgsl")),
    ("conv_coupling.wgsl", include_str!("../../shaders/conv_coupling.wgsl")),
    ("inv1x1.wgsl", include_str!("../../shaders/inv1x1.wgsl")),
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

impl Default for Pipelines {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipelines {
    /// The module of shader `file` (one of `SOURCES`), parsed and validated on first use.
    fn module(&self, gpu: &Gpu, file: &str) -> &wgpu::ShaderModule {
        // Every LazyKernel names one of SOURCES' files (fixed in this file).
        let i = SOURCES.iter().position(|(n, _)| *n == file).expect("a shader of mflow");
        self.modules[i].get_or_init(|| {
            gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(SOURCES[i].1.into()),
            })
        })
    }

    pub fn new() -> Self {
        Self {
            modules: std::array::from_fn(|_| OnceLock::new()),
            gemm_reg: LazyKernel::new("gemm.wgsl", "gemm_reg"),
            gemm_thin: LazyKernel::new("gemm.wgsl", "gemm_thin"),
            gemm_tiled: LazyKernel::new("gemm.wgsl", "gemm_tiled"),
            gemm_tiled_wide: LazyKernel::new("gemm.wgsl", "gemm_tiled_wide"),
            gemm_nn4: LazyKernel::new("gemm.wgsl", "gemm_nn4"),
            gemm_nn4_narrow: LazyKernel::new("gemm.wgsl", "gemm_nn4_narrow"),
            gemm_nt4: LazyKernel::new("gemm.wgsl", "gemm_nt4"),
            gemm_tn4: LazyKernel::new("gemm.wgsl", "gemm_tn4"),
            gemm_nn4_s: LazyKernel::new("gemm.wgsl", "gemm_nn4_s"),
            gemm_nt4_s: LazyKernel::new("gemm.wgsl", "gemm_nt4_s"),
            gemm_tn4_s: LazyKernel::new("gemm.wgsl", "gemm_tn4_s"),
            actnorm_forward: LazyKernel::new("actnorm.wgsl", "actnorm_forward"),
            actnorm_inverse: LazyKernel::new("actnorm.wgsl", "actnorm_inverse"),
            actnorm_init: LazyKernel::new("actnorm.wgsl", "actnorm_init"),
            coupling_forward: LazyKernel::new("coupling.wgsl", "coupling_forward"),
            coupling_inverse: LazyKernel::new("coupling.wgsl", "coupling_inverse"),
            fused_coupling_forward: LazyKernel::new("fused.wgsl", "fused_coupling_forward"),
            fused_coupling_inverse: LazyKernel::new("fused.wgsl", "fused_coupling_inverse"),
            fused_coupling_backward: LazyKernel::new("fused.wgsl", "fused_coupling_backward"),
            wgrad: LazyKernel::new("wgrad.wgsl", "wgrad"),
            permute_gather: LazyKernel::new("permute.wgsl", "permute_gather"),
            copy_columns: LazyKernel::new("permute.wgsl", "copy_columns"),
            log_prob: LazyKernel::new("loss.wgsl", "log_prob"),
            loss_backward: LazyKernel::new("loss.wgsl", "loss_backward"),
            loss_accumulate: LazyKernel::new("loss.wgsl", "loss_accumulate"),
            actnorm_backward: LazyKernel::new("actnorm.wgsl", "actnorm_backward"),
            coupling_backward: LazyKernel::new("coupling.wgsl", "coupling_backward"),
            grad_sumsq: LazyKernel::new("optim.wgsl", "grad_sumsq"),
            grad_norm: LazyKernel::new("optim.wgsl", "grad_norm"),
            adam: LazyKernel::new("optim.wgsl", "adam"),
            adam4: LazyKernel::new("optim.wgsl", "adam4"),
            assemble: LazyKernel::new("rng.wgsl", "assemble"),
            normal_fill: LazyKernel::new("rng.wgsl", "normal_fill"),
            marginal_reduce: LazyKernel::new("marginal.wgsl", "marginal_reduce"),
            conv_fwd3: ["conv_fwd3_c2", "conv_fwd3_c4", "conv_fwd3_c8", "conv_fwd3_c16"]
                .map(|e| LazyKernel::new("conv.wgsl", e)),
            conv_fwd1: ["conv_fwd1_c2", "conv_fwd1_c4", "conv_fwd1_c8", "conv_fwd1_c16"]
                .map(|e| LazyKernel::new("conv.wgsl", e)),
            conv_wgrad3: ["conv_wgrad3_o8c1", "conv_wgrad3_o4c2", "conv_wgrad3_o2c4"]
                .map(|e| LazyKernel::new("conv.wgsl", e)),
            conv_wgrad1: ["conv_wgrad1_o8c8", "conv_wgrad1_o4c16", "conv_wgrad1_o2c32"]
                .map(|e| LazyKernel::new("conv.wgsl", e)),
            channorm_forward: LazyKernel::new("channorm.wgsl", "channorm_forward"),
            channorm_inverse: LazyKernel::new("channorm.wgsl", "channorm_inverse"),
            channorm_init: LazyKernel::new("channorm.wgsl", "channorm_init"),
            channorm_backward: LazyKernel::new("channorm.wgsl", "channorm_backward"),
            conv_coupling_forward: LazyKernel::new("conv_coupling.wgsl", "conv_coupling_forward"),
            conv_coupling_inverse: LazyKernel::new("conv_coupling.wgsl", "conv_coupling_inverse"),
            conv_coupling_backward: LazyKernel::new("conv_coupling.wgsl", "conv_coupling_backward"),
            inv1x1_weights: LazyKernel::new("inv1x1.wgsl", "inv1x1_weights"),
            inv1x1_apply: LazyKernel::new("inv1x1.wgsl", "inv1x1_apply"),
            inv1x1_wgrad: LazyKernel::new("inv1x1.wgsl", "inv1x1_wgrad"),
            inv1x1_lu_grad: LazyKernel::new("inv1x1.wgsl", "inv1x1_lu_grad"),
        }
    }
}
