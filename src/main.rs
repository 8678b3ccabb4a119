//! The `llamapack` command line.
fn main() {}
