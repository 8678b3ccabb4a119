//! End-to-end tests over the `llamapack` CLI, on fixtures, in temp dirs.

mod common;
mod contradictions;
mod gguf_fixture;
mod imatrix;
mod inspect_verify;
mod interrupt;
mod llamacpp;
mod pipeline;
mod transformers;
