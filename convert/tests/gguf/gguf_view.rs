//! A GGUF read in place ([`gguf::open_model`]) is the model its import would write: same
//! config, tokenizer, names, dtypes, shapes and bytes, without checksums; a hostile one is an
//! error, never a panic.

use std::path::PathBuf;

use llamapack_convert::gguf::{self, GgmlType, ImportOptions};
use llamapack_format::{Container, Lpk};

use crate::gguf_common::Rng;

fn fixture(name: &str) -> PathBuf {
    crate::common::fixtures().join("gguf").join(name)
}

#[test]
fn a_gguf_view_is_its_import() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tiny-q4_k_m.gguf", "tiny-f16.gguf"] {
        let out = dir.path().join(name.replace(".gguf", ".lpk"));
        gguf::import_gguf(&fixture(name), &out, &ImportOptions::default()).unwrap();
        let imported = Lpk::open(&out).unwrap();
        let view = gguf::open_model(&fixture(name)).unwrap();
        assert_eq!(view.container(), Container::Gguf { version: 3 });
        assert!(!view.has_checksums() && imported.has_checksums());
        assert_eq!(view.config(), imported.config());
        assert_eq!(view.tokenizer(), imported.tokenizer());
        assert_eq!(view.len(), imported.len());
        for (a, b) in view.tensors().zip(imported.tensors()) {
            assert_eq!((a.name, a.dtype, a.shape), (b.name, b.dtype, b.shape));
            assert_eq!(a.bytes, b.bytes, "{}", a.name);
            assert_eq!(a.crc32c, None);
            assert!(a.checksum_ok());
        }
        assert!(view.verify().is_empty());
        assert_eq!(view.provenance().notes["gguf_version"], 3);
        // open_model reads a .lpk as a .lpk.
        assert!(gguf::open_model(&out).unwrap().has_checksums());
    }
}

#[test]
fn a_type_only_conversion_handles_is_an_error_saying_to_convert() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q8_1.gguf");
    crate::gguf_roundtrip::write_gguf_model(&path, GgmlType::Q8_1, &mut Rng::new(3));
    let err = gguf::open_model(&path).unwrap_err().to_string();
    assert!(
        err.contains("q8_1") && err.contains("llamapack convert"),
        "{err}"
    );
    let err = gguf::open_model(&crate::common::fixtures().join("imatrix/tiny.imatrix.gguf"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("importance matrix, not a model"), "{err}");
}

#[test]
fn a_hostile_gguf_view_is_an_error_not_a_panic() {
    let good = std::fs::read(fixture("tiny-q4_k_m.gguf")).unwrap();
    let data_offset = gguf::GgufFile::parse(&good, "t").unwrap().data_offset() as usize;
    let mut rng = Rng::new(11);
    let mut accepted = 0;
    // Every byte of the header, metadata and tensor index, changed; then truncations.
    for i in 0..data_offset {
        let mut bad = good.clone();
        bad[i] ^= 1 << (rng.next_u64() % 8);
        if let Ok(lpk) = gguf::view_gguf(&bad[..], "bad.gguf".into()) {
            accepted += 1;
            for t in lpk.tensors() {
                assert_eq!(
                    Some(t.bytes.len()),
                    t.dtype.tensor_bytes(t.shape),
                    "{}",
                    t.name
                );
            }
        }
    }
    for len in (0..good.len()).step_by(good.len() / 97) {
        assert!(
            gguf::view_gguf(&good[..len], "short.gguf".into()).is_err(),
            "{len}"
        );
    }
    // Flipped bits inside piece texts and scores can still be a valid model; most are not.
    assert!(accepted < data_offset, "{accepted} of {data_offset}");
}
