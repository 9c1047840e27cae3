//! A run folder and its one writer. `RunFolder::lock` takes an exclusive lock on
//! `DIR/.mflow.lock` (released by the OS when the process ends, kill -9 included), so a
//! second writer gets an error naming the folder and the holder's pid instead of
//! interleaving metrics and racing renames. The folder's files describe one model: a
//! finished run is never replaced unless the user asks (`--force`), and what is replaced is
//! removed first so nothing stale sits beside a new model.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

const LOCK: &str = ".mflow.lock";
/// The files a run writes (its model, metrics, picture and summary).
pub const RUN_FILES: [&str; 7] = [
    "model.safetensors",
    "metrics.jsonl",
    "samples.png",
    "density.png",
    "summary.json",
    "best.safetensors",
    "curves.png",
];

pub struct RunFolder {
    pub dir: PathBuf,
    _lock: File,
    /// Whether `lock` made the folder: one left holding nothing but the lock is removed
    /// again, so a refused run leaves no trace.
    created: bool,
}

impl Drop for RunFolder {
    fn drop(&mut self) {
        let only_lock = std::fs::read_dir(&self.dir)
            .map(|entries| entries.filter_map(|e| e.ok()).all(|e| e.file_name() == LOCK))
            .unwrap_or(false);
        if self.created && only_lock {
            let _ = std::fs::remove_file(self.dir.join(LOCK));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Whether another process holds the folder, and its pid (as it wrote it).
#[derive(Debug)]
pub struct Busy {
    pub dir: PathBuf,
    pub pid: String,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is in use by another mflow process (pid {}); wait for it to finish, or choose another --out",
            self.dir.display(),
            self.pid
        )
    }
}

impl std::error::Error for Busy {}

impl RunFolder {
    /// Creates the folder if needed and takes its lock; `Busy` when another process has it.
    pub fn lock(dir: &Path) -> Result<Self> {
        if dir.exists() && !dir.is_dir() {
            bail!("--out {}: exists and is not a folder", dir.display());
        }
        let created = !dir.exists();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = if pid.trim().is_empty() { "unknown".into() } else { pid.trim().to_string() };
                return Err(Busy { dir: dir.to_path_buf(), pid }.into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        (|| {
            file.set_len(0)?;
            file.rewind()?;
            write!(file, "{}", std::process::id())?;
            file.flush()
        })()
        .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { dir: dir.to_path_buf(), _lock: file, created })
    }

    pub fn model(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }
    pub fn summary(&self) -> PathBuf {
        self.dir.join("summary.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    pub fn samples(&self) -> PathBuf {
        self.dir.join("samples.png")
    }
    /// The parameters with the best validation log-likelihood so far.
    pub fn best(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }

    /// Whether the folder holds a run worth keeping: a model or a summary. Metrics, a
    /// picture and a best model without a checkpoint to resume from are what a run that
    /// ended before its first checkpoint leaves.
    pub fn holds_run(&self) -> bool {
        self.model().exists() || self.summary().exists()
    }

    /// The run files present.
    pub fn existing(&self) -> Vec<&'static str> {
        RUN_FILES.into_iter().filter(|f| self.dir.join(f).exists()).collect()
    }

    /// Removes the run files (the user asked to replace the run).
    pub fn clear(&self) -> Result<()> {
        for f in self.existing() {
            let p = self.dir.join(f);
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        Ok(())
    }

    /// Removes what describes a finished evaluation (summary, samples) before the model
    /// beside them changes, so they never describe another model.
    pub fn clear_results(&self) -> Result<()> {
        for p in [self.summary(), self.samples(), self.dir.join("density.png"), self.dir.join("curves.png")] {
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        Ok(())
    }
}

/// `metrics.jsonl`: one JSON object per line, flushed as written.
pub struct MetricsLog {
    file: std::io::BufWriter<File>,
    path: PathBuf,
}

impl MetricsLog {
    /// A fresh log, or (resuming from `step`) the existing one cut back to the lines up to
    /// that step, so a run killed after its checkpoint does not log those steps twice.
    pub fn open(path: &Path, resume_from: Option<u64>) -> Result<Self> {
        let file = match resume_from {
            Some(step) if path.exists() => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                let kept: String = text
                    .lines()
                    .filter(|l| {
                        serde_json::from_str::<serde_json::Value>(l)
                            .ok()
                            .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                            .is_some_and(|s| s <= step)
                    })
                    .flat_map(|l| [l, "\n"])
                    .collect();
                crate::checkpoint::write_atomic(path, kept.as_bytes())?;
                std::fs::OpenOptions::new().append(true).open(path)
            }
            _ => File::create(path),
        }
        .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { file: std::io::BufWriter::new(file), path: path.to_path_buf() })
    }

    pub fn write(&mut self, line: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}
