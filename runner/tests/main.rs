//! Integration tests of the runner: tokenizer against sentencepiece, logits against
//! transformers, the batched/single-token/thread/dtype paths against each other, and the
//! importance-matrix collector against a direct computation.

mod imatrix;
mod paths;
mod reference;
mod support;
mod tokenizer;
