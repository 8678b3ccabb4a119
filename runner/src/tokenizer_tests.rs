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
fn rejects_inconsistent_vocabularies_and_gpt2() {
    let mut d = vocab(BASE, &[], true);
    d.pieces[269] = "<0x41>".into();
    d.types[269] = 6;
    assert!(Tokenizer::from_data(&d).is_err());
    let mut d = vocab(BASE, &[], true);
    d.types[10] = 1; // <0x07> becomes a normal piece: byte 7 has no byte piece
    assert!(Tokenizer::from_data(&d).is_err());
    let mut d = vocab(BASE, &[], false);
    d.kind = TokenizerKind::Gpt2Bpe;
    d.types = vec![1; d.pieces.len()]; // GPT-2 vocabularies have no unknown piece
    d.unk_id = None;
    let t = Tokenizer::from_data(&d).unwrap();
    let e = t.encode("a", false).unwrap_err().to_string();
    assert_eq!(e, "encoding with a gpt2 vocabulary is not supported yet");
    let e = t.decode(&[3]).unwrap_err().to_string();
    assert_eq!(e, "decoding with a gpt2 vocabulary is not supported yet");
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
