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
