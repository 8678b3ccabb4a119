//! The tokenizer against sentencepiece's own encodings of hard strings.

use std::path::Path;

use llamapack_runner::Tokenizer;

use crate::support::{fixture, ids, json, llama2_tokenizer_model, sp_tokenizer};

fn check_cases(model: &Path, cases: &Path) {
    let tok = Tokenizer::from_data(&sp_tokenizer(model)).unwrap();
    let doc = json(cases);
    let cases = doc["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        let got = tok.encode(text, false).unwrap();
        if got != want {
            failures.push(format!("encode {text:?}:\n  got  {got:?}\n  want {want:?}"));
        }
        let decoded = tok.decode(&want).unwrap();
        if decoded != case["decoded"].as_str().unwrap() {
            failures.push(format!(
                "decode {want:?}: got {decoded:?}, want {:?}",
                case["decoded"]
            ));
        }
        // With BOS the ids are the same after it, and decoding ignores it.
        let with_bos = tok.encode(text, true).unwrap();
        assert_eq!(with_bos[0], tok.bos_id().unwrap());
        assert_eq!(&with_bos[1..], &got[..]);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{}: {} cases match sentencepiece",
        model.display(),
        cases.len()
    );
}

#[test]
fn fixture_tokenizer_matches_sentencepiece() {
    check_cases(
        &fixture("tiny/tokenizer.model"),
        &fixture("tokenizer/tiny_cases.json"),
    );
}

#[test]
fn llama2_tokenizer_matches_sentencepiece() {
    let Some(model) = llama2_tokenizer_model() else {
        println!("SKIPPED: Meta's Llama 2 tokenizer.model is not in shared/data/llama2");
        return;
    };
    check_cases(&model, &fixture("tokenizer/llama2_cases.json"));
}

#[test]
fn reference_prompts_encode_as_sentencepiece() {
    let tok = Tokenizer::from_data(&sp_tokenizer(&fixture("tiny/tokenizer.model"))).unwrap();
    for p in json(&fixture("tiny/ref/prompts.json")).as_array().unwrap() {
        let text = p["text"].as_str().unwrap();
        assert_eq!(tok.encode(text, true).unwrap(), ids(&p["ids"]), "{text:?}");
    }
}

/// Checks a GPT-2 byte-level vocabulary against Hugging Face `tokenizers`' encodings (made by
/// `fixtures/tokenizer/make_gpt2_cases.py`); returns the number of cases.
fn check_gpt2_cases(data: &llamapack_format::TokenizerData, cases: &Path) -> usize {
    let tok = Tokenizer::from_data(data).unwrap();
    let doc = json(cases);
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        let got = tok.encode(text, false).unwrap();
        if got != want {
            failures.push(format!("encode {text:?}:\n  got  {got:?}\n  want {want:?}"));
        }
        let decoded = tok.decode(&want).unwrap();
        if decoded != case["decoded"].as_str().unwrap() {
            failures.push(format!(
                "decode {want:?}: got {decoded:?}, want {:?}",
                case["decoded"]
            ));
        }
        // Streaming decoding gives the same text.
        let mut d = tok.decoder();
        let mut s = String::new();
        for &id in &want {
            d.push(id, &mut s).unwrap();
        }
        d.finish(&mut s);
        assert_eq!(s, decoded, "{text:?}");
        if let Some(b) = tok.bos_id() {
            assert_eq!(tok.encode(text, true).unwrap()[1..], got[..]);
            assert_eq!(tok.encode(text, true).unwrap()[0], b);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    cases.len()
}

#[test]
fn gpt2_fixture_tokenizer_matches_hf_tokenizers() {
    let path = fixture("tokenizer/gpt2_tiny/tokenizer.json");
    let bytes = std::fs::read(&path).unwrap();
    let data =
        llamapack_convert::hf_tokenizer::parse(&bytes, &path.display().to_string(), None, None)
            .unwrap();
    assert_eq!(data.kind, llamapack_format::TokenizerKind::Gpt2Bpe);
    let n = check_gpt2_cases(&data, &fixture("tokenizer/gpt2_tiny_cases.json"));
    println!("gpt2_tiny: {n} cases match tokenizers");
}

#[test]
fn smollm2_tokenizer_matches_hf_tokenizers_and_llama_cpp() {
    let Some(lpk) = crate::support::smollm2_lpk() else {
        println!(
            "SKIPPED: no SmolLM2 .lpk (set LLAMAPACK_SMOLLM2_LPK or convert it to /work/data/smol-f16.lpk)"
        );
        return;
    };
    let lpk = llamapack_format::Lpk::open(&lpk).unwrap();
    let data = lpk.tokenizer();
    assert_eq!(data.pre.as_deref(), Some("smollm"));
    let cases = fixture("tokenizer/smollm2_cases.json");
    let n = check_gpt2_cases(data, &cases);
    // The recorded llama.cpp ids equal tokenizers' (so ours equal both).
    for c in json(&cases)["cases"].as_array().unwrap() {
        if let Some(l) = c.get("llama_cpp_ids") {
            assert_eq!(ids(l), ids(&c["ids"]), "{:?}", c["text"]);
        }
    }
    println!("SmolLM2: {n} cases match tokenizers and llama.cpp");
}

#[test]
fn pre_tokenizers_cut_like_hf_split_regex() {
    use llamapack_runner::bpe::PreTokenizer;
    let doc = json(&fixture("tokenizer/pretokenize_cases.json"));
    let cases = doc["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for name in ["gpt2", "smollm", "llama-bpe"] {
        let pre = PreTokenizer::from_name(Some(name));
        for c in cases {
            let text = c["text"].as_str().unwrap();
            let want: Vec<&str> = c[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect();
            let got = pre.words(text);
            if got != want {
                failures.push(format!("{name} {text:?}:\n  got  {got:?}\n  want {want:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{} strings × 3 pre-tokenizers cut as tokenizers does",
        cases.len()
    );
}

/// The runner builds a tokenizer from exactly the vocabularies `TokenizerData::validate` (what
/// `convert`, every tokenizer reader and the `.lpk` reader check) accepts: a file accepted at
/// convert time loads, and `run` refuses nothing the converter let through.
#[test]
fn the_runner_accepts_exactly_what_validation_accepts() {
    use llamapack_format::{TokenizerData, TokenizerKind, testing};
    let sp = testing::tiny_tokenizer();
    let with = |f: &dyn Fn(&mut TokenizerData)| {
        let mut d = sp.clone();
        f(&mut d);
        d
    };
    let mut bytes = testing::tiny_tokenizer();
    for b in 0..=255u8 {
        bytes.pieces.push(format!("<0x{b:02X}>"));
        bytes.scores.push(0.0);
        bytes.types.push(6);
    }
    bytes.byte_fallback = true;
    let gpt2 = TokenizerData {
        kind: TokenizerKind::Gpt2Bpe,
        merges: vec!["a b".into()],
        ..with(&|d| d.pieces[5] = "ab".into())
    };
    let cases: Vec<(&str, TokenizerData, bool)> = vec![
        ("tiny", sp.clone(), true),
        ("byte fallback with its 256 pieces", bytes.clone(), true),
        (
            "a normal piece twice",
            with(&|d| d.pieces[4] = d.pieces[3].clone()),
            false,
        ),
        (
            "a control piece twice",
            with(&|d| d.pieces[2] = d.pieces[1].clone()),
            false,
        ),
        // A control piece may repeat a normal one: they live in different tables.
        (
            "normal and control alike",
            with(&|d| d.pieces[3] = "<s>".into()),
            true,
        ),
        (
            "an empty piece",
            with(&|d| d.pieces[5] = String::new()),
            false,
        ),
        ("two unknown pieces", with(&|d| d.types[3] = 2), false),
        (
            "no unknown piece",
            with(&|d| {
                d.types[0] = 1;
                d.unk_id = None;
            }),
            false,
        ),
        (
            "a byte piece that is not <0xNN>",
            with(&|d| d.types[4] = 6),
            false,
        ),
        (
            "byte fallback without byte pieces",
            with(&|d| d.byte_fallback = true),
            false,
        ),
        (
            "a byte piece missing",
            {
                let mut d = bytes.clone();
                d.pieces.truncate(d.pieces.len() - 1);
                d.scores.pop();
                d.types.pop();
                d
            },
            false,
        ),
        ("gpt2", gpt2.clone(), true),
        (
            "gpt2 with a piece twice (first wins)",
            TokenizerData {
                pieces: {
                    let mut p = gpt2.pieces.clone();
                    p[6] = p[4].clone();
                    p
                },
                ..gpt2.clone()
            },
            true,
        ),
        (
            "gpt2 merge without a space",
            TokenizerData {
                merges: vec!["ab".into()],
                ..gpt2.clone()
            },
            false,
        ),
    ];
    for (what, d, ok) in cases {
        let validated = d.validate();
        let built = Tokenizer::from_data(&d);
        assert_eq!(validated.is_ok(), ok, "{what}: validate gave {validated:?}");
        assert_eq!(
            built.is_ok(),
            ok,
            "{what}: from_data gave {:?}",
            built.err()
        );
        if let (Err(v), Err(b)) = (validated, built) {
            assert!(b.to_string().contains(&v), "{what}: {b} vs {v}");
        }
    }
}
