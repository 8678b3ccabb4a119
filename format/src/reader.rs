//! Zero-copy reader: validates the whole index up front, then hands out borrowed slices.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use bytemuck::Pod;
use half::{bf16, f16};

use crate::DType;
use crate::blocks::{
    BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0,
    BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0,
};
use crate::error::{Error, Result};
use crate::header::{
    ALIGN, BlobEntry, Header, MAGIC, MAX_DIMS, MAX_HEADER_LEN, PREAMBLE_LEN, Preamble, TensorEntry,
    VERSION_MAJOR,
};
use crate::meta::{Metadata, ModelConfig, Provenance, TokenizerData};

/// A parsed `.lpk` over some bytes: an mmap ([`Lpk::open`]) or any buffer ([`Lpk::parse`]) —
/// or the same view of another container's tensors in place ([`Lpk::from_index`], e.g. a GGUF
/// file mapped by `llamapack-convert`).
#[derive(Debug)]
pub struct Lpk<B = memmap2::Mmap> {
    bytes: B,
    file: String,
    container: Container,
    preamble: Preamble,
    header: Header,
    dtypes: Vec<DType>,
    by_name: HashMap<String, usize>,
}

/// A borrowed view of one tensor's bytes.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// Name.
    pub name: &'a str,
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: &'a [u64],
    /// The raw bytes (64-byte aligned when the buffer is).
    pub bytes: &'a [u8],
    /// Stored crc32c; `None` when the container has no checksums (a GGUF file).
    pub crc32c: Option<u32>,
}

/// The kind of file an [`Lpk`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    /// A `.lpk` file: every tensor and blob carries a crc32c.
    Lpk,
    /// A GGUF file read in place: tensors have no checksums.
    Gguf {
        /// The GGUF version.
        version: u32,
    },
}

impl Container {
    /// Whether tensors carry checksums that [`Lpk::verify`] can recompute.
    pub fn has_checksums(self) -> bool {
        self == Container::Lpk
    }

    /// `.lpk` or `GGUF`.
    pub fn name(self) -> &'static str {
        match self {
            Container::Lpk => ".lpk",
            Container::Gguf { .. } => "GGUF",
        }
    }
}

/// The index of a container other than a `.lpk` whose tensors are read in place: what
/// [`Lpk::from_index`] validates and serves.
#[derive(Clone, Debug)]
pub struct ForeignIndex {
    /// Config, tokenizer and provenance (from the container's own metadata).
    pub meta: Metadata,
    /// The tensors under Meta's names; `offset` is absolute in the buffer, `crc32c` ignored.
    pub tensors: Vec<TensorEntry>,
    /// The byte range tensor data must lie in.
    pub data: Range<u64>,
    /// The alignment every tensor offset must have (a power of two, at least 8).
    pub align: u64,
    /// What the buffer is.
    pub container: Container,
}

/// A block type that can be viewed in place.
pub trait Block: Pod {
    /// Its dtype.
    const DTYPE: DType;
}
macro_rules! blocks_of {
    ($($t:ty => $d:ident),* $(,)?) => {
        $(impl Block for $t {
            const DTYPE: DType = DType::$d;
        })*
    };
}
blocks_of! {
    f32 => F32, f16 => F16, bf16 => BF16,
    BlockQ8_0 => Q8_0, BlockQ4_0 => Q4_0, BlockQ4_1 => Q4_1, BlockQ5_0 => Q5_0,
    BlockQ5_1 => Q5_1, BlockQ2K => Q2K, BlockQ3K => Q3K, BlockQ4K => Q4K, BlockQ5K => Q5K,
    BlockQ6K => Q6K, BlockIq4Nl => IQ4NL, BlockIq4Xs => IQ4XS,
}

impl<'a> TensorView<'a> {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }

    /// Rows (product of all but the last dimension).
    pub fn rows(&self) -> usize {
        self.shape[..self.shape.len() - 1]
            .iter()
            .map(|&d| d as usize)
            .product()
    }

    /// Elements per row (the last dimension).
    pub fn row_len(&self) -> usize {
        self.shape[self.shape.len() - 1] as usize
    }

    /// Views the bytes as `&[T]` without copying; fails on a dtype mismatch or misalignment.
    pub fn as_slice<T: Block>(&self) -> Result<&'a [T]> {
        if self.dtype != T::DTYPE {
            return Err(Error::WrongDType {
                tensor: self.name.to_owned(),
                expected: T::DTYPE,
                found: self.dtype,
            });
        }
        bytemuck::try_cast_slice(self.bytes).map_err(|e| Error::BadTensor {
            file: String::new(),
            tensor: self.name.to_owned(),
            reason: format!("cannot view as {}: {e:?}", T::DTYPE),
        })
    }

    /// Recomputes the checksum; true when it matches, or when there is none to compare with
    /// (a tensor of a GGUF file).
    pub fn checksum_ok(&self) -> bool {
        self.crc32c
            .is_none_or(|crc| crc32c::crc32c(self.bytes) == crc)
    }
}

/// Opens an input file for reading or mapping: a missing file says "No such file or
/// directory", a folder or a device is refused saying so (rather than a failing mmap's "No
/// such device"), and the file is recorded as an input of this process
/// ([`crate::output::note_input`]).
pub fn open_input(path: &Path) -> Result<std::fs::File> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, "open", e))?;
    let md = f.metadata().map_err(|e| Error::io(path, "open", e))?;
    if !md.is_file() {
        let what = if md.is_dir() {
            "is a directory; give a file"
        } else {
            "is not a regular file (a device, pipe or socket)"
        };
        return Err(Error::io(path, "open", std::io::Error::other(what)));
    }
    crate::output::note_input(path);
    Ok(f)
}

/// What a file that is not a `.lpk` is, by its first bytes, and what to do with it.
fn not_lpk(data: &[u8], file: &str) -> Option<String> {
    if data.starts_with(b"GGUF") {
        Some(format!(
            "is a GGUF file, not a .lpk; this command reads .lpk files: convert it first (llamapack convert {file} -o NAME.lpk)"
        ))
    } else if data.starts_with(b"PK\x03\x04") {
        Some("is a zip archive (a PyTorch .pth checkpoint?), not a .lpk: convert its folder first (llamapack convert DIR -o NAME.lpk)".into())
    } else if data.len() >= 9 && data[8] == b'{' && data.get(9) == Some(&b'"') {
        Some("looks like a safetensors file, not a .lpk: convert its folder first (llamapack convert DIR -o NAME.lpk)".into())
    } else {
        None
    }
}

impl Lpk<memmap2::Mmap> {
    /// Memory-maps and validates `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let f = open_input(path)?;
        // SAFETY: the map is read-only; a concurrent writer truncating the file could fault,
        // which is the documented limit of every mmap reader (safetensors, llama.cpp). Our own
        // writer never modifies a finished file: it writes a sibling and renames.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, "mmap", e))?;
        Lpk::parse(map, path.display().to_string())
    }

    /// Drops this process's resident pages of the file that lie wholly inside `bytes` — bytes
    /// of this file a reader has copied elsewhere (weights repacked at load) — while the page
    /// cache keeps them: `madvise(MADV_DONTNEED)` on the read-only shared map, after which a
    /// read of those bytes faults them in again from the file, so they stay valid and
    /// unchanged. Only whole 64 KiB-aligned spans are released (any page size up to 64 KiB);
    /// a slice outside the map is ignored. Best effort: Unix only, errors ignored.
    pub fn release(&self, bytes: &[u8]) {
        #[cfg(unix)]
        {
            const SPAN: usize = 1 << 16;
            let base = self.bytes.as_ptr() as usize;
            let start = bytes.as_ptr() as usize;
            let end = start + bytes.len();
            if start < base || end > base + self.bytes.len() {
                return;
            }
            let (a, b) = (
                (start - base).next_multiple_of(SPAN),
                (end - base) / SPAN * SPAN,
            );
            if b > a {
                // SAFETY: `Mmap::map` maps the file shared and read-only: dropping the pages of
                // such a mapping loses nothing (no private copy exists), and the next access
                // reads the same file bytes again; the range is inside the map.
                #[allow(unsafe_code)]
                let _ = unsafe {
                    self.bytes
                        .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a)
                };
            }
        }
    }
}

impl<B: AsRef<[u8]>> Lpk<B> {
    /// Parses and validates a `.lpk` held in `bytes`. `file` names it in errors.
    pub fn parse(bytes: B, file: impl Into<String>) -> Result<Self> {
        let file = file.into();
        let data = bytes.as_ref();
        let len = data.len() as u64;
        if let Some(reason) = not_lpk(data, &file) {
            return Err(Error::NotLpk { file, reason });
        }
        let Some(pre) = data.get(..PREAMBLE_LEN) else {
            return Err(Error::Truncated {
                file,
                found: len,
                expected: PREAMBLE_LEN as u64,
            });
        };
        let (magic, flags, pre) = Preamble::from_bytes(pre.try_into().expect("64 bytes"));
        if magic != MAGIC {
            return Err(Error::BadMagic {
                file,
                found: magic,
                expected: MAGIC,
            });
        }
        if pre.major > VERSION_MAJOR {
            return Err(Error::UnsupportedVersion {
                file,
                major: pre.major,
                minor: pre.minor,
                supported: VERSION_MAJOR,
            });
        }
        let bad = |reason: String| Error::BadPreamble {
            file: file.clone(),
            reason,
        };
        if pre.major == 0 {
            return Err(bad("major version 0 was never written".into()));
        }
        if flags != 0 {
            return Err(bad(format!("unknown flags {flags:#x}")));
        }
        if pre.file_len > len {
            return Err(Error::Truncated {
                file,
                found: len,
                expected: pre.file_len,
            });
        }
        if pre.file_len < len {
            return Err(bad(format!(
                "{} trailing bytes after the recorded end",
                len - pre.file_len
            )));
        }
        if pre.header_len > MAX_HEADER_LEN {
            return Err(bad(format!(
                "header of {} bytes exceeds the {MAX_HEADER_LEN} limit",
                pre.header_len
            )));
        }
        let header_end = pre
            .header_offset
            .checked_add(pre.header_len)
            .filter(|&e| pre.header_offset >= PREAMBLE_LEN as u64 && e <= len)
            .ok_or_else(|| {
                bad(format!(
                    "header at {}+{} lies outside the file of {len} bytes",
                    pre.header_offset, pre.header_len
                ))
            })?;
        let hbytes = &data[pre.header_offset as usize..header_end as usize];
        let crc = crc32c::crc32c(hbytes);
        if crc != pre.header_crc32c {
            return Err(bad(format!(
                "header checksum {crc:08x} does not match the recorded {:08x}",
                pre.header_crc32c
            )));
        }
        let header: Header =
            serde_json::from_slice(hbytes).map_err(|source| Error::HeaderJson {
                file: file.clone(),
                source,
            })?;
        let (dtypes, by_name) = validate(
            &file,
            &header,
            PREAMBLE_LEN as u64..pre.header_offset,
            ALIGN,
        )?;
        Ok(Lpk {
            bytes,
            file,
            container: Container::Lpk,
            preamble: pre,
            header,
            dtypes,
            by_name,
        })
    }

    /// Serves the tensors of another container in place: `index` names each tensor's bytes in
    /// `bytes` (absolute offsets), and is checked as a `.lpk` index is — config, tokenizer,
    /// dtypes, shapes, sizes, bounds (inside `index.data`), alignment (`index.align`), overlap —
    /// so every [`TensorView`] is as safe to use as one of a `.lpk`. The tensors have no
    /// checksums ([`TensorView::crc32c`] is `None`). `file` names it in errors.
    pub fn from_index(bytes: B, file: impl Into<String>, index: ForeignIndex) -> Result<Self> {
        let file = file.into();
        let len = bytes.as_ref().len() as u64;
        let bad = |reason: String| Error::BadIndex {
            file: file.clone(),
            reason,
        };
        if !(index.align.is_power_of_two() && index.align >= 8) {
            return Err(bad(format!(
                "tensor alignment {} is not a power of two of at least 8",
                index.align
            )));
        }
        if index.data.start > index.data.end || index.data.end > len {
            return Err(bad(format!(
                "data region {}..{} lies outside the {len} bytes",
                index.data.start, index.data.end
            )));
        }
        let mut tensors = index.tensors;
        for t in &mut tensors {
            t.crc32c = 0;
        }
        let header = Header {
            meta: index.meta,
            tensors,
            blobs: Vec::new(),
        };
        let (dtypes, by_name) = validate(&file, &header, index.data.clone(), index.align)?;
        let version = match index.container {
            Container::Lpk => (VERSION_MAJOR, 0),
            Container::Gguf { version } => (u16::try_from(version).unwrap_or(u16::MAX), 0),
        };
        Ok(Lpk {
            bytes,
            file,
            container: index.container,
            preamble: Preamble {
                major: version.0,
                minor: version.1,
                header_offset: index.data.end,
                header_len: 0,
                header_crc32c: 0,
                file_len: len,
            },
            header,
            dtypes,
            by_name,
        })
    }

    /// The name used in errors (the path, for an opened file).
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// What kind of file this is (a `.lpk`, or a GGUF read in place).
    pub fn container(&self) -> Container {
        self.container
    }

    /// Whether the tensors carry checksums (a `.lpk`'s do, a GGUF's do not).
    pub fn has_checksums(&self) -> bool {
        self.container.has_checksums()
    }

    /// Format version `(major, minor)` of the container (for a GGUF: its version, 0).
    pub fn version(&self) -> (u16, u16) {
        (self.preamble.major, self.preamble.minor)
    }

    /// Total file length.
    pub fn file_len(&self) -> u64 {
        self.preamble.file_len
    }

    /// The whole file's bytes as held (for an opened file, its memory map): what a checksum of
    /// the file reads, without reading it again.
    pub fn file_bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The model config.
    pub fn config(&self) -> &ModelConfig {
        &self.header.meta.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TokenizerData {
        &self.header.meta.tokenizer
    }

    /// The provenance.
    pub fn provenance(&self) -> &Provenance {
        &self.header.meta.provenance
    }

    /// Config, tokenizer and provenance together.
    pub fn metadata(&self) -> &Metadata {
        &self.header.meta
    }

    /// The raw index entries, in file order.
    pub fn entries(&self) -> &[TensorEntry] {
        &self.header.tensors
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.header.tensors.len()
    }

    /// True when the file has no tensors.
    pub fn is_empty(&self) -> bool {
        self.header.tensors.is_empty()
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'_>> {
        (0..self.header.tensors.len()).map(|i| self.view(i))
    }

    /// True when a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        self.by_name
            .get(name)
            .map(|&i| self.view(i))
            .ok_or_else(|| Error::MissingTensor {
                file: self.file.clone(),
                tensor: name.to_owned(),
            })
    }

    /// The blob `name` (e.g. `tokenizer.model`), if stored.
    pub fn blob(&self, name: &str) -> Option<&[u8]> {
        self.header
            .blobs
            .iter()
            .find(|b| b.name == name)
            .map(|b| self.range(b.offset, b.nbytes))
    }

    /// The blob index.
    pub fn blobs(&self) -> &[BlobEntry] {
        &self.header.blobs
    }

    /// Recomputes every checksum; returns the names of tensors and blobs whose bytes changed.
    pub fn verify(&self) -> Vec<String> {
        let mut bad: Vec<String> = self
            .tensors()
            .filter(|t| !t.checksum_ok())
            .map(|t| t.name.to_owned())
            .collect();
        for b in &self.header.blobs {
            if crc32c::crc32c(self.range(b.offset, b.nbytes)) != b.crc32c {
                bad.push(format!("blob:{}", b.name));
            }
        }
        bad
    }

    fn range(&self, offset: u64, nbytes: u64) -> &[u8] {
        // Bounds were validated in `parse`.
        &self.bytes.as_ref()[offset as usize..(offset + nbytes) as usize]
    }

    fn view(&self, i: usize) -> TensorView<'_> {
        let e = &self.header.tensors[i];
        TensorView {
            name: &e.name,
            dtype: self.dtypes[i],
            shape: &e.shape,
            bytes: self.range(e.offset, e.nbytes),
            crc32c: self.has_checksums().then_some(e.crc32c),
        }
    }
}

type Validated = (Vec<DType>, HashMap<String, usize>);

/// Checks the whole index against the file: dtypes, shapes, sizes, bounds (inside `data`),
/// alignment (`align`), overlap.
fn validate(file: &str, h: &Header, data: Range<u64>, align: u64) -> Result<Validated> {
    h.meta
        .config
        .validate()
        .map_err(|reason| Error::BadConfig {
            file: file.to_owned(),
            reason,
        })?;
    h.meta
        .tokenizer
        .validate()
        .map_err(|reason| Error::BadTokenizer {
            file: file.to_owned(),
            reason,
        })?;
    let bad = |tensor: &str, reason: String| Error::BadTensor {
        file: file.to_owned(),
        tensor: tensor.to_owned(),
        reason,
    };
    let (data_start, data_end) = (data.start, data.end);
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(h.tensors.len() + h.blobs.len());
    let mut dtypes = Vec::with_capacity(h.tensors.len());
    let mut by_name = HashMap::with_capacity(h.tensors.len());
    let check_span = |name: &'_ str, offset: u64, nbytes: u64| -> Result<()> {
        if !offset.is_multiple_of(align) {
            return Err(bad(
                name,
                format!("offset {offset} is not a multiple of {align}"),
            ));
        }
        let end = offset
            .checked_add(nbytes)
            .ok_or_else(|| bad(name, "offset + length overflows".into()))?;
        if offset < data_start || end > data_end {
            return Err(bad(
                name,
                format!(
                    "bytes {offset}..{end} lie outside the data region {data_start}..{data_end}"
                ),
            ));
        }
        Ok(())
    };
    for (i, t) in h.tensors.iter().enumerate() {
        let dtype = DType::from_name(&t.dtype)
            .filter(|d| d.info().storable)
            .ok_or_else(|| bad(&t.name, format!("unknown dtype `{}`", t.dtype)))?;
        if t.shape.is_empty() || t.shape.len() > MAX_DIMS {
            return Err(bad(
                &t.name,
                format!("{} dimensions (expected 1..={MAX_DIMS})", t.shape.len()),
            ));
        }
        if t.shape.contains(&0) {
            return Err(bad(
                &t.name,
                format!("shape {:?} has a zero dimension", t.shape),
            ));
        }
        let expected = dtype.tensor_bytes(&t.shape).ok_or_else(|| {
            bad(
                &t.name,
                format!(
                    "shape {:?} is not storable as {dtype} (row not a multiple of {} or size overflows)",
                    t.shape,
                    dtype.block_len()
                ),
            )
        })?;
        if expected as u64 != t.nbytes {
            return Err(bad(
                &t.name,
                format!(
                    "{} bytes recorded, but {dtype} {:?} needs {expected}",
                    t.nbytes, t.shape
                ),
            ));
        }
        check_span(&t.name, t.offset, t.nbytes)?;
        if by_name.insert(t.name.clone(), i).is_some() {
            return Err(bad(&t.name, "appears twice in the index".into()));
        }
        dtypes.push(dtype);
        spans.push((t.offset, t.nbytes, &t.name));
    }
    for b in &h.blobs {
        check_span(&b.name, b.offset, b.nbytes)?;
        spans.push((b.offset, b.nbytes, &b.name));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        let (a_off, a_len, a) = w[0];
        let (b_off, _, b) = w[1];
        if a_off + a_len > b_off {
            return Err(bad(b, format!("overlaps `{a}`")));
        }
    }
    check_model(file, &h.meta.config, &h.tensors)?;
    Ok((dtypes, by_name))
}

/// Holds the tensors to the config ([`ModelConfig::check_tensors`]): what the reader and the
/// writer both require, so a file written loads, and a loaded file's numbers are its tensors'.
pub(crate) fn check_model(file: &str, config: &ModelConfig, tensors: &[TensorEntry]) -> Result<()> {
    config
        .check_tensors(
            tensors
                .iter()
                .map(|t| (t.name.as_str(), t.shape.as_slice())),
        )
        .map_err(|m| Error::ConfigMismatch {
            file: file.to_owned(),
            tensor: m.tensor,
            reason: m.reason,
        })
}
