//! Pickle reading without execution: [`vm`] builds inert values from the opcode stream,
//! [`torch`] interprets the few globals a `PyTorch` state dict needs.

pub mod torch;
pub mod vm;

pub use torch::TensorRecord;
