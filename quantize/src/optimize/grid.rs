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
        let mid = (lo + hi) / 2;
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
}
