//! Output files a command writes beside its inputs: the format follows the extension, an
//! output is never a file the command reads (compared by file identity, so other spellings
//! and hard links of an input count) nor another output of the same command, and an existing
//! file is replaced only when it holds what mflow writes under that extension.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Png,
    Npy,
    Csv,
    Json,
}

impl Kind {
    fn ext(self) -> &'static str {
        match self {
            Kind::Png => "png",
            Kind::Npy => "npy",
            Kind::Csv => "csv",
            Kind::Json => "json",
        }
    }

    /// Whether `bytes` (a file's start) look like this kind: a guard against replacing a
    /// file of another kind under a misleading name, not evidence of who wrote it (inputs
    /// are told apart by identity, `check_all`).
    fn looks_like(self, bytes: &[u8]) -> bool {
        match self {
            Kind::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            Kind::Npy => bytes.starts_with(b"\x93NUMPY"),
            Kind::Csv => bytes.starts_with(b"x1,") || bytes.starts_with(b"index,log_p"),
            Kind::Json => bytes.starts_with(b"{"),
        }
    }
}

/// One output of a command: the flag that names it, its path, and the kinds it may be.
pub struct Output<'a> {
    pub flag: &'a str,
    pub path: &'a Path,
    pub kinds: &'a [Kind],
}

/// An input of a command: what it is (a flag, or where the command found it) and its path.
pub type Input<'a> = (String, &'a Path);

/// Where a path points: the file itself when it exists (device and inode on Unix), else the
/// canonical folder joined with the name, so that two spellings of one place compare equal.
#[derive(PartialEq, Eq, Debug)]
enum Place {
    File(u64, u64),
    Path(PathBuf),
}

fn place(p: &Path) -> Option<Place> {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(p) {
        use std::os::unix::fs::MetadataExt;
        return Some(Place::File(m.dev(), m.ino()));
    }
    if let Ok(c) = p.canonicalize() {
        return Some(Place::Path(c));
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
        _ => std::env::current_dir().ok()?,
    };
    Some(Place::Path(parent.join(p.file_name()?)))
}

/// Checks `flag`'s output `path` before any work (see `check_all`).
pub fn check(flag: &str, path: &Path, kinds: &[Kind], inputs: &[Input]) -> Result<Kind> {
    Ok(check_all(&[Output { flag, path, kinds }], inputs)?[0])
}

/// Checks a command's outputs before any work: each one's extension names one of its
/// kinds, it is none of `inputs` and no other output, and an existing file there looks like
/// its kind. Returns each output's kind.
pub fn check_all(outputs: &[Output], inputs: &[Input]) -> Result<Vec<Kind>> {
    let mut kinds = Vec::new();
    for (i, o) in outputs.iter().enumerate() {
        let ext = o.path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let Some(kind) = o.kinds.iter().copied().find(|k| ext.as_deref() == Some(k.ext())) else {
            let names: Vec<String> = o.kinds.iter().map(|k| format!(".{}", k.ext())).collect();
            bail!(
                "{} {}: the extension says the format; mflow writes {} here",
                o.flag,
                o.path.display(),
                names.join(", ")
            );
        };
        let here = place(o.path);
        for (what, input) in inputs {
            if here.is_some() && here == place(input) {
                bail!(
                    "{} {}: is {what} ({}), which this command reads; choose another file",
                    o.flag,
                    o.path.display(),
                    input.display()
                );
            }
        }
        for other in &outputs[..i] {
            if here.is_some() && here == place(other.path) {
                bail!(
                    "{} {} and {} {} name one file; give each its own",
                    other.flag,
                    other.path.display(),
                    o.flag,
                    o.path.display()
                );
            }
        }
        if let Ok(meta) = std::fs::symlink_metadata(o.path) {
            let same_kind = meta.is_file()
                && std::fs::File::open(o.path)
                    .and_then(|f| {
                        let mut head = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::Read::take(f, 16), &mut head).map(|_| head)
                    })
                    .is_ok_and(|head| kind.looks_like(&head));
            if !same_kind {
                bail!(
                    "{} {}: exists and is not a .{} file mflow wrote; mflow will not overwrite it",
                    o.flag,
                    o.path.display(),
                    kind.ext()
                );
            }
        }
        kinds.push(kind);
    }
    Ok(kinds)
}
