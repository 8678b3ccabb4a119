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

/// What the runner refuses (`TokenizerData::validate`, its one check), every tokenizer reader
/// refuses too: a SentencePiece model, a tokenizer.json, a GGUF vocabulary.
fn expect_refused(what: &str, r: llamapack_convert::Result<impl std::fmt::Debug>, says: &str) {
    let msg = r.map_or_else(|e| e.to_string(), |v| format!("accepted: {v:?}"));
    assert!(msg.contains(says), "{what}: {msg}");
}

#[test]
fn a_sentencepiece_model_with_a_duplicate_or_empty_piece_is_refused() {
    let base = [
        ("<unk>", 0.0, 2),
        ("<s>", 0.0, 3),
        ("</s>", 0.0, 3),
        ("▁a", -1.0, 1),
        ("▁b", -2.0, 1),
    ];
    let model = llamapack_convert::testing::sentencepiece_model;
    sentencepiece::parse(&model(&base, false), "ok.model").unwrap();
    let mut dup = base;
    dup[4].0 = "▁a";
    expect_refused(
        "duplicate",
        sentencepiece::parse(&model(&dup, false), "dup.model").map(|m| m.data.pieces),
        "piece `▁a` is defined twice (ids 3 and 4)",
    );
    let mut empty = base;
    empty[3].0 = "";
    expect_refused(
        "empty",
        sentencepiece::parse(&model(&empty, false), "empty.model").map(|m| m.data.pieces),
        "piece 3 is empty",
    );
    // Byte fallback without the 256 byte pieces: the runner could not encode unknown text.
    expect_refused(
        "byte fallback",
        sentencepiece::parse(&model(&base, true), "bf.model").map(|m| m.data.pieces),
        "byte piece <0x00> is missing",
    );
}

#[test]
fn a_tokenizer_json_with_a_duplicate_or_empty_piece_is_refused() {
    let parse = |j: serde_json::Value| {
        hf_tokenizer::parse(j.to_string().as_bytes(), "tokenizer.json", None, None)
            .map(|t| t.pieces)
    };
    let base = serde_json::json!({
        "model": {"type": "BPE", "unk_token": "<unk>",
            "vocab": {"<unk>": 0, "a": 1, "b": 2}, "merges": []}
    });
    parse(base.clone()).unwrap();
    // An added (non-special, so user-defined) token repeating a vocabulary piece.
    let mut dup = base.clone();
    dup["added_tokens"] = serde_json::json!([{"id": 3, "content": "a", "special": false}]);
    expect_refused(
        "duplicate",
        parse(dup),
        "piece `a` is defined twice (ids 1 and 3)",
    );
    let mut empty = base;
    empty["model"]["vocab"][""] = 3.into();
    expect_refused("empty", parse(empty), "piece 3 is empty");
}

#[test]
fn a_gguf_vocabulary_with_a_duplicate_piece_is_refused() {
    let src = common::fixtures().join("gguf/tiny-f16.gguf");
    let bytes = std::fs::read(&src).unwrap();
    let f = llamapack_convert::gguf::GgufFile::parse(&bytes, "tiny-f16.gguf").unwrap();
    let tokens = match f.get("tokenizer.ggml.tokens") {
        Some(llamapack_convert::gguf::value::Value::Array(
            llamapack_convert::gguf::value::Array::String(t),
        )) => t.clone(),
        other => panic!("{other:?}"),
    };
    // Two normal pieces of the same length: the second is overwritten with the first.
    let (i, j) = (300..tokens.len())
        .flat_map(|i| (i + 1..tokens.len()).map(move |j| (i, j)))
        .find(|&(i, j)| tokens[i].len() == tokens[j].len() && tokens[i].len() >= 3)
        .unwrap();
    let encoded = |s: &str| [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat();
    let (from, to) = (encoded(&tokens[j]), encoded(&tokens[i]));
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_slice())
        .unwrap();
    let mut m = bytes.clone();
    m[at..at + to.len()].copy_from_slice(&to);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("dup.gguf");
    std::fs::write(&bad, &m).unwrap();
    let out = dir.path().join("dup.lpk");
    let e = llamapack_convert::gguf::import_gguf(
        &bad,
        &out,
        &llamapack_convert::gguf::ImportOptions::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "`{}` is defined twice (ids {i} and {j})",
            tokens[i]
        )),
        "{msg}"
    );
    assert!(!out.exists());
}

#[test]
fn convert_refuses_a_tokenizer_the_runner_would_refuse_and_writes_nothing() {
    let (t, dir) = common::meta_case("meta_ok");
    let sp = sentencepiece::parse(
        &std::fs::read(common::fixtures().join("tiny/tokenizer.model")).unwrap(),
        "tokenizer.model",
    )
    .unwrap()
    .data;
    let mut pieces: Vec<(&str, f32, u8)> = sp
        .pieces
        .iter()
        .zip(&sp.scores)
        .zip(&sp.types)
        .map(|((p, &s), &ty)| (p.as_str(), s, ty))
        .collect();
    let last = pieces.len() - 1;
    pieces[last].0 = pieces[last - 1].0;
    let bad = t.path().join("bad.model");
    std::fs::write(
        &bad,
        llamapack_convert::testing::sentencepiece_model(&pieces, true),
    )
    .unwrap();
    let out = t.path().join("out.lpk");
    let opts = llamapack_convert::ConvertOptions {
        tokenizer: Some(bad),
        ..Default::default()
    };
    let e = llamapack_convert::convert(&dir, &out, &opts, &common::quiet).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("bad.model") && msg.contains("is defined twice"),
        "{msg}"
    );
    assert!(!out.exists());
}
