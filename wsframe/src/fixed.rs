//! A few bytes built on the stack: an encoded header (at most 14 bytes) or a
//! close payload (at most 125), ready to copy into whatever buffer the caller
//! writes to (`BytesMut`, `Vec`), so this crate needs no buffer type.

use std::fmt;
use std::ops::Deref;

/// Up to `N` bytes, read as a slice.
#[derive(Clone, Copy)]
pub struct Fixed<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Fixed<N> {
    pub(crate) const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Appends `src`. Callers size what they write to `N` themselves (a
    /// header's fields, a reason cut to fit), so overflowing is a bug here,
    /// never something a peer can cause.
    pub(crate) fn extend_from_slice(&mut self, src: &[u8]) {
        self.bytes[self.len..self.len + src.len()].copy_from_slice(src);
        self.len += src.len();
    }
}

impl<const N: usize> Deref for Fixed<N> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl<const N: usize> AsRef<[u8]> for Fixed<N> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl<const N: usize> fmt::Debug for Fixed<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
