//! AVX-512 (F, BW, VL, VNNI) kernels: the quant dots (`vpdpbusd` for the 32-blocks, `vpmaddubsw` +
//! `vpdpwssd` for the k-quants, two blocks or 64 values per 512-bit register) and the float dots.
//! The k-quant encoders run their searches on 16 lanes; the other encoders and the decoders
//! are AVX2's (bound by memory, not arithmetic).
//!
//! Like AVX2, the k-quant dots return the reference's bits.

mod block32;
mod float;
mod iq4;
mod kencode;
mod kquants;
mod legacy;

pub(crate) use block32::*;
pub(crate) use float::*;
pub(crate) use iq4::*;
pub(crate) use kencode::*;
pub(crate) use kquants::*;
pub(crate) use legacy::*;
