//! Streaming writer: tensors go to a sibling temp file one at a time (an
//! [`OutputFile`](crate::output::OutputFile)); the header is written last and the file is
//! renamed into place only by [`LpkWriter::finish`].

use std::path::{Path, PathBuf};

use crate::DType;
use crate::error::{Error, Result};
use crate::header::{
    ALIGN, BlobEntry, Header, PREAMBLE_LEN, Preamble, TensorEntry, VERSION_MAJOR, VERSION_MINOR,
};
use crate::meta::Metadata;
use crate::output::OutputFile;

/// Writes a `.lpk` file tensor by tensor.
///
/// Nothing appears at the destination until [`finish`](Self::finish) succeeds; dropping the
/// writer earlier (an error, a panic) deletes the temp file.
#[derive(Debug)]
pub struct LpkWriter {
    out: OutputFile,
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

impl LpkWriter {
    /// Starts writing `dest` (through a sibling temp file; see [`OutputFile::create`] for the
    /// checks of `dest`).
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        Self::to_output(OutputFile::create(dest)?)
    }

    /// Starts writing into `out`.
    pub fn to_output(out: OutputFile) -> Result<Self> {
        let mut w = LpkWriter {
            out,
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
        self.out.dest()
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.out.position()
    }

    fn file_label(&self) -> String {
        self.dest().display().to_string()
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)
    }

    fn pad_to_alignment(&mut self) -> Result<()> {
        let pad = (ALIGN - self.position() % ALIGN) % ALIGN;
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
            offset: self.position(),
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
            offset: self.position(),
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
        let header_offset = self.position();
        self.put(&json)?;
        let pre = Preamble {
            major: VERSION_MAJOR,
            minor: VERSION_MINOR,
            header_offset,
            header_len: json.len() as u64,
            header_crc32c: crc32c::crc32c(&json),
            file_len: self.position(),
        };
        self.out.overwrite_at(0, &pre.to_bytes())?;
        self.out.finish()
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
