//! Scalar decoders from ggml blocks to f32, written from the `block_*` layouts of ggml's
//! `ggml-common.h` and its `dequantize_row_*` reference functions (same order of float
//! operations, so results are bit-identical to ggml's scalar path).
//!
//! Import uses them for the types `.lpk` cannot store (`q4_1`, `q5_0`, `q5_1`, `q5_k`, `q8_1`); export and
//! the tests use them for the rest.

use half::{bf16, f16};

use super::types::GgmlType;

/// True when [`dequantize_row`] can decode `ty`.
pub fn supported(ty: GgmlType) -> bool {
    use GgmlType as G;
    matches!(
        ty,
        G::F32
            | G::F16
            | G::BF16
            | G::Q4_0
            | G::Q4_1
            | G::Q5_0
            | G::Q5_1
            | G::Q8_0
            | G::Q8_1
            | G::Q4K
            | G::Q5K
            | G::Q6K
    )
}

fn h(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Decodes `src` (whole blocks of `ty`) into `dst`.
///
/// Returns `false` (writing nothing) when `ty` is not [`supported`]. Panics when `src` is not
/// exactly the size of `dst.len()` elements of `ty`; callers size both from a validated shape.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> bool {
    if !supported(ty) {
        return false;
    }
    let bl = ty.block_len() as usize;
    let bb = ty.block_bytes() as usize;
    assert!(
        dst.len().is_multiple_of(bl) && src.len() == dst.len() / bl * bb,
        "{ty}: {} bytes for {} elements",
        src.len(),
        dst.len()
    );
    for (b, y) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(bl)) {
        match ty {
            GgmlType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            GgmlType::F16 => y[0] = h(b, 0),
            GgmlType::BF16 => y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            GgmlType::Q4_0 => q4_0(b, y),
            GgmlType::Q4_1 => q4_1(b, y),
            GgmlType::Q5_0 => q5_0(b, y),
            GgmlType::Q5_1 => q5_1(b, y),
            GgmlType::Q8_0 => q8_0(b, y),
            GgmlType::Q8_1 => q8_1(b, y),
            GgmlType::Q4K => q4_k(b, y),
            GgmlType::Q5K => q5_k(b, y),
            GgmlType::Q6K => q6_k(b, y),
            _ => unreachable!("checked by supported()"),
        }
    }
    true
}

/// `block_q4_0 { f16 d; u8 qs[16]; }`: `x[j] = d * (lo(qs[j]) - 8)`, `x[j+16] = d * (hi - 8)`.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = ((q & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// `block_q4_1 { f16 d, m; u8 qs[16]; }`: `x = d * q + m`.
fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (h(b, 0), h(b, 2));
    for (j, &q) in b[4..20].iter().enumerate() {
        y[j] = (q & 0xF) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// `block_q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }`: 5-bit `q` (bit 4 of element j is bit j of
/// `qh`), `x = d * (q - 16)`.
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, &q) in b[6..22].iter().enumerate() {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = ((u32::from(q & 0xF) | h0) as i32 - 16) as f32 * d;
        y[j + 16] = ((u32::from(q >> 4) | h1) as i32 - 16) as f32 * d;
    }
}

/// `block_q5_1 { f16 d, m; u8 qh[4]; u8 qs[16]; }`: `x = d * q + m`.
fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (h(b, 0), h(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for (j, &q) in b[8..24].iter().enumerate() {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = (u32::from(q & 0xF) | h0) as f32 * d + m;
        y[j + 16] = (u32::from(q >> 4) | h1) as f32 * d + m;
    }
}

/// `block_q8_0 { f16 d; i8 qs[32]; }`: `x = d * q`.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for (j, &q) in b[2..34].iter().enumerate() {
        y[j] = f32::from(q as i8) * d;
    }
}

/// `block_q8_1 { f16 d, s; i8 qs[32]; }` (`s = d * Σq`, unused here): `x = d * q`.
fn q8_1(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for (j, &q) in b[4..36].iter().enumerate() {
        y[j] = f32::from(q as i8) * d;
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `block_q4_K { f16 d, dmin; u8 scales[12]; u8 qs[128]; }`: sub-block `s` of 32 is
/// `x = d * sc[s] * q - dmin * m[s]`; each 32 bytes of `qs` hold two sub-blocks (low nibbles
/// first).
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (h(b, 0), h(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for (k, (q, out)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc, m) = scale_min_k4(2 * k, scales);
        let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
        let (sc, m) = scale_min_k4(2 * k + 1, scales);
        let (d2, m2) = (d * f32::from(sc), dmin * f32::from(m));
        for l in 0..32 {
            out[l] = d1 * f32::from(q[l] & 0xF) - m1;
            out[l + 32] = d2 * f32::from(q[l] >> 4) - m2;
        }
    }
}

/// `block_q5_K { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }`: as `q4_k` with a fifth
/// bit per element from `qh` (bit `2k` for the low-nibble sub-block of pair `k`, `2k+1` for
/// the high one).
fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (h(b, 0), h(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for (k, (ql, out)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc, m) = scale_min_k4(2 * k, scales);
        let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
        let (sc, m) = scale_min_k4(2 * k + 1, scales);
        let (d2, m2) = (d * f32::from(sc), dmin * f32::from(m));
        let (u1, u2) = (1u8 << (2 * k), 2u8 << (2 * k));
        for l in 0..32 {
            let hi1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let hi2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            out[l] = d1 * f32::from((ql[l] & 0xF) + hi1) - m1;
            out[l + 32] = d2 * f32::from((ql[l] >> 4) + hi2) - m2;
        }
    }
}

/// `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }`: 6-bit `q` from 4 low bits
/// (`ql`) and 2 high bits (`qh`), `x = d * scales[s] * (q - 32)` for sub-blocks of 16.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = h(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let out = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |i: usize| f32::from(sc[is + i] as i8);
            out[l] = d * s(0) * q1 as f32;
            out[l + 32] = d * s(2) * q2 as f32;
            out[l + 64] = d * s(4) * q3 as f32;
            out[l + 96] = d * s(6) * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16b(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    fn decode(ty: GgmlType, b: &[u8]) -> Vec<f32> {
        let n = b.len() / ty.block_bytes() as usize * ty.block_len() as usize;
        let mut y = vec![f32::NAN; n];
        assert!(dequantize_row(ty, b, &mut y));
        y
    }

    #[test]
    fn gguf_dequant_q4_0_and_q4_1() {
        // Element j in the low nibble of byte j, element j + 16 in the high nibble.
        let mut b = f16b(0.5).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = decode(GgmlType::Q4_0, &b);
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5);
        }
        let mut b = f16b(2.0).to_vec();
        b.extend(f16b(-1.0));
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = decode(GgmlType::Q4_1, &b);
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 2.0 - 1.0);
            assert_eq!(y[j + 16], (15 - j) as f32 * 2.0 - 1.0);
        }
    }

    #[test]
    fn gguf_dequant_q5_0_and_q5_1() {
        // Elements 0..16 get q = j (+16 when j is odd via qh bit j); 16..32 get 15 - j (+16 for
        // j ≥ 8 via qh bit j + 16).
        let mut qh = 0u32;
        for j in 0..16 {
            if j % 2 == 1 {
                qh |= 1 << j;
            }
            if j >= 8 {
                qh |= 1 << (j + 16);
            }
        }
        let nibbles: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let expect = |j: usize| -> (f32, f32) {
            let lo = j as f32 + if j % 2 == 1 { 16.0 } else { 0.0 };
            let hi = (15 - j) as f32 + if j >= 8 { 16.0 } else { 0.0 };
            (lo, hi)
        };
        let mut b = f16b(0.25).to_vec();
        b.extend(qh.to_le_bytes());
        b.extend(&nibbles);
        let y = decode(GgmlType::Q5_0, &b);
        for j in 0..16 {
            let (lo, hi) = expect(j);
            assert_eq!(
                (y[j], y[j + 16]),
                ((lo - 16.0) * 0.25, (hi - 16.0) * 0.25),
                "{j}"
            );
        }
        let mut b = f16b(0.5).to_vec();
        b.extend(f16b(3.0));
        b.extend(qh.to_le_bytes());
        b.extend(&nibbles);
        let y = decode(GgmlType::Q5_1, &b);
        for j in 0..16 {
            let (lo, hi) = expect(j);
            assert_eq!((y[j], y[j + 16]), (lo * 0.5 + 3.0, hi * 0.5 + 3.0), "{j}");
        }
    }

    #[test]
    fn gguf_dequant_q8_0_and_q8_1() {
        let qs: Vec<u8> = (0..32).map(|j| (j as i8 * 4 - 64) as u8).collect();
        let mut b = f16b(0.125).to_vec();
        b.extend(&qs);
        let y = decode(GgmlType::Q8_0, &b);
        let mut b1 = f16b(0.125).to_vec();
        b1.extend(f16b(1234.0)); // the sum field is ignored
        b1.extend(&qs);
        assert_eq!(decode(GgmlType::Q8_1, &b1), y);
        for (j, v) in y.iter().enumerate() {
            assert_eq!(*v, (j as f32 * 4.0 - 64.0) * 0.125);
        }
    }

    /// Packs 8 six-bit scales and mins the way `get_scale_min_k4` unpacks them.
    fn pack_k4(sc: [u8; 8], m: [u8; 8]) -> [u8; 12] {
        let mut q = [0u8; 12];
        for j in 0..4 {
            q[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
            q[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
            q[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
        }
        q
    }

    #[test]
    fn gguf_dequant_k_scale_packing() {
        let sc = [1, 20, 33, 63, 17, 48, 5, 62];
        let m = [63, 0, 40, 7, 50, 31, 16, 61];
        let q = pack_k4(sc, m);
        for j in 0..8 {
            assert_eq!(scale_min_k4(j, &q), (sc[j], m[j]), "{j}");
        }
    }

    #[test]
    fn gguf_dequant_q4_k_and_q5_k() {
        let sc = [1, 2, 3, 4, 5, 6, 7, 63];
        let m = [0, 1, 2, 3, 60, 5, 6, 7];
        let (d, dmin) = (0.5f32, 0.25f32);
        // Byte l of pair k: low nibble l % 16, high nibble 15 - l % 16.
        let qs: Vec<u8> = (0..128)
            .map(|i| (i % 16) as u8 | ((15 - (i % 16) as u8) << 4))
            .collect();
        let nib = |e: usize| -> u8 {
            let (sub, l) = (e / 32, e % 32);
            if sub % 2 == 0 {
                (l % 16) as u8
            } else {
                15 - (l % 16) as u8
            }
        };
        let mut b = f16b(d).to_vec();
        b.extend(f16b(dmin));
        b.extend(pack_k4(sc, m));
        b.extend(&qs);
        let y = decode(GgmlType::Q4K, &b);
        for (e, v) in y.iter().enumerate() {
            let s = e / 32;
            let want = d * f32::from(sc[s]) * f32::from(nib(e)) - dmin * f32::from(m[s]);
            assert_eq!(*v, want, "{e}");
        }
        // q5_k: the fifth bit of element l of sub-block s is bit s of qh[l]; set it when l is
        // odd.
        let qh: Vec<u8> = (0..32).map(|l| if l % 2 == 1 { 0xFF } else { 0 }).collect();
        let mut b = f16b(d).to_vec();
        b.extend(f16b(dmin));
        b.extend(pack_k4(sc, m));
        b.extend(&qh);
        b.extend(&qs);
        let y = decode(GgmlType::Q5K, &b);
        for (e, v) in y.iter().enumerate() {
            let s = e / 32;
            let q = nib(e) + if (e % 32) % 2 == 1 { 16 } else { 0 };
            let want = d * f32::from(sc[s]) * f32::from(q) - dmin * f32::from(m[s]);
            assert_eq!(*v, want, "{e}");
        }
    }

    #[test]
    fn gguf_dequant_q6_k() {
        // Element e = 128h + 32r + l (r = 0..4 selects the nibble/2-bit field) gets
        // q = (e * 7) % 64 and scale index 8h + 2r + l / 16.
        let mut ql = [0u8; 128];
        let mut qh = [0u8; 64];
        let q_of = |e: usize| ((e * 7) % 64) as u8;
        for e in 0..256 {
            let (hh, r, l) = (e / 128, (e % 128) / 32, e % 32);
            let q = q_of(e);
            let byte = 64 * hh + l + if r % 2 == 1 { 32 } else { 0 };
            ql[byte] |= if r < 2 { q & 0xF } else { (q & 0xF) << 4 };
            qh[32 * hh + l] |= (q >> 4) << (2 * r);
        }
        let scales: Vec<i8> = (0..16).map(|i| i as i8 * 3 - 20).collect();
        let d = 0.03125f32;
        let mut b = ql.to_vec();
        b.extend(qh);
        b.extend(scales.iter().map(|&s| s as u8));
        b.extend(f16b(d));
        let y = decode(GgmlType::Q6K, &b);
        for (e, v) in y.iter().enumerate() {
            let (hh, r, l) = (e / 128, (e % 128) / 32, e % 32);
            let s = f32::from(scales[8 * hh + 2 * r + l / 16]);
            assert_eq!(*v, d * s * (i32::from(q_of(e)) - 32) as f32, "{e}");
        }
    }

    #[test]
    fn gguf_dequant_floats_and_unsupported() {
        let b: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(decode(GgmlType::F32, &b), [1.5, -2.0]);
        let b: Vec<u8> = [f16b(0.5), f16b(-3.0)].concat();
        assert_eq!(decode(GgmlType::F16, &b), [0.5, -3.0]);
        let b: Vec<u8> = [bf16::from_f32(7.0), bf16::from_f32(-0.25)]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(decode(GgmlType::BF16, &b), [7.0, -0.25]);
        let mut y = [0f32; 256];
        assert!(!dequantize_row(GgmlType::Q2K, &[0; 84], &mut y));
    }
}
