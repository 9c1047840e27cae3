//! mflow: marginalizing flows (Real NVP over [x, ε]) trained and evaluated on the GPU
//! through WebGPU compute shaders. See README.md and ../shared/spec/MODEL.md.

pub mod bench;
pub mod gpu;
pub mod gpu_flow;
pub mod kernels;
pub mod model;
pub mod reference;
