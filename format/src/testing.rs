//! Small valid metadata and files for tests and examples of every crate, and a way to make a
//! valid file lie.

use std::path::{Path, PathBuf};

use crate::DType;
use crate::error::Result;
use crate::header::Preamble;
use crate::meta::{Metadata, ModelConfig, Provenance, TokenizerData, TokenizerKind};
use crate::writer::LpkWriter;

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

/// Writes a model of `meta`'s config with every weight zero (f32) at `path`.
pub fn zero_model(path: &Path, meta: &Metadata) -> Result<PathBuf> {
    let mut w = LpkWriter::create(path)?;
    for (name, shape) in meta.config.tensors() {
        let n: u64 = shape.iter().product();
        w.write_tensor(&name, DType::F32, &shape, &vec![0u8; n as usize * 4])?;
    }
    w.finish(meta)
}

/// The `.lpk` `bytes` with its JSON header rewritten by `edit` and the preamble (length,
/// checksum) fixed to match: a file that tells exactly the lie `edit` makes, for tests of the
/// reader (the writer refuses to write most lies).
pub fn rewrite_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let (_, _, pre) = Preamble::from_bytes(bytes[..64].try_into().expect("a preamble"));
    let start = pre.header_offset as usize;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes[start..]).expect("a JSON header");
    edit(&mut v);
    let json = serde_json::to_vec(&v).expect("JSON serialises");
    let mut out = bytes[..start].to_vec();
    out.extend_from_slice(&json);
    let pre = Preamble {
        header_len: json.len() as u64,
        header_crc32c: crc32c::crc32c(&json),
        file_len: out.len() as u64,
        ..pre
    };
    out[..64].copy_from_slice(&pre.to_bytes());
    out
}
