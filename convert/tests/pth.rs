//! The `.pth` reader against files made by torch (`fixtures/pth/make_pth_cases.py`): values
//! agree with what torch dumped, hostile pickles and broken zips are refused with clear errors.

use crate::common;

use common::pth;
use llamapack_convert::dtype::decode_f32_bytes;
use llamapack_convert::{Error, SourceDType, inspect_source};
use serde_json::Value;

fn load(name: &str) -> (Vec<u8>, String) {
    let p = pth(name);
    (std::fs::read(&p).unwrap(), p.display().to_string())
}

fn dtype_name(d: SourceDType) -> &'static str {
    match d {
        SourceDType::F32 => "float32",
        SourceDType::F16 => "float16",
        SourceDType::BF16 => "bfloat16",
        _ => "other",
    }
}

#[test]
fn agrees_with_torch_on_every_tensor() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(pth("cases.json")).unwrap()).unwrap();
    let cases = cases.as_object().unwrap();
    assert!(cases.len() >= 5);
    for (file, want) in cases {
        let (bytes, label) = load(file);
        let tensors = llamapack_convert::pth::load(&bytes, &label).unwrap();
        let want = want.as_object().unwrap();
        assert_eq!(tensors.len(), want.len(), "{file}");
        for t in &tensors {
            let w = &want[&t.name];
            let ctx = format!("{file}: {}", t.name);
            assert_eq!(dtype_name(t.dtype), w["dtype"], "{ctx}");
            let shape: Vec<u64> = serde_json::from_value(w["shape"].clone()).unwrap();
            assert_eq!(t.shape, shape, "{ctx}");
            assert_eq!(
                t.is_contiguous(),
                w["contiguous"].as_bool().unwrap(),
                "{ctx}"
            );
            assert_eq!(
                t.storage_offset,
                w["storage_offset"].as_u64().unwrap(),
                "{ctx}"
            );
            let data = t.bytes().unwrap();
            assert_eq!(
                matches!(data, std::borrow::Cow::Borrowed(_)),
                t.is_contiguous(),
                "{ctx}: contiguous tensors are zero-copy"
            );
            let got = decode_f32_bytes(t.dtype, &data).unwrap();
            let vals: Vec<f32> = w["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(got, vals, "{ctx}");
        }
    }
}

#[test]
fn protocol_4_file_uses_frames_and_stack_global() {
    let (bytes, label) = load("bf16_proto4.pth");
    let t = llamapack_convert::pth::load(&bytes, &label).unwrap();
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["layer.weight", "layer.bias"]);
    assert_eq!(t[0].dtype, SourceDType::BF16);
}

fn expect_unsafe(name: &str, global: &str) {
    let (bytes, label) = load(name);
    match llamapack_convert::pth::load(&bytes, &label) {
        Err(e @ Error::UnsafeGlobal { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("`{global}`")), "{msg}");
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains("nothing was executed"), "{msg}");
        }
        other => panic!("{name}: expected UnsafeGlobal({global}), got {other:?}"),
    }
}

#[test]
fn refuses_os_system() {
    expect_unsafe("evil_os_system.pth", "os.system");
}

#[test]
fn refuses_builtins_eval_via_stack_global() {
    expect_unsafe("evil_eval_proto4.pth", "builtins.eval");
}

#[test]
fn refuses_an_unlisted_global_in_a_genuine_torch_file() {
    expect_unsafe("unlisted_global.pth", "argparse.Namespace");
}

#[test]
fn inspect_refuses_hostile_files_too() {
    let e = inspect_source(&pth("evil_os_system.pth")).unwrap_err();
    assert!(e.to_string().contains("os.system"), "{e}");
}

#[test]
fn refuses_a_compressed_entry_by_name() {
    let (bytes, label) = load("compressed.pth");
    let e = llamapack_convert::pth::load(&bytes, &label).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Zip { .. }), "{e:?}");
    assert!(
        msg.contains("f32/data.pkl") && msg.contains("compressed"),
        "{msg}"
    );
}

#[test]
fn refuses_a_truncated_zip() {
    let (bytes, label) = load("truncated.pth");
    let e = llamapack_convert::pth::load(&bytes, &label).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("truncated.pth") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn every_prefix_of_a_real_file_is_an_error_not_a_panic() {
    let (bytes, label) = load("views.pth");
    for n in 0..bytes.len() {
        if let Ok(ts) = llamapack_convert::pth::load(&bytes[..n], &label) {
            for t in ts {
                let _ = t.bytes();
            }
        }
    }
}

#[test]
fn every_byte_of_the_pickle_can_be_corrupted_safely() {
    let (bytes, label) = load("module.pth");
    let zip = llamapack_convert::zip::ZipArchive::parse(&bytes, &label).unwrap();
    let e = zip.entry("module/data.pkl").unwrap();
    let pkl = zip.data(e).unwrap();
    let start = pkl.as_ptr() as usize - bytes.as_ptr() as usize;
    for i in start..start + pkl.len() {
        for v in [0u8, 0x80, 0xFF, b'c', b'R', b'h'] {
            let mut m = bytes.clone();
            m[i] = v;
            // The CRC check catches most; bypass it by going through the VM directly.
            let p = &m[start..start + pkl.len()];
            let _ = llamapack_convert::pickle::vm::run(
                p,
                &llamapack_convert::pickle::torch::allowed,
                llamapack_convert::pickle::vm::Limits::default(),
            )
            .map(|p| llamapack_convert::pickle::torch::state_dict(&p));
            let _ = llamapack_convert::pth::load(&m, &label);
        }
    }
}

#[test]
fn inspect_lists_a_single_pth() {
    let l = inspect_source(&pth("views.pth")).unwrap();
    assert_eq!(l.format, llamapack_convert::SourceFormat::Pth);
    let t = l.tensors.iter().find(|t| t.name == "transposed").unwrap();
    assert_eq!(t.shape, [5, 6]);
    assert_eq!(t.dtype, SourceDType::BF16);
}

/// `bytes` with one byte in the middle of the data of zip entry `entry` flipped (the zip
/// directory, and so its recorded CRC-32, unchanged).
pub fn flip_entry_byte(bytes: &[u8], entry: &str) -> Vec<u8> {
    let zip = llamapack_convert::zip::ZipArchive::parse(bytes, "t.pth").unwrap();
    let d = zip.data(zip.entry(entry).unwrap()).unwrap();
    let at = d.as_ptr() as usize - bytes.as_ptr() as usize + d.len() / 2;
    let mut m = bytes.to_vec();
    m[at] ^= 0x10;
    m
}

#[test]
fn a_flipped_storage_byte_is_an_error_naming_the_file_the_entry_and_the_tensor() {
    // views.pth: several tensors viewing one storage; f32.pth: one storage per tensor.
    for (file, root) in [("views.pth", "views"), ("f32.pth", "f32")] {
        let (bytes, label) = load(file);
        let tensors = llamapack_convert::pth::load(&bytes, &label).unwrap();
        let keys: std::collections::BTreeSet<&str> =
            tensors.iter().map(|t| t.storage_key.as_str()).collect();
        for key in keys {
            let entry = format!("{root}/data/{key}");
            let m = flip_entry_byte(&bytes, &entry);
            // Listing reads no storage: it still works (inspect stays cheap).
            let ts = llamapack_convert::pth::load(&m, &label).unwrap();
            let mut refused = 0;
            for t in &ts {
                let got = t.bytes();
                if t.storage_key == key {
                    let msg = got.unwrap_err().to_string();
                    for part in [label.as_str(), &entry, &format!("`{}`", t.name), "crc-32"] {
                        assert!(msg.contains(part), "{part} not in: {msg}");
                    }
                    refused += 1;
                } else {
                    assert!(got.is_ok(), "{file}: {}: {:?}", t.name, got.err());
                }
            }
            assert!(refused > 0, "{file}: {entry}");
        }
    }
}

#[test]
fn convert_refuses_a_shard_with_a_flipped_storage_byte_and_writes_nothing() {
    let (t, dir) = common::meta_case("meta_ok");
    let shard = dir.join("consolidated.01.pth");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, flip_entry_byte(&bytes, "consolidated.01/data/5")).unwrap();
    let out = t.path().join("out.lpk");
    let e = llamapack_convert::convert(
        &dir,
        &out,
        &llamapack_convert::ConvertOptions::default(),
        &common::quiet,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("consolidated.01.pth")
            && msg.contains("consolidated.01/data/5")
            && msg.contains("crc-32 mismatch"),
        "{msg}"
    );
    assert!(!out.exists());
    // The intact original converts.
    let (t, dir) = common::meta_case("meta_ok");
    let out = t.path().join("out.lpk");
    llamapack_convert::convert(
        &dir,
        &out,
        &llamapack_convert::ConvertOptions::default(),
        &common::quiet,
    )
    .unwrap();
}

#[test]
fn the_synthetic_state_dict_of_the_benchmark_loads_as_written() {
    let tensors: Vec<(String, Vec<u64>)> = (0..300)
        .map(|i| (format!("t{i}"), vec![2, 1 + i % 3]))
        .collect();
    let pth = llamapack_convert::testing::state_dict_pth("synth", &tensors);
    let got = llamapack_convert::pth::load(&pth, "synth.pth").unwrap();
    assert_eq!(got.len(), tensors.len());
    for (t, (name, shape)) in got.iter().zip(&tensors) {
        assert_eq!((&t.name, &t.shape), (name, shape));
        let vals = decode_f32_bytes(t.dtype, &t.bytes().unwrap()).unwrap();
        let want: Vec<f32> = (0..shape.iter().product::<u64>())
            .map(|v| v as f32)
            .collect();
        assert_eq!(vals, want, "{name}");
    }
}
