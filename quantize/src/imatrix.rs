//! Importance matrices: per weight matrix, the sum of squared input activations per input
//! column (Σx², the diagonal of XᵀX) and the number of tokens summed — what llama.cpp's
//! `llama-imatrix` collects and its weighted quantizers consume as E\[x²\] = Σx² / count.
//!
//! An [`Imatrix`] is keyed by the `.lpk` tensor name (Meta naming, `layers.0.attention.wq.weight`);
//! the GGUF and legacy `.dat` files llama.cpp reads and writes use its own names
//! (`blk.0.attn_q.weight`), and `llamapack-convert` reads and writes them (`gguf::imatrix`). This
//! module does no I/O: collection is the runner's, files are convert's.
//!
//! Each entry holds `n_mat` matrices' worth of sums (1 for a dense model; one per expert in
//! llama.cpp's MoE files), matrix-major, and one token count per matrix. Every value is checked
//! on the way in ([`Imatrix::insert`]): finite, not negative, a whole number of columns per
//! matrix.
//!
//! ```
//! use llamapack_quantize::imatrix::Imatrix;
//!
//! // Two tokens through a 3-column matrix: x = [1, 2, 0] and [3, 0, 1].
//! let mut a = Imatrix::new(512);
//! a.insert("run 1", "layers.0.attention.wq.weight", vec![10.0, 4.0, 1.0], vec![2])?;
//! // Merging adds sums and counts, as `llama-imatrix --in-file` does.
//! let mut b = Imatrix::new(512);
//! b.insert("run 2", "layers.0.attention.wq.weight", vec![0.0, 2.0, 1.0], vec![2])?;
//! a.merge(b, "run 2")?;
//! let e = a.get("layers.0.attention.wq.weight").unwrap();
//! assert_eq!(e.counts(), &[4]);
//! // The weights a quantizer uses: the mean squared activation per column.
//! assert_eq!(e.mean(), vec![2.5, 1.5, 0.5]);
//! # Ok::<(), llamapack_quantize::Error>(())
//! ```

use std::collections::BTreeMap;

use crate::Error;

/// The sums of one weight matrix (or of `n_mat` stacked ones): see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    sums: Vec<f32>,
    counts: Vec<u64>,
}

impl Entry {
    /// Σx² per input column, `[n_mat, cols]` matrix-major.
    pub fn sums(&self) -> &[f32] {
        &self.sums
    }

    /// Tokens summed, one per matrix (`[n_mat]`).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Matrices (1 for a dense weight).
    pub fn n_mat(&self) -> usize {
        self.counts.len()
    }

    /// Input columns of each matrix.
    pub fn cols(&self) -> usize {
        self.sums.len() / self.counts.len()
    }

    /// The importance weights llama-quantize derives: Σx² / count per column, and 1.0 for
    /// every column of a matrix that saw no token (an unused expert).
    pub fn mean(&self) -> Vec<f32> {
        let cols = self.cols();
        let mut out = Vec::with_capacity(self.sums.len());
        for (row, &count) in self.sums.chunks_exact(cols).zip(&self.counts) {
            if count == 0 {
                out.extend(std::iter::repeat_n(1.0, cols));
            } else {
                let c = count as f32;
                out.extend(row.iter().map(|&s| s / c));
            }
        }
        out
    }

    /// Adds `other`'s sums and counts to this entry, as llama-imatrix merges files: the sizes
    /// must agree, except that a single count is spread over `other`'s matrices.
    fn add(&mut self, other: &Entry) -> Result<(), String> {
        if other.sums.len() != self.sums.len() {
            return Err(format!(
                "{} sums, but {} in the data it is merged with",
                other.sums.len(),
                self.sums.len()
            ));
        }
        if self.counts.len() == 1 && other.counts.len() > 1 {
            self.counts = vec![self.counts[0]; other.counts.len()];
        } else if other.counts.len() != self.counts.len() {
            return Err(format!(
                "{} counts, but {} in the data it is merged with",
                other.counts.len(),
                self.counts.len()
            ));
        }
        let sums: Vec<f32> = self
            .sums
            .iter()
            .zip(&other.sums)
            .map(|(a, b)| a + b)
            .collect();
        if let Some(j) = sums.iter().position(|s| !s.is_finite()) {
            return Err(format!("the merged sum of column {j} overflows f32"));
        }
        let mut counts = Vec::with_capacity(self.counts.len());
        for (a, b) in self.counts.iter().zip(&other.counts) {
            counts.push(
                a.checked_add(*b)
                    .ok_or_else(|| "the merged token count overflows".to_owned())?,
            );
        }
        self.sums = sums;
        self.counts = counts;
        Ok(())
    }
}

/// An importance matrix: entries by `.lpk` tensor name, and the metadata of llama.cpp's GGUF
/// imatrix files.
#[derive(Clone, Debug, PartialEq)]
pub struct Imatrix {
    entries: BTreeMap<String, Entry>,
    /// The calibration data: file names, in the order they were used (`imatrix.datasets`).
    pub datasets: Vec<String>,
    /// Chunks (windows of `chunk_size` tokens) the sums cover (`imatrix.chunk_count`).
    pub chunk_count: u32,
    /// Tokens per chunk (`imatrix.chunk_size`, llama-imatrix's context size).
    pub chunk_size: u32,
}

impl Imatrix {
    /// An empty matrix for chunks of `chunk_size` tokens.
    pub fn new(chunk_size: u32) -> Imatrix {
        Imatrix {
            entries: BTreeMap::new(),
            datasets: Vec::new(),
            chunk_count: 0,
            chunk_size,
        }
    }

    /// Adds the entry of tensor `name` after checking it: at least one matrix, the sums a
    /// non-empty whole number of rows of equal length, every sum finite and not negative, the
    /// name not already present. `source` names the data in errors (a file, a run).
    pub fn insert(
        &mut self,
        source: &str,
        name: &str,
        sums: Vec<f32>,
        counts: Vec<u64>,
    ) -> Result<(), Error> {
        let bad = |reason: String| Error::Imatrix {
            file: source.to_owned(),
            tensor: name.to_owned(),
            reason,
        };
        if counts.is_empty() || sums.is_empty() || !sums.len().is_multiple_of(counts.len()) {
            return Err(bad(format!(
                "{} sums do not split into {} matrices of equal width",
                sums.len(),
                counts.len()
            )));
        }
        if let Some((j, v)) = sums
            .iter()
            .enumerate()
            .find(|&(_, v)| !v.is_finite() || *v < 0.0)
        {
            let what = if v.is_finite() {
                "negative"
            } else {
                "not finite"
            };
            return Err(bad(format!(
                "sum {j} is {v}, {what} (a sum of squares is finite and ≥ 0)"
            )));
        }
        if self.entries.contains_key(name) {
            return Err(bad("appears twice".into()));
        }
        self.entries.insert(name.to_owned(), Entry { sums, counts });
        Ok(())
    }

    /// The entry of tensor `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Entries in name order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes tensor `name`'s entry, returning it.
    pub fn remove(&mut self, name: &str) -> Option<Entry> {
        self.entries.remove(name)
    }

    /// The importance weights of tensor `name` (see [`Entry::mean`]).
    pub fn weights(&self, name: &str) -> Option<Vec<f32>> {
        self.get(name).map(Entry::mean)
    }

    /// The largest token count of any matrix.
    pub fn max_count(&self) -> u64 {
        self.entries
            .values()
            .flat_map(|e| e.counts.iter().copied())
            .max()
            .unwrap_or(0)
    }

    /// Sets `chunk_count` from the counts, as llama-imatrix does after loading and collecting:
    /// the largest count divided by `chunk_size` (0 when `chunk_size` is 0).
    pub fn recount_chunks(&mut self) {
        self.chunk_count = self
            .max_count()
            .checked_div(u64::from(self.chunk_size))
            .map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX));
    }

    /// Adds `other` (named `source` in errors) to this matrix, as `llama-imatrix --in-file`
    /// merges files: sums and counts of tensors both have are added (sizes must agree),
    /// the others are taken over; datasets are appended; `chunk_size` stays this matrix's and
    /// `chunk_count` is recomputed from the counts.
    pub fn merge(&mut self, other: Imatrix, source: &str) -> Result<(), Error> {
        for (name, e) in other.entries {
            match self.entries.get_mut(&name) {
                None => {
                    self.entries.insert(name, e);
                }
                Some(mine) => mine.add(&e).map_err(|reason| Error::Imatrix {
                    file: source.to_owned(),
                    tensor: name.clone(),
                    reason,
                })?,
            }
        }
        self.datasets.extend(other.datasets);
        self.recount_chunks();
        Ok(())
    }

    /// Checks every entry against the model it is meant for: `cols_of(name)` is the input
    /// width of the model's matrix `name` (None: the model has no such matrix). Each entry must
    /// name one of them and hold one matrix of exactly that width. `source` names the data.
    pub fn check_model(
        &self,
        source: &str,
        cols_of: impl Fn(&str) -> Option<usize>,
    ) -> Result<(), Error> {
        for (name, e) in &self.entries {
            let bad = |reason: String| Error::Imatrix {
                file: source.to_owned(),
                tensor: name.clone(),
                reason,
            };
            let Some(cols) = cols_of(name) else {
                return Err(bad("the model has no such weight matrix".into()));
            };
            if e.n_mat() != 1 || e.cols() != cols {
                return Err(bad(format!(
                    "{} sums in {} matrices, but the model's matrix has {cols} input columns",
                    e.sums.len(),
                    e.n_mat()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "layers.0.attention.wq.weight";

    fn one(sums: Vec<f32>, counts: Vec<u64>) -> Imatrix {
        let mut m = Imatrix::new(4);
        m.insert("t", Q, sums, counts).unwrap();
        m
    }

    #[test]
    fn insert_rejects_bad_entries() {
        let mut m = Imatrix::new(4);
        for (sums, counts, want) in [
            (vec![1.0, 2.0, 3.0], vec![1, 1], "equal width"),
            (vec![], vec![1], "equal width"),
            (vec![1.0], vec![], "equal width"),
            (vec![1.0, f32::NAN], vec![1], "sum 1 is NaN, not finite"),
            (vec![f32::INFINITY], vec![1], "not finite"),
            (vec![1.0, -0.5], vec![1], "sum 1 is -0.5, negative"),
        ] {
            let e = m.insert("f.gguf", Q, sums, counts).unwrap_err().to_string();
            assert!(e.starts_with(&format!("f.gguf: tensor `{Q}`: ")), "{e}");
            assert!(e.contains(want), "{e}");
        }
        m.insert("f", Q, vec![1.0], vec![1]).unwrap();
        let e = m.insert("f", Q, vec![1.0], vec![1]).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
    }

    #[test]
    fn mean_divides_by_each_count_and_fills_unused_matrices_with_one() {
        let m = one(vec![2.0, 4.0, 9.0, 9.0, 3.0, 6.0], vec![2, 0, 3]);
        let e = m.get(Q).unwrap();
        assert_eq!((e.n_mat(), e.cols()), (3, 2));
        assert_eq!(e.mean(), vec![1.0, 2.0, 1.0, 1.0, 1.0, 2.0]);
    }

    #[test]
    fn merge_adds_broadcasts_and_recounts() {
        let mut a = one(vec![1.0, 2.0], vec![8]);
        a.datasets = vec!["a.txt".into()];
        let mut b = one(vec![3.0, 4.0], vec![4]);
        b.datasets = vec!["b.txt".into()];
        b.insert("t", "output.weight", vec![1.0], vec![12]).unwrap();
        a.merge(b, "b.gguf").unwrap();
        assert_eq!(a.get(Q).unwrap().sums(), &[4.0, 6.0]);
        assert_eq!(a.get(Q).unwrap().counts(), &[12]);
        assert_eq!(a.get("output.weight").unwrap().counts(), &[12]);
        assert_eq!(a.datasets, ["a.txt", "b.txt"]);
        assert_eq!(a.chunk_count, 3, "12 tokens / chunks of 4");

        // One count spread over the other file's matrices (llama.cpp's broadcast).
        let mut a = one(vec![1.0, 1.0], vec![2]);
        a.merge(one(vec![1.0, 1.0], vec![1, 3]), "moe").unwrap();
        assert_eq!(a.get(Q).unwrap().counts(), &[3, 5]);
    }

    #[test]
    fn merge_refuses_mismatched_sizes_naming_the_source_and_tensor() {
        let mut a = one(vec![1.0, 2.0], vec![1]);
        let e = a.merge(one(vec![1.0], vec![1]), "old.dat").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("old.dat: tensor `{Q}`: 1 sums, but 2 in the data it is merged with")
        );
        let mut a = one(vec![1.0, 2.0], vec![1, 1]);
        let e = a.merge(one(vec![1.0, 2.0], vec![1]), "x").unwrap_err();
        assert!(e.to_string().contains("1 counts, but 2"), "{e}");
        let mut a = one(vec![f32::MAX], vec![1]);
        let e = a.merge(one(vec![f32::MAX], vec![1]), "x").unwrap_err();
        assert!(e.to_string().contains("overflows f32"), "{e}");
    }

    #[test]
    fn check_model_wants_known_names_and_widths() {
        let m = one(vec![1.0, 2.0], vec![1]);
        let cols = |n: &str| (n == Q).then_some(2);
        m.check_model("f", cols).unwrap();
        let e = m.check_model("f", |_| Some(3)).unwrap_err().to_string();
        assert!(
            e.contains("2 sums in 1 matrices") && e.contains("3 input columns"),
            "{e}"
        );
        let e = m.check_model("f", |_| None).unwrap_err().to_string();
        assert!(e.contains("no such weight matrix"), "{e}");
        let moe = one(vec![1.0, 2.0], vec![1, 1]);
        assert!(moe.check_model("f", |_| Some(1)).is_err());
    }
}
