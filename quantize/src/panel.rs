//! The in-memory panel layout of 32-value block formats whose block is an f16 scale and then
//! whole dwords (q4_0, iq4_nl, q5_0, q8_0): 16 rows side by side, for the panel kernels
//! (`Kernels::panel16_dot`). The file keeps ggml's blocks; only a loaded model holds panels.

use llamapack_format::DType;

/// Rows per panel.
pub const ROWS: usize = 16;

/// Bytes of one block of a `dtype` row, if its blocks can be laid out in panels (32 values, an
/// f16 scale, then whole dwords).
pub fn block_bytes(dtype: DType) -> Option<usize> {
    let bb = dtype.row_bytes(32)?;
    (dtype.block_len() == 32 && bb > 2 && (bb - 2).is_multiple_of(4)).then_some(bb)
}

/// Repacks 16 `dtype` rows of `nb` blocks (`rows`: row after row) into a panel: block `b` of the
/// 16 rows becomes `16 · bb` bytes at `b · 16 · bb` (`bb` = [`block_bytes`]): the 16 f16 scales
/// (row `i` at `2i`), then for each dword `j` of the block after its scale, that dword of every
/// row (row `i` at `32 + 64j + 4i`), so that one 64-byte load holds the same 4 bytes of all 16
/// rows. For q4_0/iq4_nl the dwords are nibble bytes `4j..4j + 4`; for q5_0 the first is the
/// high-bit word, the next 4 its nibble bytes; for q8_0 quants `4j..4j + 4`.
///
/// # Panics
/// If `dtype` has no panel layout, `rows` is not 16 whole rows of `nb` blocks, or `out` has
/// another length.
pub fn repack_x16(dtype: DType, nb: usize, rows: &[u8], out: &mut [u8]) {
    let bb = block_bytes(dtype).unwrap_or_else(|| panic!("repack_x16: {dtype} has no panels"));
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
            o[2 * i..2 * i + 2].copy_from_slice(&blk[..2]);
            for (j, d) in blk[2..].chunks_exact(4).enumerate() {
                o[32 + 64 * j + 4 * i..][..4].copy_from_slice(d);
            }
        }
    }
}
