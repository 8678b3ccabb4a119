//! Against llama.cpp's own `llama-quantize` (an optional outside tool; skipped with the reason
//! printed when it is absent): for every recipe of the menu, the fixture model quantized by
//! llamapack and by llama-quantize from the same f16 GGUF has every tensor in the same type with
//! the same bytes; and llama-quantize's file converts to `.lpk` and back byte for byte.
//!
//! The tool is looked up as `$LLAMA_QUANTIZE`, then in the peer build that
//! `../shared/tools/peer-llamacpp.sh` makes (`~/.cache/llamapack-peer/build-*/bin`).

use std::path::{Path, PathBuf};
use std::process::Command;

use llamapack_convert::gguf::GgufFile;
use llamapack_quantize::recipe::RECIPES;

use crate::common::{ok, s, shared};

fn llama_quantize() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LLAMA_QUANTIZE") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let home = std::env::var_os("HOME")?;
    let dir = Path::new(&home).join(".cache/llamapack-peer");
    let mut builds: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("build-"))
        })
        .map(|p| p.join("bin/llama-quantize"))
        .filter(|p| p.is_file())
        .collect();
    builds.sort();
    builds.pop()
}

/// Tensor name → (ggml type id, bytes) of a GGUF file.
fn tensors(path: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let f = GgufFile::parse(&bytes, path.display().to_string()).unwrap();
    f.tensors()
        .iter()
        .map(|t| (t.name.clone(), t.ty.id(), f.tensor_data(t).to_vec()))
        .collect()
}

/// Every tensor of `ours` has `theirs`' type and bytes; returns the differences.
fn differences(ours: &Path, theirs: &Path) -> Vec<String> {
    let theirs = tensors(theirs);
    let mut diffs = Vec::new();
    for (name, ty, data) in tensors(ours) {
        match theirs.iter().find(|t| t.0 == name) {
            None => diffs.push(format!("{name}: missing in llama.cpp's file")),
            Some((_, t, _)) if *t != ty => diffs.push(format!("{name}: type {ty} vs {t}")),
            Some((_, _, d)) if *d != data => diffs.push(format!("{name}: bytes differ")),
            Some(_) => {}
        }
    }
    diffs
}

#[test]
fn every_recipe_is_llama_quantize_byte_for_byte() {
    let Some(tool) = llama_quantize() else {
        println!(
            "skipped: llama-quantize not found (set LLAMA_QUANTIZE or build it with ../shared/tools/peer-llamacpp.sh)"
        );
        return;
    };
    let sh = shared();
    let dir = sh.dir.join("llamacpp");
    std::fs::create_dir_all(&dir).unwrap();
    let f16 = dir.join("f16.gguf");
    ok(&["export", s(&sh.f16), "--format", "gguf", "-o", s(&f16)]);
    let mut failures = Vec::new();
    for r in RECIPES.iter().filter(|r| r.base.is_quantized()) {
        let ours_lpk = dir.join(format!("ours-{}.lpk", r.name));
        let ours = dir.join(format!("ours-{}.gguf", r.name));
        let theirs = dir.join(format!("theirs-{}.gguf", r.name));
        ok(&["quantize", s(&sh.f16), "-o", s(&ours_lpk), "--type", r.name]);
        ok(&["export", s(&ours_lpk), "--format", "gguf", "-o", s(&ours)]);
        let out = Command::new(&tool)
            .args([s(&f16), s(&theirs), r.llama_name, "2"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "llama-quantize {}: {}",
            r.llama_name,
            String::from_utf8_lossy(&out.stderr)
        );
        let d = differences(&ours, &theirs);
        if !d.is_empty() {
            failures.push(format!(
                "{}: {} tensors differ, e.g. {:?}",
                r.name,
                d.len(),
                &d[..d.len().min(3)]
            ));
        }
        // llama.cpp's file → .lpk → GGUF keeps every tensor's bytes.
        let back_lpk = dir.join(format!("back-{}.lpk", r.name));
        let back = dir.join(format!("back-{}.gguf", r.name));
        ok(&["convert", s(&theirs), "-o", s(&back_lpk)]);
        ok(&["export", s(&back_lpk), "--format", "gguf", "-o", s(&back)]);
        let d = differences(&back, &theirs);
        if !d.is_empty() {
            failures.push(format!("{} round trip: {:?}", r.name, &d[..d.len().min(3)]));
        }
        for p in [&ours_lpk, &ours, &theirs, &back_lpk, &back] {
            let _ = std::fs::remove_file(p);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// With llama-imatrix's own file of the fixture (`fixtures/imatrix/tiny.imatrix.gguf`), every
/// recipe against `llama-quantize --imatrix`: every tensor the same type and the same bytes
/// (every block type has an importance-weighted encoder but q8_0, which ignores the imatrix in
/// ggml too).
#[test]
fn imatrix_recipes_are_llama_quantize_byte_for_byte() {
    let Some(tool) = llama_quantize() else {
        println!(
            "skipped: llama-quantize not found (set LLAMA_QUANTIZE or build it with ../shared/tools/peer-llamacpp.sh)"
        );
        return;
    };
    let sh = shared();
    let dir = sh.dir.join("llamacpp-imatrix");
    std::fs::create_dir_all(&dir).unwrap();
    let im = crate::common::fixture("imatrix/tiny.imatrix.gguf");
    let f16 = dir.join("f16.gguf");
    ok(&["export", s(&sh.f16), "--format", "gguf", "-o", s(&f16)]);
    let k = llamapack_quantize::kernels();
    for d in llamapack_format::DType::storable().filter(|d| d.is_quantized()) {
        assert_eq!(k.has_weighted(d), d != llamapack_format::DType::Q8_0, "{d}");
    }
    let mut failures = Vec::new();
    for r in RECIPES.iter().filter(|r| r.base.is_quantized()) {
        let ours_lpk = dir.join(format!("ours-{}.lpk", r.name));
        let ours = dir.join(format!("ours-{}.gguf", r.name));
        let theirs = dir.join(format!("theirs-{}.gguf", r.name));
        ok(&[
            "quantize",
            s(&sh.f16),
            "-o",
            s(&ours_lpk),
            "--type",
            r.name,
            "--imatrix",
            s(&im),
        ]);
        ok(&["export", s(&ours_lpk), "--format", "gguf", "-o", s(&ours)]);
        let out = Command::new(&tool)
            .args(["--imatrix", s(&im), s(&f16), s(&theirs), r.llama_name, "2"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "llama-quantize --imatrix {}",
            r.llama_name
        );
        let theirs_t = tensors(&theirs);
        for (name, ty, data) in tensors(&ours) {
            let Some((_, t, d)) = theirs_t.iter().find(|t| t.0 == name) else {
                failures.push(format!("{}: {name} missing", r.name));
                continue;
            };
            if *t != ty {
                failures.push(format!("{}: {name}: type {ty} vs {t}", r.name));
                continue;
            }
            if *d != data {
                failures.push(format!("{}: {name} (type {ty}) bytes differ", r.name));
            }
        }
        for p in [&ours_lpk, &ours, &theirs] {
            let _ = std::fs::remove_file(p);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
