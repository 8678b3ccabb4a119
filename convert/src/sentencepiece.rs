//! `SentencePiece` `tokenizer.model` files: a minimal protobuf decoder for `ModelProto`.
//!
//! Fields read (numbers from `sentencepiece_model.proto`):
//! `ModelProto { 1: repeated SentencePiece pieces, 2: TrainerSpec, 3: NormalizerSpec }`,
//! `SentencePiece { 1: piece, 2: score (float), 3: type (enum, default NORMAL) }`,
//! `TrainerSpec { 3: model_type, 4: vocab_size, 35: byte_fallback, 40: unk_id, 41: bos_id,
//! 42: eos_id, 43: pad_id }`, `NormalizerSpec { 1: name, 3: add_dummy_prefix,
//! 4: remove_extra_whitespaces }`. Everything else is skipped by wire type.

use llamapack_format::{TokenType, TokenizerData, TokenizerKind};

use crate::error::{Error, Result};

/// A parsed `tokenizer.model`.
#[derive(Clone, Debug, PartialEq)]
pub struct SentencePieceModel {
    /// The vocabulary and settings, as `.lpk` stores them.
    pub data: TokenizerData,
    /// `TrainerSpec.model_type`: `unigram`, `bpe`, `word` or `char`.
    pub model_type: &'static str,
    /// `NormalizerSpec.name` (e.g. `identity`, `nmt_nfkc`).
    pub normalizer: String,
}

enum Field<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Pb<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Pb<'a> {
    fn new(b: &'a [u8]) -> Self {
        Pb { b, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.b.get(self.pos) else {
                return Err(format!("truncated varint at byte {}", self.pos));
            };
            self.pos += 1;
            v |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                format!(
                    "field of {n} bytes at byte {} runs past the end ({} bytes)",
                    self.pos,
                    self.b.len()
                )
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next(&mut self) -> Option<Result<(u64, Field<'a>), String>> {
        if self.pos >= self.b.len() {
            return None;
        }
        Some((|| {
            let key = self.varint()?;
            let (num, wire) = (key >> 3, key & 7);
            let f = match wire {
                0 => Field::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Field::Fixed64
                }
                2 => {
                    let n = self.varint()?;
                    let n = usize::try_from(n).map_err(|_| format!("length {n} too large"))?;
                    Field::Bytes(self.take(n)?)
                }
                5 => Field::Fixed32(u32::from_le_bytes(
                    self.take(4)?.try_into().expect("4 bytes"),
                )),
                w => return Err(format!("unsupported wire type {w} for field {num}")),
            };
            Ok((num, f))
        })())
    }
}

/// An `int32` field: protobuf sign-extends negatives to 64 bits.
fn int32(v: u64) -> i64 {
    i64::from(v as i32)
}

/// Parses the bytes of a `tokenizer.model`; `file` names it in errors.
pub fn parse(bytes: &[u8], file: &str) -> Result<SentencePieceModel> {
    parse_inner(bytes).map_err(|reason| Error::Tokenizer {
        file: file.to_owned(),
        reason,
    })
}

fn parse_inner(bytes: &[u8]) -> Result<SentencePieceModel, String> {
    let mut pieces = Vec::new();
    let mut scores = Vec::new();
    let mut types = Vec::new();
    let mut model_type = 1u64; // UNIGRAM is the proto default
    let (mut unk, mut bos, mut eos, mut pad) = (0i64, 1i64, 2i64, -1i64);
    let mut byte_fallback = false;
    let mut add_dummy_prefix = true;
    let mut remove_extra_whitespaces = true;
    let mut normalizer = String::new();
    let mut saw_trainer = false;

    let mut top = Pb::new(bytes);
    while let Some(f) = top.next() {
        match f? {
            (1, Field::Bytes(b)) => {
                let (mut piece, mut score, mut ty) = (None, 0f32, 1u64);
                let mut p = Pb::new(b);
                while let Some(f) = p.next() {
                    match f? {
                        (1, Field::Bytes(s)) => {
                            piece = Some(String::from_utf8(s.to_vec()).map_err(|_| {
                                format!("piece {} is not valid utf-8", pieces.len())
                            })?);
                        }
                        (2, Field::Fixed32(v)) => score = f32::from_bits(v),
                        (3, Field::Varint(v)) => ty = v,
                        _ => {}
                    }
                }
                let id = pieces.len();
                let piece = piece.ok_or_else(|| format!("piece {id} has no text"))?;
                let ty = u8::try_from(ty)
                    .ok()
                    .and_then(TokenType::from_u8)
                    .ok_or_else(|| format!("piece {id} `{piece}` has unknown type {ty}"))?;
                if !score.is_finite() {
                    return Err(format!("piece {id} `{piece}` has a non-finite score"));
                }
                pieces.push(piece);
                scores.push(score);
                types.push(ty as u8);
            }
            (2, Field::Bytes(b)) => {
                saw_trainer = true;
                let mut p = Pb::new(b);
                while let Some(f) = p.next() {
                    match f? {
                        (3, Field::Varint(v)) => model_type = v,
                        (35, Field::Varint(v)) => byte_fallback = v != 0,
                        (40, Field::Varint(v)) => unk = int32(v),
                        (41, Field::Varint(v)) => bos = int32(v),
                        (42, Field::Varint(v)) => eos = int32(v),
                        (43, Field::Varint(v)) => pad = int32(v),
                        _ => {}
                    }
                }
            }
            (3, Field::Bytes(b)) => {
                let mut p = Pb::new(b);
                while let Some(f) = p.next() {
                    match f? {
                        (1, Field::Bytes(s)) => {
                            normalizer = String::from_utf8_lossy(s).into_owned();
                        }
                        (3, Field::Varint(v)) => add_dummy_prefix = v != 0,
                        (4, Field::Varint(v)) => remove_extra_whitespaces = v != 0,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if pieces.is_empty() {
        return Err("no pieces (not a SentencePiece model?)".into());
    }
    if !saw_trainer {
        return Err("no trainer_spec (not a SentencePiece model?)".into());
    }
    let n = pieces.len();
    let id = |name: &str, v: i64| -> Result<Option<u32>, String> {
        match v {
            v if v < 0 => Ok(None),
            v if (v as u64) < n as u64 => Ok(Some(v as u32)),
            v => Err(format!("{name}_id {v} is not below the {n} pieces")),
        }
    };
    let model_type = match model_type {
        1 => "unigram",
        2 => "bpe",
        3 => "word",
        4 => "char",
        t => return Err(format!("unknown model_type {t}")),
    };
    let data = TokenizerData {
        kind: TokenizerKind::SentencePiece,
        pieces,
        scores,
        types,
        bos_id: id("bos", bos)?,
        eos_id: id("eos", eos)?,
        unk_id: id("unk", unk)?,
        pad_id: id("pad", pad)?,
        add_bos: true,
        add_eos: false,
        add_dummy_prefix,
        remove_extra_whitespaces,
        byte_fallback,
        merges: Vec::new(),
        pre: None,
        chat_template: None,
    };
    data.validate()?;
    Ok(SentencePieceModel {
        data,
        model_type,
        normalizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny_model() -> Vec<u8> {
        // Byte fallback is on: the 256 byte pieces follow.
        let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
        let mut pieces = vec![
            ("<unk>", 0.0f32, 2u8),
            ("<s>", 0.0, 3),
            ("</s>", 0.0, 3),
            ("▁a", -1.5, 1),
        ];
        pieces.extend(bytes.iter().map(|b| (b.as_str(), 0.0, 6)));
        crate::testing::sentencepiece_model(&pieces, true)
    }

    #[test]
    fn parses_a_hand_built_model() {
        let sp = parse(&tiny_model(), "t.model").unwrap();
        assert_eq!(sp.model_type, "bpe");
        assert_eq!(sp.normalizer, "identity");
        let d = &sp.data;
        assert_eq!(d.pieces[..5], ["<unk>", "<s>", "</s>", "▁a", "<0x00>"]);
        assert_eq!(d.pieces.len(), 260);
        assert_eq!(d.scores[3], -1.5);
        assert_eq!(d.types[..5], [2, 3, 3, 1, 6]);
        assert_eq!(
            (d.unk_id, d.bos_id, d.eos_id, d.pad_id),
            (Some(0), Some(1), Some(2), None)
        );
        assert!(d.byte_fallback && d.add_dummy_prefix && !d.remove_extra_whitespaces);
    }

    #[test]
    fn truncations_are_errors() {
        let m = tiny_model();
        for n in 0..m.len() {
            let _ = parse(&m[..n], "t.model");
        }
        assert!(parse(&m[..m.len() - 3], "t.model").is_err());
    }
}
