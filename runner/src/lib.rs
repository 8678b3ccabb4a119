//! Reference Llama 2 forward pass, tokenizer, sampler and accuracy metrics over .lpk files.

pub mod error;
pub mod tokenizer;

pub use error::{Error, Result};
pub use tokenizer::{Decoder, Tokenizer};
