//! ggml-compatible block quantization kernels (scalar reference, AVX2, AVX-512 VNNI, NEON), recipes and error statistics.
