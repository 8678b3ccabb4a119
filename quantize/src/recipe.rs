//! Recipes: which tensor gets which type, as values instead of scattered `if`s — llama.cpp's
//! `llama-quantize` rules for the llama architecture, tensor for tensor.
//!
//! A [`Recipe`] is one of llama.cpp's file types ([`Kind`]: `q4_k_m`, `q3_k_s`, `iq4_xs`, `f16`,
//! …; one row of [`RECIPES`] each) plus llama-quantize's options: `--output-tensor-type`
//! ([`Recipe::output_type`]), `--token-embedding-type` ([`Recipe::embedding_type`]),
//! `--tensor-type REGEX=TYPE` ([`Recipe::tensor_types`]), `--pure`, and whether an importance
//! matrix is given ([`Recipe::has_imatrix`]). [`Recipe::plan`] takes a model's tensor list and
//! returns the type of every tensor, with the reason for each fallback.
//!
//! ```
//! use llamapack_format::DType;
//! use llamapack_quantize::recipe::{ModelShape, Recipe};
//!
//! let r = Recipe::parse("Q4_K_M").unwrap();
//! let mut tensors = vec![
//!     ("tok_embeddings.weight".to_string(), vec![32000, 4096]),
//!     ("norm.weight".to_string(), vec![4096]),
//!     ("output.weight".to_string(), vec![32000, 4096]),
//! ];
//! for i in 0..32 {
//!     tensors.push((format!("layers.{i}.attention.wv.weight"), vec![4096, 4096]));
//!     tensors.push((format!("layers.{i}.feed_forward.w2.weight"), vec![4096, 11008]));
//! }
//! let plan = r.plan(tensors, ModelShape::new(32, 32, 32)).unwrap();
//! let ty = |n: &str| plan.get(n).unwrap().dtype;
//! assert_eq!(ty("output.weight"), DType::Q6K);
//! assert_eq!(ty("tok_embeddings.weight"), DType::Q4K);
//! assert_eq!(ty("layers.0.feed_forward.w2.weight"), DType::Q6K); // use_more_bits layer
//! assert_eq!(ty("layers.5.feed_forward.w2.weight"), DType::Q4K);
//! assert_eq!(ty("norm.weight"), DType::F32);
//! assert!(Recipe::parse("q4km").unwrap_err().to_string().contains("did you mean `q4_k_m`?"));
//! ```
//!
//! # The rules (llama.cpp's `llama_tensor_get_type`, llama architecture, no experts)
//!
//! Tensors are matched by their GGUF names ([`gguf_name`]: `blk.N.attn_v.weight`, …) and visited
//! in llama.cpp's order (whole-model tensors first, then layer by layer, by name within a layer),
//! because two rules count tensors as they go. For each tensor, the first rule that applies:
//! 1. 1-D tensors and norms are not quantized: they stay f32.
//! 2. `--token-embedding-type` for `token_embd`, `--output-tensor-type` for `output`: that type
//!    exactly. llama-quantize applies no fallback here (it aborts on a row the type does not
//!    divide); [`Recipe::plan`] returns [`RecipeError::DoesNotFit`] instead.
//! 3. f16 / bf16 / f32 recipes: every matrix gets that type (`--tensor-type` and `--pure` do
//!    nothing, and with tied embeddings `--output-tensor-type` does not reach `token_embd`).
//! 4. The first `--tensor-type` regex found in the GGUF name (first match wins, not last).
//! 5. `--pure`: the recipe's base type. Otherwise the mixture, below.
//! 6. Fallback when the row length is not a multiple of the type's block: iq4_xs → iq4_nl,
//!    q2_k / q3_k → q4_0, q4_k → q5_0, q5_k → q5_1, q6_k → q8_0; when that (or a 32-block type
//!    asked for directly) does not divide the row either → f16. (This is the vendored
//!    llama.cpp's table; older ones sent q2_k and q3_k to iq4_nl.)
//!
//! The mixture. `output` — and `token_embd` when the embeddings are tied (there is no
//! `output.weight`) — gets `--output-tensor-type` if given, else q8_0 when its row is not a
//! multiple of the base type's block, else q6_k (q8_0 stays q8_0). `attn_v` and `ffn_down` are
//! counted: `i` is the number of earlier tensors of the same role that went through the mixture
//! (the layer index, unless `--tensor-type` took some), `n_v` the number of `attn_v` tensors, `n`
//! the number of layers; `more(i, m)` is [`use_more_bits`]; `gqa = n_head / n_head_kv`.
//!
//! | recipe | attn_v | ffn_down | attn_output |
//! |---|---|---|---|
//! | q2_k | q4_k if gqa ≥ 4 else q3_k | q3_k | q3_k |
//! | q3_k_m | q5_k if i < 2 else q4_k | q5_k if i < n/16 else q4_k | q4_k |
//! | q3_k_l | q5_k | q5_k | q5_k |
//! | q4_k_s | q5_k if i < 4 | q5_k if i < n/8 | |
//! | q4_k_m, q5_k_m | q6_k if more(i, n_v) | q6_k if more(i, n) | |
//! | iq4_nl, iq4_xs | q5_k if gqa ≥ 4 | q5_k if i < n/8 and no imatrix | |
//! | q4_0, q5_0 | | q4_1 / q5_1 if i < n/8 and an imatrix | |
//!
//! Empty cells keep the base type, as do `attn_q`, `attn_k`, `ffn_gate`, `ffn_up` and an untied
//! `token_embd`. On a 70B model (80 layers, n_head ≠ n_head_kv) a q3_k or q4_k `attn_v` becomes
//! q5_k. q3_k_s, q4_1, q5_1, q5_k_s, q6_k and q8_0 have no mixture beyond the output rule.

use std::str::FromStr;

use llamapack_format::DType;
use regex::Regex;
use serde::Serialize;

mod names;
mod plan;
mod table;

pub use names::{Role, gguf_name, meta_name, meta_names};
pub use plan::{Choice, Fallback, Plan, Rule, TensorPlan};
pub use table::{ALIASES, Kind, RECIPE_NAMES, RECIPES, RecipeInfo, UNSUPPORTED};

/// What can be wrong with a recipe, an option or a plan.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// The name is none of [`RECIPE_NAMES`], [`ALIASES`], their upper-case forms or ftype ids.
    #[error("unknown recipe `{name}`{hint} (expected one of {list})",
        hint = .suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        list = RECIPE_NAMES.join(", "))]
    UnknownRecipe {
        /// The name as given.
        name: String,
        /// The closest known name, for a likely misspelling.
        suggestion: Option<&'static str>,
    },
    /// One of llama-quantize's [`UNSUPPORTED`] file types.
    #[error("`{name}`: llama-quantize's {llama_name} needs formats llamapack does not have \
        (expected one of {list})", list = RECIPE_NAMES.join(", "))]
    Unsupported {
        /// The name as given.
        name: String,
        /// llama-quantize's name for it.
        llama_name: &'static str,
    },
    /// A `--tensor-type REGEX=TYPE` argument that cannot be used.
    #[error("--tensor-type `{arg}`: {reason}")]
    BadTensorType {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An activation-only type (q8_k, q8_1) was asked for a tensor.
    #[error("{dtype} cannot be stored in a model file")]
    NotStorable {
        /// The type.
        dtype: DType,
    },
    /// `--output-type` / `--embedding-type` names a type whose block does not divide the row;
    /// llama-quantize aborts on this (`tensor row size not divisible by block size`).
    #[error(
        "`{tensor}`: {option} {dtype} needs rows that are a multiple of {}, not {row_len}",
        dtype.block_len()
    )]
    DoesNotFit {
        /// The tensor (our name).
        tensor: String,
        /// `--output-type` or `--embedding-type`.
        option: &'static str,
        /// The type asked for.
        dtype: DType,
        /// The tensor's row length.
        row_len: u64,
    },
    /// The tensor list names a tensor twice.
    #[error("tensor `{0}` is listed twice")]
    DuplicateTensor(String),
}

/// One `--tensor-type REGEX=TYPE`: tensors whose GGUF name contains a match of the regex get
/// the type (before the fallback for rows the type does not divide).
#[derive(Clone, Debug, Serialize)]
pub struct TensorTypeOverride {
    pattern: String,
    dtype: DType,
    #[serde(skip)]
    regex: Regex,
}

impl TensorTypeOverride {
    /// An override for the tensors whose GGUF name contains a match of `pattern` (a `regex`
    /// crate regex, taken as is; for plain names and classes this is what llama.cpp's
    /// ECMAScript `std::regex_search` matches).
    pub fn new(pattern: &str, dtype: DType) -> Result<Self, RecipeError> {
        let bad = |reason: String| RecipeError::BadTensorType {
            arg: format!("{pattern}={dtype}"),
            reason,
        };
        if !dtype.is_storable() {
            return Err(bad(format!("{dtype} cannot be stored in a model file")));
        }
        let regex = Regex::new(pattern).map_err(|e| bad(e.to_string()))?;
        Ok(TensorTypeOverride {
            pattern: pattern.to_owned(),
            dtype,
            regex,
        })
    }

    /// Parses llama-quantize's `--tensor-type` argument `REGEX=TYPE`: split at the first `=`,
    /// the regex lower-cased (as llama-quantize does), the type case-insensitive (`q4_K`).
    pub fn parse(arg: &str) -> Result<Self, RecipeError> {
        let bad = |reason: &str| RecipeError::BadTensorType {
            arg: arg.to_owned(),
            reason: reason.to_owned(),
        };
        let (pattern, ty) = arg
            .split_once('=')
            .ok_or_else(|| bad("expected REGEX=TYPE"))?;
        if pattern.is_empty() {
            return Err(bad("missing tensor name"));
        }
        if ty.is_empty() {
            return Err(bad("missing quantization type"));
        }
        let dtype = DType::from_name(ty).ok_or_else(|| {
            let names: Vec<&str> = DType::storable().map(DType::name).collect();
            bad(&format!(
                "unknown type `{ty}`{} (expected one of {})",
                llamapack_format::suggest::hint(ty, names.iter().copied()),
                names.join(", ")
            ))
        })?;
        TensorTypeOverride::new(&pattern.to_ascii_lowercase(), dtype).map_err(|e| match e {
            RecipeError::BadTensorType { reason, .. } => bad(&reason),
            e => e,
        })
    }

    /// The regex.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The type it assigns.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Whether the regex matches somewhere in `gguf_name`.
    pub fn matches(&self, gguf_name: &str) -> bool {
        self.regex.is_match(gguf_name)
    }
}

impl PartialEq for TensorTypeOverride {
    fn eq(&self, other: &Self) -> bool {
        (&self.pattern, self.dtype) == (&other.pattern, other.dtype)
    }
}

impl Eq for TensorTypeOverride {}

impl FromStr for TensorTypeOverride {
    type Err = RecipeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TensorTypeOverride::parse(s)
    }
}

/// A recipe plus llama-quantize's per-run options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recipe {
    /// The recipe's canonical name (`q4_k_m`, also when parsed from `Q4_K` or `15`).
    pub name: String,
    /// The recipe.
    pub kind: Kind,
    /// `--output-tensor-type`: the type of `output.weight` (and of `tok_embeddings.weight`
    /// when tied, for quantized recipes).
    pub output_type: Option<DType>,
    /// `--token-embedding-type`: the type of `tok_embeddings.weight` (wins over
    /// `output_type` when tied).
    pub embedding_type: Option<DType>,
    /// `--tensor-type` overrides, in command-line order; the first match wins.
    pub tensor_types: Vec<TensorTypeOverride>,
    /// `--pure`: no mixture, every matrix the base type (overrides and fallbacks still apply).
    pub pure: bool,
    /// An importance matrix is given (changes ffn_down of q4_0, q5_0, iq4_nl, iq4_xs).
    pub has_imatrix: bool,
    /// The model ties its output to the embeddings: `tok_embeddings.weight` *is* the output
    /// matrix and gets the output's rules. [`Recipe::plan`] also infers it, as llama.cpp does,
    /// from a tensor list without `output.weight`.
    pub tied_output: bool,
}

impl Recipe {
    /// `kind` with no options.
    pub fn new(kind: Kind) -> Recipe {
        Recipe {
            name: kind.name().to_owned(),
            kind,
            output_type: None,
            embedding_type: None,
            tensor_types: Vec::new(),
            pure: false,
            has_imatrix: false,
            tied_output: false,
        }
    }

    /// Parses a recipe name (see [`Kind::parse`]) into a recipe with no options.
    pub fn parse(name: &str) -> Result<Recipe, RecipeError> {
        Kind::parse(name).map(Recipe::new)
    }

    /// The recipe's row of [`RECIPES`].
    pub fn info(&self) -> &'static RecipeInfo {
        self.kind.info()
    }

    /// The type of every tensor of a model, in the order given. `tensors` are (name, shape)
    /// pairs, outermost dimension first (the last is the row); names are Meta's
    /// (`layers.3.attention.wv.weight`) or GGUF's (`blk.3.attn_v.weight`).
    pub fn plan<I, N, S>(&self, tensors: I, model: ModelShape) -> Result<Plan, RecipeError>
    where
        I: IntoIterator<Item = (N, S)>,
        N: AsRef<str>,
        S: AsRef<[u64]>,
    {
        self.check_types()?;
        let entries: Vec<Entry> = tensors
            .into_iter()
            .map(|(n, s)| Entry::new(n.as_ref(), s.as_ref()))
            .collect();
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| entries[a].sort_key().cmp(&entries[b].sort_key()));
        if let Some(w) = order
            .windows(2)
            .find(|w| entries[w[0]].gguf == entries[w[1]].gguf)
        {
            return Err(RecipeError::DuplicateTensor(entries[w[1]].name.clone()));
        }
        let tied = self.tied_output || !entries.iter().any(|e| e.role == Role::Output);
        let n_attn_v = entries.iter().filter(|e| e.role == Role::AttnV).count() as u32;
        let mut ctx = Counts {
            model,
            tied,
            n_attn_v,
            i_attn_v: 0,
            i_ffn_down: 0,
        };
        let mut planned: Vec<Option<TensorPlan>> = vec![None; entries.len()];
        for i in order {
            let p = self.decide(&entries[i], &ctx)?;
            if p.rule == Rule::Mixture {
                match p.role {
                    Role::AttnV => ctx.i_attn_v += 1,
                    Role::FfnDown => ctx.i_ffn_down += 1,
                    _ => {}
                }
            }
            planned[i] = Some(p);
        }
        Ok(Plan {
            tensors: planned
                .into_iter()
                .map(|p| p.expect("every tensor"))
                .collect(),
            tied_output: tied,
        })
    }

    /// The type of one tensor, without the rest of the model: the layer index stands in for
    /// llama.cpp's counters and the model is taken to have no grouped-query attention
    /// (n_head = n_head_kv) and not to be a 70B. Exact for dense models without GQA and without
    /// `--tensor-type`s that take some `attn_v` / `ffn_down`; use [`Recipe::plan`] otherwise.
    /// An output / embedding type that does not divide the row falls back like the others.
    pub fn choose(&self, name: &str, shape: &[u64], n_layers: u32) -> Choice {
        let e = Entry::new(name, shape);
        let layer = e.layer.map_or(0, |l| l.max(0) as u32);
        let ctx = Counts {
            model: ModelShape::new(n_layers, 1, 1),
            tied: self.tied_output,
            n_attn_v: n_layers,
            i_attn_v: layer,
            i_ffn_down: layer,
        };
        match self.check_types().and_then(|()| self.decide(&e, &ctx)) {
            Ok(p) => p.choice(),
            Err(err) => {
                let wanted = match err {
                    RecipeError::DoesNotFit { dtype, .. } => dtype,
                    _ => DType::F16,
                };
                let row = shape.last().copied().unwrap_or(0);
                let (dtype, _) = fallback(wanted, row);
                Choice {
                    dtype,
                    fallback: Some(format!("{err}; using {dtype}")),
                }
            }
        }
    }

    /// Rejects activation-only output / embedding types.
    fn check_types(&self) -> Result<(), RecipeError> {
        let mut types = self.output_type.iter().chain(&self.embedding_type);
        match types.find(|d| !d.is_storable()) {
            Some(&dtype) => Err(RecipeError::NotStorable { dtype }),
            None => Ok(()),
        }
    }

    fn decide(&self, e: &Entry, c: &Counts) -> Result<TensorPlan, RecipeError> {
        let plan = |rule, wanted, (dtype, fallback)| TensorPlan {
            name: e.name.clone(),
            gguf_name: e.gguf.clone(),
            shape: e.shape.clone(),
            role: e.role,
            rule,
            wanted,
            dtype,
            fallback,
        };
        let row = e.shape.last().copied().unwrap_or(1);
        if e.shape.len() < 2 || !e.gguf.ends_with("weight") || e.gguf.contains("_norm.weight") {
            return Ok(plan(Rule::Kept, DType::F32, (DType::F32, None)));
        }
        let exact = |rule, option, dtype: DType| {
            if row.is_multiple_of(dtype.block_len() as u64) {
                Ok(plan(rule, dtype, (dtype, None)))
            } else {
                let tensor = e.name.clone();
                Err(RecipeError::DoesNotFit {
                    tensor,
                    option,
                    dtype,
                    row_len: row,
                })
            }
        };
        match (e.role, self.embedding_type, self.output_type) {
            (Role::TokenEmbd, Some(t), _) => {
                return exact(Rule::EmbeddingType, "--embedding-type", t);
            }
            (Role::Output, _, Some(t)) => return exact(Rule::OutputType, "--output-type", t),
            _ => {}
        }
        let base = self.kind.base();
        if !base.is_quantized() {
            return Ok(plan(Rule::Float, base, (base, None)));
        }
        let (wanted, rule) =
            if let Some(i) = self.tensor_types.iter().position(|o| o.matches(&e.gguf)) {
                (self.tensor_types[i].dtype, Rule::TensorType(i))
            } else if self.pure {
                (base, Rule::Pure)
            } else if c.tied && e.role == Role::TokenEmbd && self.output_type.is_some() {
                // The tied embeddings get the output type through the mixture (so with fallback).
                (self.mixture(e.role, row, c), Rule::OutputType)
            } else {
                (self.mixture(e.role, row, c), Rule::Mixture)
            };
        Ok(plan(rule, wanted, fallback(wanted, row)))
    }

    /// llama.cpp's `llama_tensor_get_type_impl` for the llama architecture and our kinds.
    fn mixture(&self, role: Role, row: u64, c: &Counts) -> DType {
        use DType as D;
        use Kind as K;
        let base = self.kind.base();
        if role == Role::Output || (c.tied && role == Role::TokenEmbd) {
            return match self.output_type {
                Some(t) => t,
                None if !row.is_multiple_of(base.block_len() as u64) => D::Q8_0,
                None if base == D::Q8_0 => base,
                None => D::Q6K,
            };
        }
        let gqa4 = c.model.gqa() >= 4;
        match role {
            Role::AttnV => {
                let i = c.i_attn_v;
                let t = match self.kind {
                    K::Q2K if gqa4 => D::Q4K,
                    K::Q2K => D::Q3K,
                    K::Q3KM if i < 2 => D::Q5K,
                    K::Q3KM => D::Q4K,
                    K::Q3KL => D::Q5K,
                    K::IQ4NL | K::IQ4XS if gqa4 => D::Q5K,
                    K::Q4KM | K::Q5KM if use_more_bits(i, c.n_attn_v) => D::Q6K,
                    K::Q4KS if i < 4 => D::Q5K,
                    _ => base,
                };
                if c.model.is_70b() && matches!(t, D::Q3K | D::Q4K) {
                    D::Q5K
                } else {
                    t
                }
            }
            Role::FfnDown => {
                let (i, n) = (c.i_ffn_down, c.model.n_layers);
                let imatrix = self.has_imatrix;
                match self.kind {
                    K::Q2K => D::Q3K,
                    K::Q3KM if i < n / 16 => D::Q5K,
                    K::Q3KM => D::Q4K,
                    K::Q3KL => D::Q5K,
                    K::Q4KM | K::Q5KM if use_more_bits(i, n) => D::Q6K,
                    K::IQ4NL | K::IQ4XS if i < n / 8 && !imatrix => D::Q5K,
                    K::Q4KS if i < n / 8 => D::Q5K,
                    K::Q4_0 if imatrix && i < n / 8 => D::Q4_1,
                    K::Q5_0 if imatrix && i < n / 8 => D::Q5_1,
                    _ => base,
                }
            }
            Role::AttnOutput => match self.kind {
                K::Q2K => D::Q3K,
                K::Q3KM => D::Q4K,
                K::Q3KL => D::Q5K,
                _ => base,
            },
            _ => base,
        }
    }
}

impl FromStr for Recipe {
    type Err = RecipeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Recipe::parse(s)
    }
}

/// llama.cpp's fallback for a row that `wanted`'s block does not divide.
fn fallback(wanted: DType, row: u64) -> (DType, Option<Fallback>) {
    let fits = |t: DType| row.is_multiple_of(t.block_len() as u64);
    if fits(wanted) {
        return (wanted, None);
    }
    let tried = match wanted {
        DType::IQ4XS => Some(DType::IQ4NL),
        DType::Q2K | DType::Q3K => Some(DType::Q4_0),
        DType::Q4K => Some(DType::Q5_0),
        DType::Q5K => Some(DType::Q5_1),
        DType::Q6K => Some(DType::Q8_0),
        _ => None,
    };
    let dtype = tried.filter(|&t| fits(t)).unwrap_or(DType::F16);
    let why = Fallback {
        row_len: row,
        wanted,
        tried,
        dtype,
    };
    (dtype, Some(why))
}

/// The shape facts llama.cpp's rules read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ModelShape {
    /// Number of transformer layers.
    pub n_layers: u32,
    /// Query heads.
    pub n_head: u32,
    /// Key/value heads (= `n_head` without grouped-query attention).
    pub n_head_kv: u32,
}

impl ModelShape {
    /// A model of `n_layers` layers with `n_head` query and `n_head_kv` key/value heads.
    pub fn new(n_layers: u32, n_head: u32, n_head_kv: u32) -> ModelShape {
        ModelShape {
            n_layers,
            n_head,
            n_head_kv,
        }
    }

    /// Query heads per key/value head, rounded down (llama.cpp's `n_gqa`; 0 without kv heads).
    pub fn gqa(self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    /// What llama.cpp calls a 70B: 80 layers with grouped-query attention.
    pub fn is_70b(self) -> bool {
        self.n_layers == 80 && self.n_head != self.n_head_kv
    }
}

/// The counters llama.cpp keeps while it walks the tensors.
struct Counts {
    model: ModelShape,
    tied: bool,
    n_attn_v: u32,
    i_attn_v: u32,
    i_ffn_down: u32,
}

/// A tensor of the input list with its GGUF name and role.
struct Entry {
    name: String,
    gguf: String,
    layer: Option<i64>,
    role: Role,
    shape: Vec<u64>,
}

impl Entry {
    fn new(name: &str, shape: &[u64]) -> Entry {
        let gguf = gguf_name(name).unwrap_or_else(|| name.to_owned());
        let layer = gguf.strip_prefix("blk.").and_then(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            rest[..digits].parse().ok()
        });
        Entry {
            name: name.to_owned(),
            role: Role::of(&gguf),
            gguf,
            layer,
            shape: shape.to_vec(),
        }
    }

    /// llama.cpp's tensor order: by layer (none first), then by name.
    fn sort_key(&self) -> (i64, &str) {
        (self.layer.unwrap_or(-1), &self.gguf)
    }
}

/// llama.cpp's rule for the layers that get more bits in the `_M` mixtures.
pub fn use_more_bits(i_layer: u32, n_layers: u32) -> bool {
    let eighth = n_layers / 8;
    i_layer < eighth || i_layer >= 7 * n_layers / 8 || (i_layer - eighth) % 3 == 2
}

/// The layer index of a Meta tensor name (`layers.12.attention.wv.weight` → 12).
pub fn layer_index(name: &str) -> Option<u32> {
    name.strip_prefix("layers.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// llama.cpp's `LLAMA_FTYPE_*` id (`general.file_type`) of a recipe name, if it is one.
pub fn llama_ftype(recipe: &str) -> Option<u32> {
    Kind::parse(recipe).ok().map(Kind::ftype)
}

/// llama.cpp's name (`Q4_K_M`) of a `LLAMA_FTYPE_*` id (`general.file_type`), for the file types
/// of [`RECIPES`] and [`UNSUPPORTED`]; `None` for an id neither lists.
pub fn llama_ftype_name(ftype: u32) -> Option<&'static str> {
    RECIPES
        .iter()
        .find(|r| r.ftype == ftype)
        .map(|r| r.llama_name)
        .or_else(|| UNSUPPORTED.iter().find(|u| u.1 == ftype).map(|u| u.0))
}

/// `Q4_K_M (llama.cpp file type 15)`, or `llama.cpp file type N` for an id without a name.
pub fn llama_ftype_words(ftype: u32) -> String {
    match llama_ftype_name(ftype) {
        Some(n) => format!("{n} (llama.cpp file type {ftype})"),
        None => format!("llama.cpp file type {ftype}"),
    }
}
