//! GGUF import on files written by llama.cpp's own tools (`fixtures/gguf/make_gguf.sh`):
//! `tiny-f16.gguf` from `convert_hf_to_gguf.py` and `tiny-q4_k_m.gguf` from `llama-quantize`,
//! both of the fixture model. Imported, they must be the fixture model again.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{fixture, json, ok, s, shared, tensors};

fn import(gguf: &str) -> PathBuf {
    // Not `tiny-f16.lpk`: that name is the shared conversion other tests read.
    let out = shared()
        .dir
        .join(format!("gguf-{}", gguf.replace(".gguf", ".lpk")));
    ok(&[
        "convert",
        s(&fixture(&format!("gguf/{gguf}"))),
        "-o",
        s(&out),
    ]);
    assert!(ok(&["verify", s(&out)]).starts_with("ok:"));
    out
}

fn assert_config_is_the_meta_one(gguf: &Value, meta: &Value) {
    for key in [
        "arch",
        "dim",
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "ffn_dim",
        "vocab_size",
        "norm_eps",
        "rope_theta",
        "tied_output",
    ] {
        assert_eq!(gguf["config"][key], meta["config"][key], "config.{key}");
    }
    // The one known difference: params.json has no context length (Llama 2's 4096 is assumed),
    // while convert_hf_to_gguf.py writes the HF config's max_position_embeddings.
    assert_eq!(gguf["config"]["context_length"], 256);
    for key in [
        "kind",
        "n_pieces",
        "bos_id",
        "eos_id",
        "unk_id",
        "add_bos",
        "add_eos",
        "add_dummy_prefix",
        "byte_fallback",
    ] {
        assert_eq!(
            gguf["tokenizer"][key], meta["tokenizer"][key],
            "tokenizer.{key}"
        );
    }
    assert_eq!(gguf["provenance"]["source_format"], "gguf");
}

fn assert_same_tokens(a: &Path, b: &Path) {
    let text =
        "Alice was beginning to get very tired of sitting by her sister on the bank, 1865!\n";
    let ta = json(&["tokenize", s(a), "--text", text, "--json"]);
    let tb = json(&["tokenize", s(b), "--text", text, "--json"]);
    assert_eq!(ta["ids"], tb["ids"]);
    assert_eq!(ta["pieces"], tb["pieces"]);
}

#[test]
fn convert_hf_to_gguf_f16_imports_as_the_meta_conversion() {
    let sh = shared();
    let lpk = import("tiny-f16.gguf");
    let g = json(&["inspect", s(&lpk), "--json"]);
    let m = json(&["inspect", s(&sh.f16), "--json"]);
    assert_config_is_the_meta_one(&g, &m);
    assert_same_tokens(&lpk, &sh.f16);

    // Every 2-D tensor is the same f16 bytes as the Meta conversion: in particular
    // convert_hf_to_gguf.py permuted HF's q_proj/k_proj rows back to Meta's adjacent-pair order
    // (llama.cpp's LLAMA rope), so wq/wk equal Meta's without any permutation on our side.
    // Norms are the known difference: the GGUF stores them as f32 (ggml's rule), and they equal
    // the f32 conversion of the Meta checkpoint exactly.
    let meta_f32 = sh.dir.join("meta-f32.lpk");
    ok(&[
        "convert",
        s(&fixture("tiny/meta")),
        "-o",
        s(&meta_f32),
        "--dtype",
        "f32",
    ]);
    let m32 = json(&["inspect", s(&meta_f32), "--json"]);
    let (gt, mt, m32t) = (tensors(&g), tensors(&m), tensors(&m32));
    assert_eq!(gt.len(), mt.len());
    let mut n_2d = 0;
    for m in &mt {
        let name = &m.name;
        let g = gt
            .iter()
            .find(|t| &t.name == name)
            .unwrap_or_else(|| panic!("{name} missing from the GGUF import"));
        assert_eq!(g.shape, m.shape, "{name} shape");
        if m.shape.as_array().unwrap().len() == 2 {
            n_2d += 1;
            assert_eq!(
                (&g.dtype, &g.checksum),
                (&m.dtype, &m.checksum),
                "{name}: f16 bytes differ"
            );
        } else {
            assert!(name.ends_with("norm.weight"), "{name}");
            assert_eq!(g.dtype, "f32", "{name} dtype");
            let m32 = m32t.iter().find(|t| &t.name == name).unwrap();
            assert_eq!(
                (&g.dtype, &g.checksum),
                (&m32.dtype, &m32.checksum),
                "{name}: f32 norm differs"
            );
        }
    }
    assert_eq!(n_2d, 4 * 7 + 2);
}

#[test]
fn llama_quantize_q4_k_m_imports_and_matches_ours() {
    let sh = shared();
    let lpk = import("tiny-q4_k_m.gguf");
    let g = json(&["inspect", s(&lpk), "--json"]);
    let m = json(&["inspect", s(&sh.f16), "--json"]);
    assert_config_is_the_meta_one(&g, &m);

    // llama.cpp's q4_k_m recipe on this 4-layer model: output, and attn_v/ffn_down of the
    // use_more_bits layers (i ≥ 7n/8 → 3; (i − n/8) % 3 == 2 → 2) → q6_k; the other matrices
    // q4_k; norms f32. Our recipe on the same f16 weights must give the very same blocks.
    let ours = shared().dir.join("meta-q4_k_m.lpk");
    ok(&["quantize", s(&sh.f16), "-o", s(&ours), "--type", "q4_k_m"]);
    let o = json(&["inspect", s(&ours), "--json"]);
    let (gt, ot) = (tensors(&g), tensors(&o));
    assert_eq!(gt.len(), ot.len());
    for o in &ot {
        let (name, dtype) = (&o.name, &o.dtype);
        let t = gt.iter().find(|t| &t.name == name).expect(name);
        assert_eq!((&t.dtype, &t.shape), (dtype, &o.shape), "{name}");
        assert_eq!(
            t.checksum, o.checksum,
            "{name}: {dtype} blocks differ from llama-quantize's"
        );
    }
    let count = |d: &str| gt.iter().filter(|t| t.dtype == d).count();
    assert_eq!((count("q4_k"), count("q6_k"), count("f32")), (25, 5, 9));

    // And it is close to the f16 model on the held-out text.
    let e = json(&[
        "eval",
        s(&lpk),
        "--reference",
        s(&sh.f16),
        "--tokens",
        s(&fixture("tiny/ref/eval_tokens.json")),
        "--ctx",
        "128",
        "--json",
    ]);
    let kld = e["kld_mean"].as_f64().unwrap();
    assert!(kld > 0.0 && kld < 0.03, "q4_k_m mean KLD {kld}");
    assert!(e["top1_agreement"].as_f64().unwrap() > 0.85, "{e}");
    let ratio = e["ppl_ratio"].as_f64().unwrap();
    assert!((0.98..1.05).contains(&ratio), "PPL ratio {ratio}");
}
