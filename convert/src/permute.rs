//! The rotary row permutation between Meta's and Hugging Face's Q/K weights.
//!
//! Meta's `RoPE` rotates adjacent pairs (rows `2i`, `2i+1` of each head); HF's rotates halves
//! (rows `i`, `i + head_dim/2`). transformers' `convert_llama_weights_to_hf.py` therefore
//! stores `wq`/`wk` as
//!
//! ```text
//! permute(w, n_heads) = w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)
//! ```
//!
//! with `n_heads` = the KV head count for `wk`. Element `(h, i, j, c)` of the view is Meta row
//! `h·hd + 2i + j`; after the transpose it sits at `(h, j, i, c)`, i.e. HF row
//! `h·hd + j·hd/2 + i`. The permutation never mixes heads, so it depends only on `head_dim`:
//! using `dim1 / n_kv_heads` with the right head count for `wk` *is* using the model's
//! `head_dim`, and getting that count wrong (the classic 70B bug) changes `head_dim`.

/// The HF row that holds Meta row `meta_row` of a Q or K weight with heads of `head_dim` rows.
#[inline]
pub fn hf_row_for_meta_row(meta_row: usize, head_dim: usize) -> usize {
    let (h, r) = (meta_row / head_dim, meta_row % head_dim);
    let (i, j) = (r / 2, r % 2);
    h * head_dim + j * (head_dim / 2) + i
}

/// Meta → HF row order (what transformers' converter does), on a row-major `[rows, cols]` matrix.
pub fn permute_meta_to_hf<T: Copy>(w: &[T], rows: usize, cols: usize, head_dim: usize) -> Vec<T> {
    assert_eq!(w.len(), rows * cols);
    assert!(head_dim.is_multiple_of(2) && rows.is_multiple_of(head_dim));
    let mut out = w.to_vec();
    for m in 0..rows {
        let h = hf_row_for_meta_row(m, head_dim);
        out[h * cols..(h + 1) * cols].copy_from_slice(&w[m * cols..(m + 1) * cols]);
    }
    out
}

/// HF → Meta row order: the inverse of [`permute_meta_to_hf`]. The importer does the same
/// row by row while streaming, with [`hf_row_for_meta_row`].
pub fn unpermute_hf_to_meta<T: Copy>(w: &[T], rows: usize, cols: usize, head_dim: usize) -> Vec<T> {
    assert_eq!(w.len(), rows * cols);
    assert!(head_dim.is_multiple_of(2) && rows.is_multiple_of(head_dim));
    let mut out = Vec::with_capacity(w.len());
    for m in 0..rows {
        let h = hf_row_for_meta_row(m, head_dim);
        out.extend_from_slice(&w[h * cols..(h + 1) * cols]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A literal transcription of torch's `view(n, hd/2, 2, c).transpose(1, 2).reshape(rows, c)`
    /// via strides, independent of `hf_row_for_meta_row`.
    fn torch_permute(w: &[u32], n_heads: usize, rows: usize, cols: usize) -> Vec<u32> {
        let half = rows / n_heads / 2;
        // view: shape (n, half, 2, c), contiguous strides.
        let strides = [half * 2 * cols, 2 * cols, cols, 1];
        // transpose(1, 2): shape (n, 2, half, c), strides swapped.
        let (shape_t, strides_t) = (
            [n_heads, 2, half, cols],
            [strides[0], strides[2], strides[1], strides[3]],
        );
        // reshape to (rows, c) = read in row-major order of the transposed view.
        let mut out = Vec::with_capacity(w.len());
        for a in 0..shape_t[0] {
            for b in 0..shape_t[1] {
                for c in 0..shape_t[2] {
                    for d in 0..shape_t[3] {
                        out.push(
                            w[a * strides_t[0]
                                + b * strides_t[1]
                                + c * strides_t[2]
                                + d * strides_t[3]],
                        );
                    }
                }
            }
        }
        out
    }

    fn case() -> impl Strategy<Value = (usize, usize, usize)> {
        // (heads, head_dim, cols)
        (1usize..6, 1usize..9, 1usize..5).prop_map(|(h, half, c)| (h, half * 2, c))
    }

    proptest! {
        #[test]
        fn matches_torch_view_transpose(c in case()) {
            let (heads, hd, cols) = c;
            let rows = heads * hd;
            let w: Vec<u32> = (0..(rows * cols) as u32).collect();
            prop_assert_eq!(permute_meta_to_hf(&w, rows, cols, hd), torch_permute(&w, heads, rows, cols));
        }

        #[test]
        fn unpermute_inverts_permute(c in case(), seed in any::<u32>()) {
            let (heads, hd, cols) = c;
            let rows = heads * hd;
            let w: Vec<u32> = (0..(rows * cols) as u32).map(|x| x.wrapping_mul(2_654_435_761).wrapping_add(seed)).collect();
            let hf = permute_meta_to_hf(&w, rows, cols, hd);
            prop_assert_eq!(&unpermute_hf_to_meta(&hf, rows, cols, hd), &w);
            let meta = unpermute_hf_to_meta(&w, rows, cols, hd);
            prop_assert_eq!(&permute_meta_to_hf(&meta, rows, cols, hd), &w);
        }

        /// GQA: K has fewer heads of the same head_dim; permuting it as HF does with the KV head
        /// count is inverted by the same head_dim-based mapping.
        #[test]
        fn gqa_k_uses_kv_heads(kv in 1usize..4, group in 1usize..4, half in 1usize..6, cols in 1usize..4) {
            let hd = half * 2;
            let heads = kv * group;
            let k_rows = kv * hd;
            let w: Vec<u32> = (0..(k_rows * cols) as u32).collect();
            let hf = torch_permute(&w, kv, k_rows, cols);
            prop_assert_eq!(&unpermute_hf_to_meta(&hf, k_rows, cols, hd), &w);
            if group > 1 && hd % group == 0 && (hd / group) % 2 == 0 {
                // Using n_heads for K (the 70B bug) means head_dim k_rows / n_heads: wrong order.
                let wrong_hd = k_rows / heads;
                let wrong = unpermute_hf_to_meta(&hf, k_rows, cols, wrong_hd);
                prop_assert_ne!(&wrong, &w);
            }
        }
    }

    #[test]
    fn known_small_case() {
        // One head of 4 rows: Meta rows [r0, r1, r2, r3] (pairs (r0,r1), (r2,r3)) become HF
        // rows [r0, r2, r1, r3] (halves (r0,r2), (r1,r3)).
        let w = [0u32, 1, 2, 3];
        assert_eq!(permute_meta_to_hf(&w, 4, 1, 4), [0, 2, 1, 3]);
        assert_eq!(
            unpermute_hf_to_meta(&[0u32, 2, 1, 3], 4, 1, 4),
            [0, 1, 2, 3]
        );
    }
}
