//! GGUF interop tests: reader/writer round trips, `.lpk` → GGUF → `.lpk`, hostile inputs, and
//! gguf-py (when installed) as an independent reader of our files.

#[path = "gguf/common.rs"]
mod common;
#[path = "gguf/gguf_fixture.rs"]
mod gguf_fixture;
#[path = "gguf/gguf_malformed.rs"]
mod gguf_malformed;
#[path = "gguf/gguf_python.rs"]
mod gguf_python;
#[path = "gguf/gguf_roundtrip.rs"]
mod gguf_roundtrip;
