//! What [`Recipe::plan`](super::Recipe::plan) returns.

use std::fmt;

use llamapack_format::DType;
use serde::Serialize;

use super::Role;

/// Which rule chose a tensor's type (before any fallback).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Not quantized (1-D tensors, norms): f32.
    Kept,
    /// An f16 / bf16 / f32 recipe: the recipe's type.
    Float,
    /// The recipe's mixture.
    Mixture,
    /// `--pure`: the recipe's base type.
    Pure,
    /// The `--tensor-type` override of this index in [`Recipe::tensor_types`](super::Recipe::tensor_types).
    TensorType(usize),
    /// `--output-tensor-type`.
    OutputType,
    /// `--token-embedding-type`.
    EmbeddingType,
}

/// Why a tensor did not get the type its rule asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fallback {
    /// The tensor's row length.
    pub row_len: u64,
    /// The type the rule asked for.
    pub wanted: DType,
    /// The 32-block type llama.cpp tries instead (`None`: `wanted` has no smaller block).
    pub tried: Option<DType>,
    /// The type used: `tried`, or f16 when that does not divide the row either.
    pub dtype: DType,
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (row, w) = (self.row_len, self.wanted);
        write!(
            f,
            "row length {row} is not a multiple of {} ({w})",
            w.block_len()
        )?;
        if let Some(t) = self.tried.filter(|&t| t != self.dtype) {
            write!(f, " nor of {} ({t})", t.block_len())?;
        }
        write!(f, "; using {}", self.dtype)
    }
}

/// The plan for one tensor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TensorPlan {
    /// The name as given.
    pub name: String,
    /// llama.cpp's name (the given one when it has no GGUF counterpart).
    pub gguf_name: String,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// What it is to the rules.
    pub role: Role,
    /// The rule that chose `wanted`.
    pub rule: Rule,
    /// The type the rule asked for.
    pub wanted: DType,
    /// The type to store.
    pub dtype: DType,
    /// Set when `dtype` differs from `wanted` because of the row length.
    pub fallback: Option<Fallback>,
}

impl TensorPlan {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Bytes in `dtype`.
    pub fn bytes(&self) -> u64 {
        let row = self.shape.last().copied().unwrap_or(1);
        let rows = self.elements() / row.max(1);
        let per_row = row / self.dtype.block_len() as u64 * self.dtype.block_bytes() as u64;
        rows * per_row
    }

    /// The type and, for a fallback, a message naming the tensor.
    pub fn choice(&self) -> Choice {
        Choice {
            dtype: self.dtype,
            fallback: self.fallback.map(|f| format!("`{}`: {f}", self.name)),
        }
    }
}

/// The type of every tensor of a model ([`Recipe::plan`](super::Recipe::plan)), in the order given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// One entry per input tensor, in input order.
    pub tensors: Vec<TensorPlan>,
    /// Whether `tok_embeddings.weight` was treated as the output matrix.
    pub tied_output: bool,
}

impl Plan {
    /// The plan of the tensor named `name` (ours or GGUF's).
    pub fn get(&self, name: &str) -> Option<&TensorPlan> {
        self.tensors
            .iter()
            .find(|t| t.name == name || t.gguf_name == name)
    }

    /// The tensors that fell back to another type.
    pub fn fallbacks(&self) -> impl Iterator<Item = &TensorPlan> {
        self.tensors.iter().filter(|t| t.fallback.is_some())
    }

    /// Total bytes of the quantized tensors.
    pub fn bytes(&self) -> u64 {
        self.tensors.iter().map(TensorPlan::bytes).sum()
    }

    /// Bits per weight over all tensors, norms included (llama-quantize's BPW).
    pub fn bits_per_weight(&self) -> f64 {
        let n: u64 = self.tensors.iter().map(TensorPlan::elements).sum();
        self.bytes() as f64 * 8.0 / n.max(1) as f64
    }
}

/// The type chosen for one tensor, and why it differs from the recipe's wish, if it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The type to store.
    pub dtype: DType,
    /// Set when the recipe's type could not be used (row length not a whole number of blocks).
    pub fallback: Option<String>,
}
