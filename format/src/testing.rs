//! Small valid metadata for tests and examples of every crate.

use crate::meta::{Metadata, ModelConfig, Provenance, TokenizerData, TokenizerKind};

/// A config for a model of width 64, 2 layers, 4 query heads, 2 KV heads, vocab 16.
pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        arch: "llama".into(),
        dim: 64,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        ffn_dim: 96,
        vocab_size: 16,
        norm_eps: 1e-5,
        rope_theta: 10000.0,
        context_length: 128,
        tied_output: false,
    }
}

/// A 16-piece SentencePiece-style vocabulary: `<unk>`, `<s>`, `</s>`, then letters.
pub fn tiny_tokenizer() -> TokenizerData {
    let mut pieces: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    pieces.extend("▁abcdefghijkl".chars().map(|c| c.to_string()));
    let mut types = vec![1u8; pieces.len()];
    types[0] = 2;
    types[1] = 3;
    types[2] = 3;
    sentencepiece(pieces, types, false)
}

/// A SentencePiece tokenizer over `pieces` (with their sentencepiece `types`), scores
/// descending in id order, `<unk>` = 0, `<s>` = 1, `</s>` = 2, BOS added, dummy prefix on.
pub fn sentencepiece(pieces: Vec<String>, types: Vec<u8>, byte_fallback: bool) -> TokenizerData {
    let n = pieces.len();
    TokenizerData {
        kind: TokenizerKind::SentencePiece,
        scores: (0..n).map(|i| -(i as f32)).collect(),
        pieces,
        types,
        bos_id: Some(1),
        eos_id: Some(2),
        unk_id: Some(0),
        pad_id: None,
        add_bos: true,
        add_eos: false,
        add_dummy_prefix: true,
        remove_extra_whitespaces: false,
        byte_fallback,
        merges: Vec::new(),
        pre: None,
        chat_template: None,
    }
}

/// [`tiny_config`] + [`tiny_tokenizer`] + a `test` provenance.
pub fn tiny_metadata() -> Metadata {
    Metadata {
        config: tiny_config(),
        tokenizer: tiny_tokenizer(),
        provenance: Provenance {
            tool: crate::TOOL_VERSION.into(),
            source_format: "test".into(),
            ..Provenance::default()
        },
    }
}

/// The pid of a process that has ended (a `true` run and waited for), for tests of what is
/// left by processes that no longer run.
pub fn ended_pid() -> u32 {
    let mut c = std::process::Command::new("true")
        .spawn()
        .expect("run `true`");
    let pid = c.id();
    let _ = c.wait();
    pid
}
