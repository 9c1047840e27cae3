//! Output files a command writes beside its inputs: the format follows the extension, and a
//! file is replaced only when it is one mflow wrote of that kind (never an input, never a
//! file of another kind under a misleading name).

use anyhow::{bail, Result};
use std::path::Path;

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

    /// Whether `bytes` (a file's start) are what mflow writes as this kind.
    fn written_by_mflow(self, bytes: &[u8]) -> bool {
        match self {
            Kind::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            Kind::Npy => bytes.starts_with(b"\x93NUMPY"),
            Kind::Csv => bytes.starts_with(b"x1,") || bytes.starts_with(b"index,log_p"),
            Kind::Json => bytes.starts_with(b"{"),
        }
    }
}

/// Checks `flag`'s output `path` before any work: its extension names one of `kinds`, it is
/// none of `inputs`, and an existing file there is one mflow wrote of that kind.
pub fn check(flag: &str, path: &Path, kinds: &[Kind], inputs: &[&Path]) -> Result<Kind> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let Some(kind) = kinds.iter().copied().find(|k| ext.as_deref() == Some(k.ext())) else {
        let names: Vec<String> = kinds.iter().map(|k| format!(".{}", k.ext())).collect();
        bail!("{flag} {}: the extension says the format; mflow writes {} here", path.display(), names.join(", "));
    };
    for input in inputs {
        if let (Ok(a), Ok(b)) = (path.canonicalize(), input.canonicalize()) {
            if a == b {
                bail!("{flag} {}: is an input of this command; choose another file", path.display());
            }
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let ours = meta.is_file()
            && std::fs::File::open(path)
                .and_then(|f| {
                    let mut head = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::Read::take(f, 16), &mut head).map(|_| head)
                })
                .is_ok_and(|head| kind.written_by_mflow(&head));
        if !ours {
            bail!(
                "{flag} {}: exists and is not a .{} file mflow wrote; mflow will not overwrite it",
                path.display(),
                kind.ext()
            );
        }
    }
    Ok(kind)
}
