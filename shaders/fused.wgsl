// fused.wgsl — a whole AffineCoupling(Q) in one dispatch, tiny-cuda-nn's fully fused MLP:
// the conditioner (Linear → ReLU, `depth` times, then the linear output rm = (r, m)) runs
// on a tile of TILE rows whose activations never leave workgroup memory, then the affine
// part of coupling.wgsl:
//   forward: u_a = y_a, u_b = y_b ⊙ exp(s) + m, s = tanh(r), logdet += Σ s
//   inverse: y_a = u_a, y_b = (u_b − m) ⊙ exp(−s)
// Evaluation and sampling use it (nothing is kept for a backward pass); the host falls back
// to GEMMs + coupling.wgsl when a layer is wider than MAX_W or deeper than MAX_LIN.
//
// Entry points: fused_coupling_forward, fused_coupling_inverse — one workgroup of 64 per
// tile of TILE rows; in each linear, thread t owns output columns t, t + 64, … for all TILE
// rows (each weight is read once per tile and reused across the rows from registers).
// Bindings: 0 uniform Fused; 1 params (flat, one copy per model, stride ps); 2 x_in (N, Q);
//           3 x_out (N, Q); 4 logdet (N) (forward only); 5 inv (Q per model) (forward,
//           PERMUTED: the following permutation folded into the store, as coupling.wgsl).
// Workgroup memory: two TILE × MAX_W f32 ping-pong buffers, 16 KiB (WebGPU's default limit).
// Dispatch: tiles folded into y past 65535; z is the model.
// Twin: src/reference/fused.rs

const TILE: u32 = 8u;
const MAX_W: u32 = 256u;
const MAX_LIN: u32 = 17u;

struct Fused {
    n: u32, q: u32, h: u32, nlin: u32,
    ps: u32, flags: u32, _p1: u32, _p2: u32,
    // Per linear k: (weight offset, bias offset, fan_in, fan_out), W stored [fan_in][fan_out].
    lin: array<vec4<u32>, MAX_LIN>,
}

@group(0) @binding(0) var<uniform> p: Fused;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> x_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> logdet: array<f32>;
@group(0) @binding(5) var<storage, read> inv_f: array<u32>;

const PERMUTED: u32 = 1u;

var<workgroup> act: array<f32, 4096>; // 2 · TILE · MAX_W

// s = tanh(r), clamped as coupling.wgsl does (the same bound in forward, inverse, log-det).
fn bound(r: f32) -> f32 {
    return tanh(clamp(r, -15.0, 15.0));
}

// Runs the conditioner on the first h columns of x_in's rows row0.. (zeros past N); returns
// the offset in `act` of the tile's rm rows (row r at offset + r · MAX_W).
fn conditioner(row0: u32, z: u32, lid: u32) -> u32 {
    let pz = z * p.ps;
    for (var e = lid; e < TILE * p.h; e += 64u) {
        let r = e / p.h;
        let i = e % p.h;
        let row = row0 + r;
        var v = 0.0;
        if (row < p.n) {
            v = x_in[(z * p.n + row) * p.q + i];
        }
        act[r * MAX_W + i] = v;
    }
    workgroupBarrier();
    var src = 0u;
    for (var k = 0u; k < p.nlin; k++) {
        let l = p.lin[k];
        let dst = TILE * MAX_W - src;
        let relu = k + 1u < p.nlin;
        for (var j = lid; j < l.w; j += 64u) {
            var acc: array<f32, 8>;
            let b = params[pz + l.y + j];
            for (var r = 0u; r < TILE; r++) {
                acc[r] = b;
            }
            for (var i = 0u; i < l.z; i++) {
                let w = params[pz + l.x + i * l.w + j];
                for (var r = 0u; r < TILE; r++) {
                    acc[r] += act[src + r * MAX_W + i] * w;
                }
            }
            for (var r = 0u; r < TILE; r++) {
                act[dst + r * MAX_W + j] = select(acc[r], max(acc[r], 0.0), relu);
            }
        }
        workgroupBarrier();
        src = dst;
    }
    return src;
}

fn tile_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wg.x + wg.y * nwg.x) * TILE;
}

@compute @workgroup_size(64)
fn fused_coupling_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = tile_of(wg, nwg);
    let rm = conditioner(row0, wg.z, lid);
    let nb = p.q - p.h;
    for (var e = lid; e < TILE * p.q; e += 64u) {
        let r = e / p.q;
        let i = e % p.q;
        let row = row0 + r;
        if (row < p.n) {
            let x = (wg.z * p.n + row) * p.q + i;
            var dst = x;
            if ((p.flags & PERMUTED) != 0u) {
                dst = x - i + inv_f[wg.z * p.q + i];
            }
            if (i < p.h) {
                x_out[dst] = x_in[x];
            } else {
                let j = i - p.h;
                x_out[dst] = x_in[x] * exp(bound(act[rm + r * MAX_W + j])) + act[rm + r * MAX_W + nb + j];
            }
        }
    }
    if (lid < TILE && row0 + lid < p.n) {
        var ld = 0.0;
        for (var j = 0u; j < nb; j++) {
            ld += bound(act[rm + lid * MAX_W + j]);
        }
        logdet[wg.z * p.n + row0 + lid] += ld;
    }
}

@compute @workgroup_size(64)
fn fused_coupling_inverse(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = tile_of(wg, nwg);
    let rm = conditioner(row0, wg.z, lid);
    let nb = p.q - p.h;
    for (var e = lid; e < TILE * p.q; e += 64u) {
        let r = e / p.q;
        let i = e % p.q;
        let row = row0 + r;
        if (row < p.n) {
            let x = (wg.z * p.n + row) * p.q + i;
            if (i < p.h) {
                x_out[x] = x_in[x];
            } else {
                let j = i - p.h;
                x_out[x] = (x_in[x] - act[rm + r * MAX_W + nb + j]) * exp(-bound(act[rm + r * MAX_W + j]));
            }
        }
    }
}
