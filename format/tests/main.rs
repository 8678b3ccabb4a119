//! Integration tests of llamapack-format (one test binary): the round-trip property test and
//! one test per lie a hostile `.lpk` can tell.

mod contradictions;
mod foreign;
mod hostile;
mod roundtrip;
mod wrong_files;
