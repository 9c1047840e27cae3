//! The only code that writes wgpu descriptors: device, buffers, kernels and dispatches.

pub mod buffer;
pub mod context;
pub mod kernel;

pub use buffer::{read_back, storage, storage_init, try_read_back, uniform, uniform_storage};
pub use context::{list_adapters, AdapterChoice, DeviceError, Gpu};
pub use kernel::{grid, submit, Dispatch, Kernel};
