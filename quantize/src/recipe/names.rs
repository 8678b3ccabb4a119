//! Tensor names: Meta's (what a `.lpk` holds) ↔ llama.cpp's GGUF names, and what each is to
//! llama.cpp's rules. The one name table of the workspace (`llamapack-convert`'s
//! `gguf::names` re-exports it).

use llamapack_format::llama;
use serde::Serialize;

/// Per-layer tensor names: Meta's suffix (the format crate's table), GGUF's suffix.
const LAYER_NAMES: [(&str, &str); 9] = {
    const M: [&str; 9] = llama::LAYER_TENSORS;
    [
        (M[0], "attn_q.weight"),
        (M[1], "attn_k.weight"),
        (M[2], "attn_v.weight"),
        (M[3], "attn_output.weight"),
        (M[4], "ffn_gate.weight"),
        (M[5], "ffn_down.weight"),
        (M[6], "ffn_up.weight"),
        (M[7], "attn_norm.weight"),
        (M[8], "ffn_norm.weight"),
    ]
};

/// Whole-model tensor names: Meta's, GGUF's.
const MODEL_NAMES: [(&str, &str); 3] = [
    (llama::TOK_EMBEDDINGS, "token_embd.weight"),
    (llama::NORM, "output_norm.weight"),
    (llama::OUTPUT, "output.weight"),
];

/// Splits `<prefix><n>.<suffix>` with a canonical decimal `n` (`01` is not `1`).
fn split_layer<'a>(name: &'a str, prefix: &str) -> Option<(u32, &'a str)> {
    let (n, suffix) = name.strip_prefix(prefix)?.split_once('.')?;
    let canonical = !n.is_empty() && (n == "0" || !n.starts_with('0'));
    if !canonical || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((n.parse().ok()?, suffix))
}

/// llama.cpp's GGUF name of a Meta tensor name (`layers.3.feed_forward.w2.weight` →
/// `blk.3.ffn_down.weight`); `None` for a name the llama architecture does not have.
pub fn gguf_name(meta: &str) -> Option<String> {
    if let Some(&(_, g)) = MODEL_NAMES.iter().find(|(m, _)| *m == meta) {
        return Some(g.to_owned());
    }
    let (n, suffix) = split_layer(meta, "layers.")?;
    let &(_, g) = LAYER_NAMES.iter().find(|(m, _)| *m == suffix)?;
    Some(format!("blk.{n}.{g}"))
}

/// The Meta name of a GGUF tensor name (inverse of [`gguf_name`]).
pub fn meta_name(gguf: &str) -> Option<String> {
    if let Some(&(m, _)) = MODEL_NAMES.iter().find(|(_, g)| *g == gguf) {
        return Some(m.to_owned());
    }
    let (n, suffix) = split_layer(gguf, "blk.")?;
    let &(m, _) = LAYER_NAMES.iter().find(|(_, g)| *g == suffix)?;
    Some(format!("layers.{n}.{m}"))
}

/// Every Meta name of a model with `n_layers` layers, in llama.cpp's order (output last; skip
/// it when tied).
pub fn meta_names(n_layers: u32) -> impl Iterator<Item = String> {
    let layers = (0..n_layers).flat_map(|i| {
        LAYER_NAMES
            .iter()
            .map(move |(m, _)| format!("layers.{i}.{m}"))
    });
    std::iter::once(MODEL_NAMES[0].0.to_owned())
        .chain(layers)
        .chain(MODEL_NAMES[1..].iter().map(|(m, _)| (*m).to_owned()))
}

/// What a tensor is to llama.cpp's rules (its `tensor_category`, llama subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `output.weight`.
    Output,
    /// `token_embd.weight`.
    TokenEmbd,
    /// `attn_q`.
    AttnQ,
    /// `attn_k`.
    AttnK,
    /// `attn_v`.
    AttnV,
    /// `attn_output`.
    AttnOutput,
    /// `ffn_gate` (Meta's w1).
    FfnGate,
    /// `ffn_up` (Meta's w3).
    FfnUp,
    /// `ffn_down` (Meta's w2).
    FfnDown,
    /// Anything else (norms).
    Other,
}

impl Role {
    /// The role of a GGUF tensor name, matched as llama.cpp matches it (substrings).
    pub fn of(gguf_name: &str) -> Role {
        let has = |s: &str| gguf_name.contains(s);
        match gguf_name {
            "output.weight" => Role::Output,
            "token_embd.weight" => Role::TokenEmbd,
            _ if has("attn_v.weight") => Role::AttnV,
            _ if has("attn_k.weight") => Role::AttnK,
            _ if has("attn_q.weight") => Role::AttnQ,
            _ if has("attn_output.weight") => Role::AttnOutput,
            _ if has("ffn_up") => Role::FfnUp,
            _ if has("ffn_gate") => Role::FfnGate,
            _ if has("ffn_down") => Role::FfnDown,
            _ => Role::Other,
        }
    }
}
