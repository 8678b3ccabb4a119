//! The in-memory panel layout of 32-value block formats whose block is one or two f16 words (a
//! scale, and for q4_1/q5_1 a minimum) and then whole dwords (q4_0, q4_1, iq4_nl, q5_0, q5_1,
//! q8_0): 16 rows side by side, for the panel kernels (`Kernels::panel16_dot`). The file keeps
//! ggml's blocks; only a loaded model holds panels.

use llamapack_format::DType;

/// Rows per panel.
pub const ROWS: usize = 16;

/// Bytes of one block of a `dtype` row, if its blocks can be laid out in panels (32 values, one
/// or two f16 words, then whole dwords).
pub fn block_bytes(dtype: DType) -> Option<usize> {
    let bb = dtype.row_bytes(32)?;
    (dtype.block_len() == 32 && bb > 4 && head_words(bb).is_some()).then_some(bb)
}

/// The f16 words before the dwords of a `bb`-byte block of 32 values: ggml's 32-value blocks
/// are an f16 scale (and an f16 minimum, q4_1/q5_1) and then whole dwords of quants (q5_0 and
/// q5_1: a high-bit word first), so the words are what the bytes leave over whole dwords.
fn head_words(bb: usize) -> Option<usize> {
    [1, 2].into_iter().find(|&w| (bb - 2 * w).is_multiple_of(4))
}

/// Repacks 16 `dtype` rows of `nb` blocks (`rows`: row after row) into a panel: block `b` of the
/// 16 rows becomes `16 · bb` bytes at `b · 16 · bb` (`bb` = [`block_bytes`]): for each f16 word
/// `w` of the block's head ([`head_words`]: the scale, and the minimum) that word of the 16 rows (row `i` at `32w + 2i`: the
/// scales, then the minimums), then for each dword `j` after the head, that dword of every row
/// (row `i` at `32h + 64j + 4i`, `h` words of head), so that one 64-byte load holds the same 4
/// bytes of all 16 rows. For q4_0/q4_1/iq4_nl the dwords are nibble bytes `4j..4j + 4`; for
/// q5_0/q5_1 the first is the high-bit word, the next 4 its nibble bytes; for q8_0 quants
/// `4j..4j + 4`.
///
/// # Panics
/// If `dtype` has no panel layout, `rows` is not 16 whole rows of `nb` blocks, or `out` has
/// another length.
pub fn repack_x16(dtype: DType, nb: usize, rows: &[u8], out: &mut [u8]) {
    let bb = block_bytes(dtype).unwrap_or_else(|| panic!("repack_x16: {dtype} has no panels"));
    let h = head_words(bb).expect("block_bytes has a head");
    let rb = nb * bb;
    assert!(
        rows.len() == ROWS * rb && out.len() == rows.len(),
        "repack_x16: 16 rows of {nb} {dtype} blocks are {} bytes, got {} in, {} out",
        ROWS * rb,
        rows.len(),
        out.len()
    );
    for (b, o) in out.chunks_exact_mut(ROWS * bb).enumerate() {
        for i in 0..ROWS {
            let blk = &rows[i * rb + bb * b..][..bb];
            for w in 0..h {
                o[32 * w + 2 * i..][..2].copy_from_slice(&blk[2 * w..2 * w + 2]);
            }
            for (j, d) in blk[2 * h..].chunks_exact(4).enumerate() {
                o[32 * h + 64 * j + 4 * i..][..4].copy_from_slice(d);
            }
        }
    }
}
