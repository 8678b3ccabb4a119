use super::*;

fn tracked(tmp: &Path) -> bool {
    unfinished().iter().any(|(t, _)| t == tmp)
}

/// A temp file is tracked while it is written and forgotten once renamed into place or
/// dropped; a dropped output leaves nothing. (`remove_unfinished` itself is exercised by the
/// CLI's Ctrl-C test in `tests/interrupt.rs`, in its own process: here it would delete the temp
/// files of tests running in parallel.)
#[test]
fn unfinished_outputs_are_tracked_until_renamed_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done.bin");
    let mut f = OutputFile::create(&done).unwrap();
    f.write_all(b"abc").unwrap();
    assert!(tracked(&temp_path_for(&done)) && !done.exists());
    assert_eq!(f.finish().unwrap(), done);
    assert!(!tracked(&temp_path_for(&done)));
    assert_eq!(std::fs::read(&done).unwrap(), b"abc");
    let open = dir.path().join("open.bin");
    let f = OutputFile::create(&open).unwrap();
    assert!(tracked(&temp_path_for(&open)) && temp_path_for(&open).exists());
    drop(f);
    assert!(!tracked(&temp_path_for(&open)) && !temp_path_for(&open).exists());
    assert!(!open.exists());
}

#[test]
fn overwrite_at_patches_and_appending_continues() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    let mut f = OutputFile::create(&p).unwrap();
    f.write_all(b"0000tail").unwrap();
    f.overwrite_at(0, b"HEAD").unwrap();
    f.write_all(b"!").unwrap();
    assert_eq!(f.position(), 9);
    f.finish().unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"HEADtail!");
}

/// Positional writes from two threads, each starting the writeback of what it wrote (also of
/// ranges written twice, and of an empty one): the file holds exactly the bytes written.
#[test]
fn positional_writes_with_writeback_from_threads() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    let mut f = OutputFile::create(&p).unwrap();
    f.write_all(b"head").unwrap();
    let at = f.reserve(2 << 20).unwrap();
    f.write_all(b"tail").unwrap();
    {
        let w = f.positional().unwrap();
        std::thread::scope(|s| {
            for t in 0..2u8 {
                let w = &w;
                s.spawn(move || {
                    let half = 1u64 << 20;
                    let off = at + u64::from(t) * half;
                    for (i, c) in vec![t + 1; 1 << 20].chunks(4096).enumerate() {
                        w.write_at(off + 4096 * i as u64, c).unwrap();
                        w.start_writeback(off, 4096 * (i as u64 + 1));
                    }
                    w.start_writeback(off, 0);
                });
            }
        });
    }
    f.write_all(b"!").unwrap();
    f.finish().unwrap();
    let got = std::fs::read(&p).unwrap();
    let mut want = b"head".to_vec();
    want.extend(std::iter::repeat_n(1u8, 1 << 20));
    want.extend(std::iter::repeat_n(2u8, 1 << 20));
    want.extend(b"tail!");
    assert!(got == want, "file differs from the bytes written");
}

/// A `kill -9` leaves `.NAME.tmp-PID`; the next write of NAME removes those of ended processes
/// (files and folders) and keeps those of running ones and of other names.
#[cfg(target_os = "linux")]
#[test]
fn stale_temps_of_ended_processes_are_removed_on_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.npy");
    let dead = crate::testing::ended_pid();
    let stale = temp_path_with_pid(&dest, dead);
    std::fs::write(&stale, b"partial").unwrap();
    let alive = temp_path_with_pid(&dest, 1);
    std::fs::write(&alive, b"being written").unwrap();
    let other = temp_path_with_pid(&dir.path().join("other.npy"), dead);
    std::fs::write(&other, b"x").unwrap();
    write_file(&dest, b"new").unwrap();
    assert!(!stale.exists(), "the stale temp of pid {dead} is left");
    assert!(alive.exists() && other.exists());

    let folder = dir.path().join("export");
    let stale_dir = temp_path_with_pid(&folder, dead);
    std::fs::create_dir(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("model.safetensors"), b"part").unwrap();
    let out = OutputDir::create(&folder).unwrap();
    out.write_file("config.json", b"{}").unwrap();
    out.finish().unwrap();
    assert!(!stale_dir.exists());
    assert_eq!(std::fs::read(folder.join("config.json")).unwrap(), b"{}");
}

/// A folder appears whole or not at all; its files are written 0644-style (as any other
/// output, by the umask), and errors name the final path, not the temp folder.
#[test]
fn output_dirs_are_atomic_and_name_final_paths() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("hf");
    let out = OutputDir::create(&dest).unwrap();
    out.write_file("a.json", b"1").unwrap();
    assert!(!dest.exists());
    drop(out);
    assert!(!dest.exists() && !temp_path_for(&dest).exists());

    let out = OutputDir::create(&dest).unwrap();
    std::fs::remove_dir_all(temp_path_for(&dest)).unwrap();
    let err = out.write_file("b.json", b"2").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: create", dest.join("b.json").display())),
        "{err}"
    );
    assert!(!err.contains(".tmp-"), "{err}");
    drop(out);

    std::fs::create_dir(&dest).unwrap();
    let out = OutputDir::create(&dest).unwrap();
    out.write_file("c.json", b"3").unwrap();
    out.finish().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        assert_eq!(mode(&dest.join("c.json")), mode(&plain));
    }
    let err = OutputDir::create(&dest).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn output_paths_are_checked_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("no/such/out.bin");
    let err = OutputFile::create(&missing).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    let err = OutputFile::create(d).unwrap_err().to_string();
    assert!(err.contains("is a directory"), "{err}");
    let file = d.join("f");
    std::fs::write(&file, b"").unwrap();
    let err = OutputFile::create(file.join("x")).unwrap_err().to_string();
    assert!(err.contains("is not a directory"), "{err}");
    let err = OutputDir::create(&file).unwrap_err().to_string();
    assert!(err.contains("is not a directory"), "{err}");
    #[cfg(unix)]
    {
        let err = OutputFile::create("/dev/null").unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}

/// An output that is an input — by the same path, through `..`, a symlink or a hard link — is
/// refused, as are two outputs that are one file; an input declared as updated may be
/// replaced, but not when it is also another input.
#[test]
fn outputs_that_are_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("m.lpk");
    std::fs::write(&input, b"model").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    let mut same = vec![input.clone(), d.join("sub/../m.lpk")];
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&input, d.join("link.lpk")).unwrap();
        same.push(d.join("link.lpk"));
    }
    std::fs::hard_link(&input, d.join("hard.lpk")).unwrap();
    same.push(d.join("hard.lpk"));
    for out in &same {
        let err = Outputs::new()
            .input("MODEL", &input)
            .file("-o", out)
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "refusing to overwrite the input MODEL {}",
                input.display()
            )),
            "{}: {err}",
            out.display()
        );
        let err = Outputs::new()
            .file("-o", d.join("q.lpk"))
            .file("--report", out)
            .file("--svg", &input)
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("they are the same file"), "{err}");
        assert!(same_file(out, &input));
    }
    // A folder input protects its files; a different file is fine.
    let ckpt = d.join("ckpt");
    std::fs::create_dir(&ckpt).unwrap();
    std::fs::write(ckpt.join("params.json"), b"{}").unwrap();
    let err = Outputs::new()
        .input("SRC", &ckpt)
        .file("-o", ckpt.join("params.json"))
        .check()
        .unwrap_err();
    assert!(err.to_string().contains("params.json"), "{err}");
    Outputs::new()
        .input("SRC", &ckpt)
        .file("-o", ckpt.join("out.lpk"))
        .file("--report", d.join("r.json"))
        .check()
        .unwrap();
    assert!(!same_file(&input, &ckpt.join("params.json")));
    // Updates.
    Outputs::new()
        .updated("--in-file", &input)
        .file("-o", d.join("hard.lpk"))
        .check()
        .unwrap();
    let other = d.join("ref.lpk");
    std::fs::write(&other, b"reference").unwrap();
    Outputs::new()
        .updated("CANDIDATE", &input)
        .input("--reference", &other)
        .file("--store", &input)
        .check()
        .unwrap();
    let err = Outputs::new()
        .updated("CANDIDATE", &input)
        .input("--reference", d.join("link.lpk"))
        .file("--store", &input)
        .check();
    #[cfg(unix)]
    assert!(err.unwrap_err().to_string().contains("--reference"));
    #[cfg(not(unix))]
    let _ = err;
}
