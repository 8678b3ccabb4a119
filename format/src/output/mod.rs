//! Every file llamapack writes goes through this module.
//!
//! - [`OutputFile`] writes one file to a hidden sibling `.NAME.tmp-PID` and renames it into
//!   place in [`OutputFile::finish`]: nothing appears at the destination until the file is
//!   complete, and an error (a full disk), a panic or an early return deletes the temp file.
//!   The `.lpk` and GGUF writers, the safetensors export, reports, charts and `.npy` files are
//!   all built on it. [`write_file`] is the one-call form for small files.
//! - [`OutputDir`] assembles a folder the same way (a hidden `.NAME.tmp-PID` folder renamed at
//!   the end); its files are [`OutputFile`]s too.
//! - [`Outputs`] checks all the output paths of a command before any work starts: each one's
//!   folder exists, a file is not given where a folder is expected (or the other way round),
//!   no output is (a link to) an input, and no two outputs are the same file. Same file means
//!   the same canonical path (`..`, symlinks) or the same device and inode (hard links).
//! - Once the CLI calls [`guard_inputs`], readers record every file they open
//!   ([`note_input`]) and [`OutputFile::create`] refuses to replace any of them, so an output
//!   that a command forgot to declare still cannot destroy an input.
//!
//! Interruptions: Ctrl-C and SIGTERM run [`remove_unfinished`] (the CLI's handler). A
//! `kill -9` cannot be caught and leaves the hidden temp file (or folder) behind; the next
//! write of the same destination deletes the temp siblings left by processes that no longer
//! run (on Linux, where `/proc/PID` tells; elsewhere they are left alone).
//!
//! Error messages name the destination, never the temp file.
//!
//! ```
//! use llamapack_format::output::{OutputFile, write_file};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("report.json");
//! let mut f = OutputFile::create(&path)?;
//! f.write_all(b"{\"ok\": ")?;
//! f.write_all(b"true}\n")?;
//! assert!(!path.exists()); // not until finish
//! f.finish()?;
//! assert_eq!(std::fs::read_to_string(&path)?, "{\"ok\": true}\n");
//! write_file(&path, b"{}")?; // replaced atomically
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod check;

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use check::{Outputs, guard_inputs, note_input, same_file};

use crate::error::{Error, Result};

/// Temp files and folders this process is writing, with the destination each becomes: what an
/// interrupted run would otherwise leave behind.
static UNFINISHED: std::sync::Mutex<Vec<(PathBuf, PathBuf)>> = std::sync::Mutex::new(Vec::new());

fn unfinished() -> std::sync::MutexGuard<'static, Vec<(PathBuf, PathBuf)>> {
    UNFINISHED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn track(tmp: &Path, dest: &Path) {
    unfinished().push((tmp.to_path_buf(), dest.to_path_buf()));
}

fn untrack(tmp: &Path) {
    unfinished().retain(|(t, _)| t != tmp);
}

/// Deletes every unfinished output of this process (temp files and folders) and returns the
/// destinations they were for; the CLI calls it from its Ctrl-C / SIGTERM handler.
pub fn remove_unfinished() -> Vec<PathBuf> {
    let entries = std::mem::take(&mut *unfinished());
    for (tmp, _) in &entries {
        remove_any(tmp);
    }
    entries.into_iter().map(|(_, dest)| dest).collect()
}

fn remove_any(p: &Path) {
    let _ = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
}

/// The temp name for `dest`: the hidden sibling `.NAME.tmp-PID`, so the rename is atomic.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    temp_path_with_pid(dest, std::process::id())
}

fn temp_path_with_pid(dest: &Path, pid: u32) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.tmp-{pid}"))
}

/// Whether process `pid` is known to have ended: `Some(true)` when `/proc` is mounted and has
/// no entry for it, `None` when this system cannot tell.
fn process_ended(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self")
        .exists()
        .then(|| !proc.join(pid.to_string()).exists())
}

/// Deletes the temp siblings of `dest` left by processes that ended without finishing (a
/// `kill -9`, a power cut); returns what was removed. Those of running processes stay.
pub fn remove_stale_temps(dest: &Path) -> Vec<PathBuf> {
    let Some(name) = dest.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefix = format!(".{name}.tmp-");
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let own = std::process::id();
    let mut removed = Vec::new();
    for e in entries.filter_map(std::result::Result::ok) {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != own && process_ended(pid) == Some(true) {
            remove_any(&e.path());
            removed.push(e.path());
        }
    }
    removed
}

/// One output file being written; see the module docs.
#[derive(Debug)]
pub struct OutputFile {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    /// Where the file goes.
    target: PathBuf,
    /// What errors call it: the target, or the final path of a file of an [`OutputDir`].
    dest: PathBuf,
    pos: u64,
    done: bool,
}

impl OutputFile {
    /// Starts writing `dest` through its hidden temp sibling, after checking that `dest` can be
    /// written (its folder exists, it is not a folder, not a device) and that it is not an
    /// input of this process (see [`guard_inputs`]). Stale temp siblings of ended processes are
    /// removed first.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref();
        check::refuse_input(dest)?;
        check::file_path(dest)?;
        Self::start(dest.to_path_buf(), dest.to_path_buf())
    }

    fn start(target: PathBuf, dest: PathBuf) -> Result<Self> {
        remove_stale_temps(&target);
        let tmp = temp_path_for(&target);
        let f = File::create(&tmp).map_err(|e| Error::io(&dest, "create", e))?;
        track(&tmp, &dest);
        Ok(OutputFile {
            out: Some(BufWriter::with_capacity(1 << 20, f)),
            tmp,
            target,
            dest,
            pos: 0,
            done: false,
        })
    }

    /// The path the file will have.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn io(&self, op: &'static str) -> impl Fn(std::io::Error) -> Error + '_ {
        move |e| Error::io(&self.dest, op, e)
    }

    fn file(&mut self) -> &mut BufWriter<File> {
        self.out.as_mut().expect("output used after finish")
    }

    /// Appends `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let r = self.file().write_all(bytes);
        r.map_err(self.io("write"))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Overwrites bytes already written at `offset` (e.g. a header that is known only at the
    /// end); later writes still append.
    pub fn overwrite_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        let end = offset.checked_add(bytes.len() as u64);
        assert!(
            end.is_some_and(|e| e <= self.pos),
            "overwrite_at beyond the end"
        );
        let f = self.file();
        let r = f
            .flush()
            .and_then(|()| f.seek(SeekFrom::Start(offset)))
            .and_then(|_| f.write_all(bytes))
            .and_then(|()| f.flush())
            .and_then(|()| f.seek(SeekFrom::End(0)));
        r.map_err(self.io("write"))?;
        Ok(())
    }

    /// Reserves the next `n` bytes (zeros until [`Positional::write_at`] fills them) and returns
    /// their offset; later appends go after them.
    pub fn reserve(&mut self, n: u64) -> Result<u64> {
        let start = self.pos;
        let end = start.checked_add(n).expect("reservation overflows u64");
        let f = self.file();
        let r = f
            .flush()
            .and_then(|()| f.get_ref().set_len(end))
            .and_then(|()| f.seek(SeekFrom::Start(end)));
        r.map_err(self.io("write"))?;
        self.pos = end;
        Ok(start)
    }

    /// Positional writes into bytes already written or reserved, from any number of threads
    /// (`pwrite(2)`; the buffer of appends is flushed first). Appends resume after it is dropped.
    pub fn positional(&mut self) -> Result<Positional<'_>> {
        let r = self.file().flush();
        r.map_err(self.io("write"))?;
        let file = self
            .out
            .as_ref()
            .expect("output used after finish")
            .get_ref();
        Ok(Positional {
            file,
            dest: &self.dest,
            end: self.pos,
            writeback: Writeback::start(file),
        })
    }

    /// Flushes, syncs to disk and renames the file into place; returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        let out = self.out.take().expect("finish called once");
        let f = out
            .into_inner()
            .map_err(|e| Error::io(&self.dest, "write", e.into_error()))?;
        f.sync_all().map_err(self.io("sync"))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.target).map_err(self.io("rename"))?;
        self.done = true;
        untrack(&self.tmp);
        sync_parent(&self.target);
        Ok(self.dest.clone())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.done {
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
        untrack(&self.tmp);
    }
}

/// Positional writes into an [`OutputFile`]; see [`OutputFile::positional`]. `Sync`: threads
/// share one and write disjoint ranges.
#[derive(Debug)]
pub struct Positional<'f> {
    file: &'f File,
    dest: &'f Path,
    end: u64,
    writeback: Option<Writeback>,
}

/// A thread that starts the writeback of the ranges it is sent (see
/// [`Positional::start_writeback`]): the kernel's block allocation and submission then run
/// beside the writers instead of inside them.
#[derive(Debug)]
struct Writeback {
    tx: Option<std::sync::mpsc::Sender<(u64, u64)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writeback {
    fn start(f: &File) -> Option<Writeback> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let f = f.try_clone().ok()?;
        let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                for (off, len) in rx {
                    sync_range(&f, off, len);
                }
            })
            .ok()?;
        Some(Writeback {
            tx: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(target_os = "linux")]
fn sync_range(f: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain system call on a file descriptor `f` keeps open; it reads no memory of
    // this process.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::sync_file_range(f.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn sync_range(_: &File, _: u64, _: u64) {}

impl Positional<'_> {
    /// Writes `bytes` at `offset`, which with its length must lie within what was written or
    /// reserved before [`OutputFile::positional`].
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let end = offset.checked_add(bytes.len() as u64);
        assert!(
            end.is_some_and(|e| e <= self.end),
            "write_at beyond the reserved end"
        );
        write_all_at(self.file, bytes, offset).map_err(|e| Error::io(self.dest, "write", e))
    }

    /// What error messages call the file (its destination).
    pub fn dest(&self) -> &Path {
        self.dest
    }

    /// Starts writing `len` bytes at `offset`, already written, back to disk without waiting
    /// for it (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`, on a thread of its own, since the
    /// call can block on the disk's queue), so that the disk works while the rest of the file
    /// is made and the one sync of [`OutputFile::finish`] has little left to wait for. Advice
    /// only: elsewhere, or if the kernel refuses, nothing happens (errors of the write itself
    /// are reported by that sync).
    pub fn start_writeback(&self, offset: u64, len: u64) {
        let tx = self.writeback.as_ref().and_then(|w| w.tx.as_ref());
        if tx.is_none_or(|tx| tx.send((offset, len)).is_err()) {
            sync_range(self.file, offset, len);
        }
    }
}

#[cfg(unix)]
fn write_all_at(f: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, bytes, offset)
}

#[cfg(windows)]
fn write_all_at(f: &File, mut bytes: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        match f.seek_write(bytes, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes = &bytes[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes a rename durable where the system allows syncing a folder (best effort).
fn sync_parent(dest: &Path) {
    #[cfg(unix)]
    if let Some(d) = dest.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(f) = File::open(d)
    {
        let _ = f.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dest;
}

/// Writes `bytes` to `dest` through an [`OutputFile`] (checked, atomic); returns the path.
pub fn write_file(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<PathBuf> {
    let mut f = OutputFile::create(dest)?;
    f.write_all(bytes)?;
    f.finish()
}

/// A folder of output files assembled under a hidden temp name and renamed into place by
/// [`OutputDir::finish`]; dropping it earlier deletes everything written.
#[derive(Debug)]
pub struct OutputDir {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl OutputDir {
    /// Starts the folder `dest`, which must not exist or be an empty folder (it is replaced),
    /// must not be an input, and whose parent must exist.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        check::refuse_input(&dest)?;
        check::dir_path(&dest)?;
        remove_stale_temps(&dest);
        let tmp = temp_path_for(&dest);
        remove_any(&tmp);
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&dest, "create directory", e))?;
        track(&tmp, &dest);
        Ok(OutputDir {
            tmp,
            dest,
            done: false,
        })
    }

    /// The folder's final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Starts the file `name` of the folder.
    pub fn file(&self, name: &str) -> Result<OutputFile> {
        OutputFile::start(self.tmp.join(name), self.dest.join(name))
    }

    /// Writes the whole file `name` of the folder.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut f = self.file(name)?;
        f.write_all(bytes)?;
        f.finish().map(drop)
    }

    /// Renames the folder into place (replacing an empty folder there); returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.dest.is_dir() {
            std::fs::remove_dir(&self.dest)
                .map_err(|e| Error::io(&self.dest, "replace empty directory", e))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, "rename", e))?;
        untrack(&self.tmp);
        self.done = true;
        sync_parent(&self.dest);
        Ok(self.dest.clone())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
        untrack(&self.tmp);
    }
}

#[cfg(test)]
mod tests;
