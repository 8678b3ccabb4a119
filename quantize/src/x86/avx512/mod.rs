//! AVX-512 kernels (todo).
