//! What the benches and examples of this crate share (included with `mod common;` by the
//! benches and `#[path = "../benches/common/mod.rs"] mod common;` by the examples).

/// `n` pseudo-random values in [-0.5, 0.5) from `seed` (xorshift32): the same data in every
/// bench and example, so their figures compare.
pub fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}
