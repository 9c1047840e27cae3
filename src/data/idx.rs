//! IDX files (MNIST, Fashion-MNIST, KMNIST, the 8×8 digits), raw or gzip-compressed.
//! Every way a file can be wrong is an error that names the file and the problem.

use anyhow::{bail, Result};
use std::io::Read;
use std::path::Path;

/// An IDX array of unsigned bytes: its dimensions and its values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Largest payload accepted (2 GiB): anything bigger is a corrupt header, not a dataset.
const MAX_BYTES: u64 = 1 << 31;

/// Reads the file, decompressing when it starts with gzip's magic.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = crate::checkpoint::read_regular(path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .take(MAX_BYTES + 64)
            .read_to_end(&mut out)
            .map_err(|e| anyhow::anyhow!("{}: corrupt gzip stream ({e})", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes (`what` names the source in errors).
pub fn parse(bytes: &[u8], what: &str) -> Result<Idx> {
    let header = parse_header(bytes, what)?;
    Ok(Idx { dims: header.dims, data: bytes[header.len..].to_vec() })
}

/// An IDX header, checked against the bytes that follow it.
struct Header {
    dims: Vec<usize>,
    /// Bytes before the values.
    len: usize,
}

fn parse_header(bytes: &[u8], what: &str) -> Result<Header> {
    if bytes.len() < 4 {
        bail!("{what}: {} bytes is too short for an IDX header", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!("{what}: bad IDX magic {:02x?} (expected 00 00 08 NN)", &bytes[..4]);
    }
    if bytes[2] != 0x08 {
        bail!("{what}: IDX element type {:#04x} is not unsigned bytes (0x08)", bytes[2]);
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || ndim > 4 {
        bail!("{what}: IDX with {ndim} dimensions (expected 1 to 4)");
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        bail!("{what}: truncated header ({} bytes, {header} needed for {ndim} dimensions)", bytes.len());
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let count = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).unwrap_or(u64::MAX);
    if count > MAX_BYTES {
        bail!("{what}: header claims dimensions {dims:?} ({count} values), an absurd size");
    }
    let have = (bytes.len() - header) as u64;
    if have < count {
        bail!("{what}: truncated: dimensions {dims:?} need {count} bytes of data, the file has {have}");
    }
    if have > count {
        bail!("{what}: {} bytes of trailing data after the {count} that dimensions {dims:?} describe", have - count);
    }
    Ok(Header { dims, len: header })
}

/// Reads and parses an IDX file, reusing the file's buffer for the values (a 2 GiB file
/// is never held twice).
pub fn read(path: &Path) -> Result<Idx> {
    let mut bytes = read_bytes(path)?;
    let header = parse_header(&bytes, &path.display().to_string())?;
    bytes.drain(..header.len);
    Ok(Idx { dims: header.dims, data: bytes })
}

/// Images: an IDX of 3 dimensions (N, rows, cols), as (N, rows·cols) with the shape.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let idx = read(path)?;
    if idx.dims.len() != 3 {
        bail!("{}: an image file has 3 dimensions (N, rows, cols), this one {:?}", path.display(), idx.dims);
    }
    if idx.dims[0] == 0 || idx.dims[1] == 0 || idx.dims[2] == 0 {
        bail!("{}: empty image set {:?}", path.display(), idx.dims);
    }
    Ok((idx.dims[0], idx.dims[1], idx.dims[2], idx.data))
}

/// Labels: an IDX of 1 dimension holding one byte per image of the matching image file.
pub fn read_labels(path: &Path, images: usize) -> Result<Vec<u8>> {
    let idx = read(path)?;
    if idx.dims.len() != 1 {
        bail!("{}: a label file has 1 dimension (N), this one {:?}", path.display(), idx.dims);
    }
    if idx.dims[0] != images {
        bail!("{}: {} labels for {images} images", path.display(), idx.dims[0]);
    }
    Ok(idx.data)
}

/// Encodes an IDX of unsigned bytes (tests, tools).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &[u8]) -> String {
        format!("{:#}", parse(bytes, "f.idx").unwrap_err())
    }

    #[test]
    fn reads_a_small_file_and_rejects_corrupt_ones() {
        let good = encode(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(parse(&good, "f").unwrap(), Idx { dims: vec![2, 2, 3], data: (1..=12).collect() });
        assert!(err(&[0, 0]).contains("too short"));
        assert!(err(&[1, 0, 8, 3, 0, 0, 0, 1]).contains("bad IDX magic"));
        assert!(err(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).contains("not unsigned bytes"));
        assert!(err(&[0, 0, 8, 3, 0, 0]).contains("truncated header"));
        assert!(err(&good[..good.len() - 1]).contains("truncated: dimensions [2, 2, 3] need 12 bytes"));
        let mut long = good.clone();
        long.push(0);
        assert!(err(&long).contains("trailing data"));
        assert!(err(&encode(&[0xffff_ffff, 0xffff_ffff, 1], &[])).contains("absurd size"));
        assert!(err(&[0, 0, 8, 9]).contains("9 dimensions"));
    }

    #[test]
    fn gzip_is_transparent_and_corrupt_gzip_is_an_error() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("mflow-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = encode(&[1, 2, 2], &[9, 8, 7, 6]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&good).unwrap();
        let gz = gz.finish().unwrap();
        std::fs::write(dir.join("a.gz"), &gz).unwrap();
        assert_eq!(read_images(&dir.join("a.gz")).unwrap(), (1, 2, 2, vec![9, 8, 7, 6]));
        std::fs::write(dir.join("b.gz"), &gz[..gz.len() / 2]).unwrap();
        let e = format!("{:#}", read_images(&dir.join("b.gz")).unwrap_err());
        assert!(e.contains("b.gz") && (e.contains("corrupt gzip") || e.contains("truncated")), "{e}");
        std::fs::write(dir.join("c.idx"), encode(&[4], &[1, 2, 3, 4])).unwrap();
        assert!(format!("{:#}", read_images(&dir.join("c.idx")).unwrap_err()).contains("3 dimensions"));
        let e = format!("{:#}", read_images(&dir.join("missing.idx")).unwrap_err());
        assert!(e.contains("missing.idx"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
