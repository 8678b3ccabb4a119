//! Integration tests of the runner: tokenizer against sentencepiece, logits against
//! transformers, and the batched/single-token/thread/dtype paths against each other.

mod paths;
mod reference;
mod support;
mod tokenizer;
