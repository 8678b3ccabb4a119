//! `PyTorch` `.pth` files (`torch.save`'s zip format): `<root>/data.pkl` describes the state
//! dict, `<root>/data/<key>` holds each storage's raw little-endian bytes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::dtype::SourceDType;
use crate::error::{Error, Result};
use crate::pickle::{self, TensorRecord};
use crate::zip::{ZipArchive, check_crc};

/// The archive entry holding one storage, shared by every tensor that views it; its CRC-32 is
/// checked once, when the first of those tensors is read.
#[derive(Debug)]
struct StorageEntry<'a> {
    /// Entry name (`<root>/data/<key>`).
    name: String,
    /// The whole entry.
    data: &'a [u8],
    /// CRC-32 recorded in the central directory.
    crc32: u32,
    /// Outcome of the check, once made.
    checked: OnceLock<std::result::Result<(), String>>,
}

/// One tensor of a `.pth` file: its view description and the storage bytes it points into.
#[derive(Clone, Debug)]
pub struct PthTensor<'a> {
    /// Key in the state dict.
    pub name: String,
    /// Element type.
    pub dtype: SourceDType,
    /// Sizes, outermost first.
    pub shape: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
    /// Offset of the first element in the storage, in elements.
    pub storage_offset: u64,
    /// Storage key.
    pub storage_key: String,
    storage: &'a [u8],
    entry: Arc<StorageEntry<'a>>,
    file: String,
}

/// Checked product of sizes.
pub(crate) fn numel(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
}

impl<'a> PthTensor<'a> {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        numel(&self.shape).expect("checked at load")
    }

    /// Bytes of the tensor's elements.
    pub fn nbytes(&self) -> u64 {
        self.numel() * self.dtype.size() as u64
    }

    /// The bytes of the whole storage this view points into.
    pub(crate) fn storage(&self) -> &'a [u8] {
        self.storage
    }

    /// Whether the view is row-major contiguous (dimensions of size 1 may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expect = 1u64;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != expect {
                return false;
            }
            expect = expect.saturating_mul(d);
        }
        true
    }

    fn err(&self, reason: String) -> Error {
        Error::Tensor {
            file: self.file.clone(),
            tensor: self.name.clone(),
            reason,
        }
    }

    /// Checks the CRC-32 of the archive entry holding this tensor's storage (once per entry,
    /// however many tensors view it): a flipped byte is an error naming the file, the entry
    /// and the tensor. [`bytes`](Self::bytes) calls it.
    pub fn verify(&self) -> Result<()> {
        let e = &self.entry;
        match e.checked.get_or_init(|| check_crc(e.data, e.crc32)) {
            Ok(()) => Ok(()),
            Err(reason) => Err(Error::Zip {
                file: self.file.clone(),
                entry: Some(e.name.clone()),
                reason: format!("storage of tensor `{}`: {reason}", self.name),
            }),
        }
    }

    /// The elements in row-major order: a slice of the mapped file when the view is
    /// contiguous, otherwise gathered into a new buffer (whose size the load already bounded).
    /// The storage's CRC-32 is checked first ([`verify`](Self::verify)).
    pub fn bytes(&self) -> Result<Cow<'a, [u8]>> {
        self.verify()?;
        let es = self.dtype.size();
        let n = self.numel() as usize;
        if n == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        if self.is_contiguous() {
            let start = self.storage_offset as usize * es;
            return Ok(Cow::Borrowed(&self.storage[start..start + n * es]));
        }
        let nb = self.numel().saturating_mul(es as u64);
        if nb > self.storage.len() as u64 {
            return Err(self.err(format!(
                "non-contiguous view of {nb} bytes over a storage of {} bytes (overlapping strides {:?}) is not supported",
                self.storage.len(),
                self.stride
            )));
        }
        let mut out = Vec::with_capacity(n * es);
        let rank = self.shape.len();
        let mut idx = vec![0u64; rank];
        let (inner_len, inner_stride) = (self.shape[rank - 1], self.stride[rank - 1]);
        loop {
            let base: u64 = self.storage_offset
                + idx
                    .iter()
                    .zip(&self.stride)
                    .map(|(i, s)| i * s)
                    .sum::<u64>();
            for j in 0..inner_len {
                let e = (base + j * inner_stride) as usize * es;
                out.extend_from_slice(&self.storage[e..e + es]);
            }
            // Odometer over all but the last dimension.
            let mut d = rank - 1;
            loop {
                if d == 0 {
                    return Ok(Cow::Owned(out));
                }
                d -= 1;
                idx[d] += 1;
                if idx[d] < self.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
    }
}

/// Reads the tensors of a `.pth` file held in `bytes`; `file` names it in errors.
///
/// Every view is checked against its storage here, so [`PthTensor::bytes`] cannot go out of
/// bounds; the CRC-32 of `data.pkl` and `byteorder` is checked here, each storage's when its
/// bytes are first read (so listing a checkpoint stays cheap and converting it checks all).
pub fn load<'a>(bytes: &'a [u8], file: &str) -> Result<Vec<PthTensor<'a>>> {
    let zip = ZipArchive::parse(bytes, file).map_err(|e| match e {
        Error::Zip { reason, .. } if bytes.starts_with(&[0x80]) => Error::Zip {
            file: file.to_owned(),
            entry: None,
            reason: format!(
                "legacy (pre-1.6, non-zip) torch serialization is not supported; re-save it with torch.save ({reason})"
            ),
        },
        e => e,
    })?;
    let pkls: Vec<_> = zip
        .entries()
        .iter()
        .filter(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"))
        .collect();
    let pkl = match pkls.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Zip {
                file: file.to_owned(),
                entry: None,
                reason: "no `data.pkl` entry: not a torch.save checkpoint".into(),
            });
        }
        _ => {
            return Err(Error::Zip {
                file: file.to_owned(),
                entry: None,
                reason: format!("{} `data.pkl` entries; expected one", pkls.len()),
            });
        }
    };
    let prefix = &pkl.name[..pkl.name.len() - "data.pkl".len()];
    if let Some(bo) = zip.entry(&format!("{prefix}byteorder")) {
        let order = zip.data_checked(bo)?;
        if order != b"little" {
            return Err(Error::Zip {
                file: file.to_owned(),
                entry: Some(bo.name.clone()),
                reason: format!(
                    "byte order `{}` is not supported (only little-endian)",
                    String::from_utf8_lossy(order)
                ),
            });
        }
    }
    let pkl_bytes = zip.data_checked(pkl)?;
    let label = format!("{file}: {}", pkl.name);
    let p = pickle::vm::run(
        pkl_bytes,
        &pickle::torch::allowed,
        pickle::vm::Limits::default(),
    )
    .map_err(|e| match e {
        pickle::vm::VmError::Global(global) => Error::UnsafeGlobal {
            file: label.clone(),
            global,
        },
        pickle::vm::VmError::Bad { offset, reason } => Error::Pickle {
            file: label.clone(),
            offset,
            reason,
        },
    })?;
    let records = pickle::torch::state_dict(&p).map_err(|reason| Error::Pickle {
        file: label.clone(),
        offset: 0,
        reason,
    })?;
    let mut entries = HashMap::new();
    records
        .into_iter()
        .map(|r| bind(&zip, prefix, r, file, &mut entries))
        .collect()
}

fn bind<'a>(
    zip: &ZipArchive<'a>,
    prefix: &str,
    r: TensorRecord,
    file: &str,
    entries: &mut HashMap<String, Arc<StorageEntry<'a>>>,
) -> Result<PthTensor<'a>> {
    let err = |reason: String| Error::Tensor {
        file: file.to_owned(),
        tensor: r.name.clone(),
        reason,
    };
    let entry_name = format!("{prefix}data/{}", r.storage_key);
    let entry = zip.entry(&entry_name).ok_or_else(|| {
        err(format!(
            "its storage `{}` has no archive entry `{entry_name}`",
            r.storage_key
        ))
    })?;
    let storage = zip.data(entry)?;
    let shared = entries
        .entry(entry_name)
        .or_insert_with_key(|name| {
            Arc::new(StorageEntry {
                name: name.clone(),
                data: storage,
                crc32: entry.crc32,
                checked: OnceLock::new(),
            })
        })
        .clone();
    let es = r.dtype.size() as u64;
    let storage_bytes = r
        .storage_numel
        .checked_mul(es)
        .filter(|&b| b <= storage.len() as u64)
        .ok_or_else(|| {
            err(format!(
                "storage `{}` claims {} {} elements but its entry holds {} bytes",
                r.storage_key,
                r.storage_numel,
                r.dtype,
                storage.len()
            ))
        })?;
    let n = numel(&r.shape).ok_or_else(|| err(format!("shape {:?} overflows", r.shape)))?;
    if n > 0 {
        // Largest element index the view touches, checked against the storage.
        let last = r
            .shape
            .iter()
            .zip(&r.stride)
            .try_fold(r.storage_offset, |acc, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
            });
        match last {
            Some(last) if last < r.storage_numel => {}
            _ => {
                return Err(err(format!(
                    "view (offset {}, shape {:?}, stride {:?}) reaches past its storage of {} elements",
                    r.storage_offset, r.shape, r.stride, r.storage_numel
                )));
            }
        }
    }
    Ok(PthTensor {
        name: r.name,
        dtype: r.dtype,
        shape: r.shape,
        stride: r.stride,
        storage_offset: r.storage_offset,
        storage_key: r.storage_key,
        storage: &storage[..storage_bytes as usize],
        entry: shared,
        file: file.to_owned(),
    })
}
