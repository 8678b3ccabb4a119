//! Opening something that is not a `.lpk` says what it is and what to do, without a cause
//! chain: a missing file, a folder, a GGUF, a zip (a `.pth`), a safetensors file.

use llamapack_format::Lpk;

fn open_err(path: &std::path::Path) -> String {
    Lpk::open(path).unwrap_err().to_string()
}

#[test]
fn wrong_inputs_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = open_err(&d.join("missing.lpk"));
    assert!(err.contains("No such file or directory"), "{err}");
    let err = open_err(d);
    assert!(err.contains("is a directory"), "{err}");
    assert!(!err.contains("No such device"), "{err}");
    for (name, bytes, says) in [
        ("m.gguf", &b"GGUF\x03\x00\x00\x00"[..], "is a GGUF file"),
        ("m.pth", &b"PK\x03\x04rest"[..], "is a zip archive"),
        (
            "m.safetensors",
            &b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}  "[..],
            "safetensors",
        ),
    ] {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = open_err(&p);
        assert!(
            err.contains(says) && err.contains("llamapack convert"),
            "{err}"
        );
        assert!(err.starts_with(&p.display().to_string()), "{err}");
    }
    #[cfg(unix)]
    {
        let err = open_err(std::path::Path::new("/dev/null"));
        assert!(err.contains("not a regular file"), "{err}");
    }
}
