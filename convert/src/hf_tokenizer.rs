//! Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) into [`TokenizerData`].
//!
//! Only BPE models are read. A byte-level pre-tokenizer means GPT-2 byte BPE
//! ([`TokenizerKind::Gpt2Bpe`], merges kept in rank order); anything else is SentencePiece-style
//! BPE (`▁` for spaces, byte fallback), whose merge ranks become scores: the piece made by merge
//! `r` scores `-r`, pieces no merge makes score below every merge.

use std::collections::HashMap;

use llamapack_format::{TokenType, TokenizerData, TokenizerKind, byte_piece_value};
use serde_json::Value;

use crate::error::{Error, Result};

fn token_text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("content").and_then(Value::as_str),
        _ => None,
    }
}

fn contains_type(v: &Value, ty: &str) -> bool {
    match v {
        Value::Object(o) => {
            o.get("type").and_then(Value::as_str) == Some(ty)
                || o.values().any(|x| contains_type(x, ty))
        }
        Value::Array(a) => a.iter().any(|x| contains_type(x, ty)),
        _ => false,
    }
}

/// Whether the normalizer or pre-tokenizer prepends `▁` (`SentencePiece`'s dummy prefix).
fn prepends_space(json: &Value) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::Object(o) => {
                let ty = o.get("type").and_then(Value::as_str);
                (ty == Some("Prepend") && o.get("prepend").and_then(Value::as_str) == Some("▁"))
                    || (ty == Some("Metaspace")
                        && (o.get("add_prefix_space").and_then(Value::as_bool) == Some(true)
                            || o.get("prepend_scheme")
                                .and_then(Value::as_str)
                                .is_some_and(|s| s != "never")))
                    || o.values().any(walk)
            }
            Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    walk(json.get("normalizer").unwrap_or(&Value::Null))
        || walk(json.get("pre_tokenizer").unwrap_or(&Value::Null))
}

/// Reads the `tokenizer.json` at `path` with the `tokenizer_config.json` and `config.json`
/// beside it when they are there (they name BOS/EOS and say whether BOS is added), as
/// `convert` reads them.
pub fn parse_file(path: &std::path::Path) -> Result<TokenizerData> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| Error::io(p, "read", e));
    let json = |p: std::path::PathBuf| -> Result<Option<Value>> {
        if !p.is_file() {
            return Ok(None);
        }
        let bytes = read(&p)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Tokenizer {
                file: p.display().to_string(),
                reason: format!("not json: {e}"),
            })
    };
    let config = json(path.with_file_name("tokenizer_config.json"))?;
    let model_config = json(path.with_file_name("config.json"))?;
    parse(
        &read(path)?,
        &path.display().to_string(),
        config.as_ref(),
        model_config.as_ref(),
    )
}

/// Reads `tokenizer.json` text; `config` is `tokenizer_config.json` when present, `model_config`
/// is `config.json` (for `bos_token_id`/`eos_token_id` fallbacks).
pub fn parse(
    json: &[u8],
    file: &str,
    config: Option<&Value>,
    model_config: Option<&Value>,
) -> Result<TokenizerData> {
    let err = |reason: String| Error::Tokenizer {
        file: file.to_owned(),
        reason,
    };
    let root: Value = serde_json::from_slice(json).map_err(|e| err(format!("not json: {e}")))?;
    let model = root.get("model").ok_or_else(|| err("no `model`".into()))?;
    let ty = model.get("type").and_then(Value::as_str).unwrap_or("BPE");
    if ty != "BPE" {
        return Err(err(format!(
            "model type `{ty}` is not supported (only BPE)"
        )));
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| err("model.vocab is not an object".into()))?;
    let mut by_id: HashMap<u64, (String, Option<bool>)> = HashMap::with_capacity(vocab.len());
    for (piece, id) in vocab {
        let id = id.as_u64().ok_or_else(|| {
            err(format!(
                "vocab id of `{piece}` is not a non-negative integer"
            ))
        })?;
        if by_id.insert(id, (piece.clone(), None)).is_some() {
            return Err(err(format!("id {id} is assigned twice")));
        }
    }
    for t in root
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(content)) = (
            t.get("id").and_then(Value::as_u64),
            t.get("content").and_then(Value::as_str),
        ) else {
            return Err(err("added token without id or content".into()));
        };
        let special = t.get("special").and_then(Value::as_bool).unwrap_or(false);
        match by_id.get_mut(&id) {
            Some((p, s)) if p == content => *s = Some(special),
            Some((p, _)) => {
                return Err(err(format!(
                    "added token {id} `{content}` collides with vocab piece `{p}`"
                )));
            }
            None => {
                by_id.insert(id, (content.to_owned(), Some(special)));
            }
        }
    }
    let n = by_id.len();
    if n == 0 {
        return Err(err("empty vocabulary".into()));
    }
    let mut pieces = Vec::with_capacity(n);
    let mut added = Vec::with_capacity(n);
    for id in 0..n as u64 {
        let (p, s) = by_id
            .remove(&id)
            .ok_or_else(|| err(format!("ids are not dense: {id} is missing below {n}")))?;
        pieces.push(p);
        added.push(s);
    }

    let merges: Vec<String> = match model.get("merges") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, m)| match m {
                Value::String(s) => Ok(s.clone()),
                Value::Array(p) if p.len() == 2 => match (p[0].as_str(), p[1].as_str()) {
                    (Some(a), Some(b)) => Ok(format!("{a} {b}")),
                    _ => Err(err(format!("merge {i} is not a pair of strings"))),
                },
                _ => Err(err(format!("merge {i} is neither `a b` nor [a, b]"))),
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(err("model.merges is not a list".into())),
    };

    let byte_level = contains_type(
        root.get("pre_tokenizer").unwrap_or(&Value::Null),
        "ByteLevel",
    );
    let kind = if byte_level {
        TokenizerKind::Gpt2Bpe
    } else {
        TokenizerKind::SentencePiece
    };
    let byte_fallback = model
        .get("byte_fallback")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let unk = model.get("unk_token").and_then(Value::as_str);
    let index: HashMap<&str, u32> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i as u32))
        .collect();

    let types: Vec<u8> = pieces
        .iter()
        .zip(&added)
        .map(|(p, a)| {
            let t = match a {
                _ if Some(p.as_str()) == unk => TokenType::Unknown,
                Some(true) => TokenType::Control,
                Some(false) => TokenType::UserDefined,
                None if byte_fallback && byte_piece_value(p).is_some() => TokenType::Byte,
                None => TokenType::Normal,
            };
            t as u8
        })
        .collect();

    let scores = if kind == TokenizerKind::SentencePiece {
        let below = -(merges.len() as f32) - 1.0;
        let mut s = vec![below; n];
        for (rank, m) in merges.iter().enumerate().rev() {
            if let Some(&id) = index.get(m.replacen(' ', "", 1).as_str()) {
                s[id as usize] = -(rank as f32);
            }
        }
        s
    } else {
        vec![0.0; n]
    };

    let special = |key: &str, id_key: &str| -> Option<u32> {
        config
            .and_then(|c| c.get(key))
            .and_then(token_text)
            .and_then(|t| index.get(t).copied())
            .or_else(|| {
                model_config
                    .and_then(|c| c.get(id_key))
                    .and_then(Value::as_u64)
                    .filter(|&i| i < n as u64)
                    .map(|i| i as u32)
            })
    };
    let flag = |key: &str| config.and_then(|c| c.get(key)).and_then(Value::as_bool);
    let template_bos = root
        .get("post_processor")
        .and_then(|p| p.get("single"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|f| f.get("SpecialToken").is_some());

    let data = TokenizerData {
        kind,
        bos_id: special("bos_token", "bos_token_id"),
        eos_id: special("eos_token", "eos_token_id"),
        unk_id: unk.and_then(|u| index.get(u).copied()),
        pad_id: special("pad_token", "pad_token_id"),
        add_bos: flag("add_bos_token")
            .unwrap_or(template_bos || kind == TokenizerKind::SentencePiece),
        add_eos: flag("add_eos_token").unwrap_or(false),
        add_dummy_prefix: kind == TokenizerKind::SentencePiece && prepends_space(&root),
        remove_extra_whitespaces: false,
        byte_fallback,
        merges: if kind == TokenizerKind::Gpt2Bpe {
            merges
        } else {
            Vec::new()
        },
        pre: None,
        chat_template: config
            .and_then(|c| c.get("chat_template"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        pieces,
        scores,
        types,
    };
    data.validate().map_err(err)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentencepiece_style_json() {
        // Byte fallback: ids 2..258 are <0x00>..<0xFF>.
        let mut vocab = serde_json::json!({"<unk>": 0, "<s>": 1, "▁": 258, "a": 259, "▁a": 260});
        for b in 0..=255u8 {
            vocab[format!("<0x{b:02X}>")] = (2 + u32::from(b)).into();
        }
        let j = serde_json::json!({
            "added_tokens": [{"id": 1, "content": "<s>", "special": true}],
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"}, {"type": "Replace"}]},
            "pre_tokenizer": null,
            "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
                "vocab": vocab, "merges": ["▁ a"]}
        });
        let cfg = serde_json::json!({"bos_token": {"content": "<s>"}, "add_bos_token": true});
        let t = parse(j.to_string().as_bytes(), "tokenizer.json", Some(&cfg), None).unwrap();
        assert_eq!(t.kind, TokenizerKind::SentencePiece);
        assert_eq!(t.types[..3], [2, 3, 6]);
        assert_eq!(t.types[257..], [6, 1, 1, 1]);
        assert_eq!(t.scores[260], 0.0);
        assert!(t.scores[259] < -1.0);
        assert_eq!((t.bos_id, t.unk_id), (Some(1), Some(0)));
        assert!(t.add_dummy_prefix && t.add_bos && t.merges.is_empty());
    }

    #[test]
    fn byte_level_json_keeps_merges() {
        let j = serde_json::json!({
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}]},
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]},
            "added_tokens": [{"id": 3, "content": "<|end|>", "special": true}]
        });
        let t = parse(j.to_string().as_bytes(), "tokenizer.json", None, None).unwrap();
        assert_eq!(t.kind, TokenizerKind::Gpt2Bpe);
        assert_eq!(t.merges, ["a b"]);
        assert_eq!(t.pieces.len(), 4);
        assert_eq!(t.types[3], TokenType::Control as u8);
    }

    #[test]
    fn sparse_ids_are_refused() {
        let j =
            serde_json::json!({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": []}});
        let e = parse(j.to_string().as_bytes(), "tokenizer.json", None, None).unwrap_err();
        assert!(e.to_string().contains("not dense"), "{e}");
    }
}
