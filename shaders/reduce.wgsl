// reduce.wgsl — column sums: out[out_off + j] = Σ_rows x[in_off + row·in_rs + j], written (=).
// The bias gradient of a linear layer is the column sum of its output gradient.
//
// Entry point: colsum — thread per column, looping over rows (N ≤ a few hundred in training).
// Bindings: 0 uniform Reduce; 1 x; 2 out. Grid z is the model: its input starts in_ms and its
// output out_ms elements after model z − 1's.
// Twin: src/reference/reduce.rs

struct Reduce {
    rows: u32, cols: u32, in_off: u32, in_rs: u32,
    out_off: u32, in_ms: u32, out_ms: u32, _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Reduce;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn colsum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.cols) {
        return;
    }
    let base = p.in_off + gid.z * p.in_ms + j;
    var acc = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        acc += x[base + r * p.in_rs];
    }
    out[p.out_off + gid.z * p.out_ms + j] = acc;
}
