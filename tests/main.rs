//! End-to-end tests over the `llamapack` CLI, on fixtures, in temp dirs.

mod budget;
mod common;
mod contradictions;
mod conventions;
mod eval_reference;
mod full_disk;
mod gguf_commands;
mod gguf_fixture;
mod imatrix;
mod inspect_verify;
mod interrupt;
mod llamacpp;
mod outputs;
mod pipeline;
mod transformers;
