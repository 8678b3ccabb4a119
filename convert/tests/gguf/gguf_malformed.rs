//! Hostile GGUF headers: every one gives an error naming the file and the key or tensor, never a
//! panic, never a huge allocation.

use llamapack_convert::gguf::GgufFile;

/// A little-endian GGUF byte builder.
#[derive(Default)]
struct B(Vec<u8>);

impl B {
    fn u32(mut self, v: u32) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend(b);
        self
    }
    fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    fn header(n_tensors: u64, n_kv: u64) -> Self {
        B::default().raw(b"GGUF").u32(3).u64(n_tensors).u64(n_kv)
    }
    /// A tensor info.
    fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        let mut b = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            b = b.u64(d);
        }
        b.u32(ty).u64(offset)
    }
    fn pad(mut self, align: usize) -> Self {
        self.0.resize(self.0.len().next_multiple_of(align), 0);
        self
    }
}

fn err(bytes: &[u8]) -> String {
    match GgufFile::parse(bytes, "bad.gguf") {
        Ok(_) => panic!("parsed"),
        Err(e) => {
            let s = e.to_string();
            assert!(s.starts_with("bad.gguf: "), "{s}");
            s
        }
    }
}

/// A valid file: two metadata entries, two f32 tensors of 4 and 8 elements.
fn valid() -> (Vec<u8>, usize) {
    let b = B::header(2, 2)
        .str("general.architecture")
        .u32(8)
        .str("llama")
        .str("tokenizer.ggml.tokens")
        .u32(9)
        .u32(8)
        .u64(2)
        .str("<s>")
        .str("a")
        .tensor("a", &[4], 0, 0)
        .tensor("b", &[4, 2], 0, 32)
        .pad(32);
    let data_start = b.0.len();
    let b = b.raw(&[1; 16]).pad(32).raw(&[2; 32]);
    (b.0, data_start)
}

#[test]
fn gguf_valid_seed_parses() {
    let (bytes, data_start) = valid();
    let f = GgufFile::parse(&bytes, "ok.gguf").unwrap();
    assert_eq!(f.data_offset() as usize, data_start);
    assert_eq!(f.tensor_data(f.tensor("b").unwrap()), &[2; 32]);
    assert_eq!(f.tensors()[1].shape(), [2, 4]);
}

#[test]
fn gguf_truncated_at_every_offset() {
    let (bytes, _) = valid();
    let mut all = Vec::new();
    for cut in 0..bytes.len() {
        let e = err(&bytes[..cut]);
        assert!(
            e.contains("truncated") || e.contains("outside"),
            "cut at {cut}: {e}"
        );
        all.push(e);
    }
    // The errors name what was being read.
    for want in [
        "metadata key `tokenizer.ggml.tokens`",
        "tensor `b`",
        "tensor count",
        "padding",
    ] {
        assert!(all.iter().any(|e| e.contains(want)), "{want}");
    }
}

#[test]
fn gguf_bad_magic_and_versions() {
    let e = err(b"GGML\x03\0\0\0");
    assert!(e.contains("magic"), "{e}");
    let e = err(&B::default().raw(b"GGUF").u32(1).u32(0).u32(0).0);
    assert!(e.contains("version 1"), "{e}");
    let e = err(&B::default()
        .raw(b"GGUF")
        .u32(3u32.swap_bytes())
        .u64(0)
        .u64(0)
        .0);
    assert!(e.contains("big-endian"), "{e}");
    let e = err(&B::default().raw(b"GGUF").u32(4).u64(0).u64(0).0);
    assert!(e.contains("unsupported version 4"), "{e}");
    // Version 2 is accepted.
    let v2 = B::default().raw(b"GGUF").u32(2).u64(0).u64(0).0;
    assert_eq!(GgufFile::parse(&v2, "v2").unwrap().version(), 2);
}

#[test]
fn gguf_lying_counts() {
    let e = err(&B::header(u64::MAX, 0).0);
    assert!(e.contains("tensors exceed"), "{e}");
    let e = err(&B::header(0, 1 << 40).0);
    assert!(e.contains("metadata entries exceed"), "{e}");
    // Within the limits but more than the bytes can hold: refused before allocating.
    let e = err(&B::header(1000, 0).0);
    assert!(e.contains("tensor count needs 32000 bytes"), "{e}");
    let e = err(&B::header(0, 1000).0);
    assert!(e.contains("metadata count"), "{e}");
    // One more tensor than present.
    let (mut bytes, _) = valid();
    bytes[8] = 3;
    let e = err(&bytes);
    assert!(e.contains("tensor"), "{e}");
}

#[test]
fn gguf_huge_lengths() {
    let e = err(&B::header(0, 1).u64(1 << 60).raw(&[0; 32]).0);
    assert!(
        e.contains("key of metadata entry 0") && e.contains("exceeds"),
        "{e}"
    );
    let e = err(&B::header(0, 1).str("k").u32(8).u64(1 << 60).raw(&[0; 8]).0);
    assert!(
        e.contains("metadata key `k`") && e.contains("truncated"),
        "{e}"
    );
    let e = err(&B::header(0, 1)
        .str("k")
        .u32(9)
        .u32(0)
        .u64(1 << 40)
        .raw(&[0; 16])
        .0);
    assert!(
        e.contains("metadata key `k` needs 1099511627776 bytes"),
        "{e}"
    );
    let e = err(&B::header(0, 1)
        .str("k")
        .u32(9)
        .u32(8)
        .u64(u64::MAX)
        .raw(&[0; 16])
        .0);
    assert!(e.contains("metadata key `k`"), "{e}");
    // A string inside an array lies about its length.
    let e = err(&B::header(0, 1)
        .str("k")
        .u32(9)
        .u32(8)
        .u64(2)
        .str("a")
        .u64(1 << 62)
        .0);
    assert!(
        e.contains("metadata key `k`") && e.contains("truncated"),
        "{e}"
    );
    let e = err(&B::header(1, 0).u64(1 << 60).raw(&[0; 32]).0);
    assert!(e.contains("name of tensor 0"), "{e}");
}

#[test]
fn gguf_deeply_nested_arrays() {
    let mut b = B::header(0, 1).str("deep");
    b = b.u32(9);
    for _ in 0..10_000 {
        b = b.u32(9).u64(1);
    }
    b = b.u32(0).u64(0);
    let e = err(&b.0);
    assert!(
        e.contains("metadata key `deep`") && e.contains("nested deeper"),
        "{e}"
    );
}

#[test]
fn gguf_bad_values() {
    let e = err(&B::header(0, 1).str("k").u32(13).0);
    assert!(e.contains("metadata key `k`: unknown value type 13"), "{e}");
    let e = err(&B::header(0, 1).str("k").u32(7).raw(&[2]).0);
    assert!(e.contains("bool value 2"), "{e}");
    let e = err(&B::header(0, 1).str("k").u32(8).u64(2).raw(&[0xff, 0xfe]).0);
    assert!(e.contains("metadata key `k`") && e.contains("utf-8"), "{e}");
    let e = err(&B::header(0, 2)
        .str("k")
        .u32(0)
        .raw(&[1])
        .str("k")
        .u32(0)
        .raw(&[1])
        .0);
    assert!(e.contains("metadata key `k`: key appears twice"), "{e}");
    let e = err(&B::header(0, 1).str("").u32(0).raw(&[1]).0);
    assert!(e.contains("empty key"), "{e}");
    for bad in [
        B::default().u32(6).u32(48),
        B::default().u32(10).u64(32),
        B::default().u32(4).u32(0),
    ] {
        let e = err(&B::header(0, 1).str("general.alignment").raw(&bad.0).0);
        assert!(e.contains("general.alignment"), "{e}");
    }
}

fn one_tensor(dims: &[u64], ty: u32, offset: u64, data: usize) -> Vec<u8> {
    B::header(1, 0)
        .tensor("w", dims, ty, offset)
        .pad(32)
        .raw(&vec![0; data])
        .0
}

#[test]
fn gguf_bad_tensor_infos() {
    let cases: [(&[u64], u32, u64, usize, &str); 10] = [
        (&[4], 99, 0, 16, "unknown ggml type 99"),
        (&[4], 4, 0, 16, "unknown ggml type 4"),
        (&[4, 1, 1, 1, 1], 0, 0, 16, "5 dimensions"),
        (&[], 0, 0, 16, "0 dimensions"),
        (&[4, 0], 0, 0, 16, "dimension 0"),
        (&[1 << 32, 1 << 32], 0, 0, 16, "overflow"),
        (&[48], 2, 0, 64, "not a multiple of the q4_0 block"),
        (&[4], 0, 8, 64, "not a multiple of the alignment 32"),
        (&[4], 0, 32, 40, "outside"),
        (&[4], 0, u64::MAX - 31, 64, "outside"),
    ];
    for (dims, ty, offset, data, want) in cases {
        let e = err(&one_tensor(dims, ty, offset, data));
        assert!(
            e.contains("tensor `w`") && e.contains(want),
            "{dims:?} {ty}: {e}"
        );
    }
    // 2^62 elements of f32: bytes overflow u64 after the element count passes.
    let e = err(&one_tensor(&[1 << 31, 1 << 31], 0, 0, 16));
    assert!(e.contains("overflow"), "{e}");
}

#[test]
fn gguf_overlapping_and_duplicate_tensors() {
    let b = B::header(2, 0)
        .tensor("a", &[16], 0, 0)
        .tensor("b", &[4], 0, 32)
        .pad(32)
        .raw(&[0; 96]);
    let e = err(&b.0);
    assert!(e.contains("tensor `b`: data overlaps tensor `a`"), "{e}");
    let b = B::header(2, 0)
        .tensor("a", &[4], 0, 0)
        .tensor("a", &[4], 0, 32)
        .pad(32)
        .raw(&[0; 64]);
    let e = err(&b.0);
    assert!(e.contains("tensor `a`: name appears twice"), "{e}");
}
