//! AVX2 + FMA + F16C kernels.
//!
//! Encoders are byte-identical to the scalar references; decoders are exact; the k-quant
//! dots return the reference's bits (same per-block integers and f32 operations); the q8_0,
//! q4_0, q4_1, q5_0, q5_1 and float dots accumulate in vector lanes, so they differ from the
//! reference by rounding only.

mod block32;
mod enc32;
mod float;
mod iq4;
mod kencode;
mod kquants;
mod legacy;

pub(crate) use block32::*;
pub(crate) use enc32::{quantize_q4_1, quantize_q5_0, quantize_q5_1};
pub(crate) use float::*;
pub(crate) use iq4::*;
pub(crate) use kencode::*;
pub(crate) use kquants::*;
pub(crate) use legacy::*;
