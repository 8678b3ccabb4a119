//! `SentencePiece` and `tokenizer.json` readers on real files.

use crate::common;

use std::path::PathBuf;

use llamapack_convert::{hf_tokenizer, sentencepiece};
use llamapack_format::{TokenType, TokenizerKind};

#[test]
fn tiny_sentencepiece_model() {
    let p = common::fixtures().join("tiny/tokenizer.model");
    let sp = sentencepiece::parse(&std::fs::read(&p).unwrap(), "tokenizer.model").unwrap();
    let d = &sp.data;
    assert_eq!(sp.model_type, "bpe");
    assert_eq!(d.kind, TokenizerKind::SentencePiece);
    assert_eq!(d.pieces.len(), 512);
    assert_eq!(
        (d.unk_id, d.bos_id, d.eos_id, d.pad_id),
        (Some(0), Some(1), Some(2), None)
    );
    assert_eq!(&d.pieces[..3], ["<unk>", "<s>", "</s>"]);
    assert_eq!(d.token_type(1), TokenType::Control);
    // byte fallback: <0x00>..<0xFF> right after the specials
    assert!(d.byte_fallback);
    assert_eq!(d.pieces[3], "<0x00>");
    assert_eq!(d.token_type(3 + 255), TokenType::Byte);
    assert!(d.add_dummy_prefix && !d.remove_extra_whitespaces);
}

/// Meta's Llama 2 tokenizer, when the shared data folder is present (it is not committed).
#[test]
fn llama2_sentencepiece_model_when_available() {
    let candidates = [
        PathBuf::from("/work/shared/data/llama2/tokenizer.model"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/llama2/tokenizer.model"),
    ];
    let Some(p) = candidates.iter().find(|p| p.is_file()) else {
        eprintln!("llama2 tokenizer.model not available; skipped");
        return;
    };
    let sp = sentencepiece::parse(&std::fs::read(p).unwrap(), "tokenizer.model").unwrap();
    let d = &sp.data;
    assert_eq!(d.pieces.len(), 32000);
    assert_eq!(
        (d.unk_id, d.bos_id, d.eos_id, d.pad_id),
        (Some(0), Some(1), Some(2), None)
    );
    assert_eq!(d.pieces[13], "<0x0A>");
    assert_eq!(d.token_type(13), TokenType::Byte);
    assert_eq!(d.pieces[29871], "▁");
    assert_eq!(d.pieces[450], "▁The");
    assert!(d.byte_fallback && d.add_dummy_prefix && !d.remove_extra_whitespaces);
    assert_eq!(sp.normalizer, "identity");
}

/// transformers' tokenizer.json for the tiny model agrees with its tokenizer.model on pieces,
/// types and special ids (scores differ by construction: json has merge ranks).
#[test]
fn tokenizer_json_agrees_with_tokenizer_model() {
    let hf = common::fixtures().join("tiny/hf");
    if !hf.join("tokenizer.json").is_file() {
        eprintln!("fixtures/tiny/hf/tokenizer.json not present yet; skipped");
        return;
    }
    let sp = sentencepiece::parse(&std::fs::read(hf.join("tokenizer.model")).unwrap(), "m")
        .unwrap()
        .data;
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(hf.join("tokenizer_config.json")).unwrap()).unwrap();
    let js = hf_tokenizer::parse(
        &std::fs::read(hf.join("tokenizer.json")).unwrap(),
        "tokenizer.json",
        Some(&cfg),
        None,
    )
    .unwrap();
    assert_eq!(js.kind, TokenizerKind::SentencePiece);
    assert_eq!(js.pieces, sp.pieces);
    assert_eq!(js.types, sp.types);
    assert_eq!(
        (js.bos_id, js.eos_id, js.unk_id),
        (sp.bos_id, sp.eos_id, sp.unk_id)
    );
    assert_eq!(js.byte_fallback, sp.byte_fallback);
    assert_eq!(js.add_dummy_prefix, sp.add_dummy_prefix);
    assert!(js.add_bos && !js.add_eos);
    // Merge order agrees with the SentencePiece scores for the merged pieces: a higher score in
    // the model means an earlier merge in the json.
    let mut pairs: Vec<(f32, f32)> = (0..sp.pieces.len())
        .filter(|&i| sp.token_type(i) == TokenType::Normal && sp.pieces[i].chars().count() > 1)
        .map(|i| (sp.scores[i], js.scores[i]))
        .collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert!(
        pairs.windows(2).all(|w| w[0].1 >= w[1].1),
        "merge ranks follow scores"
    );
}
