//! Elementwise arithmetic with numpy broadcasting, scalar variants, in-place variants and
//! unary math.

use rayon::prelude::*;

use super::grad::{self, ScalarOp, UnaryOp};
use super::{check_pair, read2};
use crate::dtype::{DType, Scalar};
use crate::error::{Error, Result};
use crate::nd::{par, NDArray};

// ---------------------------------------------------------------------------------- broadcast

/// The broadcast shape of `a` and `b` under numpy's rules (align trailing axes; a dimension of
/// 1 stretches).
pub(crate) fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::ShapeMismatch {
                op,
                lhs: a.to_vec(),
                rhs: b.to_vec(),
                detail: format!("dimension {da} cannot broadcast with {db}"),
            });
        };
    }
    Ok(out)
}

/// Row-major strides of `shape` as seen from an `out`-shaped iteration: 0 on broadcast axes.
pub(crate) fn bcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let pad = out.len() - shape.len();
    let mut strides = vec![0; out.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[pad + i] = if shape[i] == 1 { 0 } else { acc };
        acc *= shape[i];
    }
    strides
}

/// An iteration over an output shape with two operands' strides, simplified: size-1 axes are
/// dropped and adjacent axes that are contiguous for both operands are merged. It always has
/// at least one axis.
pub(crate) struct Plan {
    pub(crate) shape: Vec<usize>,
    pub(crate) sa: Vec<usize>,
    pub(crate) sb: Vec<usize>,
}

impl Plan {
    pub(crate) fn new(out: &[usize], sa: &[usize], sb: &[usize]) -> Plan {
        let mut p = Plan {
            shape: Vec::with_capacity(out.len()),
            sa: Vec::with_capacity(out.len()),
            sb: Vec::with_capacity(out.len()),
        };
        for i in 0..out.len() {
            if out[i] == 1 {
                continue;
            }
            if let Some(last) = p.shape.len().checked_sub(1) {
                if p.sa[last] == sa[i] * out[i] && p.sb[last] == sb[i] * out[i] {
                    p.shape[last] *= out[i];
                    p.sa[last] = sa[i];
                    p.sb[last] = sb[i];
                    continue;
                }
            }
            p.shape.push(out[i]);
            p.sa.push(sa[i]);
            p.sb.push(sb[i]);
        }
        if p.shape.is_empty() {
            p.shape.push(1);
            p.sa.push(0);
            p.sb.push(0);
        }
        p
    }

    pub(crate) fn inner(&self) -> usize {
        self.shape[self.shape.len() - 1]
    }

    /// Offsets into `a` and `b` of the first element of output row `row` (a row is one run of
    /// the innermost axis).
    #[inline]
    pub(crate) fn row_offsets(&self, mut row: usize) -> (usize, usize) {
        let (mut oa, mut ob) = (0, 0);
        for d in (0..self.shape.len() - 1).rev() {
            let i = row % self.shape[d];
            row /= self.shape[d];
            oa += i * self.sa[d];
            ob += i * self.sb[d];
        }
        (oa, ob)
    }
}

/// One output row: `out[i] = f(a[oa + i*ia], b[ob + i*ib])` with inner strides 0 or 1.
#[inline(always)]
fn row_kernel<T: Copy>(
    out: &mut [T],
    a: &[T],
    b: &[T],
    (ia, ib): (usize, usize),
    f: &impl Fn(T, T) -> T,
) {
    let n = out.len();
    match (ia, ib) {
        (0, 0) => out.fill(f(a[0], b[0])),
        (0, _) => {
            let x = a[0];
            for (o, y) in out.iter_mut().zip(&b[..n]) {
                *o = f(x, *y);
            }
        }
        (_, 0) => {
            let y = b[0];
            for (o, x) in out.iter_mut().zip(&a[..n]) {
                *o = f(*x, y);
            }
        }
        _ => {
            for ((o, x), y) in out.iter_mut().zip(&a[..n]).zip(&b[..n]) {
                *o = f(*x, *y);
            }
        }
    }
}

/// `out = f(a, b)` broadcast along `plan`.
fn broadcast_apply<T: Scalar>(
    a: &[T],
    b: &[T],
    out: &mut [T],
    plan: &Plan,
    f: impl Fn(T, T) -> T + Sync,
) {
    if out.is_empty() {
        return;
    }
    if plan.shape.len() == 1 && plan.sa[0] == 1 && plan.sb[0] == 1 {
        par::zip_map(a, b, out, f);
        return;
    }
    let inner = plan.inner();
    let strides = (plan.sa[plan.sa.len() - 1], plan.sb[plan.sb.len() - 1]);
    let run = |(r, o): (usize, &mut [T])| {
        let (oa, ob) = plan.row_offsets(r);
        row_kernel(o, &a[oa..], &b[ob..], strides, &f);
    };
    if par::worth_parallel(out.len()) {
        out.par_chunks_mut(inner).enumerate().for_each(run);
    } else {
        out.chunks_mut(inner).enumerate().for_each(run);
    }
}

/// Booleans stay 0/1 after arithmetic on their `u8` storage.
fn normalize_bool(out: &NDArray) {
    if out.dtype() == DType::Bool {
        out.write_slice::<u8, _>(|s| par::map_inplace(s, |x| (x != 0) as u8));
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl Bin {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Bin::Add => "add",
            Bin::Sub => "subtract",
            Bin::Mul => "multiply",
            Bin::Div => "divide",
            Bin::Max => "maximum",
            Bin::Min => "minimum",
        }
    }
}

#[inline(always)]
fn is_nan<T: PartialEq>(x: T) -> bool {
    #[allow(clippy::eq_op)]
    let nan = x != x;
    nan
}

#[inline(always)]
fn max_of<T: Scalar>(x: T, y: T) -> T {
    if x >= y || is_nan(x) {
        x
    } else {
        y
    }
}

#[inline(always)]
fn min_of<T: Scalar>(x: T, y: T) -> T {
    if x <= y || is_nan(x) {
        x
    } else {
        y
    }
}

/// Runs `$body` with `$f` bound to the scalar function of `$op` for type `$T`.
macro_rules! with_bin {
    ($op:expr, $T:ty, $f:ident => $body:expr) => {
        match $op {
            Bin::Add => {
                let $f = |x: $T, y: $T| Scalar::add(x, y);
                $body
            }
            Bin::Sub => {
                let $f = |x: $T, y: $T| Scalar::sub(x, y);
                $body
            }
            Bin::Mul => {
                let $f = |x: $T, y: $T| Scalar::mul(x, y);
                $body
            }
            Bin::Div => {
                let $f = |x: $T, y: $T| Scalar::div(x, y);
                $body
            }
            Bin::Max => {
                let $f = |x: $T, y: $T| max_of(x, y);
                $body
            }
            Bin::Min => {
                let $f = |x: $T, y: $T| min_of(x, y);
                $body
            }
        }
    };
}

fn binary(op: Bin, a: &NDArray, b: &NDArray) -> Result<NDArray> {
    let name = op.name();
    check_pair(name, a, b)?;
    let shape = broadcast_shape(name, a.shape(), b.shape())?;
    let out = NDArray::for_overwrite(&shape, a.dtype(), a.context())?;
    let plan = Plan::new(
        &shape,
        &bcast_strides(a.shape(), &shape),
        &bcast_strides(b.shape(), &shape),
    );
    crate::dispatch_dtype!(a.dtype(), T => {
        read2::<T, _>(a, b, |sa, sb| {
            out.write_slice::<T, _>(|so| with_bin!(op, T, f => broadcast_apply(sa, sb, so, &plan, f)))
        })
    });
    normalize_bool(&out);
    Ok(out)
}

fn binary_inplace(op: Bin, dst: &NDArray, b: &NDArray) -> Result<()> {
    let name = op.name();
    check_pair(name, dst, b)?;
    let shape = broadcast_shape(name, dst.shape(), b.shape())?;
    if shape != dst.shape() {
        return Err(Error::ShapeMismatch {
            op: name,
            lhs: dst.shape().to_vec(),
            rhs: b.shape().to_vec(),
            detail: "in-place: the right operand must broadcast to the left operand's shape".into(),
        });
    }
    if dst.shares_memory_with(b) {
        let copy = b.copy_to(b.context())?;
        return binary_inplace(op, dst, &copy);
    }
    let plan = Plan::new(
        &shape,
        &bcast_strides(&shape, &shape),
        &bcast_strides(b.shape(), &shape),
    );
    crate::dispatch_dtype!(dst.dtype(), T => {
        b.read_slice::<T, _>(|sb| {
            dst.write_slice::<T, _>(|sd| with_bin!(op, T, f => inplace_apply(sd, sb, &plan, f)))
        })
    });
    normalize_bool(dst);
    Ok(())
}

/// `dst = f(dst, b)` broadcast along `plan` (whose `a` side is `dst`, contiguous).
fn inplace_apply<T: Scalar>(dst: &mut [T], b: &[T], plan: &Plan, f: impl Fn(T, T) -> T + Sync) {
    if dst.is_empty() {
        return;
    }
    let inner = plan.inner();
    let ib = plan.sb[plan.sb.len() - 1];
    let run = |(r, d): (usize, &mut [T])| {
        let (_, ob) = plan.row_offsets(r);
        if ib == 0 {
            let y = b[ob];
            d.iter_mut().for_each(|x| *x = f(*x, y));
        } else {
            let n = d.len();
            for (x, y) in d.iter_mut().zip(&b[ob..ob + n]) {
                *x = f(*x, *y);
            }
        }
    };
    if plan.shape.len() == 1 && plan.sb[0] == 1 && par::worth_parallel(dst.len()) {
        dst.par_chunks_mut(par::CHUNK)
            .zip(b.par_chunks(par::CHUNK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(x, y)| *x = f(*x, *y)));
    } else if par::worth_parallel(dst.len()) {
        dst.par_chunks_mut(inner).enumerate().for_each(run);
    } else {
        dst.chunks_mut(inner).enumerate().for_each(run);
    }
}

fn scalar_op(op: Bin, a: &NDArray, v: f64, reversed: bool) -> Result<NDArray> {
    let out = NDArray::for_overwrite(a.shape(), a.dtype(), a.context())?;
    crate::dispatch_dtype!(a.dtype(), T => {
        let y = <T as Scalar>::from_f64(v);
        a.read_slice::<T, _>(|sa| {
            out.write_slice::<T, _>(|so| with_bin!(op, T, f => {
                if reversed {
                    par_map(sa, so, |x| f(y, x))
                } else {
                    par_map(sa, so, |x| f(x, y))
                }
            }))
        })
    });
    normalize_bool(&out);
    Ok(out)
}

/// `out[i] = f(a[i])`, split across threads when large.
pub(crate) fn par_map<A: Copy + Sync, D: Copy + Send>(
    a: &[A],
    out: &mut [D],
    f: impl Fn(A) -> D + Sync,
) {
    if par::worth_parallel(out.len()) {
        out.par_chunks_mut(par::CHUNK)
            .zip(a.par_chunks(par::CHUNK))
            .for_each(|(o, a)| o.iter_mut().zip(a).for_each(|(o, x)| *o = f(*x)));
    } else {
        out.iter_mut().zip(a).for_each(|(o, x)| *o = f(*x));
    }
}

// ------------------------------------------------------------------------------ free functions

/// `a + b` with numpy broadcasting.
///
/// Both operands must have the same dtype ([`Error::DTypeMismatch`] otherwise) and context
/// ([`Error::ContextMismatch`]); shapes that do not broadcast give [`Error::ShapeMismatch`].
/// Integer arithmetic wraps.
///
/// ```
/// use mxgluon::{nd, Context};
/// let a = nd::array(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], Context::cpu(0))?;
/// let b = nd::array(&[10.0f32, 20.0, 30.0], &[3], Context::cpu(0))?;
/// let c = nd::add(&a, &b)?;
/// assert_eq!(c.to_vec::<f32>()?, vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn add(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    let out = binary(Bin::Add, a, b)?;
    Ok(grad::record_binary(Bin::Add, a, b, out))
}

/// `a - b` with numpy broadcasting (see [`add`] for the rules).
pub fn sub(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    let out = binary(Bin::Sub, a, b)?;
    Ok(grad::record_binary(Bin::Sub, a, b, out))
}

/// `a * b` with numpy broadcasting (see [`add`] for the rules).
pub fn mul(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    let out = binary(Bin::Mul, a, b)?;
    Ok(grad::record_binary(Bin::Mul, a, b, out))
}

/// `a / b` with numpy broadcasting (see [`add`] for the rules). Integer division truncates and
/// gives 0 when dividing by zero.
pub fn div(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    let out = binary(Bin::Div, a, b)?;
    Ok(grad::record_binary(Bin::Div, a, b, out))
}

/// Elementwise maximum with numpy broadcasting (NaN propagates).
pub fn maximum(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    let out = binary(Bin::Max, a, b)?;
    Ok(grad::record_binary(Bin::Max, a, b, out))
}

/// Elementwise minimum with numpy broadcasting (NaN propagates).
pub fn minimum(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    let out = binary(Bin::Min, a, b)?;
    Ok(grad::record_binary(Bin::Min, a, b, out))
}

/// [`add`] without recording (used inside backward passes and kernels).
pub(crate) fn add_untracked(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    binary(Bin::Add, a, b)
}

/// [`sub`] without recording.
pub(crate) fn sub_untracked(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    binary(Bin::Sub, a, b)
}

/// [`mul`] without recording.
pub(crate) fn mul_untracked(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    binary(Bin::Mul, a, b)
}

/// [`div`] without recording.
pub(crate) fn div_untracked(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    binary(Bin::Div, a, b)
}

// --------------------------------------------------------------------------------- unary math

/// Applies a float function: f32 and f64 natively, f16/bf16 through f32, integers through f64
/// (converted back with `as` semantics, like MXNet's integer kernels).
fn unary_float(
    a: &NDArray,
    f32f: impl Fn(f32) -> f32 + Sync,
    f64f: impl Fn(f64) -> f64 + Sync,
) -> Result<NDArray> {
    let out = NDArray::for_overwrite(a.shape(), a.dtype(), a.context())?;
    match a.dtype() {
        DType::Float32 => {
            a.read_slice::<f32, _>(|s| out.write_slice::<f32, _>(|o| par_map(s, o, f32f)))
        }
        DType::Float64 => {
            a.read_slice::<f64, _>(|s| out.write_slice::<f64, _>(|o| par_map(s, o, f64f)))
        }
        DType::Float16 => a.read_slice::<half::f16, _>(|s| {
            out.write_slice::<half::f16, _>(|o| {
                par_map(s, o, |x| half::f16::from_f32(f32f(x.to_f32())))
            })
        }),
        DType::BFloat16 => a.read_slice::<half::bf16, _>(|s| {
            out.write_slice::<half::bf16, _>(|o| {
                par_map(s, o, |x| half::bf16::from_f32(f32f(x.to_f32())))
            })
        }),
        dt => crate::dispatch_dtype!(dt, T => a.read_slice::<T, _>(|s| {
            out.write_slice::<T, _>(|o| par_map(s, o, |x: T| <T as Scalar>::from_f64(f64f(Scalar::to_f64(x)))))
        })),
    }
    normalize_bool(&out);
    Ok(out)
}

macro_rules! unary_generic {
    ($name:ident, |$x:ident : T| $e:expr) => {
        // `x < 0` is always false for unsigned types; that is the intended behaviour there.
        #[allow(clippy::absurd_extreme_comparisons, unused_comparisons)]
        fn $name(a: &NDArray) -> Result<NDArray> {
            let out = NDArray::for_overwrite(a.shape(), a.dtype(), a.context())?;
            crate::dispatch_dtype!(a.dtype(), T => a.read_slice::<T, _>(|s| {
                out.write_slice::<T, _>(|o| par_map(s, o, |$x: T| $e))
            }));
            normalize_bool(&out);
            Ok(out)
        }
    };
}

unary_generic!(neg_impl, |x: T| Scalar::sub(T::ZERO, x));
unary_generic!(abs_impl, |x: T| if x < T::ZERO {
    Scalar::sub(T::ZERO, x)
} else {
    x
});
unary_generic!(square_impl, |x: T| Scalar::mul(x, x));

// ------------------------------------------------------------------------------------ methods

impl NDArray {
    /// `self + other` with numpy broadcasting; see [`add`].
    pub fn add(&self, other: &NDArray) -> Result<NDArray> {
        add(self, other)
    }

    /// `self - other` with numpy broadcasting; see [`sub`].
    pub fn sub(&self, other: &NDArray) -> Result<NDArray> {
        sub(self, other)
    }

    /// `self * other` with numpy broadcasting; see [`mul`].
    pub fn mul(&self, other: &NDArray) -> Result<NDArray> {
        mul(self, other)
    }

    /// `self / other` with numpy broadcasting; see [`div`].
    pub fn div(&self, other: &NDArray) -> Result<NDArray> {
        div(self, other)
    }

    /// Elementwise maximum with another array (broadcasting).
    pub fn maximum(&self, other: &NDArray) -> Result<NDArray> {
        maximum(self, other)
    }

    /// Elementwise minimum with another array (broadcasting).
    pub fn minimum(&self, other: &NDArray) -> Result<NDArray> {
        minimum(self, other)
    }

    /// `self + v`; `v` is first converted to the array's dtype (`as` semantics), like MXNet.
    pub fn add_scalar(&self, v: f64) -> Result<NDArray> {
        Ok(grad::record_scalar(
            "add_scalar",
            ScalarOp::Shift,
            self,
            scalar_op(Bin::Add, self, v, false)?,
        ))
    }

    /// `self - v` (`v` converted to the array's dtype).
    pub fn sub_scalar(&self, v: f64) -> Result<NDArray> {
        Ok(grad::record_scalar(
            "sub_scalar",
            ScalarOp::Shift,
            self,
            scalar_op(Bin::Sub, self, v, false)?,
        ))
    }

    /// `v - self` (`v` converted to the array's dtype).
    pub fn rsub_scalar(&self, v: f64) -> Result<NDArray> {
        Ok(grad::record_scalar(
            "rsub_scalar",
            ScalarOp::RSub,
            self,
            scalar_op(Bin::Sub, self, v, true)?,
        ))
    }

    /// `self * v` (`v` converted to the array's dtype).
    pub fn mul_scalar(&self, v: f64) -> Result<NDArray> {
        Ok(grad::record_scalar(
            "mul_scalar",
            ScalarOp::Mul(v),
            self,
            scalar_op(Bin::Mul, self, v, false)?,
        ))
    }

    /// `self / v` (`v` converted to the array's dtype; integer division by zero gives 0).
    pub fn div_scalar(&self, v: f64) -> Result<NDArray> {
        Ok(grad::record_scalar(
            "div_scalar",
            ScalarOp::Div(v),
            self,
            scalar_op(Bin::Div, self, v, false)?,
        ))
    }

    /// `v / self` (`v` converted to the array's dtype; integer division by zero gives 0).
    pub fn rdiv_scalar(&self, v: f64) -> Result<NDArray> {
        Ok(grad::record_scalar(
            "rdiv_scalar",
            ScalarOp::RDiv,
            self,
            scalar_op(Bin::Div, self, v, true)?,
        ))
    }

    /// `max(self, v)` elementwise (`v` converted to the array's dtype; NaN propagates).
    pub fn maximum_scalar(&self, v: f64) -> Result<NDArray> {
        Ok(grad::record_scalar(
            "maximum_scalar",
            ScalarOp::Max(v),
            self,
            scalar_op(Bin::Max, self, v, false)?,
        ))
    }

    /// `min(self, v)` elementwise (`v` converted to the array's dtype; NaN propagates).
    pub fn minimum_scalar(&self, v: f64) -> Result<NDArray> {
        Ok(grad::record_scalar(
            "minimum_scalar",
            ScalarOp::Min(v),
            self,
            scalar_op(Bin::Min, self, v, false)?,
        ))
    }

    /// `max(self, 0)`: the rectified linear unit.
    pub fn relu(&self) -> Result<NDArray> {
        self.maximum_scalar(0.0)
    }

    /// Limits every element to `[a_min, a_max]`.
    pub fn clip(&self, a_min: f64, a_max: f64) -> Result<NDArray> {
        if a_min > a_max || a_min.is_nan() || a_max.is_nan() {
            return Err(Error::invalid_arg(
                "clip",
                format!("a_min {a_min} must not be greater than a_max {a_max}"),
            ));
        }
        let out = scalar_op(Bin::Max, self, a_min, false)?;
        binary_scalar_inplace(Bin::Min, &out, a_max);
        Ok(grad::record_unary(
            "clip",
            UnaryOp::Clip(a_min, a_max),
            self,
            out,
        ))
    }

    /// `self += other` in place; `other` must broadcast to `self`'s shape. Writes are visible
    /// through every handle sharing this memory. `other` may alias `self`.
    pub fn add_assign(&self, other: &NDArray) -> Result<()> {
        binary_inplace(Bin::Add, self, other)
    }

    /// `self -= other` in place (see [`NDArray::add_assign`]).
    pub fn sub_assign(&self, other: &NDArray) -> Result<()> {
        binary_inplace(Bin::Sub, self, other)
    }

    /// `self *= other` in place (see [`NDArray::add_assign`]).
    pub fn mul_assign(&self, other: &NDArray) -> Result<()> {
        binary_inplace(Bin::Mul, self, other)
    }

    /// `self /= other` in place (see [`NDArray::add_assign`]).
    pub fn div_assign(&self, other: &NDArray) -> Result<()> {
        binary_inplace(Bin::Div, self, other)
    }

    /// `-self` (integers wrap).
    pub fn neg(&self) -> Result<NDArray> {
        Ok(grad::record_unary(
            "negative",
            UnaryOp::Neg,
            self,
            neg_impl(self)?,
        ))
    }

    /// `|self|` (integers wrap at their minimum).
    pub fn abs(&self) -> Result<NDArray> {
        Ok(grad::record_unary(
            "abs",
            UnaryOp::Abs,
            self,
            abs_impl(self)?,
        ))
    }

    /// `self * self`.
    pub fn square(&self) -> Result<NDArray> {
        Ok(grad::record_unary(
            "square",
            UnaryOp::Square,
            self,
            square_impl(self)?,
        ))
    }

    /// Square root (integers go through f64 and are converted back).
    pub fn sqrt(&self) -> Result<NDArray> {
        Ok(grad::record_unary(
            "sqrt",
            UnaryOp::Sqrt,
            self,
            unary_float(self, f32::sqrt, f64::sqrt)?,
        ))
    }

    /// `e^self` (integers go through f64 and are converted back).
    pub fn exp(&self) -> Result<NDArray> {
        Ok(grad::record_unary(
            "exp",
            UnaryOp::Exp,
            self,
            unary_float(self, f32::exp, f64::exp)?,
        ))
    }

    /// Natural logarithm (integers go through f64 and are converted back).
    pub fn log(&self) -> Result<NDArray> {
        Ok(grad::record_unary(
            "log",
            UnaryOp::Log,
            self,
            unary_float(self, f32::ln, f64::ln)?,
        ))
    }
}

/// `dst = f(dst, v)` for a scalar `v`.
fn binary_scalar_inplace(op: Bin, dst: &NDArray, v: f64) {
    crate::dispatch_dtype!(dst.dtype(), T => {
        let y = <T as Scalar>::from_f64(v);
        dst.write_slice::<T, _>(|s| with_bin!(op, T, f => par::map_inplace(s, |x| f(x, y))))
    });
    normalize_bool(dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Context;

    #[test]
    fn broadcast_shapes() {
        assert_eq!(
            broadcast_shape("t", &[2, 1, 3], &[4, 1]).unwrap(),
            vec![2, 4, 3]
        );
        assert_eq!(broadcast_shape("t", &[], &[3]).unwrap(), vec![3]);
        assert!(broadcast_shape("t", &[2, 3], &[2]).is_err());
    }

    #[test]
    fn plan_merges_contiguous_axes() {
        let out = [2, 3, 4];
        let p = Plan::new(
            &out,
            &bcast_strides(&out, &out),
            &bcast_strides(&[3, 4], &out),
        );
        assert_eq!(p.shape, vec![2, 12]);
        assert_eq!(p.sb, vec![0, 1]);
    }

    #[test]
    fn ints_wrap_and_divide_by_zero() {
        let c = Context::cpu(0);
        let a = NDArray::from_slice(&[i8::MAX, 7, -3], &[3], c).unwrap();
        let b = NDArray::from_slice(&[1i8, 0, 2], &[3], c).unwrap();
        assert_eq!(
            add(&a, &b).unwrap().to_vec::<i8>().unwrap(),
            vec![i8::MIN, 7, -1]
        );
        assert_eq!(
            div(&a, &b).unwrap().to_vec::<i8>().unwrap(),
            vec![i8::MAX, 0, -1]
        );
    }
}
