//! [`InputStats`]: the second moments `H = E[x xᵀ]` of a linear layer's input.

use rayon::prelude::*;

use crate::Error;

/// The stored matrix, in the precision the caller accumulated it in.
#[derive(Clone, Debug)]
pub(crate) enum Matrix {
    /// Single precision (half the memory: 0.48 GB at 11008 columns).
    F32(Vec<f32>),
    /// Double precision.
    F64(Vec<f64>),
}

/// Second-moment statistics of a linear layer's input: `H = E[x xᵀ]` over `tokens` input
/// vectors `x` of `cols` values (the weight's columns), a symmetric `cols × cols` matrix stored
/// row-major in f32 or f64. Its diagonal is the importance matrix (`E[x²]` per column).
///
/// Only the diagonal and the upper triangle (`H[i][j]`, `j ≥ i`) are read; the constructors
/// check the size, that every entry is finite and that the diagonal is not negative.
/// Positive semi-definiteness is checked where it matters, by the factorization of
/// [`crate::optimize::factor`].
#[derive(Clone, Debug)]
pub struct InputStats {
    cols: usize,
    tokens: u64,
    h: Matrix,
}

impl InputStats {
    /// Statistics from an f32 matrix (`cols × cols`, row-major) of `tokens` tokens.
    pub fn from_f32(cols: usize, h: Vec<f32>, tokens: u64) -> Result<InputStats, Error> {
        check(cols, h.len(), tokens, |i| f64::from(h[i]))?;
        Ok(InputStats {
            cols,
            tokens,
            h: Matrix::F32(h),
        })
    }

    /// Statistics from an f64 matrix (`cols × cols`, row-major) of `tokens` tokens.
    pub fn from_f64(cols: usize, h: Vec<f64>, tokens: u64) -> Result<InputStats, Error> {
        check(cols, h.len(), tokens, |i| h[i])?;
        Ok(InputStats {
            cols,
            tokens,
            h: Matrix::F64(h),
        })
    }

    /// The statistics of the input vectors `x` (`tokens × cols`, row-major): `H = XᵀX / tokens`,
    /// accumulated in f64. For tests and small layers; a calibration pass accumulates `XᵀX`
    /// itself and calls [`InputStats::from_f32`] or [`InputStats::from_f64`].
    pub fn from_inputs(x: &[f32], cols: usize) -> Result<InputStats, Error> {
        if cols == 0 || x.is_empty() || !x.len().is_multiple_of(cols) {
            return Err(Error::Shape {
                what: "input vectors",
                expected: cols.max(1) * (x.len() / cols.max(1)).max(1),
                found: x.len(),
            });
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteAt {
                row: i / cols,
                column: i % cols,
                value: x[i],
            });
        }
        let tokens = x.len() / cols;
        let mut h = vec![0f64; cols * cols];
        h.par_chunks_mut(cols).enumerate().for_each(|(i, row)| {
            for t in 0..tokens {
                let xt = &x[t * cols..(t + 1) * cols];
                let xi = f64::from(xt[i]);
                if xi != 0.0 {
                    for (o, &xj) in row.iter_mut().zip(xt) {
                        *o += xi * f64::from(xj);
                    }
                }
            }
            for o in row.iter_mut() {
                *o /= tokens as f64;
            }
        });
        InputStats::from_f64(cols, h, tokens as u64)
    }

    /// Columns of the layer (the matrix is `cols × cols`).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Tokens the statistics were accumulated over.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// `H[i][j]`.
    ///
    /// # Panics
    /// If `i` or `j` is not below [`InputStats::cols`].
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(i < self.cols && j < self.cols, "index out of range");
        match &self.h {
            Matrix::F32(h) => f64::from(h[i * self.cols + j]),
            Matrix::F64(h) => h[i * self.cols + j],
        }
    }

    /// The diagonal `E[x²]`: the importance matrix of llama.cpp's `--imatrix`, one weight per
    /// column.
    pub fn diag(&self) -> Vec<f32> {
        (0..self.cols).map(|i| self.get(i, i) as f32).collect()
    }

    /// The stored matrix.
    pub(crate) fn matrix(&self) -> &Matrix {
        &self.h
    }
}

/// The constructors' checks.
fn check(cols: usize, len: usize, tokens: u64, at: impl Fn(usize) -> f64) -> Result<(), Error> {
    let bad = |reason: String| Err(Error::InputStats { reason });
    if cols == 0 {
        return bad("a layer of 0 columns".into());
    }
    let expected = cols.checked_mul(cols).ok_or_else(|| Error::InputStats {
        reason: format!("{cols} columns overflow the matrix size"),
    })?;
    if len != expected {
        return Err(Error::Shape {
            what: "input statistics (cols × cols)",
            expected,
            found: len,
        });
    }
    if tokens == 0 {
        return bad("accumulated over 0 tokens".into());
    }
    if let Some(i) = (0..len).find(|&i| !at(i).is_finite()) {
        return bad(format!(
            "non-finite entry {} at ({}, {})",
            at(i),
            i / cols,
            i % cols
        ));
    }
    if let Some(i) = (0..cols).find(|&i| at(i * cols + i) < 0.0) {
        return bad(format!(
            "negative diagonal entry {} at column {i}",
            at(i * cols + i)
        ));
    }
    Ok(())
}
