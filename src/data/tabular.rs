//! A user's own data: N×D float arrays as NPY (f32 or f64, C order) or CSV (a header row
//! detected or declared), split by the user's files or by a seeded fraction, and optionally
//! standardised with the training split's per-column mean and std. Every refusal names the
//! file and, where there is one, the row and column.

use super::Table;
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;

/// Per-column standardisation `z = (x − mean) / std`, fitted on the training split. The flow
/// models z; `log p(x) = log p(z) − Σ log std` (`log_jacobian`), so reported figures are in
/// the data's own units.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardize {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardize {
    /// Fits the training split; a constant column is an error (its std would be 0, and
    /// ActNorm would divide by it too).
    pub fn fit(t: &Table, what: &str) -> Result<Self> {
        let (n, d) = (t.rows() as f64, t.dim);
        let mut mean = vec![0.0; d];
        for i in 0..t.rows() {
            for (m, &v) in mean.iter_mut().zip(t.row(i).iter()) {
                *m += v as f64 / n;
            }
        }
        let mut var = vec![0.0; d];
        for i in 0..t.rows() {
            for ((s, &v), m) in var.iter_mut().zip(t.row(i).iter()).zip(&mean) {
                *s += (v as f64 - m).powi(2) / n;
            }
        }
        let std: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
        if let Some(j) = (0..d).find(|&j| std[j].is_nan() || std[j] <= 1e-12 * (1.0 + mean[j].abs())) {
            bail!("{what}: column {} is constant ({}) in the training split; drop it", j + 1, mean[j]);
        }
        Ok(Self { mean, std })
    }

    pub fn apply(&self, t: &mut Table) {
        for row in t.data.chunks_exact_mut(t.dim) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = ((*v as f64 - m) / s) as f32;
            }
        }
    }

    /// Back to data units (samples).
    pub fn invert(&self, t: &mut Table) {
        for row in t.data.chunks_exact_mut(t.dim) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v as f64 * s + m) as f32;
            }
        }
    }

    /// What standardising adds to log p(z) to give log p(x): −Σ log std.
    pub fn log_jacobian(&self) -> f64 {
        -self.std.iter().map(|s| s.ln()).sum::<f64>()
    }
}

/// The file formats mflow reads and writes arrays in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Npy,
    Csv,
}

impl Format {
    /// The format a file name says, or an error naming the flag.
    pub fn of(path: &Path, flag: &str) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("npy") => Ok(Format::Npy),
            Some("csv") => Ok(Format::Csv),
            _ => bail!("{flag} {}: the extension must say the format: .npy or .csv", path.display()),
        }
    }
}

/// Reads an N×D array (`header`: whether a CSV's first row names the columns; None: detect),
/// or a uint8 NPY of images (then a table of levels).
pub fn read(path: &Path, format: Format, header: Option<bool>) -> Result<Table> {
    Ok(read_points(path, format, header)?.0)
}

/// `read`, with the images' (C, H, W) when the file holds uint8 images.
pub fn read_points(path: &Path, format: Format, header: Option<bool>) -> Result<(Table, Option<[usize; 3]>)> {
    let bytes = crate::checkpoint::read_regular(path)?;
    let what = path.display().to_string();
    let (t, shape) = match format {
        Format::Npy => parse_npy_points(&bytes, &what)?,
        Format::Csv => (parse_csv(&bytes, &what, header)?, None),
    };
    check_shape(&t, &what)?;
    Ok((t, shape))
}

/// What every array of points must be: at least two columns and a row.
pub fn check_shape(t: &Table, what: &str) -> Result<()> {
    if t.dim < 2 {
        bail!("{what}: {} column(s); mflow needs D ≥ 2 (a coupling splits the dimensions in two)", t.dim);
    }
    if t.rows() == 0 {
        bail!("{what}: no rows");
    }
    Ok(())
}

/// Every value finite, else an error naming the first bad one's row (counted from
/// `first_row`) and column (from 1).
pub fn check_finite(t: &Table, what: &str, first_row: usize) -> Result<()> {
    if let Some(k) = t.data.iter().position(|v| !v.is_finite()) {
        bail!(
            "{what}: row {}, column {} is {} (values must be finite)",
            k / t.dim + first_row,
            k % t.dim + 1,
            t.data[k]
        );
    }
    Ok(())
}

/// NPY: magic, version 1–3, a header dict with descr '<f4' or '<f8', fortran_order False
/// and a shape of (N, D); the data follows. A uint8 file of images (`parse_npy_points`)
/// gives a table of levels.
pub fn parse_npy(bytes: &[u8], what: &str) -> Result<Table> {
    Ok(parse_npy_points(bytes, what)?.0)
}

/// `parse_npy`, also reading uint8 ('|u1') images of shape (N, H, W) or (N, C, H, W):
/// their levels, and (C, H, W).
pub fn parse_npy_points(bytes: &[u8], what: &str) -> Result<(Table, Option<[usize; 3]>)> {
    if !bytes.starts_with(b"\x93NUMPY") {
        bail!("{what}: not an NPY file (bad magic)");
    }
    if bytes.len() < 10 {
        bail!("{what}: truncated NPY file ({} bytes, shorter than its header)", bytes.len());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, 12),
        2 | 3 => {
            bail!("{what}: truncated NPY file ({} bytes, shorter than a version {} header)", bytes.len(), bytes[6])
        }
        v => bail!("{what}: NPY version {v} is not supported (1, 2 or 3)"),
    };
    let header =
        bytes.get(start..start.saturating_add(len)).with_context(|| format!("{what}: truncated NPY header"))?;
    let header = std::str::from_utf8(header).map_err(|_| anyhow::anyhow!("{what}: the NPY header is not text"))?;
    let field = |key: &str| -> Result<&str> {
        let at = header.find(&format!("'{key}'")).with_context(|| format!("{what}: the NPY header has no {key}"))?;
        let rest = header[at + key.len() + 2..].trim_start().strip_prefix(':').unwrap_or("").trim_start();
        Ok(rest)
    };
    let descr = field("descr")?;
    let size = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else if descr.starts_with("'|u1'") || descr.starts_with("'<u1'") {
        1
    } else {
        bail!(
            "{what}: dtype {} is not supported (float32 '<f4' or float64 '<f8' points, uint8 '|u1' images)",
            descr.split(',').next().unwrap_or("")
        );
    };
    if !field("fortran_order")?.starts_with("False") {
        bail!("{what}: Fortran-ordered arrays are not supported; save it in C order (np.ascontiguousarray)");
    }
    let shape = field("shape")?;
    let inner =
        shape.strip_prefix('(').and_then(|s| s.split(')').next()).with_context(|| format!("{what}: bad shape"))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| anyhow::anyhow!("{what}: bad shape ({inner})")))
        .collect::<Result<_>>()?;
    // Two dimensions are points; three or four, images (floats: --preprocess none).
    let (n, d, image) = match (size, dims.as_slice()) {
        (4 | 8, [n, d]) => (*n, *d, None),
        (_, [n, h, w]) => (*n, h.saturating_mul(*w), Some([1, *h, *w])),
        (_, [n, c, h, w]) => (*n, c.saturating_mul(*h).saturating_mul(*w), Some([*c, *h, *w])),
        (4 | 8, _) => bail!(
            "{what}: shape ({inner}) is neither points (N rows × D columns) nor images ((N, H, W) or (N, C, H, W))"
        ),
        _ => bail!("{what}: uint8 arrays are images of 8-bit levels: shape (N, H, W) or (N, C, H, W), not ({inner})"),
    };
    let data = &bytes[start + len..];
    let want = n.checked_mul(d).and_then(|c| c.checked_mul(size)).with_context(|| format!("{what}: absurd shape"))?;
    if data.len() != want {
        bail!("{what}: shape ({inner}) needs {want} bytes of data, the file has {}", data.len());
    }
    if size == 1 {
        return Ok((Table::from_levels(d, data.to_vec()), image));
    }
    let values: Vec<f32> = if size == 4 {
        data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()
    } else {
        let wide: Vec<f64> = data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        // A finite float64 beyond float32's range would read as inf: say so, naming the cell.
        if let Some(k) = wide.iter().position(|v| v.is_finite() && (*v as f32).is_infinite()) {
            bail!(
                "{what}: row {}, column {} is {:e}, beyond float32's range (±{:e}) in which mflow computes",
                k / d,
                k % d + 1,
                wide[k],
                f32::MAX
            );
        }
        wide.into_iter().map(|v| v as f32).collect()
    };
    let t = Table::new(d, values);
    check_finite(&t, what, 0)?;
    Ok((t, image))
}

/// CSV of numbers separated by commas; a first row that is not all numbers is a header
/// (unless `header` says). Rows are reported by their line in the file.
pub fn parse_csv(bytes: &[u8], what: &str, header: Option<bool>) -> Result<Table> {
    let text = std::str::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{what}: not UTF-8 text"))?;
    // A byte-order mark (spreadsheets write one) is not part of the first cell.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Lines end in \n, \r\n, or a lone \r (classic Mac OS, some exports).
    let mut lines = text
        .split(['\n', '\r'])
        .scan(0usize, |line, l| {
            *line += 1;
            Some((*line - 1, l))
        })
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();
    let crlf = text.contains("\r\n");
    let first_is_header = match (header, lines.peek()) {
        (Some(h), _) => h,
        (None, Some((_, l))) => l.split(',').any(|c| c.trim().parse::<f64>().is_err()),
        (None, None) => false,
    };
    if first_is_header {
        lines.next();
    }
    let (mut data, mut dim) = (Vec::new(), None);
    for (i, line) in lines {
        // \r\n splits into a line and an empty one: count lines as the file has them.
        let i = if crlf { i / 2 } else { i };
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let d = *dim.get_or_insert(cells.len());
        if cells.len() != d {
            bail!("{what}: row {} (line {}) has {} columns, the rows before it {d}", i + 1, i + 1, cells.len());
        }
        for (j, c) in cells.iter().enumerate() {
            let v: f64 = c
                .parse()
                .map_err(|_| anyhow::anyhow!("{what}: line {}, column {}: {c:?} is not a number", i + 1, j + 1))?;
            if !v.is_finite() {
                bail!("{what}: line {}, column {} is {c} (values must be finite)", i + 1, j + 1);
            }
            if (v as f32).is_infinite() {
                bail!(
                    "{what}: line {}, column {} is {c}, beyond float32's range (±{:e}) in which mflow computes",
                    i + 1,
                    j + 1,
                    f32::MAX
                );
            }
            data.push(v as f32);
        }
    }
    if dim.is_none() {
        bail!(
            "{what}: no data rows ({}); mflow needs rows of numbers separated by commas",
            if first_is_header { "only a header row" } else { "the file is empty" }
        );
    }
    Ok(Table::new(dim.unwrap_or(0), data))
}

/// An NPY file of float64 values in C order: the header for `shape` (a Python tuple),
/// padded so the data starts on a 64-byte boundary, then the values.
fn npy_f64(shape: &str, values: impl Iterator<Item = f64>) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for v in values {
        out.extend(v.to_le_bytes());
    }
    out
}

/// An N×D array as NPY (float64, C order).
pub fn npy_bytes(t: &Table) -> Vec<u8> {
    let values = (0..t.rows()).flat_map(|i| t.row(i).iter().map(|&v| v as f64).collect::<Vec<_>>());
    npy_f64(&format!("({}, {})", t.rows(), t.dim), values)
}

/// Columns of f64 as NPY: one column is a 1-D array, several an N×k array.
pub fn npy_columns(cols: &[Vec<f64>]) -> Vec<u8> {
    let n = cols.first().map_or(0, Vec::len);
    let shape = if cols.len() == 1 { format!("({n},)") } else { format!("({n}, {})", cols.len()) };
    npy_f64(&shape, (0..n).flat_map(|i| cols.iter().map(move |c| c[i])))
}

/// Columns of f64 as CSV with a header row.
pub fn csv_columns(names: &[&str], cols: &[Vec<f64>]) -> String {
    let n = cols.first().map_or(0, Vec::len);
    let mut s = names.join(",");
    s.push('\n');
    for i in 0..n {
        let row: Vec<String> = cols.iter().map(|c| format!("{}", c[i])).collect();
        s += &row.join(",");
        s.push('\n');
    }
    s
}

/// Rows as CSV with a header x1..xD.
pub fn csv_bytes(t: &Table) -> String {
    let names: Vec<String> = (1..=t.dim).map(|j| format!("x{j}")).collect();
    let mut s = names.join(",");
    s.push('\n');
    for i in 0..t.rows() {
        let row: Vec<String> = t.row(i).iter().map(|v| format!("{v}")).collect();
        s += &row.join(",");
        s.push('\n');
    }
    s
}

/// Splits one file's rows by seeded fractions (train, validation, test): a shuffle from
/// `seed`, then consecutive parts. Each split must get at least one row, except validation.
pub fn split_by_fractions(t: &Table, fractions: [f64; 3], seed: u64, what: &str) -> Result<[Table; 3]> {
    let n = t.rows();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0x5b117));
    let n_train = (fractions[0] * n as f64).round() as usize;
    let n_val = ((fractions[1] * n as f64).round() as usize).min(n - n_train.min(n));
    let n_test = n - n_train.min(n) - n_val;
    for (name, k, f) in [("training", n_train, fractions[0]), ("test", n_test, fractions[2])] {
        if k == 0 {
            bail!("{what}: {n} rows give the {name} split none (fraction {f}); use more rows or another --split-fractions");
        }
    }
    // One training row has no spread to standardise by or to learn from.
    if n_train < 2 {
        bail!(
            "{what}: {n} rows give the training split {n_train} (fraction {}); it needs at least 2: use more rows or another --split-fractions",
            fractions[0]
        );
    }
    // Image levels stay levels (a quarter of f32's memory).
    let take = |range: std::ops::Range<usize>| {
        let rows = &order[range];
        if t.levels.is_empty() {
            let mut out = Table::new(t.dim, Vec::with_capacity(rows.len() * t.dim));
            for &r in rows {
                t.extend_rows(r..r + 1, &mut out.data);
            }
            out
        } else {
            let levels = rows.iter().flat_map(|&r| &t.levels[r * t.dim..(r + 1) * t.dim]).copied().collect();
            Table::from_levels(t.dim, levels)
        }
    };
    Ok([take(0..n_train), take(n_train..n_train + n_val), take(n_train + n_val..n)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<Table>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn npy_round_trips_and_rejects_what_it_cannot_read() {
        let t = Table::new(3, vec![1.0, 2.5, -3.0, 4.0, 5.0, 6.0]);
        let back = parse_npy(&npy_bytes(&t), "a.npy").unwrap();
        assert_eq!((back.dim, back.data), (3, t.data.clone()));
        assert!(err(parse_npy(b"nope", "a.npy")).contains("a.npy: not an NPY"));
        let mut b = npy_bytes(&t);
        b.pop();
        assert!(err(parse_npy(&b, "a.npy")).contains("needs 48 bytes"));
        // Header edits of the same length, byte for byte (the magic is not UTF-8).
        let edit = |from: &[u8], to: &[u8]| {
            let mut b = npy_bytes(&t);
            let at = b.windows(from.len()).position(|w| w == from).unwrap();
            b[at..at + to.len()].copy_from_slice(to);
            b
        };
        assert!(err(parse_npy(&edit(b"False", b"True "), "a.npy")).contains("Fortran"));
        assert!(err(parse_npy(&edit(b"<f8", b"<i8"), "a.npy")).contains("dtype"));
        let mut nan = t.clone();
        nan.data[4] = f32::NAN;
        assert!(err(parse_npy(&npy_bytes(&nan), "a.npy")).contains("row 1, column 2"));
        let cols = npy_columns(&[vec![1.0, 2.0]]);
        assert!(String::from_utf8_lossy(&cols).contains("'shape': (2,)"));
    }

    #[test]
    fn csv_reads_headers_and_names_bad_cells() {
        let t = parse_csv(b"a,b\n1,2\n3,4.5\n", "f.csv", None).unwrap();
        assert_eq!((t.dim, t.data), (2, vec![1.0, 2.0, 3.0, 4.5]));
        assert_eq!(parse_csv(b"1,2\n3,4\n", "f.csv", None).unwrap().rows(), 2);
        assert_eq!(parse_csv(b"1,2\n3,4\n", "f.csv", Some(true)).unwrap().rows(), 1);
        assert!(err(parse_csv(b"1,2\n3\n", "f.csv", None)).contains("row 2 (line 2) has 1 columns"));
        assert!(err(parse_csv(b"x,y\n1,2\n3,abc\n", "f.csv", None)).contains("line 3, column 2: \"abc\""));
        assert!(err(parse_csv(b"1,2\n3,inf\n", "f.csv", None)).contains("line 2, column 2 is inf"));
    }

    #[test]
    fn standardising_fits_the_training_split_and_refuses_constant_columns() {
        let mut t = Table::new(2, vec![1.0, 5.0, 3.0, 5.5, 5.0, 6.0]);
        let s = Standardize::fit(&t, "f").unwrap();
        s.apply(&mut t);
        let mean0: f32 = (0..3).map(|i| t.row(i)[0]).sum::<f32>() / 3.0;
        assert!(mean0.abs() < 1e-6);
        s.invert(&mut t);
        assert!((t.row(2)[0] - 5.0).abs() < 1e-5);
        let c = Table::new(2, vec![1.0, 7.0, 2.0, 7.0]);
        assert!(format!("{:#}", Standardize::fit(&c, "f.npy").unwrap_err()).contains("column 2 is constant"));
    }

    #[test]
    fn fractions_split_every_row_once() {
        let t = Table::new(2, (0..20).map(|v| v as f32).collect());
        let [a, b, c] = split_by_fractions(&t, [0.8, 0.1, 0.1], 3, "f").unwrap();
        assert_eq!((a.rows(), b.rows(), c.rows()), (8, 1, 1));
        let mut all: Vec<f32> = [&a, &b, &c].iter().flat_map(|t| t.data.iter().step_by(2).copied()).collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, (0..10).map(|v| (2 * v) as f32).collect::<Vec<_>>());
        assert!(format!("{:#}", split_by_fractions(&t, [1.0, 0.0, 0.0], 3, "f").unwrap_err()).contains("test split"));
    }
}
