//! Matrix products: [`dot`], [`dot_t`] and [`fully_connected`].
//!
//! f32, f64 and f16 go through the `gemm` crate (AVX-512 kernels); bf16 is converted to f32,
//! multiplied and converted back; integer dtypes use a plain (wrapping) triple loop.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use gemm::Parallelism;
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use super::transpose::transpose_f32;
use super::{check_pair, read2};
use crate::dtype::{DType, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::nd::NDArray;

/// Below this many floating-point operations a GEMM stays on the calling thread. The `gemm`
/// crate's parallel mode synchronizes many fine-grained tasks; on this 2-core machine it only
/// pays for large products. Measured on the 784→256→256→10 MLP training step (batch 64, GEMMs
/// of 0.3–26 MFLOP): 717 µs with a 4 MFLOP threshold, 534 µs with every GEMM on one thread; a
/// manual two-way row split under one `rayon::join` was slower still (630 µs: waking the
/// other worker costs more than half of a 26 MFLOP product).
const GEMM_PAR_MIN_FLOP: usize = 64 << 20;

/// Largest transposed right operand (elements) that is transposed on every use: below this a
/// transpose costs far less than the faster GEMM path saves.
const SMALL_TRANSPOSE_MAX: usize = 1 << 16;

/// Entries a thread's transpose cache holds.
const TRANSPOSE_CACHE_ENTRIES: usize = 8;

static LARGE_TRANSPOSE_BUDGET: AtomicUsize = AtomicUsize::new(64 << 20);

/// Bytes each thread may spend on cached transposed copies of **large** weights (default
/// 64 MiB; `0` disables them).
///
/// A fully-connected weight is stored `(num_hidden, in_units)`, the transposed layout for the
/// GEMM, whose row-major path is 10–20% faster. When the same large weight is used twice in a
/// row without being written in between (inference, or evaluation between training steps),
/// its row-major copy is kept per thread and reused until the weight changes; weights that
/// change every step (training) are never copied. Small weights are always copied (cheap).
pub fn set_transpose_cache_budget(bytes: usize) {
    LARGE_TRANSPOSE_BUDGET.store(bytes, Ordering::Relaxed);
}

/// The current per-thread budget of [`set_transpose_cache_budget`].
pub fn transpose_cache_budget() -> usize {
    LARGE_TRANSPOSE_BUDGET.load(Ordering::Relaxed)
}

use crate::nd::CacheKey;

struct TransposedEntry {
    key: CacheKey,
    rows: usize,
    cols: usize,
    /// Empty for a large operand seen once (a candidate: cached on its next unchanged use).
    data: Vec<f32>,
}

impl TransposedEntry {
    fn matches(&self, arr: &NDArray, rows: usize, cols: usize) -> bool {
        self.rows == rows && self.cols == cols && arr.matches_cache_key(&self.key)
    }

    fn large_bytes(&self) -> usize {
        if self.data.len() > SMALL_TRANSPOSE_MAX {
            self.data.len() * 4
        } else {
            0
        }
    }
}

thread_local! {
    /// Per-thread cache of transposed operands, most recently used last.
    static TRANSPOSED: RefCell<Vec<TransposedEntry>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the transpose (`cols × rows`) of `src` (`rows × cols`, read from `arr`, whose
/// read lock the caller holds) when a transposed copy is worth having (see
/// [`set_transpose_cache_budget`]); returns `None` (without calling `f`) when the caller should
/// use the transposed-operand GEMM directly.
fn with_transposed<R>(
    src: &[f32],
    rows: usize,
    cols: usize,
    arr: &NDArray,
    f: impl FnOnce(&[f32]) -> R,
) -> Option<R> {
    let need = rows * cols;
    let small = need <= SMALL_TRANSPOSE_MAX;
    let budget = transpose_cache_budget();
    if !small && need.saturating_mul(4) > budget {
        return None;
    }
    TRANSPOSED.with(|cell| {
        let mut cache = cell.borrow_mut();
        let found = cache.iter().position(|e| e.matches(arr, rows, cols));
        let mut entry = match found {
            Some(i) => cache.remove(i),
            None => TransposedEntry {
                key: arr.cache_key(),
                rows,
                cols,
                data: Vec::new(),
            },
        };
        if entry.data.is_empty() && !small && found.is_none() {
            // First sighting of this large operand at this version: remember it only.
            if cache.len() >= TRANSPOSE_CACHE_ENTRIES {
                cache.remove(0);
            }
            cache.push(entry);
            return None;
        }
        if entry.data.is_empty() {
            if !small {
                // Make room within the budget, least recently used first.
                while cache
                    .iter()
                    .map(TransposedEntry::large_bytes)
                    .sum::<usize>()
                    + need * 4
                    > budget
                {
                    match cache.iter().position(|e| e.large_bytes() > 0) {
                        Some(i) => {
                            cache.remove(i);
                        }
                        None => break,
                    }
                }
            }
            entry.data.resize(need, 0.0);
            transpose_f32(src, rows, cols, &mut entry.data);
        }
        if cache.len() >= TRANSPOSE_CACHE_ENTRIES {
            cache.remove(0);
        }
        cache.push(entry);
        let last = cache.len() - 1;
        Some(f(&cache[last].data))
    })
}

/// One GEMM problem on row-major buffers: `out (m×n) [+]= op(a) · op(b)`, where `a` is stored
/// `m×k` (or `k×m` when `ta`) and `b` is stored `k×n` (or `n×k` when `tb`).
#[derive(Clone, Copy)]
struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    /// Add to the existing contents of `out` instead of overwriting them.
    accumulate: bool,
}

impl Gemm {
    fn flop(&self) -> usize {
        2usize
            .saturating_mul(self.m)
            .saturating_mul(self.n)
            .saturating_mul(self.k)
    }

    fn parallelism(&self) -> Parallelism {
        let threads = rayon::current_num_threads();
        if self.flop() >= GEMM_PAR_MIN_FLOP && threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        }
    }

    /// f32 / f64 / f16 through the `gemm` crate (its AVX-512 kernels with feature `x86-v4`).
    fn run_gemm<T: Scalar>(&self, a: &[T], b: &[T], out: &mut [T]) {
        let Gemm {
            m, n, k, ta, tb, ..
        } = *self;
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !self.accumulate {
                out.fill(T::ZERO);
            }
            return;
        }
        // Guards the unsafe call below; shapes were validated by the public entry points, so
        // this cannot fire on user input.
        assert!(a.len() >= m * k && b.len() >= k * n && out.len() >= m * n);
        let (lcs, lrs) = if ta { (m as isize, 1) } else { (1, k as isize) };
        let (rcs, rrs) = if tb { (k as isize, 1) } else { (1, n as isize) };
        // SAFETY: the three slices hold the m×k, k×n and m×n matrices addressed by these
        // strides (lengths asserted above); `out` does not alias `a` or `b` (it is a `&mut`).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                self.accumulate,
                a.as_ptr(),
                lcs,
                lrs,
                b.as_ptr(),
                rcs,
                rrs,
                T::ONE,
                T::ONE,
                false,
                false,
                false,
                self.parallelism(),
            )
        }
    }

    /// f32. A transposed right operand (the fully-connected weight layout) is given to the
    /// GEMM in row-major order when a cached or cheap transposed copy exists (see
    /// [`set_transpose_cache_budget`]): the GEMM's row-major path is faster.
    fn run_f32(&self, a: &[f32], b: &[f32], b_arr: Option<&NDArray>, out: &mut [f32]) {
        if self.tb && !self.ta && self.k > 0 && self.n > 0 && self.m > 0 {
            if let Some(arr) = b_arr {
                let nn = Gemm { tb: false, ..*self };
                if with_transposed(b, self.n, self.k, arr, |bt| nn.run_gemm(a, bt, out)).is_some() {
                    return;
                }
            }
        }
        self.run_gemm(a, b, out);
    }

    /// Plain loop for integer dtypes (wrapping arithmetic).
    fn run_loop<T: Scalar>(&self, a: &[T], b: &[T], out: &mut [T]) {
        let Gemm {
            m, n, k, ta, tb, ..
        } = *self;
        if !self.accumulate {
            out.fill(T::ZERO);
        }
        for i in 0..m {
            let row = &mut out[i * n..(i + 1) * n];
            for p in 0..k {
                let x = if ta { a[p * m + i] } else { a[i * k + p] };
                for (j, o) in row.iter_mut().enumerate() {
                    let y = if tb { b[j * k + p] } else { b[p * n + j] };
                    *o = o.add(x.mul(y));
                }
            }
        }
    }

    /// Runs on raw storage of `dtype` (`out` already holds the accumulator when
    /// `self.accumulate`).
    fn run(&self, dtype: DType, a: &NDArray, b: &NDArray, out: &NDArray) {
        match dtype {
            DType::Float32 => read2::<f32, _>(a, b, |sa, sb| {
                out.write_slice::<f32, _>(|so| self.run_f32(sa, sb, Some(b), so))
            }),
            DType::Float64 => read2::<f64, _>(a, b, |sa, sb| {
                out.write_slice::<f64, _>(|so| self.run_gemm(sa, sb, so))
            }),
            DType::Float16 => read2::<f16, _>(a, b, |sa, sb| {
                out.write_slice::<f16, _>(|so| self.run_gemm(sa, sb, so))
            }),
            DType::BFloat16 => read2::<bf16, _>(a, b, |sa, sb| {
                out.write_slice::<bf16, _>(|so| {
                    let mut o = if self.accumulate {
                        so.to_f32_vec()
                    } else {
                        vec![0f32; so.len()]
                    };
                    self.run_f32(&sa.to_f32_vec(), &sb.to_f32_vec(), None, &mut o);
                    so.convert_from_f32_slice(&o);
                })
            }),
            dt => crate::dispatch_dtype!(dt, T => read2::<T, _>(a, b, |sa, sb| {
                out.write_slice::<T, _>(|so| self.run_loop(sa, sb, so))
            })),
        }
        if dtype == DType::Bool {
            out.write_slice::<u8, _>(|s| s.iter_mut().for_each(|x| *x = (*x != 0) as u8));
        }
    }
}

/// Dot product of two arrays with MXNet's rules; see [`dot_t`].
///
/// * 1-D · 1-D: inner product, shape `(1,)`;
/// * 2-D · 2-D: matrix product; 2-D · 1-D: matrix-vector product;
/// * N-D: contracts the last axis of `a` with the first axis of `b`; the result's shape is
///   `a.shape[..-1] + b.shape[1..]`.
///
/// ```
/// use mxgluon::{nd, Context};
/// let a = nd::array(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], Context::cpu(0))?;
/// let b = nd::array(&[1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2], Context::cpu(0))?;
/// let c = nd::dot(&a, &b)?;
/// assert_eq!(c.shape(), &[2, 2]);
/// assert_eq!(c.to_vec::<f32>()?, vec![4.0, 5.0, 10.0, 11.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn dot(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    dot_t(a, b, false, false)
}

/// [`dot`] with MXNet's `transpose_a` / `transpose_b`.
///
/// Without transposition `a` is seen as a matrix `(prod(a.shape[..-1]), a.shape[-1])` and `b`
/// as `(b.shape[0], prod(b.shape[1..]))`. `transpose_a` contracts `a`'s **first** axis instead
/// (its other axes lead the result); `transpose_b` contracts `b`'s **last** axis (its other
/// axes end the result). A result with no axis has shape `(1,)`. Operands must share dtype and
/// context; mismatched contracted dimensions are an [`Error::ShapeMismatch`].
pub fn dot_t(a: &NDArray, b: &NDArray, transpose_a: bool, transpose_b: bool) -> Result<NDArray> {
    let out = dot_t_untracked(a, b, transpose_a, transpose_b)?;
    Ok(super::grad::record_dot(a, b, transpose_a, transpose_b, out))
}

/// `op(a) · op(b)` for 2-D `a` and `b`, stored into `out` (overwritten, or added to when
/// `accumulate`). Shapes must agree exactly.
pub(crate) fn gemm_into(
    a: &NDArray,
    b: &NDArray,
    ta: bool,
    tb: bool,
    out: &NDArray,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "dot";
    check_pair(OP, a, b)?;
    check_pair(OP, a, out)?;
    let (sa, sb) = (a.shape(), b.shape());
    let (m, k) = if ta { (sa[1], sa[0]) } else { (sa[0], sa[1]) };
    let (kb, n) = if tb { (sb[1], sb[0]) } else { (sb[0], sb[1]) };
    if k != kb || out.shape() != [m, n] {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: sa.to_vec(),
            rhs: sb.to_vec(),
            detail: format!(
                "cannot store the product in an array of shape {}",
                fmt_shape(out.shape())
            ),
        });
    }
    Gemm {
        m,
        n,
        k,
        ta,
        tb,
        accumulate,
    }
    .run(a.dtype(), a, b, out);
    Ok(())
}

/// [`dot_t`] without recording.
pub(crate) fn dot_t_untracked(
    a: &NDArray,
    b: &NDArray,
    transpose_a: bool,
    transpose_b: bool,
) -> Result<NDArray> {
    const OP: &str = "dot";
    check_pair(OP, a, b)?;
    let (sa, sb) = (a.shape(), b.shape());
    if sa.is_empty() || sb.is_empty() {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: sa.to_vec(),
            rhs: sb.to_vec(),
            detail: "0-d operands are not supported".into(),
        });
    }
    let (ka, a_rest): (usize, &[usize]) = if transpose_a {
        (sa[0], &sa[1..])
    } else {
        (sa[sa.len() - 1], &sa[..sa.len() - 1])
    };
    let (kb, b_rest): (usize, &[usize]) = if transpose_b {
        (sb[sb.len() - 1], &sb[..sb.len() - 1])
    } else {
        (sb[0], &sb[1..])
    };
    if ka != kb {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: sa.to_vec(),
            rhs: sb.to_vec(),
            detail: format!(
                "the contracted dimensions differ: {ka} (transpose_a={transpose_a}) vs {kb} (transpose_b={transpose_b})"
            ),
        });
    }
    let m: usize = a_rest.iter().product();
    let n: usize = b_rest.iter().product();
    let mut shape: Vec<usize> = a_rest.iter().chain(b_rest).copied().collect();
    if shape.is_empty() {
        shape.push(1);
    }
    let out = NDArray::for_overwrite(&shape, a.dtype(), a.context())?;
    Gemm {
        m,
        n,
        k: ka,
        ta: transpose_a,
        tb: transpose_b,
        accumulate: false,
    }
    .run(a.dtype(), a, b, &out);
    Ok(out)
}

/// MXNet's `FullyConnected` with `flatten=True`: `out = x · weightᵀ + bias`.
///
/// `x` of shape `(N, d1, d2, ...)` is treated as `(N, d1·d2·…)`; `weight` has shape
/// `(num_hidden, in_units)` and `bias` (optional) `(num_hidden,)`; the result has shape
/// `(N, num_hidden)`. All operands must share dtype (f32, f64, f16 or bf16) and context. Small
/// layers run on the calling thread; large ones use the rayon pool.
///
/// ```
/// use mxgluon::{nd, Context};
/// let ctx = Context::cpu(0);
/// let x = nd::array(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], ctx)?;
/// let w = nd::array(&[1.0f32, 0.0, 1.0, 1.0, 0.0, -1.0], &[3, 2], ctx)?;
/// let b = nd::array(&[0.5f32, 0.0, 1.0], &[3], ctx)?;
/// let y = nd::fully_connected(&x, &w, Some(&b), 3)?;
/// assert_eq!(y.shape(), &[2, 3]);
/// assert_eq!(y.to_vec::<f32>()?, vec![1.5, 3.0, -1.0, 3.5, 7.0, -3.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn fully_connected(
    x: &NDArray,
    weight: &NDArray,
    bias: Option<&NDArray>,
    num_hidden: usize,
) -> Result<NDArray> {
    fully_connected_with(x, weight, bias, num_hidden, true)
}

/// [`fully_connected`] with MXNet's `flatten` flag. With `flatten = false` the layer applies to
/// the last axis: the result has shape `x.shape[..-1] + (num_hidden,)`.
pub fn fully_connected_with(
    x: &NDArray,
    weight: &NDArray,
    bias: Option<&NDArray>,
    num_hidden: usize,
    flatten: bool,
) -> Result<NDArray> {
    const OP: &str = "fully_connected";
    check_pair(OP, x, weight)?;
    if let Some(b) = bias {
        check_pair(OP, x, b)?;
    }
    let dtype = x.dtype();
    if !dtype.is_float() {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype,
            hint: "use float32, float64, float16 or bfloat16".into(),
        });
    }
    let xs = x.shape();
    if xs.is_empty() {
        return Err(Error::InvalidShape {
            op: OP,
            shape: vec![],
            reason: "the input needs at least one axis".into(),
        });
    }
    let (rows, in_units, out_shape): (usize, usize, Vec<usize>) = if flatten {
        let k = xs[1..].iter().product();
        (xs[0], k, vec![xs[0], num_hidden])
    } else {
        let k = xs[xs.len() - 1];
        let mut s = xs[..xs.len() - 1].to_vec();
        s.push(num_hidden);
        (xs[..xs.len() - 1].iter().product(), k, s)
    };
    if weight.shape() != [num_hidden, in_units] {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: xs.to_vec(),
            rhs: weight.shape().to_vec(),
            detail: format!(
                "weight must have shape {} (num_hidden, in_units) for an input of shape {} with flatten={flatten}",
                fmt_shape(&[num_hidden, in_units]),
                fmt_shape(xs)
            ),
        });
    }
    if let Some(b) = bias {
        if b.shape() != [num_hidden] {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: weight.shape().to_vec(),
                rhs: b.shape().to_vec(),
                detail: format!("bias must have shape ({num_hidden},) (num_hidden,)"),
            });
        }
    }
    let out = NDArray::for_overwrite(&out_shape, dtype, x.context())?;
    if let Some(b) = bias {
        // The bias becomes the GEMM's initial accumulator: one pass over the output.
        let b = if b.shares_memory_with(x) || b.shares_memory_with(weight) {
            b.copy_to(b.context())?
        } else {
            b.clone()
        };
        crate::dispatch_float!(dtype, T => b.read_slice::<T, _>(|sb| out.write_slice::<T, _>(|so| {
            if !sb.is_empty() {
                so.chunks_exact_mut(sb.len()).for_each(|r| r.copy_from_slice(sb));
            }
        })), _ => {});
    }
    Gemm {
        m: rows,
        n: num_hidden,
        k: in_units,
        ta: false,
        tb: true,
        accumulate: bias.is_some(),
    }
    .run(dtype, x, weight, &out);
    super::grad::record_fully_connected(x, [rows, in_units], weight, bias, out)
}
