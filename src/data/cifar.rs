//! CIFAR-10 binary batches: records of 1 label byte and 3072 pixel bytes (R, G, B planes of
//! 32×32). Training is data_batch_1..5.bin, test is test_batch.bin.

use anyhow::{bail, Result};
use std::path::Path;

pub const RECORD: usize = 1 + 3072;

/// Parses one batch file's bytes into images (N, 3072) in CHW order and their labels (< 10).
pub fn parse(bytes: &[u8], what: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    if bytes.is_empty() {
        bail!("{what}: empty CIFAR-10 batch");
    }
    if !bytes.len().is_multiple_of(RECORD) {
        bail!(
            "{what}: {} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated or not a binary batch)",
            bytes.len()
        );
    }
    let mut out = Vec::with_capacity(bytes.len() / RECORD * 3072);
    let mut labels = Vec::with_capacity(bytes.len() / RECORD);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            bail!("{what}: record {i} has label {} (CIFAR-10 labels are 0..9): not a CIFAR-10 binary batch", rec[0]);
        }
        labels.push(rec[0]);
        out.extend_from_slice(&rec[1..]);
    }
    Ok((out, labels))
}

/// The training (5 batches) or test split from a CIFAR-10 binary folder: images, labels.
pub fn read_split(dir: &Path, train: bool) -> Result<(Vec<u8>, Vec<u8>)> {
    let names: Vec<String> =
        if train { (1..=5).map(|i| format!("data_batch_{i}.bin")).collect() } else { vec!["test_batch.bin".into()] };
    let (mut out, mut labels) = (Vec::new(), Vec::new());
    for name in names {
        let path = dir.join(&name);
        let bytes = crate::checkpoint::read_regular(&path)?;
        let (images, l) = parse(&bytes, &path.display().to_string())?;
        out.extend(images);
        labels.extend(l);
    }
    Ok((out, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_rejects_bad_batches() {
        let mut two = vec![3u8];
        two.extend(std::iter::repeat_n(7u8, 3072));
        two.push(9);
        two.extend(std::iter::repeat_n(1u8, 3072));
        let (imgs, labels) = parse(&two, "b").unwrap();
        assert_eq!(imgs.len(), 2 * 3072);
        assert_eq!(labels, [3, 9]);
        assert_eq!((imgs[0], imgs[3072]), (7, 1));
        assert!(format!("{:#}", parse(&two[..5000], "b.bin").unwrap_err()).contains("b.bin: 5000 bytes"));
        let mut bad = two.clone();
        bad[RECORD] = 200;
        assert!(format!("{:#}", parse(&bad, "b").unwrap_err()).contains("label 200"));
        assert!(parse(&[], "b").is_err());
    }
}
