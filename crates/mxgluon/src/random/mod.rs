//! Random numbers: a seeded, counter-based (Philox4x32-10) generator whose draws do not depend
//! on the thread count.
//!
//! The generator state is a 64-bit key (the seed) and a global block counter. Every draw of
//! `n` values atomically reserves a range of counter blocks, so the value at position `i` of
//! a draw depends only on the seed and on how many blocks earlier draws reserved — never on
//! the number of threads or on how the work is chunked. Large arrays are filled in parallel
//! on the rayon pool.
//!
//! Without a call to [`seed`], the generator starts from the fixed seed [`DEFAULT_SEED`], so a
//! fresh process draws the same numbers every run (like MXNet, whose default seed is also
//! fixed). The numbers are not MXNet's (bit compatibility with MXNet's RNG is out of scope).
//!
//! Mappings (word `i` is word `i % 4` of Philox block `i / 4` of a draw):
//! * uniform f32 / f16 / bf16: value `i` uses word `i`: `u = (w >> 8) / 2^24` in `[0, 1)`,
//!   `low + (high - low) * u` computed in f32, then rounded to the dtype;
//! * uniform f64: value `i` uses words `2i, 2i+1`: 53 bits → `u = bits / 2^53`;
//! * normal (all dtypes): values `2j, 2j+1` come from block `j`: two 53-bit uniforms
//!   `u1, u2`, Box–Muller in f64 (`r = sqrt(-2 ln(1 - u1))`, `r cos(2π u2)`, `r sin(2π u2)`),
//!   then `mean + std * z` rounded to the dtype.
//!
//! ```
//! use mxgluon::{random, Context, DType};
//! random::seed(42);
//! let a = random::uniform(-1.0, 1.0, &[1000], DType::Float32, Context::cpu(0))?;
//! random::seed(42);
//! let b = random::uniform(-1.0, 1.0, &[1000], DType::Float32, Context::cpu(0))?;
//! assert_eq!(a.to_vec::<f32>()?, b.to_vec::<f32>()?);
//! assert!(a.to_vec::<f32>()?.iter().all(|v| (-1.0..=1.0).contains(v)));
//! # Ok::<(), mxgluon::Error>(())
//! ```

pub mod philox;

use std::sync::atomic::{AtomicU64, Ordering};

use half::{bf16, f16};
use rayon::prelude::*;

use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nd::{par, NDArray};

use philox::Backend;

/// Element count from which f32 uniform fills bypass the caches (4 MiB).
const STREAM_MIN: usize = 1 << 20;

/// The seed used until [`seed`] is called.
pub const DEFAULT_SEED: u64 = 0x6d78_676c_756f_6e00;

static KEY: AtomicU64 = AtomicU64::new(DEFAULT_SEED);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Seeds the global generator: sets the key to `s` and resets the counter, so the following
/// draws repeat exactly. Draws running concurrently with `seed` on other threads may use
/// either the old or the new state; seed before starting parallel work.
///
/// ```
/// use mxgluon::{random, nd, Context};
/// let a = nd::zeros(&[4], Context::cpu(0))?;
/// let b = nd::zeros(&[4], Context::cpu(0))?;
/// random::seed(7);
/// random::fill_normal(&a, 0.0, 1.0)?;
/// random::seed(7);
/// random::fill_normal(&b, 0.0, 1.0)?;
/// assert_eq!(a.to_vec::<f32>()?, b.to_vec::<f32>()?);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn seed(s: u64) {
    KEY.store(s, Ordering::SeqCst);
    COUNTER.store(0, Ordering::SeqCst);
}

/// Reserves `blocks` counter blocks; returns the key and the first block.
fn reserve(blocks: u64) -> ([u32; 2], u64) {
    let key = KEY.load(Ordering::SeqCst);
    let first = COUNTER.fetch_add(blocks, Ordering::SeqCst);
    (philox::key_of(key), first)
}

fn check_float(op: &'static str, dtype: DType) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType {
            op,
            dtype,
            hint: "the output type must be float16, bfloat16, float32 or float64".into(),
        })
    }
}

fn check_uniform(low: f64, high: f64) -> Result<()> {
    if !low.is_finite() || !high.is_finite() || !(high - low).is_finite() {
        return Err(Error::invalid_arg(
            "uniform",
            format!("bounds must be finite, got low={low}, high={high}"),
        ));
    }
    if low > high {
        return Err(Error::invalid_arg(
            "uniform",
            format!("low ({low}) must not be greater than high ({high})"),
        ));
    }
    Ok(())
}

fn check_normal(mean: f64, std: f64) -> Result<()> {
    if !mean.is_finite() || !std.is_finite() {
        return Err(Error::invalid_arg(
            "normal",
            format!("mean and std must be finite, got mean={mean}, std={std}"),
        ));
    }
    if std < 0.0 {
        return Err(Error::invalid_arg(
            "normal",
            format!("std must be non-negative, got {std}"),
        ));
    }
    Ok(())
}

/// Runs `f(chunk, first_value_index)` over `s`, in parallel when large. Chunks start at
/// multiples of [`par::CHUNK`] (a multiple of 64 values).
fn chunked<T: Send>(s: &mut [T], f: impl Fn(&mut [T], usize) + Sync) {
    if par::worth_parallel(s.len()) {
        s.par_chunks_mut(par::CHUNK)
            .enumerate()
            .for_each(|(i, c)| f(c, i * par::CHUNK));
    } else {
        f(s, 0);
    }
}

/// Uniform f32 values into `s` from the draw starting at `first` (words in stream order).
fn uniform_f32_into(
    backend: Backend,
    key: [u32; 2],
    first: u64,
    s: &mut [f32],
    low: f64,
    high: f64,
) {
    let low32 = low as f32;
    let span = (high - low) as f32;
    // Arrays far larger than L2 are written with non-temporal stores.
    let stream = s.len() >= STREAM_MIN;
    chunked(s, |c, off| {
        philox::uniform_f32_impl(
            backend,
            key,
            first + (off / 4) as u64,
            c,
            low32,
            span,
            stream,
        )
    });
}

/// 53-bit uniform in [0, 1) from two words.
#[inline(always)]
fn u53(a: u32, b: u32) -> f64 {
    ((((a as u64) << 32) | b as u64) >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// Values computed 2 per Philox block (f64 uniforms and normals): `g(words) -> (v0, v1)`.
fn pairs_into<T: Send + Copy>(
    backend: Backend,
    key: [u32; 2],
    first: u64,
    s: &mut [T],
    g: impl Fn(&[u32]) -> (T, T) + Sync,
) {
    chunked(s, |c, off| {
        let mut buf = [0u32; 64];
        let mut block = first + (off / 2) as u64;
        for part in c.chunks_mut(32) {
            philox::blocks16(backend, key, block, &mut buf);
            for (pair, w) in part.chunks_mut(2).zip(buf.chunks_exact(4)) {
                let (a, b) = g(w);
                pair[0] = a;
                if pair.len() > 1 {
                    pair[1] = b;
                }
            }
            block = block.wrapping_add(16);
        }
    });
}

/// Fills a slice of `f64` with uniforms in `[low, high)` from the global stream (crate use,
/// e.g. by `Orthogonal`).
pub(crate) fn uniform_f64_slice(s: &mut [f64], low: f64, high: f64) -> Result<()> {
    check_uniform(low, high)?;
    let (key, first) = reserve((s.len() as u64).div_ceil(2));
    let span = high - low;
    pairs_into(Backend::detect(), key, first, s, |w| {
        (low + span * u53(w[0], w[1]), low + span * u53(w[2], w[3]))
    });
    Ok(())
}

#[inline(always)]
fn box_muller(w: &[u32]) -> (f64, f64) {
    let u1 = u53(w[0], w[1]);
    let u2 = u53(w[2], w[3]);
    let r = (-2.0 * (1.0 - u1).ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Fills a slice of `f64` with normals from the global stream (crate use).
pub(crate) fn normal_f64_slice(s: &mut [f64], mean: f64, std: f64) -> Result<()> {
    check_normal(mean, std)?;
    let (key, first) = reserve((s.len() as u64).div_ceil(2));
    pairs_into(Backend::detect(), key, first, s, |w| {
        let (a, b) = box_muller(w);
        (mean + std * a, mean + std * b)
    });
    Ok(())
}

/// Fills `arr` in place with i.i.d. values from U(`low`, `high`) (`low` included; with
/// rounding to the dtype `high` can occur).
///
/// Errors: [`Error::UnsupportedDType`] for non-float arrays; [`Error::InvalidArgument`] when
/// `low > high` or a bound is not finite.
pub fn fill_uniform(arr: &NDArray, low: f64, high: f64) -> Result<()> {
    check_float("uniform", arr.dtype())?;
    check_uniform(low, high)?;
    let n = arr.size();
    let backend = Backend::detect();
    match arr.dtype() {
        DType::Float64 => {
            let (key, first) = reserve((n as u64).div_ceil(2));
            let span = high - low;
            arr.write_slice::<f64, _>(|s| {
                pairs_into(backend, key, first, s, |w| {
                    (low + span * u53(w[0], w[1]), low + span * u53(w[2], w[3]))
                })
            });
        }
        DType::Float32 => {
            let (key, first) = reserve((n as u64).div_ceil(4));
            arr.write_slice::<f32, _>(|s| uniform_f32_into(backend, key, first, s, low, high));
        }
        DType::Float16 => {
            let (key, first) = reserve((n as u64).div_ceil(4));
            arr.write_slice::<f16, _>(|s| {
                half_uniform(backend, key, first, s, low, high, f16::from_f32)
            });
        }
        DType::BFloat16 => {
            let (key, first) = reserve((n as u64).div_ceil(4));
            arr.write_slice::<bf16, _>(|s| {
                half_uniform(backend, key, first, s, low, high, bf16::from_f32)
            });
        }
        // check_float rejected every other dtype.
        _ => {}
    }
    Ok(())
}

fn half_uniform<H: Send + Copy>(
    backend: Backend,
    key: [u32; 2],
    first: u64,
    s: &mut [H],
    low: f64,
    high: f64,
    conv: impl Fn(f32) -> H + Sync,
) {
    let low32 = low as f32;
    let span = (high - low) as f32;
    chunked(s, |c, off| {
        let mut buf = [0f32; 64];
        let mut block = first + (off / 4) as u64;
        for part in c.chunks_mut(64) {
            philox::fill_uniform_f32(backend, key, block, &mut buf[..part.len()], low32, span);
            for (o, v) in part.iter_mut().zip(buf.iter()) {
                *o = conv(*v);
            }
            block = block.wrapping_add(16);
        }
    });
}

/// Fills `arr` in place with i.i.d. values from N(`mean`, `std`²).
///
/// Errors: [`Error::UnsupportedDType`] for non-float arrays; [`Error::InvalidArgument`] when
/// `std < 0` or an argument is not finite.
pub fn fill_normal(arr: &NDArray, mean: f64, std: f64) -> Result<()> {
    check_float("normal", arr.dtype())?;
    check_normal(mean, std)?;
    let n = arr.size();
    let (key, first) = reserve((n as u64).div_ceil(2));
    let backend = Backend::detect();
    crate::dispatch_float!(arr.dtype(), T => {
        arr.write_slice::<T, _>(|s| {
            pairs_into(backend, key, first, s, |w| {
                let (a, b) = box_muller(w);
                (
                    <T as crate::dtype::Scalar>::from_f64(mean + std * a),
                    <T as crate::dtype::Scalar>::from_f64(mean + std * b),
                )
            })
        })
    }, _ => {});
    Ok(())
}

/// A new array of `shape` with i.i.d. values from U(`low`, `high`). See [`fill_uniform`].
pub fn uniform(
    low: f64,
    high: f64,
    shape: &[usize],
    dtype: DType,
    ctx: Context,
) -> Result<NDArray> {
    check_float("uniform", dtype)?;
    check_uniform(low, high)?;
    let a = NDArray::for_overwrite(shape, dtype, ctx)?;
    fill_uniform(&a, low, high)?;
    Ok(a)
}

/// A new array of `shape` with i.i.d. values from N(`mean`, `std`²). See [`fill_normal`].
pub fn normal(mean: f64, std: f64, shape: &[usize], dtype: DType, ctx: Context) -> Result<NDArray> {
    check_float("normal", dtype)?;
    check_normal(mean, std)?;
    let a = NDArray::for_overwrite(shape, dtype, ctx)?;
    fill_normal(&a, mean, std)?;
    Ok(a)
}
