//! Input files: mapping them, hashing them, and naming them in provenance.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use llamapack_format::SourceFile;
use memmap2::Mmap;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// An input file mapped into memory, with the name it has in provenance.
#[derive(Debug)]
pub(crate) struct Mapped {
    /// Full path.
    pub path: PathBuf,
    /// Name relative to the source directory (what provenance records).
    pub name: String,
    /// The bytes.
    pub map: Mmap,
}

impl Mapped {
    pub fn open(path: &Path, name: String) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, "open", e))?;
        // SAFETY: the file is opened read-only and only read through this map. Another process
        // truncating it while we read would be undefined behaviour; that is the documented
        // limitation of every mmap-based reader (safetensors, candle, llama.cpp).
        let map = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, "mmap", e))?;
        #[cfg(unix)]
        {
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        Ok(Mapped {
            path: path.to_path_buf(),
            name,
            map,
        })
    }

    /// The label used in error messages: the path as given.
    pub fn label(&self) -> String {
        self.path.display().to_string()
    }
}

/// Lower-case hex sha256 of `data`, feeding `progress` with the bytes hashed.
pub(crate) fn sha256_hex(data: &[u8], progress: &AtomicU64, stop: &AtomicBool) -> String {
    let mut h = Sha256::new();
    for c in data.chunks(1 << 22) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        h.update(c);
        progress.fetch_add(c.len() as u64, Ordering::Relaxed);
    }
    let digest = h.finalize();
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hashes every file (on up to `threads` threads), reporting bytes to `progress`; returns the
/// provenance records sorted by name. Setting `stop` abandons the work (results are then junk).
pub(crate) fn hash_all(
    files: &[&Mapped],
    threads: usize,
    progress: &AtomicU64,
    stop: &AtomicBool,
) -> Vec<SourceFile> {
    let next = AtomicU64::new(0);
    let mut out: Vec<SourceFile> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.clamp(1, files.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(f) = files.get(i) else { break };
                        done.push(SourceFile {
                            name: f.name.clone(),
                            sha256: sha256_hex(&f.map, progress, stop),
                            bytes: f.map.len() as u64,
                        });
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("hash worker panicked"))
            .collect()
    });
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Provenance name of `path` relative to `base` (`/`-separated), or its file name.
pub(crate) fn rel_name(path: &Path, base: &Path) -> String {
    match path.strip_prefix(base) {
        Ok(r) if !r.as_os_str().is_empty() => r
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        _ => {
            // e.g. `../tokenizer.model` in Meta's layout, or an explicit --tokenizer path.
            if let (Some(pp), Some(n)) = (path.parent(), path.file_name())
                && base.parent() == Some(pp)
            {
                return format!("../{}", n.to_string_lossy());
            }
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }
    }
}

/// Refuses an output path that is (or is a link to) one of the inputs.
pub(crate) fn check_output(out: &Path, inputs: &[&Path]) -> Result<()> {
    let canon = |p: &Path| -> Option<PathBuf> {
        let parent = p.parent().filter(|x| !x.as_os_str().is_empty());
        let dir = match parent {
            Some(d) => d.canonicalize().ok()?,
            None => std::env::current_dir().ok()?,
        };
        Some(dir.join(p.file_name()?))
    };
    let out_c = canon(out);
    for &input in inputs {
        let same_path = match (&out_c, canon(input)) {
            (Some(a), Some(b)) => *a == b,
            _ => false,
        };
        if same_path || same_file(out, input) {
            return Err(Error::OutputIsInput {
                out: out.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &Path, _: &Path) -> bool {
    false
}
