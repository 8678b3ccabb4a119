//! Recipes against llama.cpp: every tensor's type for every recipe on three real model shapes
//! (and one with awkward row lengths), two ways:
//! - `tables_match_llama_quantize`: the tables `tests/recipe/*.tsv`, written by the real
//!   `llama-quantize --dry-run` (`tests/recipe/make_tables.py`), column by column;
//! - `*_by_reading`: expectations derived by reading llama.cpp's `llama_tensor_get_type`,
//!   written as compact specs (below), independent of our code and of the tables.

use std::collections::HashMap;
use std::path::PathBuf;

use llamapack_format::DType;
use llamapack_quantize::recipe::{
    ALIASES, Kind, ModelShape, Plan, RECIPE_NAMES, RECIPES, Recipe, RecipeError, Rule,
    TensorTypeOverride, gguf_name, meta_name, use_more_bits,
};

/// A Llama-shaped model.
struct Model {
    file: &'static str,
    n_layers: u32,
    n_head: u32,
    n_head_kv: u32,
    dim: u64,
    ffn: u64,
    vocab: u64,
    tied: bool,
}

const LLAMA2_7B: Model = Model {
    file: "llama2_7b",
    n_layers: 32,
    n_head: 32,
    n_head_kv: 32,
    dim: 4096,
    ffn: 11008,
    vocab: 32000,
    tied: false,
};
const LLAMA2_70B: Model = Model {
    file: "llama2_70b",
    n_layers: 80,
    n_head: 64,
    n_head_kv: 8,
    dim: 8192,
    ffn: 28672,
    vocab: 32000,
    tied: false,
};
const SMOLLM2_135M: Model = Model {
    file: "smollm2_135m",
    n_layers: 30,
    n_head: 9,
    n_head_kv: 3,
    dim: 576,
    ffn: 1536,
    vocab: 49152,
    tied: true,
};
/// Rows of 96 (a multiple of 32, not of 256) and an ffn of 200 (not a multiple of 32).
const ODD: Model = Model {
    file: "odd",
    n_layers: 4,
    n_head: 6,
    n_head_kv: 2,
    dim: 96,
    ffn: 200,
    vocab: 1000,
    tied: false,
};

impl Model {
    fn shape(&self) -> ModelShape {
        ModelShape::new(self.n_layers, self.n_head, self.n_head_kv)
    }

    /// Meta names and shapes (outermost first), as a `.lpk` lists them.
    fn tensors(&self) -> Vec<(String, Vec<u64>)> {
        let (d, kv) = (
            self.dim,
            self.dim / u64::from(self.n_head) * u64::from(self.n_head_kv),
        );
        let mut t = vec![("tok_embeddings.weight".to_owned(), vec![self.vocab, d])];
        for i in 0..self.n_layers {
            let l = |s: &str| format!("layers.{i}.{s}");
            t.push((l("attention_norm.weight"), vec![d]));
            t.push((l("attention.wq.weight"), vec![d, d]));
            t.push((l("attention.wk.weight"), vec![kv, d]));
            t.push((l("attention.wv.weight"), vec![kv, d]));
            t.push((l("attention.wo.weight"), vec![d, d]));
            t.push((l("ffn_norm.weight"), vec![d]));
            t.push((l("feed_forward.w1.weight"), vec![self.ffn, d]));
            t.push((l("feed_forward.w2.weight"), vec![d, self.ffn]));
            t.push((l("feed_forward.w3.weight"), vec![self.ffn, d]));
        }
        t.push(("norm.weight".to_owned(), vec![d]));
        if !self.tied {
            t.push(("output.weight".to_owned(), vec![self.vocab, d]));
        }
        t
    }

    fn plan(&self, r: &Recipe) -> Result<Plan, RecipeError> {
        r.plan(self.tensors(), self.shape())
    }
}

/// A column label of the tables: the recipe, then `+`-separated options (see make_tables.py).
fn recipe_of(label: &str) -> Recipe {
    let mut parts = label.split('+');
    let mut r = Recipe::parse(parts.next().unwrap()).unwrap();
    for p in parts {
        let ty = |s: &str| DType::from_name(s).unwrap();
        match p.split_once('=') {
            None if p == "imatrix" => r.has_imatrix = true,
            None if p == "pure" => r.pure = true,
            Some(("output", t)) => r.output_type = Some(ty(t)),
            Some(("embd", t)) => r.embedding_type = Some(ty(t)),
            Some(("tt", arg)) => r.tensor_types.push(TensorTypeOverride::parse(arg).unwrap()),
            _ => panic!("option {p}"),
        }
    }
    r
}

/// A tensor's type as the tables write it: `wanted>got` for a fallback.
fn cells(plan: &Plan) -> HashMap<String, String> {
    plan.tensors
        .iter()
        .map(|t| {
            let cell = match t.fallback {
                Some(f) => format!("{}>{}", f.wanted, f.dtype),
                None => t.dtype.to_string(),
            };
            (t.gguf_name.clone(), cell)
        })
        .collect()
}

fn table(m: &Model) -> Vec<Vec<String>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/recipe/{}.tsv", m.file));
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

#[test]
fn tables_match_llama_quantize() {
    let mut aborts = Vec::new();
    for m in [LLAMA2_7B, LLAMA2_70B, SMOLLM2_135M, ODD] {
        let rows = table(&m);
        let n_tensors = m.tensors().len();
        assert_eq!(rows.len(), 3 + n_tensors, "{}", m.file);
        for (j, label) in rows[0].iter().enumerate().skip(1) {
            let want: HashMap<&str, &str> = rows
                .iter()
                .skip(1)
                .map(|r| (r[0].as_str(), r[j].as_str()))
                .collect();
            let plan = match m.plan(&recipe_of(label)) {
                Ok(p) => p,
                Err(RecipeError::DoesNotFit { tensor, dtype, .. }) => {
                    // llama-quantize assigns it anyway (its dry run says so) and then aborts.
                    let g = gguf_name(&tensor).unwrap();
                    assert_eq!(want[g.as_str()], dtype.name(), "{} {label}", m.file);
                    aborts.push(format!("{} {label} {tensor}", m.file));
                    continue;
                }
                Err(e) => panic!("{} {label}: {e}", m.file),
            };
            let got = cells(&plan);
            assert_eq!(got.len(), n_tensors);
            for (name, cell) in &got {
                assert_eq!(want[name.as_str()], cell, "{} {label}: {name}", m.file);
            }
            let bpw = format!("{:.2}", plan.bits_per_weight());
            assert_eq!(want["#bpw"], bpw, "{} {label}: BPW", m.file);
            let n_fallback = plan.fallbacks().count().to_string();
            assert_eq!(want["#fallbacks"], n_fallback, "{} {label}", m.file);
        }
    }
    // --token-embedding-type / --output-tensor-type that do not divide the rows (llama-quantize
    // aborts on each: "tensor row size not divisible by block size of new type").
    assert_eq!(
        aborts,
        [
            "smollm2_135m q4_0+embd=q4_k tok_embeddings.weight",
            "odd q4_k_m+output=q4_k output.weight",
            "odd q4_0+embd=q4_k tok_embeddings.weight",
            "odd q5_k_m+tt=attn_q=q4_0+output=q5_k output.weight",
        ]
    );
}

/// Checks `label` on `m` against `spec`: whitespace-separated `role=cell` or `role=cell@layers`
/// (later entries win); role `*` is every matrix, else a GGUF role (`attn_v`, `token_embd`, …);
/// a cell is a type or `wanted>got`; layers are `a`, `a-b` or `a-b/step`, comma-separated.
/// Norms must be f32.
fn check_spec(m: &Model, label: &str, spec: &str) {
    let plan = m.plan(&recipe_of(label)).unwrap();
    let rules: Vec<(&str, &str, Option<Vec<u32>>)> = spec
        .split_whitespace()
        .map(|e| {
            let (role, rest) = e.split_once('=').unwrap();
            match rest.split_once('@') {
                Some((cell, layers)) => (role, cell, Some(layers_of(layers))),
                None => (role, rest, None),
            }
        })
        .collect();
    for (g, cell) in cells(&plan) {
        let (layer, role) = match g.strip_prefix("blk.") {
            Some(rest) => {
                let (n, r) = rest.split_once('.').unwrap();
                (
                    Some(n.parse::<u32>().unwrap()),
                    r.trim_end_matches(".weight"),
                )
            }
            None => (None, g.trim_end_matches(".weight")),
        };
        let want = if role.ends_with("norm") {
            "f32"
        } else {
            rules
                .iter()
                .rev()
                .find(|(r, _, ls)| {
                    (*r == "*" || *r == role)
                        && ls
                            .as_ref()
                            .is_none_or(|ls| layer.is_some_and(|l| ls.contains(&l)))
                })
                .unwrap_or_else(|| panic!("{label}: no rule for {g}"))
                .1
        };
        assert_eq!(cell, want, "{} {label}: {g}", m.file);
    }
}

fn layers_of(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (range, step) = part
            .split_once('/')
            .map_or((part, 1), |(r, s)| (r, s.parse().unwrap()));
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        out.extend((a.parse::<u32>().unwrap()..=b.parse().unwrap()).step_by(step));
    }
    out
}

/// use_more_bits layers, by reading: i < n/8, i ≥ 7n/8, (i − n/8) % 3 == 2.
const MORE_32: &str = "0-3,6-27/3,28-31";
const MORE_80: &str = "0-9,12-69/3,70-79";
const MORE_30: &str = "0-2,5-23/3,26-29";

fn specs(m: &Model, list: &[(&str, String)]) {
    for (label, spec) in list {
        check_spec(m, label, spec);
    }
    let plain: Vec<&str> = list
        .iter()
        .map(|l| l.0)
        .filter(|l| !l.contains('+'))
        .collect();
    assert!(
        RECIPE_NAMES.iter().all(|n| plain.contains(n)),
        "{}: a spec per recipe",
        m.file
    );
}

fn uniform(names: &[&str], extra: &str) -> Vec<(&'static str, String)> {
    names
        .iter()
        .map(|n| {
            let n: &'static str = RECIPES.iter().find(|r| r.name == *n).unwrap().name;
            (n, format!("*={n} {extra}"))
        })
        .collect()
}

#[test]
fn llama2_7b_by_reading() {
    let more = MORE_32;
    let mut l = uniform(&["q4_0", "q4_1", "q5_0", "q5_1"], "output=q6_k");
    l.extend(uniform(&["q6_k", "q8_0", "f16", "bf16", "f32"], ""));
    l.extend([
        ("q2_k", "*=q2_k output=q6_k attn_v=q3_k attn_output=q3_k ffn_down=q3_k".into()),
        ("q3_k_s", "*=q3_k output=q6_k".into()),
        ("q3_k_m", "*=q3_k output=q6_k attn_v=q4_k attn_v=q5_k@0-1 attn_output=q4_k ffn_down=q4_k ffn_down=q5_k@0-1".into()),
        ("q3_k_l", "*=q3_k output=q6_k attn_v=q5_k attn_output=q5_k ffn_down=q5_k".into()),
        ("q4_k_s", "*=q4_k output=q6_k attn_v=q5_k@0-3 ffn_down=q5_k@0-3".into()),
        ("q4_k_m", format!("*=q4_k output=q6_k attn_v=q6_k@{more} ffn_down=q6_k@{more}")),
        ("q5_k_s", "*=q5_k output=q6_k".into()),
        ("q5_k_m", format!("*=q5_k output=q6_k attn_v=q6_k@{more} ffn_down=q6_k@{more}")),
        ("iq4_nl", "*=iq4_nl output=q6_k ffn_down=q5_k@0-3".into()),
        ("iq4_xs", "*=iq4_xs output=q6_k ffn_down=q5_k@0-3".into()),
        ("q4_0+imatrix", "*=q4_0 output=q6_k ffn_down=q4_1@0-3".into()),
        ("q5_0+imatrix", "*=q5_0 output=q6_k ffn_down=q5_1@0-3".into()),
        ("iq4_nl+imatrix", "*=iq4_nl output=q6_k".into()),
        ("iq4_xs+imatrix", "*=iq4_xs output=q6_k".into()),
        ("q4_k_m+pure", "*=q4_k".into()),
        ("q4_k_m+output=q8_0+embd=q4_0", format!("*=q4_k output=q8_0 token_embd=q4_0 attn_v=q6_k@{more} ffn_down=q6_k@{more}")),
        // attn_v of layer 0 taken by --tensor-type: the counter lags one layer behind.
        ("q4_k_m+tt=blk\\.0\\.attn_v=q8_0", format!("*=q4_k output=q6_k ffn_down=q6_k@{more} attn_v=q6_k@1-4,7-28/3,29-31 attn_v=q8_0@0")),
        // the first matching pattern wins
        ("q4_k_m+tt=ffn_down=q5_0+tt=blk\\.1\\.ffn_down=q8_0", format!("*=q4_k output=q6_k attn_v=q6_k@{more} ffn_down=q5_0")),
        ("q3_k_m+tt=blk\\.[01]\\.ffn_down=q4_0", "*=q3_k output=q6_k attn_v=q4_k attn_v=q5_k@0-1 attn_output=q4_k ffn_down=q4_k ffn_down=q5_k@2-3 ffn_down=q4_0@0-1".into()),
        ("f16+tt=attn_q=q8_0+output=q8_0", "*=f16 output=q8_0".into()),
    ]);
    specs(&LLAMA2_7B, &l);
}

#[test]
fn llama2_70b_by_reading() {
    let more = MORE_80;
    let mut l = uniform(&["q4_0", "q4_1", "q5_0", "q5_1"], "output=q6_k");
    l.extend(uniform(&["q6_k", "q8_0", "f16", "bf16", "f32"], ""));
    l.extend([
        // GQA 8 and a "70B": attn_v q3_k/q4_k → q5_k.
        (
            "q2_k",
            "*=q2_k output=q6_k attn_v=q5_k attn_output=q3_k ffn_down=q3_k".into(),
        ),
        ("q3_k_s", "*=q3_k output=q6_k attn_v=q5_k".into()),
        (
            "q3_k_m",
            "*=q3_k output=q6_k attn_v=q5_k attn_output=q4_k ffn_down=q4_k ffn_down=q5_k@0-4"
                .into(),
        ),
        (
            "q3_k_l",
            "*=q3_k output=q6_k attn_v=q5_k attn_output=q5_k ffn_down=q5_k".into(),
        ),
        (
            "q4_k_s",
            "*=q4_k output=q6_k attn_v=q5_k ffn_down=q5_k@0-9".into(),
        ),
        (
            "q4_k_m",
            format!("*=q4_k output=q6_k attn_v=q5_k attn_v=q6_k@{more} ffn_down=q6_k@{more}"),
        ),
        ("q5_k_s", "*=q5_k output=q6_k".into()),
        (
            "q5_k_m",
            format!("*=q5_k output=q6_k attn_v=q6_k@{more} ffn_down=q6_k@{more}"),
        ),
        (
            "iq4_nl",
            "*=iq4_nl output=q6_k attn_v=q5_k ffn_down=q5_k@0-9".into(),
        ),
        (
            "iq4_xs",
            "*=iq4_xs output=q6_k attn_v=q5_k ffn_down=q5_k@0-9".into(),
        ),
        (
            "q4_0+imatrix",
            "*=q4_0 output=q6_k ffn_down=q4_1@0-9".into(),
        ),
        (
            "q5_0+imatrix",
            "*=q5_0 output=q6_k ffn_down=q5_1@0-9".into(),
        ),
        ("iq4_nl+imatrix", "*=iq4_nl output=q6_k attn_v=q5_k".into()),
        ("iq4_xs+imatrix", "*=iq4_xs output=q6_k attn_v=q5_k".into()),
        ("q3_k_s+pure", "*=q3_k".into()),
    ]);
    specs(&LLAMA2_70B, &l);
}

#[test]
fn smollm2_135m_by_reading() {
    // Tied: token_embd follows the output rule (q8_0 when 576 is not a multiple of the base
    // block, else q6_k, which then falls back). Rows of 576 are not a multiple of 256;
    // ffn_down's 1536 is.
    let more = MORE_30;
    let mut l = uniform(&["q4_0", "q4_1", "q5_0", "q5_1"], "token_embd=q6_k>q8_0");
    l.extend(uniform(&["q8_0", "f16", "bf16", "f32"], ""));
    l.extend([
        ("q2_k", "*=q2_k>q4_0 token_embd=q8_0 attn_v=q3_k>q4_0 attn_output=q3_k>q4_0 ffn_down=q3_k".into()),
        ("q3_k_s", "*=q3_k>q4_0 token_embd=q8_0 ffn_down=q3_k".into()),
        ("q3_k_m", "*=q3_k>q4_0 token_embd=q8_0 attn_v=q4_k>q5_0 attn_v=q5_k>q5_1@0-1 attn_output=q4_k>q5_0 ffn_down=q4_k ffn_down=q5_k@0".into()),
        ("q3_k_l", "*=q3_k>q4_0 token_embd=q8_0 attn_v=q5_k>q5_1 attn_output=q5_k>q5_1 ffn_down=q5_k".into()),
        ("q4_k_s", "*=q4_k>q5_0 token_embd=q8_0 attn_v=q5_k>q5_1@0-3 ffn_down=q4_k ffn_down=q5_k@0-2".into()),
        ("q4_k_m", format!("*=q4_k>q5_0 token_embd=q8_0 attn_v=q6_k>q8_0@{more} ffn_down=q4_k ffn_down=q6_k@{more}")),
        ("q5_k_s", "*=q5_k>q5_1 token_embd=q8_0 ffn_down=q5_k".into()),
        ("q5_k_m", format!("*=q5_k>q5_1 token_embd=q8_0 attn_v=q6_k>q8_0@{more} ffn_down=q5_k ffn_down=q6_k@{more}")),
        ("q6_k", "*=q6_k>q8_0 token_embd=q8_0 ffn_down=q6_k".into()),
        ("iq4_nl", "*=iq4_nl token_embd=q6_k>q8_0 ffn_down=q5_k@0-2".into()),
        ("iq4_xs", "*=iq4_xs>iq4_nl token_embd=q8_0 ffn_down=iq4_xs ffn_down=q5_k@0-2".into()),
        ("q4_0+imatrix", "*=q4_0 token_embd=q6_k>q8_0 ffn_down=q4_1@0-2".into()),
        ("iq4_xs+imatrix", "*=iq4_xs>iq4_nl token_embd=q8_0 ffn_down=iq4_xs".into()),
        // --output-tensor-type reaches the tied token_embd through the mixture, so it falls back;
        ("q4_k_m+output=q4_k", format!("*=q4_k>q5_0 attn_v=q6_k>q8_0@{more} ffn_down=q4_k ffn_down=q6_k@{more}")),
        // but not with --pure, which skips the mixture, nor with a float recipe.
        ("q4_k_m+pure+output=q8_0", "*=q4_k>q5_0 ffn_down=q4_k".into()),
        ("f16+tt=attn_q=q8_0+output=q8_0", "*=f16".into()),
        // regex_search: `output` also matches attn_output.
        ("q4_k_m+tt=token_embd=q8_0+tt=output=q4_0", format!("*=q4_k>q5_0 token_embd=q8_0 attn_output=q4_0 attn_v=q6_k>q8_0@{more} ffn_down=q4_k ffn_down=q6_k@{more}")),
    ]);
    specs(&SMOLLM2_135M, &l);
}

#[test]
fn odd_rows_by_reading() {
    // 4 layers: use_more_bits → 2, 3. Rows of 200 fit no block: f16.
    let m = ODD;
    check_spec(&m, "q4_0", "*=q4_0 output=q6_k>q8_0 ffn_down=q4_0>f16");
    check_spec(
        &m,
        "q4_k_m",
        "*=q4_k>q5_0 output=q8_0 attn_v=q6_k>q8_0@2-3 ffn_down=q4_k>f16 ffn_down=q6_k>f16@2-3",
    );
    check_spec(&m, "q8_0", "*=q8_0 ffn_down=q8_0>f16");
    check_spec(
        &m,
        "q4_0+tt=ffn_up=q4_k+tt=ffn_down=q6_k",
        "*=q4_0 output=q6_k>q8_0 ffn_up=q4_k>q5_0 ffn_down=q6_k>f16",
    );
    let err = m.plan(&recipe_of("q4_k_m+output=q4_k")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`output.weight`: --output-type q4_k needs rows that are a multiple of 256, not 96"
    );
    let p = m.plan(&recipe_of("q4_k_m")).unwrap();
    let down = p.get("layers.3.feed_forward.w2.weight").unwrap();
    assert_eq!(down.rule, Rule::Mixture);
    assert_eq!(
        down.choice().fallback.unwrap(),
        "`layers.3.feed_forward.w2.weight`: row length 200 is not a multiple of 256 (q6_k) \
         nor of 32 (q8_0); using f16"
    );
    let q = p.get("blk.0.attn_q.weight").unwrap();
    assert_eq!(
        q.fallback.unwrap().to_string(),
        "row length 96 is not a multiple of 256 (q4_k); using q5_0"
    );
    let p = m.plan(&recipe_of("q4_0")).unwrap();
    let down = p.get("layers.0.feed_forward.w2.weight").unwrap();
    assert_eq!(
        down.fallback.unwrap().to_string(),
        "row length 200 is not a multiple of 32 (q4_0); using f16"
    );
}

#[test]
fn table_rows_are_consistent() {
    assert_eq!(RECIPES.len(), RECIPE_NAMES.len());
    let plain = table(&LLAMA2_7B);
    for (i, (r, name)) in RECIPES.iter().zip(RECIPE_NAMES).enumerate() {
        assert_eq!(
            (r.name, r.kind as usize, r.kind.info().name),
            (name, i, name)
        );
        assert_eq!(r.llama_name, name.to_ascii_uppercase());
        assert_eq!(r.kind.base(), r.base);
        // The file type of a plain type (and of the _S mixtures) is the dtype table's.
        if !name.ends_with("_m") && !name.ends_with("_l") {
            assert_eq!(r.base.info().llama_ftype, Some(r.ftype), "{name}");
        }
        // bpw_7b: what llama-quantize printed, and what our plan of a 7B gives.
        let col = plain[0].iter().position(|l| l == name).unwrap();
        assert_eq!(format!("{:.2}", r.bpw_7b), plain[1][col], "{name}");
        let bpw = LLAMA2_7B
            .plan(&Recipe::new(r.kind))
            .unwrap()
            .bits_per_weight();
        assert_eq!(format!("{bpw:.2}"), format!("{:.2}", r.bpw_7b), "{name}");
    }
    assert_eq!(Kind::all().count(), RECIPES.len());
    for (alias, kind) in ALIASES {
        assert!(kind.name().starts_with(alias) && kind.name().ends_with("_m"));
    }
}

#[test]
fn parse_names_like_llama_quantize() {
    for r in RECIPES {
        for name in [r.name, r.llama_name, &r.ftype.to_string()] {
            let p = Recipe::parse(name).unwrap();
            assert_eq!((p.kind, p.name.as_str()), (r.kind, r.name), "{name}");
        }
    }
    assert_eq!(Recipe::parse("Q4_K").unwrap().name, "q4_k_m");
    assert_eq!(Recipe::parse("q3_K").unwrap().kind, Kind::Q3KM);
    assert_eq!(Recipe::parse("Q5_k").unwrap().kind, Kind::Q5KM);
    assert_eq!("iq4_XS".parse::<Kind>().unwrap(), Kind::IQ4XS);
    let hint = |s: &str| match Recipe::parse(s).unwrap_err() {
        RecipeError::UnknownRecipe { suggestion, .. } => suggestion,
        e => panic!("{e}"),
    };
    assert_eq!(hint("q4km"), Some("q4_k_m"));
    assert_eq!(hint("Q5-K-M"), Some("q5_k_m"));
    assert_eq!(hint("iq4nl"), Some("iq4_nl"));
    assert_eq!(hint("q4k"), Some("q4_k_m"));
    assert_eq!(hint("q4_k_mm"), Some("q4_k_m"));
    assert_eq!(hint("fp16"), Some("f16"));
    assert_eq!(hint("q8"), None);
    assert_eq!(hint("hello"), None);
    assert_eq!(hint("q4_0_4_4"), None);
    for s in ["iq2_xxs", "IQ3_M", "q2_k_s", "19", "copy"] {
        let e = Recipe::parse(s).unwrap_err();
        assert!(matches!(e, RecipeError::Unsupported { .. }), "{s}: {e}");
    }
    assert!(Recipe::parse("iq2_XXS").unwrap_err().to_string().starts_with(
        "`iq2_XXS`: llama-quantize's IQ2_XXS needs formats llamapack does not have (expected one of q4_0,"
    ));
    let msg = Recipe::parse("q4km").unwrap_err().to_string();
    assert!(
        msg.starts_with(
            "unknown recipe `q4km` (did you mean `q4_k_m`?) (expected one of q4_0, q4_1,"
        ),
        "{msg}"
    );
    assert!(
        !Recipe::parse("bogus")
            .unwrap_err()
            .to_string()
            .contains("did you mean")
    );
    assert!(Recipe::parse("q8_k").is_err() && Recipe::parse("4").is_err());
}

#[test]
fn tensor_type_arguments_like_llama_quantize() {
    let o = TensorTypeOverride::parse("BLK\\.1\\.ATTN_V=Q8_0").unwrap();
    assert_eq!((o.pattern(), o.dtype()), ("blk\\.1\\.attn_v", DType::Q8_0));
    assert!(o.matches("blk.1.attn_v.weight") && !o.matches("blk.11.attn_v.weight"));
    let o: TensorTypeOverride = "ffn_(up|gate)=q4_K".parse().unwrap();
    assert!(o.matches("blk.7.ffn_gate.weight") && !o.matches("blk.7.ffn_down.weight"));
    // split at the first '='
    assert!(TensorTypeOverride::parse("a=b=q8_0").is_err());
    for (arg, why) in [
        ("attn_v", "expected REGEX=TYPE"),
        ("=q8_0", "missing tensor name"),
        ("attn_v=", "missing quantization type"),
        ("attn_v=q9_9", "unknown type `q9_9`"),
        ("attn_v=q8_k", "q8_k cannot be stored"),
        ("attn_(v=q8_0", "regex parse error"),
    ] {
        let e = TensorTypeOverride::parse(arg).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("--tensor-type `{arg}`: {why}")),
            "{e}"
        );
    }
}

#[test]
fn plan_keeps_input_order_and_accepts_gguf_names() {
    let r = Recipe::parse("q4_k_m").unwrap();
    let mut t = LLAMA2_7B.tensors();
    t.reverse();
    let p = r.plan(t.clone(), LLAMA2_7B.shape()).unwrap();
    assert!(
        p.tensors
            .iter()
            .zip(&t)
            .all(|(p, t)| p.name == t.0 && p.shape == t.1)
    );
    assert!(!p.tied_output);
    let gguf: Vec<(String, Vec<u64>)> = t
        .iter()
        .map(|(n, s)| (gguf_name(n).unwrap(), s.clone()))
        .collect();
    let q = r.plan(gguf, LLAMA2_7B.shape()).unwrap();
    for (a, b) in p.tensors.iter().zip(&q.tensors) {
        assert_eq!((&a.gguf_name, a.dtype, a.rule), (&b.name, b.dtype, b.rule));
    }
    // Without output.weight the embeddings are the output (llama.cpp infers the same).
    let untied: Vec<_> = t
        .iter()
        .filter(|t| t.0 != "output.weight")
        .cloned()
        .collect();
    let p = r.plan(untied, LLAMA2_7B.shape()).unwrap();
    assert!(p.tied_output);
    assert_eq!(p.get("tok_embeddings.weight").unwrap().dtype, DType::Q6K);

    let dup = t[3].clone();
    t.push(dup.clone());
    let e = r.plan(t, LLAMA2_7B.shape()).unwrap_err();
    assert_eq!(e, RecipeError::DuplicateTensor(dup.0));
    let mut bad = r.clone();
    bad.output_type = Some(DType::Q8K);
    assert_eq!(
        LLAMA2_7B.plan(&bad).unwrap_err(),
        RecipeError::NotStorable { dtype: DType::Q8K }
    );
}

#[test]
fn choose_agrees_with_plan_without_gqa() {
    for kind in Kind::all() {
        for imatrix in [false, true] {
            let mut r = Recipe::new(kind);
            r.has_imatrix = imatrix;
            let plan = LLAMA2_7B.plan(&r).unwrap();
            for t in &plan.tensors {
                assert_eq!(
                    r.choose(&t.name, &t.shape, 32),
                    t.choice(),
                    "{kind} {}",
                    t.name
                );
            }
        }
    }
    // The 4-layer fixture: q4_k_m's q6_k layers are 2 and 3 (as llama-quantize made it).
    let r = Recipe::parse("q4_k_m").unwrap();
    let v = |i| {
        r.choose(&format!("layers.{i}.attention.wv.weight"), &[256, 256], 4)
            .dtype
    };
    assert_eq!(
        [v(0), v(1), v(2), v(3)],
        [DType::Q4K, DType::Q4K, DType::Q6K, DType::Q6K]
    );
    // An output type that does not fit falls back, with the reason.
    let mut r = Recipe::parse("q4_0").unwrap();
    r.output_type = Some(DType::Q4K);
    let c = r.choose("output.weight", &[10, 96], 2);
    assert_eq!(c.dtype, DType::Q5_0);
    assert!(
        c.fallback
            .unwrap()
            .contains("--output-type q4_k needs rows")
    );
    r.tied_output = true;
    assert_eq!(
        r.choose("tok_embeddings.weight", &[10, 64], 2).dtype,
        DType::Q5_0
    );
    r.output_type = Some(DType::Q8K);
    let c = r.choose("tok_embeddings.weight", &[10, 256], 2);
    assert_eq!(c.dtype, DType::F16);
    assert_eq!(
        c.fallback.unwrap(),
        "q8_k cannot be stored in a model file; using f16"
    );
}

#[test]
fn use_more_bits_matches_llama_cpp() {
    let picked: Vec<u32> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
    assert_eq!(picked, layers_of(MORE_32));
    let picked: Vec<u32> = (0..80).filter(|&i| use_more_bits(i, 80)).collect();
    assert_eq!(picked, layers_of(MORE_80));
    let picked: Vec<u32> = (0..4).filter(|&i| use_more_bits(i, 4)).collect();
    assert_eq!(picked, vec![2, 3]);
}

#[test]
fn gguf_names_map_both_ways() {
    for (m, _) in SMOLLM2_135M
        .tensors()
        .iter()
        .chain(&LLAMA2_7B.tensors()[..12])
    {
        let g = gguf_name(m).unwrap();
        assert_eq!(meta_name(&g).as_deref(), Some(m.as_str()), "{g}");
    }
    assert_eq!(
        gguf_name("layers.12.feed_forward.w2.weight").as_deref(),
        Some("blk.12.ffn_down.weight")
    );
    assert_eq!(
        gguf_name("layers.0.attention.wo.weight").as_deref(),
        Some("blk.0.attn_output.weight")
    );
    assert_eq!(
        gguf_name("norm.weight").as_deref(),
        Some("output_norm.weight")
    );
    assert_eq!(gguf_name("rope.freqs"), None);
    assert_eq!(meta_name("blk.01.attn_q.weight"), None);
    assert_eq!(meta_name("blk.x.attn_q.weight"), None);
}

#[test]
fn recipe_serializes_its_options() {
    let mut r = recipe_of("q4_k_m+imatrix+tt=attn_v=q8_0");
    r.output_type = Some(DType::Q8_0);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["name"], "q4_k_m");
    assert_eq!(v["kind"], "q4_k_m");
    assert_eq!(v["output_type"], "q8_0");
    assert_eq!(v["has_imatrix"], true);
    assert_eq!(v["tensor_types"][0]["pattern"], "attn_v");
    assert_eq!(v["tensor_types"][0]["dtype"], "q8_0");
    let p = SMOLLM2_135M.plan(&r).unwrap();
    let v = serde_json::to_value(&p).unwrap();
    let t = &v["tensors"][0];
    assert_eq!(
        (t["name"].as_str(), t["rule"].as_str(), t["dtype"].as_str()),
        (
            Some("tok_embeddings.weight"),
            Some("output_type"),
            Some("q8_0")
        )
    );
}
