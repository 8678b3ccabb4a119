//! Run-time selection of the kernel table.
//!
//! The best level the CPU supports is chosen once ([`kernels`]); `LLAMAPACK_SIMD=scalar|avx2|
//! avx512|neon` asks for a lower one (a level the CPU lacks is never used: the request is
//! ignored). [`kernels_for`] hands out any supported level, so one test process can check them
//! all.

use std::sync::OnceLock;

use llamapack_format::DType;

use crate::format::BlockFormat;
use crate::{Error, scalar};

/// An instruction-set level with its own kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Portable Rust: the `*_ref` kernels.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL + VNNI (on top of AVX2).
    Avx512,
    /// aarch64 Advanced SIMD.
    Neon,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 4] = [Level::Scalar, Level::Avx2, Level::Avx512, Level::Neon];

    /// Lower-case name, as accepted by `LLAMAPACK_SIMD`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Neon => "neon",
        }
    }

    /// Parses a name of [`Level::name`].
    pub fn from_name(s: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU can run the level.
    pub fn is_supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                Level::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Level::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) type QuantizeFn = fn(&[f32], &mut [u8]);
pub(crate) type DequantizeFn = fn(&[u8], &mut [f32]);
/// An importance-weighted encoder: whole rows of values, their output bytes, one weight per
/// column (the rows are `weights.len()` values each).
pub(crate) type WeightedFn = fn(&[f32], &mut [u8], &[f32]);
pub(crate) type DotFn = fn(usize, &[u8], &[u8]) -> f32;
/// One weight row dotted with 4 activation rows.
pub(crate) type Dot4Fn = fn(usize, &[u8], [&[u8]; 4]) -> [f32; 4];
/// One weight row with 4 activation rows packed by [`crate::q8_0::pack_q8_0_x4`].
pub(crate) type Dot4PackedFn = fn(usize, &[u8], &[u8]) -> [f32; 4];
/// Every one of consecutive weight rows with every one of consecutive activation rows.
pub(crate) type DotTiledFn = fn(usize, &[u8], &[u8], &mut [f32]);
/// 16 weight rows in a panel × activation rows, with the activations' block sums.
pub(crate) type Panel16Fn = fn(usize, &[u8], &[u8], &[i32], &mut [f32]);

/// The kernels of one dtype. They receive slices whose lengths [`Kernels`] has checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Format {
    pub(crate) quantize: QuantizeFn,
    /// The weight encoder where it is not `quantize` (`BlockFormat::quantize_weights`).
    pub(crate) quantize_weights: Option<QuantizeFn>,
    /// The importance-weighted encoder (`BlockFormat::quantize_weighted`), if the format has one.
    pub(crate) quantize_weighted: Option<WeightedFn>,
    pub(crate) dequantize: DequantizeFn,
    pub(crate) vec_dot: DotFn,
    /// One weight row · 4 activation rows (`None`: 4 calls of `vec_dot`).
    pub(crate) vec_dot4: Option<Dot4Fn>,
    /// One weight row · 4 q8_0 activation rows packed by `pack_q8_0_x4`.
    pub(crate) vec_dot4_packed: Option<Dot4PackedFn>,
    /// Weight rows × activation rows in register tiles.
    pub(crate) vec_dot_tiled: Option<DotTiledFn>,
    /// A panel of 16 repacked weight rows × activation rows (`Kernels::panel16_dot`).
    pub(crate) panel16: Option<Panel16Fn>,
}

/// Rows of the dtype table.
const N_DTYPES: usize = llamapack_format::DTYPES.len();

/// A table of kernels for every dtype at one [`Level`], indexed by dtype.
///
/// The methods check lengths and inputs, then call the level's kernels; the free functions of
/// the crate root use the table of [`kernels`].
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    level: Level,
    formats: [Option<Format>; N_DTYPES],
}

impl Kernels {
    /// The level of this table.
    pub fn level(&self) -> Level {
        self.level
    }

    fn format(&self, dtype: DType) -> Result<&Format, Error> {
        self.formats[dtype as usize]
            .as_ref()
            .ok_or(Error::Unsupported(dtype))
    }

    /// Whether this level has kernels for `dtype` (every row of the dtype table does).
    pub fn supports(&self, dtype: DType) -> bool {
        self.formats[dtype as usize].is_some()
    }

    /// See [`crate::quantize_row`].
    pub fn quantize_row(&self, dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), Error> {
        let f = self.format(dtype)?;
        check_bytes(dtype, src.len(), dst.len())?;
        if let Some(index) = first_non_finite(src) {
            return Err(Error::NonFinite {
                index,
                value: src[index],
            });
        }
        (f.quantize)(src, dst);
        Ok(())
    }

    /// See [`crate::quantize_weights_row`].
    pub fn quantize_weights_row(
        &self,
        dtype: DType,
        src: &[f32],
        dst: &mut [u8],
    ) -> Result<(), Error> {
        let f = self.format(dtype)?;
        check_bytes(dtype, src.len(), dst.len())?;
        if let Some(index) = first_non_finite(src) {
            return Err(Error::NonFinite {
                index,
                value: src[index],
            });
        }
        (f.quantize_weights.unwrap_or(f.quantize))(src, dst);
        Ok(())
    }

    /// Whether `dtype` has an importance-weighted encoder at this level.
    pub fn has_weighted(&self, dtype: DType) -> bool {
        self.format(dtype)
            .is_ok_and(|f| f.quantize_weighted.is_some())
    }

    /// Encodes one row of weights with importance weights `qw` (one per value), as ggml's
    /// `quantize_<type>(…, imatrix)` does; a type without a weighted encoder (q8_0, as in
    /// ggml, and the float types) is encoded as by [`Kernels::quantize_weights_row`].
    pub fn quantize_weighted_row(
        &self,
        dtype: DType,
        src: &[f32],
        dst: &mut [u8],
        qw: &[f32],
    ) -> Result<(), Error> {
        if qw.len() != src.len() {
            return Err(Error::ByteLength {
                dtype,
                len: src.len(),
                expected: src.len(),
                found: qw.len(),
            });
        }
        self.quantize_weighted_rows(dtype, src, dst, qw)
    }

    /// [`Kernels::quantize_weighted_row`] of several rows at once: `src` holds whole rows of
    /// `qw.len()` values (`qw`: one importance weight per column), `dst` their encoded rows one
    /// after the other. Each row's bytes are those of the row encoded alone; the encoders of
    /// blocks of 32 fill their lanes with the blocks of consecutive rows.
    pub fn quantize_weighted_rows(
        &self,
        dtype: DType,
        src: &[f32],
        dst: &mut [u8],
        qw: &[f32],
    ) -> Result<(), Error> {
        let f = self.format(dtype)?;
        let n = qw.len();
        if n == 0 && src.is_empty() {
            return check_bytes(dtype, 0, dst.len());
        }
        if n == 0 || !src.len().is_multiple_of(n) {
            return Err(Error::ByteLength {
                dtype,
                len: src.len(),
                expected: src.len(),
                found: n,
            });
        }
        let block_len = dtype.block_len();
        if !n.is_multiple_of(block_len) {
            return Err(Error::RowLength {
                dtype,
                len: n,
                block_len,
            });
        }
        let Some(weighted) = f.quantize_weighted else {
            return self.quantize_weights_row(dtype, src, dst);
        };
        check_bytes(dtype, src.len(), dst.len())?;
        for v in [src, qw] {
            if let Some(index) = first_non_finite(v) {
                return Err(Error::NonFinite {
                    index,
                    value: v[index],
                });
            }
        }
        weighted(src, dst, qw);
        Ok(())
    }

    /// See [`crate::dequantize_row`].
    pub fn dequantize_row(&self, dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<(), Error> {
        let f = self.format(dtype)?;
        check_bytes(dtype, dst.len(), src.len())?;
        (f.dequantize)(src, dst);
        Ok(())
    }

    /// See [`crate::vec_dot`].
    ///
    /// # Panics
    /// If `n` is not a whole number of blocks or a slice does not hold exactly `n` values.
    #[inline]
    pub fn vec_dot(&self, weight: DType, n: usize, w_row: &[u8], act: &[u8]) -> f32 {
        let f = self.format(weight).expect("vec_dot: dtype without kernels");
        let act_type = weight.vec_dot_type();
        assert!(
            weight.row_bytes(n) == Some(w_row.len()) && act_type.row_bytes(n) == Some(act.len()),
            "vec_dot: {weight} row of {n} values needs {:?} + {:?} bytes, got {} + {}",
            weight.row_bytes(n),
            act_type.row_bytes(n),
            w_row.len(),
            act.len()
        );
        (f.vec_dot)(n, w_row, act)
    }

    /// Whether [`Kernels::vec_dot4`] has a multi-token kernel for `weight` at this level (else
    /// it is 4 calls of [`Kernels::vec_dot`], no faster).
    pub fn has_vec_dot4(&self, weight: DType) -> bool {
        self.dot4(weight).is_some()
    }

    fn dot4(&self, weight: DType) -> Option<Dot4Fn> {
        self.format(weight).ok().and_then(|f| f.vec_dot4)
    }

    /// Whether [`Kernels::vec_dot_tiled`] has a kernel for `weight` at this level.
    pub fn has_vec_dot_tiled(&self, weight: DType) -> bool {
        self.format(weight).is_ok_and(|f| f.vec_dot_tiled.is_some())
    }

    /// `out[r·m + t] = vec_dot(weight, n, row r of w_rows, row t of acts)` for every one of
    /// the consecutive weight rows in `w_rows` and every one of the `m` consecutive activation
    /// rows in `acts` (`out` is `[rows, m]`), bit-identical to those calls; with a kernel for
    /// `weight`, each weight and activation vector is loaded (and unpacked) once for several
    /// dots: float weights in register tiles of 4 rows × 4 tokens, k-quants and iq4_xs 1 (AVX2)
    /// or 2 (AVX-512) rows against every token, each super-block unpacked once.
    ///
    /// # Panics
    /// If the slices are not whole rows of `n` values or `out.len()` is not `rows · m`.
    pub fn vec_dot_tiled(
        &self,
        weight: DType,
        n: usize,
        w_rows: &[u8],
        acts: &[u8],
        out: &mut [f32],
    ) {
        let (wrb, arb) = (weight.row_bytes(n), weight.vec_dot_type().row_bytes(n));
        let shape = match (wrb, arb) {
            (Some(w), Some(a))
                if w > 0
                    && a > 0
                    && w_rows.len().is_multiple_of(w)
                    && acts.len().is_multiple_of(a) =>
            {
                Some((w, a, w_rows.len() / w, acts.len() / a))
            }
            _ => None,
        };
        let Some((wrb, arb, rows, m)) = shape.filter(|&(_, _, r, m)| out.len() == r * m) else {
            panic!(
                "vec_dot_tiled: {weight} rows of {n} values: {} weight bytes, {} activation bytes, {} outputs do not fit",
                w_rows.len(),
                acts.len(),
                out.len()
            );
        };
        if let Some(f) = self.format(weight).ok().and_then(|f| f.vec_dot_tiled) {
            f(n, w_rows, acts, out);
        } else {
            for r in 0..rows {
                let row = &w_rows[r * wrb..(r + 1) * wrb];
                for t in 0..m {
                    out[r * m + t] = self.vec_dot(weight, n, row, &acts[t * arb..(t + 1) * arb]);
                }
            }
        }
    }

    /// Whether [`Kernels::panel16_dot`] exists for `weight` at this level (then the runner
    /// keeps its matrices of whole 16-row groups repacked by [`crate::panel::repack_x16`]).
    pub fn has_panel16(&self, weight: DType) -> bool {
        self.format(weight).is_ok_and(|f| f.panel16.is_some())
    }

    /// `out[16t + i]` = the scalar reference dot of row `i` of a 16-row `panel`
    /// ([`crate::panel::repack_x16`]) with activation row `t` of `acts` (rows of `n` values in the weight's
    /// activation format), bit for bit; for q8_0 activations `sums[t·(n/32) + b]` is the sum of
    /// the quants of block `b` of activation row `t` (q8_1 blocks carry theirs: `sums` empty).
    /// One token is generation's matrix × vector, more are a tile.
    /// `panel` may hold `g` consecutive panels (16·g rows): then `out` is their `g` products
    /// one after the other (`out[16·m·p + 16t + i]` for panel `p` of `m` tokens), so that work
    /// done once per call for the tokens (the AMX kernels' scales) serves every panel.
    ///
    /// # Panics
    /// If the level has no such kernel for `weight` (see [`Kernels::has_panel16`]), or the
    /// lengths do not match `n`.
    pub fn panel16_dot(
        &self,
        weight: DType,
        n: usize,
        panel: &[u8],
        acts: &[u8],
        sums: &[i32],
        out: &mut [f32],
    ) {
        let f = self
            .format(weight)
            .ok()
            .and_then(|f| f.panel16)
            .expect("panel16_dot: no panel kernel for this dtype at this level");
        let act_type = weight.vec_dot_type();
        let (wb, ab) = (weight.row_bytes(n), act_type.row_bytes(n));
        let ok = match (wb, ab) {
            (Some(wb), Some(ab)) if ab > 0 => {
                let (m, g) = (acts.len() / ab, panel.len() / (16 * wb).max(1));
                g > 0
                    && panel.len() == g * 16 * wb
                    && acts.len() == m * ab
                    && sums.len()
                        == if act_type == DType::Q8_0 {
                            m * (n / 32)
                        } else {
                            0
                        }
                    && out.len() == 16 * m * g
            }
            _ => false,
        };
        assert!(
            ok,
            "panel16_dot: {weight} rows of {n} values: wrong lengths"
        );
        f(n, panel, acts, sums, out);
    }

    /// Whether [`Kernels::vec_dot4_packed`] exists for `weight` at this level.
    pub fn has_vec_dot4_packed(&self, weight: DType) -> bool {
        self.format(weight)
            .is_ok_and(|f| f.vec_dot4_packed.is_some())
    }

    /// `[vec_dot(weight, n, w_row, acts[t]) for t in 0..4]`, bit-identical to those 4 calls,
    /// with the 4 q8_0 activation rows given as `packed` by
    /// [`crate::q8_0::pack_q8_0_x4`] (done once per group of tokens, then read by every
    /// weight row).
    ///
    /// # Panics
    /// If the level has no such kernel for `weight` (see [`Kernels::has_vec_dot4_packed`]),
    /// or the lengths do not match `n`.
    #[inline]
    pub fn vec_dot4_packed(
        &self,
        weight: DType,
        n: usize,
        w_row: &[u8],
        packed: &[u8],
    ) -> [f32; 4] {
        let f = self
            .format(weight)
            .ok()
            .and_then(|f| f.vec_dot4_packed)
            .expect("vec_dot4_packed: no packed kernel for this dtype at this level");
        assert!(
            weight.row_bytes(n) == Some(w_row.len())
                && n.is_multiple_of(32)
                && packed.len() == n / 32 * crate::q8_0::Q8_0_X4_BLOCK_BYTES,
            "vec_dot4_packed: {weight} row of {n} values: wrong byte lengths"
        );
        f(n, w_row, packed)
    }

    /// `[vec_dot(weight, n, w_row, acts[t]) for t in 0..4]`, bit-identical to those 4 calls, but
    /// reading (and unpacking) each weight block once for the 4 tokens where the level has a
    /// multi-token kernel.
    ///
    /// # Panics
    /// As [`Kernels::vec_dot`], for any of the rows.
    #[inline]
    pub fn vec_dot4(&self, weight: DType, n: usize, w_row: &[u8], acts: [&[u8]; 4]) -> [f32; 4] {
        match self.dot4(weight) {
            Some(f) => {
                let act_type = weight.vec_dot_type();
                assert!(
                    weight.row_bytes(n) == Some(w_row.len())
                        && acts.iter().all(|a| act_type.row_bytes(n) == Some(a.len())),
                    "vec_dot4: {weight} row of {n} values: wrong byte lengths"
                );
                f(n, w_row, acts)
            }
            None => acts.map(|a| self.vec_dot(weight, n, w_row, a)),
        }
    }
}

/// Index of the first NaN or ±inf. Scans 256-value chunks without early exit (so the compiler
/// vectorizes the test), then locates the value inside the bad chunk.
fn first_non_finite(src: &[f32]) -> Option<usize> {
    const EXP: u32 = 0x7f80_0000;
    for (c, chunk) in src.chunks(256).enumerate() {
        let bad = chunk
            .iter()
            .fold(false, |m, v| m | (v.to_bits() & EXP == EXP));
        if bad {
            return chunk
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| 256 * c + i);
        }
    }
    None
}

fn check_bytes(dtype: DType, len: usize, bytes: usize) -> Result<(), Error> {
    let block_len = dtype.block_len();
    if !len.is_multiple_of(block_len) {
        return Err(Error::RowLength {
            dtype,
            len,
            block_len,
        });
    }
    match dtype.row_bytes(len) {
        Some(expected) if expected == bytes => Ok(()),
        expected => Err(Error::ByteLength {
            dtype,
            len,
            expected: expected.unwrap_or(usize::MAX),
            found: bytes,
        }),
    }
}

/// The scalar table of one block format, from its [`BlockFormat`] reference kernels (as the
/// table's entry type).
#[allow(clippy::unnecessary_wraps)]
const fn scalar_format<F: BlockFormat>() -> Option<Format> {
    Some(Format {
        quantize: scalar::quantize::<F>,
        quantize_weights: if F::WEIGHTS_DIFFER {
            Some(scalar::quantize_weights::<F>)
        } else {
            None
        },
        quantize_weighted: if F::HAS_WEIGHTED {
            Some(scalar::quantize_weighted::<F>)
        } else {
            None
        },
        dequantize: scalar::dequantize::<F>,
        vec_dot: scalar::vec_dot::<F>,
        vec_dot4: None,
        vec_dot4_packed: None,
        vec_dot_tiled: None,
        panel16: None,
    })
}

/// A plain float format's scalar table (as the table's entry type).
#[allow(clippy::unnecessary_wraps)]
const fn float_format(
    quantize: QuantizeFn,
    dequantize: DequantizeFn,
    vec_dot: DotFn,
) -> Option<Format> {
    Some(Format {
        quantize,
        quantize_weights: None,
        quantize_weighted: None,
        dequantize,
        vec_dot,
        vec_dot4: None,
        vec_dot4_packed: None,
        vec_dot_tiled: None,
        panel16: None,
    })
}

/// `table[dtype]`, which must be set (a `const` helper for the SIMD tables).
const fn base(table: &[Option<Format>; N_DTYPES], dtype: DType) -> Format {
    match table[dtype as usize] {
        Some(f) => f,
        None => panic!("no scalar kernels for a dtype"),
    }
}

/// Replaces some kernels of one dtype in a table: `over!(t, Q4K, { vec_dot: … })`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! over {
    ($t:ident, $d:ident, { $($field:ident: $val:expr),* $(,)? }) => {
        $t[DType::$d as usize] = Some(Format { $($field: $val,)* ..base(&$t, DType::$d) });
    };
}

/// Every format, by dtype: the one list a new format is added to.
static SCALAR: Kernels = {
    use crate::{
        iq4_nl, iq4_xs, q2_k, q3_k, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0, q8_1, q8_k,
    };
    let mut t: [Option<Format>; N_DTYPES] = [None; N_DTYPES];
    t[DType::F32 as usize] = float_format(
        scalar::quantize_f32,
        scalar::dequantize_f32,
        scalar::vec_dot_f32,
    );
    t[DType::F16 as usize] = float_format(
        scalar::quantize_f16,
        scalar::dequantize_f16,
        scalar::vec_dot_f16,
    );
    t[DType::BF16 as usize] = float_format(
        scalar::quantize_bf16,
        scalar::dequantize_bf16,
        scalar::vec_dot_bf16,
    );
    t[DType::Q8_0 as usize] = scalar_format::<q8_0::Q8_0>();
    t[DType::Q4_0 as usize] = scalar_format::<q4_0::Q4_0>();
    t[DType::Q4K as usize] = scalar_format::<q4_k::Q4K>();
    t[DType::Q6K as usize] = scalar_format::<q6_k::Q6K>();
    t[DType::Q2K as usize] = scalar_format::<q2_k::Q2K>();
    t[DType::Q3K as usize] = scalar_format::<q3_k::Q3K>();
    t[DType::Q5K as usize] = scalar_format::<q5_k::Q5K>();
    t[DType::Q8K as usize] = scalar_format::<q8_k::Q8K>();
    t[DType::Q4_1 as usize] = scalar_format::<q4_1::Q4_1>();
    t[DType::Q5_0 as usize] = scalar_format::<q5_0::Q5_0>();
    t[DType::Q5_1 as usize] = scalar_format::<q5_1::Q5_1>();
    t[DType::Q8_1 as usize] = scalar_format::<q8_1::Q8_1>();
    t[DType::IQ4NL as usize] = scalar_format::<iq4_nl::Iq4Nl>();
    t[DType::IQ4XS as usize] = scalar_format::<iq4_xs::Iq4Xs>();
    Kernels {
        level: Level::Scalar,
        formats: t,
    }
};

/// Wraps a `#[target_feature]` kernel in a closure that coerces to a plain `fn` pointer.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! tf {
    (dot $f:path) => {
        |n: usize, w: &[u8], a: &[u8]| -> f32 {
            // SAFETY: the SIMD tables are only handed out by `kernels_for`, after
            // `Level::is_supported` detected every feature this kernel enables (the AMX
            // table by `kernels_tuned` / `kernels_amx`, after `x86::amx::usable`).
            unsafe { $f(n, w, a) }
        }
    };
    (dot4 $f:path) => {
        Some(|n: usize, w: &[u8], a: [&[u8]; 4]| -> [f32; 4] {
            // SAFETY: as above, the table is only reachable once its features are detected.
            unsafe { $f(n, w, a) }
        })
    };
    (dot4p $f:path) => {
        Some(|n: usize, w: &[u8], p: &[u8]| -> [f32; 4] {
            // SAFETY: as above, the table is only reachable once its features are detected.
            unsafe { $f(n, w, p) }
        })
    };
    (panel $f:path) => {
        Some(|n: usize, p: &[u8], a: &[u8], s: &[i32], o: &mut [f32]| {
            // SAFETY: as above, the table is only reachable once its features are detected.
            unsafe { $f(n, p, a, s, o) }
        })
    };
    (quant $f:path) => {
        |x: &[f32], y: &mut [u8]| {
            // SAFETY: as above, the table is only reachable once its features are detected.
            unsafe { $f(x, y) }
        }
    };
    (dequant $f:path) => {
        |x: &[u8], y: &mut [f32]| {
            // SAFETY: as above, the table is only reachable once its features are detected.
            unsafe { $f(x, y) }
        }
    };
}

/// Replaces the importance-weighted encoder of every format that has one, and iq4_nl's weight
/// encoder (its trial search), with the same code compiled for a level's features:
/// `weighted_over!(t, k)` with `k` the level's module.
#[cfg(target_arch = "x86_64")]
macro_rules! weighted_over {
    ($t:ident, $k:ident) => {
        weighted_over!(@ $t, $k, Q4_0 q4_0::Q4_0, Q4_1 q4_1::Q4_1, Q5_0 q5_0::Q5_0,
            Q5_1 q5_1::Q5_1, Q2K q2_k::Q2K, Q3K q3_k::Q3K, Q4K q4_k::Q4K, Q5K q5_k::Q5K,
            Q6K q6_k::Q6K, IQ4NL iq4_nl::Iq4Nl, IQ4XS iq4_xs::Iq4Xs);
        over!($t, IQ4NL, {
            quantize_weights: Some(|x: &[f32], y: &mut [u8]| {
                // SAFETY: as below, the table is only reachable once its features are detected.
                unsafe { $k::quantize_weights::<crate::iq4_nl::Iq4Nl>(x, y) }
            }),
        });
    };
    (@ $t:ident, $k:ident, $($d:ident $f:ident::$s:ident),*) => {
        $(
            over!($t, $d, {
                quantize_weighted: Some(|x: &[f32], y: &mut [u8], qw: &[f32]| {
                    // SAFETY: the SIMD tables are only handed out by `kernels_for`, after
                    // `Level::is_supported` detected every feature this encoder enables.
                    unsafe { $k::quantize_weighted::<crate::$f::$s>(x, y, qw) }
                }),
            });
        )*
    };
}

/// A `vec_dot_tiled` entry from a `#[target_feature]` kernel.
#[cfg(target_arch = "x86_64")]
macro_rules! tiled {
    ($f:path) => {
        Some(|n, w, a, o| {
            // SAFETY: the table is only reachable once its features are detected (the AMX
            // table's after `x86::amx::usable`).
            unsafe { $f(n, w, a, o) }
        })
    };
}

#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = {
    use crate::x86::avx2 as k;
    let mut t = SCALAR.formats;
    over!(t, F32, {
        vec_dot: tf!(dot k::vec_dot_f32),
        vec_dot4: tf!(dot4 k::vec_dot4_f32),
    });
    over!(t, F16, {
        quantize: tf!(quant k::quantize_f16),
        dequantize: tf!(dequant k::dequantize_f16),
        vec_dot: tf!(dot k::vec_dot_f16),
        vec_dot4: tf!(dot4 k::vec_dot4_f16),
    });
    over!(t, BF16, {
        quantize: tf!(quant k::quantize_bf16),
        dequantize: tf!(dequant k::dequantize_bf16),
        vec_dot: tf!(dot k::vec_dot_bf16),
        vec_dot4: tf!(dot4 k::vec_dot4_bf16),
    });
    over!(t, Q8_0, {
        quantize: tf!(quant k::quantize_q8_0),
        dequantize: tf!(dequant k::dequantize_q8_0),
        vec_dot: tf!(dot k::vec_dot_q8_0_q8_0),
        vec_dot4: tf!(dot4 k::vec_dot4_q8_0_q8_0),
    });
    over!(t, Q4_0, {
        quantize: tf!(quant k::quantize_q4_0),
        dequantize: tf!(dequant k::dequantize_q4_0),
        vec_dot: tf!(dot k::vec_dot_q4_0_q8_0),
        vec_dot4: tf!(dot4 k::vec_dot4_q4_0_q8_0),
    });
    over!(t, Q4K, {
        quantize: tf!(quant k::quantize_q4_k),
        dequantize: tf!(dequant k::dequantize_q4_k),
        vec_dot: tf!(dot k::vec_dot_q4_k_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q4_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q4_k_q8_k),
    });
    over!(t, Q6K, {
        quantize: tf!(quant k::quantize_q6_k),
        dequantize: tf!(dequant k::dequantize_q6_k),
        vec_dot: tf!(dot k::vec_dot_q6_k_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q6_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q6_k_q8_k),
    });
    over!(t, Q8K, {
        quantize: tf!(quant k::quantize_q8_k),
        dequantize: tf!(dequant k::dequantize_q8_k),
    });
    over!(t, Q2K, {
        quantize: tf!(quant k::quantize_q2_k),
        dequantize: tf!(dequant k::dequantize_q2_k),
        vec_dot: tf!(dot k::vec_dot_q2_k_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q2_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q2_k_q8_k),
    });
    over!(t, Q3K, {
        quantize: tf!(quant k::quantize_q3_k),
        dequantize: tf!(dequant k::dequantize_q3_k),
        vec_dot: tf!(dot k::vec_dot_q3_k_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q3_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q3_k_q8_k),
    });
    over!(t, Q5K, {
        quantize: tf!(quant k::quantize_q5_k),
        dequantize: tf!(dequant k::dequantize_q5_k),
        vec_dot: tf!(dot k::vec_dot_q5_k_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q5_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q5_k_q8_k),
    });
    over!(t, Q4_1, {
        quantize: tf!(quant k::quantize_q4_1),
        dequantize: tf!(dequant k::dequantize_q4_1),
        vec_dot: tf!(dot k::vec_dot_q4_1_q8_1),
        vec_dot4: tf!(dot4 k::vec_dot4_q4_1_q8_1),
    });
    over!(t, Q5_0, {
        quantize: tf!(quant k::quantize_q5_0),
        dequantize: tf!(dequant k::dequantize_q5_0),
        vec_dot: tf!(dot k::vec_dot_q5_0_q8_0),
        vec_dot4: tf!(dot4 k::vec_dot4_q5_0_q8_0),
    });
    over!(t, Q5_1, {
        quantize: tf!(quant k::quantize_q5_1),
        dequantize: tf!(dequant k::dequantize_q5_1),
        vec_dot: tf!(dot k::vec_dot_q5_1_q8_1),
        vec_dot4: tf!(dot4 k::vec_dot4_q5_1_q8_1),
    });
    over!(t, Q8_1, {
        quantize: tf!(quant k::quantize_q8_1),
        dequantize: tf!(dequant k::dequantize_q8_1),
    });
    over!(t, IQ4NL, {
        quantize: tf!(quant k::quantize_iq4_nl),
        dequantize: tf!(dequant k::dequantize_iq4_nl),
        vec_dot: tf!(dot k::vec_dot_iq4_nl_q8_0),
        vec_dot4: tf!(dot4 k::vec_dot4_iq4_nl_q8_0),
    });
    over!(t, IQ4XS, {
        quantize: tf!(quant k::quantize_iq4_xs),
        dequantize: tf!(dequant k::dequantize_iq4_xs),
        vec_dot: tf!(dot k::vec_dot_iq4_xs_q8_k),
    });
    weighted_over!(t, k);
    Kernels {
        level: Level::Avx2,
        formats: t,
    }
};

#[cfg(target_arch = "x86_64")]
static AVX512: Kernels = {
    use crate::x86::avx512 as k;
    let mut t = AVX2.formats;
    over!(t, F32, {
        vec_dot: tf!(dot k::vec_dot_f32),
        vec_dot4: tf!(dot4 k::vec_dot4_f32),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_f32),
    });
    over!(t, F16, {
        vec_dot: tf!(dot k::vec_dot_f16),
        vec_dot4: tf!(dot4 k::vec_dot4_f16),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_f16),
    });
    over!(t, BF16, {
        vec_dot: tf!(dot k::vec_dot_bf16),
        vec_dot4: tf!(dot4 k::vec_dot4_bf16),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_bf16),
    });
    over!(t, Q8_0, {
        vec_dot: tf!(dot k::vec_dot_q8_0_q8_0),
        vec_dot4: tf!(dot4 k::vec_dot4_q8_0_q8_0),
        vec_dot4_packed: tf!(dot4p k::vec_dot4_packed_q8_0_q8_0),
        panel16: tf!(panel k::panel16_dot_q8_0_q8_0),
    });
    over!(t, Q4_0, {
        vec_dot: tf!(dot k::vec_dot_q4_0_q8_0),
        vec_dot4: tf!(dot4 k::vec_dot4_q4_0_q8_0),
        vec_dot4_packed: tf!(dot4p k::vec_dot4_packed_q4_0_q8_0),
        panel16: tf!(panel k::panel16_dot_q4_0_q8_0),
    });
    // the one-token q4_k dot is AVX2's (`vpdpwssd` bought nothing over `vpmaddwd` there)
    over!(t, Q4K, {
        quantize: tf!(quant k::quantize_q4_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q4_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q4_k_q8_k),
    });
    over!(t, Q6K, {
        quantize: tf!(quant k::quantize_q6_k),
        vec_dot: tf!(dot k::vec_dot_q6_k_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q6_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q6_k_q8_k),
    });
    over!(t, Q2K, {
        quantize: tf!(quant k::quantize_q2_k),
        vec_dot: tf!(dot k::vec_dot_q2_k_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q2_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q2_k_q8_k),
    });
    over!(t, Q3K, {
        quantize: tf!(quant k::quantize_q3_k),
        vec_dot: tf!(dot k::vec_dot_q3_k_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q3_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q3_k_q8_k),
    });
    over!(t, Q5K, {
        quantize: tf!(quant k::quantize_q5_k),
        vec_dot: tf!(dot k::vec_dot_q5_k_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_q5_k_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_q5_k_q8_k),
    });
    over!(t, Q4_1, {
        vec_dot: tf!(dot k::vec_dot_q4_1_q8_1),
        vec_dot4: tf!(dot4 k::vec_dot4_q4_1_q8_1),
        panel16: tf!(panel k::panel16_dot_q4_1_q8_1),
    });
    over!(t, Q5_0, {
        vec_dot: tf!(dot k::vec_dot_q5_0_q8_0),
        vec_dot4: tf!(dot4 k::vec_dot4_q5_0_q8_0),
        vec_dot4_packed: tf!(dot4p k::vec_dot4_packed_q5_0_q8_0),
        panel16: tf!(panel k::panel16_dot_q5_0_q8_0),
    });
    over!(t, Q5_1, {
        vec_dot: tf!(dot k::vec_dot_q5_1_q8_1),
        vec_dot4: tf!(dot4 k::vec_dot4_q5_1_q8_1),
        panel16: tf!(panel k::panel16_dot_q5_1_q8_1),
    });
    over!(t, IQ4NL, {
        quantize: tf!(quant k::quantize_iq4_nl),
        vec_dot: tf!(dot k::vec_dot_iq4_nl_q8_0),
        vec_dot4: tf!(dot4 k::vec_dot4_iq4_nl_q8_0),
        vec_dot4_packed: tf!(dot4p k::vec_dot4_packed_iq4_nl_q8_0),
        panel16: tf!(panel k::panel16_dot_iq4_nl_q8_0),
    });
    over!(t, IQ4XS, {
        quantize: tf!(quant k::quantize_iq4_xs),
        vec_dot: tf!(dot k::vec_dot_iq4_xs_q8_k),
        vec_dot4: tf!(dot4 k::vec_dot4_iq4_xs_q8_k),
        vec_dot_tiled: tiled!(k::vec_dot_tiled_iq4_xs_q8_k),
    });
    weighted_over!(t, k);
    Kernels {
        level: Level::Avx512,
        formats: t,
    }
};

/// The AVX-512 table with AVX2's one-token dots (`vec_dot`) for every quantized weight: the
/// same bits (`multi_dot::avx2_and_avx512_one_token_dots_agree_on_every_quantized_weight`), and
/// faster for generation on CPUs that execute 512-bit operations as two 256-bit halves (AMD
/// Zen 4: 15–25 % on q4_0 and q3_k tg16 at 7B shapes, where the AVX-512 dots' cross-lane
/// shuffles and 16-lane reductions cost double and buy no throughput). The float weights keep
/// AVX-512's tiles without their one-token software prefetch (same operations and bits; f16
/// tg16 at 7B shapes 18 % faster on Zen 4). The multi-token kernels stay AVX-512's. Chosen by
/// [`kernels_tuned`].
#[cfg(target_arch = "x86_64")]
static AVX512_HALVES: Kernels = {
    use crate::x86::avx512 as k;
    let mut t = AVX512.formats;
    over!(t, F32, { vec_dot_tiled: tiled!(k::vec_dot_tiled_f32_streamed) });
    over!(t, F16, { vec_dot_tiled: tiled!(k::vec_dot_tiled_f16_streamed) });
    over!(t, BF16, { vec_dot_tiled: tiled!(k::vec_dot_tiled_bf16_streamed) });
    macro_rules! ymm_dot {
        ($($d:ident),*) => {$(
            over!(t, $d, { vec_dot: base(&AVX2.formats, DType::$d).vec_dot });
        )*};
    }
    ymm_dot!(
        Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2K, Q3K, Q4K, Q5K, Q6K, IQ4NL, IQ4XS
    );
    Kernels {
        level: Level::Avx512,
        formats: t,
    }
};

/// The AVX-512 table with the AMX int8 unit for the 16-token tiles of the panel kernels
/// (q8_0, q4_0, q5_0, iq4_nl weights against q8_0 activations, q4_1 and q5_1 against q8_1)
/// and of the k-quants' tiled dots (q2_k..q6_k against q8_k, the scales folded into the
/// weights as digits; iq4_xs with each 32-value sub-block's sums apart): the same
/// bits as the VNNI tiles (`multi_dot::panel16_dot_is_the_reference_dot`,
/// `multi_dot::vec_dot_tiled_is_single_dots*`). Chosen by [`kernels_tuned`] where
/// `x86::amx::usable` (Intel Xeons with AMX, the OS granting the tile state).
#[cfg(target_arch = "x86_64")]
static AVX512_AMX: Kernels = {
    use crate::x86::avx512 as k;
    let mut t = AVX512.formats;
    over!(t, Q8_0, { panel16: tf!(panel k::panel16_dot_q8_0_q8_0_amx) });
    over!(t, Q4_0, { panel16: tf!(panel k::panel16_dot_q4_0_q8_0_amx) });
    over!(t, Q5_0, { panel16: tf!(panel k::panel16_dot_q5_0_q8_0_amx) });
    over!(t, IQ4NL, { panel16: tf!(panel k::panel16_dot_iq4_nl_q8_0_amx) });
    over!(t, Q4_1, { panel16: tf!(panel k::panel16_dot_q4_1_q8_1_amx) });
    over!(t, Q5_1, { panel16: tf!(panel k::panel16_dot_q5_1_q8_1_amx) });
    over!(t, Q2K, { vec_dot_tiled: tiled!(k::vec_dot_tiled_q2_k_q8_k_amx) });
    over!(t, Q3K, { vec_dot_tiled: tiled!(k::vec_dot_tiled_q3_k_q8_k_amx) });
    over!(t, Q4K, { vec_dot_tiled: tiled!(k::vec_dot_tiled_q4_k_q8_k_amx) });
    over!(t, Q5K, { vec_dot_tiled: tiled!(k::vec_dot_tiled_q5_k_q8_k_amx) });
    over!(t, Q6K, { vec_dot_tiled: tiled!(k::vec_dot_tiled_q6_k_q8_k_amx) });
    over!(t, IQ4XS, { vec_dot_tiled: tiled!(k::vec_dot_tiled_iq4_xs_q8_k_amx) });
    Kernels {
        level: Level::Avx512,
        formats: t,
    }
};

#[cfg(target_arch = "aarch64")]
static NEON: Kernels = {
    use crate::neon as k;
    let mut t = SCALAR.formats;
    over!(t, F32, { vec_dot: tf!(dot k::vec_dot_f32) });
    over!(t, F16, { vec_dot: tf!(dot k::vec_dot_f16) });
    over!(t, BF16, { vec_dot: tf!(dot k::vec_dot_bf16) });
    over!(t, Q8_0, {
        quantize: tf!(quant k::quantize_q8_0),
        vec_dot: tf!(dot k::vec_dot_q8_0_q8_0),
    });
    over!(t, Q4_0, {
        quantize: tf!(quant k::quantize_q4_0),
        vec_dot: tf!(dot k::vec_dot_q4_0_q8_0),
    });
    over!(t, Q4K, { vec_dot: tf!(dot k::vec_dot_q4_k_q8_k) });
    over!(t, Q6K, { vec_dot: tf!(dot k::vec_dot_q6_k_q8_k) });
    over!(t, Q8K, { quantize: tf!(quant k::quantize_q8_k) });
    over!(t, Q8_1, { quantize: tf!(quant k::quantize_q8_1) });
    over!(t, Q4_1, { vec_dot: tf!(dot k::vec_dot_q4_1_q8_1) });
    over!(t, Q5_0, { vec_dot: tf!(dot k::vec_dot_q5_0_q8_0) });
    over!(t, Q5_1, { vec_dot: tf!(dot k::vec_dot_q5_1_q8_1) });
    over!(t, IQ4NL, { vec_dot: tf!(dot k::vec_dot_iq4_nl_q8_0) });
    over!(t, Q2K, { vec_dot: tf!(dot k::vec_dot_q2_k_q8_k) });
    over!(t, Q3K, { vec_dot: tf!(dot k::vec_dot_q3_k_q8_k) });
    over!(t, Q5K, { vec_dot: tf!(dot k::vec_dot_q5_k_q8_k) });
    over!(t, IQ4XS, { vec_dot: tf!(dot k::vec_dot_iq4_xs_q8_k) });
    Kernels {
        level: Level::Neon,
        formats: t,
    }
};

/// The kernel table of `level`, or `None` if this CPU (or build target) cannot run it.
pub fn kernels_for(level: Level) -> Option<&'static Kernels> {
    if !level.is_supported() {
        return None;
    }
    match level {
        Level::Scalar => Some(&SCALAR),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => Some(&AVX2),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => Some(&AVX512),
        #[cfg(target_arch = "aarch64")]
        Level::Neon => Some(&NEON),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The kernel table this process runs at `level`: [`kernels_for`], except that at AVX-512 on a
/// CPU that executes 512-bit operations as two 256-bit halves (AMD's, detected by CPUID vendor)
/// the one-token dots of quantized weights are AVX2's and the float tiles do not prefetch
/// (same bits; faster there for generation), and on a CPU with AMX the prompt tiles of the
/// panel kernels and of the k-quants run on its int8 unit (same bits; [`kernels_amx`]).
/// `LLAMAPACK_ONE_TOKEN_SIMD=avx2` or `=avx512` overrides the first detection,
/// `LLAMAPACK_AMX=0` turns the second off.
pub fn kernels_tuned(level: Level) -> Option<&'static Kernels> {
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512 && level.is_supported() {
        if one_token_ymm() {
            return Some(&AVX512_HALVES);
        }
        if crate::x86::amx::usable() {
            return Some(&AVX512_AMX);
        }
    }
    kernels_for(level)
}

/// The AVX-512 table whose panel kernels take 16-token tiles on the AMX int8 unit, where this
/// process may use it (`None` elsewhere, or with `LLAMAPACK_AMX=0`): what [`kernels_tuned`]
/// hands out at AVX-512 on such a CPU, for tests and benchmarks.
pub fn kernels_amx() -> Option<&'static Kernels> {
    #[cfg(target_arch = "x86_64")]
    if crate::x86::amx::usable() {
        return Some(&AVX512_AMX);
    }
    None
}

/// The table [`kernels_tuned`] hands out at AVX-512 on AMD CPUs, on any CPU with AVX-512 VNNI
/// (`None` without it): for tests that check its kernels whatever the vendor.
pub fn kernels_avx512_halves() -> Option<&'static Kernels> {
    #[cfg(target_arch = "x86_64")]
    if Level::Avx512.is_supported() {
        return Some(&AVX512_HALVES);
    }
    None
}

/// Whether the AVX-512 level should take AVX2's one-token dots (see [`kernels_tuned`]).
#[cfg(target_arch = "x86_64")]
fn one_token_ymm() -> bool {
    static YMM: OnceLock<bool> = OnceLock::new();
    *YMM.get_or_init(|| {
        match std::env::var("LLAMAPACK_ONE_TOKEN_SIMD")
            .ok()
            .as_deref()
            .map(str::trim)
        {
            Some(v) if v.eq_ignore_ascii_case("avx2") => return true,
            Some(v) if v.eq_ignore_ascii_case("avx512") => return false,
            _ => {}
        }
        // CPUID leaf 0: the vendor string in EBX, EDX, ECX ("AuthenticAMD")
        let v = std::arch::x86_64::__cpuid(0);
        let vendor: Vec<u8> = [v.ebx, v.edx, v.ecx]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        vendor == b"AuthenticAMD"
    })
}

/// The best supported level, lowered by `LLAMAPACK_SIMD` if it names a supported level.
fn choose() -> Level {
    let best = [Level::Avx512, Level::Avx2, Level::Neon]
        .into_iter()
        .find(|l| l.is_supported())
        .unwrap_or(Level::Scalar);
    match std::env::var("LLAMAPACK_SIMD")
        .ok()
        .as_deref()
        .and_then(Level::from_name)
    {
        Some(asked) if asked.is_supported() => asked,
        _ => best,
    }
}

/// The kernel table chosen for this process (detected once).
pub fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<&'static Kernels> = OnceLock::new();
    CHOSEN.get_or_init(|| kernels_tuned(choose()).unwrap_or(&SCALAR))
}

/// The level of [`kernels`].
pub fn simd_level() -> Level {
    kernels().level
}
