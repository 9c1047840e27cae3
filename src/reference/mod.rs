//! The f64 twins of every kernel, loop for loop like the shaders (same stems), plus the
//! whole flow. Straightforward on purpose: this is the oracle every GPU test compares to.

// Index loops on purpose: each twin reads line for line against its shader.
#![allow(clippy::needless_range_loop)]

pub mod actnorm;
pub mod channorm;
pub mod conv;
pub mod conv_coupling;
pub mod coupling;
pub mod flow;
pub mod fused;
pub mod gemm;
pub mod inv1x1;
pub mod loss;
pub mod marginal;
pub mod optim;
pub mod permute;
pub mod reduce;
pub mod rng;
pub mod wgrad;

#[cfg(test)]
mod conv_tests;

#[cfg(test)]
pub(crate) mod jacobian_tests;

#[cfg(test)]
mod backward_tests;
