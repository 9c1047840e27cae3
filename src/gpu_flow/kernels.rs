//! Every kernel choice a flow's programs depend on, as one value: the GEMM family per shape
//! class, the fused couplings' row layout, and fused couplings or GEMMs per training and
//! evaluation shape class. The caller makes it once (`tune::kernels`, which measures on this
//! adapter, or `Kernels::defaults`) and hands it to `Trainer`, `Evaluator`, `GpuFlow` and
//! sampling, which only read it: the code that is timed never consults the tuner.

use super::Mode;
use crate::gpu::Gpu;
use crate::kernels::fused::FusedCoupling;
use crate::kernels::gemm::{GemmChoice, Variant};
use crate::model::FlowConfig;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Kernels {
    /// The GEMM family per shape class, and the fused couplings' rows per invocation.
    pub gemm: GemmChoice,
    /// Fused couplings (true) or GEMMs per training class (`training_class`).
    pub training: BTreeMap<String, bool>,
    /// Fused couplings (true) or GEMMs per evaluation class (`inference_class`).
    pub inference: BTreeMap<String, bool>,
    /// What a class not listed takes.
    pub fused_default: bool,
}

impl Kernels {
    /// The built-in choices (`--no-tune`): `GemmChoice::default_for`; fused couplings on GPUs,
    /// where a step is dispatch-bound, GEMMs on CPU adapters (measured on lavapipe: its vec4
    /// GEMMs run evaluation 3x faster than the fused kernel).
    pub fn defaults(gpu: &Gpu) -> Self {
        Self::fixed(GemmChoice::default_for(gpu), !gpu.is_cpu())
    }

    /// One choice everywhere: `gemm` for every product, fused couplings or not (tests and
    /// benchmarks that time one path).
    pub fn fixed(gemm: impl Into<GemmChoice>, fused: bool) -> Self {
        Self { gemm: gemm.into(), training: BTreeMap::new(), inference: BTreeMap::new(), fused_default: fused }
    }

    /// The training program for flows shaped like `config` on batches of `batch` rows; GEMMs
    /// where the fused kernel cannot hold the flow.
    pub fn training_mode(&self, config: &FlowConfig, batch: usize) -> Mode {
        let fused = self.training.get(&training_class(config, batch)).copied().unwrap_or(self.fused_default);
        if fused && FusedCoupling::fits_config(config) {
            Mode::Training
        } else {
            Mode::TrainingUnfused
        }
    }

    /// The evaluation and sampling program for flows shaped like `config`.
    pub fn inference_mode(&self, config: &FlowConfig) -> Mode {
        let fused = self.inference.get(&inference_class(config)).copied().unwrap_or(self.fused_default);
        if fused && FusedCoupling::fits_config(config) {
            Mode::Inference
        } else {
            Mode::InferenceUnfused
        }
    }

    /// The distinct GEMM families chosen, in class order.
    pub fn gemm_families(&self) -> Vec<Variant> {
        let mut v: Vec<Variant> = Vec::new();
        for c in self.gemm.by_class {
            if !v.contains(&c) {
                v.push(c);
            }
        }
        v
    }
}

/// The shape class of an evaluation choice: what the kernels' cost depends on.
pub fn inference_class(c: &FlowConfig) -> String {
    format!("eval q{} depth{} h{}", c.q(), c.depth, c.hidden)
}

/// The shape class of a training choice: the flow's shape and the batch (rows per tile
/// decide how full the fused kernel's workgroups are).
pub fn training_class(c: &FlowConfig, batch: usize) -> String {
    format!("train q{} depth{} h{} batch{}", c.q(), c.depth, c.hidden, batch)
}
