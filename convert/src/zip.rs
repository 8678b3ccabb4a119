//! A read-only zip reader over a byte slice (an mmap), for `PyTorch`'s checkpoint container.
//!
//! `torch.save` writes an uncompressed ("stored") zip whose entries are 64-byte aligned via
//! padding in the local header's extra field, with ZIP64 records once the file passes 4 GiB.
//! This reader supports exactly that: the end-of-central-directory record (and the ZIP64
//! locator and record), the central directory with ZIP64 extra fields, and stored entries,
//! whose data offset is taken from each entry's *local* header (its name and extra lengths
//! may differ from the central copy). Every number read is bounds-checked; nothing is
//! allocated from an unchecked header field.

use std::collections::HashMap;

use crate::error::{Error, Result};

pub(crate) const EOCD_SIG: u32 = 0x0605_4b50;
pub(crate) const EOCD_LEN: usize = 22;
pub(crate) const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
pub(crate) const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_EOCD_LEN: usize = 56;
pub(crate) const CENTRAL_SIG: u32 = 0x0201_4b50;
pub(crate) const CENTRAL_LEN: usize = 46;
pub(crate) const LOCAL_SIG: u32 = 0x0403_4b50;
pub(crate) const LOCAL_LEN: usize = 30;
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// One entry of the central directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipEntry {
    /// Path inside the archive.
    pub name: String,
    /// Compression method (0 = stored, 8 = deflate).
    pub method: u16,
    /// General-purpose flags (bit 0: encrypted).
    pub flags: u16,
    /// CRC-32 of the uncompressed data.
    pub crc32: u32,
    /// Bytes as stored.
    pub compressed_size: u64,
    /// Bytes after decompression.
    pub size: u64,
    /// Offset of the entry's local header.
    pub local_header_offset: u64,
}

/// A parsed zip archive borrowing its bytes.
#[derive(Debug)]
pub struct ZipArchive<'a> {
    data: &'a [u8],
    file: String,
    entries: Vec<ZipEntry>,
    /// Entry name → index in `entries`, built once (a checkpoint has one entry per storage).
    index: HashMap<String, usize>,
}

/// Little-endian cursor over a slice; every read is bounds-checked.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn at(b: &'a [u8], pos: usize) -> Self {
        Cur { b, pos }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn read_u32(b: &[u8], pos: usize) -> Option<u32> {
    Cur::at(b, pos).u32()
}

impl<'a> ZipArchive<'a> {
    /// Parses the central directory of `data`; `file` names it in errors.
    pub fn parse(data: &'a [u8], file: impl Into<String>) -> Result<Self> {
        let file = file.into();
        let err = |reason: String| Error::Zip {
            file: file.clone(),
            entry: None,
            reason,
        };
        let short = |what: &str| err(format!("truncated or corrupt zip: {what} out of range"));

        // The EOCD record is the last 22 bytes plus a comment of at most 65535 bytes.
        if data.len() < EOCD_LEN {
            return Err(err(format!(
                "not a zip file or truncated: {} bytes is shorter than an end-of-central-directory record",
                data.len()
            )));
        }
        let last = data.len() - EOCD_LEN;
        let first = last.saturating_sub(0xFFFF);
        let eocd_pos = (first..=last)
            .rev()
            .find(|&p| {
                read_u32(data, p) == Some(EOCD_SIG)
                    && Cur::at(data, p + 20).u16().map(usize::from)
                        == Some(data.len() - p - EOCD_LEN)
            })
            .ok_or_else(|| {
                err("not a zip file or truncated: end-of-central-directory record not found".into())
            })?;
        let mut c = Cur::at(data, eocd_pos + 4);
        let disk = c.u16().ok_or_else(|| short("eocd"))?;
        let cd_disk = c.u16().ok_or_else(|| short("eocd"))?;
        let _entries_here = c.u16().ok_or_else(|| short("eocd"))?;
        let mut count = u64::from(c.u16().ok_or_else(|| short("eocd"))?);
        let mut cd_size = u64::from(c.u32().ok_or_else(|| short("eocd"))?);
        let mut cd_offset = u64::from(c.u32().ok_or_else(|| short("eocd"))?);
        // Everything before `cd_end_limit` may hold the central directory.
        let mut cd_end_limit = eocd_pos as u64;

        let has_locator = eocd_pos >= ZIP64_LOCATOR_LEN
            && read_u32(data, eocd_pos - ZIP64_LOCATOR_LEN) == Some(ZIP64_LOCATOR_SIG);
        if has_locator {
            let mut c = Cur::at(data, eocd_pos - ZIP64_LOCATOR_LEN + 4);
            let _disk = c.u32().ok_or_else(|| short("zip64 locator"))?;
            let rec = c.u64().ok_or_else(|| short("zip64 locator"))?;
            let disks = c.u32().ok_or_else(|| short("zip64 locator"))?;
            if disks > 1 {
                return Err(err(format!(
                    "multi-disk archives are not supported ({disks} disks)"
                )));
            }
            let rec_pos = usize::try_from(rec)
                .ok()
                .filter(|&p| {
                    p.checked_add(ZIP64_EOCD_LEN)
                        .is_some_and(|e| e <= eocd_pos - ZIP64_LOCATOR_LEN)
                })
                .ok_or_else(|| {
                    err(format!(
                        "zip64 end-of-central-directory offset {rec} is out of range"
                    ))
                })?;
            let mut c = Cur::at(data, rec_pos);
            if c.u32() != Some(ZIP64_EOCD_SIG) {
                return Err(err(format!(
                    "no zip64 end-of-central-directory record at offset {rec_pos}"
                )));
            }
            let _rec_size = c.u64();
            let _made = c.u16();
            let _needed = c.u16();
            let disk64 = c.u32().ok_or_else(|| short("zip64 eocd"))?;
            let cd_disk64 = c.u32().ok_or_else(|| short("zip64 eocd"))?;
            let _here = c.u64();
            count = c.u64().ok_or_else(|| short("zip64 eocd"))?;
            cd_size = c.u64().ok_or_else(|| short("zip64 eocd"))?;
            cd_offset = c.u64().ok_or_else(|| short("zip64 eocd"))?;
            if disk64 != 0 || cd_disk64 != 0 {
                return Err(err("multi-disk archives are not supported".into()));
            }
            cd_end_limit = rec_pos as u64;
        } else if disk != 0 || cd_disk != 0 {
            return Err(err("multi-disk archives are not supported".into()));
        }

        let cd_end = cd_offset
            .checked_add(cd_size)
            .filter(|&e| e <= cd_end_limit)
            .ok_or_else(|| {
                err(format!(
                    "truncated or corrupt zip: central directory at {cd_offset} (+{cd_size} bytes) lies outside the {} byte file",
                    data.len()
                ))
            })?;
        // The directory fits in the file (checked above), so the entry count is bounded by it.
        let max_entries = cd_size / CENTRAL_LEN as u64;
        if count > max_entries {
            return Err(err(format!(
                "central directory claims {count} entries but only {cd_size} bytes"
            )));
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut index = HashMap::with_capacity(count as usize);
        let mut c = Cur::at(data, cd_offset as usize);
        for i in 0..count {
            let e = parse_central(&mut c, cd_end as usize)
                .map_err(|r| err(format!("central directory entry {i}: {r}")))?;
            if index.insert(e.name.clone(), entries.len()).is_some() {
                return Err(err(format!("duplicate entry `{}`", e.name)));
            }
            entries.push(e);
        }
        Ok(ZipArchive {
            data,
            file,
            entries,
            index,
        })
    }

    /// The entries, in central-directory order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// The file name given to [`parse`](Self::parse).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Looks an entry up by its full name (constant time: the names are indexed at parse).
    pub fn entry(&self, name: &str) -> Option<&ZipEntry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    pub(crate) fn entry_err(&self, e: &ZipEntry, reason: String) -> Error {
        Error::Zip {
            file: self.file.clone(),
            entry: Some(e.name.clone()),
            reason,
        }
    }

    /// The stored bytes of an entry, zero-copy. Errors for compressed or encrypted entries.
    pub fn data(&self, e: &ZipEntry) -> Result<&'a [u8]> {
        if e.flags & 1 != 0 {
            return Err(self.entry_err(e, "encrypted entries are not supported".into()));
        }
        if e.method != 0 {
            let how = match e.method {
                8 => " (deflate)",
                12 => " (bzip2)",
                14 => " (lzma)",
                93 => " (zstd)",
                _ => "",
            };
            return Err(self.entry_err(
                e,
                format!(
                    "compressed with method {}{how}; only stored (uncompressed) entries are supported, as torch.save writes them",
                    e.method
                ),
            ));
        }
        if e.compressed_size != e.size {
            return Err(self.entry_err(
                e,
                format!(
                    "stored entry has compressed size {} but size {}",
                    e.compressed_size, e.size
                ),
            ));
        }
        let bad = |what: &str| {
            self.entry_err(
                e,
                format!(
                    "truncated or corrupt zip: {what} (local header at {}, file is {} bytes)",
                    e.local_header_offset,
                    self.data.len()
                ),
            )
        };
        let lho = usize::try_from(e.local_header_offset).map_err(|_| bad("offset out of range"))?;
        let mut c = Cur::at(self.data, lho);
        if c.u32() != Some(LOCAL_SIG) {
            return Err(bad("no local header signature"));
        }
        let hdr = c
            .take(LOCAL_LEN - 4)
            .ok_or_else(|| bad("local header out of range"))?;
        let name_len = usize::from(u16::from_le_bytes([hdr[22], hdr[23]]));
        let extra_len = usize::from(u16::from_le_bytes([hdr[24], hdr[25]]));
        let name = c
            .take(name_len)
            .ok_or_else(|| bad("local header name out of range"))?;
        if name != e.name.as_bytes() {
            return Err(bad("local header name differs from the central directory"));
        }
        c.take(extra_len)
            .ok_or_else(|| bad("local header extra field out of range"))?;
        let start = c.pos;
        let len = usize::try_from(e.size).map_err(|_| bad("entry size out of range"))?;
        let end = start
            .checked_add(len)
            .ok_or_else(|| bad("entry size out of range"))?;
        self.data
            .get(start..end)
            .ok_or_else(|| bad(&format!("entry data {start}..{end} out of range")))
    }

    /// Like [`data`](Self::data) and also checks the CRC-32 of the whole entry.
    pub fn data_checked(&self, e: &ZipEntry) -> Result<&'a [u8]> {
        let d = self.data(e)?;
        check_crc(d, e.crc32).map_err(|reason| self.entry_err(e, reason))?;
        Ok(d)
    }
}

/// Compares the CRC-32 of `data` with the one the central directory records; the error says
/// both. (The `.pth` loader checks a storage's entry this way when its bytes are first read.)
pub(crate) fn check_crc(data: &[u8], recorded: u32) -> std::result::Result<(), String> {
    let crc = crc32(data);
    if crc == recorded {
        Ok(())
    } else {
        Err(format!(
            "crc-32 mismatch: the data has {crc:08x}, the zip directory says {recorded:08x}; the file is corrupt"
        ))
    }
}

fn parse_central(c: &mut Cur<'_>, end: usize) -> std::result::Result<ZipEntry, String> {
    let start = c.pos;
    if start.checked_add(CENTRAL_LEN).is_none_or(|e| e > end) {
        return Err("runs past the end of the central directory".into());
    }
    if c.u32() != Some(CENTRAL_SIG) {
        return Err("bad signature".into());
    }
    let f = c.take(CENTRAL_LEN - 4).ok_or("truncated")?;
    let u16_at = |i: usize| u16::from_le_bytes([f[i - 4], f[i - 3]]);
    let u32_at = |i: usize| u32::from_le_bytes([f[i - 4], f[i - 3], f[i - 2], f[i - 1]]);
    let flags = u16_at(8);
    let method = u16_at(10);
    let crc32 = u32_at(16);
    let mut compressed_size = u64::from(u32_at(20));
    let mut size = u64::from(u32_at(24));
    let name_len = usize::from(u16_at(28));
    let extra_len = usize::from(u16_at(30));
    let comment_len = usize::from(u16_at(32));
    let disk = u16_at(34);
    let mut local_header_offset = u64::from(u32_at(42));
    let var_end = c
        .pos
        .checked_add(name_len)
        .and_then(|p| p.checked_add(extra_len))
        .and_then(|p| p.checked_add(comment_len))
        .filter(|&p| p <= end)
        .ok_or("name/extra/comment run past the end of the central directory")?;
    let name = String::from_utf8_lossy(c.take(name_len).ok_or("truncated name")?).into_owned();
    let extra = c.take(extra_len).ok_or("truncated extra field")?;
    c.pos = var_end;

    // ZIP64 extra: the 64-bit values appear, in this order, only for fields saturated above.
    let mut x = Cur::at(extra, 0);
    while x.pos + 4 <= extra.len() {
        let id = x.u16().ok_or("truncated extra field")?;
        let len = usize::from(x.u16().ok_or("truncated extra field")?);
        let body = x
            .take(len)
            .ok_or_else(|| format!("`{name}`: extra field 0x{id:04x} runs past its end"))?;
        if id == ZIP64_EXTRA_ID {
            let mut z = Cur::at(body, 0);
            let missing = |what: &str| format!("`{name}`: zip64 extra field lacks the {what}");
            if size == 0xFFFF_FFFF {
                size = z.u64().ok_or_else(|| missing("size"))?;
            }
            if compressed_size == 0xFFFF_FFFF {
                compressed_size = z.u64().ok_or_else(|| missing("compressed size"))?;
            }
            if local_header_offset == 0xFFFF_FFFF {
                local_header_offset = z.u64().ok_or_else(|| missing("local header offset"))?;
            }
        }
    }
    if disk != 0 && disk != 0xFFFF {
        return Err(format!(
            "`{name}` is on disk {disk}; multi-disk archives are not supported"
        ));
    }
    Ok(ZipEntry {
        name,
        method,
        flags,
        crc32,
        compressed_size,
        size,
        local_header_offset,
    })
}

/// CRC-32 (IEEE 802.3, as zip uses), with `crc32fast`'s carry-less-multiply kernels (several
/// GB/s, so checking every storage of a checkpoint costs little next to converting it).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_zip64() {
        for zip64 in [false, true] {
            let z = crate::testing::stored_zip(
                &[("a/data.pkl", b"hello"), ("a/data/0", &[1, 2, 3, 4])],
                zip64,
            );
            let a = ZipArchive::parse(&z, "t.pth").unwrap();
            assert_eq!(a.entries().len(), 2);
            let e = a.entry("a/data/0").unwrap();
            assert_eq!(a.data_checked(e).unwrap(), &[1, 2, 3, 4]);
            let e = a.entry("a/data.pkl").unwrap();
            assert_eq!(a.data_checked(e).unwrap(), b"hello");
        }
    }

    #[test]
    fn crc32_matches_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let z =
            crate::testing::stored_zip(&[("a/data.pkl", b"hello"), ("a/data/0", &[9; 100])], true);
        for n in 0..z.len() {
            if let Ok(a) = ZipArchive::parse(&z[..n], "t.pth") {
                for e in a.entries() {
                    let _ = a.data(e);
                }
            }
        }
        let err = ZipArchive::parse(&z[..z.len() - 30], "t.pth").unwrap_err();
        assert!(err.to_string().contains("t.pth"), "{err}");
    }

    #[test]
    fn every_byte_flip_is_handled() {
        let z =
            crate::testing::stored_zip(&[("a/data.pkl", b"hello"), ("a/data/0", &[9; 100])], true);
        for i in 0..z.len() {
            for v in [0u8, 0xFF, 0x7F] {
                let mut m = z.clone();
                m[i] = v;
                if let Ok(a) = ZipArchive::parse(&m, "t.pth") {
                    for e in a.entries() {
                        let _ = a.data_checked(e);
                    }
                }
            }
        }
    }

    #[test]
    fn compressed_entry_is_refused_by_name() {
        let mut z = crate::testing::stored_zip(&[("a/data.pkl", b"hello")], false);
        // Set the method in the central directory to deflate.
        let cd = z.len() - EOCD_LEN - (CENTRAL_LEN + "a/data.pkl".len());
        z[cd + 10] = 8;
        let a = ZipArchive::parse(&z, "t.pth").unwrap();
        let err = a.data(&a.entries()[0]).unwrap_err().to_string();
        assert!(
            err.contains("a/data.pkl") && err.contains("compressed"),
            "{err}"
        );
    }
}
