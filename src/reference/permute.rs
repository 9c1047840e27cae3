//! Twin of shaders/permute.wgsl: out[row, i] = x[row, idx[i]].

pub fn gather(idx: &[u32], x: &[f64], out: &mut [f64], n: usize, q: usize) {
    for row in 0..n {
        for i in 0..q {
            out[row * q + i] = x[row * q + idx[i] as usize];
        }
    }
}

/// Twin of copy_columns: `cols` columns of `n` rows from (x, off, rs) to (out, off, rs).
pub fn copy_columns(n: usize, cols: usize, x: &[f64], x_at: (usize, usize), out: &mut [f64], out_at: (usize, usize)) {
    for row in 0..n {
        for j in 0..cols {
            out[out_at.0 + row * out_at.1 + j] = x[x_at.0 + row * x_at.1 + j];
        }
    }
}
