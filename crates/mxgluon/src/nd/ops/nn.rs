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

use std::fmt;
use std::str::FromStr;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;
use smallvec::SmallVec;

use super::elementwise::par_map;
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
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn error_fn(self) -> Self {
        // f32 needs far fewer series terms than f64.
        erf_to(f64::from(self), 1e-9) as f32
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
    erf_to(x, 1e-17)
}

/// [`erf`] stopping the series once a term falls below `rel` times the sum.
fn erf_to(x: f64, rel: f64) -> f64 {
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
        if term <= sum * rel {
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
pub(crate) fn axis_error(op: &'static str, axis: impl fmt::Display, shape: &[usize]) -> Error {
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
pub(crate) fn norm_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
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
    let mut acc = vec![0.0; n_acc];
    reduce_rows_into(n_rows, row_cost, &mut acc, f);
    acc
}

/// [`reduce_rows`] adding into `acc` (no allocation unless the work is split).
pub(super) fn reduce_rows_into(
    n_rows: usize,
    row_cost: usize,
    acc: &mut [f64],
    f: impl Fn(usize, &mut [f64]) + Sync,
) {
    let n_acc = acc.len();
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
            for p in partials {
                for (a, v) in acc.iter_mut().zip(p) {
                    *a += v;
                }
            }
            return;
        }
    }
    for r in 0..n_rows {
        f(r, acc);
    }
}

/// Reads `a`'s elements (any dtype) into `dst` as f64.
fn read_f64_into(a: &NDArray, dst: &mut [f64]) {
    crate::dispatch_dtype!(a.dtype(), T => a.read_slice::<T, _>(|s| {
        for (d, v) in dst.iter_mut().zip(s) {
            *d = <T as crate::dtype::Scalar>::to_f64(*v);
        }
    }));
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

// ============================================================================ Activation

/// The activation functions of MXNet's `Activation` operator (its `act_type`).
///
/// ```
/// use mxgluon::nd::ActType;
/// let a: ActType = "softrelu".parse()?;
/// assert_eq!(a, ActType::SoftRelu);
/// assert_eq!(a.to_string(), "softrelu");
/// assert!("gelu".parse::<ActType>().unwrap_err().to_string().contains("softsign"));
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActType {
    /// `max(x, 0)` (NaN stays NaN).
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// Softplus, `ln(1 + e^x)`; `x` itself above 20 (MXNet's overflow guard).
    SoftRelu,
    /// `x / (1 + |x|)`.
    SoftSign,
}

impl ActType {
    /// Every activation, in MXNet's order.
    pub const ALL: [ActType; 5] = [
        ActType::Relu,
        ActType::Sigmoid,
        ActType::Tanh,
        ActType::SoftRelu,
        ActType::SoftSign,
    ];

    /// MXNet's name: `"relu"`, `"sigmoid"`, `"tanh"`, `"softrelu"`, `"softsign"`.
    pub fn name(self) -> &'static str {
        match self {
            ActType::Relu => "relu",
            ActType::Sigmoid => "sigmoid",
            ActType::Tanh => "tanh",
            ActType::SoftRelu => "softrelu",
            ActType::SoftSign => "softsign",
        }
    }
}

impl fmt::Display for ActType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ActType {
    type Err = Error;

    /// Accepts MXNet's names; anything else is an [`Error::InvalidEnumValue`] listing them.
    fn from_str(s: &str) -> Result<Self> {
        ActType::ALL
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::InvalidEnumValue {
                what: "act_type",
                got: s.to_string(),
                valid: ActType::ALL.iter().map(|a| a.name().to_string()).collect(),
            })
    }
}

/// MXNet's `Activation` forward: `y = act(x)` elementwise (see [`ActType`] for the formulas).
/// Output: same shape and dtype as `x`.
pub(crate) fn activation_fwd(x: &NDArray, act: ActType) -> Result<NDArray> {
    const OP: &str = "Activation";
    with_real!(OP, x.dtype(), R => {
        let out = NDArray::for_overwrite(x.shape(), x.dtype(), x.context())?;
        read_real::<R, _>(x, |xs| write_real::<R, _>(&out, |ys| act_fwd_slice(act, xs, ys)));
        Ok(out)
    })
}

fn act_fwd_slice<R: Real>(act: ActType, x: &[R], y: &mut [R]) {
    let bound = R::of(20.0);
    match act {
        ActType::Relu => par_map(x, y, |v| {
            if v > R::ZERO || v.is_nan() {
                v
            } else {
                R::ZERO
            }
        }),
        ActType::Sigmoid => par_map(x, y, |v| R::ONE / (R::ONE + (-v).exp())),
        ActType::Tanh => par_map(x, y, |v| v.tanh()),
        ActType::SoftRelu => par_map(x, y, |v| if v > bound { v } else { v.exp().ln_1p() }),
        ActType::SoftSign => par_map(x, y, |v| v / (R::ONE + v.abs())),
    }
}

/// MXNet's `Activation` backward: `dx = dy · act'(x)`, computed from the output `y` where
/// MXNet does (relu: `y > 0`; sigmoid: `y(1-y)`; tanh: `1-y²`; softrelu: `1-e^{-y}`) and from
/// `x` for softsign (`1/(1+|x|)²`). `x`, `y` and `dy` must have one shape, dtype and context.
pub(crate) fn activation_bwd(
    act: ActType,
    x: &NDArray,
    y: &NDArray,
    dy: &NDArray,
) -> Result<NDArray> {
    const OP: &str = "Activation backward";
    check_operands(OP, dy, x)?;
    check_operands(OP, dy, y)?;
    let src = if act == ActType::SoftSign { x } else { y };
    with_real!(OP, dy.dtype(), R => {
        let out = NDArray::for_overwrite(dy.shape(), dy.dtype(), dy.context())?;
        read_real2::<R, _>(src, dy, |s, g| {
            write_real::<R, _>(&out, |dx| act_bwd_slice(act, s, g, dx))
        });
        Ok(out)
    })
}

/// `s` is `y`, or `x` for softsign.
fn act_bwd_slice<R: Real>(act: ActType, s: &[R], g: &[R], dx: &mut [R]) {
    match act {
        ActType::Relu => par::zip_map(s, g, dx, |y, g| {
            if y > R::ZERO {
                g
            } else if y.is_nan() {
                y
            } else {
                R::ZERO
            }
        }),
        ActType::Sigmoid => par::zip_map(s, g, dx, |y, g| g * y * (R::ONE - y)),
        ActType::Tanh => par::zip_map(s, g, dx, |y, g| g * (R::ONE - y * y)),
        ActType::SoftRelu => par::zip_map(s, g, dx, |y, g| g * -(-y).exp_m1()),
        ActType::SoftSign => par::zip_map(s, g, dx, |x, g| {
            let d = R::ONE + x.abs();
            g / (d * d)
        }),
    }
}

// ============================================================================ LeakyReLU

/// The activations of MXNet's `LeakyReLU` operator (its `act_type`; `rrelu` is not
/// supported).
///
/// ```
/// use mxgluon::nd::LeakyAct;
/// assert_eq!("prelu".parse::<LeakyAct>()?, LeakyAct::Prelu);
/// assert_eq!(LeakyAct::Gelu.to_string(), "gelu");
/// assert!("rrelu".parse::<LeakyAct>().is_err());
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeakyAct {
    /// `x` for `x > 0`, else `slope · x`.
    Leaky,
    /// `x` for `x > 0`, else `slope · (e^x - 1)`.
    Elu,
    /// `x` for `x > 0`, else `gamma · x` with a learned `gamma` per channel.
    Prelu,
    /// `λ · x` for `x > 0`, else `λ α (e^x - 1)` with λ ≈ 1.0507, α ≈ 1.6733.
    Selu,
    /// `x · Φ(x) = x/2 · (1 + erf(x/√2))` (the exact form, as MXNet 1.9.1).
    Gelu,
}

impl LeakyAct {
    /// Every supported activation.
    pub const ALL: [LeakyAct; 5] = [
        LeakyAct::Leaky,
        LeakyAct::Elu,
        LeakyAct::Prelu,
        LeakyAct::Selu,
        LeakyAct::Gelu,
    ];

    /// MXNet's name: `"leaky"`, `"elu"`, `"prelu"`, `"selu"`, `"gelu"`.
    pub fn name(self) -> &'static str {
        match self {
            LeakyAct::Leaky => "leaky",
            LeakyAct::Elu => "elu",
            LeakyAct::Prelu => "prelu",
            LeakyAct::Selu => "selu",
            LeakyAct::Gelu => "gelu",
        }
    }
}

impl fmt::Display for LeakyAct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LeakyAct {
    type Err = Error;

    /// Accepts MXNet's names; anything else is an [`Error::InvalidEnumValue`] listing them.
    fn from_str(s: &str) -> Result<Self> {
        LeakyAct::ALL
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::InvalidEnumValue {
                what: "LeakyReLU act_type",
                got: s.to_string(),
                valid: LeakyAct::ALL.iter().map(|a| a.name().to_string()).collect(),
            })
    }
}

/// SELU's α.
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// SELU's λ.
const SELU_LAMBDA: f64 = 1.050_700_987_355_480_5;
/// `1/√(2π)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// How PReLU's `gamma` lines up with the data: MXNet aligns gamma's dimensions with data axes 1
/// and 0 (right to left); every other axis broadcasts. The data is seen as rows of `rest`
/// elements indexed by `(i0, i1)`.
struct PreluLayout {
    d1: usize,
    rest: usize,
    along0: bool,
    along1: bool,
    g1: usize,
}

impl PreluLayout {
    fn new(op: &'static str, xs: &[usize], gs: &[usize]) -> Result<PreluLayout> {
        // MXNet's expand_shape: walk data axes right to left; gamma's next dimension (from its
        // end) is placed at axis 0 or 1 when it equals that axis' size or is 1.
        let mut e = vec![1usize; xs.len()];
        let mut s = gs.len();
        for i in (0..xs.len()).rev() {
            if s > 0 && i <= 1 && (xs[i] == gs[s - 1] || gs[s - 1] == 1) {
                e[i] = gs[s - 1];
                s -= 1;
            }
        }
        if s != 0 {
            return Err(Error::ShapeMismatch {
                op,
                lhs: xs.to_vec(),
                rhs: gs.to_vec(),
                detail: "prelu's gamma must have shape (C,) with C = data.shape[1], or one \
                         element"
                    .into(),
            });
        }
        let along0 = e.first().is_some_and(|&d| d > 1);
        let along1 = e.get(1).is_some_and(|&d| d > 1);
        Ok(PreluLayout {
            d1: xs.get(1).copied().unwrap_or(1),
            rest: xs.iter().skip(2).product(),
            along0,
            along1,
            g1: if along1 { e[1] } else { 1 },
        })
    }

    /// gamma's flat index for data row `row`.
    #[inline]
    fn gamma_index(&self, row: usize) -> usize {
        let (i0, i1) = (row / self.d1, row % self.d1);
        (if self.along0 { i0 } else { 0 }) * self.g1 + if self.along1 { i1 } else { 0 }
    }
}

/// Checks `gamma` against the activation: required (and laid out per [`PreluLayout`]) for
/// prelu, refused otherwise.
fn prelu_gamma<'a>(
    op: &'static str,
    act: LeakyAct,
    x: &NDArray,
    gamma: Option<&'a NDArray>,
) -> Result<Option<(&'a NDArray, PreluLayout)>> {
    match (act, gamma) {
        (LeakyAct::Prelu, Some(g)) => {
            check_pair(op, x, g)?;
            Ok(Some((g, PreluLayout::new(op, x.shape(), g.shape())?)))
        }
        (LeakyAct::Prelu, None) => Err(Error::invalid_arg(
            op,
            "act_type 'prelu' needs its gamma array",
        )),
        (_, Some(_)) => Err(Error::invalid_arg(
            op,
            format!("act_type '{act}' takes no gamma; only 'prelu' does"),
        )),
        (_, None) => Ok(None),
    }
}

/// MXNet's `LeakyReLU` forward (see [`LeakyAct`] for the formulas). `slope` is MXNet's
/// `slope` (default 0.25; used by leaky and elu). For prelu, `gamma` has shape `(C,)` with
/// `C = x.shape[1]` and broadcasts along every other axis, or has one element (MXNet's rules);
/// other activations take no gamma. Output: same shape and dtype as `x`.
pub(crate) fn leaky_relu_fwd(
    x: &NDArray,
    act: LeakyAct,
    slope: f64,
    gamma: Option<&NDArray>,
) -> Result<NDArray> {
    const OP: &str = "LeakyReLU";
    check_float(OP, x)?;
    let prelu = prelu_gamma(OP, act, x, gamma)?;
    with_real!(OP, x.dtype(), R => {
        let out = NDArray::for_overwrite(x.shape(), x.dtype(), x.context())?;
        let sl = R::of(slope);
        let (alpha, lambda) = (R::of(SELU_ALPHA), R::of(SELU_LAMBDA));
        let half = R::of(0.5);
        let rs2 = R::of(std::f64::consts::FRAC_1_SQRT_2);
        let gv: Vec<R> = prelu.as_ref().map(|(g, _)| to_real_vec::<R>(g)).unwrap_or_default();
        read_real::<R, _>(x, |xs| write_real::<R, _>(&out, |ys| match act {
            LeakyAct::Leaky => par_map(xs, ys, |v| if v > R::ZERO { v } else { v * sl }),
            LeakyAct::Elu => par_map(xs, ys, |v| if v > R::ZERO { v } else { sl * v.exp_m1() }),
            LeakyAct::Selu => par_map(xs, ys, |v| {
                lambda * if v > R::ZERO { v } else { alpha * v.exp_m1() }
            }),
            LeakyAct::Gelu => par_map(xs, ys, |v| half * v * (R::ONE + (v * rs2).error_fn())),
            LeakyAct::Prelu => {
                if let Some((_, lay)) = &prelu {
                    let rest = lay.rest;
                    for_each_row(ys, rest, |r, yr| {
                        let g = gv[lay.gamma_index(r)];
                        for (o, &v) in yr.iter_mut().zip(&xs[r * rest..(r + 1) * rest]) {
                            *o = if v > R::ZERO { v } else { v * g };
                        }
                    });
                }
            }
        }));
        Ok(out)
    })
}

/// MXNet's `LeakyReLU` backward: `(dx, dgamma)`, `dgamma` only for prelu (shape of `gamma`).
///
/// `dx = dy · f'`: leaky `y > 0 ? 1 : slope`; elu `y > 0 ? 1 : y + slope`; selu
/// `y > 0 ? λ : y + λα`; gelu `Φ(x) + x φ(x)`; prelu `x > 0 ? 1 : gamma`, and
/// `dgamma = Σ dy · (x > 0 ? 0 : x)` over the broadcast axes. Note: MXNet 1.9.1 computes selu's
/// gradient as `λ(α + y)`, which is not the derivative of its forward; this kernel uses the
/// true derivative.
pub(crate) fn leaky_relu_bwd(
    act: LeakyAct,
    slope: f64,
    x: &NDArray,
    y: &NDArray,
    gamma: Option<&NDArray>,
    dy: &NDArray,
) -> Result<(NDArray, Option<NDArray>)> {
    const OP: &str = "LeakyReLU backward";
    check_operands(OP, dy, x)?;
    check_operands(OP, dy, y)?;
    check_float(OP, dy)?;
    let prelu = prelu_gamma(OP, act, x, gamma)?;
    let src = if matches!(act, LeakyAct::Gelu | LeakyAct::Prelu) {
        x
    } else {
        y
    };
    with_real!(OP, dy.dtype(), R => {
        let dx = NDArray::for_overwrite(dy.shape(), dy.dtype(), dy.context())?;
        let sl = R::of(slope);
        let (lambda, la) = (R::of(SELU_LAMBDA), R::of(SELU_LAMBDA * SELU_ALPHA));
        let (half, rs2, isq) = (
            R::of(0.5),
            R::of(std::f64::consts::FRAC_1_SQRT_2),
            R::of(INV_SQRT_2PI),
        );
        let gv: Vec<R> = prelu.as_ref().map(|(g, _)| to_real_vec::<R>(g)).unwrap_or_default();
        let dgamma = read_real2::<R, _>(src, dy, |s, gs| {
            write_real::<R, _>(&dx, |d| match act {
                LeakyAct::Leaky => {
                    par::zip_map(s, gs, d, |y, g| if y > R::ZERO { g } else { g * sl });
                    None
                }
                LeakyAct::Elu => {
                    par::zip_map(s, gs, d, |y, g| if y > R::ZERO { g } else { g * (y + sl) });
                    None
                }
                LeakyAct::Selu => {
                    par::zip_map(s, gs, d, |y, g| {
                        if y > R::ZERO {
                            g * lambda
                        } else {
                            g * (y + la)
                        }
                    });
                    None
                }
                LeakyAct::Gelu => {
                    par::zip_map(s, gs, d, |x, g| {
                        let cdf = half * (R::ONE + (x * rs2).error_fn());
                        g * (cdf + x * isq * (-half * x * x).exp())
                    });
                    None
                }
                LeakyAct::Prelu => prelu.as_ref().map(|(_, lay)| {
                    let rest = lay.rest;
                    for_each_row(d, rest, |r, dr| {
                        let g = gv[lay.gamma_index(r)];
                        let (xr, gr) = (&s[r * rest..(r + 1) * rest], &gs[r * rest..(r + 1) * rest]);
                        for ((o, &v), &gy) in dr.iter_mut().zip(xr).zip(gr) {
                            *o = if v > R::ZERO { gy } else { gy * g };
                        }
                    });
                    reduce_rows(d.len() / rest.max(1), rest, gv.len(), |r, acc| {
                        let (xr, gr) = (&s[r * rest..(r + 1) * rest], &gs[r * rest..(r + 1) * rest]);
                        acc[lay.gamma_index(r)] += lane_sum_pair(xr, gr, |v, gy| {
                            (if v > R::ZERO { 0.0 } else { v.f64() * gy.f64() }, 0.0)
                        })
                        .0;
                    })
                }),
            })
        });
        let dgamma = match (dgamma, &prelu) {
            (Some(v), Some((g, _))) => Some(array_from_f64(&v, g.shape(), g.dtype(), g.context())?),
            _ => None,
        };
        Ok((dx, dgamma))
    })
}

// ============================================================================ softmax

/// The temperature as a non-zero finite number (default 1).
fn check_temperature(op: &'static str, t: Option<f64>) -> Result<f64> {
    let t = t.unwrap_or(1.0);
    if t == 0.0 || !t.is_finite() {
        return Err(Error::invalid_arg(
            op,
            format!("temperature must be finite and non-zero, got {t}"),
        ));
    }
    Ok(t)
}

/// MXNet's `softmax` (or, with `log`, `log_softmax`) along `axis` (negative counts from the
/// end; MXNet's default is -1) with optional `temperature` T (default 1):
/// `y = exp(z) / Σ exp(z)` or `y = z - ln Σ exp(z)`, where `z = (x - max x) / T` along the axis
/// (the minimum for a negative T), so no exponential overflows. Output: same shape and dtype.
pub(crate) fn softmax_fwd(
    x: &NDArray,
    axis: isize,
    temperature: Option<f64>,
    log: bool,
) -> Result<NDArray> {
    let op = if log { "log_softmax" } else { "softmax" };
    let ax = norm_axis(op, axis, x.shape())?;
    let t = check_temperature(op, temperature)?;
    let (_, m, inner) = split3(x.shape(), ax);
    with_real!(op, x.dtype(), R => {
        let out = NDArray::for_overwrite(x.shape(), x.dtype(), x.context())?;
        read_real::<R, _>(x, |xs| write_real::<R, _>(&out, |ys| {
            lines(&[xs], ys, m, inner, |_, rows, o| softmax_line(rows[0], o, t, log))
        }));
        Ok(out)
    })
}

fn softmax_line<R: Real>(x: &[R], y: &mut [R], t: f64, log: bool) {
    let pos = t > 0.0;
    let mut mx = x[0];
    for &v in &x[1..] {
        if (pos && mx < v) || (!pos && v < mx) {
            mx = v;
        }
    }
    let unit = t == 1.0;
    let tt = R::of(t);
    let mut sum = R::ZERO;
    for (o, &v) in y.iter_mut().zip(x) {
        let z = if unit { v - mx } else { (v - mx) / tt };
        let e = z.exp();
        sum += e;
        *o = if log { z } else { e };
    }
    if log {
        let ls = sum.ln();
        for o in y.iter_mut() {
            *o = *o - ls;
        }
    } else {
        for o in y.iter_mut() {
            *o = *o / sum;
        }
    }
}

/// Backward of [`softmax_fwd`] from its output `y` and the output gradient `dy` (same shape,
/// dtype, context): softmax `dx = y (dy - Σ dy·y) / T`; log_softmax
/// `dx = (dy - exp(y) Σ dy) / T`, sums along `axis`.
pub(crate) fn softmax_bwd(
    y: &NDArray,
    dy: &NDArray,
    axis: isize,
    temperature: Option<f64>,
    log: bool,
) -> Result<NDArray> {
    let op = if log {
        "log_softmax backward"
    } else {
        "softmax backward"
    };
    check_operands(op, y, dy)?;
    let ax = norm_axis(op, axis, y.shape())?;
    let t = check_temperature(op, temperature)?;
    let (_, m, inner) = split3(y.shape(), ax);
    with_real!(op, y.dtype(), R => {
        let out = NDArray::for_overwrite(y.shape(), y.dtype(), y.context())?;
        let tt = R::of(t);
        read_real2::<R, _>(y, dy, |ys, gs| write_real::<R, _>(&out, |dx| {
            lines(&[ys, gs], dx, m, inner, |_, rows, o| {
                let (y, g) = (rows[0], rows[1]);
                if log {
                    let mut s = R::ZERO;
                    for &v in g {
                        s += v;
                    }
                    for ((o, &yv), &gv) in o.iter_mut().zip(y).zip(g) {
                        *o = (gv - yv.exp() * s) / tt;
                    }
                } else {
                    let mut s = R::ZERO;
                    for (&yv, &gv) in y.iter().zip(g) {
                        s += yv * gv;
                    }
                    for ((o, &yv), &gv) in o.iter_mut().zip(y).zip(g) {
                        *o = yv * (gv - s) / tt;
                    }
                }
            })
        }));
        Ok(out)
    })
}

// ============================================================================ Dropout

/// A dropout mask of `shape`: each element is `1/(1-p)` (kept) with probability `1 - p`, else
/// 0 — MXNet's `Dropout` multiplies the data by it (and the gradient by the same mask).
/// Values come from the crate's Philox generator (uniform `u`, kept when `u < 1 - p`), so
/// [`crate::random::seed`] makes masks reproducible. `p == 0` gives all ones without drawing.
///
/// Errors: `p` outside `[0, 1)` is an [`Error::InvalidArgument`]; a non-float `dtype` an
/// [`Error::UnsupportedDType`].
///
/// Layering note: this is the one kernel of `nd` that draws from `random` (a higher layer).
pub(crate) fn dropout_mask(shape: &[usize], p: f64, dtype: DType, ctx: Context) -> Result<NDArray> {
    const OP: &str = "Dropout";
    if !dtype.is_float() {
        return Err(unsupported(OP, dtype));
    }
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid_arg(
            OP,
            format!("the drop probability p must be in [0, 1), got {p}"),
        ));
    }
    if p == 0.0 {
        return NDArray::ones(shape, dtype, ctx);
    }
    let keep = 1.0 - p;
    with_real!(OP, dtype, R => {
        let u = crate::random::uniform(0.0, 1.0, shape, R::DTYPE, ctx)?;
        let (kp, scale) = (R::of(keep), R::of(1.0) / R::of(keep));
        u.write_slice::<R, _>(|s| {
            par::map_inplace(s, |v| if v < kp { scale } else { R::ZERO })
        });
        if dtype == R::DTYPE {
            Ok(u)
        } else {
            let out = NDArray::for_overwrite(shape, dtype, ctx)?;
            u.read_slice::<R, _>(|s| store_real(&out, s));
            Ok(out)
        }
    })
}

// ============================================================================ Embedding

/// MXNet's `Embedding` forward: row `data[i]` of `weight` for every index in `data`.
///
/// `data` holds indices as float or integer values, any shape; `weight` is
/// `(input_dim, output_dim)`; the output is `data.shape + (output_dim,)` of `weight`'s dtype.
/// Indices are truncated toward zero and clipped into `[0, input_dim - 1]` (MXNet's
/// `take(mode='clip')`). A pure gather, so every dtype of `weight` works.
pub(crate) fn embedding_fwd(data: &NDArray, weight: &NDArray) -> Result<NDArray> {
    const OP: &str = "Embedding";
    if weight.ndim() != 2 {
        return Err(Error::InvalidShape {
            op: OP,
            shape: weight.shape().to_vec(),
            reason: "the weight must have shape (input_dim, output_dim)".into(),
        });
    }
    super::shape_ops::take_impl(OP, weight, data, 0)
}

/// MXNet's `Embedding` backward: the dense weight gradient `(input_dim, output_dim)` where
/// row `j` sums the rows of `dy` (shape `data.shape + (output_dim,)`) whose index clips to `j`
/// (duplicates add up). Float dtypes only.
pub(crate) fn embedding_bwd(data: &NDArray, dy: &NDArray, input_dim: usize) -> Result<NDArray> {
    const OP: &str = "Embedding backward";
    let n = data.ndim();
    if dy.ndim() != n + 1 || dy.shape()[..n] != *data.shape() {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: data.shape().to_vec(),
            rhs: dy.shape().to_vec(),
            detail: "the output gradient must have shape data.shape + (output_dim,)".into(),
        });
    }
    let od = dy.shape()[n];
    super::shape_ops::take_bwd_impl(OP, data, dy, &[input_dim, od], 0)
}

/// The table rows an `Embedding` over `data` reads, in `data`'s order: each index truncated
/// toward zero and clipped into `[0, input_dim - 1]`, as [`embedding_fwd`] does (NaN → 0).
/// The sparse-gradient backward pairs them with the rows of the output gradient.
pub(crate) fn embedding_row_ids(data: &NDArray, input_dim: usize) -> Result<Vec<i64>> {
    if input_dim == 0 {
        return Err(Error::invalid_arg(
            "Embedding backward",
            "the weight has no rows (input_dim 0)",
        ));
    }
    let hi = (input_dim - 1) as i64;
    Ok(data
        .to_f64_vec()
        .into_iter()
        .map(|v| (v as i64).clamp(0, hi)) // `as` truncates toward zero and maps NaN to 0
        .collect())
}

// ============================================================================ BatchNorm

/// What [`batch_norm_fwd`] returns: the output and the statistics it normalised with.
#[derive(Clone, Debug)]
pub(crate) struct BatchNormOut {
    /// The normalised output, shape and dtype of `x`.
    pub y: NDArray,
    /// Per-channel mean used, `(C,)`, dtype of the parameters: the batch mean in training
    /// (without global stats), else the running mean.
    pub mean: NDArray,
    /// Per-channel `1 / sqrt(var + eps)` used, `(C,)`, dtype of the parameters.
    pub invstd: NDArray,
}

/// Checks the per-channel arrays of batch norm: each `(C,)`, on `x`'s context, all of one
/// float dtype which is `x`'s, or float32 when `x` is float16 / bfloat16 (MXNet keeps those
/// parameters in float32). Returns that dtype.
fn check_channel_params(
    op: &'static str,
    x: &NDArray,
    axis: usize,
    params: &[(&str, &NDArray)],
) -> Result<DType> {
    let c = x.shape()[axis];
    let pdt = params.first().map_or(x.dtype(), |(_, p)| p.dtype());
    let half_in_f32 =
        matches!(x.dtype(), DType::Float16 | DType::BFloat16) && pdt == DType::Float32;
    if pdt != x.dtype() && !half_in_f32 {
        return Err(Error::DTypeMismatch {
            op,
            expected: x.dtype(),
            got: pdt,
        });
    }
    for (name, p) in params {
        if p.dtype() != pdt {
            return Err(Error::DTypeMismatch {
                op,
                expected: pdt,
                got: p.dtype(),
            });
        }
        if p.context() != x.context() {
            return Err(Error::ContextMismatch {
                op,
                lhs: x.context(),
                rhs: p.context(),
            });
        }
        if p.shape() != [c] {
            return Err(Error::ShapeMismatch {
                op,
                lhs: x.shape().to_vec(),
                rhs: p.shape().to_vec(),
                detail: format!("{name} must have shape ({c},), the size of channel axis {axis}"),
            });
        }
    }
    Ok(pdt)
}

/// Per-channel sums over an `(outer, C, inner)` layout of both components of
/// `t(a, b, per_c[c])`, in f64, into `out` (`2C` values, the first components' sums first;
/// overwritten).
fn channel_sums<R: Real>(
    a: &[R],
    b: &[R],
    (outer, c, inner): (usize, usize, usize),
    per_c: &[f64],
    out: &mut [f64],
    t: impl Fn(f64, f64, f64) -> (f64, f64) + Sync,
) {
    out.fill(0.0);
    if inner == 1 {
        reduce_rows_into(outer, c, out, |o, acc| {
            let (s0, s1) = acc.split_at_mut(c);
            let (ar, br) = (&a[o * c..(o + 1) * c], &b[o * c..(o + 1) * c]);
            for ((((s0, s1), &x), &y), &m) in s0.iter_mut().zip(s1).zip(ar).zip(br).zip(per_c) {
                let (p, q) = t(x.f64(), y.f64(), m);
                *s0 += p;
                *s1 += q;
            }
        })
    } else {
        reduce_rows_into(outer * c, inner, out, |r, acc| {
            let ch = r % c;
            let m = per_c[ch];
            let (ar, br) = (
                &a[r * inner..(r + 1) * inner],
                &b[r * inner..(r + 1) * inner],
            );
            let (p, q) = lane_sum_pair(ar, br, |x, y| t(x.f64(), y.f64(), m));
            acc[ch] += p;
            acc[c + ch] += q;
        })
    }
}

/// Per-channel coefficients of [`channel_affine`].
struct Affine<'a, R> {
    m: &'a [R],
    s: &'a [R],
    k: &'a [R],
    /// Empty when there is no `g` term.
    w: &'a [R],
}

/// `out = (x - m[c]) * s[c] + k[c]` (and with `g`: `+ g * w[c]`) over `(outer, C, inner)`.
fn channel_affine<R: Real>(
    x: &[R],
    g: Option<&[R]>,
    out: &mut [R],
    (_, c, inner): (usize, usize, usize),
    coef: &Affine<'_, R>,
) {
    let (m, s, k, w) = (coef.m, coef.s, coef.k, coef.w);
    if inner == 1 {
        for_each_row(out, c, |o, row| {
            let xr = &x[o * c..(o + 1) * c];
            match g {
                None => {
                    for ((((y, &v), &m), &s), &k) in row.iter_mut().zip(xr).zip(m).zip(s).zip(k) {
                        *y = (v - m) * s + k;
                    }
                }
                Some(g) => {
                    let gr = &g[o * c..(o + 1) * c];
                    for (j, y) in row.iter_mut().enumerate() {
                        *y = gr[j] * w[j] + (xr[j] - m[j]) * s[j] + k[j];
                    }
                }
            }
        });
    } else {
        for_each_row(out, inner, |r, row| {
            let ch = r % c;
            let (mc, sc, kc, wc) = (m[ch], s[ch], k[ch], w.get(ch).copied().unwrap_or(R::ZERO));
            let xr = &x[r * inner..(r + 1) * inner];
            match g {
                None => {
                    for (y, &v) in row.iter_mut().zip(xr) {
                        *y = (v - mc) * sc + kc;
                    }
                }
                Some(g) => {
                    let gr = &g[r * inner..(r + 1) * inner];
                    for ((y, &v), &gv) in row.iter_mut().zip(xr).zip(gr) {
                        *y = gv * wc + (v - mc) * sc + kc;
                    }
                }
            }
        });
    }
}

fn check_finite(op: &'static str, name: &str, v: f64, min: f64) -> Result<()> {
    if v.is_finite() && v >= min {
        Ok(())
    } else {
        Err(Error::invalid_arg(
            op,
            format!("{name} must be finite and at least {min}, got {v}"),
        ))
    }
}

/// `1 / sqrt(var + eps)`; with batch statistics MXNet gives 0 for `var == eps == 0`.
#[inline]
fn invstd_of(var: f64, eps: f64, batch: bool) -> f64 {
    if batch && var == 0.0 && eps == 0.0 {
        0.0
    } else {
        1.0 / (var + eps).sqrt()
    }
}

/// MXNet's `BatchNorm` forward over channel axis `axis` (MXNet's default 1) of `x`.
///
/// With `training && !use_global_stats` it normalises with the batch statistics of each
/// channel (over every axis but `axis`; biased variance) and updates the running statistics
/// **in place**: `running = running · momentum + batch · (1 - momentum)`, with the *biased*
/// batch variance, as MXNet does. Otherwise it uses the running statistics and leaves them
/// alone. `y = (x - mean) · invstd · gamma + beta` with `invstd = 1/sqrt(var + eps)`;
/// `fix_gamma` treats gamma as 1 (gamma itself is not written, unlike MXNet which stores 1s
/// into it). MXNet's defaults: eps 1e-3 for the `nd.BatchNorm` op (Gluon's layer passes
/// 1e-5), momentum 0.9, fix_gamma true (Gluon's layer passes `!scale`, i.e. false).
///
/// `gamma`, `beta`, `running_mean`, `running_var`: `(C,)`, dtype of `x` (or float32 for
/// float16/bfloat16 `x`), same context. MXNet updates the running statistics in its backward
/// pass instead; after a forward and a backward the result is the same.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_fwd(
    x: &NDArray,
    gamma: &NDArray,
    beta: &NDArray,
    running_mean: &NDArray,
    running_var: &NDArray,
    eps: f64,
    momentum: f64,
    axis: usize,
    fix_gamma: bool,
    use_global_stats: bool,
    training: bool,
) -> Result<BatchNormOut> {
    const OP: &str = "BatchNorm";
    check_float(OP, x)?;
    check_axis(OP, axis, x.shape())?;
    let pdt = check_channel_params(
        OP,
        x,
        axis,
        &[
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ],
    )?;
    check_finite(OP, "eps", eps, 0.0)?;
    check_finite(OP, "momentum", momentum, f64::NEG_INFINITY)?;
    let dims = split3(x.shape(), axis);
    let (outer, c, inner) = dims;
    let use_batch = training && !use_global_stats;
    if use_batch && c > 0 && outer * inner == 0 {
        return Err(Error::InvalidShape {
            op: OP,
            shape: x.shape().to_vec(),
            reason: "batch statistics need at least one element per channel".into(),
        });
    }
    // Per-channel f64 scratch (one allocation): running mean and variance, gamma, beta, the
    // statistics used, invstd, and two components of sums.
    let mut buf = vec![0.0f64; 9 * c];
    let (rmv, rest) = buf.split_at_mut(c);
    let (rvv, rest) = rest.split_at_mut(c);
    let (gv, rest) = rest.split_at_mut(c);
    let (bv, rest) = rest.split_at_mut(c);
    let (mean, rest) = rest.split_at_mut(c);
    let (var, rest) = rest.split_at_mut(c);
    let (invstd, sums) = rest.split_at_mut(c);
    read_f64_into(running_mean, rmv);
    read_f64_into(running_var, rvv);
    if fix_gamma {
        gv.fill(1.0);
    } else {
        read_f64_into(gamma, gv);
    }
    read_f64_into(beta, bv);
    let y = with_real!(OP, x.dtype(), R => {
        let y = NDArray::for_overwrite(x.shape(), x.dtype(), x.context())?;
        read_real::<R, _>(x, |xs| {
            if use_batch {
                let n = (outer * inner) as f64;
                // `var` is still zeros: the mean pass ignores its per-channel value.
                channel_sums(xs, xs, dims, var, sums, |v, _, _| (v, 0.0));
                for (m, s) in mean.iter_mut().zip(&sums[..c]) {
                    *m = s / n;
                }
                channel_sums(xs, xs, dims, mean, sums, |v, _, m| ((v - m) * (v - m), 0.0));
                for (v, s) in var.iter_mut().zip(&sums[..c]) {
                    *v = s / n;
                }
            } else {
                mean.copy_from_slice(rmv);
                var.copy_from_slice(rvv);
            }
            for (i, &v) in invstd.iter_mut().zip(var.iter()) {
                *i = invstd_of(v, eps, use_batch);
            }
            let mut coef = Vec::with_capacity(3 * c);
            coef.extend(mean.iter().map(|&v| R::of(v)));
            coef.extend(gv.iter().zip(invstd.iter()).map(|(g, i)| R::of(g * i)));
            coef.extend(bv.iter().map(|&v| R::of(v)));
            let (m, rest) = coef.split_at(c);
            let (s, k) = rest.split_at(c);
            let coef = Affine { m, s, k, w: &[] };
            write_real::<R, _>(&y, |ys| channel_affine(xs, None, ys, dims, &coef));
        });
        y
    });
    if use_batch {
        for (r, b) in rmv.iter_mut().zip(mean.iter()) {
            *r = *r * momentum + b * (1.0 - momentum);
        }
        for (r, b) in rvv.iter_mut().zip(var.iter()) {
            *r = *r * momentum + b * (1.0 - momentum);
        }
        store_real(running_mean, rmv);
        store_real(running_var, rvv);
    }
    Ok(BatchNormOut {
        y,
        mean: array_from_f64(mean, &[c], pdt, x.context())?,
        invstd: array_from_f64(invstd, &[c], pdt, x.context())?,
    })
}

/// MXNet's `BatchNorm` backward: `(dx, dgamma, dbeta)` from `x`, `gamma`, the statistics
/// `saved` by the forward, and the output gradient `dy` (shape of `x`).
///
/// With `use_batch_stats` (the forward ran in training without global stats):
/// `dx = (dy - mean(dy) - x̂ · mean(dy · x̂)) · invstd · w`, where `x̂ = (x - mean) · invstd` and
/// the means run over every axis but `axis`; otherwise `dx = dy · invstd · w`. `w` is gamma, or
/// 1 with `fix_gamma`. `dgamma = Σ dy · x̂` (zeros with `fix_gamma`, as MXNet), `dbeta = Σ dy`,
/// both `(C,)` in gamma's dtype.
pub(crate) fn batch_norm_bwd(
    x: &NDArray,
    gamma: &NDArray,
    saved: &BatchNormOut,
    dy: &NDArray,
    axis: usize,
    fix_gamma: bool,
    use_batch_stats: bool,
) -> Result<(NDArray, NDArray, NDArray)> {
    const OP: &str = "BatchNorm backward";
    check_float(OP, x)?;
    check_operands(OP, x, dy)?;
    check_axis(OP, axis, x.shape())?;
    let pdt = check_channel_params(
        OP,
        x,
        axis,
        &[
            ("gamma", gamma),
            ("mean", &saved.mean),
            ("invstd", &saved.invstd),
        ],
    )?;
    let dims = split3(x.shape(), axis);
    let (outer, c, inner) = dims;
    // Per-channel f64 scratch: mean, invstd, gamma (or 1), sums of dy and of (x - mean)·dy.
    let mut buf = vec![0.0f64; 5 * c];
    let (mean, rest) = buf.split_at_mut(c);
    let (inv, rest) = rest.split_at_mut(c);
    let (w, sums) = rest.split_at_mut(c);
    read_f64_into(&saved.mean, mean);
    read_f64_into(&saved.invstd, inv);
    if fix_gamma {
        w.fill(1.0);
    } else {
        read_f64_into(gamma, w);
    }
    let n = (outer * inner) as f64;
    let dx = with_real!(OP, x.dtype(), R => {
        let dx = NDArray::for_overwrite(x.shape(), x.dtype(), x.context())?;
        read_real2::<R, _>(x, dy, |xs, gs| {
            channel_sums(xs, gs, dims, mean, sums, |v, g, m| (g, (v - m) * g));
            let (sum_dy, dotp) = sums.split_at(c);
            // dx = dy·a + (x - mean)·b + k per channel.
            let mut coef = vec![R::ZERO; 4 * c];
            let (cm, rest) = coef.split_at_mut(c);
            let (ca, rest) = rest.split_at_mut(c);
            let (cb, ck) = rest.split_at_mut(c);
            for j in 0..c {
                let iw = inv[j] * w[j];
                cm[j] = R::of(mean[j]);
                ca[j] = R::of(iw);
                if use_batch_stats && n > 0.0 {
                    cb[j] = R::of(-dotp[j] * inv[j] * inv[j] / n * iw);
                    ck[j] = R::of(-sum_dy[j] / n * iw);
                }
            }
            let coef = Affine {
                m: cm,
                s: cb,
                k: ck,
                w: ca,
            };
            write_real::<R, _>(&dx, |d| channel_affine(xs, Some(gs), d, dims, &coef));
        });
        dx
    });
    let (sum_dy, dotp) = sums.split_at_mut(c);
    // dgamma = dotp · invstd (zeros with fix_gamma), computed in place.
    for (d, &i) in dotp.iter_mut().zip(inv.iter()) {
        *d = if fix_gamma { 0.0 } else { *d * i };
    }
    Ok((
        dx,
        array_from_f64(dotp, &[c], pdt, x.context())?,
        array_from_f64(sum_dy, &[c], pdt, x.context())?,
    ))
}

// ============================================================================ LayerNorm

/// `(mean, 1/sqrt(var + eps))` of every line along the middle axis of `(outer, m, inner)`
/// (line `o * inner + k`), two-pass, in f64.
fn line_stats<R: Real>(
    x: &[R],
    (outer, m, inner): (usize, usize, usize),
    eps: f64,
) -> Vec<(f64, f64)> {
    let stat = |l: usize| -> (f64, f64) {
        if m == 0 {
            return (0.0, 1.0 / eps.sqrt());
        }
        let (o, k) = (l / inner, l % inner);
        let base = o * m * inner + k;
        let n = m as f64;
        let (mean, var) = if inner == 1 {
            let row = &x[base..base + m];
            let mean = lane_sum(row, |v| v.f64()) / n;
            (
                mean,
                lane_sum(row, |v| (v.f64() - mean) * (v.f64() - mean)) / n,
            )
        } else {
            let at = |j: usize| x[base + j * inner].f64();
            let mean = (0..m).map(at).sum::<f64>() / n;
            (
                mean,
                (0..m).map(|j| (at(j) - mean) * (at(j) - mean)).sum::<f64>() / n,
            )
        };
        (mean, 1.0 / (var + eps).sqrt())
    };
    let n_lines = outer * inner;
    if par::worth_parallel(x.len()) {
        (0..n_lines).into_par_iter().map(stat).collect()
    } else {
        (0..n_lines).map(stat).collect()
    }
}

/// Checks LayerNorm's per-channel arrays: `(C,)`, dtype and context of `x`.
fn check_ln_params(op: &'static str, x: &NDArray, c: usize, ps: &[(&str, &NDArray)]) -> Result<()> {
    for (name, p) in ps {
        check_pair(op, x, p)?;
        if p.shape() != [c] {
            return Err(Error::ShapeMismatch {
                op,
                lhs: x.shape().to_vec(),
                rhs: p.shape().to_vec(),
                detail: format!("{name} must have shape ({c},), the size of the normalised axis"),
            });
        }
    }
    Ok(())
}

/// MXNet's `LayerNorm` forward: normalises `x` along `axis` (negative counts from the end;
/// MXNet's default -1): `y = (x - mean) · invstd · gamma + beta`, `invstd = 1/sqrt(var + eps)`
/// (biased variance; MXNet's eps default 1e-5). `gamma`, `beta`: `(C,)` with
/// `C = x.shape[axis]`, dtype and context of `x`. Returns `(y, mean, invstd)`; the statistics
/// have `x`'s shape with `axis` set to 1 and `x`'s dtype.
pub(crate) fn layer_norm_fwd(
    x: &NDArray,
    gamma: &NDArray,
    beta: &NDArray,
    axis: isize,
    eps: f64,
) -> Result<(NDArray, NDArray, NDArray)> {
    const OP: &str = "LayerNorm";
    check_float(OP, x)?;
    let ax = norm_axis(OP, axis, x.shape())?;
    let dims = split3(x.shape(), ax);
    let c = dims.1;
    check_ln_params(OP, x, c, &[("gamma", gamma), ("beta", beta)])?;
    check_finite(OP, "eps", eps, 0.0)?;
    let mut mshape = x.shape().to_vec();
    mshape[ax] = 1;
    with_real!(OP, x.dtype(), R => {
        let g = to_real_vec::<R>(gamma);
        let b = to_real_vec::<R>(beta);
        let y = NDArray::for_overwrite(x.shape(), x.dtype(), x.context())?;
        let stats = read_real::<R, _>(x, |xs| {
            let stats = line_stats(xs, dims, eps);
            write_real::<R, _>(&y, |ys| lines(&[xs], ys, c, dims.2, |l, rows, o| {
                let (m, s) = (R::of(stats[l].0), R::of(stats[l].1));
                for (((o, &v), &gc), &bc) in o.iter_mut().zip(rows[0]).zip(&g).zip(&b) {
                    *o = (v - m) * s * gc + bc;
                }
            }));
            stats
        });
        let (mean, inv): (Vec<f64>, Vec<f64>) = stats.into_iter().unzip();
        Ok((
            y,
            array_from_f64(&mean, &mshape, x.dtype(), x.context())?,
            array_from_f64(&inv, &mshape, x.dtype(), x.context())?,
        ))
    })
}

/// MXNet's `LayerNorm` backward: `(dx, dgamma, dbeta)` from `x`, `gamma`, the forward's `mean`
/// and `invstd` (shape of `x` with `axis` set to 1) and `dy` (shape of `x`). Per normalised
/// line, with `x̂ = (x - mean) · invstd` and `g = dy · gamma`:
/// `dx = invstd · (g - mean(g) - x̂ · mean(g · x̂))`; `dgamma = Σ dy · x̂` and `dbeta = Σ dy`
/// over every axis but `axis`.
pub(crate) fn layer_norm_bwd(
    x: &NDArray,
    gamma: &NDArray,
    mean: &NDArray,
    invstd: &NDArray,
    dy: &NDArray,
    axis: isize,
) -> Result<(NDArray, NDArray, NDArray)> {
    const OP: &str = "LayerNorm backward";
    check_float(OP, x)?;
    check_operands(OP, x, dy)?;
    let ax = norm_axis(OP, axis, x.shape())?;
    let dims = split3(x.shape(), ax);
    let (outer, c, inner) = dims;
    check_ln_params(OP, x, c, &[("gamma", gamma)])?;
    let mut mshape = x.shape().to_vec();
    mshape[ax] = 1;
    for (name, a) in [("mean", mean), ("invstd", invstd)] {
        check_pair(OP, x, a)?;
        if a.shape() != mshape.as_slice() {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: mshape.clone(),
                rhs: a.shape().to_vec(),
                detail: format!("{name} must have the data's shape with axis {ax} set to 1"),
            });
        }
    }
    let mv = mean.to_f64_vec();
    let iv = invstd.to_f64_vec();
    with_real!(OP, x.dtype(), R => {
        let g = to_real_vec::<R>(gamma);
        let dx = NDArray::for_overwrite(x.shape(), x.dtype(), x.context())?;
        let acc = read_real2::<R, _>(x, dy, |xs, gs| {
            write_real::<R, _>(&dx, |d| lines(&[xs, gs], d, c, inner, |l, rows, o| {
                let (xr, gr) = (rows[0], rows[1]);
                let (m, s) = (mv[l], iv[l]);
                let (sa, sb) = {
                    let (mut sa, mut sb) = (0.0, 0.0);
                    for ((&v, &gy), &gc) in xr.iter().zip(gr).zip(&g) {
                        let gg = gy.f64() * gc.f64();
                        sa += gg;
                        sb += gg * (v.f64() - m) * s;
                    }
                    (sa, sb)
                };
                let nn = c as f64;
                let (ma, mb, mr, sr) = (R::of(sa / nn), R::of(sb / nn), R::of(m), R::of(s));
                for (((o, &v), &gy), &gc) in o.iter_mut().zip(xr).zip(gr).zip(&g) {
                    let xhat = (v - mr) * sr;
                    *o = sr * (gy * gc - ma - xhat * mb);
                }
            }));
            if inner == 1 {
                reduce_rows(outer, c, 2 * c, |o, acc| {
                    let (m, s) = (mv[o], iv[o]);
                    let (dg, db) = acc.split_at_mut(c);
                    let (xr, gr) = (&xs[o * c..(o + 1) * c], &gs[o * c..(o + 1) * c]);
                    for (((dg, db), &v), &gy) in dg.iter_mut().zip(db).zip(xr).zip(gr) {
                        *dg += gy.f64() * (v.f64() - m) * s;
                        *db += gy.f64();
                    }
                })
            } else {
                reduce_rows(outer * c, inner, 2 * c, |r, acc| {
                    let (o, ch) = (r / c, r % c);
                    let (xr, gr) = (&xs[r * inner..(r + 1) * inner], &gs[r * inner..(r + 1) * inner]);
                    let (mr, ir) = (&mv[o * inner..(o + 1) * inner], &iv[o * inner..(o + 1) * inner]);
                    for (((&v, &gy), &m), &s) in xr.iter().zip(gr).zip(mr).zip(ir) {
                        acc[ch] += gy.f64() * (v.f64() - m) * s;
                        acc[c + ch] += gy.f64();
                    }
                })
            }
        });
        let (dg, db) = acc.split_at(c);
        Ok((
            dx,
            array_from_f64(dg, &[c], gamma.dtype(), x.context())?,
            array_from_f64(db, &[c], gamma.dtype(), x.context())?,
        ))
    })
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

    // ------------------------------------------------------------------ Activation

    fn act_ref(act: ActType, x: f64) -> f64 {
        match act {
            ActType::Relu => x.max(0.0),
            ActType::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            ActType::Tanh => x.tanh(),
            ActType::SoftRelu => {
                if x > 20.0 {
                    x
                } else {
                    (1.0 + x.exp()).ln()
                }
            }
            ActType::SoftSign => x / (1.0 + x.abs()),
        }
    }

    #[test]
    fn act_type_names_round_trip() {
        for a in ActType::ALL {
            assert_eq!(a.to_string().parse::<ActType>().unwrap(), a);
        }
        let e = "swish".parse::<ActType>().unwrap_err();
        assert!(matches!(e, Error::InvalidEnumValue { .. }));
        let msg = e.to_string();
        for name in ["relu", "sigmoid", "tanh", "softrelu", "softsign"] {
            assert!(msg.contains(name), "{msg}");
        }
        for a in LeakyAct::ALL {
            assert_eq!(a.to_string().parse::<LeakyAct>().unwrap(), a);
        }
        let msg = "rrelu".parse::<LeakyAct>().unwrap_err().to_string();
        for name in ["leaky", "elu", "prelu", "selu", "gelu"] {
            assert!(msg.contains(name), "{msg}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn activation_forward_backward((shape, x, dy) in shape_vals(3, 4)) {
            let x = off_kink(x);
            let xa = arr(&x, &shape);
            let dya = arr(&dy, &shape);
            for act in ActType::ALL {
                let y = activation_fwd(&xa, act).unwrap();
                let want: Vec<f64> = x.iter().map(|&v| act_ref(act, v)).collect();
                assert_close(&y.to_f64_vec(), &want, 1e-13, act.name())?;
                let dx = activation_bwd(act, &xa, &y, &dya).unwrap();
                fd_check(
                    std::slice::from_ref(&xa),
                    &dy,
                    &|ins| activation_fwd(&ins[0], act).unwrap(),
                    &[Some(&dx)],
                )?;
                let y32 = activation_fwd(&cast(&xa, DType::Float32), act).unwrap();
                prop_assert_eq!(y32.dtype(), DType::Float32);
                assert_close(&y32.to_f64_vec(), &want, 1e-6, "f32 forward")?;
                let dx32 = activation_bwd(
                    act,
                    &cast(&xa, DType::Float32),
                    &y32,
                    &cast(&dya, DType::Float32),
                )
                .unwrap();
                assert_close(&dx32.to_f64_vec(), &dx.to_f64_vec(), 1e-5, "f32 backward")?;
            }
        }
    }

    #[test]
    fn activation_edge_values() {
        let x = arr(&[f64::NAN, -0.0, 30.0, -800.0], &[4]);
        let relu = activation_fwd(&x, ActType::Relu).unwrap().to_f64_vec();
        assert!(relu[0].is_nan());
        assert_eq!(&relu[1..], &[0.0, 30.0, 0.0]);
        let soft = activation_fwd(&x, ActType::SoftRelu).unwrap().to_f64_vec();
        assert_eq!(soft[2], 30.0); // passes through above 20
        assert_eq!(soft[3], 0.0);
        let sig = activation_fwd(&x, ActType::Sigmoid).unwrap().to_f64_vec();
        assert_eq!(sig[3], 0.0);
    }

    #[test]
    fn half_types_compute_through_f32() {
        let v = [-1.5, -0.25, 0.0, 0.75, 2.0, 3.5];
        let x = arr(&v, &[2, 3]);
        for dt in [DType::Float16, DType::BFloat16] {
            let y = activation_fwd(&cast(&x, dt), ActType::Tanh).unwrap();
            assert_eq!(y.dtype(), dt);
            let want: Vec<f64> = v.iter().map(|v: &f64| v.tanh()).collect();
            for (g, w) in y.to_f64_vec().iter().zip(&want) {
                assert!((g - w).abs() < 1e-2, "{dt}: {g} vs {w}");
            }
            let s = softmax_fwd(&cast(&x, dt), -1, None, false).unwrap();
            assert_eq!(s.dtype(), dt);
            let want = softmax_fwd(&x, -1, None, false).unwrap().to_f64_vec();
            for (g, w) in s.to_f64_vec().iter().zip(&want) {
                assert!((g - w).abs() < 1e-2, "{dt}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn float_kernels_refuse_integers_and_mismatches() {
        let xi = NDArray::ones(&[2, 3], DType::Int32, cpu()).unwrap();
        let x = arr(&[0.0; 6], &[2, 3]);
        assert!(matches!(
            activation_fwd(&xi, ActType::Relu),
            Err(Error::UnsupportedDType {
                dtype: DType::Int32,
                ..
            })
        ));
        assert!(matches!(
            leaky_relu_fwd(&xi, LeakyAct::Leaky, 0.25, None),
            Err(Error::UnsupportedDType { .. })
        ));
        assert!(matches!(
            softmax_fwd(&xi, -1, None, false),
            Err(Error::UnsupportedDType { .. })
        ));
        assert!(matches!(
            layer_norm_fwd(&xi, &xi, &xi, -1, 1e-5),
            Err(Error::UnsupportedDType { .. })
        ));
        let y = activation_fwd(&x, ActType::Tanh).unwrap();
        let dy_bad = arr(&[0.0; 3], &[3]);
        assert!(matches!(
            activation_bwd(ActType::Tanh, &x, &y, &dy_bad),
            Err(Error::ShapeMismatch { .. })
        ));
        let dy32 = cast(&x, DType::Float32);
        assert!(matches!(
            activation_bwd(ActType::Tanh, &x, &y, &dy32),
            Err(Error::DTypeMismatch { .. })
        ));
        let other_ctx = x.copy_to(Context::cpu(1)).unwrap();
        assert!(matches!(
            activation_bwd(ActType::Tanh, &x, &y, &other_ctx),
            Err(Error::ContextMismatch { .. })
        ));
    }

    // ------------------------------------------------------------------ LeakyReLU

    fn leaky_ref(act: LeakyAct, slope: f64, x: f64, g: f64) -> f64 {
        match act {
            LeakyAct::Leaky => {
                if x > 0.0 {
                    x
                } else {
                    slope * x
                }
            }
            LeakyAct::Elu => {
                if x > 0.0 {
                    x
                } else {
                    slope * (x.exp() - 1.0)
                }
            }
            LeakyAct::Prelu => {
                if x > 0.0 {
                    x
                } else {
                    g * x
                }
            }
            LeakyAct::Selu => {
                SELU_LAMBDA
                    * if x > 0.0 {
                        x
                    } else {
                        SELU_ALPHA * (x.exp() - 1.0)
                    }
            }
            LeakyAct::Gelu => 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn leaky_relu_forward_backward(
            (shape, x, dy) in shape_vals(4, 3),
            slope in 0.01..0.5f64,
            gvals in prop::collection::vec(0.05..0.6f64, 3),
            single_gamma: bool,
        ) {
            let x = off_kink(x);
            let xa = arr(&x, &shape);
            let dya = arr(&dy, &shape);
            let c = if shape.len() >= 2 { shape[1] } else { shape[0] };
            let gv: Vec<f64> = if single_gamma { gvals[..1].to_vec() } else { gvals[..c].to_vec() };
            let ga = arr(&gv, &[gv.len()]);
            for act in LeakyAct::ALL {
                let gamma = (act == LeakyAct::Prelu).then_some(&ga);
                let y = leaky_relu_fwd(&xa, act, slope, gamma).unwrap();
                let want: Vec<f64> = x
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let idx = unravel(i, &shape);
                        let ch = if shape.len() >= 2 { idx[1] } else { idx[0] };
                        let g = if single_gamma { gv[0] } else { gv[ch] };
                        leaky_ref(act, slope, v, g)
                    })
                    .collect();
                assert_close(&y.to_f64_vec(), &want, 1e-13, act.name())?;
                let (dx, dgamma) = leaky_relu_bwd(act, slope, &xa, &y, gamma, &dya).unwrap();
                prop_assert_eq!(dgamma.is_some(), act == LeakyAct::Prelu);
                fd_check(
                    &[xa.clone(), ga.clone()],
                    &dy,
                    &|ins| {
                        let g = (act == LeakyAct::Prelu).then_some(&ins[1]);
                        leaky_relu_fwd(&ins[0], act, slope, g).unwrap()
                    },
                    &[Some(&dx), dgamma.as_ref()],
                )?;
                let x32 = cast(&xa, DType::Float32);
                let g32 = cast(&ga, DType::Float32);
                let gamma32 = (act == LeakyAct::Prelu).then_some(&g32);
                let y32 = leaky_relu_fwd(&x32, act, slope, gamma32).unwrap();
                assert_close(&y32.to_f64_vec(), &want, 1e-6, "f32 forward")?;
                let (dx32, dg32) =
                    leaky_relu_bwd(act, slope, &x32, &y32, gamma32, &cast(&dya, DType::Float32))
                        .unwrap();
                assert_close(&dx32.to_f64_vec(), &dx.to_f64_vec(), 1e-5, "f32 backward")?;
                if let (Some(a), Some(b)) = (dg32, &dgamma) {
                    assert_close(&a.to_f64_vec(), &b.to_f64_vec(), 1e-5, "f32 dgamma")?;
                }
            }
        }
    }

    #[test]
    fn prelu_gamma_rules() {
        // MXNet 1.9.1: gamma (C,) along axis 1, one element for all, mismatches refused.
        let x = arr(&[-1.0, 2.0, -3.0, 4.0, -5.0, -6.0], &[2, 3]);
        let g = arr(&[0.1, 0.2, 0.3], &[3]);
        let y = leaky_relu_fwd(&x, LeakyAct::Prelu, 0.25, Some(&g)).unwrap();
        assert_close(
            &y.to_f64_vec(),
            &[-0.1, 2.0, -0.9, 4.0, -1.0, -1.8],
            1e-15,
            "C",
        )
        .unwrap();
        let g1 = arr(&[0.5], &[1]);
        let y = leaky_relu_fwd(&x, LeakyAct::Prelu, 0.25, Some(&g1)).unwrap();
        assert_close(
            &y.to_f64_vec(),
            &[-0.5, 2.0, -1.5, 4.0, -2.5, -3.0],
            1e-15,
            "1",
        )
        .unwrap();
        let x3 = arr(&[-1.0; 12], &[2, 3, 2]);
        let y = leaky_relu_fwd(&x3, LeakyAct::Prelu, 0.25, Some(&g)).unwrap();
        assert_eq!(
            y.to_f64_vec(),
            vec![-0.1, -0.1, -0.2, -0.2, -0.3, -0.3, -0.1, -0.1, -0.2, -0.2, -0.3, -0.3]
        );
        // A gamma matching axis 0 instead is accepted too (MXNet's expand_shape).
        let g0 = arr(&[0.1, 0.2], &[2]);
        let y = leaky_relu_fwd(&x, LeakyAct::Prelu, 0.25, Some(&g0)).unwrap();
        assert_close(
            &y.to_f64_vec(),
            &[-0.1, 2.0, -0.3, 4.0, -1.0, -1.2],
            1e-15,
            "N",
        )
        .unwrap();
        let bad = arr(&[0.1, 0.2, 0.3, 0.4], &[4]);
        assert!(matches!(
            leaky_relu_fwd(&x, LeakyAct::Prelu, 0.25, Some(&bad)),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            leaky_relu_fwd(&x, LeakyAct::Prelu, 0.25, None),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            leaky_relu_fwd(&x, LeakyAct::Elu, 0.25, Some(&g)),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn selu_gradient_is_the_true_derivative() {
        // MXNet 1.9.1 returns λ(α + y) (0.590423 at x = -1); the derivative is λα·e^x.
        let x = arr(&[-1.0, -0.5, 0.5], &[3]);
        let y = leaky_relu_fwd(&x, LeakyAct::Selu, 0.25, None).unwrap();
        let dy = arr(&[1.0; 3], &[3]);
        let (dx, _) = leaky_relu_bwd(LeakyAct::Selu, 0.25, &x, &y, None, &dy).unwrap();
        let want: Vec<f64> = [-1.0f64, -0.5]
            .iter()
            .map(|v| SELU_LAMBDA * SELU_ALPHA * v.exp())
            .chain([SELU_LAMBDA])
            .collect();
        assert_close(&dx.to_f64_vec(), &want, 1e-15, "selu").unwrap();
    }

    // ------------------------------------------------------------------ softmax

    fn softmax_ref(x: &[f64], shape: &[usize], axis: usize, t: f64, log: bool) -> Vec<f64> {
        (0..x.len())
            .map(|i| {
                let line = line_of(i, shape, axis);
                let z: Vec<f64> = line.iter().map(|&j| x[j] / t).collect();
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
                let zi = x[i] / t - m;
                if log {
                    zi - s.ln()
                } else {
                    zi.exp() / s
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn softmax_forward_backward(
            (shape, x, dy) in shape_vals(3, 4),
            axis_pick in 0usize..6,
            t_pick in 0usize..4,
            log: bool,
        ) {
            let nd = shape.len() as isize;
            let axis = (axis_pick as isize % (2 * nd)) - nd; // -nd..nd
            let ax = if axis < 0 { (axis + nd) as usize } else { axis as usize };
            let temperature = [None, Some(0.5), Some(2.0), Some(-1.5)][t_pick];
            let t = temperature.unwrap_or(1.0);
            let xa = arr(&x, &shape);
            let y = softmax_fwd(&xa, axis, temperature, log).unwrap();
            let want = softmax_ref(&x, &shape, ax, t, log);
            assert_close(&y.to_f64_vec(), &want, 1e-13, "forward")?;
            let dya = arr(&dy, &shape);
            let dx = softmax_bwd(&y, &dya, axis, temperature, log).unwrap();
            fd_check(
                std::slice::from_ref(&xa),
                &dy,
                &|ins| softmax_fwd(&ins[0], axis, temperature, log).unwrap(),
                &[Some(&dx)],
            )?;
            let y32 = softmax_fwd(&cast(&xa, DType::Float32), axis, temperature, log).unwrap();
            assert_close(&y32.to_f64_vec(), &want, 2e-6, "f32 forward")?;
            let dx32 = softmax_bwd(&y32, &cast(&dya, DType::Float32), axis, temperature, log).unwrap();
            assert_close(&dx32.to_f64_vec(), &dx.to_f64_vec(), 2e-5, "f32 backward")?;
        }
    }

    #[test]
    fn softmax_matches_mxnet_and_is_stable() {
        // Values from MXNet 1.9.1: softmax / log_softmax of [1, 2, 3] at temperature 2 and
        // their gradients for dy = [1, 0, 0].
        let x = arr(&[1.0, 2.0, 3.0], &[1, 3]);
        let dy = arr(&[1.0, 0.0, 0.0], &[1, 3]);
        let y = softmax_fwd(&x, -1, Some(2.0), false).unwrap();
        assert_close(
            &y.to_f64_vec(),
            &[0.18632373, 0.3071959, 0.5064804],
            1e-7,
            "y",
        )
        .unwrap();
        let dx = softmax_bwd(&y, &dy, -1, Some(2.0), false).unwrap();
        assert_close(
            &dx.to_f64_vec(),
            &[0.0758036, -0.02861894, -0.04718466],
            1e-7,
            "dx",
        )
        .unwrap();
        let y = softmax_fwd(&x, 1, Some(2.0), true).unwrap();
        assert_close(
            &y.to_f64_vec(),
            &[-1.6802697, -1.1802697, -0.68026966],
            1e-7,
            "ly",
        )
        .unwrap();
        let dx = softmax_bwd(&y, &dy, 1, Some(2.0), true).unwrap();
        assert_close(
            &dx.to_f64_vec(),
            &[0.40683815, -0.15359794, -0.2532402],
            1e-7,
            "ldx",
        )
        .unwrap();
        // No overflow for large inputs, f32 included.
        let big = NDArray::from_slice(&[1000.0f32, 1001.0, 1002.0], &[3], cpu()).unwrap();
        let y = softmax_fwd(&big, 0, None, false).unwrap().to_f64_vec();
        assert!(y.iter().all(|v| v.is_finite()) && (y.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        let ly = softmax_fwd(&big, 0, None, true).unwrap().to_f64_vec();
        assert!(ly.iter().all(|v| v.is_finite()));
        // Errors.
        assert!(matches!(
            softmax_fwd(&x, 2, None, false),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            softmax_fwd(&x, -3, None, false),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            softmax_fwd(&x, -1, Some(0.0), false),
            Err(Error::InvalidArgument { .. })
        ));
        let s = NDArray::scalar(1.0f64, cpu()).unwrap();
        assert!(matches!(
            softmax_fwd(&s, 0, None, false),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            softmax_bwd(&y_of(&x), &arr(&[1.0], &[1]), -1, None, false),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    fn y_of(x: &NDArray) -> NDArray {
        softmax_fwd(x, -1, None, false).unwrap()
    }

    #[test]
    fn softmax_large_rows_in_parallel() {
        // Over the parallel threshold, along the last and a middle axis.
        let shape = [40, 30, 70];
        let n: usize = shape.iter().product();
        let x: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f64 / 250.0 - 2.0)
            .collect();
        let xa = arr(&x, &shape);
        for axis in [2usize, 1] {
            let y = softmax_fwd(&xa, axis as isize, None, false).unwrap();
            let want = softmax_ref(&x, &shape, axis, 1.0, false);
            assert_close(&y.to_f64_vec(), &want, 1e-13, "large").unwrap();
        }
    }

    // ------------------------------------------------------------------ Dropout

    #[test]
    fn dropout_mask_values_and_rate() {
        for dt in [DType::Float32, DType::Float64, DType::Float16] {
            let p = 0.25;
            let m = dropout_mask(&[400, 250], p, dt, cpu()).unwrap();
            assert_eq!((m.shape(), m.dtype()), (&[400usize, 250][..], dt));
            let v = m.to_f64_vec();
            let scale = 1.0 / (1.0 - p);
            let tol = if dt == DType::Float16 { 1e-3 } else { 1e-6 };
            assert!(
                v.iter().all(|&x| x == 0.0 || (x - scale).abs() < tol),
                "{dt}"
            );
            let kept = v.iter().filter(|&&x| x != 0.0).count() as f64 / v.len() as f64;
            assert!((kept - 0.75).abs() < 0.01, "{dt}: kept {kept}");
        }
        let ones = dropout_mask(&[3, 2], 0.0, DType::Float32, cpu()).unwrap();
        assert_eq!(ones.to_vec::<f32>().unwrap(), vec![1.0; 6]);
    }

    #[test]
    fn dropout_mask_is_reproducible_with_seed() {
        // Other tests may draw between seed() and our draw; a clean repetition must exist.
        let draw = || {
            crate::random::seed(1234);
            dropout_mask(&[64], 0.5, DType::Float32, cpu())
                .unwrap()
                .to_f64_vec()
        };
        let ok = (0..50).any(|_| draw() == draw());
        assert!(ok, "two draws after the same seed never matched");
    }

    #[test]
    fn dropout_mask_errors() {
        for p in [1.0, -0.1, 1.5, f64::NAN] {
            assert!(matches!(
                dropout_mask(&[2], p, DType::Float32, cpu()),
                Err(Error::InvalidArgument { .. })
            ));
        }
        assert!(matches!(
            dropout_mask(&[2], 0.5, DType::Int32, cpu()),
            Err(Error::UnsupportedDType { .. })
        ));
    }

    // ------------------------------------------------------------------ Embedding

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn embedding_forward_backward(
            input_dim in 1usize..5,
            od in 1usize..4,
            dshape in prop::collection::vec(1usize..4, 1..3),
            raw in prop::collection::vec(-2.0..7.0f64, 9),
            wv in prop::collection::vec(-2.0..2.0f64, 20),
            dyv in prop::collection::vec(-2.0..2.0f64, 36),
        ) {
            let n: usize = dshape.iter().product();
            let idx: Vec<f64> = raw.iter().cycle().take(n).cloned().collect();
            let data = arr(&idx, &dshape);
            let w = arr(&wv[..input_dim * od], &[input_dim, od]);
            let y = embedding_fwd(&data, &w).unwrap();
            let mut oshape = dshape.clone();
            oshape.push(od);
            prop_assert_eq!(y.shape(), oshape.as_slice());
            let clip = |v: f64| (v.trunc().max(0.0) as usize).min(input_dim - 1);
            let want: Vec<f64> = idx
                .iter()
                .flat_map(|&v| (0..od).map(move |k| (v, k)))
                .map(|(v, k)| wv[clip(v) * od + k])
                .collect();
            assert_close(&y.to_f64_vec(), &want, 0.0, "forward")?;
            let dy = &dyv[..n * od];
            let dw = embedding_bwd(&data, &arr(dy, &oshape), input_dim).unwrap();
            fd_check(
                std::slice::from_ref(&w),
                dy,
                &|ins| embedding_fwd(&data, &ins[0]).unwrap(),
                &[Some(&dw)],
            )?;
            // Integer indices give the same result.
            let di = cast(&data, DType::Int64);
            assert_close(&embedding_fwd(&di, &w).unwrap().to_f64_vec(), &want, 0.0, "int")?;
            let dw32 = embedding_bwd(&di, &cast(&arr(dy, &oshape), DType::Float32), input_dim)
                .unwrap();
            prop_assert_eq!(dw32.dtype(), DType::Float32);
            assert_close(&dw32.to_f64_vec(), &dw.to_f64_vec(), 1e-6, "f32 backward")?;
        }
    }

    #[test]
    fn embedding_clips_like_mxnet() {
        // MXNet 1.9.1: indices [-1, 1.7, 5, -0.5, 3.9] into a (4, 2) weight; dy = ones.
        let w = arr(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], &[4, 2]);
        let d = arr(&[-1.0, 1.7, 5.0, -0.5, 3.9], &[5]);
        let y = embedding_fwd(&d, &w).unwrap();
        assert_eq!(
            y.to_f64_vec(),
            vec![0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 0.0, 1.0, 6.0, 7.0]
        );
        let dw = embedding_bwd(&d, &arr(&[1.0; 10], &[5, 2]), 4).unwrap();
        assert_eq!(
            dw.to_f64_vec(),
            vec![2.0, 2.0, 1.0, 1.0, 0.0, 0.0, 2.0, 2.0]
        );
        assert!(matches!(
            embedding_fwd(&d, &arr(&[0.0; 4], &[4])),
            Err(Error::InvalidShape { .. })
        ));
        assert!(matches!(
            embedding_bwd(&d, &arr(&[1.0; 8], &[4, 2]), 4),
            Err(Error::ShapeMismatch { .. })
        ));
        let wi = NDArray::ones(&[4, 2], DType::Int32, cpu()).unwrap();
        assert_eq!(embedding_fwd(&d, &wi).unwrap().dtype(), DType::Int32);
        assert!(matches!(
            embedding_bwd(&d, &NDArray::ones(&[5, 2], DType::Int32, cpu()).unwrap(), 4),
            Err(Error::UnsupportedDType { .. })
        ));
        assert!(matches!(
            embedding_fwd(&d.copy_to(Context::cpu(1)).unwrap(), &w),
            Err(Error::ContextMismatch { .. })
        ));
    }

    // ------------------------------------------------------------------ BatchNorm

    /// Plain batch norm: (y, mean, var (biased)) over every axis but `axis`.
    fn bn_ref(
        x: &[f64],
        shape: &[usize],
        axis: usize,
        gamma: &[f64],
        beta: &[f64],
        stats: Option<(&[f64], &[f64])>,
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let c = shape[axis];
        let ch = |i: usize| unravel(i, shape)[axis];
        let (mean, var) = match stats {
            Some((m, v)) => (m.to_vec(), v.to_vec()),
            None => {
                let mut mean = vec![0.0; c];
                let mut cnt = vec![0.0; c];
                for (i, &v) in x.iter().enumerate() {
                    mean[ch(i)] += v;
                    cnt[ch(i)] += 1.0;
                }
                for j in 0..c {
                    mean[j] /= cnt[j];
                }
                let mut var = vec![0.0; c];
                for (i, &v) in x.iter().enumerate() {
                    var[ch(i)] += (v - mean[ch(i)]).powi(2) / cnt[ch(i)];
                }
                (mean, var)
            }
        };
        let y = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let j = ch(i);
                (v - mean[j]) / (var[j] + eps).sqrt() * gamma[j] + beta[j]
            })
            .collect();
        (y, mean, var)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn batch_norm_forward_backward(
            (shape, x, dy) in shape_vals(4, 3).prop_filter("ndim >= 2", |(s, _, _)| s.len() >= 2),
            axis_pick in 0usize..4,
            mode in 0usize..3,
            fix_gamma: bool,
            pv in prop::collection::vec(0.2..1.5f64, 12),
        ) {
            let axis = axis_pick % shape.len();
            let c = shape[axis];
            let (training, use_global_stats) = [(true, false), (false, false), (true, true)][mode];
            let use_batch = training && !use_global_stats;
            let eps = 1e-3;
            let momentum = 0.9;
            let (gv, bv, rmv, rvv) = (&pv[..c], &pv[3..3 + c], &pv[6..6 + c], &pv[9..9 + c]);
            let (xa, ga, ba) = (arr(&x, &shape), arr(gv, &[c]), arr(bv, &[c]));
            let (rm, rv) = (arr(rmv, &[c]), arr(rvv, &[c]));
            let out = batch_norm_fwd(
                &xa, &ga, &ba, &rm, &rv, eps, momentum, axis, fix_gamma, use_global_stats, training,
            )
            .unwrap();
            let ones = vec![1.0; c];
            let g_used = if fix_gamma { &ones[..] } else { gv };
            let (want, bmean, bvar) = bn_ref(
                &x, &shape, axis, g_used, bv, (!use_batch).then_some((rmv, rvv)), eps,
            );
            assert_close(&out.y.to_f64_vec(), &want, 1e-12, "forward")?;
            assert_close(&out.mean.to_f64_vec(), &bmean, 1e-13, "mean")?;
            let inv: Vec<f64> = bvar.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
            assert_close(&out.invstd.to_f64_vec(), &inv, 1e-12, "invstd")?;
            // Running statistics: updated with the biased batch variance, only with batch stats.
            let (new_rm, new_rv): (Vec<f64>, Vec<f64>) = if use_batch {
                (
                    rmv.iter().zip(&bmean).map(|(r, b)| r * momentum + b * (1.0 - momentum)).collect(),
                    rvv.iter().zip(&bvar).map(|(r, b)| r * momentum + b * (1.0 - momentum)).collect(),
                )
            } else {
                (rmv.to_vec(), rvv.to_vec())
            };
            assert_close(&rm.to_f64_vec(), &new_rm, 1e-13, "running_mean")?;
            assert_close(&rv.to_f64_vec(), &new_rv, 1e-13, "running_var")?;
            prop_assert_eq!(ga.to_f64_vec(), gv.to_vec()); // gamma never written

            let dya = arr(&dy, &shape);
            let (dx, dgamma, dbeta) =
                batch_norm_bwd(&xa, &ga, &out, &dya, axis, fix_gamma, use_batch).unwrap();
            if fix_gamma {
                prop_assert!(dgamma.to_f64_vec().iter().all(|&v| v == 0.0));
            }
            fd_check(
                &[xa.clone(), ga.clone(), ba.clone()],
                &dy,
                &|ins| {
                    let (rm, rv) = (arr(rmv, &[c]), arr(rvv, &[c]));
                    batch_norm_fwd(
                        &ins[0], &ins[1], &ins[2], &rm, &rv, eps, momentum, axis, fix_gamma,
                        use_global_stats, training,
                    )
                    .unwrap()
                    .y
                },
                &[Some(&dx), Some(&dgamma), Some(&dbeta)],
            )?;

            // f32 against f64.
            let f = |a: &NDArray| cast(a, DType::Float32);
            let (rm32, rv32) = (arr(rmv, &[c]), arr(rvv, &[c]));
            let out32 = batch_norm_fwd(
                &f(&xa), &f(&ga), &f(&ba), &f(&rm32), &f(&rv32), eps, momentum, axis, fix_gamma,
                use_global_stats, training,
            )
            .unwrap();
            assert_close(&out32.y.to_f64_vec(), &want, 1e-5, "f32 forward")?;
            let (dx32, dg32, db32) =
                batch_norm_bwd(&f(&xa), &f(&ga), &out32, &f(&dya), axis, fix_gamma, use_batch)
                    .unwrap();
            assert_close(&dx32.to_f64_vec(), &dx.to_f64_vec(), 1e-4, "f32 dx")?;
            assert_close(&dg32.to_f64_vec(), &dgamma.to_f64_vec(), 1e-4, "f32 dgamma")?;
            assert_close(&db32.to_f64_vec(), &dbeta.to_f64_vec(), 1e-5, "f32 dbeta")?;
        }
    }

    #[test]
    fn batch_norm_large_and_half() {
        // Over the parallel threshold, channels in the middle and last.
        for (shape, axis) in [(vec![64usize, 16, 80], 1usize), (vec![2048, 48], 1)] {
            let n: usize = shape.iter().product();
            let c = shape[axis];
            let x: Vec<f64> = (0..n).map(|i| ((i * 7919) % 997) as f64 / 300.0).collect();
            let (ga, ba) = (arr(&vec![1.5; c], &[c]), arr(&vec![0.25; c], &[c]));
            let (rm, rv) = (arr(&vec![0.0; c], &[c]), arr(&vec![1.0; c], &[c]));
            let xa = arr(&x, &shape);
            let out = batch_norm_fwd(&xa, &ga, &ba, &rm, &rv, 1e-5, 0.9, axis, false, false, true)
                .unwrap();
            let (want, _, _) = bn_ref(&x, &shape, axis, &vec![1.5; c], &vec![0.25; c], None, 1e-5);
            assert_close(&out.y.to_f64_vec(), &want, 1e-11, "large").unwrap();
            // float16 data with float32 parameters (MXNet's rule for half precision).
            let f = |a: &NDArray| cast(a, DType::Float32);
            let (rm, rv) = (arr(&vec![0.0; c], &[c]), arr(&vec![1.0; c], &[c]));
            let out16 = batch_norm_fwd(
                &cast(&xa, DType::Float16),
                &f(&ga),
                &f(&ba),
                &f(&rm),
                &f(&rv),
                1e-5,
                0.9,
                axis,
                false,
                false,
                true,
            )
            .unwrap();
            assert_eq!(out16.y.dtype(), DType::Float16);
            assert_eq!(out16.mean.dtype(), DType::Float32);
            for (g, w) in out16.y.to_f64_vec().iter().zip(&want) {
                assert!((g - w).abs() < 2e-2 * w.abs().max(1.0), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn batch_norm_errors() {
        let x = arr(&[0.0; 12], &[2, 3, 2]);
        let p3 = arr(&[1.0; 3], &[3]);
        let p2 = arr(&[1.0; 2], &[2]);
        let bn = |x: &NDArray, g: &NDArray, axis: usize| {
            batch_norm_fwd(x, g, &p3, &p3, &p3, 1e-5, 0.9, axis, false, false, true)
        };
        assert!(matches!(bn(&x, &p2, 1), Err(Error::ShapeMismatch { .. })));
        assert!(matches!(bn(&x, &p3, 3), Err(Error::InvalidArgument { .. })));
        assert!(matches!(
            bn(&x, &cast(&p3, DType::Float32), 1),
            Err(Error::DTypeMismatch { .. })
        ));
        let xi = cast(&x, DType::Int32);
        assert!(matches!(
            bn(&xi, &p3, 1),
            Err(Error::UnsupportedDType { .. })
        ));
        let empty = arr(&[], &[0, 3]);
        assert!(matches!(
            bn(&empty, &p3, 1),
            Err(Error::InvalidShape { .. })
        ));
        assert!(matches!(
            batch_norm_fwd(&x, &p3, &p3, &p3, &p3, -1.0, 0.9, 1, false, false, true),
            Err(Error::InvalidArgument { .. })
        ));
        let out = bn(&x, &p3, 1).unwrap();
        assert!(matches!(
            batch_norm_bwd(&x, &p3, &out, &arr(&[0.0; 6], &[2, 3]), 1, false, true),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    // ------------------------------------------------------------------ LayerNorm

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn layer_norm_forward_backward(
            (shape, x, dy) in shape_vals(3, 4),
            axis_pick in 0usize..6,
            pv in prop::collection::vec(0.2..1.5f64, 8),
        ) {
            let nd = shape.len() as isize;
            let axis = (axis_pick as isize % (2 * nd)) - nd;
            let ax = if axis < 0 { (axis + nd) as usize } else { axis as usize };
            let c = shape[ax];
            let eps = 1e-3;
            let (gv, bv) = (&pv[..c], &pv[4..4 + c]);
            let (xa, ga, ba) = (arr(&x, &shape), arr(gv, &[c]), arr(bv, &[c]));
            let (y, mean, inv) = layer_norm_fwd(&xa, &ga, &ba, axis, eps).unwrap();
            let mut mshape = shape.clone();
            mshape[ax] = 1;
            prop_assert_eq!(mean.shape(), mshape.as_slice());
            let mut want = vec![0.0; x.len()];
            let mut want_mean = vec![0.0; mean.size()];
            let mut want_inv = vec![0.0; mean.size()];
            for i in 0..x.len() {
                let line = line_of(i, &shape, ax);
                let m = line.iter().map(|&j| x[j]).sum::<f64>() / c as f64;
                let v = line.iter().map(|&j| (x[j] - m).powi(2)).sum::<f64>() / c as f64;
                let s = 1.0 / (v + eps).sqrt();
                let ch = unravel(i, &shape)[ax];
                want[i] = (x[i] - m) * s * gv[ch] + bv[ch];
                let mut idx = unravel(i, &shape);
                idx[ax] = 0;
                want_mean[ravel(&idx, &mshape)] = m;
                want_inv[ravel(&idx, &mshape)] = s;
            }
            assert_close(&y.to_f64_vec(), &want, 1e-12, "forward")?;
            assert_close(&mean.to_f64_vec(), &want_mean, 1e-13, "mean")?;
            assert_close(&inv.to_f64_vec(), &want_inv, 1e-12, "invstd")?;
            let dya = arr(&dy, &shape);
            let (dx, dg, db) = layer_norm_bwd(&xa, &ga, &mean, &inv, &dya, axis).unwrap();
            fd_check(
                &[xa.clone(), ga.clone(), ba.clone()],
                &dy,
                &|ins| layer_norm_fwd(&ins[0], &ins[1], &ins[2], axis, eps).unwrap().0,
                &[Some(&dx), Some(&dg), Some(&db)],
            )?;
            let f = |a: &NDArray| cast(a, DType::Float32);
            let (y32, m32, i32_) = layer_norm_fwd(&f(&xa), &f(&ga), &f(&ba), axis, eps).unwrap();
            assert_close(&y32.to_f64_vec(), &want, 1e-5, "f32 forward")?;
            let (dx32, dg32, db32) =
                layer_norm_bwd(&f(&xa), &f(&ga), &m32, &i32_, &f(&dya), axis).unwrap();
            assert_close(&dx32.to_f64_vec(), &dx.to_f64_vec(), 1e-4, "f32 dx")?;
            assert_close(&dg32.to_f64_vec(), &dg.to_f64_vec(), 1e-4, "f32 dgamma")?;
            assert_close(&db32.to_f64_vec(), &db.to_f64_vec(), 1e-5, "f32 dbeta")?;
        }
    }

    #[test]
    fn layer_norm_large_and_errors() {
        let shape = [300usize, 256];
        let n = 300 * 256;
        let x: Vec<f64> = (0..n).map(|i| ((i * 7919) % 997) as f64 / 300.0).collect();
        let (ga, ba) = (arr(&vec![1.0; 256], &[256]), arr(&vec![0.0; 256], &[256]));
        let xa = arr(&x, &shape);
        let (y, mean, inv) = layer_norm_fwd(&xa, &ga, &ba, -1, 1e-5).unwrap();
        let y = y.to_f64_vec();
        for r in [0usize, 150, 299] {
            let row = &x[r * 256..(r + 1) * 256];
            let m = row.iter().sum::<f64>() / 256.0;
            let v = row.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 256.0;
            assert!((mean.to_f64_vec()[r] - m).abs() < 1e-12);
            assert!((inv.to_f64_vec()[r] - 1.0 / (v + 1e-5).sqrt()).abs() < 1e-10);
            assert!((y[r * 256 + 3] - (row[3] - m) / (v + 1e-5).sqrt()).abs() < 1e-11);
        }
        let dy = arr(&vec![0.5; n], &shape);
        let (_, dg, db) = layer_norm_bwd(&xa, &ga, &mean, &inv, &dy, -1).unwrap();
        assert_close(&db.to_f64_vec(), &vec![150.0; 256], 1e-12, "dbeta").unwrap();
        assert_eq!(dg.shape(), &[256]);
        // Errors.
        assert!(matches!(
            layer_norm_fwd(&xa, &arr(&[1.0; 3], &[3]), &ba, -1, 1e-5),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            layer_norm_fwd(&xa, &ga, &ba, 2, 1e-5),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            layer_norm_bwd(&xa, &ga, &inv, &arr(&[1.0; 300], &[300]), &dy, -1),
            Err(Error::ShapeMismatch { .. })
        ));
    }
}
