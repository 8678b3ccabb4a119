//! `SentencePiece` BPE, as `sentencepiece`'s `bpe_model.cc` and `sentencepiece_processor.cc` do it.
//!
//! Encoding: normalize (identity rule: dummy prefix, optional whitespace collapsing, `' '` →
//! `▁`), split into characters (user-defined pieces are matched whole and never merged), then
//! repeatedly merge the adjacent pair whose concatenation is a vocabulary piece with the highest
//! score (ties: leftmost) using a priority queue over a linked list of symbols, as
//! `bpe::Model::SampleEncode` does. A symbol that is no piece becomes `<0xNN>` byte pieces with
//! byte fallback, else `<unk>` (consecutive unknowns collapse into one). Control pieces are never
//! produced from text.
//!
//! GPT-2 byte-level vocabularies ([`TokenizerKind::Gpt2Bpe`]) are encoded and decoded by
//! [`crate::bpe`] behind the same API.
//!
//! Decoding: `▁` → space, byte pieces reassembled into UTF-8 (each invalid byte → U+FFFD, as
//! sentencepiece's `DecodeUTF8`), control pieces invisible, the first leading space of the text
//! stripped (the dummy prefix).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use llamapack_format::{TokenType, TokenizerData, TokenizerKind, byte_piece_value};

use crate::bpe::Bpe;
use crate::error::{Error, Result};

/// U+2581, `SentencePiece`'s visible space.
const SPACE: &str = "\u{2581}";
/// What `<unk>` decodes to (sentencepiece's `kDefaultUnknownSymbol`).
const UNK_SURFACE: &str = " \u{2047} ";

/// A `SentencePiece` BPE or GPT-2 byte-level BPE tokenizer built from the vocabulary stored in
/// a `.lpk`.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    data: TokenizerData,
    /// The byte-level encoder, for a GPT-2 vocabulary.
    bpe: Option<Box<Bpe>>,
    /// Normal, user-defined and unused pieces: the ones merges may produce.
    pieces: HashMap<String, u32>,
    /// Control, unknown and byte pieces: looked up first, never merged into.
    reserved: HashMap<String, u32>,
    /// User-defined pieces grouped by first byte, longest first.
    user_defined: HashMap<u8, Vec<String>>,
    /// Id of `<0xNN>` for each byte, when byte fallback is on.
    byte_ids: Vec<u32>,
    /// Byte value of each byte piece id.
    byte_of: HashMap<u32, u8>,
    unk_id: u32,
}

impl Tokenizer {
    /// Builds the tokenizer. Fails on an inconsistent vocabulary (no unknown piece, duplicate
    /// pieces, byte fallback without the 256 byte pieces): [`TokenizerData::validate`], the
    /// check `convert` and the `.lpk` reader make too.
    pub fn from_data(data: &TokenizerData) -> Result<Tokenizer> {
        data.validate().map_err(Error::Tokenizer)?;
        if data.kind == TokenizerKind::Gpt2Bpe {
            return Ok(Tokenizer {
                bpe: Some(Box::new(Bpe::new(data))),
                data: data.clone(),
                pieces: HashMap::new(),
                reserved: HashMap::new(),
                user_defined: HashMap::new(),
                byte_ids: Vec::new(),
                byte_of: HashMap::new(),
                unk_id: data.unk_id.unwrap_or(0),
            });
        }
        let mut pieces = HashMap::with_capacity(data.len());
        let mut reserved = HashMap::new();
        let mut user_defined: HashMap<u8, Vec<String>> = HashMap::new();
        let mut byte_of = HashMap::new();
        let mut byte_ids = vec![u32::MAX; 256];
        let mut unk = None;
        // `validate` refused empty and duplicate pieces, a second unknown piece, malformed
        // byte pieces and missing ones under byte fallback: what is left cannot fail.
        for (i, p) in data.pieces.iter().enumerate() {
            let id = i as u32;
            let ty = data.token_type(i);
            let normal = matches!(
                ty,
                TokenType::Normal | TokenType::UserDefined | TokenType::Unused
            );
            let map = if normal { &mut pieces } else { &mut reserved };
            map.insert(p.clone(), id);
            match ty {
                TokenType::UserDefined => {
                    user_defined
                        .entry(p.as_bytes()[0])
                        .or_default()
                        .push(p.clone());
                }
                TokenType::Unknown => unk = Some(id),
                TokenType::Byte => {
                    if let Some(b) = byte_piece_value(p) {
                        byte_ids[b as usize] = id;
                        byte_of.insert(id, b);
                    }
                }
                _ => {}
            }
        }
        for v in user_defined.values_mut() {
            v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
        let unk_id = unk.or(data.unk_id).unwrap_or_default();
        Ok(Tokenizer {
            data: data.clone(),
            bpe: None,
            pieces,
            reserved,
            user_defined,
            byte_ids,
            byte_of,
            unk_id,
        })
    }

    /// The vocabulary this tokenizer was built from.
    pub fn data(&self) -> &TokenizerData {
        &self.data
    }

    /// Number of pieces.
    pub fn vocab_size(&self) -> usize {
        self.data.pieces.len()
    }

    /// Beginning-of-sequence id.
    pub fn bos_id(&self) -> Option<u32> {
        self.data.bos_id
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> Option<u32> {
        self.data.eos_id
    }

    /// The text of piece `id` (`None` outside the vocabulary).
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.data.pieces.get(id as usize).map(String::as_str)
    }

    /// Encodes `text`; with `add_bos`, the BOS id comes first (when the vocabulary has one).
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos && let Some(b) = self.data.bos_id {
            ids.push(b);
        }
        if let Some(bpe) = &self.bpe {
            bpe.encode(text, &mut ids);
            return Ok(ids);
        }
        let normalized = self.normalize(text);
        self.encode_normalized(&normalized, &mut ids);
        Ok(ids)
    }

    /// sentencepiece's `Normalizer::Normalize` with the identity rule (Llama's).
    fn normalize(&self, text: &str) -> String {
        let collapse = self.data.remove_extra_whitespaces;
        let mut input = text;
        if collapse {
            input = input.trim_start_matches(' ');
        }
        if input.is_empty() {
            return String::new();
        }
        let mut out = String::with_capacity(input.len() * 3 + 3);
        if self.data.add_dummy_prefix {
            out.push_str(SPACE);
        }
        let mut prev_space = collapse;
        let mut rest = input;
        while !rest.is_empty() {
            // A user-defined piece is one unit; otherwise one character.
            let len = self
                .match_user_defined(rest)
                .unwrap_or_else(|| rest.chars().next().map_or(1, char::len_utf8));
            let mut unit = &rest[..len];
            if prev_space {
                unit = unit.trim_start_matches(' ');
            }
            if !unit.is_empty() {
                for c in unit.chars() {
                    if c == ' ' {
                        out.push_str(SPACE);
                    } else {
                        out.push(c);
                    }
                }
                prev_space = unit.ends_with(' ');
            }
            rest = &rest[len..];
            if !collapse {
                prev_space = false;
            }
        }
        if collapse {
            while out.ends_with(SPACE) {
                out.truncate(out.len() - SPACE.len());
            }
        }
        out
    }

    /// Length of the longest user-defined piece `s` starts with.
    fn match_user_defined(&self, s: &str) -> Option<usize> {
        let cands = self.user_defined.get(s.as_bytes().first()?)?;
        cands
            .iter()
            .find(|p| s.starts_with(p.as_str()))
            .map(String::len)
    }

    /// sentencepiece's `PieceToId`: reserved pieces first, then normal ones, else unknown.
    fn piece_to_id(&self, piece: &str) -> u32 {
        self.reserved
            .get(piece)
            .or_else(|| self.pieces.get(piece))
            .copied()
            .unwrap_or(self.unk_id)
    }

    fn token_type(&self, id: u32) -> TokenType {
        self.data.token_type(id as usize)
    }

    /// `bpe::Model::SampleEncode` (without dropout) followed by the id assignment of
    /// `PopulateSentencePieceText`.
    fn encode_normalized<'n>(&self, norm: &'n str, ids: &mut Vec<u32>) {
        if norm.is_empty() {
            return;
        }
        // Split into symbols.
        let mut syms: Vec<Symbol> = Vec::with_capacity(norm.len());
        let mut pos = 0;
        while pos < norm.len() {
            let rest = &norm[pos..];
            let (len, freeze) = match self.match_user_defined(rest) {
                Some(l) => (l, true),
                None => (rest.chars().next().map_or(1, char::len_utf8), false),
            };
            let i = syms.len();
            syms.push(Symbol {
                start: pos,
                len,
                prev: i.checked_sub(1),
                next: (pos + len < norm.len()).then_some(i + 1),
                freeze,
            });
            pos += len;
        }

        let mut agenda = BinaryHeap::with_capacity(syms.len());
        // Unused pieces produced by a merge are split back into their halves at the end.
        let mut rev_merge: HashMap<&'n str, (&'n str, &'n str)> = HashMap::new();
        let try_add = |syms: &[Symbol],
                       agenda: &mut BinaryHeap<Pair>,
                       rev: &mut HashMap<&'n str, (&'n str, &'n str)>,
                       left: Option<usize>,
                       right: Option<usize>| {
            let (Some(l), Some(r)) = (left, right) else {
                return;
            };
            let (a, b) = (&syms[l], &syms[r]);
            if a.freeze || b.freeze {
                return;
            }
            let size = a.len + b.len;
            let merged = &norm[a.start..a.start + size];
            let Some(&id) = self.pieces.get(merged) else {
                return;
            };
            agenda.push(Pair {
                score: self.data.scores[id as usize],
                left: l,
                right: r,
                size,
            });
            if self.token_type(id) == TokenType::Unused {
                rev.insert(
                    merged,
                    (
                        &norm[a.start..a.start + a.len],
                        &norm[b.start..b.start + b.len],
                    ),
                );
            }
        };
        for i in 1..syms.len() {
            try_add(&syms, &mut agenda, &mut rev_merge, Some(i - 1), Some(i));
        }
        while let Some(top) = agenda.pop() {
            let (l, r) = (top.left, top.right);
            // Stale: one side was merged away or grew since the pair was queued.
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != top.size {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[l].next = syms[r].next;
            if let Some(n) = syms[r].next {
                syms[n].prev = Some(l);
            }
            syms[r].len = 0;
            let prev = syms[l].prev;
            let next = syms[l].next;
            try_add(&syms, &mut agenda, &mut rev_merge, prev, Some(l));
            try_add(&syms, &mut agenda, &mut rev_merge, Some(l), next);
        }

        // Ids, with unused pieces resegmented, byte fallback and unknown runs collapsed.
        let mut prev_unk = false;
        let mut stack: Vec<&str> = Vec::new();
        let mut index = Some(0);
        while let Some(i) = index {
            let s = &syms[i];
            stack.push(&norm[s.start..s.start + s.len]);
            while let Some(w) = stack.pop() {
                let id = self.piece_to_id(w);
                if self.token_type(id) == TokenType::Unused
                    && let Some(&(a, b)) = rev_merge.get(w)
                {
                    stack.push(b);
                    stack.push(a);
                    continue;
                }
                let is_unk = self.token_type(id) == TokenType::Unknown;
                if is_unk && self.data.byte_fallback {
                    ids.extend(w.bytes().map(|b| self.byte_ids[b as usize]));
                } else if !(is_unk && prev_unk) {
                    ids.push(id);
                }
                prev_unk = is_unk;
            }
            index = s.next;
        }
    }

    /// Decodes ids to text as `SentencePieceProcessor::DecodeIds` does.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut d = self.decoder();
        let mut out = String::new();
        for &id in ids {
            d.push(id, &mut out)?;
        }
        d.finish(&mut out);
        Ok(out)
    }

    /// A streaming decoder: feed ids one at a time, get text as soon as it is complete.
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder {
            tok: self,
            bytes: Vec::new(),
            text_empty: true,
            is_bos_ws: true,
            bos_ws_seen: false,
        }
    }
}

/// Incremental decoding with exactly [`Tokenizer::decode`]'s result once finished: byte pieces
/// are held back until they form a whole character (or provably cannot).
#[derive(Debug)]
pub struct Decoder<'t> {
    tok: &'t Tokenizer,
    bytes: Vec<u8>,
    text_empty: bool,
    /// Whether a leading `▁` may still be stripped (sticky once false).
    is_bos_ws: bool,
    bos_ws_seen: bool,
}

impl Decoder<'_> {
    /// Appends the text of `id` (possibly nothing yet) to `out`.
    pub fn push(&mut self, id: u32, out: &mut String) -> Result<()> {
        let tok = self.tok;
        let piece = tok.piece(id).ok_or(Error::TokenId {
            id,
            vocab: tok.vocab_size(),
        })?;
        if let Some(bpe) = &tok.bpe {
            bpe.piece_bytes(id, piece, &mut self.bytes);
            self.flush_lossy(out, false);
            return Ok(());
        }
        // DecodeIds re-derives the id from the piece text.
        let id = tok.piece_to_id(piece);
        if let Some(&b) = tok.byte_of.get(&id) {
            self.bytes.push(b);
            self.flush_bytes(out, false);
            return Ok(());
        }
        self.flush_bytes(out, true);
        if self.bos_ws_seen || !self.text_empty {
            self.is_bos_ws = false;
        }
        let is_bos_ws = self.is_bos_ws;
        let start = out.len();
        self.bos_ws_seen = false;
        match tok.token_type(id) {
            TokenType::Control => {}
            TokenType::Unknown if tok.data.pieces[id as usize] == piece => {
                out.push_str(UNK_SURFACE);
            }
            _ => {
                let mut p = piece;
                let d = &tok.data;
                if is_bos_ws
                    && (d.add_dummy_prefix || d.remove_extra_whitespaces)
                    && let Some(rest) = p.strip_prefix(SPACE)
                {
                    p = rest;
                    self.bos_ws_seen = !d.remove_extra_whitespaces;
                }
                out.push_str(&p.replace(SPACE, " "));
            }
        }
        if out.len() > start {
            self.text_empty = false;
        }
        Ok(())
    }

    /// Flushes held-back bytes (each invalid byte → U+FFFD).
    pub fn finish(&mut self, out: &mut String) {
        if self.tok.bpe.is_some() {
            self.flush_lossy(out, true);
        } else {
            self.flush_bytes(out, true);
        }
    }

    /// Byte-level BPE: `String::from_utf8_lossy` of the bytes so far, holding back an
    /// incomplete character at the end unless `all`.
    fn flush_lossy(&mut self, out: &mut String, all: bool) {
        let mut rest = &self.bytes[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &bad[n..];
                        }
                        None if all => {
                            out.push('\u{FFFD}');
                            rest = &[];
                            break;
                        }
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        self.bytes.drain(..self.bytes.len() - keep);
    }

    fn flush_bytes(&mut self, out: &mut String, all: bool) {
        let mut off = 0;
        let start = out.len();
        while off < self.bytes.len() {
            let rest = &self.bytes[off..];
            if !all && rest.len() < utf8_len_from_lead(rest[0]) {
                break; // wait for the rest of the character
            }
            if let Some((c, n)) = decode_utf8(rest) {
                out.push(c);
                off += n;
            } else {
                out.push('\u{FFFD}');
                off += 1;
            }
        }
        self.bytes.drain(..off);
        if out.len() > start {
            self.text_empty = false;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    /// Byte length; 0 once merged into its left neighbour.
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
    /// A user-defined piece: never merged.
    freeze: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Pair {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pair {}
impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pair {
    /// Higher score first; on a tie the leftmost pair.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

/// Bytes sentencepiece's `DecodeUTF8` needs before it can accept a sequence with this lead.
fn utf8_len_from_lead(b: u8) -> usize {
    if b & 0xE0 == 0xC0 {
        2
    } else if b & 0xF0 == 0xE0 {
        3
    } else if b & 0xF8 == 0xF0 {
        4
    } else {
        1
    }
}

/// sentencepiece's `string_util::DecodeUTF8`: one character and its length, or `None` for an
/// invalid (truncated, overlong, surrogate, out-of-range) sequence.
fn decode_utf8(b: &[u8]) -> Option<(char, usize)> {
    let trail = |x: u8| x & 0xC0 == 0x80;
    let n = utf8_len_from_lead(b[0]);
    if b[0] < 0x80 {
        return Some((b[0] as char, 1));
    }
    if n == 1 || b.len() < n || !b[1..n].iter().all(|&x| trail(x)) {
        return None;
    }
    let (cp, min) = match n {
        2 => (((b[0] as u32 & 0x1F) << 6) | (b[1] as u32 & 0x3F), 0x80),
        3 => (
            ((b[0] as u32 & 0x0F) << 12) | ((b[1] as u32 & 0x3F) << 6) | (b[2] as u32 & 0x3F),
            0x800,
        ),
        _ => (
            ((b[0] as u32 & 0x07) << 18)
                | ((b[1] as u32 & 0x3F) << 12)
                | ((b[2] as u32 & 0x3F) << 6)
                | (b[3] as u32 & 0x3F),
            0x10000,
        ),
    };
    if cp < min {
        return None;
    }
    char::from_u32(cp).map(|c| (c, n))
}

#[cfg(test)]
#[path = "tokenizer_tests.rs"]
mod tests;
