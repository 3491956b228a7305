//! Gradients of the basic operators: how each public operator records itself on the autograd
//! graph (see [`crate::autograd`]) and the backward formulas.
//!
//! Every public operator computes its result with an untracked kernel, then calls one of the
//! `record_*` functions here, which attach a backward closure only when
//! [`tracked`](crate::autograd::tracked) holds (recording, and an input takes part in
//! differentiation) — outside recording the cost is one thread-local read.

use smallvec::{smallvec, SmallVec};

use super::elementwise::Bin;
use super::linalg::gemm_into;
use crate::autograd::{record_op, tracked, Grad, GradDest};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nd::{par, NDArray};

type Grads = SmallVec<[Grad; 3]>;

/// `f(x[i], dy[i])` for float arrays of one shape (f16/bf16 computed in f32). The backward
/// kernel of elementwise functions.
pub(crate) fn zip_float(
    op: &'static str,
    x: &NDArray,
    dy: &NDArray,
    f32f: impl Fn(f32, f32) -> f32 + Sync,
    f64f: impl Fn(f64, f64) -> f64 + Sync,
) -> Result<NDArray> {
    debug_assert_eq!(x.shape(), dy.shape());
    let out = NDArray::for_overwrite(x.shape(), x.dtype(), x.context())?;
    match x.dtype() {
        DType::Float32 => super::read2::<f32, _>(x, dy, |a, b| {
            out.write_slice::<f32, _>(|o| par::zip_map(a, b, o, &f32f))
        }),
        DType::Float64 => super::read2::<f64, _>(x, dy, |a, b| {
            out.write_slice::<f64, _>(|o| par::zip_map(a, b, o, &f64f))
        }),
        DType::Float16 => super::read2::<half::f16, _>(x, dy, |a, b| {
            out.write_slice::<half::f16, _>(|o| {
                par::zip_map(a, b, o, |p, q| {
                    half::f16::from_f32(f32f(p.to_f32(), q.to_f32()))
                })
            })
        }),
        DType::BFloat16 => super::read2::<half::bf16, _>(x, dy, |a, b| {
            out.write_slice::<half::bf16, _>(|o| {
                par::zip_map(a, b, o, |p, q| {
                    half::bf16::from_f32(f32f(p.to_f32(), q.to_f32()))
                })
            })
        }),
        dtype => {
            return Err(Error::UnsupportedDType {
                op,
                dtype,
                hint: "gradients are defined for float32, float64, float16 and bfloat16".into(),
            })
        }
    }
    Ok(out)
}

pub(crate) use super::shape_ops::{broadcast_to, sum_to_shape};

// ------------------------------------------------------------------ elementwise binary

/// Records a broadcasting binary operation `out = a op b`.
pub(crate) fn record_binary(op: Bin, a: &NDArray, b: &NDArray, out: NDArray) -> NDArray {
    if !tracked(&[a, b]) {
        return out;
    }
    let (sa, sb): (Vec<usize>, Vec<usize>) = (a.shape().to_vec(), b.shape().to_vec());
    let (ta, tb) = (a.is_tracked(), b.is_tracked());
    let (ad, bd, od) = (a.detach(), b.detach(), out.detach());
    record_op(op.name(), &[a, b], out, move |dy, _| {
        let ga = |g: NDArray| -> Result<Grad> { Ok(Grad::Value(sum_to_shape(&g, &sa)?)) };
        let gb = |g: NDArray| -> Result<Grad> { Ok(Grad::Value(sum_to_shape(&g, &sb)?)) };
        let none = || Ok(Grad::None);
        let (da, db) = match op {
            Bin::Add => (
                if ta { ga(dy.clone()) } else { none() },
                if tb { gb(dy.clone()) } else { none() },
            ),
            Bin::Sub => (
                if ta { ga(dy.clone()) } else { none() },
                if tb { gb(dy.neg()?) } else { none() },
            ),
            Bin::Mul => (
                if ta {
                    ga(super::mul_untracked(dy, &bd)?)
                } else {
                    none()
                },
                if tb {
                    gb(super::mul_untracked(dy, &ad)?)
                } else {
                    none()
                },
            ),
            Bin::Div => (
                if ta {
                    ga(super::div_untracked(dy, &bd)?)
                } else {
                    none()
                },
                // d(a/b)/db = -(a/b)/b
                if tb {
                    let t = super::div_untracked(&od, &bd)?;
                    gb(super::mul_untracked(dy, &t)?.neg()?)
                } else {
                    none()
                },
            ),
            Bin::Max | Bin::Min => {
                // The gradient goes to the operand that was selected (`a` on ties).
                let a_b = broadcast_to(&ad, od.shape())?;
                let mask_a = zip_float(
                    "maximum",
                    &a_b,
                    &od,
                    |x, o| (x == o) as u8 as f32,
                    |x, o| (x == o) as u8 as f64,
                )?;
                let g_a = super::mul_untracked(dy, &mask_a)?;
                let g_b = super::sub_untracked(dy, &g_a)?;
                (
                    if ta { ga(g_a) } else { none() },
                    if tb { gb(g_b) } else { none() },
                )
            }
        };
        Ok(smallvec![da?, db?])
    })
}

/// The scalar operations that record gradients.
#[derive(Clone, Copy)]
pub(crate) enum ScalarOp {
    /// `x + v`, `x - v`
    Shift,
    /// `v - x`
    RSub,
    /// `x * v`
    Mul(f64),
    /// `x / v`
    Div(f64),
    /// `v / x`
    RDiv,
    /// `max(x, v)`
    Max(f64),
    /// `min(x, v)`
    Min(f64),
}

/// Records `out = f(x, v)` for a scalar `v`.
pub(crate) fn record_scalar(
    name: &'static str,
    op: ScalarOp,
    x: &NDArray,
    out: NDArray,
) -> NDArray {
    if !tracked(&[x]) {
        return out;
    }
    let (xd, od) = (x.detach(), out.detach());
    record_op(name, &[x], out, move |dy, _| {
        let g = match op {
            ScalarOp::Shift => dy.clone(),
            ScalarOp::RSub => dy.neg()?,
            ScalarOp::Mul(v) => dy.mul_scalar(v)?,
            ScalarOp::Div(v) => dy.div_scalar(v)?,
            // d(v/x)/dx = -(v/x)/x
            ScalarOp::RDiv => {
                let t = super::div_untracked(&od, &xd)?;
                super::mul_untracked(dy, &t)?.neg()?
            }
            ScalarOp::Max(v) => zip_float(
                name,
                &xd,
                dy,
                move |x, g| if x as f64 >= v { g } else { 0.0 },
                move |x, g| {
                    if x >= v {
                        g
                    } else {
                        0.0
                    }
                },
            )?,
            ScalarOp::Min(v) => zip_float(
                name,
                &xd,
                dy,
                move |x, g| if x as f64 <= v { g } else { 0.0 },
                move |x, g| {
                    if x <= v {
                        g
                    } else {
                        0.0
                    }
                },
            )?,
        };
        Ok(smallvec![Grad::Value(g)])
    })
}

/// The unary functions that record gradients.
#[derive(Clone, Copy)]
pub(crate) enum UnaryOp {
    Neg,
    Abs,
    Square,
    Sqrt,
    Exp,
    Log,
    Clip(f64, f64),
    /// A copy (to another context or the same), `astype` back to the input's dtype.
    Copy,
}

/// Records `out = f(x)`.
pub(crate) fn record_unary(name: &'static str, op: UnaryOp, x: &NDArray, out: NDArray) -> NDArray {
    if !tracked(&[x]) {
        return out;
    }
    let (xd, od) = (x.detach(), out.detach());
    record_op(name, &[x], out, move |dy, _| {
        let g = match op {
            UnaryOp::Neg => dy.neg()?,
            UnaryOp::Abs => zip_float(
                name,
                &xd,
                dy,
                |x, g| {
                    if x > 0.0 {
                        g
                    } else if x < 0.0 {
                        -g
                    } else {
                        0.0
                    }
                },
                |x, g| {
                    if x > 0.0 {
                        g
                    } else if x < 0.0 {
                        -g
                    } else {
                        0.0
                    }
                },
            )?,
            UnaryOp::Square => zip_float(name, &xd, dy, |x, g| 2.0 * x * g, |x, g| 2.0 * x * g)?,
            UnaryOp::Sqrt => zip_float(name, &od, dy, |y, g| g / (2.0 * y), |y, g| g / (2.0 * y))?,
            UnaryOp::Exp => super::mul_untracked(dy, &od)?,
            UnaryOp::Log => super::div_untracked(dy, &xd)?,
            UnaryOp::Clip(lo, hi) => zip_float(
                name,
                &xd,
                dy,
                move |x, g| {
                    if (x as f64) >= lo && (x as f64) <= hi {
                        g
                    } else {
                        0.0
                    }
                },
                move |x, g| if x >= lo && x <= hi { g } else { 0.0 },
            )?,
            UnaryOp::Copy => dy
                .as_in_context(xd.context())?
                .astype_untracked(xd.dtype())?,
        };
        Ok(smallvec![Grad::Value(g)])
    })
}

// ------------------------------------------------------------------ shape

/// Records a reshape view (`out` shares memory with `x`).
pub(crate) fn record_reshape(x: &NDArray, out: NDArray) -> NDArray {
    if !tracked(&[x]) {
        return out;
    }
    let shape = x.shape().to_vec();
    record_op("reshape", &[x], out, move |dy, _| {
        Ok(smallvec![Grad::Value(dy.reshape_view(&shape)?)])
    })
}

// ------------------------------------------------------------------ reductions

/// Records `out = sum/mean of x over axes` (`axes` empty = all). `scale` is 1 for a sum and
/// 1/count for a mean; `keep_shape` is the result's shape with reduced axes kept as 1.
pub(crate) fn record_reduce(
    name: &'static str,
    x: &NDArray,
    keep_shape: Vec<usize>,
    scale: f64,
    out: NDArray,
) -> NDArray {
    if !tracked(&[x]) {
        return out;
    }
    let shape = x.shape().to_vec();
    record_op(name, &[x], out, move |dy, _| {
        let d = dy.reshape_view(&keep_shape)?;
        let d = if scale != 1.0 {
            d.mul_scalar(scale)?
        } else {
            d
        };
        Ok(smallvec![Grad::Value(broadcast_to(&d, &shape)?)])
    })
}

// ------------------------------------------------------------------ matrix products

/// The 2-D view `(rows, cols)` of an operand of `dot_t`: not transposed, the last axis is the
/// contracted one for `a` and the first for `b`.
fn mat_view(x: &NDArray, split_after_first: bool) -> Result<NDArray> {
    let s = x.shape();
    let (r, c) = if split_after_first {
        (s[0], s[1..].iter().product())
    } else {
        (s[..s.len() - 1].iter().product(), s[s.len() - 1])
    };
    x.reshape_view(&[r, c])
}

/// Stores `op(a)·op(b)` into `dest` when one was offered (and does not alias an operand),
/// otherwise returns it as a new array of shape `shape`.
fn product_into(
    a: &NDArray,
    b: &NDArray,
    ta: bool,
    tb: bool,
    shape: &[usize],
    dest: Option<&GradDest>,
) -> Result<Grad> {
    if let Some(d) = dest {
        if !d.buf.shares_memory_with(a) && !d.buf.shares_memory_with(b) {
            let rows = a.shape()[if ta { 1 } else { 0 }];
            let cols = b.shape()[if tb { 0 } else { 1 }];
            let out = d.buf.reshape_view(&[rows, cols])?;
            gemm_into(a, b, ta, tb, &out, d.accumulate)?;
            return Ok(Grad::Written);
        }
    }
    let out = super::dot_t_untracked(a, b, ta, tb)?;
    Ok(Grad::Value(out.reshape_view(shape)?))
}

/// Records `out = dot_t(a, b, ta, tb)`.
pub(crate) fn record_dot(a: &NDArray, b: &NDArray, ta: bool, tb: bool, out: NDArray) -> NDArray {
    if !tracked(&[a, b]) {
        return out;
    }
    let (track_a, track_b) = (a.is_tracked(), b.is_tracked());
    let (ad, bd) = (a.detach(), b.detach());
    record_op("dot", &[a, b], out, move |dy, dests| {
        // 2-D views: A is (m,k) or stored (k,m) when ta; B is (k,n) or stored (n,k) when tb.
        let a2 = mat_view(&ad, ta)?;
        let b2 = mat_view(&bd, !tb)?;
        let m = if ta { a2.shape()[1] } else { a2.shape()[0] };
        let n = if tb { b2.shape()[0] } else { b2.shape()[1] };
        let d2 = dy.reshape_view(&[m, n])?;
        let ga = if !track_a {
            Grad::None
        } else if ta {
            // dA (k,m) = op(B) · dCᵀ
            product_into(&b2, &d2, tb, true, ad.shape(), dests[0].as_ref())?
        } else {
            // dA (m,k) = dC · op(B)ᵀ
            product_into(&d2, &b2, false, !tb, ad.shape(), dests[0].as_ref())?
        };
        let gb = if !track_b {
            Grad::None
        } else if tb {
            // dB (n,k) = dCᵀ · op(A)
            product_into(&d2, &a2, true, ta, bd.shape(), dests[1].as_ref())?
        } else {
            // dB (k,n) = op(A)ᵀ · dC
            product_into(&a2, &d2, !ta, false, bd.shape(), dests[1].as_ref())?
        };
        Ok(smallvec![ga, gb])
    })
}

/// Records `out = fully_connected(x, weight, bias)`; `x_mat` is the `(rows, in_units)` matrix
/// shape `x` is seen as.
pub(crate) fn record_fully_connected(
    x: &NDArray,
    x_mat: [usize; 2],
    weight: &NDArray,
    bias: Option<&NDArray>,
    out: NDArray,
) -> Result<NDArray> {
    let inputs: SmallVec<[&NDArray; 3]> = match bias {
        Some(b) => smallvec![x, weight, b],
        None => smallvec![x, weight],
    };
    if !tracked(&inputs) {
        return Ok(out);
    }
    let (tx, tw, tb) = (
        x.is_tracked(),
        weight.is_tracked(),
        bias.is_some_and(NDArray::is_tracked),
    );
    let xshape = x.shape().to_vec();
    let (xd, wd) = (x.reshape_view(&x_mat)?, weight.detach());
    let has_bias = bias.is_some();
    Ok(record_op(
        "fully_connected",
        &inputs,
        out,
        move |dy, dests| {
            let hidden = wd.shape()[0];
            let d2 = dy.reshape_view(&[xd.shape()[0], hidden])?;
            let gx = if tx {
                // dX = dY · W
                let g = super::dot_t_untracked(&d2, &wd, false, false)?;
                Grad::Value(g.reshape_view(&xshape)?)
            } else {
                Grad::None
            };
            let gw = if tw {
                // dW = dYᵀ · X
                product_into(&d2, &xd, true, false, wd.shape(), dests[1].as_ref())?
            } else {
                Grad::None
            };
            let mut grads: Grads = smallvec![gx, gw];
            if has_bias {
                grads.push(if tb {
                    Grad::Value(d2.sum_axis_untracked(&[0], false)?)
                } else {
                    Grad::None
                });
            }
            Ok(grads)
        },
    ))
}
