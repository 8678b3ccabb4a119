//! Writes a small valid `.lpk` (two tensors and a blob) to the path given as the argument;
//! used to seed the fuzz corpus and as a minimal example of the writer.
//!
//!     cargo run -p llamapack-format --example write_tiny -- /tmp/tiny.lpk

use llamapack_format::{DType, LpkWriter, testing};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: write_tiny OUT.lpk")?;
    let mut w = LpkWriter::create(&path)?;
    let emb: Vec<f32> = (0..16 * 64).map(|i| (i as f32 * 0.1).sin()).collect();
    w.write_tensor(
        "tok_embeddings.weight",
        DType::F32,
        &[16, 64],
        bytemuck::cast_slice(&emb),
    )?;
    w.write_tensor(
        "layers.0.attention.wq.weight",
        DType::Q4_0,
        &[2, 64],
        &[7u8; 4 * 18],
    )?;
    w.write_blob("tokenizer.model", b"not a real tokenizer")?;
    w.finish(&testing::tiny_metadata())?;
    Ok(())
}
