//! `nd`: n-dimensional arrays ([`NDArray`]) on contexts, and the operators on them.
//!
//! An `NDArray` is a cheap handle: cloning it gives another handle to the **same** memory, so a
//! write through one handle is visible through every other (MXNet's semantics; `data()` of a
//! parameter returns such a handle). [`NDArray::copy_to`] and [`NDArray::astype`] make new
//! memory. Arrays are row-major (C order).
//!
//! ```
//! use mxgluon::{nd, Context, DType};
//! let a = nd::NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], Context::cpu(0))?;
//! let b = a.clone();                       // same memory
//! b.fill(7.0)?;
//! assert_eq!(a.to_vec::<f32>()?, vec![7.0; 6]);
//! let c = a.copy_to(Context::cpu(1))?;     // separate memory on cpu(1)
//! c.fill(0.0)?;
//! assert_eq!(a.to_vec::<f32>()?[0], 7.0);
//! let h = a.astype(DType::Float16)?;
//! assert_eq!(h.dtype(), DType::Float16);
//! # Ok::<(), mxgluon::Error>(())
//! ```

mod cast;
mod display;
pub mod ops;
pub(crate) mod par;
pub mod sparse;
pub(crate) mod storage;

use std::sync::Arc;

use smallvec::SmallVec;

use crate::context::Context;
use crate::dtype::{DType, Element, Scalar, StorageType};
use crate::error::{Error, Result};
use storage::Storage;

pub use ops::*;
pub use sparse::{Array, CSRNDArray, RowSparseNDArray};
pub use storage::{pool_limit, set_pool_limit};

// MXNet spells file I/O `mx.nd.save` / `mx.nd.load`; the code lives in the `io` layer (which
// builds on `nd`), and these re-exports give it MXNet's names.
pub use crate::io::params::{
    load, load_from_bytes, load_from_bytes_with, load_with, save, save_to_bytes,
    save_to_bytes_with, save_with, LoadOptions, Loaded, SaveOptions,
};
pub use crate::io::ArrayList;

/// The shape of an array (dimensions, outermost first).
pub type Shape = SmallVec<[usize; 4]>;

/// Number of elements of a shape (1 for a 0-d shape). `None` on overflow.
pub fn shape_size(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d))
}

/// What [`NDArray::cache_key`] returns: the storage (weakly held), the view's offset and the
/// storage's write version. Caches of values derived from an array (a transposed or packed
/// weight) keep it and check it with [`NDArray::matches_cache_key`].
pub(crate) type CacheKey = (std::sync::Weak<Storage>, usize, u64);

/// A dense n-dimensional array living on a [`Context`]. See the [module docs](self).
#[derive(Clone)]
pub struct NDArray {
    storage: Arc<Storage>,
    shape: Shape,
    /// Offset of the first element inside `storage`, in elements.
    offset: usize,
    /// The autograd node of this array: a marked variable, or the recorded operation that
    /// produced it (`None` for arrays that take no part in differentiation).
    ag: Option<Arc<crate::autograd::Node>>,
}

impl std::fmt::Debug for NDArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl NDArray {
    // ------------------------------------------------------------------ construction

    fn from_storage(storage: Storage, shape: &[usize]) -> NDArray {
        NDArray {
            storage: Arc::new(storage),
            shape: Shape::from_slice(shape),
            offset: 0,
            ag: None,
        }
    }

    fn checked_size(op: &'static str, shape: &[usize]) -> Result<usize> {
        shape_size(shape).ok_or_else(|| Error::InvalidShape {
            op,
            shape: shape.to_vec(),
            reason: "the number of elements overflows".into(),
        })
    }

    /// An array of zeros.
    pub fn zeros(shape: &[usize], dtype: DType, ctx: Context) -> Result<NDArray> {
        let n = NDArray::checked_size("zeros", shape)?;
        Ok(NDArray::from_storage(Storage::zeros(ctx, dtype, n)?, shape))
    }

    /// An array whose every element is going to be written by the caller before it is read.
    /// Its initial contents are unspecified (but valid) values.
    pub(crate) fn for_overwrite(shape: &[usize], dtype: DType, ctx: Context) -> Result<NDArray> {
        let n = NDArray::checked_size("empty", shape)?;
        Ok(NDArray::from_storage(
            Storage::for_overwrite(ctx, dtype, n)?,
            shape,
        ))
    }

    /// An array of ones.
    pub fn ones(shape: &[usize], dtype: DType, ctx: Context) -> Result<NDArray> {
        NDArray::full(shape, 1.0, dtype, ctx)
    }

    /// An array filled with `value` (converted to `dtype` with `as` semantics).
    pub fn full(shape: &[usize], value: f64, dtype: DType, ctx: Context) -> Result<NDArray> {
        if value == 0.0 {
            return NDArray::zeros(shape, dtype, ctx);
        }
        let a = NDArray::for_overwrite(shape, dtype, ctx)?;
        a.fill(value)?;
        Ok(a)
    }

    /// `start, start + step, ...` up to (excluding) `stop`, like MXNet's `nd.arange`.
    pub fn arange(start: f64, stop: f64, step: f64, dtype: DType, ctx: Context) -> Result<NDArray> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
            return Err(Error::invalid_arg(
                "arange",
                format!(
                    "start {start}, stop {stop} and step {step} must be finite and step non-zero"
                ),
            ));
        }
        let n = ((stop - start) / step).ceil().max(0.0);
        if n > (isize::MAX as f64) {
            return Err(Error::invalid_arg(
                "arange",
                format!("{n} elements do not fit in memory"),
            ));
        }
        let n = n as usize;
        let a = NDArray::for_overwrite(&[n], dtype, ctx)?;
        a.write_with(|buf| {
            crate::dispatch_dtype!(dtype, T => {
                let s = buf.typed_mut::<T>();
                for (i, v) in s.iter_mut().enumerate() {
                    *v = <T as Scalar>::from_f64(bool_normalize(dtype, start + step * i as f64));
                }
            })
        });
        Ok(a)
    }

    /// An array holding `data` (row-major) with the given shape.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize], ctx: Context) -> Result<NDArray> {
        NDArray::from_slice(&data, shape, ctx)
    }

    /// An array holding a copy of `data` (row-major) with the given shape.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize], ctx: Context) -> Result<NDArray> {
        let n = NDArray::checked_size("from_slice", shape)?;
        if n != data.len() {
            return Err(Error::InvalidShape {
                op: "from_slice",
                shape: shape.to_vec(),
                reason: format!("it holds {n} elements but {} values were given", data.len()),
            });
        }
        let a = NDArray::for_overwrite(shape, T::DTYPE, ctx)?;
        a.write_with(|buf| {
            let dst = buf.typed_mut::<T::Storage>();
            for (d, s) in dst.iter_mut().zip(data) {
                *d = s.to_storage();
            }
        });
        Ok(a)
    }

    /// A 0-d array holding one value.
    pub fn scalar<T: Element>(value: T, ctx: Context) -> Result<NDArray> {
        NDArray::from_slice(&[value], &[], ctx)
    }

    // ------------------------------------------------------------------ properties

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        // The product was checked when the storage was created and views never grow it.
        self.shape.iter().product()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    /// The context the memory lives on.
    pub fn context(&self) -> Context {
        self.storage.ctx()
    }

    /// The storage type (always [`StorageType::Default`] for this type).
    pub fn stype(&self) -> StorageType {
        StorageType::Default
    }

    /// Bytes occupied by the elements of this array.
    pub fn nbytes(&self) -> usize {
        self.size() * self.dtype().size()
    }

    /// Identity of this view's data for caches of derived values: the storage (weakly held),
    /// the view's offset, and the storage's write version.
    pub(crate) fn cache_key(&self) -> CacheKey {
        (
            Arc::downgrade(&self.storage),
            self.offset,
            self.storage.version(),
        )
    }

    /// Whether `key` (from [`NDArray::cache_key`]) still describes this view's current data.
    pub(crate) fn matches_cache_key(&self, key: &CacheKey) -> bool {
        std::ptr::eq(key.0.as_ptr(), Arc::as_ptr(&self.storage))
            && key.0.strong_count() > 0
            && key.1 == self.offset
            && key.2 == self.storage.version()
    }

    /// The autograd node of this handle (see [`crate::autograd`]).
    #[inline]
    pub(crate) fn autograd_node(&self) -> Option<&Arc<crate::autograd::Node>> {
        self.ag.as_ref()
    }

    /// Replaces the autograd node of this handle (other handles keep theirs).
    #[inline]
    pub(crate) fn set_autograd_node(&mut self, node: Option<Arc<crate::autograd::Node>>) {
        self.ag = node;
    }

    /// A handle to the same memory that takes no part in differentiation (MXNet's `detach`):
    /// operations on it are not recorded and no gradient flows back through it.
    ///
    /// ```
    /// use mxgluon::{autograd, nd, Context, GradReq};
    /// let mut x = nd::ones(&[2], Context::cpu(0))?;
    /// x.attach_grad(GradReq::Write)?;
    /// let d = x.detach();
    /// assert!(d.shares_memory_with(&x));
    /// assert!(d.grad().is_none());
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn detach(&self) -> NDArray {
        NDArray {
            storage: Arc::clone(&self.storage),
            shape: self.shape.clone(),
            offset: self.offset,
            ag: None,
        }
    }

    /// Whether two handles share the same memory.
    pub fn shares_memory_with(&self, other: &NDArray) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    // ------------------------------------------------------------------ raw access (crate)

    fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.size()
    }

    /// Runs `f` on the whole underlying buffer under the read lock. Use `self.range()` (or the
    /// typed helpers) to restrict to this view.
    pub(crate) fn read_with<R>(&self, f: impl FnOnce(&storage::Buffer) -> R) -> R {
        let g = self.storage.read();
        f(&g)
    }

    pub(crate) fn write_with<R>(&self, f: impl FnOnce(&mut storage::Buffer) -> R) -> R {
        let mut g = self.storage.write();
        f(&mut g)
    }

    /// This view's elements as `T` (the storage type matching `self.dtype()`), under the read
    /// lock.
    pub(crate) fn read_slice<T: bytemuck::Pod, R>(&self, f: impl FnOnce(&[T]) -> R) -> R {
        debug_assert_eq!(std::mem::size_of::<T>(), self.dtype().size());
        let r = self.range();
        self.read_with(|b| f(&b.typed::<T>()[r]))
    }

    /// This view's elements as mutable `T`, under the write lock.
    pub(crate) fn write_slice<T: bytemuck::Pod, R>(&self, f: impl FnOnce(&mut [T]) -> R) -> R {
        debug_assert_eq!(std::mem::size_of::<T>(), self.dtype().size());
        let r = self.range();
        self.write_with(|b| f(&mut b.typed_mut::<T>()[r]))
    }

    /// This view's bytes.
    pub(crate) fn read_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let es = self.dtype().size();
        let r = self.range();
        self.read_with(|b| f(&b.bytes()[r.start * es..r.end * es]))
    }

    pub(crate) fn write_bytes<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let es = self.dtype().size();
        let r = self.range();
        self.write_with(|b| f(&mut b.bytes_mut()[r.start * es..r.end * es]))
    }

    /// Runs `f` with the elements (as `T`) of several arrays at once: `reads` under read locks
    /// and `writes` under write locks, in argument order.
    ///
    /// Errors with [`Error::InvalidArgument`] when a written array shares its buffer with any
    /// other argument (that would deadlock or alias), or when an element size does not match.
    pub(crate) fn with_slices<T: bytemuck::Pod, R>(
        op: &'static str,
        reads: &[&NDArray],
        writes: &[&NDArray],
        f: impl FnOnce(&[&[T]], &mut [&mut [T]]) -> R,
    ) -> Result<R> {
        for (i, w) in writes.iter().enumerate() {
            let clash = reads.iter().any(|r| Arc::ptr_eq(&r.storage, &w.storage))
                || writes[i + 1..]
                    .iter()
                    .any(|o| Arc::ptr_eq(&o.storage, &w.storage));
            if clash {
                return Err(Error::InvalidArgument {
                    op,
                    reason: "an array that is written shares its memory with another argument"
                        .into(),
                });
            }
        }
        if let Some(a) = reads
            .iter()
            .chain(writes.iter())
            .find(|a| a.dtype().size() != std::mem::size_of::<T>())
        {
            return Err(Error::InvalidArgument {
                op,
                reason: format!("unexpected element type {}", a.dtype()),
            });
        }
        let read_guards: Vec<_> = reads.iter().map(|a| a.storage.read()).collect();
        let mut write_guards: Vec<_> = writes.iter().map(|a| a.storage.write()).collect();
        let read_slices: Vec<&[T]> = read_guards
            .iter()
            .zip(reads)
            .map(|(g, a)| &g.typed::<T>()[a.range()])
            .collect();
        let mut write_slices: Vec<&mut [T]> = write_guards
            .iter_mut()
            .zip(writes)
            .map(|(g, a)| &mut g.typed_mut::<T>()[a.range()])
            .collect();
        Ok(f(&read_slices, &mut write_slices))
    }

    fn check_dtype<T: Element>(&self, op: &'static str) -> Result<()> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                expected: self.dtype(),
                got: T::DTYPE,
            });
        }
        Ok(())
    }

    // ------------------------------------------------------------------ public element access

    /// Runs `f` on the elements (row-major) without copying. `T` must be this array's element
    /// type (`bool` arrays are read as `u8` through this method; use [`NDArray::to_vec`]
    /// for `Vec<bool>`).
    ///
    /// ```
    /// # use mxgluon::{nd::NDArray, Context, DType};
    /// let a = NDArray::ones(&[3], DType::Float32, Context::cpu(0))?;
    /// let total: f32 = a.with_data::<f32, _>(|s| s.iter().sum())?;
    /// assert_eq!(total, 3.0);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn with_data<T: Element, R>(&self, f: impl FnOnce(&[T::Storage]) -> R) -> Result<R> {
        self.check_dtype::<T>("with_data")?;
        Ok(self.read_slice::<T::Storage, R>(f))
    }

    /// Runs `f` on the elements with write access (visible through every handle).
    pub fn with_data_mut<T: Element, R>(
        &self,
        f: impl FnOnce(&mut [T::Storage]) -> R,
    ) -> Result<R> {
        self.check_dtype::<T>("with_data_mut")?;
        Ok(self.write_slice::<T::Storage, R>(f))
    }

    /// Copies the elements out (row-major). `T` must be this array's element type; see
    /// [`NDArray::to_f64_vec`] / [`NDArray::to_f32_vec`] for converting reads.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.check_dtype::<T>("to_vec")?;
        Ok(self.read_slice::<T::Storage, _>(|s| s.iter().map(|v| T::from_storage(*v)).collect()))
    }

    /// Copies the elements out converted to `f64`, whatever the dtype.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        crate::dispatch_dtype!(self.dtype(), T => self.read_slice::<T, _>(|s| s.iter().map(|v| Scalar::to_f64(*v)).collect()))
    }

    /// Copies the elements out converted to `f32`, whatever the dtype.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        crate::dispatch_dtype!(self.dtype(), T => self.read_slice::<T, _>(|s| s.iter().map(|v| Scalar::to_f64(*v) as f32).collect()))
    }

    /// The value of a one-element array, as `f64` (MXNet's `asscalar`).
    pub fn as_scalar_f64(&self) -> Result<f64> {
        if self.size() != 1 {
            return Err(Error::InvalidShape {
                op: "as_scalar",
                shape: self.shape().to_vec(),
                reason: "only arrays with exactly one element convert to a scalar".into(),
            });
        }
        Ok(self.to_f64_vec()[0])
    }

    /// The element at a multi-dimensional index, as `f64`.
    pub fn get_f64(&self, index: &[usize]) -> Result<f64> {
        let flat = self.flat_index(index)?;
        Ok(
            crate::dispatch_dtype!(self.dtype(), T => self.read_slice::<T, _>(|s| Scalar::to_f64(s[flat]))),
        )
    }

    /// Sets the element at a multi-dimensional index (converted with `as` semantics).
    pub fn set_f64(&self, index: &[usize], value: f64) -> Result<()> {
        let flat = self.flat_index(index)?;
        let value = bool_normalize(self.dtype(), value);
        crate::dispatch_dtype!(self.dtype(), T => self.write_slice::<T, _>(|s| s[flat] = <T as Scalar>::from_f64(value)));
        Ok(())
    }

    fn flat_index(&self, index: &[usize]) -> Result<usize> {
        if index.len() != self.ndim() || index.iter().zip(self.shape()).any(|(i, d)| i >= d) {
            return Err(Error::IndexOutOfBounds {
                index: index.to_vec(),
                shape: self.shape().to_vec(),
            });
        }
        Ok(index
            .iter()
            .zip(self.shape())
            .fold(0usize, |acc, (i, d)| acc * d + i))
    }

    // ------------------------------------------------------------------ in-place writes

    /// Sets every element to `value` (converted with `as` semantics; `bool`: non-zero is true).
    pub fn fill(&self, value: f64) -> Result<()> {
        if value == 0.0 {
            self.write_bytes(storage::fill_zero);
            return Ok(());
        }
        let dtype = self.dtype();
        crate::dispatch_dtype!(dtype, T => {
            let v = <T as Scalar>::from_f64(bool_normalize(dtype, value));
            self.write_slice::<T, _>(|s| par::fill(s, v));
        });
        Ok(())
    }

    /// Copies `src`'s values into this array's memory (MXNet's `self[:] = src`). `src` must have
    /// the same shape, or a single element (broadcast); its dtype is converted and it may be on
    /// another context.
    pub fn assign(&self, src: &NDArray) -> Result<()> {
        if src.size() == 1 && self.shape() != src.shape() {
            return self.fill(src.as_scalar_f64()?);
        }
        if src.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "assign",
                lhs: self.shape().to_vec(),
                rhs: src.shape().to_vec(),
                detail: "the source must have the destination's shape or one element".into(),
            });
        }
        if self.shares_memory_with(src) {
            if self.offset == src.offset {
                return Ok(());
            }
            let tmp = src.copy_to(src.context())?;
            return self.assign(&tmp);
        }
        if src.dtype() == self.dtype() {
            src.read_bytes(|s| self.write_bytes(|d| storage::copy_bytes(d, s)));
            Ok(())
        } else {
            src.read_with(|sb| {
                let sr = src.range();
                let dr = self.range();
                self.write_with(|db| cast::cast_buffers(sb, sr, src.dtype(), db, dr, self.dtype()))
            });
            Ok(())
        }
    }

    /// Copies values from a slice into this array (lengths and dtype must match).
    pub fn copy_from_slice<T: Element>(&self, data: &[T]) -> Result<()> {
        self.check_dtype::<T>("copy_from_slice")?;
        if data.len() != self.size() {
            return Err(Error::InvalidShape {
                op: "copy_from_slice",
                shape: self.shape().to_vec(),
                reason: format!("{} values were given", data.len()),
            });
        }
        self.write_slice::<T::Storage, _>(|d| {
            for (d, s) in d.iter_mut().zip(data) {
                *d = s.to_storage();
            }
        });
        Ok(())
    }

    // ------------------------------------------------------------------ copies and views

    /// A copy of this array on `ctx` (always new memory, even on the same context).
    pub fn copy_to(&self, ctx: Context) -> Result<NDArray> {
        let out = self.copy_to_untracked(ctx)?;
        Ok(ops::grad::record_unary(
            "copyto",
            ops::grad::UnaryOp::Copy,
            self,
            out,
        ))
    }

    /// [`NDArray::copy_to`] without recording.
    pub(crate) fn copy_to_untracked(&self, ctx: Context) -> Result<NDArray> {
        let out = NDArray::for_overwrite(self.shape(), self.dtype(), ctx)?;
        self.read_bytes(|s| out.write_bytes(|d| storage::copy_bytes(d, s)));
        Ok(out)
    }

    /// This array if it already lives on `ctx`, else a copy there.
    pub fn as_in_context(&self, ctx: Context) -> Result<NDArray> {
        if self.context() == ctx {
            Ok(self.clone())
        } else {
            self.copy_to(ctx)
        }
    }

    /// A copy converted to `dtype` (always new memory). Every pair of dtypes converts:
    /// floats to integers truncate toward zero and saturate, anything to `bool` is "non-zero".
    pub fn astype(&self, dtype: DType) -> Result<NDArray> {
        let out = self.astype_untracked(dtype)?;
        Ok(ops::grad::record_unary(
            "cast",
            ops::grad::UnaryOp::Copy,
            self,
            out,
        ))
    }

    /// [`NDArray::astype`] without recording.
    pub(crate) fn astype_untracked(&self, dtype: DType) -> Result<NDArray> {
        if dtype == self.dtype() {
            return self.copy_to_untracked(self.context());
        }
        let out = NDArray::for_overwrite(self.shape(), dtype, self.context())?;
        self.read_with(|sb| {
            let sr = self.range();
            let dr = out.range();
            out.write_with(|db| cast::cast_buffers(sb, sr, self.dtype(), db, dr, dtype))
        });
        Ok(out)
    }

    /// A view with another shape of the same number of elements, sharing memory. Recorded by
    /// autograd (the gradient is reshaped back).
    pub fn reshape(&self, shape: &[usize]) -> Result<NDArray> {
        let out = self.reshape_view(shape)?;
        Ok(ops::grad::record_reshape(self, out))
    }

    /// [`NDArray::reshape`] without recording.
    pub(crate) fn reshape_view(&self, shape: &[usize]) -> Result<NDArray> {
        let n = shape_size(shape);
        if n != Some(self.size()) {
            return Err(Error::InvalidShape {
                op: "reshape",
                shape: shape.to_vec(),
                reason: format!(
                    "it holds {} elements but the array {} holds {}",
                    n.map(|n| n.to_string())
                        .unwrap_or_else(|| "too many".into()),
                    crate::error::fmt_shape(self.shape()),
                    self.size()
                ),
            });
        }
        Ok(NDArray {
            storage: Arc::clone(&self.storage),
            shape: Shape::from_slice(shape),
            offset: self.offset,
            ag: None,
        })
    }

    /// Reshape with MXNet's special values: `-1` infers one dimension from the others, `0` keeps
    /// the corresponding input dimension.
    pub fn reshape_infer(&self, spec: &[i64]) -> Result<NDArray> {
        let bad = |reason: String| Error::InvalidShape {
            op: "reshape",
            shape: self.shape().to_vec(),
            reason,
        };
        let mut out = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            match d {
                -1 => {
                    if infer.replace(i).is_some() {
                        return Err(bad("at most one dimension can be -1".into()));
                    }
                    out.push(1);
                }
                0 => out.push(*self.shape().get(i).ok_or_else(|| {
                    bad(format!("0 at position {i} has no input dimension to copy"))
                })?),
                d if d > 0 => out.push(d as usize),
                d => return Err(bad(format!("unsupported special value {d} in {spec:?}"))),
            }
        }
        if let Some(i) = infer {
            let known: usize = out.iter().product();
            if known == 0 || !self.size().is_multiple_of(known) {
                return Err(bad(format!("cannot infer -1 in {spec:?}")));
            }
            out[i] = self.size() / known;
        }
        self.reshape(&out)
    }

    /// A view of rows `begin..end` along the first axis, sharing memory (MXNet's `a[begin:end]`).
    pub fn slice_axis0(&self, begin: usize, end: usize) -> Result<NDArray> {
        let rows = *self.shape().first().ok_or_else(|| Error::InvalidShape {
            op: "slice",
            shape: vec![],
            reason: "a 0-d array cannot be sliced".into(),
        })?;
        if begin > end || end > rows {
            return Err(Error::invalid_arg(
                "slice",
                format!("range {begin}..{end} is outside 0..{rows}"),
            ));
        }
        let row: usize = self.shape()[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = end - begin;
        Ok(NDArray {
            storage: Arc::clone(&self.storage),
            shape,
            offset: self.offset + begin * row,
            ag: None,
        })
    }

    /// A new array with the same shape, dtype and context, filled with zeros.
    pub fn zeros_like(&self) -> Result<NDArray> {
        NDArray::zeros(self.shape(), self.dtype(), self.context())
    }
}

/// A value as stored in an array of `dtype`: booleans are 0 or 1.
#[inline]
pub(crate) fn bool_normalize(dtype: DType, v: f64) -> f64 {
    if dtype == DType::Bool {
        (v != 0.0) as u8 as f64
    } else {
        v
    }
}

/// Shorthand constructors in MXNet's style: float32 by default, on `ctx` or (with `None`) on the
/// current context.
///
/// ```
/// use mxgluon::{nd, Context};
/// let x = nd::zeros(&[16, 100], Context::cpu(0))?;
/// assert_eq!(x.shape(), &[16, 100]);
/// let y = nd::ones(&[2], None)?;               // current context
/// assert_eq!(y.context(), Context::cpu(0));
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn zeros(shape: &[usize], ctx: impl Into<Option<Context>>) -> Result<NDArray> {
    NDArray::zeros(
        shape,
        DType::Float32,
        ctx.into().unwrap_or_else(Context::current),
    )
}

/// float32 ones on `ctx` (or the current context).
pub fn ones(shape: &[usize], ctx: impl Into<Option<Context>>) -> Result<NDArray> {
    NDArray::ones(
        shape,
        DType::Float32,
        ctx.into().unwrap_or_else(Context::current),
    )
}

/// float32 array filled with `value` on `ctx` (or the current context).
pub fn full(shape: &[usize], value: f64, ctx: impl Into<Option<Context>>) -> Result<NDArray> {
    NDArray::full(
        shape,
        value,
        DType::Float32,
        ctx.into().unwrap_or_else(Context::current),
    )
}

/// float32 `arange(start, stop, step)` on `ctx` (or the current context).
pub fn arange(
    start: f64,
    stop: f64,
    step: f64,
    ctx: impl Into<Option<Context>>,
) -> Result<NDArray> {
    NDArray::arange(
        start,
        stop,
        step,
        DType::Float32,
        ctx.into().unwrap_or_else(Context::current),
    )
}

/// An array from a slice of any element type on `ctx` (or the current context).
pub fn array<T: Element>(
    data: &[T],
    shape: &[usize],
    ctx: impl Into<Option<Context>>,
) -> Result<NDArray> {
    NDArray::from_slice(data, shape, ctx.into().unwrap_or_else(Context::current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_and_copies_do_not() {
        let a = zeros(&[2, 2], Context::cpu(0)).unwrap();
        let b = a.clone();
        b.set_f64(&[1, 1], 5.0).unwrap();
        assert_eq!(a.get_f64(&[1, 1]).unwrap(), 5.0);
        let c = a.copy_to(Context::cpu(1)).unwrap();
        assert_eq!(c.context(), Context::cpu(1));
        c.fill(1.0).unwrap();
        assert_eq!(a.to_vec::<f32>().unwrap(), vec![0., 0., 0., 5.]);
        assert!(!a.shares_memory_with(&c));
    }

    #[test]
    fn views_share_memory() {
        let a = arange(0.0, 6.0, 1.0, None).unwrap();
        let m = a.reshape(&[2, 3]).unwrap();
        let row = m.slice_axis0(1, 2).unwrap();
        assert_eq!(row.to_vec::<f32>().unwrap(), vec![3., 4., 5.]);
        row.fill(9.0).unwrap();
        assert_eq!(a.to_vec::<f32>().unwrap(), vec![0., 1., 2., 9., 9., 9.]);
        assert!(a.reshape(&[4, 2]).is_err());
        assert_eq!(a.reshape_infer(&[-1, 2]).unwrap().shape(), &[3, 2]);
    }

    #[test]
    fn typed_access_checks_dtype() {
        let a = NDArray::ones(&[2], DType::Int32, Context::cpu(0)).unwrap();
        assert!(matches!(
            a.to_vec::<f32>(),
            Err(Error::DTypeMismatch { .. })
        ));
        assert_eq!(a.to_vec::<i32>().unwrap(), vec![1, 1]);
        let b = NDArray::from_slice(&[true, false], &[2], Context::cpu(0)).unwrap();
        assert_eq!(b.to_vec::<bool>().unwrap(), vec![true, false]);
        assert_eq!(b.dtype(), DType::Bool);
    }

    #[test]
    fn arange_and_full() {
        let a = NDArray::arange(1.0, 2.0, 0.25, DType::Float64, Context::cpu(0)).unwrap();
        assert_eq!(a.to_vec::<f64>().unwrap(), vec![1.0, 1.25, 1.5, 1.75]);
        assert!(NDArray::arange(0.0, 1.0, 0.0, DType::Float32, Context::cpu(0)).is_err());
        let f = NDArray::full(&[3], 2.5, DType::Float16, Context::cpu(0)).unwrap();
        assert_eq!(f.to_f64_vec(), vec![2.5; 3]);
        assert!(NDArray::zeros(&[2], DType::Float32, Context::gpu(0)).is_err());
    }

    #[test]
    fn assign_converts_and_broadcasts_scalars() {
        let a = zeros(&[3], None).unwrap();
        let src = NDArray::from_slice(&[1.5f64, 2.5, 3.5], &[3], Context::cpu(1)).unwrap();
        a.assign(&src).unwrap();
        assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.5, 2.5, 3.5]);
        a.assign(&NDArray::scalar(4i32, Context::cpu(0)).unwrap())
            .unwrap();
        assert_eq!(a.to_vec::<f32>().unwrap(), vec![4.0; 3]);
        assert!(a.assign(&zeros(&[2], None).unwrap()).is_err());
        a.assign(&a.clone()).unwrap();
    }
}
