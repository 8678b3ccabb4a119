//! Our `.pth` reader against an independent one (burn's `pytorch-reader` crate) on every good
//! `.pth` in the fixtures: same tensor names, dtypes, shapes and bytes.

use crate::common;

use std::path::PathBuf;

use llamapack_convert::SourceDType;

fn same_dtype(ours: SourceDType, theirs: pytorch_reader::DType) -> bool {
    use pytorch_reader::DType as T;
    matches!(
        (ours, theirs),
        (SourceDType::F64, T::F64)
            | (SourceDType::F32, T::F32)
            | (SourceDType::F16, T::F16)
            | (SourceDType::BF16, T::BF16)
            | (SourceDType::I64, T::I64)
            | (SourceDType::I32, T::I32)
            | (SourceDType::I16, T::I16)
            | (SourceDType::I8, T::I8)
            | (SourceDType::U8, T::U8)
            | (SourceDType::Bool, T::Bool)
    )
}

fn good_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = [
        "f32.pth",
        "f16.pth",
        "bf16_proto4.pth",
        "views.pth",
        "module.pth",
    ]
    .iter()
    .map(|n| common::pth(n))
    .collect();
    for d in ["meta_ok", "meta_nan", "meta_shard_mismatch"] {
        v.push(common::pth(d).join("consolidated.00.pth"));
        v.push(common::pth(d).join("consolidated.01.pth"));
    }
    // The tiny model's real shards, when the fixtures have them.
    for i in 0..8 {
        let p = common::fixtures().join(format!("tiny/meta/consolidated.{i:02}.pth"));
        if p.is_file() {
            v.push(p);
        }
    }
    v
}

#[test]
fn agrees_with_pytorch_reader_on_every_fixture() {
    let mut n = 0;
    for path in good_files() {
        let bytes = std::fs::read(&path).unwrap();
        let ours = llamapack_convert::pth::load(&bytes, &path.display().to_string()).unwrap();
        let theirs = pytorch_reader::PytorchReader::new(&path).unwrap();
        let mut their_names = theirs.keys();
        their_names.sort();
        let mut our_names: Vec<String> = ours.iter().map(|t| t.name.clone()).collect();
        our_names.sort();
        assert_eq!(our_names, their_names, "{}", path.display());
        for t in &ours {
            let o = theirs.get(&t.name).unwrap();
            let ctx = format!("{}: {}", path.display(), t.name);
            assert!(
                same_dtype(t.dtype, o.dtype()),
                "{ctx}: {:?} vs {:?}",
                t.dtype,
                o.dtype()
            );
            let shape: Vec<u64> = o.shape().iter().map(|&d| d as u64).collect();
            assert_eq!(t.shape, shape, "{ctx}");
            assert_eq!(&t.bytes().unwrap()[..], &o.read().unwrap()[..], "{ctx}");
            n += 1;
        }
    }
    assert!(n > 40, "only {n} tensors compared");
}
