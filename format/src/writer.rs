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
use crate::output::{OutputFile, Positional};

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
    /// Reserved tensors (indices) not yet filled.
    pending: std::collections::BTreeSet<usize>,
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
            pending: std::collections::BTreeSet::new(),
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
        let expected = self.push_entry(name, dtype, shape)?;
        self.open_tensor = true;
        Ok(TensorSink {
            w: self,
            written: 0,
            expected,
            crc: 0,
        })
    }

    /// Checks a tensor about to be written, pads to its alignment and records its entry (the
    /// checksum comes when its bytes are complete); returns its byte length.
    fn push_entry(&mut self, name: &str, dtype: DType, shape: &[u64]) -> Result<u64> {
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
        Ok(expected as u64)
    }

    /// Reserves a tensor's place in the file, to be written later, possibly on another thread
    /// and in any order, through [`slots`](Self::slots). Tensors and blobs written after it
    /// go after its place. [`finish`](Self::finish) refuses a file with a reserved tensor
    /// that was never [`fill`](Self::fill)ed.
    pub fn reserve_tensor(&mut self, name: &str, dtype: DType, shape: &[u64]) -> Result<Slot> {
        let nbytes = self.push_entry(name, dtype, shape)?;
        let offset = self.out.reserve(nbytes)?;
        self.pending.insert(self.tensors.len() - 1);
        Ok(Slot {
            index: self.tensors.len() - 1,
            offset,
            nbytes,
        })
    }

    /// Writes into the reserved tensors, from as many threads as share the returned handle.
    pub fn slots(&mut self) -> Result<Slots<'_>> {
        let names = self.tensors.iter().map(|t| t.name.as_str()).collect();
        Ok(Slots {
            at: self.out.positional()?,
            names,
        })
    }

    /// Records the checksum of a reserved tensor whose bytes are all written.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "taking the token by value makes a second fill with it impossible"
    )]
    pub fn fill(&mut self, filled: Filled) {
        let pending = self.pending.remove(&filled.index);
        let t = &mut self.tensors[filled.index];
        assert!(
            pending && t.offset == filled.offset,
            "fill of a slot of another writer, or twice"
        );
        t.crc32c = filled.crc;
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
        if let Some(&first) = self.pending.first() {
            return Err(Error::Write {
                file: label,
                tensor: self.tensors[first].name.clone(),
                reason: format!(
                    "reserved but never written ({} reserved tensor(s) in all)",
                    self.pending.len()
                ),
            });
        }
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

/// A tensor's place in the file, from [`LpkWriter::reserve_tensor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    index: usize,
    offset: u64,
    nbytes: u64,
}

impl Slot {
    /// Bytes the tensor takes.
    pub fn nbytes(&self) -> u64 {
        self.nbytes
    }
}

/// Proof that a reserved tensor was written in full, with its checksum; give it to
/// [`LpkWriter::fill`].
#[derive(Debug)]
#[must_use = "give it to LpkWriter::fill"]
pub struct Filled {
    index: usize,
    offset: u64,
    crc: u32,
}

/// Writes reserved tensors ([`LpkWriter::slots`]); shared by threads.
#[derive(Debug)]
pub struct Slots<'w> {
    at: Positional<'w>,
    names: Vec<&'w str>,
}

impl Slots<'_> {
    /// Streams the bytes of the tensor reserved as `slot`, in order, through a buffer of
    /// `buffer` bytes (one `pwrite` per full buffer).
    pub fn sink(&self, slot: Slot, buffer: usize) -> SlotSink<'_> {
        SlotSink {
            slots: self,
            slot,
            written: 0,
            flushed: 0,
            crc: 0,
            buf: Vec::with_capacity(buffer.max(1)),
        }
    }
}

/// One reserved tensor's bytes being written; see [`Slots::sink`].
#[derive(Debug)]
pub struct SlotSink<'s> {
    slots: &'s Slots<'s>,
    slot: Slot,
    written: u64,
    /// Bytes of the slot whose writeback to disk has been started.
    flushed: u64,
    crc: u32,
    buf: Vec<u8>,
}

/// A sink starts the writeback of what it wrote every this many bytes (and at its end): the
/// disk then writes while later tensors are converted, instead of all at the final sync
/// (7B-shaped f16 convert, 2.1 GB: that sync took 0.7 of 2.8 s).
const WRITEBACK_STEP: u64 = 16 << 20;

impl SlotSink<'_> {
    /// Appends bytes to the tensor.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        let after = self.written + (self.buf.len() + bytes.len()) as u64;
        if after > self.slot.nbytes {
            return Err(self.length_error(after));
        }
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        while !bytes.is_empty() {
            let room = self.buf.capacity() - self.buf.len();
            if self.buf.is_empty() && bytes.len() >= self.buf.capacity() {
                // Large writes skip the buffer.
                self.put(bytes)?;
                return Ok(());
            }
            let n = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == self.buf.capacity() {
                let buf = std::mem::take(&mut self.buf);
                self.put(&buf)?;
                self.buf = buf;
                self.buf.clear();
            }
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.slots
            .at
            .write_at(self.slot.offset + self.written, bytes)?;
        self.written += bytes.len() as u64;
        if self.written - self.flushed >= WRITEBACK_STEP {
            self.start_writeback();
        }
        Ok(())
    }

    fn start_writeback(&mut self) {
        let (at, n) = (self.slot.offset + self.flushed, self.written - self.flushed);
        self.slots.at.start_writeback(at, n);
        self.flushed = self.written;
    }

    /// Writes what is buffered and checks the byte count.
    pub fn finish(mut self) -> Result<Filled> {
        let buf = std::mem::take(&mut self.buf);
        self.put(&buf)?;
        if self.written != self.slot.nbytes {
            return Err(self.length_error(self.written));
        }
        self.start_writeback();
        Ok(Filled {
            index: self.slot.index,
            offset: self.slot.offset,
            crc: self.crc,
        })
    }

    fn length_error(&self, got: u64) -> Error {
        Error::Write {
            file: self.slots.at.dest().display().to_string(),
            tensor: self.slots.names[self.slot.index].to_owned(),
            reason: format!("the tensor takes {} bytes, got {got}", self.slot.nbytes),
        }
    }
}
