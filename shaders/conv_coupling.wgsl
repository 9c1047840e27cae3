// conv_coupling.wgsl — the affine part of CONV.md's checkerboard and channel couplings over
// a region (n, C, h·w), the conditioner (conv.wgsl, channorm.wgsl) having written
// rm = (r, m), (n, c_rm, h·w) contiguous:
//   forward: u = y ⊙ exp(s) + m on the transformed elements, s = tanh(r), logdet += Σ s;
//            the conditioning elements are copied;
//   inverse: y = (u − m) ⊙ exp(−s) there.
// Which elements are transformed is index arithmetic (CHECKER: (i + j) mod 2 ≠ parity, rm
// channels (c, C + c); else channels c ≥ ⌊C/2⌋, rm channels (c − ⌊C/2⌋, C_b + c − ⌊C/2⌋)).
// Planes as in conv.wgsl: element (s, c, p) of model z at off + z·ms + s·rs + c·hw + p.
//
// Entry points: conv_coupling_forward, conv_coupling_inverse, conv_coupling_backward —
// thread per element of (n, C, hw); in the forward the thread of (s, 0, 0) also adds the
// sample's Σ s to logdet. The backward writes dy (=) (the direct part: du ⊙ exp(s), or du;
// the conditioner's share is added by conv.wgsl's data gradient) and, for transformed
// elements, drm (=) at their (r, m): dm = du, dr = (du·y·exp(s) + dld)·(1 − s²); the
// conditioning elements write drm = 0 where a checkerboard's rm drives nothing.
// PERMUTED (flags): the squeeze or channel reversal after the coupling (a gather over the
// compact output region, u'_i = u_{π(i)}) is folded in: the forward stores element e of the
// region at inv[e] (inv = π⁻¹, one per model, C·hw apart), and the backward reads ∂L/∂u_e at
// ∂L/∂u'_{inv[e]}, so that layer dispatches nothing of its own either way (its inverse
// still gathers: the conditioner reads the output's conditioning elements in place).
// Bindings: forward/inverse 0 uniform; 1 input (at x_off/x_rs); 2 rm; 3 output (at y_off/y_rs);
//           4 logdet (forward); 5 inv (forward). backward 0 uniform; 1 y (the forward's
//           input, x planes); 2 rm; 3 du (y planes); 4 dld; 5 dy (x planes); 6 drm; 7 inv.
// Dispatch: 1-D grid of 64-wide workgroups folded into y; z is the model.
// Twin: src/reference/conv_coupling.rs

struct ConvCoupling {
    n: u32, c: u32, hw: u32, w: u32,
    flags: u32, parity: u32, x_off: u32, x_rs: u32,
    y_off: u32, y_rs: u32, x_ms: u32, y_ms: u32,
    rm_off: u32, rm_ms: u32, ld_ms: u32, _p0: u32,
}

const CHECKER: u32 = 1u;
const PERMUTED: u32 = 2u;

@group(0) @binding(0) var<uniform> cc: ConvCoupling;
@group(0) @binding(1) var<storage, read> x_in: array<f32>;
@group(0) @binding(2) var<storage, read> rm: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> logdet: array<f32>;
@group(0) @binding(5) var<storage, read> inv_f: array<u32>;

// s = tanh(r), clamped as coupling.wgsl's bound (tanh(15) is 1 in f32).
fn bound(r: f32) -> f32 {
    return tanh(clamp(r, -15.0, 15.0));
}

fn element(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

fn rm_channels() -> u32 {
    if ((cc.flags & CHECKER) != 0u) {
        return 2u * cc.c;
    }
    return 2u * (cc.c - cc.c / 2u);
}

// The rm channel of r for element (c, p), or 0xffffffff when the element conditions; m's
// channel is r's + rm_channels()/2.
fn r_channel(c: u32, p: u32) -> u32 {
    if ((cc.flags & CHECKER) != 0u) {
        if (((p / cc.w + p % cc.w) % 2u) == cc.parity) {
            return 0xffffffffu;
        }
        return c;
    }
    if (c < cc.c / 2u) {
        return 0xffffffffu;
    }
    return c - cc.c / 2u;
}

fn rm_at(z: u32, s: u32, ch: u32, p: u32) -> u32 {
    return cc.rm_off + z * cc.rm_ms + (s * rm_channels() + ch) * cc.hw + p;
}

fn x_at(z: u32, s: u32, c: u32, p: u32) -> u32 {
    return cc.x_off + z * cc.x_ms + s * cc.x_rs + c * cc.hw + p;
}

fn y_at(z: u32, s: u32, c: u32, p: u32) -> u32 {
    return cc.y_off + z * cc.y_ms + s * cc.y_rs + c * cc.hw + p;
}

// Where element (c, p) of the output region lives: in place, or through the folded
// permutation (`inv`, the forward's or the backward's binding).
fn out_at(z: u32, s: u32, c: u32, p: u32, inv: u32) -> u32 {
    if ((cc.flags & PERMUTED) == 0u) {
        return y_at(z, s, c, p);
    }
    return cc.y_off + z * cc.y_ms + s * cc.y_rs + inv;
}

@compute @workgroup_size(64)
fn conv_coupling_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= cc.n * cc.c * cc.hw) {
        return;
    }
    let z = gid.z;
    let s = e / (cc.c * cc.hw);
    let c = (e / cc.hw) % cc.c;
    let p = e % cc.hw;
    let half = rm_channels() / 2u;
    let rc = r_channel(c, p);
    var v = x_in[x_at(z, s, c, p)];
    if (rc != 0xffffffffu) {
        v = v * exp(bound(rm[rm_at(z, s, rc, p)])) + rm[rm_at(z, s, rc + half, p)];
    }
    var inv = 0u;
    if ((cc.flags & PERMUTED) != 0u) {
        inv = inv_f[z * cc.c * cc.hw + c * cc.hw + p];
    }
    x_out[out_at(z, s, c, p, inv)] = v;
    if (c == 0u && p == 0u) {
        var ld = 0.0;
        for (var cc2 = 0u; cc2 < cc.c; cc2++) {
            for (var p2 = 0u; p2 < cc.hw; p2++) {
                let r2 = r_channel(cc2, p2);
                if (r2 != 0xffffffffu) {
                    ld += bound(rm[rm_at(z, s, r2, p2)]);
                }
            }
        }
        logdet[z * cc.ld_ms + s] += ld;
    }
}

@compute @workgroup_size(64)
fn conv_coupling_inverse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= cc.n * cc.c * cc.hw) {
        return;
    }
    let z = gid.z;
    let s = e / (cc.c * cc.hw);
    let c = (e / cc.hw) % cc.c;
    let p = e % cc.hw;
    let half = rm_channels() / 2u;
    let rc = r_channel(c, p);
    var v = x_in[x_at(z, s, c, p)];
    if (rc != 0xffffffffu) {
        v = (v - rm[rm_at(z, s, rc + half, p)]) * exp(-bound(rm[rm_at(z, s, rc, p)]));
    }
    x_out[y_at(z, s, c, p)] = v;
}

@group(0) @binding(3) var<storage, read> du: array<f32>;
@group(0) @binding(4) var<storage, read> dld: array<f32>;
@group(0) @binding(5) var<storage, read_write> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> drm: array<f32>;
@group(0) @binding(7) var<storage, read> inv_b: array<u32>;

@compute @workgroup_size(64)
fn conv_coupling_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= cc.n * cc.c * cc.hw) {
        return;
    }
    let z = gid.z;
    let s = e / (cc.c * cc.hw);
    let c = (e / cc.hw) % cc.c;
    let p = e % cc.hw;
    let half = rm_channels() / 2u;
    let rc = r_channel(c, p);
    var inv = 0u;
    if ((cc.flags & PERMUTED) != 0u) {
        inv = inv_b[z * cc.c * cc.hw + c * cc.hw + p];
    }
    let g = du[out_at(z, s, c, p, inv)];
    if (rc == 0xffffffffu) {
        dy[x_at(z, s, c, p)] = g;
        // A checkerboard's rm has channels (c, C + c) at every pixel; a conditioning pixel's
        // drive nothing.
        if ((cc.flags & CHECKER) != 0u) {
            drm[rm_at(z, s, c, p)] = 0.0;
            drm[rm_at(z, s, c + half, p)] = 0.0;
        }
        return;
    }
    let r = rm[rm_at(z, s, rc, p)];
    let sv = bound(r);
    let es = exp(sv);
    dy[x_at(z, s, c, p)] = g * es;
    drm[rm_at(z, s, rc + half, p)] = g;
    let dbound = select(0.0, 1.0 - sv * sv, abs(r) <= 15.0);
    drm[rm_at(z, s, rc, p)] = (g * x_in[x_at(z, s, c, p)] * es + dld[z * cc.ld_ms + s]) * dbound;
}
