//! GPT-2 byte-level BPE, as Hugging Face `tokenizers` (`ByteLevel` pre-tokenizer + `BPE` model)
//! and llama.cpp's `llm_tokenizer_bpe` do it.
//!
//! Encoding:
//! 1. Added tokens (control and user-defined pieces, e.g. `<|im_start|>`) are matched literally,
//!    longest first, before anything else; the text between them is encoded on its own.
//! 2. Pre-tokenization splits that text into words with the regex the vocabulary's `pre` name
//!    implies ([`PreTokenizer`]). The regexes are implemented as hand-written scanners over
//!    Unicode character classes (`\p{L}`, `\p{N}`, `\s` = `White_Space`), because the
//!    `(?!\S)` lookahead is outside what the `regex` crate supports; the class tables come from
//!    `regex-syntax`.
//! 3. Each word's UTF-8 bytes become GPT-2's printable byte characters (`bytes_to_unicode`), one
//!    token each, and adjacent pairs are merged lowest merge rank first (ties: leftmost) with a
//!    priority queue over a linked list, O(n log n) per word.
//!
//! Decoding maps every byte character back to its byte and the bytes to UTF-8, each invalid
//! sequence becoming U+FFFD (as `String::from_utf8_lossy`). Control pieces decode to nothing,
//! user-defined pieces to their text.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::OnceLock;

use llamapack_format::{TokenType, TokenizerData};

/// The pre-tokenizer regex of a vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
    /// with `isolate_digits`, every `\p{N}` character is split off first (HF's
    /// `Digits(individual_digits=true)`, llama.cpp's extra `\p{N}` regex).
    Gpt2 {
        /// Split every digit into its own word first.
        isolate_digits: bool,
    },
    /// Llama 3's `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, with whole-word vocabulary hits
    /// taken before merging (`ignore_merges`).
    Llama3,
}

impl PreTokenizer {
    /// The pre-tokenizer for a GGUF `tokenizer.ggml.pre` name, following llama.cpp's table;
    /// unknown names and `None` (a `tokenizer.json` with a plain `ByteLevel`) are GPT-2's.
    pub fn from_name(pre: Option<&str>) -> PreTokenizer {
        match pre.unwrap_or("gpt2") {
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => PreTokenizer::Llama3,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva" => PreTokenizer::Gpt2 {
                isolate_digits: true,
            },
            _ => PreTokenizer::Gpt2 {
                isolate_digits: false,
            },
        }
    }

    /// The words `text` is cut into (they concatenate to `text`).
    pub fn words(self, text: &str) -> Vec<&str> {
        let mut v = Vec::new();
        split(self, text, |w| v.push(w));
        v
    }
}

/// The character classes the pre-tokenizer regexes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `\p{L}`.
    Letter,
    /// `\p{N}`.
    Number,
    /// `\s` (Unicode `White_Space`).
    Space,
    /// Anything else (`[^\s\p{L}\p{N}]`).
    Other,
}

/// Sorted code point ranges of a Unicode class, from `regex-syntax`'s tables.
fn ranges(class: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class as HirClass, HirKind};
    let hir = regex_syntax::Parser::new()
        .parse(class)
        .expect("a valid Unicode class");
    match hir.kind() {
        HirKind::Class(HirClass::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        other => panic!("{class} parsed to {other:?}"),
    }
}

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    let i = table.partition_point(|&(_, end)| end < c);
    table.get(i).is_some_and(|&(start, _)| start <= c)
}

fn class(c: char) -> Class {
    type Ranges = Vec<(u32, u32)>;
    static TABLES: OnceLock<(Ranges, Ranges)> = OnceLock::new();
    if c.is_ascii() {
        return if c.is_ascii_alphabetic() {
            Class::Letter
        } else if c.is_ascii_digit() {
            Class::Number
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Other
        };
    }
    if c.is_whitespace() {
        return Class::Space;
    }
    let (letters, numbers) = TABLES.get_or_init(|| (ranges(r"\p{L}"), ranges(r"\p{N}")));
    if in_ranges(letters, c) {
        Class::Letter
    } else if in_ranges(numbers, c) {
        Class::Number
    } else {
        Class::Other
    }
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68
/// bytes become U+0100.. in byte order.
fn byte_chars() -> &'static ([char; 256], HashMap<char, u8>) {
    static TABLE: OnceLock<([char; 256], HashMap<char, u8>)> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut chars = ['\0'; 256];
        let mut next = 256u32;
        for b in 0..=255u8 {
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            let cp = if printable {
                u32::from(b)
            } else {
                next += 1;
                next - 1
            };
            chars[b as usize] = char::from_u32(cp).expect("below U+0200");
        }
        let inverse = chars
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        (chars, inverse)
    })
}

/// A byte-level BPE encoder/decoder built from a `Gpt2Bpe` vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct Bpe {
    pre: PreTokenizer,
    /// Byte-level piece text → id (first occurrence wins).
    vocab: HashMap<String, u32>,
    /// Id of the one-character token of each byte (`u32::MAX` when absent).
    byte_token: Vec<u32>,
    /// `(left id, right id)` → `(rank, merged id)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Added tokens grouped by first byte, longest first.
    added: HashMap<u8, Vec<(String, u32)>>,
    /// Per id: 0 = byte-level text, 1 = control (invisible), 2 = literal text.
    surface: Vec<u8>,
}

const BYTE_LEVEL: u8 = 0;
const INVISIBLE: u8 = 1;
const LITERAL: u8 = 2;

impl Bpe {
    /// Builds the encoder of a vocabulary that [`TokenizerData::validate`] accepted.
    pub(crate) fn new(data: &TokenizerData) -> Bpe {
        let mut vocab = HashMap::with_capacity(data.len());
        let mut added: HashMap<u8, Vec<(String, u32)>> = HashMap::new();
        let mut surface = Vec::with_capacity(data.len());
        for (i, p) in data.pieces.iter().enumerate() {
            let id = i as u32;
            vocab.entry(p.clone()).or_insert(id);
            let ty = data.token_type(i);
            let s = match ty {
                TokenType::Control | TokenType::UserDefined if !p.is_empty() => {
                    added
                        .entry(p.as_bytes()[0])
                        .or_default()
                        .push((p.clone(), id));
                    if ty == TokenType::Control {
                        INVISIBLE
                    } else {
                        LITERAL
                    }
                }
                TokenType::Control | TokenType::Unknown | TokenType::Unused => INVISIBLE,
                _ => BYTE_LEVEL,
            };
            surface.push(s);
        }
        for v in added.values_mut() {
            v.sort_by_key(|(s, _)| Reverse(s.len()));
        }
        let (chars, _) = byte_chars();
        let byte_token = chars
            .iter()
            .map(|c| {
                vocab
                    .get(c.to_string().as_str())
                    .copied()
                    .unwrap_or(u32::MAX)
            })
            .collect();
        let mut merges = HashMap::with_capacity(data.merges.len());
        for (rank, m) in data.merges.iter().enumerate() {
            // `validate` checked that every merge has its space.
            let Some((a, b)) = m.split_once(' ') else {
                continue;
            };
            // A merge whose pieces are not all in the vocabulary can never apply (llama.cpp
            // skips them too).
            let (Some(&ia), Some(&ib), Some(&im)) = (
                vocab.get(a),
                vocab.get(b),
                vocab.get(format!("{a}{b}").as_str()),
            ) else {
                continue;
            };
            merges.entry((ia, ib)).or_insert((rank as u32, im));
        }
        Bpe {
            pre: PreTokenizer::from_name(data.pre.as_deref()),
            vocab,
            byte_token,
            merges,
            added,
            surface,
        }
    }

    /// Appends the ids of `text` to `ids`.
    pub(crate) fn encode(&self, text: &str, ids: &mut Vec<u32>) {
        let mut start = 0;
        let mut pos = 0;
        let bytes = text.as_bytes();
        while pos < bytes.len() {
            if let Some(cands) = self.added.get(&bytes[pos])
                && let Some((s, id)) = cands.iter().find(|(s, _)| text[pos..].starts_with(s))
            {
                self.encode_plain(&text[start..pos], ids);
                ids.push(*id);
                pos += s.len();
                start = pos;
                continue;
            }
            pos += 1;
            while pos < bytes.len() && !text.is_char_boundary(pos) {
                pos += 1;
            }
        }
        self.encode_plain(&text[start..], ids);
    }

    /// Text without added tokens: pre-tokenize, then BPE each word.
    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut scratch = Scratch::default();
        split(self.pre, text, |word| {
            self.encode_word(word, ids, &mut scratch);
        });
    }

    fn encode_word(&self, word: &str, ids: &mut Vec<u32>, s: &mut Scratch) {
        if self.pre == PreTokenizer::Llama3 {
            let (chars, _) = byte_chars();
            let level: String = word.bytes().map(|b| chars[b as usize]).collect();
            if let Some(&id) = self.vocab.get(&level) {
                ids.push(id);
                return;
            }
        }
        s.syms.clear();
        s.heap.clear();
        for b in word.bytes() {
            let id = self.byte_token[b as usize];
            if id == u32::MAX {
                continue; // no token for this byte: HF's BPE without `unk` drops it
            }
            let i = s.syms.len();
            s.syms.push(Sym {
                id,
                prev: i.wrapping_sub(1),
                next: i + 1,
            });
        }
        let n = s.syms.len();
        if n == 0 {
            return;
        }
        s.syms[n - 1].next = NONE;
        for i in 0..n - 1 {
            self.push_pair(s, i);
        }
        while let Some(Reverse((_, left, left_id, right_id))) = s.heap.pop() {
            let l = &s.syms[left];
            let right = l.next;
            // Stale: the left symbol changed, or its neighbour did.
            if l.id != left_id || right == NONE || s.syms[right].id != right_id {
                continue;
            }
            let (_, merged) = self.merges[&(left_id, right_id)];
            let after = s.syms[right].next;
            s.syms[left].id = merged;
            s.syms[left].next = after;
            s.syms[right].id = u32::MAX;
            if after != NONE {
                s.syms[after].prev = left;
            }
            let prev = s.syms[left].prev;
            if prev != NONE {
                self.push_pair(s, prev);
            }
            self.push_pair(s, left);
        }
        let mut i = 0;
        while i != NONE {
            ids.push(s.syms[i].id);
            i = s.syms[i].next;
        }
    }

    /// Queues the pair starting at symbol `left`, if it has a merge.
    fn push_pair(&self, s: &mut Scratch, left: usize) {
        let right = s.syms[left].next;
        if right == NONE {
            return;
        }
        let key = (s.syms[left].id, s.syms[right].id);
        if let Some(&(rank, _)) = self.merges.get(&key) {
            s.heap.push(Reverse((rank, left, key.0, key.1)));
        }
    }

    /// Appends the bytes `id` decodes to.
    pub(crate) fn piece_bytes(&self, id: u32, piece: &str, out: &mut Vec<u8>) {
        match self.surface.get(id as usize).copied() {
            Some(INVISIBLE) => {}
            Some(LITERAL) => out.extend_from_slice(piece.as_bytes()),
            _ => {
                let (_, inverse) = byte_chars();
                for c in piece.chars() {
                    if let Some(&b) = inverse.get(&c) {
                        out.push(b);
                    } else {
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
        }
    }
}

const NONE: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct Sym {
    /// Token id; `u32::MAX` once merged into the left neighbour.
    id: u32,
    prev: usize,
    next: usize,
}

/// Buffers reused across the words of one text.
#[derive(Debug, Default)]
struct Scratch {
    syms: Vec<Sym>,
    /// `(rank, left index, left id, right id)`, lowest rank then leftmost first.
    heap: BinaryHeap<Reverse<(u32, usize, u32, u32)>>,
}

/// Calls `f` on every word of `text`, in order; the words tile the text.
pub(crate) fn split<'t>(pre: PreTokenizer, text: &'t str, mut f: impl FnMut(&'t str)) {
    let cs: Vec<(usize, char, Class)> =
        text.char_indices().map(|(i, c)| (i, c, class(c))).collect();
    let offset = |k: usize| cs.get(k).map_or(text.len(), |x| x.0);
    let run = |lo: usize, hi: usize, f: &mut dyn FnMut(&'t str)| {
        let seg = &cs[lo..hi];
        let mut i = 0;
        while i < seg.len() {
            let e = match pre {
                PreTokenizer::Gpt2 { .. } => gpt2_match(seg, i),
                PreTokenizer::Llama3 => llama3_match(seg, i),
            };
            f(&text[offset(lo + i)..offset(lo + e)]);
            i = e;
        }
    };
    if let PreTokenizer::Gpt2 {
        isolate_digits: true,
    } = pre
    {
        let mut lo = 0;
        for k in 0..cs.len() {
            if cs[k].2 == Class::Number {
                run(lo, k, &mut f);
                f(&text[offset(k)..offset(k + 1)]);
                lo = k + 1;
            }
        }
        run(lo, cs.len(), &mut f);
    } else {
        run(0, cs.len(), &mut f);
    }
}

type Chars = [(usize, char, Class)];

/// Length of a contraction (`'s 't 're 've 'm 'll 'd`) at `i`, optionally case-insensitive.
fn contraction(cs: &Chars, i: usize, any_case: bool) -> Option<usize> {
    let at = |k: usize| {
        cs.get(i + k).map(|x| {
            if any_case {
                x.1.to_ascii_lowercase()
            } else {
                x.1
            }
        })
    };
    if cs[i].1 != '\'' {
        return None;
    }
    match (at(1)?, at(2)) {
        ('s' | 't' | 'm' | 'd', _) => Some(2),
        ('r' | 'v', Some('e')) | ('l', Some('l')) => Some(3),
        _ => None,
    }
}

/// End (exclusive) of the run of `class` starting at `i`, at most `max` long.
fn run_of(cs: &Chars, i: usize, class: Class, max: usize) -> usize {
    let mut e = i;
    while e < cs.len() && e - i < max && cs[e].2 == class {
        e += 1;
    }
    e
}

/// The whitespace alternatives `\s+(?!\S)|\s+` at `i` (a space character).
fn trailing_space(cs: &Chars, i: usize) -> usize {
    let e = run_of(cs, i, Class::Space, usize::MAX);
    if e == cs.len() || e - i < 2 { e } else { e - 1 }
}

/// GPT-2's regex: end of the match starting at `i`.
fn gpt2_match(cs: &Chars, i: usize) -> usize {
    if let Some(n) = contraction(cs, i, false) {
        return i + n;
    }
    // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`
    let j = if cs[i].1 == ' ' && cs.get(i + 1).is_some_and(|x| x.2 != Class::Space) {
        i + 1
    } else {
        i
    };
    match cs[j].2 {
        Class::Space => trailing_space(cs, i),
        c => run_of(cs, j, c, usize::MAX),
    }
}

/// Llama 3's regex: end of the match starting at `i`.
fn llama3_match(cs: &Chars, i: usize) -> usize {
    if let Some(n) = contraction(cs, i, true) {
        return i + n;
    }
    let (c, k) = (cs[i].1, cs[i].2);
    let newline = |c: char| c == '\r' || c == '\n';
    // `[^\r\n\p{L}\p{N}]?\p{L}+`
    if k == Class::Letter {
        return run_of(cs, i, Class::Letter, usize::MAX);
    }
    if k != Class::Number && !newline(c) && cs.get(i + 1).is_some_and(|x| x.2 == Class::Letter) {
        return run_of(cs, i + 1, Class::Letter, usize::MAX);
    }
    // `\p{N}{1,3}`
    if k == Class::Number {
        return run_of(cs, i, Class::Number, 3);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let j = if c == ' ' && cs.get(i + 1).is_some_and(|x| x.2 == Class::Other) {
        i + 1
    } else {
        i
    };
    if cs[j].2 == Class::Other {
        let mut e = run_of(cs, j, Class::Other, usize::MAX);
        while e < cs.len() && newline(cs[e].1) {
            e += 1;
        }
        return e;
    }
    // `\s*[\r\n]+`: up to the last line break of the whitespace run.
    let e = run_of(cs, i, Class::Space, usize::MAX);
    if let Some(p) = (i..e).rev().find(|&p| newline(cs[p].1)) {
        return p + 1;
    }
    trailing_space(cs, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreTokenizer, text: &str) -> Vec<String> {
        let mut v = Vec::new();
        split(pre, text, |w| v.push(w.to_owned()));
        assert_eq!(v.concat(), text);
        v
    }

    const GPT2: PreTokenizer = PreTokenizer::Gpt2 {
        isolate_digits: false,
    };

    #[test]
    fn gpt2_regex() {
        assert_eq!(
            words(GPT2, "Hello world's  end!!\n\n x 123 \u{a0}é"),
            [
                "Hello", " world", "'s", " ", " end", "!!", "\n\n", " x", " 123", " ", "\u{a0}",
                "é"
            ]
        );
        assert_eq!(words(GPT2, "a\tb  "), ["a", "\t", "b", "  "]);
        assert_eq!(words(GPT2, "''s 'S"), ["''", "s", " '", "S"]);
        let smol = PreTokenizer::from_name(Some("smollm"));
        assert_eq!(words(smol, "x 2024!"), ["x", " ", "2", "0", "2", "4", "!"]);
    }

    #[test]
    fn llama3_regex() {
        let l3 = PreTokenizer::from_name(Some("llama-bpe"));
        assert_eq!(
            words(l3, "I'M 12345 ok?\n\n  \tx\n  y"),
            [
                "I", "'M", " ", "123", "45", " ok", "?\n\n", "  ", "\tx", "\n", " ", " y"
            ]
        );
    }

    #[test]
    fn byte_table_is_gpt2s() {
        let (chars, inverse) = byte_chars();
        assert_eq!(chars[b' ' as usize], 'Ġ');
        assert_eq!(chars[b'\n' as usize], 'Ċ');
        assert_eq!(chars[b'A' as usize], 'A');
        assert_eq!(chars[0xAD], '\u{143}'); // the last of the 68 moved bytes
        assert_eq!(inverse.len(), 256);
    }

    #[test]
    fn classes() {
        assert_eq!(class('é'), Class::Letter);
        assert_eq!(class('中'), Class::Letter);
        assert_eq!(class('½'), Class::Number);
        assert_eq!(class('٣'), Class::Number);
        assert_eq!(class('\u{3000}'), Class::Space);
        assert_eq!(class('😀'), Class::Other);
        assert_eq!(class('\u{301}'), Class::Other); // a combining mark is not \p{L}
    }
}
