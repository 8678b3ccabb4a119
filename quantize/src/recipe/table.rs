//! The recipe table: llama.cpp's file types, their ids, names and sizes.

use std::fmt;
use std::str::FromStr;

use llamapack_format::DType;
use serde::Serialize;

use super::RecipeError;

/// One of llama.cpp's file types (`LLAMA_FTYPE_MOSTLY_*`): the base rule of a recipe. The
/// details of each are in its [`RecipeInfo`] row of [`RECIPES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `Q4_0`.
    Q4_0,
    /// `Q4_1`.
    Q4_1,
    /// `Q5_0`.
    Q5_0,
    /// `Q5_1`.
    Q5_1,
    /// `Q2_K`.
    Q2K,
    /// `Q3_K_S`.
    Q3KS,
    /// `Q3_K_M` (also `Q3_K`).
    Q3KM,
    /// `Q3_K_L`.
    Q3KL,
    /// `IQ4_NL`.
    IQ4NL,
    /// `IQ4_XS`.
    IQ4XS,
    /// `Q4_K_S`.
    Q4KS,
    /// `Q4_K_M` (also `Q4_K`).
    Q4KM,
    /// `Q5_K_S`.
    Q5KS,
    /// `Q5_K_M` (also `Q5_K`).
    Q5KM,
    /// `Q6_K`.
    Q6K,
    /// `Q8_0`.
    Q8_0,
    /// `F16`.
    F16,
    /// `BF16`.
    BF16,
    /// `F32`.
    F32,
}

/// One row of the recipe table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecipeInfo {
    /// The recipe.
    pub kind: Kind,
    /// Our name (`q4_k_m`): lower case, as on the command line and in reports.
    pub name: &'static str,
    /// llama-quantize's name (`Q4_K_M`).
    pub llama_name: &'static str,
    /// llama.cpp's `LLAMA_FTYPE_*` id (GGUF `general.file_type`).
    pub ftype: u32,
    /// The type of every matrix no rule changes.
    pub base: DType,
    /// Bits per weight of a Llama-2-7B model, as `llama-quantize --dry-run` prints it (all
    /// tensors' bytes × 8 / all elements, norms included; two decimals).
    pub bpw_7b: f64,
    /// What `llama-quantize --help` says about the type (size and perplexity on Llama-3-8B).
    pub llama_help: &'static str,
    /// The mixture in a few words.
    pub description: &'static str,
}

#[allow(clippy::too_many_arguments)]
const fn row(
    kind: Kind,
    name: &'static str,
    llama_name: &'static str,
    ftype: u32,
    base: DType,
    bpw_7b: f64,
    llama_help: &'static str,
    description: &'static str,
) -> RecipeInfo {
    RecipeInfo {
        kind,
        name,
        llama_name,
        ftype,
        base,
        bpw_7b,
        llama_help,
        description,
    }
}

/// The recipes, in llama-quantize's `--help` order and [`Kind`]'s declaration order.
#[rustfmt::skip]
pub const RECIPES: [RecipeInfo; 19] = {
    use DType as D;
    use Kind as K;
    [
        row(K::Q4_0, "q4_0", "Q4_0", 2, D::Q4_0, 4.54, "4.34G, +0.4685 ppl @ Llama-3-8B",
            "q4_0; output q6_k; with an imatrix, ffn_down of the first n/8 layers q4_1"),
        row(K::Q4_1, "q4_1", "Q4_1", 3, D::Q4_1, 5.03, "4.78G, +0.4511 ppl @ Llama-3-8B",
            "q4_1; output q6_k"),
        row(K::Q5_0, "q5_0", "Q5_0", 8, D::Q5_0, 5.52, "5.21G, +0.1316 ppl @ Llama-3-8B",
            "q5_0; output q6_k; with an imatrix, ffn_down of the first n/8 layers q5_1"),
        row(K::Q5_1, "q5_1", "Q5_1", 9, D::Q5_1, 6.01, "5.65G, +0.1062 ppl @ Llama-3-8B",
            "q5_1; output q6_k"),
        row(K::Q2K, "q2_k", "Q2_K", 10, D::Q2K, 3.01, "2.96G, +3.5199 ppl @ Llama-3-8B",
            "q2_k; attn_v q3_k (q4_k with GQA ≥ 4); attn_output, ffn_down q3_k; output q6_k"),
        row(K::Q3KS, "q3_k_s", "Q3_K_S", 11, D::Q3K, 3.50, "3.41G, +1.6321 ppl @ Llama-3-8B",
            "q3_k; output q6_k"),
        row(K::Q3KM, "q3_k_m", "Q3_K_M", 12, D::Q3K, 3.91, "3.74G, +0.6569 ppl @ Llama-3-8B",
            "q3_k; attn_v q5_k in 2 layers then q4_k; ffn_down q5_k in n/16 layers then q4_k; \
             attn_output q4_k; output q6_k"),
        row(K::Q3KL, "q3_k_l", "Q3_K_L", 13, D::Q3K, 4.27, "4.03G, +0.5562 ppl @ Llama-3-8B",
            "q3_k; attn_v, attn_output, ffn_down q5_k; output q6_k"),
        row(K::IQ4NL, "iq4_nl", "IQ4_NL", 25, D::IQ4NL, 4.57, "4.50 bpw non-linear quantization",
            "iq4_nl; attn_v q5_k with GQA ≥ 4; without an imatrix, ffn_down of the first n/8 \
             layers q5_k; output q6_k"),
        row(K::IQ4XS, "iq4_xs", "IQ4_XS", 30, D::IQ4XS, 4.33, "4.25 bpw non-linear quantization",
            "iq4_xs; attn_v q5_k with GQA ≥ 4; without an imatrix, ffn_down of the first n/8 \
             layers q5_k; output q6_k"),
        row(K::Q4KS, "q4_k_s", "Q4_K_S", 14, D::Q4K, 4.58, "4.37G, +0.2689 ppl @ Llama-3-8B",
            "q4_k; attn_v q5_k in 4 layers; ffn_down q5_k in n/8 layers; output q6_k"),
        row(K::Q4KM, "q4_k_m", "Q4_K_M", 15, D::Q4K, 4.84, "4.58G, +0.1754 ppl @ Llama-3-8B",
            "q4_k; attn_v and ffn_down q6_k on the use_more_bits layers; output q6_k"),
        row(K::Q5KS, "q5_k_s", "Q5_K_S", 16, D::Q5K, 5.52, "5.21G, +0.1049 ppl @ Llama-3-8B",
            "q5_k; output q6_k"),
        row(K::Q5KM, "q5_k_m", "Q5_K_M", 17, D::Q5K, 5.68, "5.33G, +0.0569 ppl @ Llama-3-8B",
            "q5_k; attn_v and ffn_down q6_k on the use_more_bits layers; output q6_k"),
        row(K::Q6K, "q6_k", "Q6_K", 18, D::Q6K, 6.56, "6.14G, +0.0217 ppl @ Llama-3-8B",
            "q6_k everywhere"),
        row(K::Q8_0, "q8_0", "Q8_0", 7, D::Q8_0, 8.50, "7.96G, +0.0026 ppl @ Llama-3-8B",
            "q8_0 everywhere"),
        row(K::F16, "f16", "F16", 1, D::F16, 16.00, "14.00G, +0.0020 ppl @ Mistral-7B",
            "every matrix f16"),
        row(K::BF16, "bf16", "BF16", 32, D::BF16, 16.00, "14.00G, -0.0050 ppl @ Mistral-7B",
            "every matrix bf16"),
        row(K::F32, "f32", "F32", 0, D::F32, 32.00, "26.00G              @ 7B",
            "every matrix f32"),
    ]
};

/// Names accepted by [`Recipe::parse`](super::Recipe::parse) (besides [`ALIASES`], upper case and ftype ids), in
/// [`RECIPES`] order.
pub const RECIPE_NAMES: [&str; 19] = [
    "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "iq4_nl", "iq4_xs",
    "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "q8_0", "f16", "bf16", "f32",
];

/// llama-quantize's aliases: `Q3_K`, `Q4_K` and `Q5_K` are its `_M` mixtures.
pub const ALIASES: [(&str, Kind); 3] = [
    ("q3_k", Kind::Q3KM),
    ("q4_k", Kind::Q4KM),
    ("q5_k", Kind::Q5KM),
];

/// llama-quantize's file types that need formats llamapack does not have (name, ftype id);
/// [`Kind::parse`] names them in its error rather than suggesting a look-alike.
#[rustfmt::skip]
pub const UNSUPPORTED: [(&str, u32); 17] = [
    ("Q1_0", 40), ("Q2_0", 41), ("MXFP4_MOE", 38), ("IQ2_XXS", 19), ("IQ2_XS", 20),
    ("IQ2_S", 28), ("IQ2_M", 29), ("IQ1_S", 24), ("IQ1_M", 31), ("TQ1_0", 36), ("TQ2_0", 37),
    ("Q2_K_S", 21), ("IQ3_XXS", 23), ("IQ3_S", 26), ("IQ3_M", 27), ("IQ3_XS", 22), ("COPY", 0),
];

impl Kind {
    /// Every recipe, in table order.
    pub fn all() -> impl Iterator<Item = Kind> {
        RECIPES.iter().map(|r| r.kind)
    }

    /// This recipe's row of [`RECIPES`].
    pub fn info(self) -> &'static RecipeInfo {
        // Indexed by declaration order; checked by a test.
        &RECIPES[self as usize]
    }

    /// Lower-case name (`q4_k_m`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The type of every matrix no rule changes.
    pub fn base(self) -> DType {
        self.info().base
    }

    /// llama.cpp's `LLAMA_FTYPE_*` id.
    pub fn ftype(self) -> u32 {
        self.info().ftype
    }

    /// Parses a recipe name as llama-quantize does: case-insensitive, its aliases (`Q4_K` is
    /// `Q4_K_M`) and its numeric ftype ids (`15`). A close misspelling gets a suggestion.
    pub fn parse(name: &str) -> Result<Kind, RecipeError> {
        let lower = name.to_ascii_lowercase();
        let by_id = |id: u32| RECIPES.iter().find(|r| r.ftype == id);
        RECIPES
            .iter()
            .find(|r| r.name == lower)
            .map(|r| r.kind)
            .or_else(|| ALIASES.iter().find(|a| a.0 == lower).map(|a| a.1))
            .or_else(|| lower.parse().ok().and_then(by_id).map(|r| r.kind))
            .ok_or_else(|| {
                let id: Option<u32> = lower.parse().ok();
                match UNSUPPORTED
                    .iter()
                    .find(|u| u.0.eq_ignore_ascii_case(&lower) || Some(u.1) == id)
                {
                    Some(u) => RecipeError::Unsupported {
                        name: name.to_owned(),
                        llama_name: u.0,
                    },
                    None => RecipeError::UnknownRecipe {
                        name: name.to_owned(),
                        suggestion: suggest(&lower),
                    },
                }
            })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = RecipeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::parse(s)
    }
}

/// The closest recipe name to a misspelt `lower` ([`llamapack_format::suggest::closest`]); an
/// alias that matches is named by the recipe it stands for.
fn suggest(lower: &str) -> Option<&'static str> {
    let names = RECIPES
        .iter()
        .map(|r| r.name)
        .chain(ALIASES.iter().map(|a| a.0));
    let found = llamapack_format::suggest::closest(lower, names)?;
    Some(
        ALIASES
            .iter()
            .find(|a| a.0 == found)
            .map_or(found, |a| a.1.name()),
    )
}
