//! Shared pieces of the update kernels: the float trait they are generic over, MXNet's
//! clipping and sign functions, and access to the state slots.
//!
//! Every kernel is written once, generic over [`Real`], and instantiated for `f32` (computing
//! in single precision, as MXNet does for float32 weights) and `f64`. Option checks are hoisted
//! out of the element loops (const generic flags), and loops walk zipped slice iterators, so the
//! compiler vectorizes them.

use std::ops::{Add, Div, Mul, Neg, Sub};

/// The float types the kernels run on (`f32`, `f64`).
pub(crate) trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Send
    + Sync
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// `x` rounded to this type.
    fn of(x: f64) -> Self;
    /// Widened to `f64`.
    fn to_f64(self) -> f64;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `self` to the power `e`.
    fn powf(self, e: Self) -> Self;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline(always)]
    fn of(x: f64) -> f32 {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> f32 {
        f32::abs(self)
    }
    #[inline(always)]
    fn powf(self, e: f32) -> f32 {
        f32::powf(self, e)
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline(always)]
    fn of(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> f64 {
        f64::abs(self)
    }
    #[inline(always)]
    fn powf(self, e: f64) -> f64 {
        f64::powf(self, e)
    }
}

/// MXNet's `clip(x, bound)`: `bound` above it, `-bound` below `-bound`, else `x` (NaN stays
/// NaN, which `f32::clamp` / `min` / `max` would not preserve).
#[inline(always)]
pub(crate) fn clip<T: Real>(x: T, bound: T) -> T {
    if x > bound {
        bound
    } else if x < -bound {
        -bound
    } else {
        x
    }
}

/// MXNet's `sign`: 1, -1, or 0 (for 0 and NaN).
#[inline(always)]
pub(crate) fn sign<T: Real>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else if x < T::ZERO {
        -T::ONE
    } else {
        T::ZERO
    }
}

/// mshadow's `maximum(a, b)`: `a > b ? a : b`.
#[inline(always)]
pub(crate) fn maximum<T: Real>(a: T, b: T) -> T {
    if a > b {
        a
    } else {
        b
    }
}

/// The clipping bound an MXNet update **operator** applies: the Python side passes
/// `clip_gradient` only when it is truthy and the operator clips only when it is `>= 0`, so
/// clipping happens exactly for a positive bound.
#[inline]
pub(crate) fn op_clip(clip_gradient: Option<f64>) -> Option<f64> {
    clip_gradient.filter(|c| *c > 0.0)
}

/// The clipping bound of the optimizers MXNet writes as NDArray arithmetic in Python (AdaGrad,
/// AdaDelta, Adamax, Nadam): `clip(grad, -c, c)` whenever `clip_gradient is not None`.
#[inline]
pub(crate) fn py_clip(clip_gradient: Option<f64>) -> Option<f64> {
    clip_gradient
}

/// The `N` state slots of a kernel call, checked against the weight's length.
///
/// # Panics
/// When the caller passes a different number of slots or a slot of another length (a bug in
/// the caller, not a user error: [`super::OptState`] and the Trainer create them from
/// `state_names()`).
pub(crate) fn slots<'a, 'b, T, const N: usize>(
    optimizer: &str,
    states: &'a mut [&'b mut [T]],
    len: usize,
) -> &'a mut [&'b mut [T]; N] {
    let n = states.len();
    match <&mut [&'b mut [T]; N]>::try_from(states) {
        Ok(a) => {
            for s in a.iter() {
                assert_eq!(
                    s.len(),
                    len,
                    "{optimizer}: a state slot has {} elements but the weight has {len}",
                    s.len()
                );
            }
            a
        }
        Err(_) => panic!("{optimizer}: the kernel needs {N} state slots but was given {n}"),
    }
}

/// Checks that weight and gradient have the same length.
///
/// # Panics
/// On a length mismatch (a caller bug; [`super::update_array`] checks shapes first).
#[inline]
pub(crate) fn check_len(optimizer: &str, weight: usize, grad: usize) {
    assert_eq!(
        weight, grad,
        "{optimizer}: weight has {weight} elements but the gradient has {grad}"
    );
}

/// Sum of squares, accumulated in `f64` (MXNet accumulates float32 sums in float32; the wider
/// sum differs from it only by MXNet's own rounding error).
pub(crate) fn sum_sq<T: Real>(x: &[T]) -> f64 {
    // Eight independent partial sums let the loop vectorize.
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            let v = c[k].to_f64();
            acc[k] += v * v;
        }
    }
    let mut s: f64 = acc.iter().sum();
    for v in rest {
        let v = v.to_f64();
        s += v * v;
    }
    s
}

/// Generates `step_f32` / `step_f64` of an `Optimizer` impl from a generic
/// `fn kernel<T: Real>(&self, &StepArgs, &mut [T], &[T], &mut [&mut [T]])`.
macro_rules! impl_steps {
    () => {
        fn step_f32(
            &self,
            args: &$crate::optimizer::StepArgs,
            weight: &mut [f32],
            grad: &[f32],
            states: &mut [&mut [f32]],
        ) {
            self.kernel::<f32>(args, weight, grad, states)
        }
        fn step_f64(
            &self,
            args: &$crate::optimizer::StepArgs,
            weight: &mut [f64],
            grad: &[f64],
            states: &mut [&mut [f64]],
        ) {
            self.kernel::<f64>(args, weight, grad, states)
        }
    };
}
pub(crate) use impl_steps;

/// Generates the builder methods for the shared options ([`super::OptimizerParams`]) of an
/// optimizer struct with a `params` field. `$overwrite_sched` says whether attaching a
/// scheduler sets its `base_lr` to the optimizer's learning rate (MXNet's rule whenever a
/// learning rate reaches `Optimizer.__init__`; Ftrl never passes one).
macro_rules! shared_builders {
    ($ty:ident, $overwrite_sched:expr) => {
        impl $ty {
            /// Sets the base learning rate (`learning_rate`).
            pub fn learning_rate(mut self, lr: f64) -> Self {
                self.params.learning_rate = lr;
                self
            }
            /// Sets the weight decay (`wd`).
            pub fn wd(mut self, wd: f64) -> Self {
                self.params.wd = wd;
                self
            }
            /// Sets the gradient multiplier applied before clipping (`rescale_grad`).
            pub fn rescale_grad(mut self, rescale_grad: f64) -> Self {
                self.params.rescale_grad = rescale_grad;
                self
            }
            /// Sets (or, with `None`, removes) the gradient clipping bound (`clip_gradient`).
            pub fn clip_gradient(mut self, clip: impl Into<Option<f64>>) -> Self {
                self.params.clip_gradient = clip.into();
                self
            }
            /// Keeps float32 master weights for float16 / bfloat16 weights
            /// (`multi_precision`).
            pub fn multi_precision(mut self, on: bool) -> Self {
                self.params.multi_precision = on;
                self
            }
            /// Sets the update count to start from (`begin_num_update`).
            pub fn begin_num_update(mut self, n: u64) -> Self {
                self.params.begin_num_update = n;
                self.params.num_update = self.params.num_update.max(n);
                self
            }
            /// Attaches a learning-rate schedule. As MXNet does when `learning_rate` reaches
            /// the optimizer (always, for optimizers whose MXNet default learning rate is not
            /// `None`), the schedule's `base_lr` is set to this optimizer's current
            /// learning rate (except for Ftrl, which never passes it on): build the optimizer
            /// with the rate you want first. [`create`](crate::optimizer::create) follows
            /// MXNet's keyword rules exactly.
            pub fn lr_scheduler(
                mut self,
                mut scheduler: Box<dyn $crate::optimizer::LrScheduler>,
            ) -> Self {
                if $overwrite_sched {
                    scheduler.set_base_lr(self.params.learning_rate);
                } else {
                    let _ = &mut scheduler;
                }
                self.params.lr_scheduler = Some(scheduler);
                self
            }
        }
    };
}
pub(crate) use shared_builders;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_matches_mxnet_including_nan() {
        assert_eq!(clip(3.0f32, 0.5), 0.5);
        assert_eq!(clip(-3.0f32, 0.5), -0.5);
        assert_eq!(clip(0.25f64, 0.5), 0.25);
        assert!(clip(f32::NAN, 0.5).is_nan());
        assert_eq!(sign(-2.0f32), -1.0);
        assert_eq!(sign(0.0f64), 0.0);
        assert_eq!(sign(f32::NAN), 0.0);
        assert!(maximum(1.0f32, f32::NAN).is_nan());
        assert_eq!(maximum(f32::NAN, 1.0f32), 1.0);
    }

    #[test]
    fn op_clip_only_for_positive_bounds() {
        assert_eq!(op_clip(None), None);
        assert_eq!(op_clip(Some(0.0)), None);
        assert_eq!(op_clip(Some(-1.0)), None);
        assert_eq!(op_clip(Some(2.0)), Some(2.0));
        assert_eq!(py_clip(Some(0.0)), Some(0.0));
    }

    #[test]
    fn sum_sq_of_odd_length() {
        let x: Vec<f32> = (1..=11).map(|v| v as f32).collect();
        assert_eq!(sum_sq(&x), (1..=11).map(|v| (v * v) as f64).sum::<f64>());
    }

    #[test]
    #[should_panic(expected = "needs 2 state slots")]
    fn wrong_slot_count_panics() {
        let mut a = [0.0f32; 3];
        let mut s: Vec<&mut [f32]> = vec![&mut a];
        let _ = slots::<f32, 2>("adam", &mut s, 3);
    }
}
