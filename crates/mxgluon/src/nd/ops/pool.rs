//! Pooling (MXNet's `Pooling` operator): max, average and sum over windows of 1, 2 or 3
//! spatial dimensions (NCW / NCHW / NCDHW), or over the whole of them (`global_pool`), with
//! the `valid`, `full` and `same` output-size conventions, and its gradient.
//!
//! Windows follow MXNet's CPU kernels: a window starts at `o·stride − pad`; max pooling looks
//! only at the elements inside the input; average pooling divides by the window size clipped
//! to the padded input (`count_include_pad`, the default) or by the number of elements inside
//! the input. The forward pass reduces whole input rows first (contiguous, vectorized) and
//! then each window along the last axis. The gradient of max pooling goes to the first
//! element of the window (in row-major order) equal to the maximum.

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;
use smallvec::smallvec;

use super::conv::{dispatch_real, spatial3, spatial_param, Real};
use crate::autograd::{record_op, tracked, Grad};
use crate::dtype::DType;
use crate::error::{fmt_shape, Error, Result};
use crate::nd::NDArray;

const OP: &str = "Pooling";

/// Window elements visited below which pooling stays on the calling thread.
const POOL_PAR_MIN_WORK: usize = 1 << 18;

/// The reduction of [`pooling`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolType {
    /// The maximum of the window.
    Max,
    /// The mean of the window (see [`PoolOptions::count_include_pad`]).
    Avg,
    /// The sum of the window.
    Sum,
}

impl PoolType {
    /// MXNet's name: `max`, `avg`, `sum`.
    pub fn name(self) -> &'static str {
        match self {
            PoolType::Max => "max",
            PoolType::Avg => "avg",
            PoolType::Sum => "sum",
        }
    }
}

impl fmt::Display for PoolType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PoolType {
    type Err = Error;

    /// Accepts MXNet's names (`lp` pooling is not supported).
    fn from_str(s: &str) -> Result<Self> {
        [PoolType::Max, PoolType::Avg, PoolType::Sum]
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| Error::InvalidEnumValue {
                what: "pool_type",
                got: s.to_string(),
                valid: vec!["max".into(), "avg".into(), "sum".into()],
            })
    }
}

/// How [`pooling`] computes the output size from the padded input size `x`, kernel `k` and
/// stride `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolingConvention {
    /// `1 + ⌊(x − k) / s⌋`: only windows inside the padded input.
    Valid,
    /// `1 + ⌈(x − k) / s⌉`: a last, partial window when the stride does not divide evenly
    /// (Gluon's `ceil_mode`).
    Full,
    /// `⌈x / s⌉`, 1-D only and without padding. (MXNet 1.9.1 accepts it only with a
    /// three-element `pad` of zeros and a float64 input: its shape check indexes `pad[1]`.)
    Same,
}

impl PoolingConvention {
    /// MXNet's name: `valid`, `full`, `same`.
    pub fn name(self) -> &'static str {
        match self {
            PoolingConvention::Valid => "valid",
            PoolingConvention::Full => "full",
            PoolingConvention::Same => "same",
        }
    }
}

impl fmt::Display for PoolingConvention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PoolingConvention {
    type Err = Error;

    /// Accepts MXNet's names.
    fn from_str(s: &str) -> Result<Self> {
        [
            PoolingConvention::Valid,
            PoolingConvention::Full,
            PoolingConvention::Same,
        ]
        .into_iter()
        .find(|t| t.name() == s)
        .ok_or_else(|| Error::InvalidEnumValue {
            what: "pooling_convention",
            got: s.to_string(),
            valid: vec!["valid".into(), "full".into(), "same".into()],
        })
    }
}

/// Options of [`pooling`] (MXNet's `Pooling` parameters). `stride` and `pad` may be left
/// empty for their defaults (1 and 0 in every spatial dimension).
///
/// ```
/// use mxgluon::nd::{PoolOptions, PoolType, PoolingConvention};
/// let o = PoolOptions::new(&[3, 3], PoolType::Max).stride(&[2, 2]).pad(&[1, 1]);
/// assert_eq!(o.pooling_convention, PoolingConvention::Valid);
/// assert!(PoolOptions::global(PoolType::Avg).global_pool);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Window size: `(w,)`, `(h, w)` or `(d, h, w)`; its length picks 1-, 2- or 3-D. Ignored
    /// with `global_pool`.
    pub kernel: Vec<usize>,
    /// The reduction.
    pub pool_type: PoolType,
    /// Stride per spatial dimension (empty: 1).
    pub stride: Vec<usize>,
    /// Padding on both sides per spatial dimension (empty: 0).
    pub pad: Vec<usize>,
    /// Pool over all spatial positions (kernel, stride and pad ignored; output size 1).
    pub global_pool: bool,
    /// How the output size is computed.
    pub pooling_convention: PoolingConvention,
    /// Average pooling only: divide by the whole window clipped to the padded input (`true`,
    /// the default) or by the number of input elements in it (`false`).
    pub count_include_pad: bool,
}

impl PoolOptions {
    /// Pooling windows of size `kernel`, stride 1, no padding, `valid` convention.
    pub fn new(kernel: &[usize], pool_type: PoolType) -> PoolOptions {
        PoolOptions {
            kernel: kernel.to_vec(),
            pool_type,
            stride: Vec::new(),
            pad: Vec::new(),
            global_pool: false,
            pooling_convention: PoolingConvention::Valid,
            count_include_pad: true,
        }
    }

    /// Global pooling over all spatial positions.
    pub fn global(pool_type: PoolType) -> PoolOptions {
        PoolOptions {
            global_pool: true,
            ..PoolOptions::new(&[], pool_type)
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: &[usize]) -> Self {
        self.stride = stride.to_vec();
        self
    }

    /// Sets the padding.
    pub fn pad(mut self, pad: &[usize]) -> Self {
        self.pad = pad.to_vec();
        self
    }

    /// Sets the output-size convention.
    pub fn pooling_convention(mut self, c: PoolingConvention) -> Self {
        self.pooling_convention = c;
        self
    }

    /// Sets whether average pooling counts padding.
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }
}

/// One output index's window along one axis: input range `lo..hi` and the window size
/// clipped to the padded input (the average's divisor with `count_include_pad`).
#[derive(Clone, Copy, Debug)]
struct Win {
    lo: usize,
    hi: usize,
    padded: usize,
}

/// The windows of every output index, per axis.
#[derive(Clone, Debug)]
struct PoolGeom {
    planes: usize,
    input: [usize; 3],
    out: [usize; 3],
    wins: [Vec<Win>; 3],
    /// Kernel, stride and padding of the last axis (the vectorized max path reads them).
    last: (usize, usize, usize),
    ptype: PoolType,
    include_pad: bool,
}

impl PoolGeom {
    fn pin(&self) -> usize {
        self.input.iter().product()
    }
    fn pout(&self) -> usize {
        self.out.iter().product()
    }
    /// Window elements visited (about: interior windows).
    fn work(&self) -> usize {
        let k: usize = self
            .wins
            .iter()
            .map(|w| w.get(w.len() / 2).map_or(1, |w| w.hi - w.lo))
            .product();
        self.planes
            .saturating_mul(self.pout())
            .saturating_mul(k.max(1))
    }
    /// The divisor of the window at `(d, h, w)` (1 for max and sum).
    fn divisor(&self, d: &Win, h: &Win, w: &Win) -> usize {
        match (self.ptype, self.include_pad) {
            (PoolType::Avg, true) => d.padded * h.padded * w.padded,
            (PoolType::Avg, false) => (d.hi - d.lo) * (h.hi - h.lo) * (w.hi - w.lo),
            _ => 1,
        }
    }
}

fn windows(input: usize, out: usize, k: usize, s: usize, p: usize) -> Vec<Win> {
    (0..out)
        .map(|o| {
            let start = (o * s) as isize - p as isize;
            let end = (start + k as isize).min((input + p) as isize);
            // A `full` window may start past the input's end: then lo = hi = input.
            let lo = start.clamp(0, input as isize) as usize;
            Win {
                lo,
                hi: (end.clamp(0, input as isize) as usize).max(lo),
                padded: (end - start).max(0) as usize,
            }
        })
        .collect()
}

/// Checks the input against MXNet's rules; returns the geometry and the output shape.
fn resolve(data: &NDArray, o: &PoolOptions) -> Result<(PoolGeom, Vec<usize>)> {
    resolve_shape(data.dtype(), data.shape(), o)
}

/// [`resolve`] for an input of `dtype` and shape `ds`.
fn resolve_shape(dtype: DType, ds: &[usize], o: &PoolOptions) -> Result<(PoolGeom, Vec<usize>)> {
    if !matches!(dtype, DType::Float32 | DType::Float64) {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype,
            hint: "pooling computes in float32 or float64".into(),
        });
    }
    if !(3..=5).contains(&ds.len()) {
        return Err(Error::InvalidShape {
            op: OP,
            shape: ds.to_vec(),
            reason: "the input must be 3-D (N, C, W), 4-D (N, C, H, W) or 5-D (N, C, D, H, W)"
                .into(),
        });
    }
    let input = spatial3(ds);
    let nd = ds.len() - 2;
    let (kernel, stride, pad) = if o.global_pool {
        (input, [1; 3], [0; 3])
    } else {
        let kn = o.kernel.len();
        if !(1..=3).contains(&kn) {
            return Err(Error::invalid_arg(
                OP,
                format!(
                    "the kernel must have 1, 2 or 3 dimensions unless global_pool is set, got {}",
                    fmt_shape(&o.kernel)
                ),
            ));
        }
        if kn != nd {
            return Err(Error::InvalidShape {
                op: OP,
                shape: ds.to_vec(),
                reason: format!(
                    "a {kn}-D kernel {} needs {}-D input",
                    fmt_shape(&o.kernel),
                    kn + 2
                ),
            });
        }
        let kernel = spatial_param(OP, "kernel", &o.kernel, nd, 1, &o.kernel)?;
        let stride = spatial_param(OP, "stride", &o.stride, nd, 1, &o.kernel)?;
        let pad = spatial_param(OP, "pad", &o.pad, nd, 0, &o.kernel)?;
        if kernel.contains(&0) || stride.contains(&0) {
            return Err(Error::invalid_arg(
                OP,
                "kernel and stride sizes must be positive",
            ));
        }
        if o.pooling_convention == PoolingConvention::Same && (nd != 1 || pad != [0; 3]) {
            return Err(Error::invalid_arg(
                OP,
                "the 'same' convention supports 1-D pooling (3-D input) without padding only",
            ));
        }
        for i in 3 - nd..3 {
            if kernel[i] > input[i] + 2 * pad[i] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: ds.to_vec(),
                    rhs: o.kernel.clone(),
                    detail: format!(
                        "kernel size {} exceeds the input size {} padded to {}",
                        kernel[i],
                        input[i],
                        input[i] + 2 * pad[i]
                    ),
                });
            }
        }
        (kernel, stride, pad)
    };
    let mut out = [1; 3];
    if !o.global_pool {
        for i in 0..3 {
            let padded = input[i] + 2 * pad[i];
            out[i] = match o.pooling_convention {
                PoolingConvention::Valid => 1 + (padded - kernel[i]) / stride[i],
                PoolingConvention::Full => 1 + (padded - kernel[i]).div_ceil(stride[i]),
                PoolingConvention::Same => padded.div_ceil(stride[i]),
            };
        }
    }
    let wins = [0, 1, 2].map(|i| windows(input[i], out[i], kernel[i], stride[i], pad[i]));
    let mut oshape = ds[..2].to_vec();
    oshape.extend_from_slice(&out[3 - nd..]);
    Ok((
        PoolGeom {
            planes: ds[0] * ds[1],
            input,
            out,
            wins,
            last: (kernel[2], stride[2], pad[2]),
            ptype: o.pool_type,
            include_pad: o.count_include_pad,
        },
        oshape,
    ))
}

/// The windows of a 2-D max pooling, for a producer that pools its own output (the fused
/// convolution): output row `i` reduces input rows `rows[i].0..rows[i].1` (possibly none),
/// output column `j` input columns `cols[j].0..cols[j].1`, exactly as [`pooling`] does.
#[derive(Debug, Clone)]
pub(crate) struct MaxPool2d {
    /// Input row range of each output row.
    pub(crate) rows: Vec<(usize, usize)>,
    /// Input column range of each output column.
    pub(crate) cols: Vec<(usize, usize)>,
    /// The pooled output's shape (`(N, C, OH, OW)`).
    pub(crate) oshape: Vec<usize>,
}

/// Checks `o` for an input of `dtype` and shape `ds` as [`pooling`] would (the same errors);
/// returns its windows when it is a 2-D max pooling, `None` for any other pooling.
pub(crate) fn max_pool_2d(
    dtype: DType,
    ds: &[usize],
    o: &PoolOptions,
) -> Result<Option<MaxPool2d>> {
    let (g, oshape) = resolve_shape(dtype, ds, o)?;
    if g.ptype != PoolType::Max || ds.len() != 4 {
        return Ok(None);
    }
    let ranges = |w: &[Win]| w.iter().map(|w| (w.lo, w.hi)).collect();
    Ok(Some(MaxPool2d {
        rows: ranges(&g.wins[1]),
        cols: ranges(&g.wins[2]),
        oshape,
    }))
}

/// One plane's forward pass; `row` is scratch of the input's last-axis length.
fn forward_plane<T: Real>(
    g: &PoolGeom,
    x: &[T],
    y: &mut [T],
    row: &mut [T],
    cols: &mut (Vec<T>, Vec<T>),
) {
    let [_, ih, iw] = g.input;
    let [_, oh_n, ow_n] = g.out;
    let max = g.ptype == PoolType::Max;
    for (od, wd) in g.wins[0].iter().enumerate() {
        for (oh, wh) in g.wins[1].iter().enumerate() {
            // Reduce the window's input rows elementwise into `row`.
            row.fill(if max { T::LOWEST } else { T::ZERO });
            for d in wd.lo..wd.hi {
                for h in wh.lo..wh.hi {
                    let src = &x[(d * ih + h) * iw..(d * ih + h + 1) * iw];
                    if max {
                        for (r, &v) in row.iter_mut().zip(src) {
                            *r = if v > *r { v } else { *r };
                        }
                    } else {
                        for (r, &v) in row.iter_mut().zip(src) {
                            *r += v;
                        }
                    }
                }
            }
            let yrow = &mut y[(od * oh_n + oh) * ow_n..(od * oh_n + oh + 1) * ow_n];
            if max {
                max_columns(row, g.last, cols, yrow);
                continue;
            }
            for (o, ww) in yrow.iter_mut().zip(&g.wins[2]) {
                let seg = &row[ww.lo..ww.hi];
                *o = if max {
                    seg.iter()
                        .fold(T::LOWEST, |m, &v| if v > m { v } else { m })
                } else {
                    let mut s = T::ZERO;
                    for &v in seg {
                        s += v;
                    }
                    match g.divisor(wd, wh, ww) {
                        0 => T::ZERO,
                        1 => s,
                        n => s / T::from_f64(n as f64),
                    }
                };
            }
        }
    }
}

/// The max over each last-axis window of `row` into `y`, vectorized: `row` is padded with
/// the lowest value on both sides, the running max of `k` consecutive elements is taken for
/// every start by `k` elementwise passes, and output `o` reads start `o·stride`. Padding and
/// starts past the input count as the lowest value, as in the windowed fold this replaces.
/// `bufs` is scratch.
fn max_columns<T: Real>(
    row: &[T],
    (k, s, p): (usize, usize, usize),
    bufs: &mut (Vec<T>, Vec<T>),
    y: &mut [T],
) {
    let Some(last) = y.len().checked_sub(1) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && matches!(s, 1 | 2)
        && std::arch::is_x86_feature_detected!("avx512f")
    {
        // Every read of the vector loop: up to 16 outputs past the last, 32 elements each.
        let span = (y.len().next_multiple_of(16) - 1) * s + k + 32;
        let padded = &mut bufs.0;
        padded.clear();
        padded.resize(span.max(p + row.len()), T::LOWEST);
        padded[p..p + row.len()].copy_from_slice(row);
        // T is f32 (checked above), so these casts reinterpret nothing.
        let padded: &[f32] = bytemuck::cast_slice(padded);
        let y: &mut [f32] = bytemuck::cast_slice_mut(y);
        // SAFETY: AVX-512F is available (checked) and `padded` holds `span` elements.
        unsafe { max_columns_avx512(padded, k, s, y) };
        return;
    }
    let span = last * s + 1;
    let (padded, m) = bufs;
    padded.clear();
    padded.resize((span + k - 1).max(p + row.len()), T::LOWEST);
    padded[p..p + row.len()].copy_from_slice(row);
    m.clear();
    m.resize(span, T::LOWEST);
    for t in 0..k {
        for (a, &b) in m.iter_mut().zip(&padded[t..t + span]) {
            *a = if b > *a { b } else { *a };
        }
    }
    for (o, out) in y.iter_mut().enumerate() {
        *out = m[o * s];
    }
}

/// [`max_columns`] for f32 on AVX-512 with stride 1 or 2: `y[o] = max_t padded[o·s + t]`,
/// 16 outputs per step (stride 2 gathers the even elements of two vectors with one
/// permute). Comparisons run in the scalar loop's order and keep its NaN behaviour: a NaN
/// element never replaces the running maximum.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_columns_avx512(padded: &[f32], k: usize, s: usize, y: &mut [f32]) {
    use std::arch::x86_64::*;
    let ow = y.len();
    assert!(matches!(s, 1 | 2) && padded.len() >= (ow.next_multiple_of(16) - 1) * s + k + 32);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut o = 0;
    while o < ow {
        let mut m = _mm512_set1_ps(f32::MIN);
        for t in 0..k {
            // SAFETY: the highest element read is (o + 15)·s + t + 16 < padded.len()
            // (asserted above, o + 16 ≤ ow rounded up to 16).
            let v = unsafe {
                let base = padded.as_ptr().add(o * s + t);
                if s == 1 {
                    _mm512_loadu_ps(base)
                } else {
                    let (a, b) = (_mm512_loadu_ps(base), _mm512_loadu_ps(base.add(16)));
                    _mm512_permutex2var_ps(a, even, b)
                }
            };
            // `max(v, m)` returns m when either is NaN, like `if v > m { v } else { m }`.
            m = _mm512_max_ps(v, m);
        }
        let lanes = 16.min(ow - o);
        let mask = if lanes == 16 {
            0xffff
        } else {
            (1u16 << lanes) - 1
        };
        // SAFETY: lanes o..o + lanes are inside `y`.
        unsafe { _mm512_mask_storeu_ps(y.as_mut_ptr().add(o), mask, m) };
        o += 16;
    }
}

/// One plane's gradient, added into `dx` (zeroed by the caller).
fn backward_plane<T: Real>(g: &PoolGeom, x: &[T], y: &[T], dy: &[T], dx: &mut [T]) {
    let [_, ih, iw] = g.input;
    let [_, oh_n, ow_n] = g.out;
    for (od, wd) in g.wins[0].iter().enumerate() {
        for (oh, wh) in g.wins[1].iter().enumerate() {
            for (ow, ww) in g.wins[2].iter().enumerate() {
                let k = (od * oh_n + oh) * ow_n + ow;
                let gv = dy[k];
                if g.ptype == PoolType::Max {
                    let target = y[k];
                    'find: for d in wd.lo..wd.hi {
                        for h in wh.lo..wh.hi {
                            let base = (d * ih + h) * iw;
                            if let Some(i) = x[base + ww.lo..base + ww.hi]
                                .iter()
                                .position(|&v| v == target)
                            {
                                dx[base + ww.lo + i] += gv;
                                break 'find;
                            }
                        }
                    }
                } else {
                    let share = match g.divisor(wd, wh, ww) {
                        0 => continue,
                        1 => gv,
                        n => gv / T::from_f64(n as f64),
                    };
                    for d in wd.lo..wd.hi {
                        for h in wh.lo..wh.hi {
                            let base = (d * ih + h) * iw;
                            for v in &mut dx[base + ww.lo..base + ww.hi] {
                                *v += share;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Planes per parallel task, or `None` to stay on the calling thread.
fn par_planes(g: &PoolGeom) -> Option<usize> {
    let threads = rayon::current_num_threads();
    if threads < 2 || g.work() < POOL_PAR_MIN_WORK || g.planes < 2 {
        return None;
    }
    Some(g.planes.div_ceil(4 * threads).max(1))
}

fn forward<T: Real>(g: &PoolGeom, x: &[T], y: &mut [T]) {
    let (pin, pout, iw) = (g.pin(), g.pout(), g.input[2]);
    if pout == 0 {
        return;
    }
    // Planes `first..` of one task; indexing (not chunking) x keeps empty inputs working.
    let run = |first: usize, ys: &mut [T]| {
        let mut row = vec![T::ZERO; iw];
        let mut cols = (Vec::new(), Vec::new());
        for (i, yp) in ys.chunks_exact_mut(pout).enumerate() {
            let p = first + i;
            forward_plane(g, &x[p * pin..(p + 1) * pin], yp, &mut row, &mut cols);
        }
    };
    match par_planes(g) {
        None => run(0, y),
        Some(per) => y
            .par_chunks_mut(pout * per)
            .enumerate()
            .for_each(|(t, ys)| run(t * per, ys)),
    }
}

fn backward<T: Real>(g: &PoolGeom, x: &[T], y: &[T], dy: &[T], dx: &mut [T]) {
    let (pin, pout) = (g.pin(), g.pout());
    if pout == 0 || pin == 0 {
        return;
    }
    let run = |first: usize, ds: &mut [T]| {
        for (i, dp) in ds.chunks_exact_mut(pin).enumerate() {
            let p = first + i;
            let (o0, o1) = (p * pout, (p + 1) * pout);
            backward_plane(g, &x[p * pin..(p + 1) * pin], &y[o0..o1], &dy[o0..o1], dp);
        }
    };
    match par_planes(g) {
        None => run(0, dx),
        Some(per) => dx
            .par_chunks_mut(pin * per)
            .enumerate()
            .for_each(|(t, ds)| run(t * per, ds)),
    }
}

/// Pooling (MXNet's `Pooling`): reduces windows of the spatial dimensions of `data`
/// (`(N, C, W)`, `(N, C, H, W)` or `(N, C, D, H, W)`) by max, average or sum. The output has
/// shape `(N, C, *out)`, with `out` from [`PoolOptions::pooling_convention`] (all 1 with
/// `global_pool`). float32 and float64; the gradient to `data` is recorded under
/// [`autograd::record`](crate::autograd::record).
///
/// ```
/// use mxgluon::nd::{self, PoolOptions, PoolType, PoolingConvention};
/// let x = nd::array(&[1.0f32, 5.0, 2.0, 4.0, 3.0], &[1, 1, 5], None)?;
/// let max = PoolOptions::new(&[2], PoolType::Max).stride(&[2]);
/// assert_eq!(nd::pooling(&x, &max)?.to_vec::<f32>()?, vec![5.0, 4.0]);
/// let full = max.clone().pooling_convention(PoolingConvention::Full);
/// assert_eq!(nd::pooling(&x, &full)?.to_vec::<f32>()?, vec![5.0, 4.0, 3.0]);
/// let avg = PoolOptions::global(PoolType::Avg);
/// assert_eq!(nd::pooling(&x, &avg)?.to_vec::<f32>()?, vec![3.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn pooling(data: &NDArray, opts: &PoolOptions) -> Result<NDArray> {
    let (geo, oshape) = resolve(data, opts)?;
    let y = NDArray::for_overwrite(&oshape, data.dtype(), data.context())?;
    dispatch_real!(data.dtype(), T => data.read_slice::<T, _>(|xs| {
        y.write_slice::<T, _>(|ys| forward(&geo, xs, ys))
    }));
    if !tracked(&[data]) {
        return Ok(y);
    }
    let (xd, yd) = (data.detach(), y.detach());
    Ok(record_op(OP, &[data], y, move |dy, _| {
        let dx = NDArray::zeros(xd.shape(), xd.dtype(), xd.context())?;
        let dy = if dy.shares_memory_with(&xd) || dy.shares_memory_with(&yd) {
            dy.copy_to_untracked(dy.context())?
        } else {
            dy.clone()
        };
        dispatch_real!(xd.dtype(), T => xd.read_slice::<T, _>(|xs| yd.read_slice::<T, _>(|ys| {
            dy.read_slice::<T, _>(|gs| dx.write_slice::<T, _>(|ds| backward(&geo, xs, ys, gs, ds)))
        })));
        Ok(smallvec![Grad::Value(dx)])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    fn arr(v: &[f64], shape: &[usize]) -> NDArray {
        NDArray::from_vec(v.to_vec(), shape, Context::cpu(0)).unwrap()
    }

    /// The direct definition: every window element by element.
    fn reference(x: &[f64], shape: &[usize], o: &PoolOptions) -> Vec<f64> {
        let (g, _) = resolve(&arr(x, shape), o).unwrap();
        let [_, ih, iw] = g.input;
        let mut out = Vec::new();
        for p in 0..g.planes {
            let xp = &x[p * g.pin()..(p + 1) * g.pin()];
            for wd in &g.wins[0] {
                for wh in &g.wins[1] {
                    for ww in &g.wins[2] {
                        let mut vals = Vec::new();
                        for d in wd.lo..wd.hi {
                            for h in wh.lo..wh.hi {
                                for w in ww.lo..ww.hi {
                                    vals.push(xp[(d * ih + h) * iw + w]);
                                }
                            }
                        }
                        out.push(match g.ptype {
                            PoolType::Max => vals.iter().fold(f64::MIN, |m, &v| m.max(v)),
                            PoolType::Sum => vals.iter().sum(),
                            PoolType::Avg => match g.divisor(wd, wh, ww) {
                                0 => 0.0,
                                n => vals.iter().sum::<f64>() / n as f64,
                            },
                        });
                    }
                }
            }
        }
        out
    }

    #[test]
    fn output_sizes_follow_the_conventions() {
        let x = arr(&[0.0; 7], &[1, 1, 7]);
        let o = PoolOptions::new(&[3], PoolType::Max).stride(&[2]);
        let size = |o: &PoolOptions| pooling(&x, o).unwrap().shape()[2];
        assert_eq!(size(&o), 3);
        assert_eq!(
            size(&o.clone().pooling_convention(PoolingConvention::Full)),
            3
        );
        assert_eq!(
            size(&o.clone().pooling_convention(PoolingConvention::Same)),
            4
        );
        assert_eq!(size(&o.clone().pad(&[1])), 4);
        let x8 = arr(&[0.0; 8], &[1, 1, 8]);
        assert_eq!(
            pooling(&x8, &o.clone().pooling_convention(PoolingConvention::Full))
                .unwrap()
                .shape(),
            &[1, 1, 4]
        );
        assert_eq!(pooling(&x8, &o).unwrap().shape(), &[1, 1, 3]);
        let x4 = arr(&[0.0; 2 * 3 * 20], &[2, 3, 4, 5]);
        assert_eq!(
            pooling(&x4, &PoolOptions::global(PoolType::Sum))
                .unwrap()
                .shape(),
            &[2, 3, 1, 1]
        );
    }

    #[test]
    fn windows_match_the_direct_definition() {
        let shapes: [&[usize]; 4] = [&[2, 3, 9], &[1, 2, 7, 6], &[2, 1, 3, 4, 5], &[1, 1, 2, 3]];
        for shape in shapes {
            let n: usize = shape.iter().product();
            let x: Vec<f64> = (0..n).map(|i| ((i * 37 % 23) as f64) - 11.0).collect();
            let nd = shape.len() - 2;
            for pt in [PoolType::Max, PoolType::Avg, PoolType::Sum] {
                for conv in [PoolingConvention::Valid, PoolingConvention::Full] {
                    for include in [true, false] {
                        let opts = [
                            PoolOptions::new(&vec![2; nd], pt),
                            PoolOptions::new(&vec![2; nd], pt)
                                .stride(&vec![3; nd])
                                .pad(&vec![1; nd]),
                            PoolOptions::new(&vec![1; nd], pt)
                                .stride(&vec![2; nd])
                                .pad(&vec![1; nd]),
                            PoolOptions::new(&vec![3; nd], pt)
                                .stride(&vec![2; nd])
                                .pad(&vec![2; nd]),
                            PoolOptions::global(pt),
                        ];
                        for o in opts {
                            let o = o.pooling_convention(conv).count_include_pad(include);
                            let Ok((_, oshape)) = resolve(&arr(&x, shape), &o) else {
                                continue;
                            };
                            let y = pooling(&arr(&x, shape), &o).unwrap();
                            assert_eq!(y.shape(), oshape.as_slice());
                            assert_eq!(y.to_f64_vec(), reference(&x, shape, &o), "{shape:?} {o:?}");
                            let y32 = pooling(&arr(&x, shape).astype(DType::Float32).unwrap(), &o)
                                .unwrap();
                            let r = reference(&x, shape, &o);
                            for (a, b) in y32.to_f64_vec().iter().zip(&r) {
                                assert!(
                                    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
                                        || (*b == f64::MIN && *a == f32::MIN as f64)
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn f32_max_rows_match_the_direct_definition() -> Result<()> {
        // Rows longer than one vector, with tails, NaNs, every small kernel, stride 1 and 2
        // (the vectorised f32 path) and 3 (the generic one).
        for w in [15, 16, 17, 33, 70, 112] {
            let shape = [1, 2, 5, w];
            let n: usize = shape.iter().product();
            let x: Vec<f64> = (0..n)
                .map(|i| match i % 29 {
                    7 => f64::NAN,
                    _ => ((i * 7919 % 1009) as f64) * 0.25 - 120.0,
                })
                .collect();
            let x32 = arr(&x, &shape).astype(DType::Float32)?;
            for k in 1..=5 {
                for s in 1..=3 {
                    for p in 0..=k / 2 {
                        for conv in [PoolingConvention::Valid, PoolingConvention::Full] {
                            let o = PoolOptions::new(&[2, k], PoolType::Max)
                                .stride(&[1, s])
                                .pad(&[0, p])
                                .pooling_convention(conv);
                            let Ok((_, oshape)) = resolve(&x32, &o) else {
                                continue;
                            };
                            let y = pooling(&x32, &o)?;
                            assert_eq!(y.shape(), oshape.as_slice());
                            let r = reference(&x, &shape, &o);
                            for (i, (a, b)) in y.to_f64_vec().iter().zip(&r).enumerate() {
                                assert!(
                                    *a == *b || (*b == f64::MIN && *a == f32::MIN as f64),
                                    "w {w} k {k} s {s} p {p} {conv:?} at {i}: {a} vs {b}"
                                );
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn large_inputs_run_in_parallel_and_agree() {
        let shape = [4, 32, 40, 40];
        let n: usize = shape.iter().product();
        let x: Vec<f64> = (0..n).map(|i| ((i * 7919 % 1009) as f64) * 0.01).collect();
        for pt in [PoolType::Max, PoolType::Avg] {
            let o = PoolOptions::new(&[3, 3], pt).stride(&[2, 2]).pad(&[1, 1]);
            let (g, _) = resolve(&arr(&x, &shape), &o).unwrap();
            assert!(g.work() >= POOL_PAR_MIN_WORK);
            let (y, r) = (
                pooling(&arr(&x, &shape), &o).unwrap().to_f64_vec(),
                reference(&x, &shape, &o),
            );
            assert_eq!(y.len(), r.len());
            for (a, b) in y.iter().zip(&r) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{pt}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn errors() {
        let x = arr(&[0.0; 16], &[1, 1, 4, 4]);
        let e = |o: PoolOptions| pooling(&x, &o).unwrap_err();
        assert!(matches!(
            e(PoolOptions::new(&[2], PoolType::Max)),
            Error::InvalidShape { .. }
        ));
        assert!(matches!(
            e(PoolOptions::new(&[5, 2], PoolType::Max)),
            Error::ShapeMismatch { .. }
        ));
        assert!(matches!(
            e(PoolOptions::new(&[2, 2], PoolType::Max).stride(&[0, 1])),
            Error::InvalidArgument { .. }
        ));
        assert!(matches!(
            e(PoolOptions::new(&[2, 2], PoolType::Max).pad(&[1])),
            Error::InvalidArgument { .. }
        ));
        assert!(matches!(
            e(
                PoolOptions::new(&[2, 2], PoolType::Max)
                    .pooling_convention(PoolingConvention::Same)
            ),
            Error::InvalidArgument { .. }
        ));
        assert!(matches!(
            e(PoolOptions::new(&[], PoolType::Max)),
            Error::InvalidArgument { .. }
        ));
        let xi = NDArray::zeros(&[1, 1, 4], DType::Int32, Context::cpu(0)).unwrap();
        assert!(matches!(
            pooling(&xi, &PoolOptions::new(&[2], PoolType::Max)),
            Err(Error::UnsupportedDType { .. })
        ));
        assert!(matches!(
            pooling(
                &arr(&[0.0; 4], &[2, 2]),
                &PoolOptions::global(PoolType::Max)
            ),
            Err(Error::InvalidShape { .. })
        ));
        assert_eq!("avg".parse::<PoolType>().unwrap(), PoolType::Avg);
        assert!("lp".parse::<PoolType>().is_err());
        assert_eq!(
            "full".parse::<PoolingConvention>().unwrap(),
            PoolingConvention::Full
        );
    }
}
