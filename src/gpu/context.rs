//! The headless device: adapter choice, limits, and the clear errors a user sees when
//! there is no usable GPU. The only module that talks to `wgpu::Instance`.

use anyhow::{bail, Context as _, Result};

/// Everything a kernel needs to be built and run: device, queue and what we know of the adapter.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The limits actually granted (what chunk sizes are derived from).
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Every pipeline, compiled on first use and kept for the device's life. (The one import
    /// that climbs from gpu/: the device owns its pipelines, the kernels' own table names them.)
    pipelines: std::sync::OnceLock<crate::kernels::Pipelines>,
    /// The first error wgpu reported outside a call that returns one (validation, out of
    /// memory, a lost device): recorded instead of wgpu's default panic, raised by `check`.
    error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// The device failed (lost, out of memory, or an operation it refused). Whatever was
/// computed since the last check is not trustworthy; the last checkpoint is.
#[derive(Debug)]
pub struct DeviceError(pub String);

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the GPU device failed: {}", self.0)
    }
}

impl std::error::Error for DeviceError {}

/// How to choose among the adapters the instance sees.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    /// Case-insensitive substring of the adapter's name (`--adapter` / `MFLOW_ADAPTER`).
    pub name: Option<String>,
}

impl AdapterChoice {
    /// `--adapter` wins over `MFLOW_ADAPTER`.
    pub fn from_cli(name: Option<String>) -> Self {
        let name = name.or_else(|| std::env::var("MFLOW_ADAPTER").ok().filter(|s| !s.is_empty()));
        Self { name }
    }
}

const NO_ADAPTER_HELP: &str = "install a Vulkan, Metal or DX12 driver for your GPU; on a machine \
without a GPU install Mesa's software Vulkan driver (Debian/Ubuntu: `apt-get install \
mesa-vulkan-drivers`, or run tools/install-lavapipe.sh)";

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    // wgpu reads WGPU_BACKEND only through `with_env`.
    desc.backends = wgpu::Backends::all().with_env();
    desc.flags = wgpu::InstanceFlags::empty().with_env();
    wgpu::Instance::new(desc)
}

/// Every adapter the instance can see, with their info, limits and features.
pub fn list_adapters() -> Vec<wgpu::Adapter> {
    let inst = instance();
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all().with_env()))
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    // GL compute is a last resort: fewer guarantees, slower dispatch.
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// The limits mflow's kernels need: WebGPU's defaults, with the buffer sizes raised to what
/// the adapter offers (up to 1 GiB) so that large evaluation chunks can use them.
pub fn required_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    let base = wgpu::Limits::default();
    let cap = 1u64 << 30;
    wgpu::Limits {
        max_buffer_size: adapter.max_buffer_size.clamp(base.max_buffer_size, cap),
        max_storage_buffer_binding_size: adapter
            .max_storage_buffer_binding_size
            .clamp(base.max_storage_buffer_binding_size, cap),
        ..base
    }
}

/// Which of the named limits the adapter falls short of, as readable text.
fn shortfalls(have: &wgpu::Limits, need: &wgpu::Limits) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, h: u64, n: u64| {
        if h < n {
            out.push(format!("{name}: adapter has {h}, mflow needs {n}"));
        }
    };
    check(
        "max_storage_buffers_per_shader_stage",
        have.max_storage_buffers_per_shader_stage as u64,
        need.max_storage_buffers_per_shader_stage as u64,
    );
    check(
        "max_compute_invocations_per_workgroup",
        have.max_compute_invocations_per_workgroup as u64,
        need.max_compute_invocations_per_workgroup as u64,
    );
    check(
        "max_compute_workgroup_storage_size",
        have.max_compute_workgroup_storage_size as u64,
        need.max_compute_workgroup_storage_size as u64,
    );
    check(
        "max_storage_buffer_binding_size",
        have.max_storage_buffer_binding_size,
        need.max_storage_buffer_binding_size,
    );
    check(
        "max_compute_workgroups_per_dimension",
        have.max_compute_workgroups_per_dimension as u64,
        need.max_compute_workgroups_per_dimension as u64,
    );
    out
}

impl Gpu {
    /// Opens the adapter `choice` names, or the best one: discrete, integrated, virtual, CPU.
    pub fn new(choice: &AdapterChoice) -> Result<Self> {
        let mut adapters = list_adapters();
        if adapters.is_empty() {
            bail!(
                "no GPU adapter found (WGPU_BACKEND={}); {NO_ADAPTER_HELP}",
                std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "unset".into())
            );
        }
        adapters.retain(|a| a.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS));
        if let Some(name) = &choice.name {
            let want = name.to_lowercase();
            let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
            if adapters.is_empty() {
                bail!("no adapter's name contains {name:?}; adapters with compute: {names:?} (see `mflow info`)");
            }
        }
        adapters.sort_by_key(|a| {
            let i = a.get_info();
            (type_rank(i.device_type), backend_rank(i.backend))
        });
        let Some(adapter) = adapters.into_iter().next() else {
            bail!("no adapter supports compute shaders; {NO_ADAPTER_HELP}");
        };
        let info = adapter.get_info();
        let have = adapter.limits();
        let need = required_limits(&have);
        let short = shortfalls(&have, &need);
        if !short.is_empty() {
            bail!("adapter {:?} ({:?}) lacks limits mflow needs: {}", info.name, info.backend, short.join("; "));
        }
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("mflow"),
            required_features: features,
            required_limits: need.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .with_context(|| format!("requesting a device from adapter {:?}", info.name))?;
        let error: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
        let slot = error.clone();
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
            let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
            s.get_or_insert_with(|| e.to_string());
        }));
        let slot = error.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
                s.get_or_insert_with(|| format!("device lost ({reason:?}): {msg}"));
            }
        });
        Ok(Self { device, queue, info, limits: need, features, pipelines: Default::default(), error })
    }

    /// One line naming the adapter, for logs and summaries.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?}, {})", self.info.name, self.info.backend, self.info.device_type, self.info.driver_info)
    }

    /// Advice when this adapter is a software one much slower than Mesa's lavapipe would be
    /// (llvmpipe through GL, or another CPU Vulkan driver).
    pub fn slow_adapter_hint(&self) -> Option<String> {
        let lavapipe = self.info.name.contains("llvmpipe") && self.info.backend == wgpu::Backend::Vulkan;
        let software = self.is_cpu() || self.info.name.contains("llvmpipe") || self.info.name.contains("SwiftShader");
        (software && !lavapipe).then(|| {
            format!(
                "note: {} is a software adapter several times slower than Mesa's lavapipe (software Vulkan); \
                 install it with `bash tools/install-lavapipe.sh` (Debian/Ubuntu: mesa-vulkan-drivers)",
                self.describe()
            )
        })
    }

    /// Whether this adapter is a CPU rasteriser (lavapipe, WARP, SwiftShader): kernels pick
    /// variants without workgroup memory there.
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The compiled pipelines of every kernel family.
    pub fn pipelines(&self) -> &crate::kernels::Pipelines {
        self.pipelines.get_or_init(crate::kernels::Pipelines::new)
    }

    /// The memory mflow lets itself use on this device, where it can be known: on a CPU
    /// adapter buffers live in host memory, so 3/4 of what the host has available. A GPU's
    /// own memory is not reported by WebGPU; there only the binding limits are checked.
    pub fn memory_budget(&self) -> Option<u64> {
        if !self.is_cpu() {
            return None;
        }
        host_memory_available().map(|b| b / 4 * 3)
    }

    /// Blocks until all submitted work is done. A lost device is an error, not a panic:
    /// the caller keeps its last good checkpoint.
    pub fn wait(&self) -> Result<()> {
        if let Err(e) = self.device.poll(wgpu::PollType::wait_indefinitely()) {
            self.record(format!("waiting for the GPU: {e}"));
        }
        self.check()
    }

    /// Blocks until submission `index` is done (later ones may still run).
    pub fn wait_for(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        let poll = wgpu::PollType::Wait { submission_index: Some(index), timeout: None };
        if let Err(e) = self.device.poll(poll) {
            self.record(format!("waiting for the GPU: {e}"));
        }
        self.check()
    }

    fn record(&self, msg: String) {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(msg);
    }

    /// `Err(DeviceError)` once wgpu has reported an error or a lost device.
    pub fn check(&self) -> Result<()> {
        match self.error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(msg) => Err(DeviceError(msg).into()),
            None => Ok(()),
        }
    }
}

/// Bytes of host memory available (Linux's MemAvailable), where the system says.
pub fn host_memory_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The text of `mflow info`: one paragraph per adapter.
pub fn describe_adapters() -> String {
    use std::fmt::Write;
    let adapters = list_adapters();
    if adapters.is_empty() {
        return format!("no adapters found; {NO_ADAPTER_HELP}\n");
    }
    let mut s = String::new();
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let l = a.limits();
        let f = a.features();
        let compute = a.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
        let _ = writeln!(s, "[{i}] {}", info.name);
        let _ = writeln!(
            s,
            "    backend {:?}, type {:?}, vendor {:#06x}, device {:#06x}",
            info.backend, info.device_type, info.vendor, info.device
        );
        let _ = writeln!(s, "    driver {} {}", info.driver, info.driver_info);
        let _ = writeln!(s, "    compute shaders: {}", if compute { "yes" } else { "no" });
        let _ = writeln!(
            s,
            "    limits: storage buffers/stage {}, invocations/workgroup {}, workgroup memory {} B, storage binding {} MiB, buffer {} MiB, workgroups/dim {}",
            l.max_storage_buffers_per_shader_stage,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size,
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroups_per_dimension
        );
        let yn = |x: bool| if x { "yes" } else { "no" };
        let _ = writeln!(
            s,
            "    features: f16 {}, subgroups {} (size {}..{}), timestamps {}, timestamps in passes {}",
            yn(f.contains(wgpu::Features::SHADER_F16)),
            yn(f.contains(wgpu::Features::SUBGROUP)),
            info.subgroup_min_size,
            info.subgroup_max_size,
            yn(f.contains(wgpu::Features::TIMESTAMP_QUERY)),
            yn(f.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)),
        );
        let short = shortfalls(&l, &required_limits(&l));
        let _ = writeln!(
            s,
            "    usable by mflow: {}",
            if compute && short.is_empty() { "yes".to_string() } else { format!("no ({})", short.join("; ")) }
        );
    }
    s
}
