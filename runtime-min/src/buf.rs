//! Element access to tensors wherever they live: the arena (`[u8]`) or the caller's typed
//! arrays (`[i8]`, `[f32]`, ...). Generated kernels use `x.get_i8(i)` / `y.set_i8(i, v)` (and `_f32`) so the same
//! kernel text works on both, without `unsafe` casts; every access compiles to one load or
//! store (int8: `u8 as i8` is free; f32: a 4-byte little-endian load).

/// Read int8 elements.
pub trait I8s {
    fn get_i8(&self, i: usize) -> i8;
}
/// Write int8 elements.
pub trait I8sMut: I8s {
    fn set_i8(&mut self, i: usize, v: i8);
}
impl I8s for [u8] {
    #[inline(always)]
    fn get_i8(&self, i: usize) -> i8 {
        self[i] as i8
    }
}
impl I8sMut for [u8] {
    #[inline(always)]
    fn set_i8(&mut self, i: usize, v: i8) {
        self[i] = v as u8;
    }
}
impl I8s for [i8] {
    #[inline(always)]
    fn get_i8(&self, i: usize) -> i8 {
        self[i]
    }
}
impl I8sMut for [i8] {
    #[inline(always)]
    fn set_i8(&mut self, i: usize, v: i8) {
        self[i] = v;
    }
}

/// Read f32 elements.
pub trait F32s {
    fn get_f32(&self, i: usize) -> f32;
    /// Elements `i..i + n` as a slice of the same kind (one bounds check).
    fn f32_run(&self, i: usize, n: usize) -> &Self;
    /// Elements `i..i + dst.len()` into `dst` (one bounds check).
    fn read_f32s(&self, i: usize, dst: &mut [f32]) {
        for (k, d) in dst.iter_mut().enumerate() {
            *d = self.get_f32(i + k);
        }
    }
}
/// Write f32 elements.
pub trait F32sMut: F32s {
    fn set_f32(&mut self, i: usize, v: f32);
    /// `src` into elements `i..i + src.len()` (one bounds check).
    fn write_f32s(&mut self, i: usize, src: &[f32]) {
        for (k, &v) in src.iter().enumerate() {
            self.set_f32(i + k, v);
        }
    }
}
impl F32s for [u8] {
    #[inline(always)]
    fn f32_run(&self, i: usize, n: usize) -> &Self {
        &self[4 * i..4 * (i + n)]
    }
    #[inline(always)]
    fn get_f32(&self, i: usize) -> f32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self[4 * i..4 * i + 4]);
        f32::from_le_bytes(b)
    }
    #[inline(always)]
    fn read_f32s(&self, i: usize, dst: &mut [f32]) {
        let n = dst.len();
        for (d, c) in dst.iter_mut().zip(self[4 * i..4 * (i + n)].chunks_exact(4)) {
            *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
}
impl F32sMut for [u8] {
    #[inline(always)]
    fn set_f32(&mut self, i: usize, v: f32) {
        self[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    #[inline(always)]
    fn write_f32s(&mut self, i: usize, src: &[f32]) {
        for (d, v) in self[4 * i..4 * (i + src.len())].chunks_exact_mut(4).zip(src) {
            d.copy_from_slice(&v.to_le_bytes());
        }
    }
}
impl F32s for [f32] {
    #[inline(always)]
    fn f32_run(&self, i: usize, n: usize) -> &Self {
        &self[i..i + n]
    }
    #[inline(always)]
    fn get_f32(&self, i: usize) -> f32 {
        self[i]
    }
    #[inline(always)]
    fn read_f32s(&self, i: usize, dst: &mut [f32]) {
        dst.copy_from_slice(&self[i..i + dst.len()]);
    }
}
impl F32sMut for [f32] {
    #[inline(always)]
    fn set_f32(&mut self, i: usize, v: f32) {
        self[i] = v;
    }
    #[inline(always)]
    fn write_f32s(&mut self, i: usize, src: &[f32]) {
        self[i..i + src.len()].copy_from_slice(src);
    }
}

/// Read little-endian i32 elements (bias vectors stored as bytes in flash).
#[inline(always)]
pub fn ld_i32(b: &[u8], i: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[4 * i..4 * i + 4]);
    i32::from_le_bytes(a)
}

macro_rules! wide {
    ($get_t:ident, $set_t:ident, $get:ident, $set:ident, $t:ty, $n:expr) => {
        /// Read elements of this type.
        pub trait $get_t {
            fn $get(&self, i: usize) -> $t;
        }
        /// Write elements of this type.
        pub trait $set_t: $get_t {
            fn $set(&mut self, i: usize, v: $t);
        }
        impl $get_t for [u8] {
            #[inline(always)]
            fn $get(&self, i: usize) -> $t {
                let mut b = [0u8; $n];
                b.copy_from_slice(&self[$n * i..$n * i + $n]);
                <$t>::from_le_bytes(b)
            }
        }
        impl $set_t for [u8] {
            #[inline(always)]
            fn $set(&mut self, i: usize, v: $t) {
                self[$n * i..$n * i + $n].copy_from_slice(&v.to_le_bytes());
            }
        }
        impl $get_t for [$t] {
            #[inline(always)]
            fn $get(&self, i: usize) -> $t {
                self[i]
            }
        }
        impl $set_t for [$t] {
            #[inline(always)]
            fn $set(&mut self, i: usize, v: $t) {
                self[i] = v;
            }
        }
    };
}

wide!(I16s, I16sMut, get_i16, set_i16, i16, 2);
wide!(I32s, I32sMut, get_i32, set_i32, i32, 4);
wide!(I64s, I64sMut, get_i64, set_i64, i64, 8);

// In-place and overlapping operands. When an operator's output shares arena bytes with one
// of its inputs (element-wise ops over a dying input, convolutions whose output trails
// their input), the generated code passes the arena as shared cells
// (`Cell::from_mut(&mut arena[..]).as_slice_of_cells()`), one sub-slice per operand: reads
// and writes through `&[Cell<u8>]` may alias, safely, and compile to the same byte loads
// and stores. The memory plan guarantees that no byte is written before its last read.

use core::cell::Cell;

impl I8s for [Cell<u8>] {
    #[inline(always)]
    fn get_i8(&self, i: usize) -> i8 {
        self[i].get() as i8
    }
}

impl F32s for [Cell<u8>] {
    #[inline(always)]
    fn f32_run(&self, i: usize, n: usize) -> &Self {
        &self[4 * i..4 * (i + n)]
    }
    #[inline(always)]
    fn get_f32(&self, i: usize) -> f32 {
        let c = &self[4 * i..4 * i + 4];
        f32::from_le_bytes([c[0].get(), c[1].get(), c[2].get(), c[3].get()])
    }
    #[inline(always)]
    fn read_f32s(&self, i: usize, dst: &mut [f32]) {
        let n = dst.len();
        for (d, c) in dst.iter_mut().zip(self[4 * i..4 * (i + n)].chunks_exact(4)) {
            *d = f32::from_le_bytes([c[0].get(), c[1].get(), c[2].get(), c[3].get()]);
        }
    }
}

macro_rules! cells_get {
    ($get_t:ident, $get:ident, $t:ty, $n:expr) => {
        impl $get_t for [Cell<u8>] {
            #[inline(always)]
            fn $get(&self, i: usize) -> $t {
                let c = &self[$n * i..$n * i + $n];
                let mut b = [0u8; $n];
                for (d, s) in b.iter_mut().zip(c) {
                    *d = s.get();
                }
                <$t>::from_le_bytes(b)
            }
        }
    };
}

cells_get!(I16s, get_i16, i16, 2);
cells_get!(I32s, get_i32, i32, 4);
cells_get!(I64s, get_i64, i64, 8);

/// Write elements through shared cells (`&self`): the setters of an operand that may
/// overlap another operand of the same call.
pub trait CellsSet {
    fn set_i8(&self, i: usize, v: i8);
    fn set_f32(&self, i: usize, v: f32);
    /// `src` into elements `i..i + src.len()`.
    fn write_f32s(&self, i: usize, src: &[f32]) {
        for (k, &v) in src.iter().enumerate() {
            self.set_f32(i + k, v);
        }
    }
    fn set_i16(&self, i: usize, v: i16);
    fn set_i32(&self, i: usize, v: i32);
    fn set_i64(&self, i: usize, v: i64);
}

#[inline(always)]
fn put<const N: usize>(c: &[Cell<u8>], i: usize, b: [u8; N]) {
    let c = &c[N * i..N * i + N];
    for (d, s) in c.iter().zip(b) {
        d.set(s);
    }
}

impl CellsSet for [Cell<u8>] {
    #[inline(always)]
    fn set_i8(&self, i: usize, v: i8) {
        self[i].set(v as u8);
    }
    /// One bounds check for the whole run, not one per element.
    #[inline(always)]
    fn write_f32s(&self, i: usize, src: &[f32]) {
        for (d, v) in self[4 * i..4 * (i + src.len())].chunks_exact(4).zip(src) {
            let b = v.to_le_bytes();
            d[0].set(b[0]);
            d[1].set(b[1]);
            d[2].set(b[2]);
            d[3].set(b[3]);
        }
    }
    #[inline(always)]
    fn set_f32(&self, i: usize, v: f32) {
        put(self, i, v.to_le_bytes());
    }
    #[inline(always)]
    fn set_i16(&self, i: usize, v: i16) {
        put(self, i, v.to_le_bytes());
    }
    #[inline(always)]
    fn set_i32(&self, i: usize, v: i32) {
        put(self, i, v.to_le_bytes());
    }
    #[inline(always)]
    fn set_i64(&self, i: usize, v: i64) {
        put(self, i, v.to_le_bytes());
    }
}

#[cfg(test)]
mod cell_tests {
    use super::*;

    #[test]
    fn cells_alias_safely() {
        let mut a = [0u8; 16];
        let cells = Cell::from_mut(&mut a[..]).as_slice_of_cells();
        let (x, y) = (&cells[4..12], &cells[0..16]);
        y.set_f32(1, 1.5);
        assert_eq!(x.get_f32(0), 1.5);
        y.set_f32(2, -2.0);
        let mut r = [0.0f32; 2];
        x.read_f32s(0, &mut r);
        assert_eq!(r, [1.5, -2.0]);
        y.write_f32s(1, &[4.0, 8.0]);
        x.read_f32s(0, &mut r);
        assert_eq!(r, [4.0, 8.0]);
        y.set_i8(4, -3);
        assert_eq!(x.get_i8(0), -3);
        y.set_i16(3, -2);
        assert_eq!(x.get_i16(1), -2);
        y.set_i32(2, 7);
        assert_eq!(x.get_i32(1), 7);
        y.set_i64(1, -9);
        assert_eq!(cells[8..16].get_i64(0), -9);
        assert_eq!(a[8..16], (-9i64).to_le_bytes());
    }
}

/// Read uint8 elements.
pub trait U8s {
    fn get_u8(&self, i: usize) -> u8;
}
/// Write uint8 elements.
pub trait U8sMut: U8s {
    fn set_u8(&mut self, i: usize, v: u8);
}
impl U8s for [u8] {
    #[inline(always)]
    fn get_u8(&self, i: usize) -> u8 {
        self[i]
    }
}
impl U8sMut for [u8] {
    #[inline(always)]
    fn set_u8(&mut self, i: usize, v: u8) {
        self[i] = v;
    }
}
