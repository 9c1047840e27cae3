//! mflow: marginalizing flows (Real NVP over [x, ε]) trained and evaluated on the GPU
//! through WebGPU compute shaders. See README.md and ../shared/spec/MODEL.md.

// Kernel wrappers and their twins take shapes, offsets and buffers positionally, in the
// shader's order (llm.c's convention); bundling them into structs would hide that order.
#![allow(clippy::too_many_arguments)]

pub mod bench;
pub mod checkpoint;
pub mod commands;
pub mod data;
pub mod demo;
pub mod eval;
pub mod gpu;
pub mod gpu_flow;
pub mod interrupt;
pub mod kernels;
pub mod measure;
pub mod model;
pub mod output;
pub mod plot;
pub mod reference;
pub mod report;
pub mod run;
pub mod sample;
pub mod sweep;
pub mod train;
pub mod tune;
