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
        let f = llamapack_format::reader::open_input(path)?;
        // SAFETY: the file is opened read-only and only read through this map. Another process
        // truncating it while we read would be undefined behaviour; that is the documented
        // limitation of every mmap-based reader (safetensors, candle, llama.cpp).
        #[allow(unsafe_code)]
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

    /// Drops the pages of `bytes` (a slice of this map) from this process's resident set once a
    /// conversion is done with them, so peak RSS stays near one tensor rather than growing to
    /// the whole checkpoint. A no-op for slices of other buffers.
    pub fn release(&self, bytes: &[u8]) {
        let base = self.map.as_ptr() as usize;
        let start = bytes.as_ptr() as usize;
        if bytes.is_empty() || start < base || start + bytes.len() > base + self.map.len() {
            return;
        }
        const PAGE: usize = 4096;
        let off = (start - base).div_ceil(PAGE) * PAGE;
        let end = (start - base + bytes.len()) / PAGE * PAGE;
        if end > off {
            #[cfg(unix)]
            // SAFETY: the map is a shared, read-only mapping of a file. MADV_DONTNEED only
            // removes this process's page-table entries for the range; a later read faults the
            // same bytes back in from the page cache, so slices borrowed from the map stay
            // valid and unchanged (memmap2 marks the advice unsafe for private writable maps,
            // whose modifications it would discard; this map has none).
            #[allow(unsafe_code)]
            unsafe {
                let _ = self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    off,
                    end - off,
                );
            }
        }
    }

    /// The label used in error messages: the path as given.
    pub fn label(&self) -> String {
        self.path.display().to_string()
    }
}

/// Lower-case hex sha256 of a mapped file, feeding `progress` with the bytes hashed, and the
/// file's length on disk once hashed. Read through the map in windows that are released as
/// soon as they are hashed ([`Mapped::release`]), so hashing adds at most one window to the
/// RSS and copies nothing (a `read(2)` into a buffer was 15 % of a 7B-shaped convert's cycles).
pub(crate) fn sha256_hex(
    f: &Mapped,
    progress: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(String, u64)> {
    const WINDOW: usize = 4 << 20;
    let mut h = Sha256::new();
    for w in f.map.chunks(WINDOW) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        h.update(w);
        f.release(w);
        progress.fetch_add(w.len() as u64, Ordering::Relaxed);
    }
    let total = std::fs::metadata(&f.path)
        .map_err(|e| Error::io(&f.path, "stat", e))?
        .len();
    let digest = h.finalize();
    let hex = digest.iter().fold(String::with_capacity(64), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    });
    Ok((hex, total))
}

/// Hashes every file (on up to `threads` threads), reporting bytes to `progress`; returns the
/// provenance records sorted by name. Setting `stop` abandons the work (results are then junk).
/// A file whose length changed since it was mapped is an error.
pub(crate) fn hash_all(
    files: &[&Mapped],
    threads: usize,
    progress: &AtomicU64,
    stop: &AtomicBool,
) -> Result<Vec<SourceFile>> {
    let next = AtomicU64::new(0);
    let mut out: Vec<SourceFile> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.clamp(1, files.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(f) = files.get(i) else { break };
                        done.push(sha256_hex(f, progress, stop).map(|(sha256, n)| {
                            (
                                n,
                                SourceFile {
                                    name: f.name.clone(),
                                    sha256,
                                    bytes: f.map.len() as u64,
                                },
                                f,
                            )
                        }));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("hash worker panicked"))
            .map(|r| {
                let (n, sf, f) = r?;
                if n != sf.bytes && !stop.load(Ordering::Relaxed) {
                    return Err(Error::io(
                        &f.path,
                        "hash",
                        std::io::Error::other(format!(
                            "the file changed while being converted ({} bytes, now {n})",
                            sf.bytes
                        )),
                    ));
                }
                Ok(sf)
            })
            .collect::<Result<_>>()
    })?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
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
    match inputs
        .iter()
        .find(|i| llamapack_format::output::same_file(out, i))
    {
        Some(input) => Err(Error::OutputIsInput {
            out: out.to_path_buf(),
            input: input.to_path_buf(),
        }),
        None => Ok(()),
    }
}
