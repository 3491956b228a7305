//! Reductions: sums, means, maxima and minima over all elements or over axes.
//!
//! Following MXNet, a reduction over all elements returns shape `(1,)`. Floats accumulate in
//! `f64` (whatever their width), integers in `i64` with wrapping, converted back to the input
//! dtype at the end.

use rayon::prelude::*;

use super::elementwise::Plan;
use crate::dtype::{DType, Scalar};
use crate::error::{Error, Result};
use crate::nd::{par, NDArray};

/// Sum of a float slice accumulated in f64 lanes (vectorizes; split across threads when large).
fn sum_f64<T: Scalar>(s: &[T]) -> f64 {
    fn lanes<T: Scalar>(s: &[T]) -> f64 {
        let mut acc = [0f64; 8];
        let mut it = s.chunks_exact(8);
        for c in &mut it {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += x.to_f64();
            }
        }
        let tail: f64 = it.remainder().iter().map(|x| x.to_f64()).sum();
        acc.iter().sum::<f64>() + tail
    }
    if par::worth_parallel(s.len()) {
        s.par_chunks(par::CHUNK).map(lanes).sum()
    } else {
        lanes(s)
    }
}

/// Wrapping integer sum.
fn sum_i64<T: Scalar>(s: &[T]) -> i64 {
    s.iter()
        .fold(0i64, |acc, x| acc.wrapping_add(x.to_i128() as i64))
}

/// Largest (`want_max`) or smallest element; NaN wins. `s` is non-empty.
fn extreme<T: Scalar>(s: &[T], want_max: bool) -> T {
    let mut m = s[0];
    for &x in s {
        #[allow(clippy::eq_op)]
        if x != x {
            return x;
        }
        if (want_max && x > m) || (!want_max && x < m) {
            m = x;
        }
    }
    m
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Sum,
    Mean,
}

/// Sum or mean over all elements into a `(1,)` array.
fn reduce_all(a: &NDArray, kind: Kind) -> Result<NDArray> {
    let out = NDArray::for_overwrite(&[1], a.dtype(), a.context())?;
    let n = a.size();
    crate::dispatch_dtype!(a.dtype(), T => {
        let v: T = a.read_slice::<T, _>(|s| finish::<T>(kind, if T::IS_INT { Acc::I(sum_i64(s)) } else { Acc::F(sum_f64(s)) }, n));
        out.write_slice::<T, _>(|o| o[0] = v);
    });
    bool_fix(&out);
    Ok(out)
}

enum Acc {
    F(f64),
    I(i64),
}

/// Converts an accumulator to the output type, dividing by `n` for a mean.
#[inline]
fn finish<T: Scalar>(kind: Kind, acc: Acc, n: usize) -> T {
    match acc {
        Acc::F(v) => T::from_f64(if kind == Kind::Mean { v / n as f64 } else { v }),
        Acc::I(v) => {
            let v = if kind == Kind::Mean {
                if n == 0 {
                    0
                } else {
                    v.wrapping_div(n as i64)
                }
            } else {
                v
            };
            T::from_i128(v as i128)
        }
    }
}

fn bool_fix(out: &NDArray) {
    if out.dtype() == DType::Bool {
        out.write_slice::<u8, _>(|s| s.iter_mut().for_each(|x| *x = (*x != 0) as u8));
    }
}

/// Validates `axes` (empty = all) against `ndim` and returns a per-axis "reduced" mask.
fn axis_mask(op: &'static str, shape: &[usize], axes: &[usize]) -> Result<Vec<bool>> {
    let mut mask = vec![axes.is_empty(); shape.len()];
    for &ax in axes {
        if ax >= shape.len() {
            return Err(Error::invalid_arg(
                op,
                format!(
                    "axis {ax} is out of range for an array of shape {}",
                    crate::error::fmt_shape(shape)
                ),
            ));
        }
        if mask[ax] {
            return Err(Error::invalid_arg(op, format!("axis {ax} is given twice")));
        }
        mask[ax] = true;
    }
    Ok(mask)
}

fn reduce_axes(a: &NDArray, axes: &[usize], keepdims: bool, kind: Kind) -> Result<NDArray> {
    let op = if kind == Kind::Sum { "sum" } else { "mean" };
    let mask = axis_mask(op, a.shape(), axes)?;
    let keep: Vec<usize> = a
        .shape()
        .iter()
        .zip(&mask)
        .map(|(&d, &m)| if m { 1 } else { d })
        .collect();
    let out_shape: Vec<usize> = if keepdims {
        keep.clone()
    } else {
        let s: Vec<usize> = a
            .shape()
            .iter()
            .zip(&mask)
            .filter(|(_, &m)| !m)
            .map(|(&d, _)| d)
            .collect();
        if s.is_empty() {
            vec![1]
        } else {
            s
        }
    };
    let n_out: usize = keep.iter().product();
    let count: usize = a
        .shape()
        .iter()
        .zip(&mask)
        .filter(|(_, &m)| m)
        .map(|(&d, _)| d)
        .product();
    let out = NDArray::for_overwrite(&out_shape, a.dtype(), a.context())?;
    let shape = a.shape();
    let plan = Plan::new(
        shape,
        &super::elementwise::bcast_strides(shape, shape),
        &super::elementwise::bcast_strides(&keep, shape),
    );
    crate::dispatch_dtype!(a.dtype(), T => {
        a.read_slice::<T, _>(|s| {
            if T::IS_INT {
                let mut acc = vec![0i64; n_out];
                accumulate(s, &plan, &mut acc, |x: T| x.to_i128() as i64, i64::wrapping_add);
                out.write_slice::<T, _>(|o| {
                    o.iter_mut().zip(acc).for_each(|(o, v)| *o = finish(kind, Acc::I(v), count))
                });
            } else {
                let mut acc = vec![0f64; n_out];
                accumulate(s, &plan, &mut acc, |x: T| x.to_f64(), |p, q| p + q);
                out.write_slice::<T, _>(|o| {
                    o.iter_mut().zip(acc).for_each(|(o, v)| *o = finish(kind, Acc::F(v), count))
                });
            }
        })
    });
    bool_fix(&out);
    Ok(out)
}

/// `acc[out_index(i)] += conv(s[i])` for every input element, walking `plan` (side `a` is the
/// contiguous input, side `b` the output with stride 0 on reduced axes).
fn accumulate<T: Copy, A: Copy>(
    s: &[T],
    plan: &Plan,
    acc: &mut [A],
    conv: impl Fn(T) -> A,
    plus: impl Fn(A, A) -> A,
) {
    if s.is_empty() {
        return;
    }
    let inner = plan.inner();
    let ib = plan.sb[plan.sb.len() - 1];
    for (r, row) in s.chunks(inner).enumerate() {
        let (_, ob) = plan.row_offsets(r);
        if ib == 0 {
            let mut t = acc[ob];
            for &x in row {
                t = plus(t, conv(x));
            }
            acc[ob] = t;
        } else {
            for (a, &x) in acc[ob..ob + row.len()].iter_mut().zip(row) {
                *a = plus(*a, conv(x));
            }
        }
    }
}

/// Records a reduction over every axis.
fn record_all(x: &NDArray, name: &'static str, scale: f64, out: NDArray) -> NDArray {
    if !crate::autograd::tracked(&[x]) {
        return out;
    }
    let keep = vec![1; x.ndim()];
    super::grad::record_reduce(name, x, keep, scale, out)
}

/// Records a reduction over `axes` (validated by the forward pass; empty = all).
fn record_axes(
    x: &NDArray,
    name: &'static str,
    axes: &[usize],
    mean: bool,
    out: NDArray,
) -> NDArray {
    if !crate::autograd::tracked(&[x]) {
        return out;
    }
    let mut keep = x.shape().to_vec();
    let mut count = 1usize;
    for (i, d) in keep.iter_mut().enumerate() {
        if axes.is_empty() || axes.contains(&i) {
            count *= *d;
            *d = 1;
        }
    }
    let scale = if mean { 1.0 / count.max(1) as f64 } else { 1.0 };
    super::grad::record_reduce(name, x, keep, scale, out)
}

impl NDArray {
    /// Sum of all elements, as a `(1,)` array of this dtype (MXNet's `nd.sum(a)`).
    ///
    /// ```
    /// use mxgluon::{nd, Context};
    /// let a = nd::array(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], Context::cpu(0))?;
    /// let s = a.sum()?;
    /// assert_eq!(s.shape(), &[1]);
    /// assert_eq!(s.to_vec::<f32>()?, vec![10.0]);
    /// assert_eq!(a.sum_axis(&[0], false)?.to_vec::<f32>()?, vec![4.0, 6.0]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn sum(&self) -> Result<NDArray> {
        let out = reduce_all(self, Kind::Sum)?;
        Ok(record_all(self, "sum", 1.0, out))
    }

    /// Mean of all elements, as a `(1,)` array (integers: truncated quotient; empty: NaN or 0).
    pub fn mean(&self) -> Result<NDArray> {
        let out = reduce_all(self, Kind::Mean)?;
        let scale = 1.0 / self.size().max(1) as f64;
        Ok(record_all(self, "mean", scale, out))
    }

    /// Sum over `axes` (an empty slice means every axis). With `keepdims` the reduced axes stay
    /// as size 1; otherwise they are removed (a result with no axis left has shape `(1,)`).
    /// An axis out of range, or given twice, is an [`Error::InvalidArgument`].
    pub fn sum_axis(&self, axes: &[usize], keepdims: bool) -> Result<NDArray> {
        let out = reduce_axes(self, axes, keepdims, Kind::Sum)?;
        Ok(record_axes(self, "sum", axes, false, out))
    }

    /// [`NDArray::sum_axis`] without recording.
    pub(crate) fn sum_axis_untracked(&self, axes: &[usize], keepdims: bool) -> Result<NDArray> {
        reduce_axes(self, axes, keepdims, Kind::Sum)
    }

    /// Mean over `axes`; see [`NDArray::sum_axis`].
    pub fn mean_axis(&self, axes: &[usize], keepdims: bool) -> Result<NDArray> {
        let out = reduce_axes(self, axes, keepdims, Kind::Mean)?;
        Ok(record_axes(self, "mean", axes, true, out))
    }

    /// Largest element as a `(1,)` array (NaN if any element is NaN). Empty arrays are an
    /// [`Error::InvalidShape`].
    pub fn max(&self) -> Result<NDArray> {
        self.extreme("max", true)
    }

    /// Smallest element as a `(1,)` array (NaN if any element is NaN). Empty arrays are an
    /// [`Error::InvalidShape`].
    pub fn min(&self) -> Result<NDArray> {
        self.extreme("min", false)
    }

    fn extreme(&self, op: &'static str, want_max: bool) -> Result<NDArray> {
        if self.size() == 0 {
            return Err(Error::InvalidShape {
                op,
                shape: self.shape().to_vec(),
                reason: "an empty array has no extreme value".into(),
            });
        }
        let out = NDArray::for_overwrite(&[1], self.dtype(), self.context())?;
        crate::dispatch_dtype!(self.dtype(), T => {
            let v: T = self.read_slice::<T, _>(|s| extreme(s, want_max));
            out.write_slice::<T, _>(|o| o[0] = v);
        });
        Ok(out)
    }
}
