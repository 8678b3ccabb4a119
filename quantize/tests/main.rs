//! Integration tests of llamapack-quantize (one test binary): every format of the dtype table
//! against ggml's own bytes (golden), every SIMD level against the scalar reference (levels,
//! multi_dot, iq4, enc32_edges), reference properties (reference), llama.cpp's recipes
//! tensor for tensor (recipe) and the output-error optimizer (optimize).

mod common;
mod enc32_edges;
mod golden;
mod iq4;
mod levels;
mod multi_dot;
mod optimize;
mod recipe;
mod reference;
