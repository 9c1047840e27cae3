//! Twin of shaders/permute.wgsl: out[row, i] = x[row, idx[i]].

pub fn gather(idx: &[u32], x: &[f64], out: &mut [f64], n: usize, q: usize) {
    for row in 0..n {
        for i in 0..q {
            out[row * q + i] = x[row * q + idx[i] as usize];
        }
    }
}
