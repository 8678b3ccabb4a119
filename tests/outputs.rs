//! Outputs never destroy inputs: every output flag of every command, given a path that is one
//! of the command's inputs (the same path, through `..`, a symlink or a hard link), or the
//! same file as another output, is refused before any work, and the input is left as it was.
//! Also: output paths are validated first (a missing folder, a folder given for a file), and
//! the errors of wrong input paths say their cause without `--verbose`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::{fails, fixture, llamapack, ok, s, shared};

/// Inputs of every kind, copied into one folder.
struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let copy = |from: &Path, to: &str| {
            std::fs::copy(from, root.join(to)).unwrap();
        };
        copy(&shared().f16, "m.lpk");
        copy(&shared().f16, "ref.lpk");
        copy(&fixture("text/corpus.txt"), "t.txt");
        copy(&fixture("gguf/tiny-f16.gguf"), "g.gguf");
        copy(&fixture("imatrix/tiny.imatrix.gguf"), "im.gguf");
        copy(&fixture("tiny/tokenizer.model"), "tokenizer.model");
        std::fs::write(root.join("ids.json"), "[1, 5, 9]").unwrap();
        std::fs::write(root.join("old-q.lpk"), "an earlier output").unwrap();
        std::fs::create_dir(root.join("meta")).unwrap();
        for f in ["params.json", "consolidated.00.pth", "consolidated.01.pth"] {
            copy(&fixture(&format!("tiny/meta/{f}")), &format!("meta/{f}"));
        }
        std::fs::create_dir(root.join("sub")).unwrap();
        Env { _tmp: tmp, root }
    }

    fn p(&self, rel: &str) -> String {
        s(&self.root.join(rel)).to_owned()
    }

    /// Paths naming the file `rel`: itself, through `..`, a symlink and a hard link.
    fn aliases(&self, rel: &str) -> Vec<String> {
        let target = self.root.join(rel);
        let tag = rel.replace('/', "_");
        let mut v = vec![self.p(rel), self.p(&format!("sub/../{rel}"))];
        #[cfg(unix)]
        {
            let link = self.root.join(format!("link-{tag}"));
            if !link.exists() {
                std::os::unix::fs::symlink(&target, &link).unwrap();
            }
            v.push(s(&link).to_owned());
        }
        let hard = self.root.join(format!("hard-{tag}"));
        if !hard.exists() {
            std::fs::hard_link(&target, &hard).unwrap();
        }
        v.push(s(&hard).to_owned());
        v
    }

    /// Every entry under the folder, recursively (temp files included: they are hidden names).
    fn listing(&self) -> BTreeSet<PathBuf> {
        fn walk(d: &Path, into: &mut BTreeSet<PathBuf>) {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() && !p.is_symlink() {
                    walk(&p, into);
                }
                into.insert(p);
            }
        }
        let mut v = BTreeSet::new();
        walk(&self.root, &mut v);
        v
    }
}

/// A command line with `OUT` where the colliding path goes; the input (relative to the
/// folder) it collides with; what the error says.
struct Case {
    args: &'static [&'static str],
    target: &'static str,
    says: &'static str,
}

const REFUSED: &str = "refusing to";

/// One row per output flag of every command that writes files (run, bench, inspect, verify and
/// tokenize write none), and per kind of input it could collide with.
const CASES: &[Case] = &[
    Case {
        args: &["convert", "g.gguf", "-o", "OUT"],
        target: "g.gguf",
        says: REFUSED,
    },
    Case {
        args: &["convert", "meta", "-o", "OUT"],
        target: "meta/consolidated.00.pth",
        says: REFUSED,
    },
    Case {
        args: &["convert", "meta", "-o", "OUT"],
        target: "meta/params.json",
        says: REFUSED,
    },
    // Found beside the checkpoint, not named on the command line: refused by the writer.
    Case {
        args: &["convert", "meta", "-o", "OUT"],
        target: "tokenizer.model",
        says: REFUSED,
    },
    Case {
        args: &[
            "convert",
            "meta",
            "--tokenizer",
            "tokenizer.model",
            "-o",
            "OUT",
        ],
        target: "tokenizer.model",
        says: REFUSED,
    },
    Case {
        args: &["quantize", "m.lpk", "-o", "OUT", "--type", "q4_0"],
        target: "m.lpk",
        says: REFUSED,
    },
    Case {
        args: &[
            "quantize", "m.lpk", "-o", "q.lpk", "--report", "OUT", "--type", "q4_0",
        ],
        target: "m.lpk",
        says: REFUSED,
    },
    Case {
        args: &[
            "quantize",
            "m.lpk",
            "-o",
            "q.lpk",
            "--imatrix",
            "im.gguf",
            "--report",
            "OUT",
            "--type",
            "q4_k_m",
        ],
        target: "im.gguf",
        says: REFUSED,
    },
    Case {
        args: &[
            "quantize",
            "m.lpk",
            "-o",
            "OUT",
            "--imatrix",
            "im.gguf",
            "--type",
            "q4_k_m",
        ],
        target: "im.gguf",
        says: REFUSED,
    },
    // Two outputs of one command that are one file.
    Case {
        args: &[
            "quantize",
            "m.lpk",
            "-o",
            "old-q.lpk",
            "--report",
            "OUT",
            "--type",
            "q4_0",
        ],
        target: "old-q.lpk",
        says: "they are the same file",
    },
    Case {
        args: &["logits", "m.lpk", "--prompt", "hi", "-o", "OUT"],
        target: "m.lpk",
        says: REFUSED,
    },
    Case {
        args: &["logits", "m.lpk", "--tokens", "ids.json", "-o", "OUT"],
        target: "ids.json",
        says: REFUSED,
    },
    Case {
        args: &["export", "m.lpk", "--format", "gguf", "-o", "OUT"],
        target: "m.lpk",
        says: REFUSED,
    },
    // A folder output over a file: refused as not a directory, before any work.
    Case {
        args: &["export", "m.lpk", "--format", "safetensors", "-o", "OUT"],
        target: "m.lpk",
        says: "not a directory",
    },
    Case {
        args: &[
            "imatrix", "m.lpk", "--text", "t.txt", "--ctx", "64", "-o", "OUT",
        ],
        target: "m.lpk",
        says: REFUSED,
    },
    Case {
        args: &[
            "imatrix", "m.lpk", "--text", "t.txt", "--ctx", "64", "-o", "OUT",
        ],
        target: "t.txt",
        says: REFUSED,
    },
    Case {
        args: &[
            "compare",
            "m.lpk",
            "--reference",
            "ref.lpk",
            "--text",
            "t.txt",
            "--svg",
            "OUT",
        ],
        target: "m.lpk",
        says: REFUSED,
    },
    Case {
        args: &[
            "compare",
            "m.lpk",
            "--reference",
            "ref.lpk",
            "--text",
            "t.txt",
            "--svg",
            "OUT",
        ],
        target: "ref.lpk",
        says: REFUSED,
    },
    Case {
        args: &[
            "compare",
            "m.lpk",
            "--reference",
            "ref.lpk",
            "--text",
            "t.txt",
            "--svg",
            "OUT",
        ],
        target: "t.txt",
        says: REFUSED,
    },
    // --store rewrites the candidate, which must then not also be the reference.
    Case {
        args: &[
            "eval",
            "m.lpk",
            "--reference",
            "OUT",
            "--text",
            "t.txt",
            "--store",
        ],
        target: "m.lpk",
        says: REFUSED,
    },
];

#[test]
fn no_output_of_any_command_can_be_an_input() {
    let env = Env::new();
    for case in CASES {
        for alias in env.aliases(case.target) {
            let before = env.listing();
            let target = env.root.join(case.target);
            let content = std::fs::read(&target).unwrap();
            let args: Vec<String> = case
                .args
                .iter()
                .map(|&a| match a {
                    "OUT" => alias.clone(),
                    a if env.root.join(a).exists() => env.p(a),
                    a => a.to_owned(),
                })
                .collect();
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = llamapack(&argv);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{argv:?} succeeded");
            assert!(err.contains(case.says), "{argv:?}: {err}");
            // Refused before the work: commands print their results only after it.
            assert!(out.stdout.is_empty(), "{argv:?} worked before refusing");
            assert_eq!(
                std::fs::read(&target).unwrap(),
                content,
                "{argv:?} changed {}",
                case.target
            );
            assert_eq!(env.listing(), before, "{argv:?} wrote something: {err}");
        }
    }
}

/// The updates that are by design stay possible: `imatrix --in-file x -o x` merges into `x`,
/// `eval --store` rewrites the candidate.
#[test]
fn declared_updates_of_an_input_are_allowed() {
    let env = Env::new();
    let im = env.p("im.gguf");
    let before = std::fs::read(&im).unwrap();
    ok(&[
        "imatrix",
        &env.p("m.lpk"),
        "--in-file",
        &im,
        "-o",
        &env.aliases("im.gguf")[1],
    ]);
    assert_ne!(std::fs::read(&im).unwrap(), before);
    ok(&[
        "eval",
        &env.p("m.lpk"),
        "--reference",
        &env.p("ref.lpk"),
        "--text",
        &env.p("t.txt"),
        "--ctx",
        "64",
        "--chunks",
        "1",
        "--store",
    ]);
    let inspect = ok(&["inspect", &env.p("m.lpk"), "--json"]);
    assert!(inspect.contains("kld_mean"), "{inspect}");
}

/// Output paths are checked before the work: a missing folder, a folder given for a file, a
/// device. `compare --svg` into a missing folder fails before scoring (nothing printed).
#[test]
fn output_paths_are_validated_before_the_work() {
    let env = Env::new();
    let m = env.p("m.lpk");
    let missing = env.p("no/such/dir/x.svg");
    let out = llamapack(&[
        "compare",
        &m,
        "--reference",
        &env.p("ref.lpk"),
        "--text",
        &env.p("t.txt"),
        "--svg",
        &missing,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("{missing}: the directory")) && err.contains("does not exist"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "the work started before the check");
    for (args, says) in [
        (
            vec!["logits", &m, "--prompt", "hi", "-o", s(&env.root)],
            "is a directory",
        ),
        (
            vec!["quantize", &m, "-o", "/dev/null", "--type", "q4_0"],
            "not a regular file",
        ),
        (
            vec!["export", &m, "--format", "gguf", "-o", &missing],
            "does not exist",
        ),
    ] {
        let err = fails(&args);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("--verbose"), "{err}");
    }
}

/// Wrong input paths say why without `--verbose`: a missing file, a folder where a file is
/// needed (not mmap's "No such device"), a GGUF or a .pth where a .lpk is needed.
#[test]
fn input_path_errors_say_their_cause() {
    let env = Env::new();
    let dir = s(&env.root).to_owned();
    let missing = env.p("nope.lpk");
    let m = env.p("m.lpk");
    let (t, q) = (env.p("t.txt"), env.p("q.lpk"));
    for (args, says) in [
        (
            vec!["run", &missing, "--prompt", "hi"],
            "No such file or directory",
        ),
        (vec!["run", &dir, "--prompt", "hi"], "is a directory"),
        (
            vec!["quantize", &dir, "-o", &q, "--type", "q4_0"],
            "is a directory",
        ),
        (
            vec!["eval", &m, "--reference", &dir, "--text", &t],
            "is a directory",
        ),
        (
            vec!["convert", &missing, "-o", &q],
            "No such file or directory",
        ),
    ] {
        let err = fails(&args);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("No such device"), "{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

/// The safetensors export: files 0644 like every other output (umask applied, not 0600),
/// `rms_norm_eps` as transformers writes it, and `-o NAME.safetensors` refused.
#[test]
fn safetensors_export_files_are_like_any_other_output() {
    let env = Env::new();
    let out = env.root.join("hf");
    ok(&[
        "export",
        &env.p("m.lpk"),
        "--format",
        "safetensors",
        "-o",
        s(&out),
    ]);
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"rms_norm_eps\": 1e-05,"), "{config}");
    assert!(config.contains("\"rope_theta\": 10000.0,"), "{config}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let gguf = env.root.join("m.gguf");
        ok(&[
            "export",
            &env.p("m.lpk"),
            "--format",
            "gguf",
            "-o",
            s(&gguf),
        ]);
        for f in ["model.safetensors", "config.json", "tokenizer.model"] {
            assert_eq!(mode(&out.join(f)), mode(&gguf), "{f}");
        }
        assert_ne!(mode(&out.join("model.safetensors")) & 0o044, 0);
    }
    let err = fails(&[
        "export",
        &env.p("m.lpk"),
        "--format",
        "safetensors",
        "-o",
        &env.p("x.safetensors"),
    ]);
    assert!(err.contains("a safetensors export is a directory"), "{err}");
    assert!(!env.root.join("x.safetensors").exists());
}
