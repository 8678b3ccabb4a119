//! Any set of tensors written and read back is identical, 64-byte aligned and deterministic.

use llamapack_format::{DType, Lpk, LpkWriter, testing};
use proptest::prelude::*;

fn arb_tensor() -> impl Strategy<Value = (DType, Vec<u64>, Vec<u8>)> {
    let dtypes = prop::sample::select(vec![
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4K,
        DType::Q6K,
    ]);
    (dtypes, 1u64..4, 1u64..3, prop::option::of(1u64..3)).prop_flat_map(
        |(dt, blocks, rows, outer)| {
            let row = blocks * dt.block_len() as u64;
            let shape = match outer {
                Some(o) => vec![o, rows, row],
                None => vec![rows, row],
            };
            let n = dt.tensor_bytes(&shape).unwrap();
            (Just(dt), Just(shape), prop::collection::vec(any::<u8>(), n))
        },
    )
}

fn write(path: &std::path::Path, tensors: &[(DType, Vec<u64>, Vec<u8>)], blob: &[u8]) {
    let mut w = LpkWriter::create(path).unwrap();
    for (i, (dt, shape, data)) in tensors.iter().enumerate() {
        w.write_tensor(&format!("t{i}"), *dt, shape, data).unwrap();
    }
    w.write_blob("blob", blob).unwrap();
    w.finish(&testing::tiny_metadata()).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn roundtrip(tensors in prop::collection::vec(arb_tensor(), 0..6),
                 blob in prop::collection::vec(any::<u8>(), 0..100)) {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.lpk");
        let b = dir.path().join("b.lpk");
        write(&a, &tensors, &blob);
        write(&b, &tensors, &blob);
        let bytes_a = std::fs::read(&a).unwrap();
        prop_assert_eq!(&bytes_a, &std::fs::read(&b).unwrap(), "not deterministic");

        let lpk = Lpk::open(&a).unwrap();
        prop_assert_eq!(lpk.len(), tensors.len());
        prop_assert_eq!(lpk.metadata(), &testing::tiny_metadata());
        for (i, (dt, shape, data)) in tensors.iter().enumerate() {
            let t = lpk.tensor(&format!("t{i}")).unwrap();
            prop_assert_eq!(t.dtype, *dt);
            prop_assert_eq!(t.shape, &shape[..]);
            prop_assert_eq!(t.bytes, &data[..]);
            prop_assert_eq!(t.bytes.as_ptr() as usize % 64, 0, "tensor data not 64-byte aligned");
        }
        prop_assert_eq!(lpk.blob("blob").unwrap(), &blob[..]);
        prop_assert!(lpk.verify().is_empty());
        // No temp file is left beside the output.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-")).collect();
        prop_assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// Tensors reserved first and filled from two threads, last tensor first and in pieces of
    /// any size through any buffer, give the same bytes as the streaming writer.
    #[test]
    fn reserved_slots_equal_streaming(tensors in prop::collection::vec(arb_tensor(), 1..6),
                                      blob in prop::collection::vec(any::<u8>(), 0..100),
                                      piece in 1usize..200, buffer in 1usize..300) {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.lpk");
        let b = dir.path().join("b.lpk");
        write(&a, &tensors, &blob);
        let mut w = LpkWriter::create(&b).unwrap();
        let slots: Vec<_> = tensors.iter().enumerate()
            .map(|(i, (dt, shape, _))| w.reserve_tensor(&format!("t{i}"), *dt, shape).unwrap())
            .collect();
        w.write_blob("blob", &blob).unwrap();
        let filled: Vec<_> = {
            let sl = w.slots().unwrap();
            let fill = |i: usize| {
                let mut sink = sl.sink(slots[i], buffer);
                for c in tensors[i].2.chunks(piece) {
                    sink.write(c).unwrap();
                }
                sink.finish().unwrap()
            };
            std::thread::scope(|s| {
                let odd = s.spawn(|| (0..tensors.len()).rev().filter(|i| i % 2 == 1).map(fill).collect::<Vec<_>>());
                let mut f: Vec<_> = (0..tensors.len()).rev().filter(|i| i % 2 == 0).map(fill).collect();
                f.extend(odd.join().unwrap());
                f
            })
        };
        for f in filled {
            w.fill(f);
        }
        w.finish(&testing::tiny_metadata()).unwrap();
        prop_assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }
}

#[test]
fn a_reserved_tensor_left_unwritten_or_overfilled_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.lpk");
    let mut w = LpkWriter::create(&p).unwrap();
    let a = w.reserve_tensor("a", DType::F32, &[2, 4]).unwrap();
    let _b = w.reserve_tensor("b", DType::F32, &[2, 4]).unwrap();
    assert_eq!(a.nbytes(), 32);
    let filled = {
        let sl = w.slots().unwrap();
        let mut sink = sl.sink(a, 8);
        sink.write(&[1u8; 32]).unwrap();
        let err = sink.write(&[1u8]).unwrap_err().to_string();
        assert!(err.contains("`a`") && err.contains("32 bytes"), "{err}");
        sink.finish().unwrap()
    };
    w.fill(filled);
    let err = w.finish(&testing::tiny_metadata()).unwrap_err().to_string();
    assert!(
        err.contains("`b`") && err.contains("never written"),
        "{err}"
    );
    assert!(!p.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "temp file left behind");
}

#[test]
fn typed_slices_are_zero_copy() {
    use half::f16;
    use llamapack_format::blocks::BlockQ4_0;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.lpk");
    let mut w = LpkWriter::create(&p).unwrap();
    let h: Vec<f16> = (0..64).map(|i| f16::from_f32(i as f32)).collect();
    w.write_tensor("h", DType::F16, &[2, 32], bytemuck::cast_slice(&h))
        .unwrap();
    let q = vec![
        BlockQ4_0 {
            d: f16::ONE,
            qs: [0x21; 16]
        };
        4
    ];
    w.write_tensor("q", DType::Q4_0, &[2, 64], bytemuck::cast_slice(&q))
        .unwrap();
    w.finish(&testing::tiny_metadata()).unwrap();
    let lpk = Lpk::open(&p).unwrap();
    assert_eq!(lpk.tensor("h").unwrap().as_slice::<f16>().unwrap(), &h[..]);
    assert_eq!(
        lpk.tensor("q").unwrap().as_slice::<BlockQ4_0>().unwrap(),
        &q[..]
    );
    let err = lpk.tensor("h").unwrap().as_slice::<f32>().unwrap_err();
    assert!(err.to_string().contains("is f16, not f32"), "{err}");
}

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.lpk");
    {
        let mut w = LpkWriter::create(&p).unwrap();
        w.write_tensor("a", DType::F32, &[4], &[0u8; 16]).unwrap();
        // An error mid-way (wrong length) and then the writer is dropped.
        assert!(w.write_tensor("b", DType::F32, &[4], &[0u8; 15]).is_err());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn writer_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LpkWriter::create(dir.path().join("t.lpk")).unwrap();
    w.write_tensor("a", DType::F32, &[4], &[0u8; 16]).unwrap();
    let dup = w
        .write_tensor("a", DType::F32, &[4], &[0u8; 16])
        .unwrap_err();
    assert!(dup.to_string().contains("`a`"), "{dup}");
    let blocks = w
        .write_tensor("q", DType::Q4_0, &[1, 33], &[0u8; 18])
        .unwrap_err();
    assert!(blocks.to_string().contains("whole number"), "{blocks}");
    let q8k = w
        .write_tensor("k", DType::Q8K, &[1, 256], &[0u8; 292])
        .unwrap_err();
    assert!(q8k.to_string().contains("activation"), "{q8k}");
}

#[test]
fn released_pages_read_back_the_same_bytes() {
    // an f32 tensor of 1 MiB (many 64 KiB spans): released, it reads back unchanged (the pages come
    // back from the file); a slice that is not in the map is ignored
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.lpk");
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write(&p, &[(DType::F32, vec![1 << 18], data.clone())], b"x");
    let lpk = Lpk::open(&p).unwrap();
    let t = lpk.tensor("t0").unwrap();
    assert_eq!(t.bytes, &data[..]);
    lpk.release(t.bytes);
    lpk.release(&t.bytes[1000..200_000]);
    lpk.release(&data);
    assert_eq!(t.bytes, &data[..]);
    assert!(lpk.verify().is_empty());
}
