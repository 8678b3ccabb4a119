//! Tensor names: Meta's (what a `.lpk` holds) ↔ llama.cpp's GGUF names — the name table of
//! `llamapack-quantize`'s recipes (one table for the workspace), under the names this crate uses.

pub use llamapack_quantize::recipe::{
    gguf_name as meta_to_gguf, meta_name as gguf_to_meta, meta_names,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_both_ways() {
        for m in meta_names(3) {
            let g = meta_to_gguf(&m).unwrap();
            assert_eq!(gguf_to_meta(&g).as_deref(), Some(m.as_str()), "{g}");
        }
        assert_eq!(
            meta_to_gguf("layers.12.feed_forward.w2.weight").as_deref(),
            Some("blk.12.ffn_down.weight")
        );
        assert_eq!(
            meta_to_gguf("tok_embeddings.weight").as_deref(),
            Some("token_embd.weight")
        );
        assert_eq!(meta_to_gguf("rope.freqs"), None);
        assert_eq!(gguf_to_meta("blk.01.attn_q.weight"), None);
        assert_eq!(gguf_to_meta("blk.x.attn_q.weight"), None);
        assert_eq!(gguf_to_meta("rope_freqs.weight"), None);
    }
}
