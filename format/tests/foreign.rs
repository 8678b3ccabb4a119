//! `Lpk::from_index`: another container's tensors served in place are checked as a `.lpk`
//! index is (bounds, alignment, sizes, overlap), and carry no checksums.

use llamapack_format::header::TensorEntry;
use llamapack_format::{Container, ForeignIndex, Lpk, testing};

fn entry(name: &str, offset: u64, n: u64) -> TensorEntry {
    TensorEntry {
        name: name.into(),
        dtype: "f32".into(),
        shape: vec![n],
        offset,
        nbytes: 4 * n,
        crc32c: 0xdead_beef,
    }
}

fn index(tensors: Vec<TensorEntry>) -> ForeignIndex {
    ForeignIndex {
        meta: testing::tiny_metadata(),
        tensors,
        data: 32..1024,
        align: 32,
        container: Container::Gguf { version: 3 },
    }
}

#[test]
fn a_foreign_index_serves_its_tensors_without_checksums() {
    let mut bytes = vec![0u8; 1024];
    bytes[64..68].copy_from_slice(&1.5f32.to_le_bytes());
    let lpk = Lpk::from_index(&bytes[..], "x.gguf", index(vec![entry("a", 64, 8)])).unwrap();
    let t = lpk.tensor("a").unwrap();
    assert_eq!(t.as_slice::<f32>().unwrap()[0], 1.5);
    assert_eq!(t.crc32c, None);
    assert!(t.checksum_ok() && lpk.verify().is_empty());
    assert!(!lpk.has_checksums());
    assert_eq!(lpk.version(), (3, 0));
    assert_eq!(lpk.file_len(), 1024);
}

#[test]
fn a_foreign_index_that_lies_is_an_error() {
    let bytes = vec![0u8; 1024];
    for (tensors, why) in [
        (vec![entry("a", 48, 8)], "not a multiple of 32"),
        (vec![entry("a", 0, 8)], "outside the data region"),
        (vec![entry("a", 992, 16)], "outside the data region"),
        (vec![entry("a", 64, 16), entry("b", 96, 8)], "overlaps"),
        (vec![entry("a", 64, 8), entry("a", 128, 8)], "twice"),
    ] {
        let e = Lpk::from_index(&bytes[..], "x.gguf", index(tensors)).unwrap_err();
        assert!(e.to_string().contains(why), "{why}: {e}");
    }
    let mut i = index(vec![entry("a", 64, 8)]);
    i.align = 4;
    assert!(Lpk::from_index(&bytes[..], "x.gguf", i).is_err());
    let mut i = index(vec![entry("a", 64, 8)]);
    i.data = 0..4096;
    assert!(Lpk::from_index(&bytes[..], "x.gguf", i).is_err());
}
