//! Twin of gemm.wgsl's COLSUM epilogue (a weight gradient's GEMM writing its bias gradient):
//! column sums, as the reference backward (`flow::conditioner_backward`) computes them.

/// out[out_off + j] = Σ_rows x[in_off + row·in_rs + j].
pub fn colsum(rows: usize, cols: usize, x: &[f64], in_off: usize, in_rs: usize, out: &mut [f64], out_off: usize) {
    for j in 0..cols {
        out[out_off + j] = (0..rows).map(|r| x[in_off + r * in_rs + j]).sum();
    }
}
