//! `Aligned<T>`: a zeroed buffer whose start is 64-byte aligned.
//!
//! A `Vec<f32>` from the system allocator starts on a 16-byte boundary, so every 64-byte SIMD
//! load of an activation row straddles two cache lines, and a split load costs about twice a
//! normal one: on this project's AVX-512 kernels that was ~30 % of the batched matmul's
//! throughput. `State` keeps its activation rows in these buffers (row widths are multiples of
//! 16 floats for Llama models, so every row starts on a line).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;

/// `len` zeroed values of `T`, starting on a 64-byte boundary; derefs to `[T]`.
///
/// The storage is a zeroed byte vector 63 bytes longer than needed, used from its first
/// 64-byte boundary on: a zeroed `Vec<u8>` comes from `calloc`, whose large blocks are fresh
/// pages the kernel maps only when first written, so the rows a pass never touches (a
/// batch-sized logits buffer beyond the rows asked for) cost no memory. (An allocation with
/// 64-byte alignment would be zeroed by writing every byte.)
pub struct Aligned<T: Pod> {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Pod> Aligned<T> {
    /// `len` zeroed values.
    ///
    /// # Panics
    /// If `T`'s size does not divide 64 (never for the `f32`/`u8` buffers of `State`).
    pub fn zeroed(len: usize) -> Aligned<T> {
        let size = std::mem::size_of::<T>();
        assert!(
            size > 0 && 64 % size == 0,
            "Aligned: element size must divide 64"
        );
        let bytes = vec![0u8; len * size + 63];
        let start = bytes.as_ptr().align_offset(64);
        Aligned {
            bytes,
            start,
            len,
            _t: PhantomData,
        }
    }
}

impl<T: Pod> Clone for Aligned<T> {
    fn clone(&self) -> Self {
        // a fresh allocation has its own boundary
        let mut c = Aligned::zeroed(self.len);
        c.copy_from_slice(self);
        c
    }
}

impl<T: Pod> Deref for Aligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        let n = self.len * std::mem::size_of::<T>();
        bytemuck::cast_slice(&self.bytes[self.start..self.start + n])
    }
}

impl<T: Pod> DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let n = self.len * std::mem::size_of::<T>();
        bytemuck::cast_slice_mut(&mut self.bytes[self.start..self.start + n])
    }
}

impl<T: Pod> fmt::Debug for Aligned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aligned<{}>[{}]", std::any::type_name::<T>(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_line_and_holds_len_zeroes() {
        for len in [0, 1, 15, 16, 17, 1000] {
            let mut a = Aligned::<f32>::zeroed(len);
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|&v| v == 0.0));
            assert_eq!(a.as_ptr() as usize % 64, 0);
            if len > 0 {
                a[len - 1] = 1.5;
                assert_eq!(a.clone()[len - 1], 1.5);
            }
        }
        let b = Aligned::<u8>::zeroed(100);
        assert_eq!((b.len(), b.as_ptr() as usize % 64), (100, 0));
    }
}
