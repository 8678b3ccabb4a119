//! Editing a finished file: new metadata, same tensors, written atomically.

use std::path::Path;

use crate::error::Result;
use crate::meta::Metadata;
use crate::reader::Lpk;
use crate::writer::LpkWriter;

/// Rewrites `path` with `edit` applied to its metadata; every tensor and blob is copied
/// unchanged (same bytes, same checksums). The new file replaces the old one by rename, so a
/// crash leaves the original intact.
///
/// ```
/// use llamapack_format::{DType, Lpk, LpkWriter, edit, testing};
///
/// let dir = tempfile::tempdir()?;
/// let p = dir.path().join("m.lpk");
/// let mut w = LpkWriter::create(&p)?;
/// w.write_tensor("scale", DType::F32, &[4], &[0u8; 16])?;
/// w.finish(&testing::tiny_metadata())?;
///
/// edit::rewrite_metadata(&p, |m| m.provenance.accuracy = Some(serde_json::json!({"kld_mean": 0.01})))?;
/// let lpk = Lpk::open(&p)?;
/// assert_eq!(lpk.provenance().accuracy.as_ref().unwrap()["kld_mean"], 0.01);
/// assert!(lpk.verify().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rewrite_metadata(path: &Path, edit: impl FnOnce(&mut Metadata)) -> Result<()> {
    let lpk = Lpk::open(path)?;
    let mut meta = lpk.metadata().clone();
    edit(&mut meta);
    let mut w = LpkWriter::create(path)?;
    for t in lpk.tensors() {
        w.write_tensor(t.name, t.dtype, t.shape, t.bytes)?;
    }
    for b in lpk.blobs() {
        if let Some(data) = lpk.blob(&b.name) {
            w.write_blob(&b.name, data)?;
        }
    }
    drop(lpk);
    w.finish(&meta)?;
    Ok(())
}
