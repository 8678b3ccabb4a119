//! One small adapter per block format: how the optimizer chooses a block's scales (the crate's
//! importance-weighted encoder), writes chosen codes into a block with those scales, reads
//! them back, and reaches the block's f16 scale fields for the refit.
//!
//! A *code* is the integer a block stores for one value, in element order, mapped so that the
//! decoded value is monotone in the code within a sub-block (q8_0's `q + 128`, q3_k's `q + 4`,
//! the iq4 grid index, the plain unsigned quant elsewhere). Every value of a sub-block shares
//! one grid, so [`tables`] learns a block's grids by decoding it with every code in turn: the
//! decoder is the one definition of a value, and no format's arithmetic is repeated here.

use half::f16;
use llamapack_format::blocks::{
    BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0,
    BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, QK_K,
};

use crate::format::BlockFormat;
use crate::kquant_search::{make_qkx2_quants, make_qx_quants};

/// What the optimizer needs of a block format beyond [`BlockFormat`].
pub(crate) trait Grid: BlockFormat {
    /// Values per block.
    const BLOCK: usize;
    /// Values per sub-block (one grid each).
    const SUB: usize;
    /// Codes are `FIRST..LEVELS`.
    const LEVELS: usize;
    /// The smallest code used (q8_0 leaves out −128, as its encoder does).
    const FIRST: usize = 0;
    /// How many f16 block scales the refit moves: `d`, and `dmin` / `m` where there is one.
    const N_SCALES: usize;
    /// Sets `y`'s scales (its codes are written later by [`Grid::pack`]) for the values `x`
    /// with importance `qw`, by the crate's weighted encoder. `sigma2` is the row's mean
    /// square, the statistic ggml's q4_0/q4_1/q5_0/q5_1 weights take over the whole row.
    fn choose(x: &[f32], qw: &[f32], sigma2: f32, y: &mut Self::Block);
    /// Writes `codes` (one per value, element order) into `y`, keeping its scales.
    fn pack(codes: &[u8], y: &mut Self::Block);
    /// Reads `y`'s codes.
    fn unpack(y: &Self::Block, codes: &mut [u8]);
    /// The f16 scales (`[d, 0]` for one-scale formats).
    fn scales(y: &Self::Block) -> [f16; 2];
    /// Sets the f16 scales.
    fn set_scales(y: &mut Self::Block, s: [f16; 2]);
    /// The range of the integer sub-block scales (one per [`Grid::SUB`] values), in formats
    /// that have them (the k-quants, iq4_xs).
    const SUB_SCALES: Option<(i32, i32)> = None;
    /// The range of the integer sub-block mins (q2_k, q4_k, q5_k).
    const SUB_MINS: Option<(i32, i32)> = None;
    /// Reads the sub-block scales (and mins) as the values they multiply by.
    fn sub_scales(_y: &Self::Block, _sc: &mut [i32], _m: &mut [i32]) {}
    /// Writes the sub-block scales (and mins), each within its range.
    fn set_sub_scales(_y: &mut Self::Block, _sc: &[i32], _m: &[i32]) {}
}

/// Every sub-block's grid of `y`: `out[s·LEVELS + c]` is the value code `c` decodes to in
/// sub-block `s` (codes below `FIRST` are left untouched). `out` holds
/// `BLOCK / SUB · LEVELS` values.
#[inline(always)]
pub(crate) fn tables<F: Grid>(y: &F::Block, out: &mut [f32]) {
    let mut codes = [0u8; QK_K];
    let mut vals = [0f32; QK_K];
    let mut b = *y;
    for c in F::FIRST..F::LEVELS {
        codes[..F::BLOCK].fill(c as u8);
        F::pack(&codes[..F::BLOCK], &mut b);
        F::dequantize_ref(std::slice::from_ref(&b), &mut vals[..F::BLOCK]);
        for (s, t) in out.chunks_exact_mut(F::LEVELS).enumerate() {
            t[c] = vals[s * F::SUB];
        }
    }
}

/// The code of `grid` (one sub-block's table, monotone over `first..grid.len()`) nearest to
/// `x` (the lower code on a tie).
#[inline(always)]
pub(crate) fn nearest(grid: &[f32], first: usize, x: f32) -> usize {
    let last = grid.len() - 1;
    let rising = grid[first] <= grid[last];
    // The first code at or past x in the grid's direction.
    let (mut lo, mut hi) = (first, last);
    while lo < hi {
        let mid = usize::midpoint(lo, hi);
        let past = if rising {
            grid[mid] >= x
        } else {
            grid[mid] <= x
        };
        if past {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo > first && (x - grid[lo - 1]).abs() <= (grid[lo] - x).abs() {
        lo - 1
    } else {
        lo
    }
}

/// See [`super::check_blocks`]: `bytes` is a whole number of `F` blocks.
pub(crate) fn check_blocks<F: Grid>(bytes: &[u8]) -> Result<(), crate::Error> {
    let bad = |block: usize, reason: &'static str| {
        Err(crate::Error::InvalidBlock {
            dtype: F::DTYPE,
            block,
            reason,
        })
    };
    let mut codes = [0u8; QK_K];
    let mut vals = [0f32; QK_K];
    for (b, raw) in bytes.chunks_exact(size_of::<F::Block>()).enumerate() {
        let y: F::Block = bytemuck::pod_read_unaligned(raw);
        let s = F::scales(&y);
        if !(s[0].is_finite() && s[1].is_finite()) {
            return bad(b, "a scale is not finite");
        }
        F::unpack(&y, &mut codes[..F::BLOCK]);
        if codes[..F::BLOCK]
            .iter()
            .any(|&c| usize::from(c) < F::FIRST || usize::from(c) >= F::LEVELS)
        {
            return bad(b, "a code is out of range");
        }
        let mut again = y;
        F::pack(&codes[..F::BLOCK], &mut again);
        if bytemuck::bytes_of(&again) != raw {
            return bad(b, "repacking its codes changes it");
        }
        F::dequantize_ref(std::slice::from_ref(&y), &mut vals[..F::BLOCK]);
        if vals[..F::BLOCK].iter().any(|v| !v.is_finite()) {
            return bad(b, "a value decodes to a non-finite number");
        }
    }
    Ok(())
}

/// ggml's weights `qw·sqrt(σ² + x²)`.
fn sigma_weights(x: &[f32], qw: &[f32], sigma2: f32, w: &mut [f32]) {
    for ((w, &q), &v) in w.iter_mut().zip(qw).zip(x) {
        *w = q * (sigma2 + v * v).sqrt();
    }
}

/// The weighted encoder through the kernel table (the k-quants, q6_k, the iq4 formats and
/// q8_0, whose block statistics do not reach past one block).
fn choose_by_table<F: Grid>(x: &[f32], qw: &[f32], y: &mut F::Block) {
    crate::kernels()
        .quantize_weighted_row(F::DTYPE, x, bytemuck::bytes_of_mut(y), qw)
        .expect("block of checked, finite values");
}

/// Packs 32 4-bit codes as q4_0 / q4_1 / iq4_nl store them.
#[inline(always)]
fn pack_nibbles(codes: &[u8], qs: &mut [u8]) {
    for j in 0..16 {
        qs[j] = codes[j] | (codes[j + 16] << 4);
    }
}

/// Reads 32 4-bit codes packed as by [`pack_nibbles`].
#[inline(always)]
fn unpack_nibbles(qs: &[u8], codes: &mut [u8]) {
    for j in 0..16 {
        codes[j] = qs[j] & 0x0f;
        codes[j + 16] = qs[j] >> 4;
    }
}

impl Grid for crate::q4_0::Q4_0 {
    const BLOCK: usize = 32;
    const SUB: usize = 32;
    const LEVELS: usize = 16;
    const N_SCALES: usize = 1;
    fn choose(x: &[f32], qw: &[f32], sigma2: f32, y: &mut BlockQ4_0) {
        let mut w = [0f32; 32];
        sigma_weights(x, qw, sigma2, &mut w);
        let mut l = [0i8; 32];
        y.d = f16::from_f32(make_qx_quants(8, x, &mut l, Some(&w)));
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ4_0) {
        pack_nibbles(codes, &mut y.qs);
    }
    #[inline(always)]
    fn unpack(y: &BlockQ4_0, codes: &mut [u8]) {
        unpack_nibbles(&y.qs, codes);
    }
    #[inline(always)]
    fn scales(y: &BlockQ4_0) -> [f16; 2] {
        [y.d, f16::ZERO]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ4_0, s: [f16; 2]) {
        y.d = s[0];
    }
}

impl Grid for crate::q4_1::Q4_1 {
    const BLOCK: usize = 32;
    const SUB: usize = 32;
    const LEVELS: usize = 16;
    const N_SCALES: usize = 2;
    fn choose(x: &[f32], qw: &[f32], sigma2: f32, y: &mut BlockQ4_1) {
        let mut w = [0f32; 32];
        sigma_weights(x, qw, sigma2, &mut w);
        let (mut l, mut laux) = ([0u8; 32], [0u8; 32]);
        let (d, the_min) = make_qkx2_quants(crate::weighted::qkx3(15), x, &w, &mut l, &mut laux);
        y.d = f16::from_f32(d);
        y.m = f16::from_f32(-the_min);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ4_1) {
        pack_nibbles(codes, &mut y.qs);
    }
    #[inline(always)]
    fn unpack(y: &BlockQ4_1, codes: &mut [u8]) {
        unpack_nibbles(&y.qs, codes);
    }
    #[inline(always)]
    fn scales(y: &BlockQ4_1) -> [f16; 2] {
        [y.d, y.m]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ4_1, s: [f16; 2]) {
        [y.d, y.m] = s;
    }
}

impl Grid for crate::q5_0::Q5_0 {
    const BLOCK: usize = 32;
    const SUB: usize = 32;
    const LEVELS: usize = 32;
    const N_SCALES: usize = 1;
    fn choose(x: &[f32], qw: &[f32], sigma2: f32, y: &mut BlockQ5_0) {
        let mut w = [0f32; 32];
        sigma_weights(x, qw, sigma2, &mut w);
        let mut l = [0i8; 32];
        y.d = f16::from_f32(make_qx_quants(16, x, &mut l, Some(&w)));
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ5_0) {
        y.qh = crate::q5_0::pack5(codes.try_into().expect("32 codes"), &mut y.qs);
    }
    #[inline(always)]
    fn unpack(y: &BlockQ5_0, codes: &mut [u8]) {
        codes.copy_from_slice(&crate::q5_0::unpack5(&y.qs, y.qh));
    }
    #[inline(always)]
    fn scales(y: &BlockQ5_0) -> [f16; 2] {
        [y.d, f16::ZERO]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ5_0, s: [f16; 2]) {
        y.d = s[0];
    }
}

impl Grid for crate::q5_1::Q5_1 {
    const BLOCK: usize = 32;
    const SUB: usize = 32;
    const LEVELS: usize = 32;
    const N_SCALES: usize = 2;
    fn choose(x: &[f32], qw: &[f32], sigma2: f32, y: &mut BlockQ5_1) {
        let mut w = [0f32; 32];
        sigma_weights(x, qw, sigma2, &mut w);
        let (mut l, mut laux) = ([0u8; 32], [0u8; 32]);
        let (d, the_min) = make_qkx2_quants(crate::weighted::qkx3(31), x, &w, &mut l, &mut laux);
        y.d = f16::from_f32(d);
        y.m = f16::from_f32(-the_min);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ5_1) {
        y.qh = crate::q5_0::pack5(codes.try_into().expect("32 codes"), &mut y.qs);
    }
    #[inline(always)]
    fn unpack(y: &BlockQ5_1, codes: &mut [u8]) {
        codes.copy_from_slice(&crate::q5_0::unpack5(&y.qs, y.qh));
    }
    #[inline(always)]
    fn scales(y: &BlockQ5_1) -> [f16; 2] {
        [y.d, y.m]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ5_1, s: [f16; 2]) {
        [y.d, y.m] = s;
    }
}

impl Grid for crate::q8_0::Q8_0 {
    const BLOCK: usize = 32;
    const SUB: usize = 32;
    const LEVELS: usize = 256;
    const FIRST: usize = 1;
    const N_SCALES: usize = 1;
    fn choose(x: &[f32], qw: &[f32], _sigma2: f32, y: &mut BlockQ8_0) {
        choose_by_table::<Self>(x, qw, y);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ8_0) {
        for (q, &c) in y.qs.iter_mut().zip(codes) {
            *q = (i16::from(c) - 128) as i8;
        }
    }
    #[inline(always)]
    fn unpack(y: &BlockQ8_0, codes: &mut [u8]) {
        for (c, &q) in codes.iter_mut().zip(&y.qs) {
            *c = (i16::from(q) + 128) as u8;
        }
    }
    #[inline(always)]
    fn scales(y: &BlockQ8_0) -> [f16; 2] {
        [y.d, f16::ZERO]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ8_0, s: [f16; 2]) {
        y.d = s[0];
    }
}

impl Grid for crate::q2_k::Q2K {
    const BLOCK: usize = QK_K;
    const SUB: usize = 16;
    const LEVELS: usize = 4;
    const N_SCALES: usize = 2;
    fn choose(x: &[f32], qw: &[f32], _sigma2: f32, y: &mut BlockQ2K) {
        choose_by_table::<Self>(x, qw, y);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ2K) {
        crate::q2_k::pack_quants(codes.try_into().expect("256 codes"), y);
    }
    #[inline(always)]
    fn unpack(y: &BlockQ2K, codes: &mut [u8]) {
        for (e, c) in codes.iter_mut().enumerate() {
            *c = crate::q2_k::q2(y, e / 128, (e / 32) % 4, e % 32);
        }
    }
    #[inline(always)]
    fn scales(y: &BlockQ2K) -> [f16; 2] {
        [y.d, y.dmin]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ2K, s: [f16; 2]) {
        [y.d, y.dmin] = s;
    }
    const SUB_SCALES: Option<(i32, i32)> = Some((0, 15));
    const SUB_MINS: Option<(i32, i32)> = Some((0, 15));
    fn sub_scales(y: &BlockQ2K, sc: &mut [i32], m: &mut [i32]) {
        for ((s, m), &b) in sc.iter_mut().zip(m.iter_mut()).zip(&y.scales) {
            *s = i32::from(b & 0x0f);
            *m = i32::from(b >> 4);
        }
    }
    fn set_sub_scales(y: &mut BlockQ2K, sc: &[i32], m: &[i32]) {
        for ((b, &s), &m) in y.scales.iter_mut().zip(sc).zip(m) {
            *b = (s as u8) | ((m as u8) << 4);
        }
    }
}

impl Grid for crate::q3_k::Q3K {
    const BLOCK: usize = QK_K;
    const SUB: usize = 16;
    const LEVELS: usize = 8;
    const N_SCALES: usize = 1;
    fn choose(x: &[f32], qw: &[f32], _sigma2: f32, y: &mut BlockQ3K) {
        choose_by_table::<Self>(x, qw, y);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ3K) {
        let mut l = [0i8; QK_K];
        for (l, &c) in l.iter_mut().zip(codes) {
            *l = c as i8;
        }
        crate::q3_k::pack_quants(&mut l, y);
    }
    #[inline(always)]
    fn unpack(y: &BlockQ3K, codes: &mut [u8]) {
        for (e, c) in codes.iter_mut().enumerate() {
            *c = (crate::q3_k::q3(y, e) + 4) as u8;
        }
    }
    #[inline(always)]
    fn scales(y: &BlockQ3K) -> [f16; 2] {
        [y.d, f16::ZERO]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ3K, s: [f16; 2]) {
        y.d = s[0];
    }
    const SUB_SCALES: Option<(i32, i32)> = Some((-32, 31));
    fn sub_scales(y: &BlockQ3K, sc: &mut [i32], _m: &mut [i32]) {
        for (s, &v) in sc.iter_mut().zip(&crate::q3_k::unpack_scales(&y.scales)) {
            *s = i32::from(v) - 32;
        }
    }
    fn set_sub_scales(y: &mut BlockQ3K, sc: &[i32], _m: &[i32]) {
        // As ggml packs them: low nibbles of 0..8 and 8..16 in bytes 0..8, the top 2 bits of
        // scale j in bits 2·(j/4) of byte 8 + j % 4.
        y.scales = [0; 12];
        for (j, &v) in sc.iter().enumerate() {
            let q = (v + 32) as u8;
            if j < 8 {
                y.scales[j] = q & 0x0f;
            } else {
                y.scales[j - 8] |= (q & 0x0f) << 4;
            }
            y.scales[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
        }
    }
}

impl Grid for crate::q4_k::Q4K {
    const BLOCK: usize = QK_K;
    const SUB: usize = 32;
    const LEVELS: usize = 16;
    const N_SCALES: usize = 2;
    fn choose(x: &[f32], qw: &[f32], _sigma2: f32, y: &mut BlockQ4K) {
        choose_by_table::<Self>(x, qw, y);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ4K) {
        crate::q4_k::pack_quants(codes.try_into().expect("256 codes"), y);
    }
    #[inline(always)]
    fn unpack(y: &BlockQ4K, codes: &mut [u8]) {
        for jj in 0..4 {
            unpack_halves(
                &y.qs[32 * jj..32 * jj + 32],
                &mut codes[64 * jj..64 * jj + 64],
            );
        }
    }
    #[inline(always)]
    fn scales(y: &BlockQ4K) -> [f16; 2] {
        [y.d, y.dmin]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ4K, s: [f16; 2]) {
        [y.d, y.dmin] = s;
    }
    const SUB_SCALES: Option<(i32, i32)> = Some((0, 63));
    const SUB_MINS: Option<(i32, i32)> = Some((0, 63));
    fn sub_scales(y: &BlockQ4K, sc: &mut [i32], m: &mut [i32]) {
        let sm = crate::q4_k::unpack_scales_mins(&y.scales);
        for j in 0..8 {
            sc[j] = i32::from(sm[j]);
            m[j] = i32::from(sm[8 + j]);
        }
    }
    fn set_sub_scales(y: &mut BlockQ4K, sc: &[i32], m: &[i32]) {
        let ls: [u8; 8] = std::array::from_fn(|j| sc[j] as u8);
        let lm: [u8; 8] = std::array::from_fn(|j| m[j] as u8);
        crate::weighted::pack_k4(ls, lm, &mut y.scales);
    }
}

/// q4_k's nibble layout for one pair of sub-blocks: byte `i` holds element `i` (low) and
/// element `32 + i` (high).
#[inline(always)]
fn unpack_halves(qs: &[u8], codes: &mut [u8]) {
    for (i, &b) in qs.iter().enumerate() {
        codes[i] = b & 0x0f;
        codes[i + 32] = b >> 4;
    }
}

impl Grid for crate::q5_k::Q5K {
    const BLOCK: usize = QK_K;
    const SUB: usize = 32;
    const LEVELS: usize = 32;
    const N_SCALES: usize = 2;
    fn choose(x: &[f32], qw: &[f32], _sigma2: f32, y: &mut BlockQ5K) {
        choose_by_table::<Self>(x, qw, y);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ5K) {
        crate::q5_k::pack_quants(codes.try_into().expect("256 codes"), y);
    }
    #[inline(always)]
    fn unpack(y: &BlockQ5K, codes: &mut [u8]) {
        for (e, c) in codes.iter_mut().enumerate() {
            *c = crate::q5_k::q5(y, e / 64, (e / 32) % 2, e % 32);
        }
    }
    #[inline(always)]
    fn scales(y: &BlockQ5K) -> [f16; 2] {
        [y.d, y.dmin]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ5K, s: [f16; 2]) {
        [y.d, y.dmin] = s;
    }
    const SUB_SCALES: Option<(i32, i32)> = Some((0, 63));
    const SUB_MINS: Option<(i32, i32)> = Some((0, 63));
    fn sub_scales(y: &BlockQ5K, sc: &mut [i32], m: &mut [i32]) {
        let sm = crate::q4_k::unpack_scales_mins(&y.scales);
        for j in 0..8 {
            sc[j] = i32::from(sm[j]);
            m[j] = i32::from(sm[8 + j]);
        }
    }
    fn set_sub_scales(y: &mut BlockQ5K, sc: &[i32], m: &[i32]) {
        let ls: [u8; 8] = std::array::from_fn(|j| sc[j] as u8);
        let lm: [u8; 8] = std::array::from_fn(|j| m[j] as u8);
        crate::weighted::pack_k4(ls, lm, &mut y.scales);
    }
}

impl Grid for crate::q6_k::Q6K {
    const BLOCK: usize = QK_K;
    const SUB: usize = 16;
    const LEVELS: usize = 64;
    const N_SCALES: usize = 1;
    fn choose(x: &[f32], qw: &[f32], _sigma2: f32, y: &mut BlockQ6K) {
        choose_by_table::<Self>(x, qw, y);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockQ6K) {
        let mut l = [0i8; QK_K];
        for (l, &c) in l.iter_mut().zip(codes) {
            *l = c as i8;
        }
        crate::q6_k::pack_quants(&l, y);
    }
    #[inline(always)]
    fn unpack(y: &BlockQ6K, codes: &mut [u8]) {
        for (e, c) in codes.iter_mut().enumerate() {
            *c = (crate::q6_k::q6(y, e / 128, (e / 32) % 4, e % 32) + 32) as u8;
        }
    }
    #[inline(always)]
    fn scales(y: &BlockQ6K) -> [f16; 2] {
        [y.d, f16::ZERO]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockQ6K, s: [f16; 2]) {
        y.d = s[0];
    }
    const SUB_SCALES: Option<(i32, i32)> = Some((-128, 127));
    fn sub_scales(y: &BlockQ6K, sc: &mut [i32], _m: &mut [i32]) {
        for (s, &v) in sc.iter_mut().zip(&y.scales) {
            *s = i32::from(v);
        }
    }
    fn set_sub_scales(y: &mut BlockQ6K, sc: &[i32], _m: &[i32]) {
        for (b, &v) in y.scales.iter_mut().zip(sc) {
            *b = v as i8;
        }
    }
}

impl Grid for crate::iq4_nl::Iq4Nl {
    const BLOCK: usize = 32;
    const SUB: usize = 32;
    const LEVELS: usize = 16;
    const N_SCALES: usize = 1;
    fn choose(x: &[f32], qw: &[f32], _sigma2: f32, y: &mut BlockIq4Nl) {
        choose_by_table::<Self>(x, qw, y);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockIq4Nl) {
        pack_nibbles(codes, &mut y.qs);
    }
    #[inline(always)]
    fn unpack(y: &BlockIq4Nl, codes: &mut [u8]) {
        unpack_nibbles(&y.qs, codes);
    }
    #[inline(always)]
    fn scales(y: &BlockIq4Nl) -> [f16; 2] {
        [y.d, f16::ZERO]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockIq4Nl, s: [f16; 2]) {
        y.d = s[0];
    }
}

impl Grid for crate::iq4_xs::Iq4Xs {
    const BLOCK: usize = QK_K;
    const SUB: usize = 32;
    const LEVELS: usize = 16;
    const N_SCALES: usize = 1;
    fn choose(x: &[f32], qw: &[f32], _sigma2: f32, y: &mut BlockIq4Xs) {
        choose_by_table::<Self>(x, qw, y);
    }
    #[inline(always)]
    fn pack(codes: &[u8], y: &mut BlockIq4Xs) {
        for (c, qs) in codes.chunks_exact(32).zip(y.qs.chunks_exact_mut(16)) {
            pack_nibbles(c, qs);
        }
    }
    #[inline(always)]
    fn unpack(y: &BlockIq4Xs, codes: &mut [u8]) {
        for (c, qs) in codes.chunks_exact_mut(32).zip(y.qs.chunks_exact(16)) {
            unpack_nibbles(qs, c);
        }
    }
    #[inline(always)]
    fn scales(y: &BlockIq4Xs) -> [f16; 2] {
        [y.d, f16::ZERO]
    }
    #[inline(always)]
    fn set_scales(y: &mut BlockIq4Xs, s: [f16; 2]) {
        y.d = s[0];
    }
    const SUB_SCALES: Option<(i32, i32)> = Some((-32, 31));
    fn sub_scales(y: &BlockIq4Xs, sc: &mut [i32], _m: &mut [i32]) {
        for (ib, s) in sc.iter_mut().enumerate() {
            *s = i32::from(crate::iq4_xs::sub_scale(y, ib)) - 32;
        }
    }
    fn set_sub_scales(y: &mut BlockIq4Xs, sc: &[i32], _m: &[i32]) {
        y.scales_h = 0;
        y.scales_l = [0; 4];
        for (ib, &v) in sc.iter().enumerate() {
            let ls = (v + 32) as u8;
            y.scales_l[ib / 2] |= (ls & 0x0f) << (4 * (ib % 2));
            y.scales_h |= u16::from(ls >> 4) << (2 * ib);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random bytes made into a block the format's weighted encoder could write: scales from
    /// `choose` on random values, random codes.
    fn random_block<F: Grid>(seed: u64) -> F::Block {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let x: Vec<f32> = (0..F::BLOCK)
            .map(|_| (next() % 2000) as f32 / 1000.0 - 1.0)
            .collect();
        let qw: Vec<f32> = (0..F::BLOCK)
            .map(|_| 0.1 + (next() % 100) as f32 / 50.0)
            .collect();
        let mut y: F::Block = bytemuck::Zeroable::zeroed();
        F::choose(&x, &qw, 0.3, &mut y);
        let codes: Vec<u8> = (0..F::BLOCK)
            .map(|_| (F::FIRST + (next() as usize) % (F::LEVELS - F::FIRST)) as u8)
            .collect();
        F::pack(&codes, &mut y);
        y
    }

    fn adapter<F: Grid>() {
        for seed in 1..20 {
            let y = random_block::<F>(seed);
            // Codes round-trip, and repacking leaves the bytes alone.
            let mut codes = [0u8; QK_K];
            F::unpack(&y, &mut codes[..F::BLOCK]);
            let mut again = y;
            F::pack(&codes[..F::BLOCK], &mut again);
            assert_eq!(
                bytemuck::bytes_of(&again),
                bytemuck::bytes_of(&y),
                "{}",
                F::DTYPE
            );
            // Every element's value is its sub-block's table entry for its code, bit for bit.
            let mut vals = [0f32; QK_K];
            F::dequantize_ref(std::slice::from_ref(&y), &mut vals[..F::BLOCK]);
            let mut t = vec![0f32; F::BLOCK / F::SUB * F::LEVELS];
            tables::<F>(&y, &mut t);
            for i in 0..F::BLOCK {
                let tv = t[(i / F::SUB) * F::LEVELS + usize::from(codes[i])];
                assert_eq!(tv.to_bits(), vals[i].to_bits(), "{} element {i}", F::DTYPE);
                // The nearest code of a grid value decodes to that value.
                let grid = &t[(i / F::SUB) * F::LEVELS..][..F::LEVELS];
                assert_eq!(
                    grid[nearest(grid, F::FIRST, vals[i])],
                    vals[i],
                    "{}",
                    F::DTYPE
                );
            }
            // Scales and sub-scales round-trip.
            let mut z = y;
            F::set_scales(&mut z, F::scales(&y));
            let (mut sc, mut m) = ([0i32; 16], [0i32; 16]);
            let ns = F::BLOCK / F::SUB;
            F::sub_scales(&y, &mut sc[..ns], &mut m[..ns]);
            F::set_sub_scales(&mut z, &sc[..ns], &m[..ns]);
            assert_eq!(
                bytemuck::bytes_of(&z),
                bytemuck::bytes_of(&y),
                "{}",
                F::DTYPE
            );
            if let Some((lo, hi)) = F::SUB_SCALES {
                // Every value in range is stored and read back as itself.
                let vals: Vec<i32> = (0..ns as i32)
                    .map(|s| lo + (s * 7 + seed as i32) % (hi - lo + 1))
                    .collect();
                let mins: Vec<i32> = match F::SUB_MINS {
                    Some((a, b)) => (0..ns as i32)
                        .map(|s| a + (s * 5 + 3) % (b - a + 1))
                        .collect(),
                    None => vec![0; ns],
                };
                F::set_sub_scales(&mut z, &vals, &mins);
                let (mut sc2, mut m2) = (vec![0; ns], vec![0; ns]);
                F::sub_scales(&z, &mut sc2, &mut m2);
                assert_eq!(sc2, vals, "{}", F::DTYPE);
                if F::SUB_MINS.is_some() {
                    assert_eq!(m2, mins, "{}", F::DTYPE);
                }
            }
        }
    }

    #[test]
    fn adapters_agree_with_the_decoders() {
        adapter::<crate::q4_0::Q4_0>();
        adapter::<crate::q4_1::Q4_1>();
        adapter::<crate::q5_0::Q5_0>();
        adapter::<crate::q5_1::Q5_1>();
        adapter::<crate::q8_0::Q8_0>();
        adapter::<crate::q2_k::Q2K>();
        adapter::<crate::q3_k::Q3K>();
        adapter::<crate::q4_k::Q4K>();
        adapter::<crate::q5_k::Q5K>();
        adapter::<crate::q6_k::Q6K>();
        adapter::<crate::iq4_nl::Iq4Nl>();
        adapter::<crate::iq4_xs::Iq4Xs>();
    }

    #[test]
    fn choose_is_the_weighted_encoder() {
        // On a row of one block (σ² of the row = the block's), the scales `choose` picks are
        // those of the crate's weighted encoder.
        fn one<F: Grid>() {
            let x: Vec<f32> = (0..F::BLOCK)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let qw: Vec<f32> = (0..F::BLOCK).map(|i| 0.5 + (i % 7) as f32).collect();
            let sigma2 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
            let mut ours: F::Block = bytemuck::Zeroable::zeroed();
            F::choose(&x, &qw, sigma2, &mut ours);
            let mut theirs: F::Block = bytemuck::Zeroable::zeroed();
            crate::kernels()
                .quantize_weighted_row(F::DTYPE, &x, bytemuck::bytes_of_mut(&mut theirs), &qw)
                .unwrap();
            assert_eq!(F::scales(&ours), F::scales(&theirs), "{}", F::DTYPE);
        }
        one::<crate::q4_0::Q4_0>();
        one::<crate::q4_1::Q4_1>();
        one::<crate::q5_0::Q5_0>();
        one::<crate::q5_1::Q5_1>();
    }
}
