//! Convolution (MXNet's `Convolution` operator) over 1, 2 or 3 spatial dimensions, NCW / NCHW /
//! NCDHW layout, with strides, dilation, zero padding and groups, and its gradients.
//!
//! Each image and group is a matrix product `out_g (M/G × P) = W_g (M/G × K) · col`, where
//! `col (K × P)` is the im2col matrix of the group's input (`K = C/G · kd·kh·kw`, `P` = output
//! positions). Three forward implementations:
//!
//! * **float32 on CPUs with AVX-512F, 2-D, one group, a multiple of 16 output channels**
//!   (`conv_bcast.rs`, every convolution of the model zoo's ResNets): vectors over output
//!   channels, one broadcast input value per output position, weights packed once into
//!   32-channel panels (the packed copy of an unchanged weight is kept across calls). 75–85%
//!   of the FMA peak per core on resnet18's layers. It can also max-pool its own output
//!   (`convolution_fused` with [`ConvEpilogue::pool`]) without writing it.
//! * **other float32 problems on CPUs with AVX-512F** (see "AVX-512 forward" below): no
//!   im2col at all. The input is copied once into zero-padded phase planes in which every row
//!   of `col` is a fixed offset, and a register-blocked micro-kernel (8 output channels × 48
//!   positions) reads it directly.
//! * **portable** (float64, or no AVX-512): `col` is built one tile of output positions at a
//!   time into a per-thread scratch buffer that stays in L2 and multiplied with the `gemm`
//!   crate; a 1×1 kernel with stride 1 and no padding uses the input itself.
//!
//! Both split large convolutions across the rayon pool (over images, then over output
//! positions, then over output channels when a deep layer has too few positions), with
//! single-threaded inner products; small ones stay on the calling thread. Scratch buffers are
//! per thread and reused, so a forward pass allocates only its output.
//!
//! The backward pass uses im2col tiles and the `gemm` crate: `dW_g += dY_g · colᵀ`,
//! `dcol = W_gᵀ · dY_g` scattered back by col2im, `db = Σ dY`.

use std::cell::Cell;

use gemm::Parallelism;
use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

use super::check_pair;
use super::pool::PoolOptions;
#[cfg(target_arch = "x86_64")]
#[path = "conv_bcast.rs"]
mod bcast;
use crate::autograd::{record_op, tracked, Grad, GradDest};
use crate::dtype::{DType, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::nd::NDArray;

const OP: &str = "Convolution";

/// Below this many floating-point operations a convolution stays on the calling thread: a
/// rayon fork/join costs tens of microseconds on a busy 2-core machine, the time of a few
/// MFLOP of GEMM.
const CONV_PAR_MIN_FLOP: usize = 8 << 20;

/// Elements of one im2col tile (`K × tile width`) on the portable path: 128 Ki f32 = 512 KiB,
/// half of a core's L2 (measured best among 32–256 Ki on resnet18's shapes).
const COL_TILE_ELEMS: usize = 128 << 10;

/// Narrowest tile of output positions (below this the GEMM's per-call packing of the weights
/// costs more than the cache blocking saves).
const MIN_TILE: usize = 64;

/// Scratch buffers larger than this are freed after use instead of kept per thread.
const SCRATCH_KEEP_BYTES: usize = 32 << 20;

/// The float types the convolution and pooling kernels compute in (f32, f64).
pub(crate) trait Real:
    Scalar
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
{
    /// The lowest finite value (the result of a max over an empty window, as in MXNet).
    const LOWEST: Self;
    /// This thread's scratch buffer, at least `len` elements long (contents unspecified).
    fn take_scratch(len: usize) -> Vec<Self>;
    /// Gives a buffer from [`Real::take_scratch`] back to this thread.
    fn put_scratch(v: Vec<Self>);
    /// The convolution forward pass on a specialised path, when this type and CPU have one;
    /// `false` (nothing written) otherwise.
    /// `wsrc` is the array `w` was read from (for caches of derived forms of the weight).
    fn forward_fast(
        g: &ConvGeom,
        x: &[Self],
        w: &[Self],
        wsrc: Option<&NDArray>,
        bias: Option<&[Self]>,
        y: &mut [Self],
        epi: Option<&EpiRef<'_, Self>>,
    ) -> bool;
}

/// A fused epilogue on raw buffers: `y = relu?(conv·a[m] + b[m] + res)` per output channel
/// `m` (`a`, `b` have `M` entries; a bias is folded into `b`), `res` laid out like `y`.
pub(crate) struct EpiRef<'a, T> {
    a: &'a [T],
    b: &'a [T],
    res: Option<&'a [T]>,
    relu: bool,
}

macro_rules! impl_real {
    ($t:ty, $cell:ident, $fast:expr) => {
        thread_local! {
            static $cell: Cell<Vec<$t>> = const { Cell::new(Vec::new()) };
        }
        impl Real for $t {
            const LOWEST: Self = <$t>::MIN;
            fn take_scratch(len: usize) -> Vec<Self> {
                let mut v = $cell.with(Cell::take);
                if v.len() < len {
                    v.resize(len, 0.0);
                }
                v
            }
            fn put_scratch(v: Vec<Self>) {
                if v.len() * std::mem::size_of::<$t>() <= SCRATCH_KEEP_BYTES {
                    $cell.with(|c| {
                        let old = c.take();
                        c.set(if old.len() > v.len() { old } else { v });
                    });
                }
            }
            fn forward_fast(
                g: &ConvGeom,
                x: &[Self],
                w: &[Self],
                wsrc: Option<&NDArray>,
                bias: Option<&[Self]>,
                y: &mut [Self],
                epi: Option<&EpiRef<'_, Self>>,
            ) -> bool {
                let f: fn(
                    &ConvGeom,
                    &[Self],
                    &[Self],
                    Option<&NDArray>,
                    Option<&[Self]>,
                    &mut [Self],
                    Option<&EpiRef<'_, Self>>,
                ) -> bool = $fast;
                f(g, x, w, wsrc, bias, y, epi)
            }
        }
    };
}
#[cfg(target_arch = "x86_64")]
impl_real!(f32, SCRATCH_F32, forward_fast_f32);
#[cfg(not(target_arch = "x86_64"))]
impl_real!(f32, SCRATCH_F32, |_, _, _, _, _, _, _| false);
impl_real!(f64, SCRATCH_F64, |_, _, _, _, _, _, _| false);

#[cfg(test)]
thread_local! {
    /// Tests set this to check the portable path on machines with AVX-512.
    static FORCE_PORTABLE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `$body` with `$T` bound to `f32` or `f64` for a float32 / float64 `$dtype` (callers
/// have checked it is one of them).
macro_rules! dispatch_real {
    ($dtype:expr, $T:ident => $body:expr) => {{
        if $dtype == $crate::dtype::DType::Float64 {
            type $T = f64;
            $body
        } else {
            type $T = f32;
            $body
        }
    }};
}
pub(crate) use dispatch_real;

/// A raw pointer to a buffer of `len` elements that may cross threads. Parallel tasks write
/// disjoint regions of one output through it (each use states why the regions are disjoint).
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T, usize);

impl<T> SendPtr<T> {
    fn new(s: &mut [T]) -> Self {
        SendPtr(s.as_mut_ptr(), s.len())
    }
}
// SAFETY: only used to hand disjoint output regions to rayon tasks that finish before the
// buffer is released (see the uses).
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

/// `dst (m×n, row stride dst_rs) = [dst +] a · b` where element `(i, j)` of `a` is at
/// `a[i·a_rs + j·a_cs]` and of `b` at `b[i·b_rs + j·b_cs]`.
///
/// # Safety
/// Every addressed element must lie inside its allocation, and `dst`'s elements must not be
/// read or written by anyone else during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_ptr<T: Real>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    dst_rs: usize,
    accumulate: bool,
    (a, a_rs, a_cs): (*const T, usize, usize),
    (b, b_rs, b_cs): (*const T, usize, usize),
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of dst (n elements) is inside dst's region (caller).
                unsafe { std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n) }.fill(T::ZERO);
            }
        }
        return;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a,
            a_cs as isize,
            a_rs as isize,
            b,
            b_cs as isize,
            b_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}

// ------------------------------------------------------------------ options and geometry

/// Options of [`convolution`] (MXNet's `Convolution` parameters). `stride`, `dilate` and `pad`
/// may be left empty for their defaults (1, 1 and 0 in every spatial dimension); otherwise
/// they have one entry per kernel dimension.
///
/// ```
/// use mxgluon::nd::ConvOptions;
/// let o = ConvOptions::new(&[3, 3], 16).stride(&[2, 2]).pad(&[1, 1]).num_group(2);
/// assert_eq!(o.kernel, vec![3, 3]);
/// assert!(!o.no_bias);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvOptions {
    /// Kernel size: `(w,)`, `(h, w)` or `(d, h, w)`; its length picks 1-, 2- or 3-D.
    pub kernel: Vec<usize>,
    /// Stride per spatial dimension (empty: 1).
    pub stride: Vec<usize>,
    /// Dilation per spatial dimension (empty: 1).
    pub dilate: Vec<usize>,
    /// Zero padding on both sides per spatial dimension (empty: 0).
    pub pad: Vec<usize>,
    /// Number of output channels.
    pub num_filter: usize,
    /// Number of groups: input and output channels are split into this many groups and group
    /// `i` of the output sees only group `i` of the input (`num_group = channels` is a
    /// depthwise convolution).
    pub num_group: usize,
    /// Whether the operator takes no bias.
    pub no_bias: bool,
}

impl ConvOptions {
    /// Options for `num_filter` outputs with a `kernel`, stride 1, no dilation or padding, one
    /// group and a bias.
    pub fn new(kernel: &[usize], num_filter: usize) -> ConvOptions {
        ConvOptions {
            kernel: kernel.to_vec(),
            stride: Vec::new(),
            dilate: Vec::new(),
            pad: Vec::new(),
            num_filter,
            num_group: 1,
            no_bias: false,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: &[usize]) -> Self {
        self.stride = stride.to_vec();
        self
    }

    /// Sets the dilation.
    pub fn dilate(mut self, dilate: &[usize]) -> Self {
        self.dilate = dilate.to_vec();
        self
    }

    /// Sets the zero padding.
    pub fn pad(mut self, pad: &[usize]) -> Self {
        self.pad = pad.to_vec();
        self
    }

    /// Sets the number of groups.
    pub fn num_group(mut self, groups: usize) -> Self {
        self.num_group = groups;
        self
    }

    /// Sets whether there is no bias.
    pub fn no_bias(mut self, no_bias: bool) -> Self {
        self.no_bias = no_bias;
        self
    }
}

/// Resolves an optional per-dimension list: empty → `default` everywhere, else it must have
/// `nd` entries.
pub(crate) fn spatial_param(
    op: &'static str,
    what: &str,
    v: &[usize],
    nd: usize,
    default: usize,
    kernel: &[usize],
) -> Result<[usize; 3]> {
    let mut out = [default; 3];
    if v.is_empty() {
        return Ok(out);
    }
    if v.len() != nd {
        return Err(Error::invalid_arg(
            op,
            format!(
                "{what} must have the same number of dimensions as the kernel, but the kernel is {} and {what} is {}",
                fmt_shape(kernel),
                fmt_shape(v)
            ),
        ));
    }
    out[3 - nd..].copy_from_slice(v);
    Ok(out)
}

/// The spatial dimensions of `shape[2..]` right-aligned in three (missing leading ones are 1).
pub(crate) fn spatial3(shape: &[usize]) -> [usize; 3] {
    let mut out = [1; 3];
    let s = &shape[2..];
    out[3 - s.len()..].copy_from_slice(s);
    out
}

/// Everything the kernels need to know about one convolution; 1-D and 2-D problems are 3-D
/// ones with leading spatial sizes 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    n: usize,
    c: usize,
    m: usize,
    groups: usize,
    input: [usize; 3],
    out: [usize; 3],
    kernel: [usize; 3],
    stride: [usize; 3],
    dilate: [usize; 3],
    pad: [usize; 3],
}

impl ConvGeom {
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    fn mg(&self) -> usize {
        self.m / self.groups
    }
    /// Rows of the im2col matrix of one group.
    fn kg(&self) -> usize {
        self.cg() * self.kernel.iter().product::<usize>()
    }
    fn pin(&self) -> usize {
        self.input.iter().product()
    }
    fn pout(&self) -> usize {
        self.out.iter().product()
    }
    /// A 1×1 kernel with stride 1 and no padding: the input is its own im2col matrix.
    fn pointwise(&self) -> bool {
        self.kernel == [1; 3] && self.stride == [1; 3] && self.pad == [0; 3]
    }
    fn flop(&self) -> usize {
        2usize
            .saturating_mul(self.n)
            .saturating_mul(self.m)
            .saturating_mul(self.kg())
            .saturating_mul(self.pout())
    }
}

/// Checks the operands against MXNet's rules and returns the geometry and the output shape.
fn resolve(
    data: &NDArray,
    weight: &NDArray,
    bias: Option<&NDArray>,
    o: &ConvOptions,
) -> Result<(ConvGeom, Vec<usize>)> {
    check_pair(OP, data, weight)?;
    if let Some(b) = bias {
        check_pair(OP, data, b)?;
    }
    let dtype = data.dtype();
    if !matches!(dtype, DType::Float32 | DType::Float64) {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype,
            hint: "convolution computes in float32 or float64".into(),
        });
    }
    let nd = o.kernel.len();
    if !(1..=3).contains(&nd) {
        return Err(Error::invalid_arg(
            OP,
            format!(
                "the kernel must have 1, 2 or 3 dimensions, got {}",
                fmt_shape(&o.kernel)
            ),
        ));
    }
    let kernel = spatial_param(OP, "kernel", &o.kernel, nd, 1, &o.kernel)?;
    let stride = spatial_param(OP, "stride", &o.stride, nd, 1, &o.kernel)?;
    let dilate = spatial_param(OP, "dilate", &o.dilate, nd, 1, &o.kernel)?;
    let pad = spatial_param(OP, "pad", &o.pad, nd, 0, &o.kernel)?;
    for (what, v) in [
        ("kernel", &kernel),
        ("stride", &stride),
        ("dilate", &dilate),
    ] {
        if v.contains(&0) {
            return Err(Error::invalid_arg(
                OP,
                format!("every {what} size must be positive"),
            ));
        }
    }
    if o.num_filter == 0 || o.num_group == 0 {
        return Err(Error::invalid_arg(
            OP,
            format!(
                "num_filter and num_group must be positive, got {} and {}",
                o.num_filter, o.num_group
            ),
        ));
    }
    let ds = data.shape();
    if ds.len() != nd + 2 {
        let layout = ["NCW", "NCHW", "NCDHW"][nd - 1];
        return Err(Error::InvalidShape {
            op: OP,
            shape: ds.to_vec(),
            reason: format!(
                "a {nd}-D convolution needs {}-D data in {layout} layout",
                nd + 2
            ),
        });
    }
    let (n, c) = (ds[0], ds[1]);
    let g = o.num_group;
    if !c.is_multiple_of(g) {
        return Err(Error::invalid_arg(
            OP,
            format!("the {c} input channels cannot be split into num_group = {g} groups"),
        ));
    }
    if !o.num_filter.is_multiple_of(g) {
        return Err(Error::invalid_arg(
            OP,
            format!(
                "num_filter = {} cannot be split into num_group = {g} groups",
                o.num_filter
            ),
        ));
    }
    let input = spatial3(ds);
    let mut out = [1; 3];
    for i in 0..3 {
        let dk = 1 + (kernel[i] - 1) * dilate[i];
        let padded = input[i] + 2 * pad[i];
        if dk > padded {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: ds.to_vec(),
                rhs: o.kernel.clone(),
                detail: format!(
                    "the (dilated) kernel size {dk} exceeds the padded input size {padded}"
                ),
            });
        }
        out[i] = (padded - dk) / stride[i] + 1;
    }
    let mut wshape = vec![o.num_filter, c / g];
    wshape.extend_from_slice(&o.kernel);
    if weight.shape() != wshape.as_slice() {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: ds.to_vec(),
            rhs: weight.shape().to_vec(),
            detail: format!(
                "the weight must have shape {} (num_filter, channels / num_group, *kernel)",
                fmt_shape(&wshape)
            ),
        });
    }
    match (bias, o.no_bias) {
        (Some(_), true) => {
            return Err(Error::invalid_arg(
                OP,
                "a bias was given but no_bias is set",
            ))
        }
        (None, false) => {
            return Err(Error::invalid_arg(
                OP,
                "no bias was given; pass one or set no_bias",
            ))
        }
        (Some(b), false) if b.shape() != [o.num_filter] => {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: weight.shape().to_vec(),
                rhs: b.shape().to_vec(),
                detail: format!("the bias must have shape ({},) (num_filter,)", o.num_filter),
            });
        }
        _ => {}
    }
    let mut oshape = vec![n, o.num_filter];
    oshape.extend_from_slice(&out[3 - nd..]);
    let geo = ConvGeom {
        n,
        c,
        m: o.num_filter,
        groups: g,
        input,
        out,
        kernel,
        stride,
        dilate,
        pad,
    };
    Ok((geo, oshape))
}

// ------------------------------------------------------------------ im2col / col2im

/// The positions `t` in `0..len` with `0 <= (start + t)·stride + off < size`, as `lo..hi`.
#[inline]
pub(crate) fn valid_range(
    len: usize,
    start: usize,
    stride: usize,
    off: isize,
    size: usize,
) -> (usize, usize) {
    // Smallest q with q·stride + off >= 0, and smallest q with q·stride + off >= size.
    let first = if off >= 0 {
        0
    } else {
        off.unsigned_abs().div_ceil(stride)
    };
    let end = if size as isize - off <= 0 {
        0
    } else {
        ((size as isize - off) as usize).div_ceil(stride)
    };
    let lo = first.saturating_sub(start).min(len);
    let hi = end.saturating_sub(start).min(len).max(lo);
    (lo, hi)
}

/// Walks the output positions `p0..p0 + pb` of one kernel offset as runs along the last axis:
/// calls `f(j, run length, ow start, Some(input row start) or None)` for each run, where `j`
/// is the run's first column in the tile and the input row is `None` when the run lies in
/// padding along the first two axes.
#[inline]
fn for_runs(
    g: &ConvGeom,
    p0: usize,
    pb: usize,
    (a, b): (usize, usize),
    mut f: impl FnMut(usize, usize, usize, Option<usize>),
) {
    let [id, ih, iw] = g.input;
    let [_, oh_n, ow_n] = g.out;
    let off_d = (a * g.dilate[0]) as isize - g.pad[0] as isize;
    let off_h = (b * g.dilate[1]) as isize - g.pad[1] as isize;
    let mut ow = p0 % ow_n;
    let mut oh = (p0 / ow_n) % oh_n;
    let mut od = p0 / (ow_n * oh_n);
    let mut j = 0;
    while j < pb {
        let run = (ow_n - ow).min(pb - j);
        let zi = (od * g.stride[0]) as isize + off_d;
        let yi = (oh * g.stride[1]) as isize + off_h;
        let row = if zi < 0 || zi >= id as isize || yi < 0 || yi >= ih as isize {
            None
        } else {
            Some((zi as usize * ih + yi as usize) * iw)
        };
        f(j, run, ow, row);
        j += run;
        ow = 0;
        oh += 1;
        if oh == oh_n {
            oh = 0;
            od += 1;
        }
    }
}

/// Fills `col` (`kg × pb`, row-major) with the im2col tile of output positions `p0..p0+pb`
/// for the channels `c_begin..c_end` of one group's input `x` (`cg` planes of `pin`).
fn im2col<T: Real>(
    g: &ConvGeom,
    x: &[T],
    p0: usize,
    pb: usize,
    chans: (usize, usize),
    col: &mut [T],
) {
    let ks: usize = g.kernel.iter().product();
    im2col_rows(g, x, (chans.0 * ks, chans.1 * ks), (p0, pb), col, pb);
}

/// Fills rows `k0..k1` of the im2col matrix of one group's input `x`, for output positions
/// `p0..p0+pb`, into `col` (row `k` at `col[(k − k0)·ld..]`). Row `k` is channel `c`, kernel
/// offset `(a, b, e)` with `k = ((c·kd + a)·kh + b)·kw + e`.
fn im2col_rows<T: Real>(
    g: &ConvGeom,
    x: &[T],
    (k0, k1): (usize, usize),
    (p0, pb): (usize, usize),
    col: &mut [T],
    ld: usize,
) {
    let [kd, kh, kw] = g.kernel;
    let (pin, iw, sw) = (g.pin(), g.input[2], g.stride[2]);
    for k in k0..k1 {
        let (e, rest) = (k % kw, k / kw);
        let (b, rest) = (rest % kh, rest / kh);
        let (a, c) = (rest % kd, rest / kd);
        let xc = &x[c * pin..(c + 1) * pin];
        let dst = &mut col[(k - k0) * ld..(k - k0) * ld + pb];
        let off_w = (e * g.dilate[2]) as isize - g.pad[2] as isize;
        for_runs(g, p0, pb, (a, b), |j, run, ow, src_row| {
            let out = &mut dst[j..j + run];
            let Some(r) = src_row else {
                out.fill(T::ZERO);
                return;
            };
            let src = &xc[r..r + iw];
            let (lo, hi) = valid_range(run, ow, sw, off_w, iw);
            out[..lo].fill(T::ZERO);
            out[hi..].fill(T::ZERO);
            if lo == hi {
                return;
            }
            let s0 = (((ow + lo) * sw) as isize + off_w) as usize;
            if sw == 1 {
                out[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
            } else {
                for (o, s) in out[lo..hi].iter_mut().zip(src[s0..].iter().step_by(sw)) {
                    *o = *s;
                }
            }
        });
    }
}

/// Adds the im2col-shaped tile `col` (`kg × pb`) back into one group's input gradient `dx`
/// (the transpose of [`im2col`]).
fn col2im<T: Real>(g: &ConvGeom, col: &[T], p0: usize, pb: usize, dx: &mut [T]) {
    let [kd, kh, kw] = g.kernel;
    let (pin, iw, sw) = (g.pin(), g.input[2], g.stride[2]);
    let mut row = 0;
    for c in 0..g.cg() {
        let dc = &mut dx[c * pin..(c + 1) * pin];
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let src = &col[row * pb..(row + 1) * pb];
                    row += 1;
                    let off_w = (e * g.dilate[2]) as isize - g.pad[2] as isize;
                    for_runs(g, p0, pb, (a, b), |j, run, ow, dst_row| {
                        let Some(r) = dst_row else { return };
                        let dst = &mut dc[r..r + iw];
                        let (lo, hi) = valid_range(run, ow, sw, off_w, iw);
                        if lo == hi {
                            return;
                        }
                        let s = &src[j + lo..j + hi];
                        let d0 = (((ow + lo) * sw) as isize + off_w) as usize;
                        if sw == 1 {
                            for (d, v) in dst[d0..d0 + s.len()].iter_mut().zip(s) {
                                *d += *v;
                            }
                        } else {
                            for (d, v) in dst[d0..].iter_mut().step_by(sw).zip(s) {
                                *d += *v;
                            }
                        }
                    });
                }
            }
        }
    }
}

// ------------------------------------------------------------------ forward

/// How the output positions are cut into tiles: `(tile width, tile count)`.
fn tiles(g: &ConvGeom, parallel: bool) -> (usize, usize) {
    let p = g.pout();
    if p == 0 {
        return (1, 0);
    }
    let mut pb = if g.pointwise() {
        p
    } else {
        (COL_TILE_ELEMS / g.kg().max(1)).max(MIN_TILE)
    };
    if parallel {
        // Enough tiles for every thread to get about four.
        let want = 4 * rayon::current_num_threads();
        let per_image = want.div_ceil((g.n * g.groups).max(1));
        pb = pb.min(p.div_ceil(per_image).max(MIN_TILE));
    }
    if pb >= p {
        return (p, 1);
    }
    // Balance the tiles and round their width up to whole SIMD vectors.
    let count = p.div_ceil(pb);
    let pb = p.div_ceil(count).next_multiple_of(16).min(p);
    (pb, p.div_ceil(pb))
}

/// One image's group-`grp` slice of the output: fills rows `m0..m1` (within the group),
/// columns `p0..p0+pb` with bias and/or `W · col`.
///
/// # Safety
/// `y` must be the whole output buffer; no other thread may touch this region meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn forward_block<T: Real>(
    g: &ConvGeom,
    y: SendPtr<T>,
    w: &[T],
    bias: Option<&[T]>,
    (n, grp): (usize, usize),
    (m0, m1): (usize, usize),
    (p0, pb): (usize, usize),
    (rhs, rhs_rs): (&[T], usize),
    par: Parallelism,
) {
    let (p, kg, mg) = (g.pout(), g.kg(), g.mg());
    let row0 = n * g.m + grp * mg + m0;
    let rows = m1 - m0;
    if rows == 0 || pb == 0 {
        return;
    }
    assert!((row0 + rows - 1) * p + p0 + pb <= y.1 && p0 + pb <= p);
    // SAFETY: rows row0..row0+rows, columns p0..p0+pb of the (N·M × P) output are in bounds
    // (asserted) and owned by this call (caller).
    let dst = unsafe { y.0.add(row0 * p + p0) };
    if let Some(b) = bias {
        for r in 0..rows {
            let v = b[grp * mg + m0 + r];
            // SAFETY: as above, one row segment of the region.
            unsafe { std::slice::from_raw_parts_mut(dst.add(r * p), pb) }.fill(v);
        }
    }
    let wg = &w[(grp * mg + m0) * kg..(grp * mg + m1) * kg];
    assert!(kg == 0 || rhs.len() > (kg - 1) * rhs_rs + pb - 1);
    // SAFETY: wg is rows×kg, rhs is kg×pb with row stride rhs_rs (asserted), dst as above.
    unsafe {
        gemm_ptr(
            (rows, pb, kg),
            dst,
            p,
            bias.is_some(),
            (wg.as_ptr(), kg, 1),
            (rhs.as_ptr(), rhs_rs, 1),
            par,
        )
    }
}

/// The forward pass on raw buffers: `y` is `(N, M, P)`.
#[cfg(test)]
fn forward<T: Real>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    epi: Option<&EpiRef<'_, T>>,
) {
    forward_w(g, x, w, None, bias, y, epi)
}

/// The forward pass on raw buffers: `y` is `(N, M, P)`; `wsrc` is the array `w` was read
/// from (the fast path keeps a packed copy of an unchanged weight).
fn forward_w<T: Real>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    wsrc: Option<&NDArray>,
    bias: Option<&[T]>,
    y: &mut [T],
    epi: Option<&EpiRef<'_, T>>,
) {
    if T::forward_fast(g, x, w, wsrc, bias, y, epi) {
        return;
    }
    match epi {
        None => forward_portable(g, x, w, bias, y),
        Some(e) => {
            // The bias is folded into the epilogue's offsets.
            forward_portable(g, x, w, None, y);
            apply_epilogue(g, e, y);
        }
    }
}

/// Applies a fused epilogue to a finished `(N, M, P)` output (the portable path's fusion is
/// a second pass).
fn apply_epilogue<T: Real>(g: &ConvGeom, e: &EpiRef<'_, T>, y: &mut [T]) {
    let p = g.pout();
    if p == 0 {
        return;
    }
    let row = |(r, yr): (usize, &mut [T])| {
        let m = r % g.m;
        let (a, b) = (e.a[m], e.b[m]);
        match e.res {
            Some(res) => {
                for (v, &s) in yr.iter_mut().zip(&res[r * p..(r + 1) * p]) {
                    *v = *v * a + b + s;
                }
            }
            None => yr.iter_mut().for_each(|v| *v = *v * a + b),
        }
        if e.relu {
            yr.iter_mut().for_each(|v| {
                // NaN becomes 0, as the AVX-512 path's max does.
                *v = if *v > T::ZERO { *v } else { T::ZERO };
            });
        }
    };
    if y.len() >= 1 << 16 && rayon::current_num_threads() > 1 {
        y.par_chunks_mut(p).enumerate().for_each(row);
    } else {
        y.chunks_mut(p).enumerate().for_each(row);
    }
}

/// The im2col + GEMM forward pass.
fn forward_portable<T: Real>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    let (p, kg, mg, cg, pin) = (g.pout(), g.kg(), g.mg(), g.cg(), g.pin());
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && g.flop() >= CONV_PAR_MIN_FLOP;
    let (pb_max, ntiles) = tiles(g, parallel);
    let units = g.n * g.groups * ntiles;
    if units == 0 || mg == 0 {
        return;
    }
    let yp = SendPtr::new(y);
    let pointwise = g.pointwise();
    let xg =
        |n: usize, grp: usize| &x[(n * g.c + grp * cg) * pin..(n * g.c + (grp + 1) * cg) * pin];
    let unit = |u: usize| {
        let (ng, t) = (u / ntiles, u % ntiles);
        let (n, grp) = (ng / g.groups, ng % g.groups);
        let p0 = t * pb_max;
        (n, grp, p0, pb_max.min(p - p0))
    };
    let run_unit = |u: usize| {
        let (n, grp, p0, pb) = unit(u);
        if pointwise {
            // SAFETY: units write disjoint (image, group, tile) regions of y.
            unsafe {
                forward_block(
                    g,
                    yp,
                    w,
                    bias,
                    (n, grp),
                    (0, mg),
                    (p0, pb),
                    (&xg(n, grp)[p0..], pin),
                    Parallelism::None,
                )
            };
        } else {
            let mut col = T::take_scratch(kg * pb);
            im2col(g, xg(n, grp), p0, pb, (0, cg), &mut col);
            // SAFETY: as above.
            unsafe {
                forward_block(
                    g,
                    yp,
                    w,
                    bias,
                    (n, grp),
                    (0, mg),
                    (p0, pb),
                    (&col, pb),
                    Parallelism::None,
                )
            };
            T::put_scratch(col);
        }
    };
    if !parallel {
        (0..units).for_each(run_unit);
    } else if units >= threads {
        (0..units).into_par_iter().for_each(run_unit);
    } else {
        // Fewer tiles than threads (deep layer, small image): build each tile once, in
        // parallel over channels, and split the GEMM's output channels across threads.
        let chunk = mg.div_ceil(2 * threads).next_multiple_of(16).min(mg);
        for u in 0..units {
            let (n, grp, p0, pb) = unit(u);
            let mut col = Vec::new();
            let (rhs, rs): (&[T], usize) = if pointwise {
                (&xg(n, grp)[p0..], pin)
            } else {
                col = T::take_scratch((kg * pb).max(1));
                let per_c = (kg / cg.max(1)).max(1);
                let cchunk = cg.div_ceil(2 * threads).max(1);
                col[..kg * pb]
                    .par_chunks_mut(cchunk * per_c * pb)
                    .enumerate()
                    .for_each(|(i, part)| {
                        let c0 = i * cchunk;
                        im2col(g, xg(n, grp), p0, pb, (c0, (c0 + cchunk).min(cg)), part)
                    });
                (&col, pb)
            };
            (0..mg.div_ceil(chunk)).into_par_iter().for_each(|i| {
                let m0 = i * chunk;
                // SAFETY: the chunks cover disjoint output rows of this unit.
                unsafe {
                    forward_block(
                        g,
                        yp,
                        w,
                        bias,
                        (n, grp),
                        (m0, (m0 + chunk).min(mg)),
                        (p0, pb),
                        (rhs, rs),
                        Parallelism::None,
                    )
                };
            });
            if !col.is_empty() {
                T::put_scratch(col);
            }
        }
    }
}

// ------------------------------------------------------------------ AVX-512 forward (f32)
//
// Every convolution is computed directly, without im2col. A convolution with strides
// `(sd, sh, sw)` equals a stride-1 convolution over the `sd·sh·sw` phase planes of the
// zero-padded input (plane `(pd, ph, pw)` holds the padded elements at `(sd·i + pd,
// sh·j + ph, sw·l + pw)`), with kernel tap `t` of stride `s` and dilation `d` reading phase
// `t·d mod s` shifted by `⌊t·d / s⌋`. After one pass that copies the input into its phase
// planes, reduction row `k` (channel, tap) is a fixed offset into them, and output positions
// laid out row-major with the planes' width ("virtual" positions, a few of which at the end
// of every row are discarded) are contiguous. The micro-kernel multiplies `MR` weight rows by
// `16·NV` virtual positions and stores the valid lanes of each vector with masks.

/// Output channels per micro-kernel call.
const MR: usize = 8;
/// Virtual positions per micro-kernel call: three 16-lane vectors.
const NR: usize = 48;
/// Reduction rows per block: an `MR × KC` weight panel stays in L1 while the item's position
/// blocks stream past it, and the accumulators are reloaded only every `KC` rows.
const KC: usize = 512;
/// Virtual positions per work item (rounded to whole output rows).
const PW: usize = 192;
/// Phase planes of the images one task computes together stay below this (half of L2).
const GROUP_PLANES_BYTES: usize = 1 << 20;
/// Most images per task.
const MAX_GROUP_IMAGES: usize = 8;

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// Where lanes of accumulator vector `j` go: the lanes in `mask` are stored at
    /// `c + i·ldc + off + lane`.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Seg {
        pub j: usize,
        pub mask: u16,
        pub off: isize,
    }

    /// The micro-kernel: for `i < MR` and the `16·NV` virtual positions `j`,
    /// `acc[i][j] = (accumulate ? C : bias[i] or 0) + Σ_{k<kc} A[i][k]·B[k][j]` with
    /// `A[i][k] = a[i·lda + k]` and `B[k][j] = b[offs[k] + j]` (the last vector's lanes
    /// limited to `bmask`), then passed through the epilogue `epi` when given and stored (and,
    /// when accumulating, first loaded) through `segs`.
    ///
    /// # Safety
    /// AVX-512F must be available, `offs` must hold `kc` entries, every element read by an
    /// unmasked lane must be inside its allocation, the segments must address elements
    /// of `c`'s allocation that the caller owns, and an epilogue's `a` / `b` must hold `MR`
    /// entries and its residual (when not null) the segments' elements.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn kernel<const MR: usize, const NV: usize>(
        kc: usize,
        (a, lda): (*const f32, usize),
        (b, offs, bmask): (*const f32, *const isize, u16),
        (c, ldc): (*mut f32, usize),
        segs: &[Seg],
        accumulate: bool,
        bias: *const f32,
        epi: Option<&Epi>,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        // SAFETY (all unsafe blocks): the addresses are valid by the caller's contract;
        // `wrapping_offset` because a segment's base may precede its first stored lane.
        if accumulate {
            for j in 0..NV {
                for sg in segs.iter().filter(|sg| sg.j == j) {
                    for (i, row) in acc.iter_mut().enumerate() {
                        let p = c.wrapping_offset((i * ldc) as isize + sg.off);
                        row[j] = unsafe { _mm512_mask_loadu_ps(row[j], sg.mask, p) };
                    }
                }
            }
        } else if !bias.is_null() {
            for (i, row) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(unsafe { *bias.add(i) });
                row.iter_mut().for_each(|x| *x = v);
            }
        }
        for k in 0..kc {
            let bp = unsafe { b.offset(*offs.add(k)) };

            let mut bv = [_mm512_setzero_ps(); NV];
            for (j, v) in bv.iter_mut().enumerate() {
                *v = if j + 1 == NV {
                    unsafe { _mm512_maskz_loadu_ps(bmask, bp.add(16 * j)) }
                } else {
                    unsafe { _mm512_loadu_ps(bp.add(16 * j)) }
                };
            }
            let ak = unsafe { a.add(k) };
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(unsafe { *ak.add(i * lda) });
                for (v, bj) in row.iter_mut().zip(&bv) {
                    *v = _mm512_fmadd_ps(av, *bj, *v);
                }
            }
        }
        if let Some(e) = epi {
            // The fused epilogue: y = relu?(acc·a + b + residual), per row i.
            for (i, row) in acc.iter_mut().enumerate() {
                let (av, bv) =
                    unsafe { (_mm512_set1_ps(*e.a.add(i)), _mm512_set1_ps(*e.b.add(i))) };
                for v in row.iter_mut() {
                    *v = _mm512_fmadd_ps(*v, av, bv);
                }
            }
            if !e.res.is_null() {
                for j in 0..NV {
                    for sg in segs.iter().filter(|sg| sg.j == j) {
                        for (i, row) in acc.iter_mut().enumerate() {
                            let p = e.res.wrapping_offset((i * ldc) as isize + sg.off);
                            let r = unsafe { _mm512_maskz_loadu_ps(sg.mask, p) };
                            row[j] = _mm512_add_ps(row[j], r);
                        }
                    }
                }
            }
            if e.relu {
                let z = _mm512_setzero_ps();
                for row in acc.iter_mut() {
                    for v in row.iter_mut() {
                        *v = _mm512_max_ps(*v, z);
                    }
                }
            }
        }
        for j in 0..NV {
            for sg in segs.iter().filter(|sg| sg.j == j) {
                for (i, row) in acc.iter().enumerate() {
                    let p = c.wrapping_offset((i * ldc) as isize + sg.off);
                    unsafe { _mm512_mask_storeu_ps(p, sg.mask, row[j]) };
                }
            }
        }
    }

    /// `dst[i] = src[2·i]` for every `i < dst.len()` (`src` must hold `2·dst.len() − 1`
    /// elements): the stride-2 column gather of the phase planes, 16 outputs per two loads.
    pub(super) fn every_other(dst: &mut [f32], src: &[f32]) {
        let n = dst.len();
        assert!(n == 0 || src.len() > 2 * (n - 1));
        // Whole vectors while both source loads stay inside `src`.
        let full = if std::arch::is_x86_feature_detected!("avx512f") {
            (src.len() / 32).min(n / 16)
        } else {
            0
        };
        if full > 0 {
            // SAFETY: AVX-512F was detected; the reads src[32·v .. 32·v + 32] and writes
            // dst[16·v .. 16·v + 16] are in bounds for v < full (asserted by `full`'s bound).
            unsafe { every_other_avx512(dst.as_mut_ptr(), src.as_ptr(), full) };
        }
        for i in 16 * full..n {
            dst[i] = src[2 * i];
        }
    }

    /// # Safety
    /// AVX-512F must be available; `src` must hold `32·vectors` and `dst` `16·vectors`
    /// elements.
    #[target_feature(enable = "avx512f")]
    unsafe fn every_other_avx512(dst: *mut f32, src: *const f32, vectors: usize) {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for v in 0..vectors {
            // SAFETY: in bounds by the caller's contract.
            unsafe {
                let lo = _mm512_loadu_ps(src.add(32 * v));
                let hi = _mm512_loadu_ps(src.add(32 * v + 16));
                _mm512_storeu_ps(dst.add(16 * v), _mm512_permutex2var_ps(lo, even, hi));
            }
        }
    }

    /// The epilogue applied before the last store: per-row multiplier `a[i]` and offset
    /// `b[i]`, an optional residual laid out like `c` (same `ldc` and segment offsets), and an
    /// optional ReLU.
    #[derive(Clone, Copy)]
    pub(super) struct Epi {
        pub a: *const f32,
        pub b: *const f32,
        pub res: *const f32,
        pub relu: bool,
    }
}

/// One micro-kernel block of virtual positions: its start, width and store segments.
#[cfg(target_arch = "x86_64")]
struct Block {
    q: usize,
    width: usize,
    segs: SmallVec<[simd::Seg; 6]>,
}

/// Calls the micro-kernel for `mr ≤ MR` channels on `blk`.
///
/// # Safety
/// As [`simd::kernel`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    mr: usize,
    blk: &Block,
    kc: usize,
    a: (*const f32, usize),
    (b, offs): (*const f32, *const isize),
    c: (*mut f32, usize),
    accumulate: bool,
    bias: *const f32,
    epi: Option<&simd::Epi>,
) {
    let nv = blk.width.div_ceil(16);
    let tail = blk.width - 16 * (nv - 1);
    let bmask: u16 = if tail == 16 {
        0xFFFF
    } else {
        (1u16 << tail) - 1
    };
    // SAFETY: the block's positions start at b + q.
    let b = (unsafe { b.add(blk.q) }, offs, bmask);
    let segs = &blk.segs[..];
    macro_rules! dispatch {
        ($($m:literal)*) => {
            match (mr, nv) {
                $(
                    ($m, 1) => unsafe { simd::kernel::<$m, 1>(kc, a, b, c, segs, accumulate, bias, epi) },
                    ($m, 2) => unsafe { simd::kernel::<$m, 2>(kc, a, b, c, segs, accumulate, bias, epi) },
                    ($m, 3) => unsafe { simd::kernel::<$m, 3>(kc, a, b, c, segs, accumulate, bias, epi) },
                )*
                // Unreachable: the only caller passes `mr = MR.min(m1 - m)` with `m < m1`, so
                // 1 ≤ mr ≤ 8, and blocks of width 1 ≤ width ≤ per_block ≤ NR = 48, so
                // 1 ≤ nv ≤ 3: every such pair is listed above.
                _ => unreachable!("blocks are at most MR × NR"),
            }
        };
    }
    dispatch!(1 2 3 4 5 6 7 8)
}

/// One forward problem on the fast path.
#[cfg(target_arch = "x86_64")]
struct Fast<'a> {
    g: &'a ConvGeom,
    x: &'a [f32],
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    epi: Option<&'a EpiRef<'a, f32>>,
    y: SendPtr<f32>,
    /// 1×1, stride 1, no padding: the input is read as it is (no phase planes).
    pointwise: bool,
    /// Phase-plane sizes (the virtual layout's dimensions).
    vdims: [usize; 3],
    /// Number of phases some tap reads.
    phases: usize,
    /// The phase (`(pd·sh + ph)·sw + pw`) held in each slot of a channel's planes.
    slots: Vec<usize>,
    /// Reduction row `k` starts at this offset in the phase planes.
    offs: Vec<isize>,
    /// Output rows per work item.
    rows_per: usize,
}

#[cfg(target_arch = "x86_64")]
impl Fast<'_> {
    fn new<'a>(
        g: &'a ConvGeom,
        x: &'a [f32],
        w: &'a [f32],
        bias: Option<&'a [f32]>,
        epi: Option<&'a EpiRef<'a, f32>>,
        y: &mut [f32],
    ) -> Fast<'a> {
        let pointwise = g.pointwise();
        let vdims = [0, 1, 2].map(|i| (g.input[i] + 2 * g.pad[i]).div_ceil(g.stride[i]));
        let plane: usize = vdims.iter().product();
        let [kd, kh, kw] = g.kernel;
        // The phases some tap reads (a 1×1 kernel of stride 2 reads one of four), each given
        // a slot in the planes of every channel.
        let mut slot_of = vec![usize::MAX; g.stride.iter().product()];
        let mut slots = Vec::new();
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let t = [a, b, e];
                    let ph = (0..3).fold(0, |acc, i| {
                        acc * g.stride[i] + t[i] * g.dilate[i] % g.stride[i]
                    });
                    if slot_of[ph] == usize::MAX {
                        slot_of[ph] = slots.len();
                        slots.push(ph);
                    }
                }
            }
        }
        let phases = slots.len();
        let mut offs = Vec::with_capacity(g.kg());
        for c in 0..g.cg() {
            for a in 0..kd {
                for b in 0..kh {
                    for e in 0..kw {
                        let t = [a, b, e];
                        let mut phase = 0;
                        let mut shift = 0;
                        for i in 0..3 {
                            let td = t[i] * g.dilate[i];
                            phase = phase * g.stride[i] + td % g.stride[i];
                            shift = shift * vdims[i] + td / g.stride[i];
                        }
                        offs.push(((c * phases + slot_of[phase]) * plane + shift) as isize);
                    }
                }
            }
        }
        Fast {
            g,
            x,
            w,
            bias,
            epi,
            y: SendPtr::new(y),
            pointwise,
            vdims,
            phases,
            slots,
            offs,
            rows_per: {
                // At most PW virtual positions per item, and items of (nearly) equal height:
                // 14 rows in two items are 7 + 7, not 12 + 2.
                let most = (PW / vdims[2]).max(1);
                g.out[1].div_ceil(g.out[1].div_ceil(most).max(1)).max(1)
            },
        }
    }

    /// One image's group `grp` input.
    fn xg(&self, n: usize, grp: usize) -> &[f32] {
        let (cg, pin) = (self.g.cg(), self.g.pin());
        &self.x[(n * self.g.c + grp * cg) * pin..(n * self.g.c + (grp + 1) * cg) * pin]
    }

    /// Length of one image's phase planes, with slack for the discarded lanes' reads.
    fn planes_len(&self) -> usize {
        self.g.cg() * self.phases * self.vdims.iter().product::<usize>() + 64
    }

    /// Copies one image's group into its zero-padded phase planes.
    fn fill_planes(&self, n: usize, grp: usize, buf: &mut [f32], parallel: bool) {
        let g = self.g;
        let [vd, vh, vw] = self.vdims;
        let [sd, sh, sw] = g.stride;
        let [d, h, w] = g.input;
        let plane = vd * vh * vw;
        let xg = self.xg(n, grp);
        // Channel c's phases.
        let one = |c: usize, dst: &mut [f32]| {
            for (&ph, out) in self.slots.iter().zip(dst.chunks_mut(plane)) {
                let (pz, py, px) = (ph / (sh * sw), ph / sw % sh, ph % sw);
                for iz in 0..vd {
                    for iy in 0..vh {
                        let row = &mut out[(iz * vh + iy) * vw..(iz * vh + iy + 1) * vw];
                        let zi = (iz * sd + pz) as isize - g.pad[0] as isize;
                        let yi = (iy * sh + py) as isize - g.pad[1] as isize;
                        if zi < 0 || zi >= d as isize || yi < 0 || yi >= h as isize {
                            row.fill(0.0);
                            continue;
                        }
                        let src = &xg[c * g.pin() + (zi as usize * h + yi as usize) * w..][..w];
                        let off = px as isize - g.pad[2] as isize;
                        let (lo, hi) = valid_range(vw, 0, sw, off, w);
                        row[..lo].fill(0.0);
                        row[hi..].fill(0.0);
                        if lo == hi {
                            continue;
                        }
                        let s0 = ((lo * sw) as isize + off) as usize;
                        if sw == 1 {
                            row[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
                        } else if sw == 2 {
                            simd::every_other(&mut row[lo..hi], &src[s0..]);
                        } else {
                            for (o, v) in row[lo..hi].iter_mut().zip(src[s0..].iter().step_by(sw)) {
                                *o = *v;
                            }
                        }
                    }
                }
            }
        };
        let per_c = self.phases * plane;
        let body = &mut buf[..g.cg() * per_c];
        if parallel {
            body.par_chunks_mut(per_c)
                .enumerate()
                .for_each(|(c, dst)| one(c, dst));
        } else {
            body.chunks_mut(per_c)
                .enumerate()
                .for_each(|(c, dst)| one(c, dst));
        }
        buf[g.cg() * per_c..].fill(0.0);
    }

    /// Work items per image and group: (depth slice, range of output rows).
    fn items(&self) -> usize {
        self.g.out[0] * self.g.out[1].div_ceil(self.rows_per)
    }

    /// The micro-kernel blocks of item `it` and their store segments.
    fn blocks(&self, it: usize) -> SmallVec<[Block; 8]> {
        let g = self.g;
        let [_, vh, vw] = self.vdims;
        let [_, oh_n, ow_n] = g.out;
        let per_slice = oh_n.div_ceil(self.rows_per);
        let (od, r0) = (it / per_slice, it % per_slice * self.rows_per);
        let r1 = (r0 + self.rows_per).min(oh_n);
        let q0 = (od * vh + r0) * vw;
        let q1 = (od * vh + r1 - 1) * vw + ow_n;
        let mut out = SmallVec::new();
        // Equal blocks of whole vectors (the last one may be partial): a lone narrow tail
        // block would run the micro-kernel at a poor load-to-FMA ratio.
        let vectors = (q1 - q0).div_ceil(16);
        let nblocks = vectors.div_ceil(NR / 16);
        let per_block = 16 * vectors.div_ceil(nblocks);
        let mut q = q0;
        while q < q1 {
            let width = per_block.min(q1 - q);
            let mut segs: SmallVec<[simd::Seg; 6]> = SmallVec::new();
            for j in 0..width.div_ceil(16) {
                let mut open: Option<(usize, u16, isize)> = None; // (next position, mask, off)
                for l in 0..16.min(width - 16 * j) {
                    let lane = 16 * j + l;
                    let v = q + lane;
                    let (vrow, col) = (v / vw, v % vw);
                    let pos = (col < ow_n).then(|| (od * oh_n + vrow % vh) * ow_n + col);
                    match (pos, &mut open) {
                        (Some(p), Some((next, mask, _))) if p == *next => {
                            *mask |= 1 << l;
                            *next += 1;
                        }
                        (Some(p), _) => {
                            if let Some((_, mask, off)) = open.take() {
                                segs.push(simd::Seg { j, mask, off });
                            }
                            open = Some((p + 1, 1 << l, p as isize - l as isize));
                        }
                        (None, _) => {
                            if let Some((_, mask, off)) = open.take() {
                                segs.push(simd::Seg { j, mask, off });
                            }
                        }
                    }
                }
                if let Some((_, mask, off)) = open {
                    segs.push(simd::Seg { j, mask, off });
                }
            }
            out.push(Block { q, width, segs });
            q += width;
        }
        out
    }

    /// Updates output channels `m0..m1` (within the group) of image `n`, group `grp`, for work
    /// item `it`, reading the reduction operand from `planes` (the phase planes, or the group's
    /// input when pointwise).
    fn item(&self, (n, grp): (usize, usize), it: usize, (m0, m1): (usize, usize), planes: &[f32]) {
        self.item_images(grp, &[(n, planes)], it, (m0, m1));
    }

    /// [`Fast::item`] for several images of group `grp` at once (`imgs`: image and its
    /// planes): each weight panel (`MR` channels × `KC` reduction rows, in L1) serves every
    /// image's blocks before the next is loaded, so a layer with few output positions and
    /// large weights reads its weights once per image group instead of once per image.
    fn item_images(
        &self,
        grp: usize,
        imgs: &[(usize, &[f32])],
        it: usize,
        (m0, m1): (usize, usize),
    ) {
        let g = self.g;
        let (p, kg, mg) = (g.pout(), g.kg(), g.mg());
        let blocks = self.blocks(it);
        // Bounds: every unmasked read is below the last block's end plus the largest offset.
        let end = blocks.last().map_or(0, |b| b.q + b.width);
        let max_off = self.offs.iter().copied().max().unwrap_or(0) as usize;
        assert!(m1 <= mg && self.offs.len() == kg);
        for &(n, planes) in imgs {
            assert!(end + max_off <= planes.len() && (n * g.m + grp * mg + m1) * p <= self.y.1);
        }
        if let Some(e) = self.epi {
            assert!(
                e.a.len() >= g.m && e.b.len() >= g.m && e.res.is_none_or(|r| r.len() == self.y.1)
            );
        }
        for kb in (0..kg).step_by(KC) {
            let kc = KC.min(kg - kb);
            for m in (m0..m1).step_by(MR) {
                let mr = MR.min(m1 - m);
                let c0 = grp * mg + m;
                let bias = match self.bias {
                    Some(bs) if kb == 0 && self.epi.is_none() => bs[c0..].as_ptr(),
                    _ => std::ptr::null(),
                };
                for &(n, planes) in imgs {
                    let row0 = n * g.m + grp * mg;
                    // The epilogue runs on the last reduction block (the bias is folded in).
                    let epi = self.epi.filter(|_| kb + kc == kg).map(|e| simd::Epi {
                        a: e.a[c0..].as_ptr(),
                        b: e.b[c0..].as_ptr(),
                        res: e.res.map_or(std::ptr::null(), |r| {
                            // SAFETY: row row0+m of the residual is in bounds (same layout
                            // as y, asserted above).
                            unsafe { r.as_ptr().add((row0 + m) * p) }
                        }),
                        relu: e.relu,
                    });
                    for blk in &blocks {
                        // SAFETY: reads are inside `planes` (asserted); weight rows grp·mg+m..
                        // (mr of them, kc columns from kb) are in w; the segments address
                        // positions of output rows row0+m.. (in y, asserted), which this
                        // task owns.
                        unsafe {
                            micro(
                                mr,
                                blk,
                                kc,
                                (self.w.as_ptr().add((grp * mg + m) * kg + kb), kg),
                                (planes.as_ptr(), self.offs[kb..].as_ptr()),
                                (self.y.0.add((row0 + m) * p), p),
                                kb > 0,
                                bias,
                                epi.as_ref(),
                            )
                        };
                    }
                }
            }
        }
    }
}

/// How to split `mg` output channels so that `items × chunks` tasks share out evenly over
/// `threads`: `(channels per chunk, chunks)`, chunks of whole micro-kernel heights (`MR`).
/// Picks the fewest chunks whose tasks keep every thread busy at least 90% of the time
/// (counting tasks as equal), with at least two tasks per thread; failing that, the most
/// even split found.
#[cfg(target_arch = "x86_64")]
fn channel_split(items: usize, mg: usize, threads: usize) -> (usize, usize) {
    let max_chunks = mg.div_ceil(MR).max(1);
    let mut best = (mg.max(1), 1, 0.0f64);
    for want in 1..=max_chunks {
        let mstep = mg.div_ceil(want).next_multiple_of(MR);
        let chunks = mg.div_ceil(mstep).max(1);
        let tasks = items * chunks;
        let rounds = tasks.div_ceil(threads);
        let busy = tasks as f64 / (rounds * threads) as f64;
        if busy >= 0.9 && tasks >= 2 * threads {
            return (mstep, chunks);
        }
        if busy > best.2 + 1e-9 {
            best = (mstep, chunks, busy);
        }
    }
    (best.0, best.1)
}

/// The f32 forward pass with the AVX-512 micro-kernel; `false` when the CPU lacks AVX-512F
/// (the caller then uses the portable path).
#[cfg(target_arch = "x86_64")]
fn forward_fast_f32(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    wsrc: Option<&NDArray>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    epi: Option<&EpiRef<'_, f32>>,
) -> bool {
    if !avx512_allowed() || g.kg() == 0 {
        return false;
    }
    if bcast::applies(g) {
        bcast::forward(g, x, w, wsrc, bias, y, epi);
        return true;
    }
    let (p, mg) = (g.pout(), g.mg());
    let units = g.n * g.groups;
    if p == 0 || units == 0 {
        return true;
    }
    let f = Fast::new(g, x, w, bias, epi, y);
    let items = f.items();
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && g.flop() >= CONV_PAR_MIN_FLOP;
    let planes_len = f.planes_len();
    // Runs `body` with the operand the micro-kernel reads for image n, group grp.
    let with_planes = |n: usize, grp: usize, par: bool, body: &mut dyn FnMut(&[f32])| {
        if f.pointwise {
            body(f.xg(n, grp));
        } else {
            let mut buf = f32::take_scratch(planes_len);
            f.fill_planes(n, grp, &mut buf, par);
            body(&buf[..planes_len]);
            f32::put_scratch(buf);
        }
    };
    if !parallel || units >= 2 * threads {
        // Whole images per task; with one group, several images per task share each weight
        // panel (resnet's 14×14 and 7×7 stages read megabytes of weights per image), as long
        // as their planes stay within half of L2 and every thread still gets two tasks.
        let per_task = if g.groups == 1 && !f.pointwise {
            let by_cache = (GROUP_PLANES_BYTES / (planes_len * 4)).max(1);
            let by_threads = if parallel {
                units / (2 * threads)
            } else {
                units
            };
            by_cache.min(by_threads).clamp(1, MAX_GROUP_IMAGES)
        } else {
            1
        };
        let task = |t: usize| {
            let n0 = t * per_task;
            let n1 = (n0 + per_task).min(units);
            if per_task == 1 {
                let (n, grp) = (n0 / g.groups, n0 % g.groups);
                with_planes(n, grp, false, &mut |planes| {
                    for it in 0..items {
                        f.item((n, grp), it, (0, mg), planes);
                    }
                });
                return;
            }
            // groups == 1 here: unit u is image u.
            let mut buf = f32::take_scratch(planes_len * (n1 - n0));
            for (i, n) in (n0..n1).enumerate() {
                f.fill_planes(n, 0, &mut buf[i * planes_len..(i + 1) * planes_len], false);
            }
            let imgs: SmallVec<[(usize, &[f32]); MAX_GROUP_IMAGES]> = (n0..n1)
                .enumerate()
                .map(|(i, n)| (n, &buf[i * planes_len..(i + 1) * planes_len]))
                .collect();
            for it in 0..items {
                f.item_images(0, &imgs, it, (0, mg));
            }
            drop(imgs);
            f32::put_scratch(buf);
        };
        let tasks = units.div_ceil(per_task);
        if parallel {
            (0..tasks).into_par_iter().for_each(task);
        } else {
            (0..tasks).for_each(task);
        }
        return true;
    }
    // Few images: split each one's rows, and its output channels too unless the row ranges
    // alone already give every thread an equal share (5 row ranges on 2 threads would leave
    // one idle for a fifth of the time: 10 tasks of half the channels do not).
    let (mstep, mchunks) = channel_split(items, mg, threads);
    for u in 0..units {
        let (n, grp) = (u / g.groups, u % g.groups);
        with_planes(n, grp, planes_len >= 1 << 16, &mut |planes| {
            (0..items * mchunks).into_par_iter().for_each(|t| {
                let (it, mc) = (t / mchunks, t % mchunks);
                let m0 = mc * mstep;
                f.item((n, grp), it, (m0, (m0 + mstep).min(mg)), planes);
            });
        });
    }
    true
}

// ------------------------------------------------------------------ backward

/// What the backward pass computes: destinations for the data, weight and bias gradients.
struct BwdOut<'a, T> {
    /// `(N, C, Pin)`, zeroed by the caller.
    dx: Option<&'a mut [T]>,
    /// `(M, Kg)`; with `accumulate` the gradient is added to its contents.
    dw: Option<(&'a mut [T], bool)>,
    /// `(M,)`; with `accumulate` the gradient is added to its contents.
    db: Option<(&'a mut [T], bool)>,
}

fn backward<T: Real>(g: &ConvGeom, x: &[T], w: &[T], dy: &[T], out: BwdOut<'_, T>) {
    let (p, kg, mg, cg, pin) = (g.pout(), g.kg(), g.mg(), g.cg(), g.pin());
    if let Some((db, acc)) = out.db {
        if !acc {
            db.fill(T::ZERO);
        }
        for n in 0..g.n {
            for (m, d) in db.iter_mut().enumerate() {
                let row = &dy[(n * g.m + m) * p..(n * g.m + m + 1) * p];
                let mut s = T::ZERO;
                for v in row {
                    s += *v;
                }
                *d += s;
            }
        }
    }
    let BwdOut { dx, dw, .. } = out;
    if dx.is_none() && dw.is_none() {
        return;
    }
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && g.flop() >= CONV_PAR_MIN_FLOP;
    let (pb_max, ntiles) = tiles(g, false);
    let pointwise = g.pointwise();
    let wsize = g.m * kg;
    // Split the batch into chunks; chunk 0 accumulates into the final dW, the others into
    // partial sums added at the end. Within a lone chunk the GEMMs use the pool themselves.
    let nchunks = if parallel { g.n.min(threads) } else { 1 }.max(1);
    let gemm_par = if parallel && nchunks == 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let per = g.n.div_ceil(nchunks);
    let dxp = dx.map(|d| {
        assert_eq!(d.len(), g.n * g.c * pin);
        SendPtr::new(d)
    });
    let dw_main = dw.map(|(d, acc)| {
        if !acc {
            d.fill(T::ZERO);
        }
        d
    });
    let want_dw = dw_main.is_some();
    let chunk_work = |ci: usize, dwp: Option<&mut [T]>| {
        let mut col = if pointwise {
            Vec::new()
        } else {
            T::take_scratch(kg * pb_max)
        };
        let mut dcol = if pointwise || dxp.is_none() {
            Vec::new()
        } else {
            T::take_scratch(kg * pb_max)
        };
        let dwp = dwp.map(|d| d.as_mut_ptr());
        for n in ci * per..((ci + 1) * per).min(g.n) {
            for grp in 0..g.groups {
                let xg = &x[(n * g.c + grp * cg) * pin..(n * g.c + (grp + 1) * cg) * pin];
                let wg = &w[grp * mg * kg..(grp + 1) * mg * kg];
                for t in 0..ntiles {
                    let p0 = t * pb_max;
                    let pb = pb_max.min(p - p0);
                    let dyt = &dy[(n * g.m + grp * mg) * p + p0..];
                    assert!(dyt.len() >= (mg - 1) * p + pb);
                    if let Some(dwp) = dwp {
                        // dW_g (mg × kg) += dY_t (mg × pb) · colᵀ (pb × kg)
                        let (cp, c_rs, c_cs) = if pointwise {
                            (xg[p0..].as_ptr(), 1, pin)
                        } else {
                            im2col(g, xg, p0, pb, (0, cg), &mut col);
                            (col.as_ptr(), 1, pb)
                        };
                        // SAFETY: dwp is this chunk's own (M × kg) buffer; rows of group grp
                        // are in bounds; dY_t was asserted; colᵀ addresses kg·pb elements of
                        // col (or of x's group slice, which holds cg·pin).
                        unsafe {
                            gemm_ptr(
                                (mg, kg, pb),
                                dwp.add(grp * mg * kg),
                                kg,
                                true,
                                (dyt.as_ptr(), p, 1),
                                (cp, c_rs, c_cs),
                                gemm_par,
                            )
                        };
                    }
                    if let Some(dxp) = dxp {
                        // SAFETY: image n's group grp slice of dx belongs to this chunk only.
                        let dxg = unsafe {
                            std::slice::from_raw_parts_mut(
                                dxp.0.add((n * g.c + grp * cg) * pin),
                                cg * pin,
                            )
                        };
                        if pointwise {
                            // dX tile (cg × pb) = W_gᵀ (cg × mg) · dY_t (mg × pb)
                            // SAFETY: the tile lies in dxg; wg is mg×kg with kg = cg.
                            unsafe {
                                gemm_ptr(
                                    (cg, pb, mg),
                                    dxg[p0..].as_mut_ptr(),
                                    pin,
                                    false,
                                    (wg.as_ptr(), 1, kg),
                                    (dyt.as_ptr(), p, 1),
                                    gemm_par,
                                )
                            };
                        } else {
                            // dcol (kg × pb) = W_gᵀ (kg × mg) · dY_t (mg × pb)
                            // SAFETY: dcol holds kg·pb elements; operands as above.
                            unsafe {
                                gemm_ptr(
                                    (kg, pb, mg),
                                    dcol.as_mut_ptr(),
                                    pb,
                                    false,
                                    (wg.as_ptr(), 1, kg),
                                    (dyt.as_ptr(), p, 1),
                                    gemm_par,
                                )
                            };
                            col2im(g, &dcol, p0, pb, dxg);
                        }
                    }
                }
            }
        }
        if !col.is_empty() {
            T::put_scratch(col);
        }
        if !dcol.is_empty() {
            T::put_scratch(dcol);
        }
    };
    let mut dw_main = dw_main;
    if nchunks == 1 {
        chunk_work(0, dw_main);
        return;
    }
    let mut partials: Vec<Vec<T>> = if want_dw {
        (1..nchunks).map(|_| vec![T::ZERO; wsize]).collect()
    } else {
        Vec::new()
    };
    let mut slots: Vec<Option<&mut [T]>> = std::iter::once(dw_main.as_deref_mut())
        .chain(partials.iter_mut().map(|v| Some(v.as_mut_slice())))
        .collect();
    slots.resize_with(nchunks, || None);
    slots
        .into_par_iter()
        .enumerate()
        .for_each(|(ci, d)| chunk_work(ci, d));
    if let Some(main) = dw_main {
        for part in &partials {
            for (d, v) in main.iter_mut().zip(part) {
                *d += *v;
            }
        }
    }
}

// ------------------------------------------------------------------ public operator

/// Copies `a` when it shares memory with any of `others` (so that the kernels can hold one
/// read lock per operand).
fn unshared(a: &NDArray, others: &[&NDArray]) -> Result<NDArray> {
    if others.iter().any(|o| a.shares_memory_with(o)) {
        a.copy_to_untracked(a.context())
    } else {
        Ok(a.detach())
    }
}

/// The untracked forward pass: checks, computes and returns the output and geometry.
fn convolution_untracked(
    data: &NDArray,
    weight: &NDArray,
    bias: Option<&NDArray>,
    opts: &ConvOptions,
) -> Result<(NDArray, ConvGeom)> {
    let (geo, oshape) = resolve(data, weight, bias, opts)?;
    let w = unshared(weight, &[data])?;
    let b = bias.map(|b| unshared(b, &[data, weight])).transpose()?;
    let y = NDArray::for_overwrite(&oshape, data.dtype(), data.context())?;
    dispatch_real!(data.dtype(), T => {
        data.read_slice::<T, _>(|xs| w.read_slice::<T, _>(|ws| {
            let run = |bs: Option<&[T]>| {
                y.write_slice::<T, _>(|ys| forward_w(&geo, xs, ws, Some(&w), bs, ys, None))
            };
            match &b {
                Some(b) => b.read_slice::<T, _>(|bs| run(Some(bs))),
                None => run(None),
            }
        }))
    });
    Ok((y, geo))
}

/// The gradients of a convolution with respect to its tracked inputs, written to `dests`
/// where offered.
fn convolution_backward(
    geo: &ConvGeom,
    xd: &NDArray,
    wd: &NDArray,
    dy: &NDArray,
    need: [bool; 3],
    dests: &[Option<GradDest>],
) -> Result<SmallVec<[Grad; 3]>> {
    let (dtype, ctx) = (xd.dtype(), xd.context());
    let dy = unshared(dy, &[xd, wd])?;
    // A destination that aliases an operand cannot be written while they are read.
    let dest = |i: usize| {
        dests.get(i).and_then(Option::as_ref).filter(|d| {
            !d.buf.shares_memory_with(xd)
                && !d.buf.shares_memory_with(wd)
                && !d.buf.shares_memory_with(&dy)
        })
    };
    let dx = if need[0] {
        Some(NDArray::zeros(xd.shape(), dtype, ctx)?)
    } else {
        None
    };
    let (dw, dw_written, dw_acc) = match (need[1], dest(1)) {
        (false, _) => (None, false, false),
        (true, Some(d)) => (Some(d.buf.clone()), true, d.accumulate),
        (true, None) => (
            Some(NDArray::for_overwrite(wd.shape(), dtype, ctx)?),
            false,
            false,
        ),
    };
    let (db, db_written, db_acc) = match (need[2], dest(2)) {
        (false, _) => (None, false, false),
        (true, Some(d)) => (Some(d.buf.clone()), true, d.accumulate),
        (true, None) => (
            Some(NDArray::for_overwrite(&[geo.m], dtype, ctx)?),
            false,
            false,
        ),
    };
    dispatch_real!(dtype, T => {
        xd.read_slice::<T, _>(|xs| wd.read_slice::<T, _>(|ws| dy.read_slice::<T, _>(|dys| {
            let with_db = |dxs: Option<&mut [T]>, dws: Option<&mut [T]>| match &db {
                Some(db) => db.write_slice::<T, _>(|dbs| backward(geo, xs, ws, dys, BwdOut {
                    dx: dxs, dw: dws.map(|d| (d, dw_acc)), db: Some((dbs, db_acc)) })),
                None => backward(geo, xs, ws, dys, BwdOut { dx: dxs, dw: dws.map(|d| (d, dw_acc)), db: None }),
            };
            let with_dw = |dxs: Option<&mut [T]>| match &dw {
                Some(dw) => dw.write_slice::<T, _>(|dws| with_db(dxs, Some(dws))),
                None => with_db(dxs, None),
            };
            match &dx {
                Some(dx) => dx.write_slice::<T, _>(|dxs| with_dw(Some(dxs))),
                None => with_dw(None),
            }
        })))
    });
    let grad = |a: Option<NDArray>, written: bool| match a {
        None => Grad::None,
        Some(_) if written => Grad::Written,
        Some(a) => Grad::Value(a),
    };
    Ok(smallvec![
        grad(dx, false),
        grad(dw, dw_written),
        grad(db, db_written)
    ])
}

/// Convolution (MXNet's `Convolution`): `data (N, C, *spatial)` convolved with
/// `weight (num_filter, C / num_group, *kernel)`, plus `bias (num_filter,)`; the result is
/// `(N, num_filter, *out)` with `out = (in + 2·pad − dilate·(kernel − 1) − 1) / stride + 1`
/// (rounded down) per spatial dimension.
///
/// `bias` must be given exactly when `opts.no_bias` is false. 1-D (NCW), 2-D (NCHW) and 3-D
/// (NCDHW) convolutions are chosen by the length of `opts.kernel`. Operands must share one
/// context and one dtype, float32 or float64 ([`Error::UnsupportedDType`] otherwise). Under
/// [`autograd::record`](crate::autograd::record) the gradients of `data`, `weight` and `bias`
/// are recorded.
///
/// ```
/// use mxgluon::nd::{self, ConvOptions};
/// // A 3×3 box filter over a 4×4 image of ones, padded by 1: corners see 4 ones, edges 6.
/// let x = nd::ones(&[1, 1, 4, 4], None)?;
/// let w = nd::ones(&[1, 1, 3, 3], None)?;
/// let opts = ConvOptions::new(&[3, 3], 1).pad(&[1, 1]).no_bias(true);
/// let y = nd::convolution(&x, &w, None, &opts)?;
/// assert_eq!(y.shape(), &[1, 1, 4, 4]);
/// assert_eq!(&y.to_vec::<f32>()?[..4], &[4.0, 6.0, 6.0, 4.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn convolution(
    data: &NDArray,
    weight: &NDArray,
    bias: Option<&NDArray>,
    opts: &ConvOptions,
) -> Result<NDArray> {
    let (y, geo) = convolution_untracked(data, weight, bias, opts)?;
    let inputs: SmallVec<[&NDArray; 3]> = match bias {
        Some(b) => smallvec![data, weight, b],
        None => smallvec![data, weight],
    };
    if !tracked(&inputs) {
        return Ok(y);
    }
    let need = [
        data.is_tracked(),
        weight.is_tracked(),
        bias.is_some_and(NDArray::is_tracked),
    ];
    let (xd, wd) = (data.detach(), weight.detach());
    let with_bias = bias.is_some();
    Ok(record_op(OP, &inputs, y, move |dy, dests| {
        let mut g = convolution_backward(&geo, &xd, &wd, dy, need, dests)?;
        g.truncate(if with_bias { 3 } else { 2 });
        Ok(g)
    }))
}

/// What [`convolution_fused`] applies to the convolution's output tiles while they are in
/// cache: `y = relu?((conv(x) + bias) · scale + shift + residual)`, with `scale` and `shift`
/// per output channel (shape `(num_filter,)`) and `residual` shaped like the output. Every
/// part is optional; an empty epilogue gives the plain convolution.
///
/// An inference-mode `BatchNorm` after the convolution folds into `scale` and `shift`
/// ([`ConvEpilogue::batch_norm`]). A `pool` ends the epilogue: the result is pooled (as
/// [`pooling`](crate::nd::pooling) would) and the pooled array is returned; a 2-D max
/// pooling (a ResNet's stem) is computed from each finished tile on the float32 AVX-512
/// path, so the convolution's full output never goes through memory.
///
/// ```
/// use mxgluon::nd::{self, ConvEpilogue};
/// let e = ConvEpilogue::new().shift(nd::full(&[4], 0.5, None)?).relu(true);
/// assert!(e.relu && e.scale.is_none() && e.shift.is_some());
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct ConvEpilogue {
    /// Per-output-channel multiplier (`(num_filter,)`), or 1.
    pub scale: Option<NDArray>,
    /// Per-output-channel offset (`(num_filter,)`), or 0.
    pub shift: Option<NDArray>,
    /// An array shaped like the output, added after the scale and shift (a residual branch).
    pub residual: Option<NDArray>,
    /// Whether a ReLU ends the epilogue.
    pub relu: bool,
    /// A pooling of the result (after the ReLU); the pooled array is the output.
    pub pool: Option<PoolOptions>,
}

impl std::fmt::Debug for ConvEpilogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shape = |a: &Option<NDArray>| a.as_ref().map(|a| a.shape().to_vec());
        f.debug_struct("ConvEpilogue")
            .field("scale", &shape(&self.scale))
            .field("shift", &shape(&self.shift))
            .field("residual", &shape(&self.residual))
            .field("relu", &self.relu)
            .field("pool", &self.pool)
            .finish()
    }
}

impl ConvEpilogue {
    /// The empty epilogue (identity).
    pub fn new() -> ConvEpilogue {
        ConvEpilogue::default()
    }

    /// Sets the per-channel multiplier.
    pub fn scale(mut self, scale: NDArray) -> Self {
        self.scale = Some(scale);
        self
    }

    /// Sets the per-channel offset.
    pub fn shift(mut self, shift: NDArray) -> Self {
        self.shift = Some(shift);
        self
    }

    /// Sets the residual added before the ReLU.
    pub fn residual(mut self, residual: NDArray) -> Self {
        self.residual = Some(residual);
        self
    }

    /// Sets whether a ReLU ends the epilogue.
    pub fn relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    /// Pools the result (after the ReLU) with `opts`; the output is the pooled array.
    ///
    /// ```
    /// use mxgluon::nd::{self, ConvEpilogue, ConvOptions, PoolOptions, PoolType};
    /// let x = nd::ones(&[1, 1, 4, 4], None)?;
    /// let w = nd::ones(&[16, 1, 3, 3], None)?;
    /// let opts = ConvOptions::new(&[3, 3], 16).pad(&[1, 1]).no_bias(true);
    /// let pool = PoolOptions::new(&[2, 2], PoolType::Max).stride(&[2, 2]);
    /// let y = nd::convolution_fused(&x, &w, None, &opts, &ConvEpilogue::new().pool(pool))?;
    /// assert_eq!(y.shape(), &[1, 16, 2, 2]);
    /// // The convolution gives 4 at the corners, 6 on the edges and 9 inside; every 2×2
    /// // window holds one inner position.
    /// assert_eq!(y.to_vec::<f32>()?, vec![9.0; 64]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn pool(mut self, opts: PoolOptions) -> Self {
        self.pool = Some(opts);
        self
    }

    /// The scale and shift of an inference-mode batch normalization (MXNet's `BatchNorm` with
    /// `use_global_stats` / outside training): `scale = gamma / sqrt(var + eps)`,
    /// `shift = beta − mean · scale`, with `gamma` taken as 1 when `fix_gamma` is set (MXNet's
    /// default). All four arrays have shape `(channels,)` and one float dtype.
    ///
    /// ```
    /// use mxgluon::nd::{self, ConvEpilogue};
    /// let c = |v: f64| nd::full(&[2], v, None);
    /// let e = ConvEpilogue::batch_norm(&c(2.0)?, &c(1.0)?, &c(0.5)?, &c(3.0)?, 1.0, false)?;
    /// assert_eq!(e.scale.unwrap().to_vec::<f32>()?, vec![1.0, 1.0]); // 2 / sqrt(4)
    /// assert_eq!(e.shift.unwrap().to_vec::<f32>()?, vec![0.5, 0.5]); // 1 − 0.5·1
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn batch_norm(
        gamma: &NDArray,
        beta: &NDArray,
        mean: &NDArray,
        var: &NDArray,
        eps: f64,
        fix_gamma: bool,
    ) -> Result<ConvEpilogue> {
        const BN: &str = "ConvEpilogue::batch_norm";
        let shape = gamma.shape();
        for a in [beta, mean, var] {
            check_pair(BN, gamma, a)?;
            if a.shape() != shape {
                return Err(Error::ShapeMismatch {
                    op: BN,
                    lhs: shape.to_vec(),
                    rhs: a.shape().to_vec(),
                    detail: "gamma, beta, moving mean and moving variance must have one shape"
                        .into(),
                });
            }
        }
        if shape.len() != 1 || !matches!(gamma.dtype(), DType::Float32 | DType::Float64) {
            return Err(Error::invalid_arg(
                BN,
                format!(
                    "expected 1-D float32 or float64 arrays, got shape {} and dtype {:?}",
                    fmt_shape(shape),
                    gamma.dtype()
                ),
            ));
        }
        let f64s = |a: &NDArray| a.astype(DType::Float64)?.to_vec::<f64>();
        let (g, b, m, v) = (f64s(gamma)?, f64s(beta)?, f64s(mean)?, f64s(var)?);
        let scale: Vec<f64> = (0..g.len())
            .map(|i| if fix_gamma { 1.0 } else { g[i] } / (v[i] + eps).sqrt())
            .collect();
        let shift: Vec<f64> = (0..g.len()).map(|i| b[i] - m[i] * scale[i]).collect();
        let ctx = gamma.context();
        Ok(ConvEpilogue::new()
            .scale(NDArray::from_vec(scale, shape, ctx)?.astype(gamma.dtype())?)
            .shift(NDArray::from_vec(shift, shape, ctx)?.astype(gamma.dtype())?))
    }
}

/// The epilogue's per-channel multiplier and offset with the bias folded in (tiny:
/// `m` entries each).
fn epilogue_vectors<T: Real + crate::dtype::Element>(
    epi: &ConvEpilogue,
    bias: Option<&NDArray>,
    m: usize,
) -> Result<(Vec<T>, Vec<T>)> {
    let scale: Vec<T> = match &epi.scale {
        Some(s) => s.to_vec::<T>()?,
        None => vec![T::ONE; m],
    };
    let mut off: Vec<T> = match &epi.shift {
        Some(s) => s.to_vec::<T>()?,
        None => vec![T::ZERO; m],
    };
    if let Some(b) = bias {
        let b = b.to_vec::<T>()?;
        for i in 0..m {
            off[i] += b[i] * scale[i];
        }
    }
    Ok((scale, off))
}

/// The convolution and its max pooling `plan` in one pass ([`bcast::forward_pooled`]), or
/// `None` where that path does not apply (not float32, a residual, not a 2-D max pooling, or
/// the CPU or shape outside the channel-vectorised path): the caller then pools the output.
fn convolution_pooled(
    data: &NDArray,
    w: &NDArray,
    bias: Option<&NDArray>,
    geo: &ConvGeom,
    epi: &ConvEpilogue,
    plan: Option<&super::pool::MaxPool2d>,
) -> Result<Option<NDArray>> {
    #[cfg(target_arch = "x86_64")]
    if let Some(plan) = plan {
        if data.dtype() == DType::Float32 && epi.residual.is_none() && pooled_fast_f32(geo) {
            let (scale, off) = epilogue_vectors::<f32>(epi, bias, geo.m)?;
            let y = NDArray::for_overwrite(&plan.oshape, data.dtype(), data.context())?;
            let e = EpiRef {
                a: &scale,
                b: &off,
                res: None,
                relu: epi.relu,
            };
            data.read_slice::<f32, _>(|xs| {
                w.read_slice::<f32, _>(|ws| {
                    y.write_slice::<f32, _>(|ys| {
                        bcast::forward_pooled(geo, xs, ws, Some(w), None, Some(&e), plan, ys)
                    })
                })
            });
            return Ok(Some(y));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, w, bias, geo, epi, plan);
    Ok(None)
}

/// Whether [`bcast::forward_pooled`] can compute `g` on this CPU.
#[cfg(target_arch = "x86_64")]
fn pooled_fast_f32(g: &ConvGeom) -> bool {
    avx512_allowed() && bcast::applies(g)
}

/// Whether the AVX-512 forward paths may run: the CPU has AVX-512F (and tests have not
/// switched them off to check the portable path).
#[cfg(target_arch = "x86_64")]
fn avx512_allowed() -> bool {
    #[cfg(test)]
    if FORCE_PORTABLE.with(Cell::get) {
        return false;
    }
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Inference convolution with a fused epilogue: `relu?((convolution(data, weight, bias) ·
/// scale + shift) + residual)` computed in one pass, the epilogue applied to each output
/// tile while it is in cache (on the float32 AVX-512 path; elsewhere as a second pass over
/// the output). This is the inference path (a `Conv → BatchNorm → [+ residual] → ReLU`
/// chain in one call): it is **not recorded** for autograd and returns
/// [`Error::InvalidArgument`] when autograd is recording and any operand is tracked; use
/// [`convolution`] and the separate operators to train.
///
/// The checks on `data`, `weight`, `bias` and `opts` are [`convolution`]'s; `scale` and
/// `shift` must have shape `(num_filter,)` and `residual` the output's shape, all in the
/// data's dtype and context.
///
/// ```
/// use mxgluon::nd::{self, ConvEpilogue, ConvOptions};
/// let x = nd::ones(&[1, 1, 4, 4], None)?;
/// let w = nd::ones(&[1, 1, 3, 3], None)?;
/// let opts = ConvOptions::new(&[3, 3], 1).pad(&[1, 1]).no_bias(true);
/// // (conv · 0.5 − 2.5), then ReLU: corners 4·0.5 − 2.5 < 0 → 0, edges 6·0.5 − 2.5 = 0.5.
/// let epi = ConvEpilogue::new()
///     .scale(nd::full(&[1], 0.5, None)?)
///     .shift(nd::full(&[1], -2.5, None)?)
///     .relu(true);
/// let y = nd::convolution_fused(&x, &w, None, &opts, &epi)?;
/// assert_eq!(&y.to_vec::<f32>()?[..4], &[0.0, 0.5, 0.5, 0.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn convolution_fused(
    data: &NDArray,
    weight: &NDArray,
    bias: Option<&NDArray>,
    opts: &ConvOptions,
    epi: &ConvEpilogue,
) -> Result<NDArray> {
    const FOP: &str = "convolution_fused";
    let (geo, oshape) = resolve(data, weight, bias, opts)?;
    let mut operands: SmallVec<[&NDArray; 6]> = smallvec![data, weight];
    operands.extend(bias);
    operands.extend(epi.scale.as_ref());
    operands.extend(epi.shift.as_ref());
    operands.extend(epi.residual.as_ref());
    if tracked(&operands) {
        return Err(Error::invalid_arg(
            FOP,
            "the fused convolution is an inference path and is not recorded; an operand is \
             tracked while autograd is recording (use convolution and the separate operators, \
             or pause recording)",
        ));
    }
    for (what, a, shape) in [
        ("scale", &epi.scale, &[opts.num_filter][..]),
        ("shift", &epi.shift, &[opts.num_filter][..]),
        ("residual", &epi.residual, &oshape[..]),
    ] {
        let Some(a) = a else { continue };
        check_pair(FOP, data, a)?;
        if a.shape() != shape {
            return Err(Error::ShapeMismatch {
                op: FOP,
                lhs: shape.to_vec(),
                rhs: a.shape().to_vec(),
                detail: format!("the epilogue's {what} must have shape {}", fmt_shape(shape)),
            });
        }
    }
    let w = unshared(weight, &[data])?;
    if let Some(po) = &epi.pool {
        // Checked as `pooling` checks its input (the same errors).
        let plan = super::pool::max_pool_2d(data.dtype(), &oshape, po)?;
        if let Some(y) = convolution_pooled(data, &w, bias, &geo, epi, plan.as_ref())? {
            return Ok(y);
        }
        let unpooled = ConvEpilogue {
            pool: None,
            ..epi.clone()
        };
        return super::pool::pooling(&convolution_fused(data, &w, bias, opts, &unpooled)?, po);
    }
    let res = epi
        .residual
        .as_ref()
        .map(|r| unshared(r, &[data, &w]))
        .transpose()?;
    let y = NDArray::for_overwrite(&oshape, data.dtype(), data.context())?;
    dispatch_real!(data.dtype(), T => {
        let (scale, off) = epilogue_vectors::<T>(epi, bias, geo.m)?;
        data.read_slice::<T, _>(|xs| w.read_slice::<T, _>(|ws| {
            let run = |rs: Option<&[T]>| {
                let e = EpiRef { a: &scale, b: &off, res: rs, relu: epi.relu };
                y.write_slice::<T, _>(|ys| forward_w(&geo, xs, ws, Some(&w), None, ys, Some(&e)))
            };
            match &res {
                Some(r) => r.read_slice::<T, _>(|rs| run(Some(rs))),
                None => run(None),
            }
        }))
    });
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    /// Index of an input element, or `None` in the padding.
    fn in_index(g: &ConvGeom, n: usize, c: usize, o: [usize; 3], k: [usize; 3]) -> Option<usize> {
        let mut pos = [0usize; 3];
        for i in 0..3 {
            let v = (o[i] * g.stride[i] + k[i] * g.dilate[i]) as isize - g.pad[i] as isize;
            if v < 0 || v >= g.input[i] as isize {
                return None;
            }
            pos[i] = v as usize;
        }
        Some((((n * g.c + c) * g.input[0] + pos[0]) * g.input[1] + pos[1]) * g.input[2] + pos[2])
    }

    /// Calls `f(y index, x index, w index)` for every product term of the convolution.
    fn each_term(g: &ConvGeom, mut f: impl FnMut(usize, usize, usize)) {
        let (cg, mg) = (g.cg(), g.mg());
        for n in 0..g.n {
            for m in 0..g.m {
                let grp = m / mg;
                for od in 0..g.out[0] {
                    for oh in 0..g.out[1] {
                        for ow in 0..g.out[2] {
                            let yi =
                                (((n * g.m + m) * g.out[0] + od) * g.out[1] + oh) * g.out[2] + ow;
                            for ci in 0..cg {
                                for a in 0..g.kernel[0] {
                                    for b in 0..g.kernel[1] {
                                        for e in 0..g.kernel[2] {
                                            let Some(xi) = in_index(
                                                g,
                                                n,
                                                grp * cg + ci,
                                                [od, oh, ow],
                                                [a, b, e],
                                            ) else {
                                                continue;
                                            };
                                            let wi = (((m * cg + ci) * g.kernel[0] + a)
                                                * g.kernel[1]
                                                + b)
                                                * g.kernel[2]
                                                + e;
                                            f(yi, xi, wi);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn geom(
        n: usize,
        c: usize,
        m: usize,
        groups: usize,
        input: [usize; 3],
        k: [usize; 3],
        s: [usize; 3],
        d: [usize; 3],
        p: [usize; 3],
    ) -> ConvGeom {
        let mut out = [0; 3];
        for i in 0..3 {
            out[i] = (input[i] + 2 * p[i] - (1 + (k[i] - 1) * d[i])) / s[i] + 1;
        }
        ConvGeom {
            n,
            c,
            m,
            groups,
            input,
            out,
            kernel: k,
            stride: s,
            dilate: d,
            pad: p,
        }
    }

    /// Forward and backward of the fast kernels against the direct sums, in f64 and f32.
    fn check(g: ConvGeom) {
        let xs = rand_vec(g.n * g.c * g.pin(), 1);
        let ws = rand_vec(g.m * g.kg(), 2);
        let bs = rand_vec(g.m, 3);
        let ylen = g.n * g.m * g.pout();
        let dys = rand_vec(ylen, 4);
        let mut y_ref = vec![0.0; ylen];
        let (mut dx_ref, mut dw_ref) = (vec![0.0; xs.len()], vec![0.0; ws.len()]);
        let mut db_ref = vec![0.0; g.m];
        for (i, d) in dys.iter().enumerate() {
            db_ref[(i / g.pout()) % g.m] += d;
        }
        each_term(&g, |yi, xi, wi| {
            y_ref[yi] += xs[xi] * ws[wi];
            dx_ref[xi] += dys[yi] * ws[wi];
            dw_ref[wi] += dys[yi] * xs[xi];
        });
        for (i, y) in y_ref.iter_mut().enumerate() {
            *y += bs[(i / g.pout()) % g.m];
        }
        let close = |what: &str, a: &[f64], b: &[f64], tol: f64| {
            assert_eq!(a.len(), b.len());
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= tol * y.abs().max(1.0),
                    "{what}[{i}]: {x} vs {y} ({g:?})"
                );
            }
        };
        let mut y = vec![f64::NAN; ylen];
        forward(&g, &xs, &ws, Some(&bs), &mut y, None);
        close("y", &y, &y_ref, 1e-12);
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let y_nb: Vec<f64> = y_ref
            .iter()
            .enumerate()
            .map(|(i, v)| v - bs[(i / g.pout()) % g.m])
            .collect();
        let (x32, w32, b32) = (f(&xs), f(&ws), f(&bs));
        for portable in [false, true] {
            FORCE_PORTABLE.with(|c| c.set(portable));
            let mut y32 = vec![f32::NAN; ylen];
            forward(&g, &x32, &w32, Some(&b32), &mut y32, None);
            let y32: Vec<f64> = y32.iter().map(|&v| v as f64).collect();
            close(&format!("y f32 portable={portable}"), &y32, &y_ref, 1e-4);
            let mut y32 = vec![f32::NAN; ylen];
            forward(&g, &x32, &w32, None, &mut y32, None);
            let y32: Vec<f64> = y32.iter().map(|&v| v as f64).collect();
            close(
                &format!("y f32 no bias portable={portable}"),
                &y32,
                &y_nb,
                1e-4,
            );
        }
        FORCE_PORTABLE.with(|c| c.set(false));
        check_epilogues(&g, (&xs, &ws, &bs), &y_ref, &close);
        let (mut dx, mut dw, mut db) = (vec![0.0; xs.len()], vec![7.0; ws.len()], vec![7.0; g.m]);
        backward(
            &g,
            &xs,
            &ws,
            &dys,
            BwdOut {
                dx: Some(&mut dx),
                dw: Some((&mut dw, false)),
                db: Some((&mut db, false)),
            },
        );
        close("dx", &dx, &dx_ref, 1e-12);
        close("dw", &dw, &dw_ref, 1e-12);
        close("db", &db, &db_ref, 1e-12);
        // Accumulating into existing gradients adds.
        backward(
            &g,
            &xs,
            &ws,
            &dys,
            BwdOut {
                dx: None,
                dw: Some((&mut dw, true)),
                db: Some((&mut db, true)),
            },
        );
        let twice: Vec<f64> = dw_ref.iter().map(|v| 2.0 * v).collect();
        close("dw twice", &dw, &twice, 1e-12);
    }

    type Close<'a> = dyn Fn(&str, &[f64], &[f64], f64) + 'a;

    /// The fused epilogues (every combination of scale + shift, residual and ReLU) against the
    /// f64 reference `y_ref` (convolution plus bias), on the f64, f32 fast and f32 portable
    /// paths.
    fn check_epilogues(
        g: &ConvGeom,
        (xs, ws, bs): (&[f64], &[f64], &[f64]),
        y_ref: &[f64],
        close: &Close<'_>,
    ) {
        let (sc, sh, rs) = (rand_vec(g.m, 5), rand_vec(g.m, 6), rand_vec(y_ref.len(), 7));
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (x32, w32, r32) = (f(xs), f(ws), f(&rs));
        let p = g.pout();
        for combo in 0..8 {
            let (affine, residual, relu) = (combo & 1 != 0, combo & 2 != 0, combo & 4 != 0);
            let a: Vec<f64> = (0..g.m).map(|m| if affine { sc[m] } else { 1.0 }).collect();
            let b: Vec<f64> = (0..g.m)
                .map(|m| bs[m] * a[m] + if affine { sh[m] } else { 0.0 })
                .collect();
            let want: Vec<f64> = y_ref
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let m = (i / p) % g.m;
                    let v = (v - bs[m] + bs[m]) * a[m] + if affine { sh[m] } else { 0.0 };
                    let v = v + if residual { rs[i] } else { 0.0 };
                    if relu {
                        v.max(0.0)
                    } else {
                        v
                    }
                })
                .collect();
            let mut y = vec![f64::NAN; y_ref.len()];
            let e = EpiRef {
                a: &a,
                b: &b,
                res: residual.then_some(&rs[..]),
                relu,
            };
            forward(g, xs, ws, None, &mut y, Some(&e));
            close(&format!("fused f64 combo {combo}"), &y, &want, 1e-12);
            let (a32, b32) = (f(&a), f(&b));
            let e32 = EpiRef {
                a: &a32,
                b: &b32,
                res: residual.then_some(&r32[..]),
                relu,
            };
            for portable in [false, true] {
                FORCE_PORTABLE.with(|c| c.set(portable));
                let mut y32 = vec![f32::NAN; y_ref.len()];
                forward(g, &x32, &w32, None, &mut y32, Some(&e32));
                let y32: Vec<f64> = y32.iter().map(|&v| v as f64).collect();
                close(
                    &format!("fused f32 combo {combo} portable={portable}"),
                    &y32,
                    &want,
                    1e-4,
                );
            }
            FORCE_PORTABLE.with(|c| c.set(false));
        }
    }

    #[test]
    fn fused_public_api_matches_unfused_ops() -> Result<()> {
        use crate::nd;
        let ctx = Context::cpu(0);
        // An odd shape: 5 input channels, 11 outputs, 9×7 image, stride 2, padding 1.
        let (n, c, m, h, w) = (2, 5, 11, 9, 7);
        let opts = ConvOptions::new(&[3, 3], m).stride(&[2, 2]).pad(&[1, 1]);
        let arr = |len: usize, seed: u64, shape: &[usize]| {
            NDArray::from_vec(rand_vec(len, seed), shape, ctx)?.astype(DType::Float32)
        };
        let x = arr(n * c * h * w, 11, &[n, c, h, w])?;
        let wt = arr(m * c * 9, 12, &[m, c, 3, 3])?;
        let b = arr(m, 13, &[m])?;
        let plain = convolution(&x, &wt, Some(&b), &opts)?;
        let oshape = plain.shape().to_vec();
        let plen: usize = oshape.iter().product();
        let (sc, sh) = (arr(m, 14, &[m])?, arr(m, 15, &[m])?);
        let res = arr(plen, 16, &oshape)?;
        let epi = ConvEpilogue::new()
            .scale(sc.clone())
            .shift(sh.clone())
            .residual(res.clone())
            .relu(true);
        let y = convolution_fused(&x, &wt, Some(&b), &opts, &epi)?;
        assert_eq!(y.shape(), &oshape[..]);
        let bshape = [1, m, 1, 1];
        let want = nd::activation(
            &nd::add(
                &nd::add(
                    &nd::mul(&plain, &sc.reshape(&bshape)?)?,
                    &sh.reshape(&bshape)?,
                )?,
                &res,
            )?,
            nd::ActType::Relu,
        )?;
        let (yv, wv) = (y.to_vec::<f32>()?, want.to_vec::<f32>()?);
        for (a, b) in yv.iter().zip(&wv) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
        // An empty epilogue is the plain convolution; the residual may be the data itself.
        let y0 = convolution_fused(&x, &wt, Some(&b), &opts, &ConvEpilogue::new())?;
        // (The bias is added after the reduction instead of before: equal up to rounding.)
        for (a, b) in y0.to_vec::<f32>()?.iter().zip(&plain.to_vec::<f32>()?) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0));
        }
        let same = ConvOptions::new(&[3, 3], c).pad(&[1, 1]).no_bias(true);
        let wsq = arr(c * c * 9, 17, &[c, c, 3, 3])?;
        let ya = convolution_fused(
            &x,
            &wsq,
            None,
            &same,
            &ConvEpilogue::new().residual(x.clone()),
        )?;
        let yb = nd::add(&convolution(&x, &wsq, None, &same)?, &x)?;
        for (a, b) in ya.to_vec::<f32>()?.iter().zip(&yb.to_vec::<f32>()?) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0));
        }
        // Shape errors name the epilogue part.
        let bad = ConvEpilogue::new().scale(arr(m + 1, 18, &[m + 1])?);
        let err = convolution_fused(&x, &wt, Some(&b), &opts, &bad).unwrap_err();
        assert!(err.to_string().contains("scale"), "{err}");
        let bad = ConvEpilogue::new().residual(x.clone());
        assert!(convolution_fused(&x, &wt, Some(&b), &opts, &bad).is_err());
        // Tracked operands under recording are refused; outside recording they are fine.
        let mut xt = x.copy_to(ctx)?;
        xt.attach_grad(crate::dtype::GradReq::Write)?;
        {
            let _rec = crate::autograd::record();
            let err = convolution_fused(&xt, &wt, Some(&b), &opts, &epi).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        }
        assert!(convolution_fused(&xt, &wt, Some(&b), &opts, &epi).is_ok());
        Ok(())
    }

    #[test]
    fn folded_batch_norm_matches_batch_norm() -> Result<()> {
        let ctx = Context::cpu(0);
        let v = |x: &[f64]| NDArray::from_slice(x, &[2], ctx);
        let (g, b, m, var) = (
            v(&[2.0, -1.0])?,
            v(&[0.5, 0.25])?,
            v(&[1.0, 3.0])?,
            v(&[3.0, 0.0])?,
        );
        let e = ConvEpilogue::batch_norm(&g, &b, &m, &var, 1.0, false)?;
        let s = e.scale.as_ref().unwrap().to_vec::<f64>()?;
        let t = e.shift.as_ref().unwrap().to_vec::<f64>()?;
        assert_eq!(s, vec![1.0, -1.0]);
        assert_eq!(t, vec![0.5 - 1.0, 0.25 + 3.0]);
        let e = ConvEpilogue::batch_norm(&g, &b, &m, &var, 1.0, true)?;
        assert_eq!(e.scale.unwrap().to_vec::<f64>()?, vec![0.5, 1.0]);
        assert!(ConvEpilogue::batch_norm(
            &g,
            &b,
            &m,
            &v(&[1.0, 2.0])?.reshape(&[1, 2])?,
            1.0,
            false
        )
        .is_err());
        Ok(())
    }

    #[test]
    fn small_shapes_match_direct_sums() {
        let one = [1, 1, 1];
        // 1-D, 2-D, 3-D; stride, dilation, padding, groups, depthwise, pointwise.
        check(geom(
            2,
            3,
            4,
            1,
            [1, 1, 9],
            [1, 1, 3],
            [1, 1, 2],
            one,
            [0, 0, 1],
        ));
        check(geom(
            2,
            4,
            6,
            2,
            [1, 7, 6],
            [1, 3, 2],
            [1, 2, 1],
            [1, 1, 2],
            [0, 1, 2],
        ));
        check(geom(1, 6, 6, 6, [1, 5, 5], [1, 3, 3], one, one, [0, 1, 1]));
        check(geom(3, 4, 5, 1, [1, 4, 3], one, one, one, [0, 0, 0]));
        check(geom(2, 4, 8, 4, [1, 4, 3], one, one, one, [0, 0, 0]));
        check(geom(
            1,
            2,
            3,
            1,
            [4, 3, 5],
            [2, 2, 3],
            [2, 1, 2],
            [1, 2, 1],
            [1, 0, 1],
        ));
        check(geom(1, 2, 2, 1, [1, 1, 2], [1, 1, 3], one, one, [0, 0, 1]));
        check(geom(
            2,
            3,
            2,
            1,
            [1, 5, 5],
            [1, 2, 2],
            [1, 3, 3],
            one,
            [0, 0, 0],
        ));
        // Stride 1 with rows of at least ROW_MODE_MIN_WIDTH: the padded-image path, 3-D and
        // dilated; and a reduction longer than KC.
        check(geom(
            2,
            3,
            5,
            1,
            [3, 6, 14],
            [2, 3, 3],
            one,
            [1, 2, 1],
            [1, 2, 0],
        ));
        check(geom(
            1,
            32,
            12,
            1,
            [1, 9, 20],
            [1, 3, 3],
            one,
            one,
            [0, 1, 1],
        ));
        check(geom(
            1,
            4,
            9,
            1,
            [1, 1, 130],
            [1, 1, 5],
            one,
            [1, 1, 3],
            [0, 0, 4],
        ));
        // Windows that see only padding (stride larger than the input).
        check(geom(1, 1, 2, 1, [1, 1, 1], one, [1, 1, 3], one, [0, 0, 1]));
        check(geom(
            2,
            2,
            3,
            1,
            [1, 2, 1],
            [1, 1, 1],
            [1, 3, 3],
            one,
            [0, 1, 2],
        ));
    }

    #[test]
    fn tiled_and_parallel_paths_match_direct_sums() {
        let one = [1, 1, 1];
        // Each case is above CONV_PAR_MIN_FLOP, so with two or more threads it runs in parallel.
        // Many tiles per image (P = 1600, K = 36): parallel over tiles.
        let g = geom(1, 4, 128, 1, [1, 40, 40], [1, 3, 3], one, one, [0, 1, 1]);
        assert!(g.flop() >= CONV_PAR_MIN_FLOP && tiles(&g, true).1 >= 4);
        check(g);
        // One tile, deep: the output-channel split with a shared tile.
        let g = geom(1, 64, 256, 1, [1, 6, 6], [1, 3, 3], one, one, [0, 1, 1]);
        assert!(g.flop() >= CONV_PAR_MIN_FLOP && tiles(&g, true).1 == 1);
        check(g);
        // Pointwise, batch > 1 with groups; backward splits the batch.
        let g = geom(3, 64, 128, 2, [1, 30, 30], one, one, one, [0, 0, 0]);
        assert!(g.flop() >= CONV_PAR_MIN_FLOP && g.pointwise());
        check(g);
        // Strided dilated tiles crossing output rows.
        let g = geom(
            2,
            16,
            64,
            1,
            [1, 33, 31],
            [1, 3, 3],
            [1, 2, 2],
            [1, 2, 2],
            [0, 2, 1],
        );
        assert!(g.flop() >= CONV_PAR_MIN_FLOP);
        check(g);
    }

    #[test]
    fn channel_vectorised_path_matches_direct_sums() {
        let one = [1, 1, 1];
        let cases = [
            // Serial, padded, one 16-channel panel.
            geom(1, 3, 16, 1, [1, 9, 9], [1, 3, 3], one, one, [0, 1, 1]),
            // A 32-channel panel and a 16-channel tail; stride 2 along the width only.
            geom(
                2,
                5,
                48,
                1,
                [1, 7, 20],
                [1, 3, 3],
                [1, 1, 2],
                one,
                [0, 1, 1],
            ),
            // Rows wider than one block (31 = 11 + 11 + 9), dilated along the width.
            geom(
                1,
                4,
                32,
                1,
                [1, 5, 31],
                [1, 1, 3],
                one,
                [1, 1, 2],
                [0, 0, 2],
            ),
            // The resnet stem's shape: 7×7, stride 2, pad 3.
            geom(
                2,
                3,
                64,
                1,
                [1, 23, 23],
                [1, 7, 7],
                [1, 2, 2],
                one,
                [0, 3, 3],
            ),
            // 1×1 stride 2 without padding: one image is read in place, several are copied.
            geom(1, 8, 32, 1, [1, 9, 9], one, [1, 2, 2], one, [0, 0, 0]),
            geom(3, 8, 32, 1, [1, 9, 9], one, [1, 2, 2], one, [0, 0, 0]),
            // Pointwise.
            geom(2, 8, 16, 1, [1, 5, 6], one, one, one, [0, 0, 0]),
            // 1-D.
            geom(
                2,
                4,
                16,
                1,
                [1, 1, 40],
                [1, 1, 5],
                [1, 1, 2],
                one,
                [0, 0, 2],
            ),
            // Parallel over groups of whole images.
            geom(8, 16, 32, 1, [1, 16, 16], [1, 3, 3], one, one, [0, 1, 1]),
            // Parallel over (panel, row) units of one image.
            geom(1, 32, 64, 1, [1, 20, 20], [1, 3, 3], one, one, [0, 1, 1]),
            // Output rows of one position.
            geom(2, 6, 16, 1, [1, 6, 3], [1, 3, 3], [1, 2, 2], one, [0, 1, 0]),
        ];
        for g in cases {
            assert!(bcast::applies(&g), "{g:?}");
            check(g);
        }
        // The old fast path still serves the rest.
        let g = geom(1, 4, 24, 1, [1, 6, 6], [1, 3, 3], one, one, [0, 1, 1]);
        assert!(!bcast::applies(&g));
        let g = geom(1, 4, 32, 2, [1, 6, 6], [1, 3, 3], one, one, [0, 1, 1]);
        assert!(!bcast::applies(&g));
    }

    #[test]
    fn pooled_epilogue_matches_pooling_the_output() -> Result<()> {
        use crate::nd::{pooling, PoolOptions, PoolType, PoolingConvention};
        let ctx = crate::Context::cpu(0);
        let arr = |shape: &[usize], seed: u64| -> Result<NDArray> {
            let n = shape.iter().product();
            let v: Vec<f32> = rand_vec(n, seed).iter().map(|&v| v as f32).collect();
            NDArray::from_vec(v, shape, ctx)
        };
        let max = |k: usize, s: usize, p: usize| {
            PoolOptions::new(&[k, k], PoolType::Max)
                .stride(&[s, s])
                .pad(&[p, p])
        };
        // (n, c, m, h, w, kernel, stride, pad, pooling)
        let cases = [
            // The resnet stem: one image, split over (panel, pooled row) units.
            (1, 3, 64, 64, 64, 7, 2, 3, max(3, 2, 1)),
            // A 16-channel tail panel; 2×2 windows without padding.
            (5, 4, 48, 20, 20, 3, 1, 1, max(2, 2, 0)),
            // The `full` convention: the last windows hang over the edge.
            (
                2,
                4,
                32,
                13,
                13,
                3,
                1,
                1,
                max(3, 2, 0).pooling_convention(PoolingConvention::Full),
            ),
            // Whole images per task.
            (8, 16, 32, 16, 16, 3, 1, 1, max(3, 2, 1)),
            // Stride-1 windows over a small output computed in one block.
            (2, 8, 32, 7, 7, 3, 1, 1, max(3, 1, 1)),
            // Rows so wide that each block is one row (the ring holds 1 + 3 rows).
            (1, 2, 16, 6, 600, 3, 1, 1, max(3, 2, 1)),
            // Global max pooling, and an average pooling (pooled separately).
            (3, 4, 32, 9, 9, 3, 2, 1, PoolOptions::global(PoolType::Max)),
            (
                2,
                4,
                32,
                9,
                9,
                3,
                1,
                1,
                PoolOptions::new(&[3, 3], PoolType::Avg).stride(&[2, 2]),
            ),
        ];
        for (i, (n, c, m, h, w, k, st, pd, po)) in cases.into_iter().enumerate() {
            let x = arr(&[n, c, h, w], 20 + i as u64)?;
            let wt = arr(&[m, c, k, k], 40 + i as u64)?;
            let bias = arr(&[m], 60 + i as u64)?;
            let opts = ConvOptions::new(&[k, k], m)
                .stride(&[st, st])
                .pad(&[pd, pd]);
            let epis = [
                ConvEpilogue::new()
                    .scale(arr(&[m], 80 + i as u64)?)
                    .shift(arr(&[m], 90 + i as u64)?)
                    .relu(true),
                ConvEpilogue::new(),
            ];
            for epi in epis {
                let want = pooling(&convolution_fused(&x, &wt, Some(&bias), &opts, &epi)?, &po)?;
                let got =
                    convolution_fused(&x, &wt, Some(&bias), &opts, &epi.clone().pool(po.clone()))?;
                assert_eq!(got.shape(), want.shape(), "case {i}");
                // The same arithmetic in the same order: equal, not just close.
                assert_eq!(
                    got.to_vec::<f32>()?,
                    want.to_vec::<f32>()?,
                    "case {i} {epi:?}"
                );
            }
        }
        // A window larger than the convolution's output is pooling's error.
        let (x, wt) = (arr(&[1, 2, 4, 4], 1)?, arr(&[16, 2, 3, 3], 2)?);
        let opts = ConvOptions::new(&[3, 3], 16).no_bias(true);
        let e = convolution_fused(
            &x,
            &wt,
            None,
            &opts,
            &ConvEpilogue::new().pool(max(3, 1, 0)),
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::ShapeMismatch { op: "Pooling", .. }),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn packed_weights_follow_weight_changes() -> Result<()> {
        // The third and later calls reuse a packed copy of the weight; writing the weight
        // must invalidate it.
        let ctx = crate::Context::cpu(0);
        let x = NDArray::from_vec(
            rand_vec(2 * 8 * 10 * 10, 11)
                .iter()
                .map(|&v| v as f32)
                .collect(),
            &[2, 8, 10, 10],
            ctx,
        )?;
        let wv: Vec<f32> = rand_vec(32 * 8 * 9, 12).iter().map(|&v| v as f32).collect();
        let w = NDArray::from_vec(wv.clone(), &[32, 8, 3, 3], ctx)?;
        let opts = ConvOptions::new(&[3, 3], 32).pad(&[1, 1]).no_bias(true);
        let want = |w: &NDArray| -> Result<Vec<f32>> {
            // A fresh copy of the weight has no packed form yet.
            let fresh = NDArray::from_vec(w.to_vec::<f32>()?, w.shape(), ctx)?;
            convolution(&x, &fresh, None, &opts)?.to_vec::<f32>()
        };
        let first = want(&w)?;
        for _ in 0..3 {
            assert_eq!(convolution(&x, &w, None, &opts)?.to_vec::<f32>()?, first);
        }
        let doubled: Vec<f32> = wv.iter().map(|v| 2.0 * v).collect();
        w.write_slice::<f32, _>(|s| s.copy_from_slice(&doubled));
        let second = want(&w)?;
        assert_ne!(second, first);
        for _ in 0..3 {
            assert_eq!(convolution(&x, &w, None, &opts)?.to_vec::<f32>()?, second);
        }
        Ok(())
    }

    #[test]
    fn valid_range_bounds() {
        // positions (start + t)·stride + off for t in 0..len inside 0..size
        for &(len, start, stride, off, size) in &[
            (5usize, 0usize, 1usize, -2isize, 4usize),
            (6, 1, 2, -3, 7),
            (4, 0, 3, 5, 3),
            (3, 2, 1, 0, 10),
        ] {
            let (lo, hi) = valid_range(len, start, stride, off, size);
            for t in 0..len {
                let v = ((start + t) * stride) as isize + off;
                assert_eq!(
                    (lo..hi).contains(&t),
                    v >= 0 && v < size as isize,
                    "{len} {start} {stride} {off} {size}: t={t}"
                );
            }
        }
    }

    #[test]
    fn shape_rules_and_errors() {
        let ctx = Context::cpu(0);
        let x = NDArray::zeros(&[2, 4, 7, 7], DType::Float32, ctx).unwrap();
        let w = NDArray::zeros(&[6, 2, 3, 3], DType::Float32, ctx).unwrap();
        let o = ConvOptions::new(&[3, 3], 6)
            .num_group(2)
            .stride(&[2, 2])
            .pad(&[1, 1])
            .no_bias(true);
        assert_eq!(
            convolution(&x, &w, None, &o).unwrap().shape(),
            &[2, 6, 4, 4]
        );
        let err = |o: &ConvOptions, w: &NDArray, b: Option<&NDArray>| {
            convolution(&x, w, b, o).unwrap_err()
        };
        assert!(matches!(
            err(&o.clone().num_group(3), &w, None),
            Error::InvalidArgument { .. }
        ));
        assert!(matches!(
            err(&o.clone().stride(&[2]), &w, None),
            Error::InvalidArgument { .. }
        ));
        assert!(matches!(
            err(&o.clone().stride(&[0, 1]), &w, None),
            Error::InvalidArgument { .. }
        ));
        assert!(matches!(
            err(&o.clone().num_group(1), &w, None),
            Error::ShapeMismatch { .. }
        ));
        assert!(matches!(
            err(
                &ConvOptions::new(&[3], 6).num_group(2).no_bias(true),
                &w,
                None
            ),
            Error::InvalidShape { .. }
        ));
        assert!(matches!(
            err(&o.clone().no_bias(false), &w, None),
            Error::InvalidArgument { .. }
        ));
        let b = NDArray::zeros(&[5], DType::Float32, ctx).unwrap();
        assert!(matches!(
            err(&o.clone().no_bias(false), &w, Some(&b)),
            Error::ShapeMismatch { .. }
        ));
        assert!(matches!(
            err(&o, &w, Some(&b)),
            Error::InvalidArgument { .. }
        ));
        let w9 = NDArray::zeros(&[6, 2, 9, 9], DType::Float32, ctx).unwrap();
        assert!(matches!(
            err(
                &ConvOptions::new(&[9, 9], 6).num_group(2).no_bias(true),
                &w9,
                None
            ),
            Error::ShapeMismatch { .. }
        ));
        let wi = NDArray::zeros(&[6, 2, 3, 3], DType::Int32, ctx).unwrap();
        let xi = NDArray::zeros(&[2, 4, 7, 7], DType::Int32, ctx).unwrap();
        assert!(matches!(
            convolution(&xi, &wi, None, &o),
            Err(Error::UnsupportedDType { .. })
        ));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_other_matches_a_strided_copy_for_all_lengths() {
        for n in 0..80usize {
            // The tightest source (2n − 1 elements) and a roomy one.
            for extra in [0usize, 7] {
                let len = (2 * n).saturating_sub(1) + extra;
                let src: Vec<f32> = (0..len).map(|v| v as f32 * 0.5 - 3.0).collect();
                let mut dst = vec![f32::NAN; n];
                simd::every_other(&mut dst, &src);
                let want: Vec<f32> = (0..n).map(|i| src[2 * i]).collect();
                assert_eq!(dst, want, "n = {n}, extra = {extra}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn channel_split_keeps_both_threads_busy() {
        // 5 row ranges on 2 threads: split the channels in two (10 equal tasks).
        assert_eq!(channel_split(5, 128, 2), (64, 2));
        // 19 row ranges: 10 rounds of 2, 95% busy, no channel split.
        assert_eq!(channel_split(19, 64, 2), (64, 1));
        // 1 row range: at least 2 tasks per thread.
        assert_eq!(channel_split(1, 512, 2), (128, 4));
        // A single thread needs no split beyond two tasks.
        let (step, chunks) = channel_split(1, 8, 4);
        assert_eq!((step, chunks), (8, 1));
        // Chunks are whole micro-kernel heights and cover every channel.
        for (items, mg, threads) in [(3, 100, 2), (2, 24, 3), (7, 1000, 2)] {
            let (step, chunks) = channel_split(items, mg, threads);
            assert_eq!(step % MR, 0);
            assert!(step * chunks >= mg && step * (chunks - 1) < mg);
        }
    }
}
