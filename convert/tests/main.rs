//! Integration tests of llamapack-convert (one test binary): Meta `.pth` and HF conversion on
//! the fixtures, the pickle and zip readers against hostile inputs, tokenizers, and GGUF interop.
//!
//! GGUF: reader/writer round trips, `.lpk` → GGUF → `.lpk`, hostile inputs, and gguf-py (when
//! installed) as an independent reader of our files; importance-matrix files against
//! llama-imatrix's own.

mod alloc;
mod common;
mod crosscheck;
mod fixture;
#[path = "gguf/common.rs"]
mod gguf_common;
#[path = "gguf/gguf_fixture.rs"]
mod gguf_fixture;
#[path = "gguf/gguf_imatrix.rs"]
mod gguf_imatrix;
#[path = "gguf/gguf_malformed.rs"]
mod gguf_malformed;
#[path = "gguf/gguf_python.rs"]
mod gguf_python;
#[path = "gguf/gguf_roundtrip.rs"]
mod gguf_roundtrip;
#[path = "gguf/gguf_view.rs"]
mod gguf_view;
mod hostile_config;
mod hostile_pickle;
mod meta;
mod pth;
mod tokenizer;
