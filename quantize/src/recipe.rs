//! Recipes: which tensor gets which type, as a value instead of scattered `if`s.
//!
//! ```
//! use llamapack_format::DType;
//! use llamapack_quantize::recipe::Recipe;
//!
//! let r = Recipe::parse("q4_k_m").unwrap();
//! let n_layers = 32;
//! assert_eq!(r.choose("output.weight", &[32000, 4096], n_layers).dtype, DType::Q6K);
//! assert_eq!(r.choose("layers.0.feed_forward.w2.weight", &[4096, 11008], n_layers).dtype, DType::Q6K);
//! assert_eq!(r.choose("layers.5.feed_forward.w2.weight", &[4096, 11008], n_layers).dtype, DType::Q4K);
//! assert_eq!(r.choose("layers.5.attention_norm.weight", &[4096], n_layers).dtype, DType::F32);
//! ```

use llamapack_format::DType;
use serde::Serialize;

/// A named quantization recipe plus optional overrides for the output and embedding tensors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recipe {
    /// The recipe's name as given on the command line (`q4_k_m`).
    pub name: String,
    /// What every 2-D weight gets.
    pub kind: Kind,
    /// Type of `output.weight`, overriding the recipe.
    pub output_type: Option<DType>,
    /// Type of `tok_embeddings.weight`, overriding the recipe.
    pub embedding_type: Option<DType>,
    /// The model ties its output to the embeddings: `tok_embeddings.weight` *is* the output
    /// matrix, so it gets the output's rules (llama.cpp does the same).
    pub tied_output: bool,
}

/// The base rule of a recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Every 2-D weight gets this type (f16, bf16, f32, q8_0, q4_0, q4_k, q6_k).
    Uniform(DType),
    /// llama.cpp's `Q4_K_M` mixture for llama models: `output.weight` → q6_k; `wv` and `w2` →
    /// q6_k on the `use_more_bits` layers; every other 2-D weight → q4_k.
    Q4KM,
}

/// The type chosen for one tensor, and why it differs from the recipe's wish, if it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The type to store.
    pub dtype: DType,
    /// Set when the recipe's type could not be used (row length not a whole number of blocks).
    pub fallback: Option<String>,
}

/// Names accepted by [`Recipe::parse`].
pub const RECIPE_NAMES: [&str; 8] = [
    "q8_0", "q4_0", "q4_k", "q6_k", "q4_k_m", "f16", "bf16", "f32",
];

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

impl Recipe {
    /// Parses a recipe name (`q4_k_m`, `q8_0`, …); `None` if unknown.
    pub fn parse(name: &str) -> Option<Recipe> {
        let lower = name.to_ascii_lowercase();
        let kind = if lower == "q4_k_m" {
            Kind::Q4KM
        } else {
            let d = DType::from_name(&lower)?;
            if !d.info().storable {
                return None;
            }
            Kind::Uniform(d)
        };
        Some(Recipe {
            name: lower,
            kind,
            output_type: None,
            embedding_type: None,
            tied_output: false,
        })
    }

    /// The type for tensor `name` of `shape` in a model of `n_layers` layers.
    ///
    /// 1-D tensors (norms) stay f32. A row length that is not a whole number of blocks falls
    /// back to the narrowest wider type that fits (q8_0 for 256-blocks when 32 divides the
    /// row, else f16), with the reason in [`Choice::fallback`].
    pub fn choose(&self, name: &str, shape: &[u64], n_layers: u32) -> Choice {
        if shape.len() < 2 {
            return Choice {
                dtype: DType::F32,
                fallback: None,
            };
        }
        let is_output =
            name == "output.weight" || (self.tied_output && name == "tok_embeddings.weight");
        let overridden = if is_output {
            self.output_type.or(if name == "tok_embeddings.weight" {
                self.embedding_type
            } else {
                None
            })
        } else if name == "tok_embeddings.weight" {
            self.embedding_type
        } else {
            None
        };
        let wanted = overridden.unwrap_or(match self.kind {
            Kind::Uniform(d) => d,
            Kind::Q4KM if is_output => DType::Q6K,
            Kind::Q4KM => q4_k_m(name, n_layers),
        });
        let row = shape[shape.len() - 1] as usize;
        if row.is_multiple_of(wanted.block_len()) {
            return Choice {
                dtype: wanted,
                fallback: None,
            };
        }
        let dtype = if row.is_multiple_of(DType::Q8_0.block_len()) {
            DType::Q8_0
        } else {
            DType::F16
        };
        Choice {
            dtype,
            fallback: Some(format!(
                "`{name}`: row length {row} is not a multiple of {} ({wanted} block); using {dtype}",
                wanted.block_len()
            )),
        }
    }
}

fn q4_k_m(name: &str, n_layers: u32) -> DType {
    let more_bits_tensor =
        name.ends_with(".attention.wv.weight") || name.ends_with(".feed_forward.w2.weight");
    match layer_index(name) {
        Some(i) if more_bits_tensor && use_more_bits(i, n_layers) => DType::Q6K,
        _ => DType::Q4K,
    }
}

/// llama.cpp's `LLAMA_FTYPE_*` id (`general.file_type`) of a recipe name.
pub fn llama_ftype(recipe: &str) -> Option<u32> {
    match recipe {
        "q4_k_m" => Some(15),
        other => DType::from_name(other).and_then(|d| d.info().llama_ftype),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_more_bits_matches_llama_cpp_for_32_layers() {
        // llama.cpp Q4_K_M on a 32-layer model: layers 0-3, 28-31 and every third from 6.
        let picked: Vec<u32> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(
            picked,
            vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
        // 4 layers (the fixture): n/8 = 0, 7n/8 = 3.
        let picked: Vec<u32> = (0..4).filter(|&i| use_more_bits(i, 4)).collect();
        assert_eq!(picked, vec![2, 3]);
    }

    #[test]
    fn tied_embeddings_are_the_output() {
        let mut r = Recipe::parse("q4_k_m").unwrap();
        let emb = [49152u64, 1536];
        assert_eq!(
            r.choose("tok_embeddings.weight", &emb, 30).dtype,
            DType::Q4K
        );
        r.tied_output = true;
        assert_eq!(
            r.choose("tok_embeddings.weight", &emb, 30).dtype,
            DType::Q6K
        );
        let mut u = Recipe::parse("q4_0").unwrap();
        u.tied_output = true;
        assert_eq!(
            u.choose("tok_embeddings.weight", &emb, 30).dtype,
            DType::Q4_0
        );
        u.output_type = Some(DType::Q8_0);
        assert_eq!(
            u.choose("tok_embeddings.weight", &emb, 30).dtype,
            DType::Q8_0
        );
        assert_eq!(
            u.choose("layers.0.attention.wq.weight", &emb, 30).dtype,
            DType::Q4_0
        );
    }

    #[test]
    fn q4_k_m_mixture() {
        let r = Recipe::parse("Q4_K_M").unwrap();
        let mat = [4096u64, 4096];
        assert_eq!(
            r.choose("layers.3.attention.wq.weight", &mat, 32).dtype,
            DType::Q4K
        );
        assert_eq!(
            r.choose("layers.3.attention.wv.weight", &mat, 32).dtype,
            DType::Q6K
        );
        assert_eq!(
            r.choose("layers.4.attention.wv.weight", &mat, 32).dtype,
            DType::Q4K
        );
        assert_eq!(
            r.choose("tok_embeddings.weight", &[32000, 4096], 32).dtype,
            DType::Q4K
        );
        assert_eq!(
            r.choose("output.weight", &[32000, 4096], 32).dtype,
            DType::Q6K
        );
        assert_eq!(r.choose("norm.weight", &[4096], 32).dtype, DType::F32);
    }

    #[test]
    fn overrides_and_fallbacks() {
        let mut r = Recipe::parse("q4_0").unwrap();
        r.output_type = Some(DType::Q8_0);
        r.embedding_type = Some(DType::F16);
        assert_eq!(r.choose("output.weight", &[10, 64], 2).dtype, DType::Q8_0);
        assert_eq!(
            r.choose("tok_embeddings.weight", &[10, 64], 2).dtype,
            DType::F16
        );
        let c = r.choose("layers.0.attention.wq.weight", &[8, 48], 2);
        assert_eq!(c.dtype, DType::F16);
        assert!(
            c.fallback
                .unwrap()
                .contains("`layers.0.attention.wq.weight`")
        );
        let k =
            Recipe::parse("q4_k")
                .unwrap()
                .choose("layers.0.feed_forward.w1.weight", &[8, 352], 2);
        assert_eq!(k.dtype, DType::Q8_0);
        assert!(Recipe::parse("q8_k").is_none());
        assert!(Recipe::parse("q5_k").is_none());
    }
}
