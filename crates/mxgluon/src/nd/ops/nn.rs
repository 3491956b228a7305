//! Kernels of the neural-network operators, forward and backward: activations (MXNet's
//! `Activation`), the leaky-ReLU family (`LeakyReLU`), `softmax` / `log_softmax`, dropout
//! masks, `Embedding`, `BatchNorm` and `LayerNorm`.
//!
//! They are crate-private building blocks: the autograd layer wraps each forward/backward pair
//! into a recorded public operator. Every kernel checks that its operands agree in dtype,
//! context and shape, returns typed errors, and writes its results to new arrays on the
//! operands' context. Formulas and defaults are MXNet 1.9.1's.
//!
//! Compute types: float64 arrays are computed in f64; float32 ones in f32; float16 and bfloat16
//! ones are converted to f32, computed, and converted back. Integer and boolean arrays are an
//! [`Error::UnsupportedDType`]. Sums that feed statistics (batch/layer norm moments, parameter
//! gradients) accumulate in f64.
//!
//! This module also holds the compute-type plumbing ([`Real`], `with_real!`, row helpers) that
//! `shape_ops` shares.

// The autograd wrappers that will call these kernels are being written now; until they land
// most items here have no caller. Remove this allowance together with them.
#![allow(dead_code)]

use std::fmt;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;
use smallvec::SmallVec;

use super::{check_pair, read2};
use crate::context::Context;
use crate::dtype::DType;
use crate::error::{fmt_shape, Error, Result};
use crate::nd::{par, NDArray};

// ============================================================================ compute types

/// A type kernels compute in: `f32` (for float32, float16 and bfloat16 arrays) or `f64`.
pub(crate) trait Real:
    bytemuck::Pod
    + Send
    + Sync
    + PartialOrd
    + fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::ops::MulAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The dtype of arrays stored as this type.
    const DTYPE: DType;
    /// From `f64` (rounded).
    fn of(v: f64) -> Self;
    /// To `f64` (exact).
    fn f64(self) -> f64;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + self)`.
    fn ln_1p(self) -> Self;
    /// `e^self - 1`.
    fn exp_m1(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The error function (see [`erf`]).
    fn error_fn(self) -> Self;
    /// Whether this is NaN.
    fn is_nan(self) -> bool;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const DTYPE: DType = DType::Float32;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f32::exp(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f32::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f32::ln_1p(self)
    }
    #[inline(always)]
    fn exp_m1(self) -> Self {
        f32::exp_m1(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn error_fn(self) -> Self {
        erf(f64::from(self)) as f32
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const DTYPE: DType = DType::Float64;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline(always)]
    fn exp_m1(self) -> Self {
        f64::exp_m1(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn error_fn(self) -> Self {
        erf(self)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// Terms available to the [`erf`] series.
const ERF_TERMS: usize = 192;

/// `1 / (2n + 1)` for `n < ERF_TERMS`.
const INV_ODD: [f64; ERF_TERMS] = {
    let mut t = [0.0; ERF_TERMS];
    let mut n = 0;
    while n < ERF_TERMS {
        t[n] = 1.0 / (2 * n + 1) as f64;
        n += 1;
    }
    t
};

/// The error function `erf(x) = 2/√π ∫₀ˣ e^{-t²} dt`, to within a few units in the last place
/// (the standard library has none).
///
/// For `|x| < 6` it sums `erf(a) = 2/√π · e^{-a²} · Σₙ a (2a²)ⁿ / (1·3·…·(2n+1))`, whose terms
/// are all positive (no cancellation); beyond that `erf` is ±1 in f64.
pub(crate) fn erf(x: f64) -> f64 {
    let a = x.abs();
    if a.is_nan() {
        return x;
    }
    if a >= 6.0 {
        return 1f64.copysign(x);
    }
    let q = 2.0 * a * a;
    let mut term = a;
    let mut sum = a;
    for inv in &INV_ODD[1..] {
        term *= q * inv;
        sum += term;
        if term <= sum * 1e-17 {
            break;
        }
    }
    (std::f64::consts::FRAC_2_SQRT_PI * (-a * a).exp() * sum).copysign(x)
}

/// The hint of [`Error::UnsupportedDType`] for the float kernels.
const FLOAT_HINT: &str =
    "this operator needs float16, bfloat16, float32 or float64 data; convert with astype() first";

/// [`Error::UnsupportedDType`] for a float kernel given a non-float dtype.
pub(super) fn unsupported(op: &'static str, dtype: DType) -> Error {
    Error::UnsupportedDType {
        op,
        dtype,
        hint: FLOAT_HINT.into(),
    }
}

/// Runs `$body` with the type alias `$R` bound to the compute type of `$dtype` (`f64` for
/// float64; `f32` for float32, float16 and bfloat16). Any other dtype makes the enclosing
/// function return [`Error::UnsupportedDType`] for `$op`.
macro_rules! with_real {
    ($op:expr, $dtype:expr, $R:ident => $body:expr) => {
        match $dtype {
            $crate::dtype::DType::Float64 => {
                type $R = f64;
                $body
            }
            $crate::dtype::DType::Float32
            | $crate::dtype::DType::Float16
            | $crate::dtype::DType::BFloat16 => {
                type $R = f32;
                $body
            }
            other => return Err($crate::nd::ops::nn::unsupported($op, other)),
        }
    };
}
pub(super) use with_real;

/// `Ok` for float arrays, [`Error::UnsupportedDType`] otherwise.
pub(super) fn check_float(op: &'static str, a: &NDArray) -> Result<()> {
    if a.dtype().is_float() {
        Ok(())
    } else {
        Err(unsupported(op, a.dtype()))
    }
}

/// Same dtype, context and shape.
pub(super) fn check_operands(op: &'static str, a: &NDArray, b: &NDArray) -> Result<()> {
    check_pair(op, a, b)?;
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape().to_vec(),
            rhs: b.shape().to_vec(),
            detail: "the operands must have the same shape".into(),
        });
    }
    Ok(())
}

/// [`Error::InvalidArgument`] for an axis outside an array of `shape`.
pub(super) fn axis_error(op: &'static str, axis: impl fmt::Display, shape: &[usize]) -> Error {
    Error::invalid_arg(
        op,
        format!(
            "axis {axis} is out of range for an array of shape {}",
            fmt_shape(shape)
        ),
    )
}

/// Checks `axis < shape.len()`.
pub(super) fn check_axis(op: &'static str, axis: usize, shape: &[usize]) -> Result<()> {
    if axis < shape.len() {
        Ok(())
    } else {
        Err(axis_error(op, axis, shape))
    }
}

/// Resolves a possibly negative axis (counted from the end) against `shape`.
pub(super) fn norm_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    let nd = shape.len() as isize;
    let a = if axis < 0 { axis + nd } else { axis };
    if (0..nd).contains(&a) {
        Ok(a as usize)
    } else {
        Err(axis_error(op, axis, shape))
    }
}

/// `(outer, shape[axis], inner)`: the products of the dimensions before and after `axis`.
pub(super) fn split3(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// `a`'s elements converted to the compute type `R` (a new vector).
pub(super) fn to_real_vec<R: Real>(a: &NDArray) -> Vec<R> {
    if a.dtype() == R::DTYPE {
        return a.read_slice::<R, _>(|s| s.to_vec());
    }
    if R::DTYPE == DType::Float32 {
        let v: Vec<f32> = match a.dtype() {
            DType::Float16 => a.read_slice::<f16, _>(|s| {
                let mut v = vec![0f32; s.len()];
                s.convert_to_f32_slice(&mut v);
                v
            }),
            DType::BFloat16 => a.read_slice::<bf16, _>(|s| {
                let mut v = vec![0f32; s.len()];
                s.convert_to_f32_slice(&mut v);
                v
            }),
            _ => a.to_f32_vec(),
        };
        // R is f32 here, so the cast cannot fail; the fallback only keeps this panic-free.
        return bytemuck::allocation::try_cast_vec(v)
            .unwrap_or_else(|(_, v)| v.into_iter().map(|x| R::of(f64::from(x))).collect());
    }
    a.to_f64_vec().into_iter().map(R::of).collect()
}

/// Runs `f` on `a`'s elements as `R`: in place when `a` is stored as `R`, else on a converted
/// copy.
pub(super) fn read_real<R: Real, T>(a: &NDArray, f: impl FnOnce(&[R]) -> T) -> T {
    if a.dtype() == R::DTYPE {
        a.read_slice::<R, _>(f)
    } else {
        f(&to_real_vec::<R>(a))
    }
}

/// [`read_real`] for two arrays at once (one lock when they share storage).
pub(super) fn read_real2<R: Real, T>(
    a: &NDArray,
    b: &NDArray,
    f: impl FnOnce(&[R], &[R]) -> T,
) -> T {
    match (a.dtype() == R::DTYPE, b.dtype() == R::DTYPE) {
        (true, true) => read2::<R, _>(a, b, f),
        (true, false) => {
            let vb = to_real_vec::<R>(b);
            a.read_slice::<R, _>(|sa| f(sa, &vb))
        }
        (false, true) => {
            let va = to_real_vec::<R>(a);
            b.read_slice::<R, _>(|sb| f(&va, sb))
        }
        (false, false) => f(&to_real_vec::<R>(a), &to_real_vec::<R>(b)),
    }
}

/// Runs `f` on `out`'s elements as mutable `R` (in place when `out` is stored as `R`, else
/// on a zeroed buffer converted into `out` afterwards).
pub(super) fn write_real<R: Real, T>(out: &NDArray, f: impl FnOnce(&mut [R]) -> T) -> T {
    if out.dtype() == R::DTYPE {
        out.write_slice::<R, _>(f)
    } else {
        let mut v = vec![R::ZERO; out.size()];
        let t = f(&mut v);
        store_real(out, &v);
        t
    }
}

/// Writes `v` (one value per element) into `out`, converting to its dtype.
pub(super) fn store_real<R: Real>(out: &NDArray, v: &[R]) {
    if R::DTYPE == DType::Float32 {
        if let Ok(v32) = bytemuck::try_cast_slice::<R, f32>(v) {
            match out.dtype() {
                DType::Float16 => {
                    out.write_slice::<f16, _>(|o| o.convert_from_f32_slice(v32));
                    return;
                }
                DType::BFloat16 => {
                    out.write_slice::<bf16, _>(|o| o.convert_from_f32_slice(v32));
                    return;
                }
                _ => {}
            }
        }
    }
    crate::dispatch_dtype!(out.dtype(), T => out.write_slice::<T, _>(|o| {
        for (o, x) in o.iter_mut().zip(v) {
            *o = <T as crate::dtype::Scalar>::from_f64(x.f64());
        }
    }));
}

/// A new `(shape)` array of `dtype` holding `v` (converted).
fn array_from_f64(v: &[f64], shape: &[usize], dtype: DType, ctx: Context) -> Result<NDArray> {
    let a = NDArray::for_overwrite(shape, dtype, ctx)?;
    store_real(&a, v);
    Ok(a)
}

// ============================================================================ loop helpers

/// Runs `f(row, out_row)` for every row (`row_len` elements) of `out`, splitting groups of
/// rows across threads when the array is large.
pub(super) fn for_each_row<T: Send>(
    out: &mut [T],
    row_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    for_rows_costed(out, row_len, row_len, f)
}

/// [`for_each_row`] where each row costs `row_cost` elements of work (which decides whether
/// and how finely to split).
pub(super) fn for_rows_costed<T: Send>(
    out: &mut [T],
    row_len: usize,
    row_cost: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if row_len == 0 || out.is_empty() {
        return;
    }
    let rows = out.len() / row_len;
    let cost = row_cost.max(1);
    if rows > 1 && par::worth_parallel(rows.saturating_mul(cost)) {
        let per = (par::CHUNK / cost).max(1);
        out.par_chunks_mut(per * row_len)
            .enumerate()
            .for_each(|(ci, chunk)| {
                for (j, row) in chunk.chunks_mut(row_len).enumerate() {
                    f(ci * per + j, row);
                }
            });
    } else {
        for (r, row) in out.chunks_mut(row_len).enumerate() {
            f(r, row);
        }
    }
}

/// Accumulates `f(row, acc)` over `n_rows` rows into `n_acc` f64 sums. Large inputs are split
/// into fixed groups of rows with one partial accumulator each, added in group order, so the
/// result does not depend on scheduling.
pub(super) fn reduce_rows(
    n_rows: usize,
    row_cost: usize,
    n_acc: usize,
    f: impl Fn(usize, &mut [f64]) + Sync,
) -> Vec<f64> {
    let cost = row_cost.max(1);
    let total = n_rows.saturating_mul(cost);
    if n_rows > 1 && par::worth_parallel(total) {
        let per = (par::CHUNK / cost).max(1);
        let groups = n_rows.div_ceil(per);
        if groups > 1 && n_acc.saturating_mul(groups) <= total {
            let partials: Vec<Vec<f64>> = (0..groups)
                .into_par_iter()
                .map(|g| {
                    let mut acc = vec![0.0; n_acc];
                    for r in g * per..((g + 1) * per).min(n_rows) {
                        f(r, &mut acc);
                    }
                    acc
                })
                .collect();
            let mut acc = vec![0.0; n_acc];
            for p in partials {
                for (a, v) in acc.iter_mut().zip(p) {
                    *a += v;
                }
            }
            return acc;
        }
    }
    let mut acc = vec![0.0; n_acc];
    for r in 0..n_rows {
        f(r, &mut acc);
    }
    acc
}

/// `Σ f(s[i])` in f64 with 8 independent accumulators (so the loop vectorises).
#[inline(always)]
pub(super) fn lane_sum<R: Real>(s: &[R], f: impl Fn(R) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = s.chunks_exact(8);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail: f64 = it.remainder().iter().map(|&v| f(v)).sum();
    acc.iter().sum::<f64>() + tail
}

/// `(Σ f(a[i], b[i]).0, Σ f(a[i], b[i]).1)` in f64 with 8 accumulators each.
#[inline(always)]
fn lane_sum_pair<R: Real>(a: &[R], b: &[R], f: impl Fn(R, R) -> (f64, f64)) -> (f64, f64) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s0 = [0f64; 8];
    let mut s1 = [0f64; 8];
    let full = n / 8 * 8;
    for (ca, cb) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
        for l in 0..8 {
            let (p, q) = f(ca[l], cb[l]);
            s0[l] += p;
            s1[l] += q;
        }
    }
    let (mut t0, mut t1) = (0.0, 0.0);
    for (&x, &y) in a[full..].iter().zip(&b[full..]) {
        let (p, q) = f(x, y);
        t0 += p;
        t1 += q;
    }
    (s0.iter().sum::<f64>() + t0, s1.iter().sum::<f64>() + t1)
}

/// Calls `f(line, rows, out_line)` for every line along the middle axis of an
/// `(outer, m, inner)` layout: `line = o * inner + k`, `rows[i]` is input `i`'s line and
/// `out_line` is written back to `out`'s line. Lines are gathered into scratch buffers when
/// `inner > 1`.
fn lines<R: Real>(
    ins: &[&[R]],
    out: &mut [R],
    m: usize,
    inner: usize,
    f: impl Fn(usize, &[&[R]], &mut [R]) + Sync,
) {
    if m == 0 || out.is_empty() {
        return;
    }
    if inner == 1 {
        for_each_row(out, m, |r, o| {
            let rows: SmallVec<[&[R]; 4]> = ins.iter().map(|s| &s[r * m..(r + 1) * m]).collect();
            f(r, &rows, o);
        });
    } else {
        for_each_row(out, m * inner, |b, ob| {
            let base = b * m * inner;
            let mut scratch: SmallVec<[Vec<R>; 4]> = ins.iter().map(|_| vec![R::ZERO; m]).collect();
            let mut line = vec![R::ZERO; m];
            for k in 0..inner {
                for (sc, s) in scratch.iter_mut().zip(ins) {
                    for (j, v) in sc.iter_mut().enumerate() {
                        *v = s[base + j * inner + k];
                    }
                }
                let rows: SmallVec<[&[R]; 4]> = scratch.iter().map(|v| v.as_slice()).collect();
                f(b * inner + k, &rows, &mut line);
                for (j, v) in line.iter().enumerate() {
                    ob[j * inner + k] = *v;
                }
            }
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Forward kernels against plain f64 references; backward kernels against central finite
    //! differences of the forward in f64; f32 (and half) paths against the f64 one.

    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    pub(crate) fn cpu() -> Context {
        Context::cpu(0)
    }

    /// A float64 array on cpu(0).
    pub(crate) fn arr(v: &[f64], shape: &[usize]) -> NDArray {
        NDArray::from_slice(v, shape, cpu()).unwrap()
    }

    /// `a` converted to `dt`.
    pub(crate) fn cast(a: &NDArray, dt: DType) -> NDArray {
        a.astype(dt).unwrap()
    }

    /// Elementwise `|got - want| <= tol * max(1, |want|)` (NaN matches NaN).
    pub(crate) fn assert_close(
        got: &[f64],
        want: &[f64],
        tol: f64,
        what: &str,
    ) -> std::result::Result<(), TestCaseError> {
        prop_assert_eq!(got.len(), want.len(), "{}: lengths differ", what);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let ok = (g - w).abs() <= tol * w.abs().max(1.0) || (g.is_nan() && w.is_nan());
            prop_assert!(
                ok,
                "{}: element {} is {} but should be {} (tol {})",
                what,
                i,
                g,
                w,
                tol
            );
        }
        Ok(())
    }

    /// Step of the central differences.
    pub(crate) const H: f64 = 1e-6;
    /// Relative tolerance (to `max(1, |analytic|)`) of the finite-difference checks.
    pub(crate) const FD_TOL: f64 = 1e-6;

    /// Checks analytic gradients against central differences in f64: `grads[k]` must be the
    /// gradient of `L = Σ dy ⊙ f(inputs)` with respect to `inputs[k]` (`None` skips one).
    pub(crate) fn fd_check(
        inputs: &[NDArray],
        dy: &[f64],
        f: &dyn Fn(&[NDArray]) -> NDArray,
        grads: &[Option<&NDArray>],
    ) -> std::result::Result<(), TestCaseError> {
        let loss = |ins: &[NDArray]| -> f64 {
            let y = f(ins).to_f64_vec();
            assert_eq!(y.len(), dy.len(), "dy must match the output");
            y.iter().zip(dy).map(|(y, g)| y * g).sum()
        };
        for (k, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let ana = g.to_f64_vec();
            let base = inputs[k].to_f64_vec();
            prop_assert_eq!(
                g.shape(),
                inputs[k].shape(),
                "gradient {} has the wrong shape",
                k
            );
            for i in 0..base.len() {
                let mut ins = inputs.to_vec();
                let mut v = base.clone();
                v[i] = base[i] + H;
                ins[k] = arr(&v, inputs[k].shape());
                let lp = loss(&ins);
                v[i] = base[i] - H;
                ins[k] = arr(&v, inputs[k].shape());
                let lm = loss(&ins);
                let num = (lp - lm) / (2.0 * H);
                prop_assert!(
                    (num - ana[i]).abs() <= FD_TOL * ana[i].abs().max(1.0),
                    "input {} element {}: analytic {} but numeric {}",
                    k,
                    i,
                    ana[i],
                    num
                );
            }
        }
        Ok(())
    }

    /// A shape (1..=max_nd dims of 1..=max_d) with two value vectors of its size in [-2, 2).
    pub(crate) fn shape_vals(
        max_nd: usize,
        max_d: usize,
    ) -> impl Strategy<Value = (Vec<usize>, Vec<f64>, Vec<f64>)> {
        prop::collection::vec(1..=max_d, 1..=max_nd).prop_flat_map(|s| {
            let n = s.iter().product::<usize>();
            (
                Just(s),
                prop::collection::vec(-2.0..2.0f64, n),
                prop::collection::vec(-2.0..2.0f64, n),
            )
        })
    }

    /// Moves values off the kink at 0 of relu-like functions.
    pub(crate) fn off_kink(v: Vec<f64>) -> Vec<f64> {
        v.into_iter()
            .map(|x| if x.abs() < 0.05 { 0.1 } else { x })
            .collect()
    }

    /// Row-major multi-index of flat index `i`.
    pub(crate) fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
        idx
    }

    /// Flat index of a multi-index.
    pub(crate) fn ravel(idx: &[usize], shape: &[usize]) -> usize {
        idx.iter().zip(shape).fold(0, |acc, (i, d)| acc * d + i)
    }

    /// Flat indices of the line through `i` along `axis`, in order.
    fn line_of(i: usize, shape: &[usize], axis: usize) -> Vec<usize> {
        let mut idx = unravel(i, shape);
        (0..shape[axis])
            .map(|j| {
                idx[axis] = j;
                ravel(&idx, shape)
            })
            .collect()
    }

    // ------------------------------------------------------------------ erf

    #[test]
    fn erf_matches_known_values() {
        let known = [
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (1.5, 0.9661051464753108),
            (2.0, 0.9953222650189527),
            (2.5, 0.999593047982555),
            (3.0, 0.9999779095030014),
            (4.0, 0.9999999845827421),
            (5.0, 0.9999999999984626),
            (5.9, 0.9999999999999999),
        ];
        for (x, want) in known {
            assert!((erf(x) - want).abs() <= 1e-15, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() <= 1e-15);
        }
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(7.0), 1.0);
        assert_eq!(erf(-f64::INFINITY), -1.0);
        assert!(erf(f64::NAN).is_nan());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn erf_matches_simpson_integral(x in -6.5..6.5f64) {
            // 2/√π ∫₀ˣ e^{-t²} dt by Simpson's rule on 20000 intervals.
            let n = 20000;
            let h = x / n as f64;
            let f = |t: f64| (-t * t).exp();
            let mut s = f(0.0) + f(x);
            for i in 1..n {
                s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
            }
            let want = std::f64::consts::FRAC_2_SQRT_PI * s * h / 3.0;
            prop_assert!((erf(x) - want).abs() < 1e-13, "erf({}) = {} vs {}", x, erf(x), want);
        }
    }
}
