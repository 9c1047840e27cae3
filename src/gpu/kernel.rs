//! A kernel is one WGSL entry point built into a pipeline once; a dispatch is that kernel
//! with its bind group and workgroup count, built once at setup and recorded many times.
//!
//! Binding convention for every mflow shader: binding 0 is the kernel's uniform struct,
//! bindings 1.. are storage buffers in the order the WGSL declares them. Layouts are
//! derived from the WGSL (`layout: None`), so the binding table lives in the shader alone.

use super::Gpu;

#[derive(Clone)]
pub struct Kernel {
    pub name: &'static str,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl Kernel {
    pub fn new(gpu: &Gpu, module: &wgpu::ShaderModule, entry: &'static str) -> Self {
        let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        Self { name: entry, pipeline, layout }
    }

    /// Binds `uniform` at 0 and `storage[i]` at i + 1, to run on `workgroups`.
    pub fn bind(&self, gpu: &Gpu, uniform: &wgpu::Buffer, storage: &[&wgpu::Buffer], workgroups: [u32; 3]) -> Dispatch {
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for (i, b) in storage.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        });
        Dispatch { kernel: self.name, pipeline: self.pipeline.clone(), bind_group, workgroups }
    }
}

/// One recorded-many-times unit of GPU work.
#[derive(Clone)]
pub struct Dispatch {
    pub kernel: &'static str,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

impl Dispatch {
    /// The same work for `models` models at once: the grid's z is the model index, which
    /// every mflow kernel uses to offset its bindings (see each shader's header).
    pub fn models(mut self, models: usize) -> Self {
        self.workgroups[2] = u32::try_from(models).ok().filter(|&m| m <= 65535).expect("at most 65535 models");
        self
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        if self.workgroups.contains(&0) {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Workgroup counts for `threads` invocations in workgroups of `wg`, folded into y past the
/// 65535-per-dimension limit. Shaders rebuild the index as gid.x + gid.y · nwg.x · wg.
pub fn grid(threads: usize, wg: u32) -> [u32; 3] {
    let groups = (threads as u64).div_ceil(wg as u64);
    if groups <= 65535 {
        return [groups as u32, 1, 1];
    }
    let y = groups.div_ceil(65535);
    let x = groups.div_ceil(y);
    [x as u32, y as u32, 1]
}

/// Records `dispatches` into one compute pass of `encoder`.
pub fn record_all<'a>(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    dispatches: impl IntoIterator<Item = &'a Dispatch>,
) {
    let mut pass =
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes: None });
    for d in dispatches {
        d.record(&mut pass);
    }
}

/// Records `dispatches` into one encoder and submits it (tests, one-off work).
pub fn submit(gpu: &Gpu, label: &str, dispatches: &[&Dispatch]) {
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    record_all(&mut enc, label, dispatches.iter().copied());
    gpu.queue.submit([enc.finish()]);
}
