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
}
/// Write f32 elements.
pub trait F32sMut: F32s {
    fn set_f32(&mut self, i: usize, v: f32);
}
impl F32s for [u8] {
    #[inline(always)]
    fn get_f32(&self, i: usize) -> f32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self[4 * i..4 * i + 4]);
        f32::from_le_bytes(b)
    }
}
impl F32sMut for [u8] {
    #[inline(always)]
    fn set_f32(&mut self, i: usize, v: f32) {
        self[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
}
impl F32s for [f32] {
    #[inline(always)]
    fn get_f32(&self, i: usize) -> f32 {
        self[i]
    }
}
impl F32sMut for [f32] {
    #[inline(always)]
    fn set_f32(&mut self, i: usize, v: f32) {
        self[i] = v;
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
