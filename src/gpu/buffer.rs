//! Typed storage and uniform buffers, and the one blocking readback helper that tests and
//! occasional host reads use. Training reads back through its own staging ring instead.

use super::Gpu;
use wgpu::util::DeviceExt;

const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// A zeroed storage buffer of `len` elements of 4 bytes (at least one, as wgpu wants).
pub fn storage(gpu: &Gpu, label: &str, len: usize) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (len.max(1) * 4) as u64,
        usage: STORAGE,
        mapped_at_creation: false,
    })
}

/// A storage buffer holding `data`.
pub fn storage_init<T: bytemuck::Pod>(gpu: &Gpu, label: &str, data: &[T]) -> wgpu::Buffer {
    if data.is_empty() {
        return storage(gpu, label, 1);
    }
    gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(data),
        usage: STORAGE,
    })
}

/// A small storage buffer holding one `#[repr(C)]` struct that the host rewrites between
/// submits (per-step state such as Adam's t and the noise counter).
pub fn uniform_storage<T: bytemuck::Pod>(gpu: &Gpu, label: &str, value: &T) -> wgpu::Buffer {
    storage_init(gpu, label, std::slice::from_ref(value))
}

/// A uniform buffer holding one `#[repr(C)]` struct (its WGSL twin has the same layout).
pub fn uniform<T: bytemuck::Pod>(gpu: &Gpu, label: &str, value: &T) -> wgpu::Buffer {
    gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::bytes_of(value),
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}

/// Copies `len` elements from `offset` (in elements) of `buffer` to the host, blocking; for
/// tests and tools, where a failed device may end the program. Runs use `try_read_back`.
pub fn read_back<T: bytemuck::Pod>(gpu: &Gpu, buffer: &wgpu::Buffer, offset: usize, len: usize) -> Vec<T> {
    try_read_back(gpu, buffer, offset, len).unwrap_or_else(|e| panic!("read_back: {e:#}"))
}

/// Copies `len` elements from `offset` (in elements) of `buffer` to the host, blocking.
/// Reading needs a MAP_READ staging buffer: storage buffers cannot be mapped.
pub fn try_read_back<T: bytemuck::Pod>(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    offset: usize,
    len: usize,
) -> anyhow::Result<Vec<T>> {
    let elem = std::mem::size_of::<T>();
    let bytes = (len * elem) as u64;
    if bytes == 0 {
        return Ok(Vec::new());
    }
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read_back staging"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read_back") });
    enc.copy_buffer_to_buffer(buffer, (offset * elem) as u64, &staging, 0, bytes);
    gpu.queue.submit([enc.finish()]);
    map_blocking(gpu, &staging)?;
    let out = {
        let view = staging.slice(..).get_mapped_range().map_err(|e| anyhow::anyhow!("reading back: {e}"))?;
        bytemuck::cast_slice::<u8, T>(&view).to_vec()
    };
    staging.unmap();
    Ok(out)
}

/// Maps a MAP_READ buffer and waits for it.
pub fn map_blocking(gpu: &Gpu, buffer: &wgpu::Buffer) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    gpu.wait()?;
    match rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(super::context::DeviceError(format!("mapping a readback buffer failed: {e}")).into()),
        Err(_) => Err(super::context::DeviceError("the readback was dropped".into()).into()),
    }
}
