//! Fuzzes the GGUF reader: any byte string must parse or give an error, never panic or allocate
//! without bound. A parsed file must hand out in-bounds tensor data that the scalar decoders
//! accept, and re-encoding its header with our writer must be a fixed point (encode → parse →
//! encode gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llamapack_convert::gguf::{GgufFile, TensorDesc, dequant, writer};

fuzz_target!(|data: &[u8]| {
    let Ok(f) = GgufFile::parse(data, "fuzz.gguf") else {
        return;
    };
    for t in f.tensors() {
        let bytes = f.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.nbytes);
        let _ = t.shape();
        if t.numel() <= 1 << 16 && dequant::supported(t.ty) {
            let mut out = vec![0f32; t.numel() as usize];
            assert!(dequant::dequantize_row(t.ty, bytes, &mut out));
        }
    }
    for (k, _) in f.metadata() {
        assert!(f.get(k).is_some());
    }
    let descs: Vec<TensorDesc> = f
        .tensors()
        .iter()
        .map(|t| TensorDesc {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        })
        .collect();
    let (head, _, _) =
        writer::encode_header(f.metadata(), &descs, "fuzz.gguf").expect("a parsed file re-encodes");
    // Re-parse our encoding with zeroed tensor data appended (skipped for large tensors).
    let size: u64 = descs
        .iter()
        .map(|d| {
            d.ty.tensor_bytes(&d.dims)
                .unwrap()
                .next_multiple_of(u64::from(f.alignment()))
        })
        .sum();
    if size > 1 << 20 {
        return;
    }
    let mut again = head.clone();
    again.resize(head.len() + size as usize, 0);
    let g = GgufFile::parse(&again, "fuzz-again.gguf").expect("our own encoding parses");
    let (head2, _, _) = writer::encode_header(g.metadata(), &descs, "fuzz.gguf").unwrap();
    assert_eq!(head, head2);
});
