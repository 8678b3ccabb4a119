//! Tensor names: Meta's (what a `.lpk` holds) ↔ llama.cpp's GGUF names.

/// Per-layer suffixes: Meta, GGUF.
const LAYER: [(&str, &str); 9] = [
    ("attention.wq.weight", "attn_q.weight"),
    ("attention.wk.weight", "attn_k.weight"),
    ("attention.wv.weight", "attn_v.weight"),
    ("attention.wo.weight", "attn_output.weight"),
    ("feed_forward.w1.weight", "ffn_gate.weight"),
    ("feed_forward.w2.weight", "ffn_down.weight"),
    ("feed_forward.w3.weight", "ffn_up.weight"),
    ("attention_norm.weight", "attn_norm.weight"),
    ("ffn_norm.weight", "ffn_norm.weight"),
];

/// Whole-model tensors: Meta, GGUF.
const GLOBAL: [(&str, &str); 3] = [
    ("tok_embeddings.weight", "token_embd.weight"),
    ("norm.weight", "output_norm.weight"),
    ("output.weight", "output.weight"),
];

fn split_layer<'a>(name: &'a str, prefix: &str) -> Option<(u32, &'a str)> {
    let rest = name.strip_prefix(prefix)?;
    let (n, suffix) = rest.split_once('.')?;
    // Canonical decimal only, so the mapping is a bijection (`01` is not `1`).
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) || !n.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((n.parse().ok()?, suffix))
}

/// The GGUF name of a Meta tensor name, if it is one llama.cpp's llama architecture has.
pub fn meta_to_gguf(name: &str) -> Option<String> {
    if let Some(&(_, g)) = GLOBAL.iter().find(|(m, _)| *m == name) {
        return Some(g.to_owned());
    }
    let (n, suffix) = split_layer(name, "layers.")?;
    let &(_, g) = LAYER.iter().find(|(m, _)| *m == suffix)?;
    Some(format!("blk.{n}.{g}"))
}

/// The Meta name of a GGUF tensor name (inverse of [`meta_to_gguf`]).
pub fn gguf_to_meta(name: &str) -> Option<String> {
    if let Some(&(m, _)) = GLOBAL.iter().find(|(_, g)| *g == name) {
        return Some(m.to_owned());
    }
    let (n, suffix) = split_layer(name, "blk.")?;
    let &(m, _) = LAYER.iter().find(|(_, g)| *g == suffix)?;
    Some(format!("layers.{n}.{m}"))
}

/// Every Meta name of a model with `n_layers` layers (output last; skip it when tied).
pub fn meta_names(n_layers: u32) -> impl Iterator<Item = String> {
    let layers =
        (0..n_layers).flat_map(|i| LAYER.iter().map(move |(m, _)| format!("layers.{i}.{m}")));
    std::iter::once(GLOBAL[0].0.to_owned())
        .chain(layers)
        .chain(GLOBAL[1..].iter().map(|(m, _)| (*m).to_owned()))
}

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
