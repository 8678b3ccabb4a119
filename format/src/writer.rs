//! Streaming writer: tensors go to a sibling temp file one at a time; the header is written
//! last and the file is renamed into place only by [`LpkWriter::finish`].

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::DType;
use crate::error::{Error, Result};
use crate::header::{
    ALIGN, BlobEntry, Header, PREAMBLE_LEN, Preamble, TensorEntry, VERSION_MAJOR, VERSION_MINOR,
};
use crate::meta::Metadata;

/// Writes a `.lpk` file tensor by tensor.
///
/// Nothing appears at the destination until [`finish`](Self::finish) succeeds; dropping the
/// writer earlier (an error, a panic) deletes the temp file.
#[derive(Debug)]
pub struct LpkWriter {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    dest: PathBuf,
    pos: u64,
    tensors: Vec<TensorEntry>,
    blobs: Vec<BlobEntry>,
    names: std::collections::HashSet<String>,
    open_tensor: bool,
}

/// Streams one tensor's bytes; see [`LpkWriter::begin_tensor`].
#[derive(Debug)]
pub struct TensorSink<'w> {
    w: &'w mut LpkWriter,
    written: u64,
    expected: u64,
    crc: u32,
}

/// Temp files and folders this process is writing (the hidden `.NAME.tmp-PID` siblings of
/// destinations): what an interrupted run would otherwise leave behind.
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNFINISHED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records `path` (a temp file or folder being written) as unfinished, so that
/// [`remove_unfinished`] deletes it if the process is interrupted.
pub fn track_unfinished(path: &Path) {
    unfinished().push(path.to_path_buf());
}

/// Forgets `path` (renamed into place, or removed).
pub fn untrack_unfinished(path: &Path) {
    unfinished().retain(|p| p != path);
}

/// Deletes every unfinished output of this process (files and folders) and returns their
/// paths; the CLI calls it from its Ctrl-C / SIGTERM handler before exiting.
pub fn remove_unfinished() -> Vec<PathBuf> {
    let paths = std::mem::take(&mut *unfinished());
    for p in &paths {
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
    }
    paths
}

/// The temp file a writer for `dest` uses: a hidden sibling, so the rename is atomic.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

impl LpkWriter {
    /// Starts writing `dest` (through a sibling temp file).
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let tmp = temp_path_for(&dest);
        let f = File::create(&tmp).map_err(|e| Error::io(&tmp, "create", e))?;
        track_unfinished(&tmp);
        let mut w = LpkWriter {
            out: Some(BufWriter::with_capacity(1 << 20, f)),
            tmp,
            dest,
            pos: 0,
            tensors: Vec::new(),
            blobs: Vec::new(),
            names: std::collections::HashSet::new(),
            open_tensor: false,
        };
        // Placeholder preamble, rewritten by `finish`.
        w.put(&[0u8; PREAMBLE_LEN])?;
        Ok(w)
    }

    /// Destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn file_label(&self) -> String {
        self.dest.display().to_string()
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("writer used after finish");
        out.write_all(bytes)
            .map_err(|e| Error::io(&self.tmp, "write", e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn pad_to_alignment(&mut self) -> Result<()> {
        let pad = (ALIGN - self.pos % ALIGN) % ALIGN;
        self.put(&[0u8; ALIGN as usize][..pad as usize])
    }

    fn check_no_open(&self, name: &str) -> Result<()> {
        if self.open_tensor {
            let open = self
                .tensors
                .last()
                .map(|t| t.name.clone())
                .unwrap_or_default();
            return Err(Error::Write {
                file: self.file_label(),
                tensor: name.to_owned(),
                reason: format!("tensor `{open}` was begun but not finished"),
            });
        }
        Ok(())
    }

    fn claim_name(&mut self, name: &str) -> Result<()> {
        if name.is_empty() || !self.names.insert(name.to_owned()) {
            return Err(Error::Write {
                file: self.file_label(),
                tensor: name.to_owned(),
                reason: if name.is_empty() {
                    "empty name".into()
                } else {
                    "name written twice".into()
                },
            });
        }
        Ok(())
    }

    /// Writes a whole tensor. `shape` is outermost first; `data.len()` must equal the dtype's
    /// size for that shape.
    pub fn write_tensor(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[u64],
        data: &[u8],
    ) -> Result<()> {
        let mut sink = self.begin_tensor(name, dtype, shape)?;
        sink.write(data)?;
        sink.finish()
    }

    /// Starts a tensor whose bytes arrive in pieces (e.g. converted chunk by chunk).
    pub fn begin_tensor(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[u64],
    ) -> Result<TensorSink<'_>> {
        let label = self.file_label();
        let fail = |reason: String| Error::Write {
            file: label.clone(),
            tensor: name.to_owned(),
            reason,
        };
        if self.open_tensor {
            return Err(fail("the previous tensor was not finished".into()));
        }
        if !dtype.info().storable {
            return Err(fail(format!(
                "{dtype} is an activation format and cannot be stored"
            )));
        }
        if shape.is_empty() || shape.len() > crate::header::MAX_DIMS || shape.contains(&0) {
            return Err(fail(format!("invalid shape {shape:?}")));
        }
        let expected = dtype.tensor_bytes(shape).ok_or_else(|| {
            fail(format!(
                "shape {shape:?} is not a whole number of {dtype} blocks"
            ))
        })?;
        self.claim_name(name)?;
        self.pad_to_alignment()?;
        self.tensors.push(TensorEntry {
            name: name.to_owned(),
            dtype: dtype.name().to_owned(),
            shape: shape.to_vec(),
            offset: self.pos,
            nbytes: expected as u64,
            crc32c: 0,
        });
        self.open_tensor = true;
        Ok(TensorSink {
            w: self,
            written: 0,
            expected: expected as u64,
            crc: 0,
        })
    }

    /// Stores an opaque named byte string (e.g. the source `tokenizer.model`).
    pub fn write_blob(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.check_no_open(name)?;
        self.claim_name(name)?;
        self.pad_to_alignment()?;
        self.blobs.push(BlobEntry {
            name: name.to_owned(),
            offset: self.pos,
            nbytes: data.len() as u64,
            crc32c: crc32c::crc32c(data),
        });
        self.put(data)
    }

    /// Writes the header and preamble, flushes to disk and renames into place.
    pub fn finish(mut self, meta: &Metadata) -> Result<PathBuf> {
        self.check_no_open("")?;
        let label = self.file_label();
        meta.config.validate().map_err(|reason| Error::BadConfig {
            file: label.clone(),
            reason,
        })?;
        meta.tokenizer
            .validate()
            .map_err(|reason| Error::BadTokenizer {
                file: label.clone(),
                reason,
            })?;
        crate::reader::check_model(&label, &meta.config, &self.tensors)?;
        let header = Header {
            meta: meta.clone(),
            tensors: std::mem::take(&mut self.tensors),
            blobs: std::mem::take(&mut self.blobs),
        };
        let json = serde_json::to_vec(&header).map_err(|e| Error::Write {
            file: label.clone(),
            tensor: String::new(),
            reason: format!("header serialisation failed: {e}"),
        })?;
        self.pad_to_alignment()?;
        let header_offset = self.pos;
        self.put(&json)?;
        let pre = Preamble {
            major: VERSION_MAJOR,
            minor: VERSION_MINOR,
            header_offset,
            header_len: json.len() as u64,
            header_crc32c: crc32c::crc32c(&json),
            file_len: self.pos,
        };
        let mut out = self.out.take().expect("finish called once");
        let tmp = self.tmp.clone();
        let io = |op: &'static str| {
            let tmp = tmp.clone();
            move |e| Error::io(tmp, op, e)
        };
        out.flush().map_err(io("write"))?;
        let mut f = out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, "write", e.into_error()))?;
        f.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
        f.write_all(&pre.to_bytes()).map_err(io("write"))?;
        f.sync_all().map_err(io("sync"))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, "rename", e))?;
        untrack_unfinished(&self.tmp);
        Ok(self.dest.clone())
    }
}

impl Drop for LpkWriter {
    fn drop(&mut self) {
        if self.out.is_some() || self.tmp.exists() {
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
        untrack_unfinished(&self.tmp);
    }
}

impl TensorSink<'_> {
    /// Appends bytes to the tensor.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let after = self.written + bytes.len() as u64;
        if after > self.expected {
            return Err(self.length_error(after));
        }
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.written = after;
        self.w.put(bytes)
    }

    /// Checks the byte count and records the checksum.
    pub fn finish(self) -> Result<()> {
        if self.written != self.expected {
            return Err(self.length_error(self.written));
        }
        self.w.tensors.last_mut().expect("begun tensor").crc32c = self.crc;
        self.w.open_tensor = false;
        Ok(())
    }

    fn length_error(&self, got: u64) -> Error {
        let t = self.w.tensors.last().expect("begun tensor");
        Error::Write {
            file: self.w.file_label(),
            tensor: t.name.clone(),
            reason: format!(
                "{} {:?} takes {} bytes, got {got}",
                t.dtype, t.shape, self.expected
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer's temp file is tracked while it is written and forgotten once renamed into
    /// place or dropped. (`remove_unfinished` itself is exercised by the CLI's Ctrl-C test in
    /// `tests/interrupt.rs`, in its own process: here it would delete the temp files of tests
    /// running in parallel.)
    #[test]
    fn unfinished_outputs_are_tracked_until_renamed_or_dropped() {
        let tracked = |p: &Path| unfinished().iter().any(|q| q == p);
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done.lpk");
        let w = LpkWriter::create(&done).unwrap();
        assert!(tracked(&temp_path_for(&done)));
        w.finish(&crate::testing::tiny_metadata()).unwrap();
        assert!(!tracked(&temp_path_for(&done)));
        let open = dir.path().join("open.lpk");
        let w = LpkWriter::create(&open).unwrap();
        assert!(tracked(&temp_path_for(&open)) && temp_path_for(&open).exists());
        drop(w);
        assert!(!tracked(&temp_path_for(&open)) && !temp_path_for(&open).exists());
    }
}
