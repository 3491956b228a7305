//! The channel-vectorised AVX-512 forward pass for float32 2-D convolutions with one group
//! and a multiple of 16 output channels (every convolution of the model zoo's ResNets).
//!
//! Each zmm accumulator holds 16 **output channels** of one output position. The micro-kernel
//! computes 32 channels (two vectors) × up to [`R_MAX`] consecutive positions of one output
//! row: per reduction row `k = (c, ky, kx)` it loads two vectors of packed weights and
//! broadcasts one input value per position, so no lane is ever wasted on a padding column
//! and any stride or dilation is a fixed displacement (no phase planes). The input is read in
//! place, or from a zero-padded copy when the layer pads.
//!
//! The weights are packed once into panels of 32 channels (`[k][32]`, contiguous); the
//! packed copy of an unchanged weight is kept (see [`packed_weights`]), so repeated inference
//! packs nothing. Finished blocks are transposed back to NCHW in registers (a 16 × 16
//! transpose per vector), where the fused epilogue (scale, shift, residual, ReLU) and the
//! bias are applied to whole rows of positions.
//!
//! [`forward_pooled`] runs a 2-D max pooling of the result inside the same tasks: finished
//! rows (after the epilogue) go to a small per-thread ring, still position-major, and each
//! pooled row is taken from it as soon as its window's rows are in, so the convolution's
//! output (at a ResNet's stem, four times the pooled size) never reaches memory.

use std::arch::x86_64::*;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::{ConvGeom, EpiRef, Real, SendPtr, CONV_PAR_MIN_FLOP, SCRATCH_KEEP_BYTES};
use crate::nd::ops::pool::MaxPool2d;
use crate::nd::NDArray;

/// Output channels per panel (two zmm vectors).
const PANEL: usize = 32;
/// Most output positions per micro-kernel call (2 × 14 accumulators + 2 weight vectors + one
/// broadcast fill 31 of the 32 zmm registers).
const R_MAX: usize = 14;
/// Most reduction rows per block: a panel's `KC × 32` weights (at most 40 KiB) stay in L1
/// while every position of the rows being computed streams past them.
const KC: usize = 320;
/// Partial sums one call of [`rows`] keeps (64 KiB): it computes this many output rows of a
/// panel together.
const TILE_ELEMS: usize = 16 * 1024;
/// How far ahead (in floats) the micro-kernel prefetches the weight stream: at batch 1 a
/// deep layer's weights come from memory, read once per panel.
const PREFETCH: usize = 2048;
/// Padded inputs of the images one task computes together stay below this (half of L2).
const GROUP_INPUT_BYTES: usize = 1 << 20;
/// Most images per task.
const MAX_GROUP_IMAGES: usize = 8;
/// Bytes of packed weights kept across calls (all entries together).
const PACK_CACHE_BYTES: usize = 256 << 20;
/// Entries the pack cache remembers (packed or only seen once).
const PACK_CACHE_ENTRIES: usize = 256;

/// Whether this path computes `g` (the caller has checked float32 and AVX-512F).
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.groups == 1
        && g.m.is_multiple_of(16)
        && g.input[0] == 1
        && g.kernel[0] == 1
        && g.pad[0] == 0
        && matches!(g.stride[2], 1 | 2)
        && g.kg() > 0
        && g.pout() > 0
        && g.n > 0
}

use crate::nd::CacheKey;

struct PackEntry {
    key: CacheKey,
    m: usize,
    kg: usize,
    /// `None` for a weight seen once at this version (packed for keeps on its next use).
    data: Option<Arc<Vec<f32>>>,
}

static PACKED: Mutex<Vec<PackEntry>> = Mutex::new(Vec::new());

thread_local! {
    /// Each thread's buffer for weights packed for one call only (they change every call).
    static PACK_SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Packs `w` (`m × kg`, row-major) into panels of [`PANEL`] channels: panel `b` starts at
/// `b·PANEL·kg` and holds `[k][width]` with `width = min(PANEL, m − b·PANEL)`.
fn pack(w: &[f32], m: usize, kg: usize, out: &mut [f32]) {
    let panels = m.div_ceil(PANEL);
    let body = &mut out[..m * kg];
    let fill = |(b, dst): (usize, &mut [f32])| {
        let width = PANEL.min(m - b * PANEL);
        for o in 0..width {
            let src = &w[(b * PANEL + o) * kg..(b * PANEL + o + 1) * kg];
            for (k, &v) in src.iter().enumerate() {
                dst[k * width + o] = v;
            }
        }
    };
    if m * kg >= 1 << 18 && rayon::current_num_threads() > 1 {
        body.par_chunks_mut(PANEL * kg)
            .enumerate()
            .take(panels)
            .for_each(fill);
    } else {
        body.chunks_mut(PANEL * kg)
            .enumerate()
            .take(panels)
            .for_each(fill);
    }
}

/// Runs `f` on the packed form of `w` (`m × kg`). When `src` (the array `w` was read from,
/// under its read lock) is given and was already seen unchanged, its packed copy is reused
/// or made and kept; weights that change between calls (training) are packed into scratch
/// every time and never kept.
fn packed_weights<R>(
    w: &[f32],
    m: usize,
    kg: usize,
    src: Option<&NDArray>,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    /// What the cache says to do with this weight.
    enum Use {
        /// Its packed copy.
        Kept(Arc<Vec<f32>>),
        /// Seen unchanged before: pack it and keep the copy.
        Keep(CacheKey),
        /// New, changed, or without a source: pack it into scratch.
        Scratch,
    }
    let lock = || PACKED.lock().unwrap_or_else(|e| e.into_inner());
    let need = m * kg;
    let action = match src {
        None => Use::Scratch,
        Some(arr) => {
            let mut cache = lock();
            let found = cache
                .iter()
                .position(|e| e.m == m && e.kg == kg && arr.matches_cache_key(&e.key));
            match found {
                Some(i) => {
                    let e = cache.remove(i);
                    match e.data {
                        Some(d) => {
                            cache.push(PackEntry {
                                data: Some(d.clone()),
                                ..e
                            });
                            Use::Kept(d)
                        }
                        None => Use::Keep(e.key),
                    }
                }
                None => {
                    if cache.len() >= PACK_CACHE_ENTRIES {
                        cache.remove(0);
                    }
                    cache.push(PackEntry {
                        key: arr.cache_key(),
                        m,
                        kg,
                        data: None,
                    });
                    Use::Scratch
                }
            }
        }
    };
    match action {
        Use::Kept(d) => f(&d),
        Use::Keep(key) => {
            // Packed outside the lock: `pack` may fork, and a stolen task could be another
            // convolution asking the cache.
            let mut v = vec![0.0f32; need];
            pack(w, m, kg, &mut v);
            let d = Arc::new(v);
            if need * 4 <= PACK_CACHE_BYTES {
                let mut cache = lock();
                let mut used: usize = cache
                    .iter()
                    .map(|e| e.data.as_ref().map_or(0, |d| d.len() * 4))
                    .sum();
                // Make room within the budget, least recently used first.
                while used + need * 4 > PACK_CACHE_BYTES {
                    match cache.iter().position(|e| e.data.is_some()) {
                        Some(j) => {
                            used -= cache[j].data.as_ref().map_or(0, |d| d.len() * 4);
                            cache.remove(j);
                        }
                        None => break,
                    }
                }
                cache.push(PackEntry {
                    key,
                    m,
                    kg,
                    data: Some(d.clone()),
                });
            }
            f(&d)
        }
        Use::Scratch => {
            // Not `Real::take_scratch`: `f` takes that one for the padded input, and would
            // find it gone and allocate on every call.
            let mut buf = PACK_SCRATCH.with(std::cell::Cell::take);
            if buf.len() < need {
                buf.resize(need, 0.0);
            }
            pack(w, m, kg, &mut buf);
            let r = f(&buf[..need]);
            if buf.len() * 4 <= SCRATCH_KEEP_BYTES {
                PACK_SCRATCH.with(|c| c.set(buf));
            }
            r
        }
    }
}

/// The geometry of one problem on this path.
struct Plan<'a> {
    g: &'a ConvGeom,
    /// Padded input plane: rows and row length (the input's own when nothing is padded).
    hp: usize,
    wp: usize,
    padded: bool,
    /// Offset of reduction row `k` in one image's (padded) input.
    offs: Vec<isize>,
    /// Output row split: `(first column, width)` of each block.
    blocks: Vec<(usize, usize)>,
}

impl Plan<'_> {
    fn new(g: &ConvGeom) -> Plan<'_> {
        let [_, h, w] = g.input;
        let [_, ph, pw] = g.pad;
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        let [_, kh, kw] = g.kernel;
        let [_, dh, dw] = g.dilate;
        let mut offs = Vec::with_capacity(g.kg());
        for c in 0..g.c {
            for ky in 0..kh {
                for kx in 0..kw {
                    offs.push((c * hp * wp + ky * dh * wp + kx * dw) as isize);
                }
            }
        }
        let ow = g.out[2];
        let nb = ow.div_ceil(R_MAX);
        let per = ow.div_ceil(nb);
        let blocks = (0..ow)
            .step_by(per)
            .map(|x0| (x0, per.min(ow - x0)))
            .collect();
        Plan {
            g,
            hp,
            wp,
            padded: ph > 0 || pw > 0,
            offs,
            blocks,
        }
    }

    /// Elements of one image's padded input (with slack: none is read past the end, but
    /// the scratch is rounded up anyway).
    fn image_len(&self) -> usize {
        self.g.c * self.hp * self.wp + 16
    }

    /// Copies image `n` of `x` into its zero-padded form.
    fn pad_image(&self, x: &[f32], n: usize, dst: &mut [f32], parallel: bool) {
        let g = self.g;
        let [_, h, w] = g.input;
        let [_, ph, pw] = g.pad;
        let (hp, wp) = (self.hp, self.wp);
        let plane = h * w;
        let xi = &x[n * g.c * plane..(n + 1) * g.c * plane];
        let one = |(c, d): (usize, &mut [f32])| {
            let src = &xi[c * plane..(c + 1) * plane];
            d[..ph * wp].fill(0.0);
            d[(ph + h) * wp..].fill(0.0);
            for y in 0..h {
                let row = &mut d[(ph + y) * wp..(ph + y + 1) * wp];
                row[..pw].fill(0.0);
                row[pw..pw + w].copy_from_slice(&src[y * w..(y + 1) * w]);
                row[pw + w..].fill(0.0);
            }
        };
        let body = &mut dst[..g.c * hp * wp];
        if parallel {
            body.par_chunks_mut(hp * wp).enumerate().for_each(one);
        } else {
            body.chunks_mut(hp * wp).enumerate().for_each(one);
        }
        dst[g.c * hp * wp..].fill(0.0);
    }
}

/// What finished blocks are stored with.
struct Out<'a> {
    y: SendPtr<f32>,
    bias: Option<&'a [f32]>,
    epi: Option<&'a EpiRef<'a, f32>>,
}

thread_local! {
    /// Each thread's partial sums for [`rows`].
    static TILE: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Plan<'_> {
    /// Output rows one call of [`rows`] computes together.
    fn rows_per_call(&self) -> usize {
        (TILE_ELEMS / (self.g.out[2] * PANEL)).max(1)
    }
}

/// Computes output rows `oy0..oy1` (at most [`Plan::rows_per_call`]) of panel `b` (channels
/// `b·PANEL..`) of image `n` from `xi` (the image's input as the plan reads it) and `wb` (the
/// panel's packed weights), and stores them with the bias or epilogue.
///
/// # Safety
/// AVX-512F must be available; `xi` must hold the image's (padded) input, `wb` the panel,
/// and no other task may write these rows of these channels of image `n`.
#[allow(clippy::too_many_arguments)]
unsafe fn rows(
    p: &Plan<'_>,
    out: &Out<'_>,
    xi: &[f32],
    wb: &[f32],
    n: usize,
    b: usize,
    oy0: usize,
    oy1: usize,
) {
    let g = p.g;
    let width = PANEL.min(g.m - b * PANEL);
    let ow = g.out[2];
    let pout = g.pout();
    let ybase = (n * g.m + b * PANEL) * pout;
    assert!(oy0 < oy1 && oy1 <= g.out[1]);
    assert!(ybase + (width - 1) * pout + oy1 * ow <= out.y.1);
    let mut tile = TILE.with(std::cell::Cell::take);
    // SAFETY: as this function's contract.
    unsafe { compute(p, xi, wb, b, (oy0, oy1), &mut tile, Some((out, ybase))) };
    // The tile holds the rows' positions in order: store them 16 at a time (whole vectors,
    // across block boundaries).
    for oy in oy0..oy1 {
        for x0 in (0..ow).step_by(16) {
            let r = 16.min(ow - x0);
            let t = &tile[((oy - oy0) * ow + x0) * PANEL..][..r * PANEL];
            // SAFETY: rows ybase + o·pout + oy·ow + x0.. (r positions) of y belong to this
            // task (asserted in bounds above).
            unsafe { store(out, t, width, r, ybase + oy * ow + x0, pout, b * PANEL) };
        }
    }
    TILE.with(|c| c.set(tile));
}

/// The raw sums of output rows `oy0..oy1` (at most [`Plan::rows_per_call`]) of panel `b`
/// into `tile` (position-major, `PANEL` values per position; grown as needed): [`KC`]
/// reduction rows at a time over every position of the rows, so that each block of weights
/// is read from memory once and then served from L1. With `ahead = (out, ybase)`, the output
/// lines the rows will be stored to (from `ybase`) are prefetched during the last block.
///
/// # Safety
/// AVX-512F must be available; `xi` must hold the image's (padded) input and `wb` the panel.
unsafe fn compute(
    p: &Plan<'_>,
    xi: &[f32],
    wb: &[f32],
    b: usize,
    (oy0, oy1): (usize, usize),
    tile: &mut Vec<f32>,
    ahead: Option<(&Out<'_>, usize)>,
) {
    let g = p.g;
    let width = PANEL.min(g.m - b * PANEL);
    let [_, sh, sw] = g.stride;
    let (kg, ow) = (g.kg(), g.out[2]);
    assert!(oy0 < oy1 && oy1 <= g.out[1] && oy1 - oy0 <= p.rows_per_call());
    // Bounds of every read: the last position of the last row plus the largest offset.
    let last =
        p.offs.last().copied().unwrap_or(0) as usize + ((oy1 - 1) * sh) * p.wp + (ow - 1) * sw;
    assert!(last < xi.len() && wb.len() >= kg * width && p.offs.len() == kg);
    let pout = g.pout();
    let need = (oy1 - oy0) * ow * PANEL;
    if tile.len() < need {
        tile.resize(need, 0.0);
    }
    // Equal chunks of at most KC rows (576 = 288 + 288, not 256 + 256 + 64).
    let chunk = kg.div_ceil(kg.div_ceil(KC));
    // While the last chunk computes, the output lines these rows will store (and the
    // residual's, which the epilogue reads) are prefetched into L2 a few per kernel call: at
    // large batch they come from memory, and a burst of misses at store time would stall.
    let two_rows = 2 * ow <= R_MAX;
    let calls = if two_rows {
        (oy1 - oy0).div_ceil(2)
    } else {
        (oy1 - oy0) * p.blocks.len()
    };
    let span = (oy1 - oy0) * ow;
    let lines_per = span.div_ceil(16) + 1;
    let lines = width * lines_per;
    let prefetch = |call: usize| {
        let Some((out, ybase)) = ahead else { return };
        let res = out.epi.and_then(|e| e.res);
        for l in call * lines / calls..(call + 1) * lines / calls {
            let off = ybase + (l / lines_per) * pout + oy0 * ow + (l % lines_per) * 16;
            // A hint: addresses just past a row are harmless.
            _mm_prefetch::<_MM_HINT_T1>(out.y.0.wrapping_add(off) as *const i8);
            if let Some(r) = res {
                _mm_prefetch::<_MM_HINT_T1>(r.as_ptr().wrapping_add(off) as *const i8);
            }
        }
    };
    for kb in (0..kg).step_by(chunk) {
        let kc = chunk.min(kg - kb);
        let last_chunk = kb + kc == kg;
        let mut call = 0;
        // SAFETY: rows kb..kb + kc of the panel are inside `wb`.
        let (w, offs) = unsafe { (wb.as_ptr().add(kb * width), p.offs.as_ptr().add(kb)) };
        // The chunk's first kernel call streams its weights into L1 (prefetching a fixed
        // distance ahead); the later calls, which find them there, pull the next chunk's into
        // L2 a line per reduction row, so that it does not arrive in one burst from memory
        // (at batch 1 the deep layers' weights are read once per panel). Each call covers
        // `kc` lines: call c its (c − 1)-th such share, wrapping.
        let next_lines = chunk.min(kg.saturating_sub(kb + kc)) * width / 16;
        let mut calls_in_chunk = 0usize;
        let mut w_of_call = || {
            let c = calls_in_chunk;
            calls_in_chunk += 1;
            let ahead = (c > 0 && next_lines > 0).then(|| {
                let line = ((c - 1) * kc) % next_lines;
                w.wrapping_add(kc * width + 16 * line)
            });
            (w, ahead)
        };
        let mut oy = oy0;
        while oy < oy1 {
            if last_chunk {
                prefetch(call);
                call += 1;
            }
            if two_rows && oy + 1 < oy1 {
                // Narrow rows: one block of two whole rows (contiguous in the tile).
                let t = &mut tile[(oy - oy0) * ow * PANEL..][..2 * ow * PANEL];
                // SAFETY: both rows' reads are below `last` (asserted), the partial sums
                // inside `t`.
                unsafe {
                    let xb = xi.as_ptr().add((oy * sh) * p.wp);
                    let rs = (sh * p.wp) as isize;
                    micro2(
                        width / 16,
                        ow,
                        sw,
                        kc,
                        w_of_call(),
                        (xb, rs),
                        offs,
                        t.as_mut_ptr(),
                        kb > 0,
                    );
                }
                oy += 2;
                continue;
            }
            for (bi, &(x0, r)) in p.blocks.iter().enumerate() {
                if last_chunk && bi > 0 {
                    prefetch(call);
                    call += 1;
                }
                let t = &mut tile[((oy - oy0) * ow + x0) * PANEL..][..r * PANEL];
                // SAFETY: the block's reads are below `last` (asserted), its weights (rows
                // kb..kb+kc of the panel) inside `wb`, its partial sums inside `t`.
                unsafe {
                    let xb = xi.as_ptr().add((oy * sh) * p.wp + x0 * sw);
                    micro(
                        width / 16,
                        r,
                        sw,
                        kc,
                        w_of_call(),
                        xb,
                        offs,
                        t.as_mut_ptr(),
                        kb > 0,
                    );
                }
            }
            oy += 1;
        }
    }
}

/// Dispatches the micro-kernel on (vectors, positions, stride).
///
/// # Safety
/// As [`kernel`].
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    ocv: usize,
    r: usize,
    s: usize,
    kg: usize,
    w: (*const f32, Option<*const f32>),
    xb: *const f32,
    offs: *const isize,
    t: *mut f32,
    load: bool,
) {
    macro_rules! go {
        ($($r:literal)*) => {
            match (ocv, s, r) {
                $(
                    (1, 1, $r) => unsafe { kernel::<1, $r, 1, $r>(kg, w, (xb, 0), offs, t, load) },
                    (1, 2, $r) => unsafe { kernel::<1, $r, 2, $r>(kg, w, (xb, 0), offs, t, load) },
                    (2, 1, $r) => unsafe { kernel::<2, $r, 1, $r>(kg, w, (xb, 0), offs, t, load) },
                    (2, 2, $r) => unsafe { kernel::<2, $r, 2, $r>(kg, w, (xb, 0), offs, t, load) },
                )*
                // Unreachable: panels hold 16 or 32 channels (m is a multiple of 16), blocks
                // 1..=R_MAX positions, and `applies` admits strides 1 and 2 only.
                _ => unreachable!("unsupported block shape"),
            }
        };
    }
    go!(1 2 3 4 5 6 7 8 9 10 11 12 13 14)
}

/// Dispatches the two-row micro-kernel: `w` positions of the row at `xb` and `w` of the row
/// `rs` further.
///
/// # Safety
/// As [`kernel`].
#[allow(clippy::too_many_arguments)]
unsafe fn micro2(
    ocv: usize,
    w: usize,
    s: usize,
    kg: usize,
    wp: (*const f32, Option<*const f32>),
    xb: (*const f32, isize),
    offs: *const isize,
    t: *mut f32,
    load: bool,
) {
    macro_rules! go {
        ($($w:literal $r:literal)*) => {
            match (ocv, s, w) {
                $(
                    (1, 1, $w) => unsafe { kernel::<1, $r, 1, $w>(kg, wp, xb, offs, t, load) },
                    (1, 2, $w) => unsafe { kernel::<1, $r, 2, $w>(kg, wp, xb, offs, t, load) },
                    (2, 1, $w) => unsafe { kernel::<2, $r, 1, $w>(kg, wp, xb, offs, t, load) },
                    (2, 2, $w) => unsafe { kernel::<2, $r, 2, $w>(kg, wp, xb, offs, t, load) },
                )*
                // Unreachable: two-row blocks are used for rows of at most R_MAX / 2 = 7
                // positions (see `rows`).
                _ => unreachable!("unsupported two-row block shape"),
            }
        };
    }
    go!(1 2 2 4 3 6 4 8 5 10 6 12 7 14)
}

/// `tile[j·PANEL + 16·v + lane] (+)= Σ_k w[k·16·OCV + 16·v + lane] · x_j[offs[k]]` for
/// positions `j < R` and vectors `v < OCV` (adding to the tile's values when `load`), where
/// position `j` is `x_j = xb + j·S` for `j < W` and `xb + rs + (j − W)·S` after (two rows).
/// The weights are prefetched a fixed distance ahead into L1, or, with `ahead`, the line at
/// `ahead + 16·k` into L2 per reduction row `k` (the next chunk, see [`compute`]).
///
/// # Safety
/// AVX-512F must be available; `offs` must hold `kg` entries, `w` `kg·16·OCV` values, every
/// `x_j + offs[k]` must be readable and `tile` must hold `R·PANEL` values.
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const OCV: usize, const R: usize, const S: usize, const W: usize>(
    kg: usize,
    (w, ahead): (*const f32, Option<*const f32>),
    (xb, rs): (*const f32, isize),
    offs: *const isize,
    tile: *mut f32,
    load: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); OCV]; R];
    if load {
        for (j, row) in acc.iter_mut().enumerate() {
            for (v, a) in row.iter_mut().enumerate() {
                // SAFETY: inside the tile by the caller's contract.
                *a = unsafe { _mm512_loadu_ps(tile.add(j * PANEL + 16 * v)) };
            }
        }
    }
    for k in 0..kg {
        // SAFETY (all unsafe blocks): in bounds by the caller's contract; prefetching
        // addresses past the weights is harmless (a hint, never a fault).
        let wk = unsafe { w.add(k * 16 * OCV) };
        match ahead {
            None => {
                for v in 0..OCV {
                    _mm_prefetch::<_MM_HINT_T0>(wk.wrapping_add(PREFETCH + 16 * v) as *const i8);
                }
            }
            Some(a) => _mm_prefetch::<_MM_HINT_T1>(a.wrapping_add(16 * k) as *const i8),
        }
        let mut wv = [_mm512_setzero_ps(); OCV];
        for (v, x) in wv.iter_mut().enumerate() {
            *x = unsafe { _mm512_loadu_ps(wk.add(16 * v)) };
        }
        let xk = unsafe { xb.offset(*offs.add(k)) };
        let xk2 = xk.wrapping_offset(rs);
        for (j, row) in acc.iter_mut().enumerate() {
            let xj = if j < W {
                unsafe { xk.add(j * S) }
            } else {
                unsafe { xk2.add((j - W) * S) }
            };
            let bv = _mm512_set1_ps(unsafe { *xj });
            for (a, wvv) in row.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(*wvv, bv, *a);
            }
        }
    }
    for (j, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            unsafe { _mm512_storeu_ps(tile.add(j * PANEL + 16 * v), *a) };
        }
    }
}

/// Stores a finished block: `tile` holds `r` positions × `width` channels; channel `o`'s
/// `r` values go to `y[y0 + o·stride ..]` after the bias or the epilogue (channel `c0 + o`).
///
/// # Safety
/// AVX-512F must be available; the `width` destination rows of `r` elements (and the
/// residual's, same offsets) must be inside the output and owned by the caller.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn store(
    out: &Out<'_>,
    tile: &[f32],
    width: usize,
    r: usize,
    y0: usize,
    stride: usize,
    c0: usize,
) {
    let mask: u16 = if r >= 16 { 0xFFFF } else { (1u16 << r) - 1 };
    for v in 0..width / 16 {
        let mut rows = [_mm512_setzero_ps(); 16];
        for (j, x) in rows.iter_mut().enumerate().take(r) {
            *x = _mm512_loadu_ps(tile[j * PANEL + 16 * v..][..16].as_ptr());
        }
        let cols = transpose16(rows);
        for (o, col) in cols.iter().enumerate() {
            let c = c0 + 16 * v + o;
            let dst = y0 + (16 * v + o) * stride;
            let res = out.epi.and_then(|e| e.res).map(|res| {
                // SAFETY: the residual is laid out like y (checked by the caller).
                unsafe { _mm512_maskz_loadu_ps(mask, res.as_ptr().add(dst)) }
            });
            let val = finish(
                *col,
                out.epi
                    .map(|e| (_mm512_set1_ps(e.a[c]), _mm512_set1_ps(e.b[c]), e.relu)),
                res,
                out.bias.map(|bs| _mm512_set1_ps(bs[c])),
            );
            // SAFETY: the destination row belongs to the caller.
            unsafe { _mm512_mask_storeu_ps(out.y.0.add(dst), mask, val) };
        }
    }
}

/// The bias or the epilogue applied to a vector of sums, in one order for every caller (the
/// fused pooling must give exactly what pooling the stored output gives): with
/// `epi = (scale, shift, relu)`, `relu?(sums · scale + shift + res)`; without, `sums + bias`.
#[inline]
#[target_feature(enable = "avx512f")]
fn finish(
    sums: __m512,
    epi: Option<(__m512, __m512, bool)>,
    res: Option<__m512>,
    bias: Option<__m512>,
) -> __m512 {
    match epi {
        Some((a, b, relu)) => {
            let mut val = _mm512_fmadd_ps(sums, a, b);
            if let Some(rv) = res {
                val = _mm512_add_ps(val, rv);
            }
            if relu {
                val = _mm512_max_ps(val, _mm512_setzero_ps());
            }
            val
        }
        None => match bias {
            Some(bv) => _mm512_add_ps(sums, bv),
            None => sums,
        },
    }
}

/// Transposes a 16 × 16 matrix held as 16 row vectors into its 16 column vectors.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Stage 1: interleave pairs of rows (within each 128-bit lane).
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // Stage 2: interleave pairs of pairs: u[4i + c] holds rows 4i..4i+4 of columns
    // c, c+4, c+8, c+12 (one per 128-bit lane).
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        let (a0, a1, a2, a3) = (
            _mm512_castps_pd(t[4 * i]),
            _mm512_castps_pd(t[4 * i + 1]),
            _mm512_castps_pd(t[4 * i + 2]),
            _mm512_castps_pd(t[4 * i + 3]),
        );
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    // Stages 3 and 4: gather the 128-bit lanes of the four row groups.
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let v1 = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
        let v2 = _mm512_shuffle_f32x4::<0xEE>(u[c], u[4 + c]);
        let v3 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
        let v4 = _mm512_shuffle_f32x4::<0xEE>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
        out[c + 4] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
        out[c + 8] = _mm512_shuffle_f32x4::<0x88>(v2, v4);
        out[c + 12] = _mm512_shuffle_f32x4::<0xDD>(v2, v4);
    }
    out
}

/// The forward pass on this path (the caller has checked [`applies`], float32 and
/// AVX-512F). `wsrc` is the weight array `w` was read from, for the packed-weight cache.
pub(super) fn forward(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    wsrc: Option<&NDArray>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    epi: Option<&EpiRef<'_, f32>>,
) {
    let p = Plan::new(g);
    if let Some(e) = epi {
        assert!(e.a.len() >= g.m && e.b.len() >= g.m && e.res.is_none_or(|r| r.len() == y.len()));
    }
    if let Some(b) = bias {
        assert!(b.len() >= g.m);
    }
    let out = Out {
        y: SendPtr::new(y),
        bias,
        epi,
    };
    let step = p.rows_per_call();
    drive(&p, x, w, wsrc, g.out[1], |xi, wb, n, b, oy0, oy1| {
        for oy in (oy0..oy1).step_by(step) {
            // SAFETY: AVX-512F is checked by the caller; `drive` hands each (image, panel,
            // rows) to one task.
            unsafe { rows(&p, &out, xi, wb, n, b, oy, (oy + step).min(oy1)) };
        }
    });
}

/// [`forward`] followed by the 2-D max pooling `pool`, without writing the convolution's
/// output: each task keeps the last rows of its panel (after the bias or epilogue, which has
/// no residual here) in a small ring, position-major, and pools output rows as soon as their
/// windows are complete. `y` receives the pooled `(N, M, OH', OW')` array. This saves the
/// round trip of the (largest) convolution output through memory that a separate pooling
/// pass costs, as after a ResNet's stem.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_pooled(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    wsrc: Option<&NDArray>,
    bias: Option<&[f32]>,
    epi: Option<&EpiRef<'_, f32>>,
    pool: &MaxPool2d,
    y: &mut [f32],
) {
    let p = Plan::new(g);
    if let Some(e) = epi {
        assert!(e.a.len() >= g.m && e.b.len() >= g.m && e.res.is_none());
    }
    if let Some(b) = bias {
        assert!(b.len() >= g.m);
    }
    let (oh, ow) = (g.out[1], g.out[2]);
    let (poh, pow) = (pool.rows.len(), pool.cols.len());
    // The windows are monotonic ranges inside the convolution's output (as `pooling` makes
    // them); the kernels below rely on it.
    let fits = |w: &[(usize, usize)], len: usize| {
        w.iter().all(|&(lo, hi)| lo <= hi && hi <= len)
            && w.windows(2).all(|v| v[0].0 <= v[1].0 && v[0].1 <= v[1].1)
    };
    assert!(fits(&pool.rows, oh) && fits(&pool.cols, ow) && y.len() == g.n * g.m * poh * pow);
    let out = Pooled {
        y: Out {
            y: SendPtr::new(y),
            bias: None,
            epi: None,
        },
        bias,
        epi,
        pool,
    };
    drive(&p, x, w, wsrc, poh, |xi, wb, n, b, p0, p1| {
        // SAFETY: AVX-512F is checked by the caller; `drive` hands each (image, panel,
        // pooled rows) to one task.
        unsafe { pooled_rows(&p, &out, xi, wb, n, b, (p0, p1)) };
    });
}

/// Splits the work of one forward pass into tasks and runs them: `job(xi, wb, n, b, u0, u1)`
/// computes units `u0..u1` (output rows, of the convolution or of a pooling after it;
/// `units` per image and panel) of panel `b` of image `n`, from `xi` (the image's input as
/// the plan reads it) and `wb` (the panel's packed weights). Each (image, panel, unit) is
/// handed to exactly one call.
fn drive<F>(p: &Plan<'_>, x: &[f32], w: &[f32], wsrc: Option<&NDArray>, units: usize, job: F)
where
    F: Fn(&[f32], &[f32], usize, usize, usize, usize) + Sync,
{
    let g = p.g;
    let kg = g.kg();
    let panels = g.m.div_ceil(PANEL);
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && g.flop() >= CONV_PAR_MIN_FLOP;
    let pin = g.c * g.input[1] * g.input[2];
    let ilen = p.image_len();
    packed_weights(w, g.m, kg, wsrc, |wp| {
        let panel = |b: usize| &wp[b * PANEL * kg..(b * PANEL + PANEL.min(g.m - b * PANEL)) * kg];
        if !parallel || g.n >= 2 * threads {
            // Whole images per task; several share each weight panel while their inputs
            // stay within half of L2 and every thread still gets two tasks.
            let by_cache = (GROUP_INPUT_BYTES / (ilen * 4)).max(1);
            let by_threads = if parallel { g.n / (2 * threads) } else { g.n };
            let most = by_cache.min(by_threads).clamp(1, MAX_GROUP_IMAGES);
            // Groups of near-equal size, a multiple of the thread count of them when
            // parallel: 32 images in groups of at most 6 go 5-6-5-5-6-5, not 6-6-6-6-6-2 (an
            // eighth of the time lost waiting on the thread that got three full groups).
            let tasks = if parallel {
                (threads * g.n.div_ceil(threads * most)).min(g.n)
            } else {
                g.n.div_ceil(most)
            };
            let task = |t: usize| {
                let (n0, n1) = (t * g.n / tasks, (t + 1) * g.n / tasks);
                if n0 == n1 {
                    return;
                }
                // With several images the input is copied even when the layer does not pad:
                // it then comes from memory, and one sequential copy streams it far faster
                // than the kernel's scattered broadcasts would.
                let copy = p.padded || g.n > 1;
                let mut buf = if copy {
                    f32::take_scratch(ilen * (n1 - n0))
                } else {
                    Vec::new()
                };
                if copy {
                    for (i, n) in (n0..n1).enumerate() {
                        p.pad_image(x, n, &mut buf[i * ilen..(i + 1) * ilen], false);
                    }
                }
                for b in 0..panels {
                    for (i, n) in (n0..n1).enumerate() {
                        let xi = if copy {
                            &buf[i * ilen..(i + 1) * ilen]
                        } else {
                            &x[n * pin..(n + 1) * pin]
                        };
                        job(xi, panel(b), n, b, 0, units);
                    }
                }
                if copy {
                    f32::put_scratch(buf);
                }
            };
            if parallel {
                (0..tasks).into_par_iter().for_each(task);
            } else {
                (0..tasks).for_each(task);
            }
            return;
        }
        // Few images: pad them all first, then split (image, panel, unit) triples into equal
        // contiguous ranges, several per thread.
        let mut buf = if p.padded {
            f32::take_scratch(ilen * g.n)
        } else {
            Vec::new()
        };
        if p.padded {
            for n in 0..g.n {
                p.pad_image(x, n, &mut buf[n * ilen..(n + 1) * ilen], true);
            }
        }
        let total = g.n * panels * units;
        let tasks = total.min(4 * threads);
        let per = total.div_ceil(tasks.max(1)).max(1);
        let bufr = &buf;
        (0..total.div_ceil(per)).into_par_iter().for_each(|t| {
            let end = ((t + 1) * per).min(total);
            let mut u = t * per;
            while u < end {
                // The run of this range inside one (image, panel).
                let (n, b, u0) = (u / (panels * units), u / units % panels, u % units);
                let u1 = units.min(u0 + end - u);
                let xi = if p.padded {
                    &bufr[n * ilen..(n + 1) * ilen]
                } else {
                    &x[n * pin..(n + 1) * pin]
                };
                job(xi, panel(b), n, b, u0, u1);
                u += u1 - u0;
            }
        });
        if p.padded {
            f32::put_scratch(buf);
        }
    });
}

/// What [`forward_pooled`] computes with.
struct Pooled<'a> {
    /// The pooled output (stored as is: no bias or epilogue).
    y: Out<'a>,
    /// The bias or epilogue of the convolution's rows, applied before pooling.
    bias: Option<&'a [f32]>,
    epi: Option<&'a EpiRef<'a, f32>>,
    pool: &'a MaxPool2d,
}

thread_local! {
    /// Each thread's ring of finished convolution rows for [`pooled_rows`].
    static RING: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Computes pooled rows `p0..p1` of panel `b` of image `n` (see [`forward_pooled`]): the
/// convolution rows their windows cover, [`Plan::rows_per_call`] at a time, into a ring of
/// `step + tallest window` rows, pooling each output row once its last input row is in.
///
/// # Safety
/// AVX-512F must be available; `xi` must hold the image's (padded) input, `wb` the panel,
/// and no other task may write these pooled rows of these channels of image `n`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn pooled_rows(
    p: &Plan<'_>,
    out: &Pooled<'_>,
    xi: &[f32],
    wb: &[f32],
    n: usize,
    b: usize,
    (p0, p1): (usize, usize),
) {
    let g = p.g;
    let pool = out.pool;
    let width = PANEL.min(g.m - b * PANEL);
    let ow = g.out[2];
    let (poh, pow) = (pool.rows.len(), pool.cols.len());
    let plane = poh * pow;
    // Pooled rows p0..p1 of these channels of image n (the last channel's last row ends the
    // span) are inside the output.
    let ybase = (n * g.m + b * PANEL) * plane;
    assert!(p0 < p1 && p1 <= poh && ybase + (width - 1) * plane + p1 * pow <= out.y.y.1);
    let step = p.rows_per_call();
    let tallest = pool.rows[p0..p1]
        .iter()
        .map(|&(lo, hi)| hi - lo)
        .max()
        .unwrap_or(0);
    let cap = step + tallest;
    let row_len = ow * PANEL;
    let mut ring = RING.with(std::cell::Cell::take);
    // The ring, then one pooled row (position-major, padded to whole groups of 16).
    let pooled_at = cap * row_len;
    let need = pooled_at + pow.next_multiple_of(16) * PANEL;
    if ring.len() < need {
        ring.resize(need, 0.0);
    }
    let mut tile = TILE.with(std::cell::Cell::take);
    // Windows are monotonic: rows p0..p1 read convolution rows start..end.
    let (start, end) = (pool.rows[p0].0, pool.rows[p1 - 1].1);
    let mut done = start;
    let mut next = p0;
    loop {
        while next < p1 && pool.rows[next].1 <= done {
            // Row `next`'s window rows are all in the ring: a row `r` computed later
            // overwrites row `r − cap`, below every window not yet pooled (each is at most
            // `tallest` rows and ends past the rows computed before `r`'s block).
            let (r0, r1) = pool.rows[next];
            let (ring_rows, pooled) = ring.split_at_mut(pooled_at);
            for (q, &(c0, c1)) in pool.cols.iter().enumerate() {
                for v in 0..width / 16 {
                    let mut m = _mm512_set1_ps(f32::MIN);
                    for r in r0..r1 {
                        let line = &ring_rows[(r % cap) * row_len..][..row_len];
                        for c in c0..c1 {
                            let x = _mm512_loadu_ps(line[c * PANEL + 16 * v..][..16].as_ptr());
                            // Returns m when x is NaN, as `pooling` skips NaNs.
                            m = _mm512_max_ps(x, m);
                        }
                    }
                    _mm512_storeu_ps(pooled[q * PANEL + 16 * v..][..16].as_mut_ptr(), m);
                }
            }
            for q0 in (0..pow).step_by(16) {
                let r = 16.min(pow - q0);
                let y0 = ybase + next * pow + q0;
                // SAFETY: pooled row `next` of these channels of image n is this task's and
                // inside the output (asserted above).
                unsafe {
                    store(
                        &out.y,
                        &pooled[q0 * PANEL..][..r * PANEL],
                        width,
                        r,
                        y0,
                        plane,
                        0,
                    )
                };
            }
            next += 1;
        }
        if next == p1 {
            break;
        }
        // Row `next`'s window ends past `done`, and no window ends past `end`.
        let oy1 = (done + step).min(end);
        // SAFETY: as this function's contract; rows done..oy1 are inside the output.
        unsafe { compute(p, xi, wb, b, (done, oy1), &mut tile, None) };
        for r in done..oy1 {
            let src = &tile[(r - done) * row_len..][..row_len];
            let dst = &mut ring[(r % cap) * row_len..][..row_len];
            for x in 0..ow {
                for v in 0..width / 16 {
                    let c = b * PANEL + 16 * v;
                    let sums = _mm512_loadu_ps(src[x * PANEL + 16 * v..][..16].as_ptr());
                    let load = |a: &[f32]| _mm512_loadu_ps(a[c..c + 16].as_ptr());
                    let val = finish(
                        sums,
                        out.epi.map(|e| (load(e.a), load(e.b), e.relu)),
                        None,
                        out.bias.map(load),
                    );
                    _mm512_storeu_ps(dst[x * PANEL + 16 * v..][..16].as_mut_ptr(), val);
                }
            }
        }
        done = oy1;
    }
    TILE.with(|c| c.set(tile));
    RING.with(|c| c.set(ring));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_transposes() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut rows = [[0.0f32; 16]; 16];
        for (i, r) in rows.iter_mut().enumerate() {
            r.copy_from_slice(&m[i * 16..(i + 1) * 16]);
        }
        // SAFETY: AVX-512F was detected.
        let cols = unsafe {
            let v = rows.map(|r| _mm512_loadu_ps(r.as_ptr()));
            transpose16(v)
        };
        for (c, v) in cols.iter().enumerate() {
            let mut got = [0.0f32; 16];
            // SAFETY: AVX-512F was detected; `got` holds 16 values.
            unsafe { _mm512_storeu_ps(got.as_mut_ptr(), *v) };
            for (r, &x) in got.iter().enumerate() {
                assert_eq!(x, m[r * 16 + c], "column {c}, row {r}");
            }
        }
    }

    #[test]
    fn pack_lays_out_panels() {
        let (m, kg) = (48, 5);
        let w: Vec<f32> = (0..m * kg).map(|i| i as f32).collect();
        let mut out = vec![0.0; m * kg];
        pack(&w, m, kg, &mut out);
        // Panel 0: 32 channels, [k][32]; panel 1: 16 channels, [k][16].
        assert_eq!(out[3 * 32 + 7], w[7 * kg + 3]);
        assert_eq!(out[32 * kg + 4 * 16 + 15], w[(32 + 15) * kg + 4]);
    }
}
