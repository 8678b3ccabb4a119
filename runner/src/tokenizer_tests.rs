use super::*;

/// `<unk>`, `<s>`, `</s>`, 256 byte pieces, then `normal` with descending scores, then
/// user-defined pieces.
fn vocab(normal: &[&str], user: &[&str], byte_fallback: bool) -> TokenizerData {
    let mut pieces: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2u8, 3, 3];
    if byte_fallback {
        for b in 0..=255u8 {
            pieces.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
    }
    for p in normal {
        pieces.push((*p).to_string());
        types.push(1);
    }
    for p in user {
        pieces.push((*p).to_string());
        types.push(4);
    }
    llamapack_format::testing::sentencepiece(pieces, types, byte_fallback)
}

fn pieces(t: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&i| t.piece(i).unwrap().to_string())
        .collect()
}

const BASE: &[&str] = &[
    "▁", "a", "b", "c", "d", "▁a", "ab", "bc", "▁ab", "▁abc", "abc",
];

#[test]
fn merges_by_score_then_leftmost() {
    let t = Tokenizer::from_data(&vocab(BASE, &[], true)).unwrap();
    let ids = t.encode("abc", true).unwrap();
    assert_eq!(ids[0], 1);
    // ▁a (score of index 5) beats ab and bc; then ▁ab, then ▁abc.
    assert_eq!(pieces(&t, &ids[1..]), ["▁abc"]);
    let ids = t.encode("bcbc", false).unwrap();
    assert_eq!(pieces(&t, &ids), ["▁", "bc", "bc"]);
}

#[test]
fn tie_goes_to_the_leftmost_pair() {
    // Every merge has the same score: "aaa" must merge the left pair first.
    let mut d = vocab(&["▁", "a", "aa", "▁a"], &[], false);
    d.scores.iter_mut().for_each(|s| *s = 0.0);
    d.add_dummy_prefix = false;
    let t = Tokenizer::from_data(&d).unwrap();
    assert_eq!(pieces(&t, &t.encode("aaa", false).unwrap()), ["aa", "a"]);
}

#[test]
fn byte_fallback_and_unknown_runs() {
    let t = Tokenizer::from_data(&vocab(BASE, &[], true)).unwrap();
    let ids = t.encode("a€", false).unwrap();
    assert_eq!(pieces(&t, &ids), ["▁a", "<0xE2>", "<0x82>", "<0xAC>"]);
    let t = Tokenizer::from_data(&vocab(BASE, &[], false)).unwrap();
    // Two unknown characters in a row are one <unk>, as sentencepiece emits them.
    assert_eq!(t.encode("a€€b", false).unwrap(), [8, 0, 5]);
    assert_eq!(t.decode(&[8, 0, 5]).unwrap(), "a ⁇ b");
}

#[test]
fn control_pieces_are_never_produced_from_text() {
    let t = Tokenizer::from_data(&vocab(&["▁", "<", "s", ">", "<s"], &[], true)).unwrap();
    let ids = t.encode("<s>", false).unwrap();
    assert!(!ids.contains(&1), "{ids:?}");
    assert_eq!(pieces(&t, &ids), ["▁", "<s", ">"]);
}

#[test]
fn user_defined_pieces_are_matched_whole_and_frozen() {
    let t = Tokenizer::from_data(&vocab(BASE, &["<tag>", "xy"], true)).unwrap();
    let ids = t.encode("a<tag>bc", false).unwrap();
    assert_eq!(pieces(&t, &ids), ["▁a", "<tag>", "bc"]);
    // "xy" is frozen: "▁x" is no piece, and "xy" never merges with its neighbours.
    let ids = t.encode("xyab", false).unwrap();
    assert_eq!(pieces(&t, &ids), ["▁", "xy", "ab"]);
}

#[test]
fn whitespace_normalization() {
    let mut d = vocab(BASE, &[], true);
    let t = Tokenizer::from_data(&d).unwrap();
    assert_eq!(t.normalize("  a b "), "▁▁▁a▁b▁");
    assert_eq!(t.normalize(""), "");
    assert!(t.encode("", false).unwrap().is_empty());
    assert_eq!(t.encode("", true).unwrap(), [1]);
    d.remove_extra_whitespaces = true;
    let t = Tokenizer::from_data(&d).unwrap();
    assert_eq!(t.normalize("  a   b  "), "▁a▁b");
    assert_eq!(t.normalize("   "), "");
    d.add_dummy_prefix = false;
    let t = Tokenizer::from_data(&d).unwrap();
    assert_eq!(t.normalize(" a  b"), "a▁b");
}

#[test]
fn decode_strips_one_dummy_space_and_reassembles_bytes() {
    let t = Tokenizer::from_data(&vocab(BASE, &[], true)).unwrap();
    for s in ["abc", " abc", "  a b", "a€b", "€", "\n\n a"] {
        let ids = t.encode(s, true).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), s, "{ids:?}");
    }
    let byte = |b: u8| 3 + b as u32;
    // A truncated 3-byte sequence: sentencepiece emits one U+FFFD per byte.
    assert_eq!(
        t.decode(&[byte(0xE2), byte(0x82)]).unwrap(),
        "\u{FFFD}\u{FFFD}"
    );
    // Overlong and surrogate encodings are invalid too.
    assert_eq!(
        t.decode(&[byte(0xC0), byte(0x80)]).unwrap(),
        "\u{FFFD}\u{FFFD}"
    );
    assert_eq!(
        t.decode(&[byte(0xED), byte(0xA0), byte(0x80)]).unwrap(),
        "\u{FFFD}\u{FFFD}\u{FFFD}"
    );
    // Only the first leading ▁ is stripped, even after an empty first piece.
    let sp = 3 + 256;
    assert_eq!(t.decode(&[1, sp, sp, 2]).unwrap(), " ");
    assert!(t.decode(&[100_000]).is_err());
}

#[test]
fn streaming_decoder_matches_decode() {
    let t = Tokenizer::from_data(&vocab(BASE, &[], true)).unwrap();
    let byte = |b: u8| 3 + b as u32;
    let seqs: Vec<Vec<u32>> = vec![
        t.encode("a€ b€€ c", true).unwrap(),
        vec![
            byte(0xE2),
            byte(0x82),
            260,
            byte(0xF0),
            byte(0x9F),
            byte(0x98),
            byte(0x80),
        ],
        vec![byte(0xE2), byte(0x41), byte(0xE2), byte(0x82)],
        vec![1, 3 + 256, 3 + 256, 8],
    ];
    for ids in seqs {
        let mut d = t.decoder();
        let mut s = String::new();
        for &id in &ids {
            d.push(id, &mut s).unwrap();
        }
        d.finish(&mut s);
        assert_eq!(s, t.decode(&ids).unwrap(), "{ids:?}");
    }
}

#[test]
fn rejects_inconsistent_vocabularies() {
    let mut d = vocab(BASE, &[], true);
    d.pieces[269] = "<0x41>".into();
    d.types[269] = 6;
    assert!(Tokenizer::from_data(&d).is_err());
    let mut d = vocab(BASE, &[], true);
    d.types[10] = 1; // <0x07> becomes a normal piece: byte 7 has no byte piece
    assert!(Tokenizer::from_data(&d).is_err());
}

/// A GPT-2 byte-level vocabulary: the 256 byte characters (in byte order, so id = byte), then
/// the pieces `merges` make, then `<|end|>` (control) and `<tag>` (user-defined).
fn gpt2_vocab(merges: &[&str]) -> TokenizerData {
    let mut d = vocab(&[], &[], false);
    // GPT-2's bytes_to_unicode, written out independently of the implementation.
    let mut table = Vec::new();
    let mut n = 256;
    for b in 0..=255u32 {
        if matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF) {
            table.push(char::from_u32(b).unwrap());
        } else {
            table.push(char::from_u32(n).unwrap());
            n += 1;
        }
    }
    d.pieces = table.iter().map(char::to_string).collect();
    d.types = vec![1; 256];
    for m in merges {
        d.pieces.push(m.replace(' ', ""));
        d.types.push(1);
    }
    d.pieces.push("<|end|>".into());
    d.types.push(3);
    d.pieces.push("<tag>".into());
    d.types.push(4);
    d.scores = vec![0.0; d.pieces.len()];
    d.kind = TokenizerKind::Gpt2Bpe;
    d.merges = merges.iter().map(|m| (*m).to_string()).collect();
    d.bos_id = Some(d.pieces.len() as u32 - 2);
    d.eos_id = d.bos_id;
    d.unk_id = None;
    d.add_dummy_prefix = false;
    d
}

#[test]
fn gpt2_byte_level_bpe() {
    // 256: "he", 257: "ll", 258: "hell", 259: "hello", 260: "Ġw", 261: "ĠĠ"
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġ Ġ"];
    let t = Tokenizer::from_data(&gpt2_vocab(&merges)).unwrap();
    let (end, tag) = (262, 263);
    assert_eq!(t.encode("hello", false).unwrap(), [259]);
    // Rank order, not left to right: "ll" (rank 1) is made before "he ll" can apply.
    assert_eq!(t.encode("hell", false).unwrap(), [258]);
    assert_eq!(
        t.encode("hello<|end|> wow<tag>\u{e9}", true).unwrap(),
        [
            end,
            259,
            end,
            260,
            u32::from(b'o'),
            u32::from(b'w'),
            tag,
            0xC3,
            0xA9
        ]
    );
    // Whitespace before a word: `\s+(?!\S)` keeps one space for the word.
    assert_eq!(t.encode("   w", false).unwrap(), [261, 260]);
    // Decoding: control pieces vanish, user-defined ones are literal, bytes become UTF-8.
    let ids = [259, end, 260, tag, 0xC3, 0xA9];
    assert_eq!(t.decode(&ids).unwrap(), "hello w<tag>\u{e9}");
    // An invalid byte becomes U+FFFD; a truncated character at the end too.
    assert_eq!(t.decode(&[0xFF, 0x41, 0xC3]).unwrap(), "\u{FFFD}A\u{FFFD}");
    // Streaming holds back the first byte of é until the second arrives.
    let mut d = t.decoder();
    let mut s = String::new();
    d.push(0xC3, &mut s).unwrap();
    assert_eq!(s, "");
    d.push(0xA9, &mut s).unwrap();
    assert_eq!(s, "\u{e9}");
    assert!(t.decode(&[9999]).is_err());
    // Round trip of arbitrary text.
    let text = "Hello, wörld! 123 — 中文 😀\n\n\tend  ";
    assert_eq!(t.decode(&t.encode(text, false).unwrap()).unwrap(), text);
}

#[test]
fn gpt2_long_inputs_are_linearithmic() {
    let t = Tokenizer::from_data(&gpt2_vocab(&["h e", "l l", "he ll", "hell o"])).unwrap();
    // One 200k-byte word of repeated merges, and many short words.
    let start = std::time::Instant::now();
    let ids = t.encode(&"hello".repeat(40_000), false).unwrap();
    assert_eq!(ids, vec![259; 40_000]);
    let ids = t.encode(&"hello ".repeat(40_000), false).unwrap();
    assert_eq!(ids.len(), 80_000);
    assert!(start.elapsed().as_secs() < 5);
}

#[test]
fn long_inputs_are_linearithmic() {
    let t = Tokenizer::from_data(&vocab(BASE, &[], true)).unwrap();
    let text = "abc ".repeat(50_000);
    let start = std::time::Instant::now();
    let ids = t.encode(&text, false).unwrap();
    assert_eq!(ids.len(), 50_001);
    assert!(start.elapsed().as_secs() < 5);
}
