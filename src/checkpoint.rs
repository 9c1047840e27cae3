//! Model files as safetensors: every parameter tensor under its MODEL.md name (F32, its
//! shape), each Shuffle's permutation as `perm{i}` (U32), optional training state, and the
//! configuration in the metadata. Written atomically: a temporary file, then a rename.

use crate::model::{Flow, FlowConfig, Layer};
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

pub const FORMAT: &str = "mflow-flow-1";

/// Optimizer state saved beside the model so training can resume exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Adam's first and second moments, the layout of the parameters.
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// The parameters' moving average, where the run keeps one (`--ema`).
    pub ema: Option<Vec<f32>>,
    /// Steps taken (Adam's t; also the noise counter).
    pub step: u64,
    /// Free-form metadata (the training configuration, data spec), kept as strings.
    pub extra: HashMap<String, String>,
}

/// Writes `bytes` to `path` atomically: a temporary file of a name no other writer uses
/// (pid and a counter), synced, then renamed over `path`. A crash leaves the old file or the
/// new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {} (through {})", path.display(), tmp.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()));
    }
    Ok(())
}

/// Reads a whole input file, refusing what is not a regular file (a FIFO would block
/// forever, a device or folder is never data).
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{}: not a regular file ({})", path.display(), describe_file_type(&meta.file_type()));
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn describe_file_type(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a folder"
    } else {
        "not a plain file"
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

pub fn save(path: &Path, flow: &Flow, state: Option<&TrainState>) -> Result<()> {
    let mut views: Vec<(String, TensorView)> = Vec::new();
    for t in &flow.tensors {
        let data = f32_bytes(&flow.params[t.offset..t.offset + t.len()]);
        views.push((t.name.clone(), TensorView::new(Dtype::F32, t.shape.clone(), data)?));
    }
    let perms: Vec<(usize, &Vec<u32>)> = flow
        .layers
        .iter()
        .filter_map(|l| match l {
            Layer::Shuffle { index, perm } => Some((*index, perm)),
            _ => None,
        })
        .collect();
    for (i, perm) in &perms {
        views.push((format!("perm{i}"), TensorView::new(Dtype::U32, vec![perm.len()], bytemuck::cast_slice(perm))?));
    }
    // A 1×1 convolution's fixed permutation and signs (drawn from the seed, never trained),
    // so that outside readers need not reproduce mflow's random streams.
    let fixed: Vec<(usize, &Vec<u32>, Vec<f32>)> = flow
        .layers
        .iter()
        .filter_map(|l| match l {
            Layer::Inv1x1 { index, perm, sign, .. } => Some((*index, perm, sign.iter().map(|&v| v as f32).collect())),
            _ => None,
        })
        .collect();
    for (i, perm, sign) in &fixed {
        views
            .push((format!("inv{i}.perm"), TensorView::new(Dtype::U32, vec![perm.len()], bytemuck::cast_slice(perm))?));
        views.push((format!("inv{i}.sign"), TensorView::new(Dtype::F32, vec![sign.len()], f32_bytes(sign))?));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("config".to_string(), serde_json::to_string(&flow.config)?);
    meta.insert("actnorm_initialized".to_string(), flow.actnorm_initialized.to_string());
    if let Some(s) = state {
        let p = flow.params.len();
        if s.m.len() != p || s.v.len() != p {
            bail!("optimizer state has {} / {} values for {p} parameters", s.m.len(), s.v.len());
        }
        views.push(("adam.m".to_string(), TensorView::new(Dtype::F32, vec![p], f32_bytes(&s.m))?));
        views.push(("adam.v".to_string(), TensorView::new(Dtype::F32, vec![p], f32_bytes(&s.v))?));
        if let Some(e) = &s.ema {
            views.push(("ema".to_string(), TensorView::new(Dtype::F32, vec![p], f32_bytes(e))?));
        }
        meta.insert("step".to_string(), s.step.to_string());
        for (k, v) in &s.extra {
            meta.insert(k.clone(), v.clone());
        }
    }
    let bytes = safetensors::serialize(views, Some(meta)).context("serialising the checkpoint")?;
    write_atomic(path, &bytes)
}

fn read_f32(st: &SafeTensors, name: &str, shape: &[usize], path: &Path) -> Result<Vec<f32>> {
    let t = st.tensor(name).with_context(|| format!("{}: no tensor {name:?}", path.display()))?;
    if t.dtype() != Dtype::F32 || t.shape() != shape {
        bail!("{}: tensor {name:?} is {:?} {:?}, expected F32 {shape:?}", path.display(), t.dtype(), t.shape());
    }
    Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// The training step a checkpoint holds (None: no training state), from its header alone:
/// the tensors are neither read nor checked (`load` does that).
pub fn step_of(path: &Path) -> Result<Option<u64>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{}: not a regular file", path.display());
    }
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let n = u64::from_le_bytes(len);
    if n > meta.len().saturating_sub(8) {
        bail!("{}: not a safetensors file (header of {n} bytes)", path.display());
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    match v.get("__metadata__").and_then(|m| m.get("step")).and_then(|s| s.as_str()) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).with_context(|| format!("{}: bad step {s:?}", path.display())),
    }
}

/// Loads a flow (and its training state when present). With `expect`, a checkpoint of
/// another configuration is an error naming both.
pub fn load(path: &Path, expect: Option<&FlowConfig>) -> Result<(Flow, Option<TrainState>)> {
    parse(&read_regular(path)?, path, expect)
}

/// Parses a checkpoint's bytes (`path` names it in errors). Every field is checked before
/// it sizes an allocation: the configuration against `FlowConfig::validate`, and the
/// parameter count it implies against the bytes the file actually holds.
pub fn parse(bytes: &[u8], path: &Path, expect: Option<&FlowConfig>) -> Result<(Flow, Option<TrainState>)> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        bail!("{}: not an mflow checkpoint (format {:?}, expected {FORMAT:?})", path.display(), meta.get("format"));
    }
    let config: FlowConfig = serde_json::from_str(
        meta.get("config").with_context(|| format!("{}: the checkpoint has no config", path.display()))?,
    )
    .with_context(|| format!("{}: unreadable config", path.display()))?;
    config.validate().with_context(|| format!("{}: the checkpoint's config is impossible", path.display()))?;
    if let Some(want) = expect {
        if want != &config {
            bail!("{}: checkpoint is for {config:?}, but this run is configured as {want:?}", path.display());
        }
    }
    let want_bytes = config.padded_params().unwrap_or(u64::MAX).saturating_mul(4);
    if want_bytes > bytes.len() as u64 {
        bail!(
            "{}: the config describes a flow of {want_bytes} bytes of parameters, but the file holds only {} bytes",
            path.display(),
            bytes.len()
        );
    }
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("{}: corrupt safetensors ({e})", path.display()))?;
    let mut flow = Flow::new(config)?;
    for t in flow.tensors.clone() {
        let v = read_f32(&st, &t.name, &t.shape, path)?;
        flow.params[t.offset..t.offset + t.len()].copy_from_slice(&v);
    }
    // Shuffles permute the dense layers' columns: the whole row, or a conv flow's head.
    let q = flow.config.head().1;
    let shuffles: Vec<usize> = flow
        .layers
        .iter()
        .filter_map(|l| match l {
            Layer::Shuffle { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    for i in shuffles {
        let name = format!("perm{i}");
        let t = st.tensor(&name).with_context(|| format!("{}: no tensor {name:?}", path.display()))?;
        if t.dtype() != Dtype::U32 || t.shape() != [q] {
            bail!("{}: {name} is {:?} {:?}, expected U32 [{q}]", path.display(), t.dtype(), t.shape());
        }
        let perm: Vec<u32> = t.data().chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        flow.set_perm(i, &perm).with_context(|| format!("{}", path.display()))?;
    }
    let inv: Vec<(usize, usize)> = flow
        .layers
        .iter()
        .filter_map(|l| match l {
            Layer::Inv1x1 { index, at, .. } => Some((*index, at.c)),
            _ => None,
        })
        .collect();
    for (i, c) in inv {
        let (pn, sn) = (format!("inv{i}.perm"), format!("inv{i}.sign"));
        let pt = st.tensor(&pn).with_context(|| format!("{}: no tensor {pn:?}", path.display()))?;
        if pt.dtype() != Dtype::U32 || pt.shape() != [c] {
            bail!("{}: {pn} is {:?} {:?}, expected U32 [{c}]", path.display(), pt.dtype(), pt.shape());
        }
        let perm: Vec<u32> = pt.data().chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let sign = read_f32(&st, &sn, &[c], path)?;
        flow.set_inv1x1(i, &perm, &sign).with_context(|| format!("{}", path.display()))?;
    }
    flow.actnorm_initialized = match meta.get("actnorm_initialized").map(String::as_str) {
        Some("true") => true,
        Some("false") | None => false,
        Some(other) => bail!("{}: actnorm_initialized is {other:?}; expected \"true\" or \"false\"", path.display()),
    };
    let state = match meta.get("step") {
        None => None,
        Some(step) => {
            let p = flow.params.len();
            let extra = meta
                .iter()
                .filter(|(k, _)| !["format", "config", "actnorm_initialized", "step"].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let state = TrainState {
                m: read_f32(&st, "adam.m", &[p], path)?,
                v: read_f32(&st, "adam.v", &[p], path)?,
                ema: if st.names().contains(&"ema") { Some(read_f32(&st, "ema", &[p], path)?) } else { None },
                step: step.parse().with_context(|| format!("{}: bad step {step:?}", path.display()))?,
                extra,
            };
            if state.m.iter().chain(&state.v).any(|x| !x.is_finite()) || state.v.iter().any(|&x| x < 0.0) {
                bail!("{}: the optimizer state holds non-finite or negative second moments", path.display());
            }
            if state.step >= u32::MAX as u64 {
                bail!("{}: step {} is past the 2^32 − 1 steps a run may take", path.display(), state.step);
            }
            Some(state)
        }
    };
    if flow.params.iter().any(|p| !p.is_finite()) {
        bail!("{}: the checkpoint holds non-finite parameters", path.display());
    }
    Ok((flow, state))
}
