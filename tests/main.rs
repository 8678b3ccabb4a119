//! End-to-end tests over the `llamapack` CLI, on fixtures, in temp dirs.

mod common;
mod inspect_verify;
mod pipeline;
mod transformers;
mod gguf_fixture;
