//! Reference Llama 2 forward pass, tokenizer, sampler and accuracy metrics over .lpk files.
//!
//! Shaped like llama2.c's `run.c`: a [`Config`], the [`Weights`] borrowed from the memory-mapped
//! `.lpk` (quantized matrices are never copied), a [`State`] that owns every buffer (allocated
//! once, including the KV cache), and one readable forward pass whose semantics are those of
//! Meta's `model.py`. Matmuls run on the kernels of `llamapack-quantize`, activations converted
//! to each weight's dot format as ggml does, split over a dedicated rayon pool.
//!
//! - [`Model::load`] / [`Model::load_with_threads`] borrow a model from an [`Lpk`](llamapack_format::Lpk).
//! - [`Model::forward_batch`] runs a prompt as matrix × matrix; [`Model::forward`] one token
//!   as matrix × vector; [`Model::prefill`] and [`Model::logits_all`] chunk longer inputs.
//! - [`Model::generate`] samples with a [`Sampler`] (greedy or temperature + top-p, seeded).
//! - [`imatrix::Collector`], put in [`State::imatrix`], collects an importance matrix (Σx² per
//!   input column of every weight matrix) as the forward pass runs, as `llama-imatrix` does.
//! - [`Tokenizer`] is `SentencePiece` BPE (ids identical to `sentencepiece`'s) or GPT-2
//!   byte-level BPE ([`bpe`], ids identical to Hugging Face `tokenizers`');
//!   [`chat_prompt`] builds Llama 2 Chat prompts.
//! - [`accuracy`] compares logits as llama.cpp does (KL divergence, top-1, perplexity) from
//!   [`metrics`]' small functions; [`npy`] reads and writes
//!   `.npy` arrays.
//!
//! Measured on the tiny fixture (`fixtures/tiny`, every position of the four reference prompts,
//! `tests/reference.rs`): f32 weights match transformers' float32 logits to
//! max|Δ| ≤ 1.2e-6 · max|logit|; f16 weights match transformers' f16 run to 1.8e-3 · max|logit|
//! (transformers keeps f16 activations, we keep f32); greedy generation reproduces transformers'
//! 32 tokens on every prompt; the batched and one-token paths give bit-identical logits.
//!
//! ```
//! use llamapack_format::{testing, Lpk};
//! use llamapack_runner::{Logits, Model, Sampler, Tokenizer, testing::random_model};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.lpk");
//! random_model(&path, &testing::tiny_config(), llamapack_format::DType::F32, 1)?;
//! let lpk = Lpk::open(&path)?;
//! let model = Model::load_with_threads(&lpk, 2)?;
//! let tok = Tokenizer::from_data(lpk.tokenizer())?;
//!
//! let prompt = tok.encode("abc", true)?;
//! let mut state = model.new_state(8);
//! // Every position's logits of the prompt, as one batch.
//! let all = model.forward_batch(&mut state, &prompt, 0, Logits::All)?;
//! assert_eq!(all.len(), prompt.len() * model.config.vocab_size);
//!
//! // Greedy generation of 5 tokens from a fresh state.
//! let mut state = model.new_state(8);
//! let ids = model.generate(&mut state, &prompt, 5, &mut Sampler::greedy(), |_| true)?;
//! let _text = tok.decode(&ids)?;
//! assert_eq!(ids.len(), 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod accuracy;
pub mod aligned;
pub mod bpe;
pub mod error;
pub mod forward;
pub mod generate;
pub mod imatrix;
mod matmul;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod ops;
pub mod sampler;
pub mod state;
pub mod testing;
mod threads;
pub mod tokenizer;

pub use error::{Error, Result};
pub use forward::{Logits, Model};
pub use generate::chat_prompt;
pub use llamapack_quantize::Level;
pub use model::{Config, LayerWeights, Matrix, Weights};
pub use sampler::Sampler;
pub use state::State;
pub use threads::default_threads;
pub use tokenizer::{Decoder, Tokenizer};
