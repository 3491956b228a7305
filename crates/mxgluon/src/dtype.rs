//! Element types ([`DType`]), storage types ([`StorageType`]) and gradient requests
//! ([`GradReq`]), with MXNet's names and numeric flags.
//!
//! ```
//! use mxgluon::{DType, GradReq, StorageType};
//! let d: DType = "float16".parse()?;
//! assert_eq!(d.flag(), 2);
//! assert_eq!(DType::from_flag(12)?, DType::BFloat16);
//! assert_eq!("row_sparse".parse::<StorageType>()?, StorageType::RowSparse);
//! assert_eq!("add".parse::<GradReq>()?, GradReq::Add);
//! assert!("float128".parse::<DType>().unwrap_err().to_string().contains("float32"));
//! # Ok::<(), mxgluon::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use half::{bf16, f16};

use crate::error::{Error, Result};

/// The element type of an array, with MXNet's (mshadow's) type flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum DType {
    /// 32-bit float, flag 0 (the default).
    #[default]
    Float32,
    /// 64-bit float, flag 1.
    Float64,
    /// IEEE half precision, flag 2.
    Float16,
    /// Unsigned byte, flag 3.
    UInt8,
    /// 32-bit signed integer, flag 4.
    Int32,
    /// Signed byte, flag 5.
    Int8,
    /// 64-bit signed integer, flag 6.
    Int64,
    /// Boolean stored as one byte (0 or 1), flag 7.
    Bool,
    /// 16-bit signed integer, flag 8 (files only in MXNet's `nd` layer).
    Int16,
    /// 16-bit unsigned integer, flag 9 (files only in MXNet's `nd` layer).
    UInt16,
    /// 32-bit unsigned integer, flag 10 (files only in MXNet's `nd` layer).
    UInt32,
    /// 64-bit unsigned integer, flag 11 (files only in MXNet's `nd` layer).
    UInt64,
    /// Brain float 16, flag 12.
    BFloat16,
}

impl DType {
    /// Every dtype, in flag order.
    pub const ALL: [DType; 13] = [
        DType::Float32,
        DType::Float64,
        DType::Float16,
        DType::UInt8,
        DType::Int32,
        DType::Int8,
        DType::Int64,
        DType::Bool,
        DType::Int16,
        DType::UInt16,
        DType::UInt32,
        DType::UInt64,
        DType::BFloat16,
    ];

    /// MXNet's type flag.
    pub fn flag(self) -> i32 {
        match self {
            DType::Float32 => 0,
            DType::Float64 => 1,
            DType::Float16 => 2,
            DType::UInt8 => 3,
            DType::Int32 => 4,
            DType::Int8 => 5,
            DType::Int64 => 6,
            DType::Bool => 7,
            DType::Int16 => 8,
            DType::UInt16 => 9,
            DType::UInt32 => 10,
            DType::UInt64 => 11,
            DType::BFloat16 => 12,
        }
    }

    /// The dtype of an MXNet type flag.
    pub fn from_flag(flag: i32) -> Result<Self> {
        usize::try_from(flag)
            .ok()
            .and_then(|i| DType::ALL.get(i).copied())
            .ok_or(Error::InvalidFlag {
                what: "dtype",
                flag: flag as i64,
            })
    }

    /// MXNet's (numpy's) name: `"float32"`, `"bfloat16"`, `"bool"`, ...
    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Float16 => "float16",
            DType::UInt8 => "uint8",
            DType::Int32 => "int32",
            DType::Int8 => "int8",
            DType::Int64 => "int64",
            DType::Bool => "bool",
            DType::Int16 => "int16",
            DType::UInt16 => "uint16",
            DType::UInt32 => "uint32",
            DType::UInt64 => "uint64",
            DType::BFloat16 => "bfloat16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::UInt8 | DType::Int8 | DType::Bool => 1,
            DType::Float16 | DType::BFloat16 | DType::Int16 | DType::UInt16 => 2,
            DType::Float32 | DType::Int32 | DType::UInt32 => 4,
            DType::Float64 | DType::Int64 | DType::UInt64 => 8,
        }
    }

    /// Whether this is a floating-point type (float16/32/64, bfloat16).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::Float32 | DType::Float64 | DType::Float16 | DType::BFloat16
        )
    }

    /// Whether MXNet's legacy `mx.nd` layer can create arrays of this type (flags 0–7 and 12);
    /// the others only appear in files.
    pub fn is_nd_creatable(self) -> bool {
        !matches!(
            self,
            DType::Int16 | DType::UInt16 | DType::UInt32 | DType::UInt64
        )
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;

    /// Accepts MXNet's / numpy's dtype names (`"float32"`, `"float16"`, `"bfloat16"`, `"int8"`,
    /// `"bool"`, ...).
    fn from_str(s: &str) -> Result<Self> {
        DType::ALL
            .iter()
            .copied()
            .find(|d| d.name() == s)
            .ok_or_else(|| Error::InvalidEnumValue {
                what: "dtype",
                got: s.to_string(),
                valid: DType::ALL.iter().map(|d| d.name().to_string()).collect(),
            })
    }
}

/// How an array's values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StorageType {
    /// Dense, every element stored (MXNet id 0).
    #[default]
    Default,
    /// Row-sparse: a subset of rows with their row indices (MXNet id 1).
    RowSparse,
    /// Compressed sparse rows (MXNet id 2).
    Csr,
}

impl StorageType {
    /// Every storage type.
    pub const ALL: [StorageType; 3] = [
        StorageType::Default,
        StorageType::RowSparse,
        StorageType::Csr,
    ];

    /// MXNet's storage id (0 default, 1 row_sparse, 2 csr).
    pub fn id(self) -> i32 {
        match self {
            StorageType::Default => 0,
            StorageType::RowSparse => 1,
            StorageType::Csr => 2,
        }
    }

    /// The storage type of an MXNet storage id.
    pub fn from_id(id: i32) -> Result<Self> {
        match id {
            0 => Ok(StorageType::Default),
            1 => Ok(StorageType::RowSparse),
            2 => Ok(StorageType::Csr),
            other => Err(Error::InvalidFlag {
                what: "storage type",
                flag: other as i64,
            }),
        }
    }

    /// MXNet's name: `"default"`, `"row_sparse"`, `"csr"`.
    pub fn name(self) -> &'static str {
        match self {
            StorageType::Default => "default",
            StorageType::RowSparse => "row_sparse",
            StorageType::Csr => "csr",
        }
    }
}

impl fmt::Display for StorageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StorageType {
    type Err = Error;

    /// Accepts `"default"`, `"row_sparse"`, `"csr"`.
    fn from_str(s: &str) -> Result<Self> {
        StorageType::ALL
            .iter()
            .copied()
            .find(|t| t.name() == s)
            .ok_or_else(|| Error::InvalidEnumValue {
                what: "storage type",
                got: s.to_string(),
                valid: StorageType::ALL
                    .iter()
                    .map(|t| t.name().to_string())
                    .collect(),
            })
    }
}

/// What backward does with a variable's gradient buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum GradReq {
    /// Overwrite the buffer with the new gradient (the default).
    #[default]
    Write,
    /// Add the new gradient to the buffer (accumulate until `zero_grad`).
    Add,
    /// No gradient: no buffer is kept and nothing is recorded.
    Null,
}

impl GradReq {
    /// Every request.
    pub const ALL: [GradReq; 3] = [GradReq::Write, GradReq::Add, GradReq::Null];

    /// MXNet's name: `"write"`, `"add"`, `"null"`.
    pub fn name(self) -> &'static str {
        match self {
            GradReq::Write => "write",
            GradReq::Add => "add",
            GradReq::Null => "null",
        }
    }
}

impl fmt::Display for GradReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GradReq {
    type Err = Error;

    /// Accepts `"write"`, `"add"`, `"null"`.
    fn from_str(s: &str) -> Result<Self> {
        GradReq::ALL
            .iter()
            .copied()
            .find(|g| g.name() == s)
            .ok_or_else(|| Error::InvalidEnumValue {
                what: "grad_req",
                got: s.to_string(),
                valid: GradReq::ALL.iter().map(|g| g.name().to_string()).collect(),
            })
    }
}

/// A Rust type that can be an array element. Implemented for `f32`, `f64`, [`struct@f16`], [`struct@bf16`],
/// `u8`, `i8`, `i16`, `u16`, `i32`, `u32`, `i64`, `u64` and `bool`.
///
/// Values move between types with [`Element::to_f64`] / [`Element::from_f64`] for
/// convenience accessors; exact dtype conversion of whole arrays goes through
/// [`NDArray::astype`](crate::nd::NDArray::astype).
pub trait Element: Copy + Send + Sync + fmt::Debug + PartialEq + 'static + sealed::Sealed {
    /// The dtype this type stores as.
    const DTYPE: DType;
    /// The plain-old-data type the bytes are stored as (`u8` for `bool`, `Self` otherwise).
    type Storage: bytemuck::Pod + Send + Sync;
    /// Converts to the storage representation.
    fn to_storage(self) -> Self::Storage;
    /// Converts from the storage representation (`bool`: any non-zero byte is `true`).
    fn from_storage(s: Self::Storage) -> Self;
    /// Converts to `f64` (exact for every type but the 64-bit integers beyond 2^53).
    fn to_f64(self) -> f64;
    /// Converts from `f64` with Rust `as` semantics (saturating, NaN to 0 for integers).
    fn from_f64(v: f64) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! impl_element_prim {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            type Storage = $t;
            #[inline(always)]
            fn to_storage(self) -> $t { self }
            #[inline(always)]
            fn from_storage(s: $t) -> Self { s }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn from_f64(v: f64) -> Self { v as $t }
        }
    )*};
}

impl_element_prim!(
    f32 => Float32, f64 => Float64, u8 => UInt8, i8 => Int8, i16 => Int16, u16 => UInt16,
    i32 => Int32, u32 => UInt32, i64 => Int64, u64 => UInt64,
);

impl sealed::Sealed for f16 {}
impl Element for f16 {
    const DTYPE: DType = DType::Float16;
    type Storage = f16;
    #[inline(always)]
    fn to_storage(self) -> f16 {
        self
    }
    #[inline(always)]
    fn from_storage(s: f16) -> Self {
        s
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}

impl sealed::Sealed for bf16 {}
impl Element for bf16 {
    const DTYPE: DType = DType::BFloat16;
    type Storage = bf16;
    #[inline(always)]
    fn to_storage(self) -> bf16 {
        self
    }
    #[inline(always)]
    fn from_storage(s: bf16) -> Self {
        s
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: DType = DType::Bool;
    type Storage = u8;
    #[inline(always)]
    fn to_storage(self) -> u8 {
        self as u8
    }
    #[inline(always)]
    fn from_storage(s: u8) -> Self {
        s != 0
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
}

/// Runs `$body` with the type alias `$T` bound to the storage type of `$dtype`
/// (`u8` for `Bool`).
#[macro_export]
#[doc(hidden)]
macro_rules! dispatch_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {{
        use $crate::dtype::DType as __D;
        match $dtype {
            __D::Float32 => {
                type $T = f32;
                $body
            }
            __D::Float64 => {
                type $T = f64;
                $body
            }
            __D::Float16 => {
                type $T = ::half::f16;
                $body
            }
            __D::BFloat16 => {
                type $T = ::half::bf16;
                $body
            }
            __D::UInt8 | __D::Bool => {
                type $T = u8;
                $body
            }
            __D::Int8 => {
                type $T = i8;
                $body
            }
            __D::Int16 => {
                type $T = i16;
                $body
            }
            __D::UInt16 => {
                type $T = u16;
                $body
            }
            __D::Int32 => {
                type $T = i32;
                $body
            }
            __D::UInt32 => {
                type $T = u32;
                $body
            }
            __D::Int64 => {
                type $T = i64;
                $body
            }
            __D::UInt64 => {
                type $T = u64;
                $body
            }
        }
    }};
}

/// Runs `$body` with `$T` bound to `f32`, `f64`, `f16` or `bf16`; other dtypes evaluate
/// `$other`.
#[macro_export]
#[doc(hidden)]
macro_rules! dispatch_float {
    ($dtype:expr, $T:ident => $body:expr, _ => $other:expr) => {{
        use $crate::dtype::DType as __D;
        match $dtype {
            __D::Float32 => {
                type $T = f32;
                $body
            }
            __D::Float64 => {
                type $T = f64;
                $body
            }
            __D::Float16 => {
                type $T = ::half::f16;
                $body
            }
            __D::BFloat16 => {
                type $T = ::half::bf16;
                $body
            }
            _ => $other,
        }
    }};
}

/// Numeric operations every storage type supports, used by the kernels. Integer arithmetic
/// wraps; integer division by zero gives 0 (never a panic).
pub trait Scalar: bytemuck::Pod + Send + Sync + PartialOrd + fmt::Debug + 'static {
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// The dtype of this storage type (`UInt8` for `u8`).
    const DTYPE: DType;
    /// Converts from `f64` (`as` semantics).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64`.
    fn to_f64(self) -> f64;
    /// Whether this is an integer type (exact conversions between integers go through `i128`).
    const IS_INT: bool;
    /// Converts to `i128` (floats truncate and saturate).
    fn to_i128(self) -> i128;
    /// Converts from `i128`, wrapping like a C cast.
    fn from_i128(v: i128) -> Self;
    /// `self + o`.
    fn add(self, o: Self) -> Self;
    /// `self - o`.
    fn sub(self, o: Self) -> Self;
    /// `self * o`.
    fn mul(self, o: Self) -> Self;
    /// `self / o` (0 for integer division by zero).
    fn div(self, o: Self) -> Self;
}

macro_rules! impl_scalar_float {
    ($($t:ty => $d:ident),*) => {$(
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const DTYPE: DType = DType::$d;
            #[inline(always)] fn from_f64(v: f64) -> Self { v as $t }
            #[inline(always)] fn to_f64(self) -> f64 { self as f64 }
            const IS_INT: bool = false;
            #[inline(always)] fn to_i128(self) -> i128 { self as i128 }
            #[inline(always)] fn from_i128(v: i128) -> Self { v as $t }
            #[inline(always)] fn add(self, o: Self) -> Self { self + o }
            #[inline(always)] fn sub(self, o: Self) -> Self { self - o }
            #[inline(always)] fn mul(self, o: Self) -> Self { self * o }
            #[inline(always)] fn div(self, o: Self) -> Self { self / o }
        }
    )*};
}
impl_scalar_float!(f32 => Float32, f64 => Float64);

macro_rules! impl_scalar_half {
    ($($t:ty => $d:ident),*) => {$(
        impl Scalar for $t {
            const ZERO: Self = <$t>::ZERO;
            const ONE: Self = <$t>::ONE;
            const DTYPE: DType = DType::$d;
            #[inline(always)] fn from_f64(v: f64) -> Self { <$t>::from_f64(v) }
            #[inline(always)] fn to_f64(self) -> f64 { <$t>::to_f64(self) }
            const IS_INT: bool = false;
            #[inline(always)] fn to_i128(self) -> i128 { <$t>::to_f64(self) as i128 }
            #[inline(always)] fn from_i128(v: i128) -> Self { <$t>::from_f64(v as f64) }
            #[inline(always)] fn add(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() + o.to_f32()) }
            #[inline(always)] fn sub(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() - o.to_f32()) }
            #[inline(always)] fn mul(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() * o.to_f32()) }
            #[inline(always)] fn div(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() / o.to_f32()) }
        }
    )*};
}
impl_scalar_half!(f16 => Float16, bf16 => BFloat16);

macro_rules! impl_scalar_int {
    ($($t:ty => $d:ident),*) => {$(
        impl Scalar for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const DTYPE: DType = DType::$d;
            #[inline(always)] fn from_f64(v: f64) -> Self { v as $t }
            #[inline(always)] fn to_f64(self) -> f64 { self as f64 }
            const IS_INT: bool = true;
            #[inline(always)] fn to_i128(self) -> i128 { self as i128 }
            #[inline(always)] fn from_i128(v: i128) -> Self { v as $t }
            #[inline(always)] fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline(always)] fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            #[inline(always)] fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[inline(always)] fn div(self, o: Self) -> Self { self.checked_div(o).unwrap_or(0) }
        }
    )*};
}
impl_scalar_int!(u8 => UInt8, i8 => Int8, i16 => Int16, u16 => UInt16, i32 => Int32, u32 => UInt32, i64 => Int64, u64 => UInt64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_and_match_mxnet() {
        for (i, d) in DType::ALL.iter().enumerate() {
            assert_eq!(d.flag(), i as i32);
            assert_eq!(DType::from_flag(d.flag()).unwrap(), *d);
            assert_eq!(d.name().parse::<DType>().unwrap(), *d);
        }
        assert_eq!(DType::Bool.flag(), 7);
        assert_eq!(DType::BFloat16.flag(), 12);
        assert!(DType::from_flag(13).is_err());
        assert!(DType::from_flag(-1).is_err());
    }

    #[test]
    fn unknown_strings_list_valid_values() {
        let e = "write2".parse::<GradReq>().unwrap_err().to_string();
        assert!(
            e.contains("write") && e.contains("add") && e.contains("null"),
            "{e}"
        );
        let e = "sparse".parse::<StorageType>().unwrap_err().to_string();
        assert!(e.contains("row_sparse") && e.contains("csr"), "{e}");
        let e = "half".parse::<DType>().unwrap_err().to_string();
        assert!(e.contains("bfloat16"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(DType::Float16.size(), 2);
        assert_eq!(DType::Bool.size(), 1);
        assert_eq!(DType::UInt64.size(), 8);
        assert!(DType::BFloat16.is_float());
        assert!(!DType::Int32.is_float());
    }

    #[test]
    fn integer_division_by_zero_is_zero() {
        assert_eq!(Scalar::div(7i32, 0), 0);
        assert_eq!(Scalar::div(i32::MIN, -1), 0);
    }
}
