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
