//! Twin of shaders/rng.wgsl: Philox4x32-10 and Box–Muller, bit for bit on the integers.

/// Philox4x32-10 (Salmon et al. 2011).
pub fn philox(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let p0 = 0xD251_1F53u64 * c[0] as u64;
        let p1 = 0xCD9E_8D57u64 * c[2] as u64;
        c = [((p1 >> 32) as u32) ^ c[1] ^ k[0], p1 as u32, ((p0 >> 32) as u32) ^ c[3] ^ k[1], p0 as u32];
        k = [k[0].wrapping_add(0x9E37_79B9), k[1].wrapping_add(0xBB67_AE85)];
    }
    c
}

/// The standard normal at `index` of `stream` for step `t` and `seed` (as the shader, in f64).
pub fn normal_at(seed: u64, t: u32, stream: u32, index: u32) -> f64 {
    let w = philox([index / 2, t, stream, 0], [seed as u32, (seed >> 32) as u32]);
    let u1 = ((w[0] >> 8) as f64 + 0.5) / 16_777_216.0;
    let u2 = ((w[1] >> 8) as f64 + 0.5) / 16_777_216.0;
    let r = (-2.0 * u1.ln()).sqrt();
    let theta = std::f64::consts::TAU * u2;
    if index.is_multiple_of(2) {
        r * theta.cos()
    } else {
        r * theta.sin()
    }
}

/// y (n, q) = [x row ⌊r/repeat⌋, ε] with ε drawn at index r·(q−d) + b.
pub fn assemble(seed: u64, t: u32, stream: u32, x: &[f64], y: &mut [f64], n: usize, d: usize, q: usize, repeat: usize) {
    for row in 0..n {
        for i in 0..q {
            y[row * q + i] = if i < d {
                x[(row / repeat) * d + i]
            } else {
                normal_at(seed, t, stream, (row * (q - d) + i - d) as u32)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_published_known_answers() {
        // Random123's kat_vectors for philox4x32_10.
        assert_eq!(philox([0, 0, 0, 0], [0, 0]), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]);
        assert_eq!(philox([0xffff_ffff; 4], [0xffff_ffff; 2]), [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]);
        assert_eq!(
            philox([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], [0xa409_3822, 0x299f_31d0]),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }
}
