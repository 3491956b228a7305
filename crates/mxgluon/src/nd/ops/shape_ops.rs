//! Shape kernels and their backward helpers: `concat`, `slice_axis`, `take`, `transpose`,
//! `broadcast_to` and `sum_to_shape` (the gradient of broadcasting).
//!
//! Crate-private building blocks for the autograd layer. The copying kernels move bytes and so
//! work for every dtype; the ones that add (`take_bwd`, `sum_to_shape` on floats) compute as
//! the float kernels of `nn` do (f64 for float64, f32 otherwise, sums of many terms in f64).
//! Results are new arrays, except where a doc says a result may share memory with its input.

use super::check_pair;
use super::elementwise::{bcast_strides, Plan};
use super::nn::{
    check_axis, for_each_row, for_rows_costed, lane_sum, read_real, reduce_rows, split3, with_real,
    write_real, Real,
};
use super::transpose::transpose_f32;
use crate::error::{fmt_shape, Error, Result};
use crate::nd::{par, shape_size, NDArray};

/// Runs `$body` with `$T` bound to the unsigned integer type of `$dtype`'s element size
/// (copies do not care what the bytes mean).
macro_rules! by_elem_size {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype.size() {
            1 => {
                type $T = u8;
                $body
            }
            2 => {
                type $T = u16;
                $body
            }
            4 => {
                type $T = u32;
                $body
            }
            _ => {
                type $T = u64;
                $body
            }
        }
    };
}

// ============================================================================ concat

/// MXNet's `concat` along `dim`: the arrays (at least one; one dtype and context; all of one
/// rank ≥ 1, agreeing on every dimension but `dim`) joined end to end. Any dtype.
pub(crate) fn concat(xs: &[&NDArray], dim: usize) -> Result<NDArray> {
    const OP: &str = "concat";
    let first = *xs
        .first()
        .ok_or_else(|| Error::invalid_arg(OP, "needs at least one array"))?;
    if first.ndim() == 0 {
        return Err(Error::InvalidShape {
            op: OP,
            shape: vec![],
            reason: "zero-dimensional arrays cannot be concatenated".into(),
        });
    }
    check_axis(OP, dim, first.shape())?;
    let mut total = 0usize;
    for x in xs {
        check_pair(OP, first, x)?;
        let agree = x.ndim() == first.ndim()
            && x.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .all(|(i, (a, b))| i == dim || a == b);
        if !agree {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: first.shape().to_vec(),
                rhs: x.shape().to_vec(),
                detail: format!("every dimension but {dim} must agree"),
            });
        }
        total += x.shape()[dim];
    }
    let mut shape = first.shape().to_vec();
    shape[dim] = total;
    let out = NDArray::for_overwrite(&shape, first.dtype(), first.context())?;
    let (_, _, inner) = split3(&shape, dim);
    let es = first.dtype().size();
    let row = total * inner * es;
    out.write_bytes(|ob| {
        let mut off = 0;
        for x in xs {
            let len = x.shape()[dim] * inner * es;
            if len > 0 {
                x.read_bytes(|xb| {
                    for_each_row(ob, row, |o, orow| {
                        orow[off..off + len].copy_from_slice(&xb[o * len..(o + 1) * len])
                    })
                });
            }
            off += len;
        }
    });
    Ok(out)
}

// ============================================================================ slice_axis

/// MXNet's `slice_axis`: a copy of indices `begin..end` along `axis`. As in MXNet the range must
/// be non-empty (`begin < end <= shape[axis]`; `0..0` on an empty axis).
pub(crate) fn slice_axis(x: &NDArray, axis: usize, begin: usize, end: usize) -> Result<NDArray> {
    const OP: &str = "slice_axis";
    check_axis(OP, axis, x.shape())?;
    let d = x.shape()[axis];
    let ok = if d == 0 {
        begin == 0 && end == 0
    } else {
        begin < end && end <= d
    };
    if !ok {
        return Err(Error::invalid_arg(
            OP,
            format!(
                "range {begin}..{end} must be a non-empty range inside 0..{d} (axis {axis} of \
                 shape {})",
                fmt_shape(x.shape())
            ),
        ));
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = end - begin;
    let out = NDArray::for_overwrite(&shape, x.dtype(), x.context())?;
    let (_, _, inner) = split3(x.shape(), axis);
    let es = x.dtype().size();
    let (row_in, row_out, off) = (
        d * inner * es,
        (end - begin) * inner * es,
        begin * inner * es,
    );
    x.read_bytes(|xb| {
        out.write_bytes(|ob| {
            for_each_row(ob, row_out, |o, orow| {
                orow.copy_from_slice(&xb[o * row_in + off..o * row_in + off + row_out])
            })
        })
    });
    Ok(out)
}

/// Backward of [`slice_axis`]: zeros of `in_shape` with `dy` placed at `begin` along `axis`
/// (`dy` has `in_shape` but `len` along `axis`, `begin + len <= in_shape[axis]`). Any dtype.
pub(crate) fn slice_axis_bwd(
    dy: &NDArray,
    in_shape: &[usize],
    axis: usize,
    begin: usize,
) -> Result<NDArray> {
    const OP: &str = "slice_axis backward";
    check_axis(OP, axis, in_shape)?;
    let agree = dy.ndim() == in_shape.len()
        && dy
            .shape()
            .iter()
            .zip(in_shape)
            .enumerate()
            .all(|(i, (a, b))| i == axis || a == b);
    if !agree {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: in_shape.to_vec(),
            rhs: dy.shape().to_vec(),
            detail: format!("the gradient must have the input's shape except along axis {axis}"),
        });
    }
    let (len, d) = (dy.shape()[axis], in_shape[axis]);
    if begin.checked_add(len).is_none_or(|e| e > d) {
        return Err(Error::invalid_arg(
            OP,
            format!("a slice of {len} starting at {begin} does not fit in 0..{d}"),
        ));
    }
    let out = NDArray::zeros(in_shape, dy.dtype(), dy.context())?;
    let (_, _, inner) = split3(in_shape, axis);
    let es = dy.dtype().size();
    let (row_in, row_out, off) = (len * inner * es, d * inner * es, begin * inner * es);
    if row_in > 0 {
        dy.read_bytes(|db| {
            out.write_bytes(|ob| {
                for_each_row(ob, row_out, |o, orow| {
                    orow[off..off + row_in].copy_from_slice(&db[o * row_in..(o + 1) * row_in])
                })
            })
        });
    }
    Ok(out)
}

// ============================================================================ take

/// Indices as stored values (float or integer), truncated toward zero and clipped into
/// `[0, k - 1]` (MXNet's `mode='clip'`; NaN counts as 0).
fn clip_indices(idx: &NDArray, k: usize) -> Vec<usize> {
    let hi = k.saturating_sub(1);
    idx.to_f64_vec()
        .into_iter()
        .map(|v| {
            let j = v as i64; // truncates toward zero, saturates, NaN -> 0
            usize::try_from(j).map_or(0, |j| j.min(hi))
        })
        .collect()
}

/// The shape of `take(a, idx, axis)`: `a.shape[..axis] + idx.shape + a.shape[axis+1..]`.
fn take_shape(a: &[usize], idx: &[usize], axis: usize) -> Vec<usize> {
    let mut s = a[..axis].to_vec();
    s.extend_from_slice(idx);
    s.extend_from_slice(&a[axis + 1..]);
    s
}

/// MXNet's `take` with `mode='clip'` (its default): the slices of `a` at `indices` along
/// `axis`. `indices` holds float or integer values of any shape (truncated toward zero, then
/// clipped into the axis); the output is `a.shape[..axis] + indices.shape + a.shape[axis+1..]`.
/// Any dtype of `a`.
pub(crate) fn take(a: &NDArray, indices: &NDArray, axis: usize) -> Result<NDArray> {
    take_impl("take", a, indices, axis)
}

/// [`take`] reporting errors as `op` (shared with `Embedding`).
pub(super) fn take_impl(
    op: &'static str,
    a: &NDArray,
    idx: &NDArray,
    axis: usize,
) -> Result<NDArray> {
    if a.context() != idx.context() {
        return Err(Error::ContextMismatch {
            op,
            lhs: a.context(),
            rhs: idx.context(),
        });
    }
    if a.ndim() == 0 {
        return Err(Error::InvalidShape {
            op,
            shape: vec![],
            reason: "cannot take from a zero-dimensional array".into(),
        });
    }
    check_axis(op, axis, a.shape())?;
    let out = NDArray::for_overwrite(
        &take_shape(a.shape(), idx.shape(), axis),
        a.dtype(),
        a.context(),
    )?;
    if out.size() == 0 {
        return Ok(out);
    }
    let (_, d, inner) = split3(a.shape(), axis);
    if d == 0 {
        return Err(Error::InvalidShape {
            op,
            shape: a.shape().to_vec(),
            reason: format!("axis {axis} is empty: there is nothing to take"),
        });
    }
    let ids = clip_indices(idx, d);
    let n = ids.len();
    let es = a.dtype().size();
    let row = inner * es;
    a.read_bytes(|ab| {
        out.write_bytes(|ob| {
            // Cost in elements, not bytes: a gathered row is a plain copy, and splitting a
            // few hundred KiB of copies costs more in thread wake-ups than it saves.
            for_rows_costed(ob, row, inner, |r, orow| {
                let (o, j) = (r / n, r % n);
                let src = (o * d + ids[j]) * row;
                orow.copy_from_slice(&ab[src..src + row]);
            })
        })
    });
    Ok(out)
}

/// Backward of [`take`]: zeros of `in_shape` into which every slice of `dy` (the shape of
/// `take`'s output) is added at its clipped index — duplicates add up. Float dtypes only.
pub(crate) fn take_bwd(
    indices: &NDArray,
    dy: &NDArray,
    in_shape: &[usize],
    axis: usize,
) -> Result<NDArray> {
    take_bwd_impl("take backward", indices, dy, in_shape, axis)
}

/// [`take_bwd`] reporting errors as `op` (shared with `Embedding`).
pub(super) fn take_bwd_impl(
    op: &'static str,
    idx: &NDArray,
    dy: &NDArray,
    in_shape: &[usize],
    axis: usize,
) -> Result<NDArray> {
    if idx.context() != dy.context() {
        return Err(Error::ContextMismatch {
            op,
            lhs: dy.context(),
            rhs: idx.context(),
        });
    }
    check_axis(op, axis, in_shape)?;
    let expected = take_shape(in_shape, idx.shape(), axis);
    if dy.shape() != expected.as_slice() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: expected,
            rhs: dy.shape().to_vec(),
            detail: "the output gradient must have the shape of the forward's output".into(),
        });
    }
    with_real!(op, dy.dtype(), R => {
        let out = NDArray::zeros(in_shape, dy.dtype(), dy.context())?;
        if out.size() == 0 || dy.size() == 0 {
            return Ok(out);
        }
        let (outer, d, inner) = split3(in_shape, axis);
        let ids = clip_indices(idx, d);
        read_real::<R, _>(dy, |g| {
            write_real::<R, _>(&out, |ga| scatter_add(ga, g, &ids, (outer, d, inner)))
        });
        Ok(out)
    })
}

/// `ga[o, ids[j], :] += g[o, j, :]` for every `o`, `j`, adding contributions to one slice in
/// increasing `j` (so the serial and parallel paths give identical sums).
fn scatter_add<R: Real>(
    ga: &mut [R],
    g: &[R],
    ids: &[usize],
    (outer, d, inner): (usize, usize, usize),
) {
    let n = ids.len();
    let add = |dst: &mut [R], j: usize, o: usize| {
        let src = &g[(o * n + j) * inner..(o * n + j + 1) * inner];
        for (a, &v) in dst.iter_mut().zip(src) {
            *a += v;
        }
    };
    if outer > 1 || !par::worth_parallel(g.len()) {
        for_rows_costed(ga, d * inner, n * inner, |o, blk| {
            for (j, &t) in ids.iter().enumerate() {
                add(&mut blk[t * inner..(t + 1) * inner], j, o);
            }
        });
    } else {
        // One large block: group the contributions by target slice (a counting sort), then
        // fill the target slices in parallel.
        let mut start = vec![0usize; d + 1];
        for &t in ids {
            start[t + 1] += 1;
        }
        for i in 0..d {
            start[i + 1] += start[i];
        }
        let mut next = start.clone();
        let mut order = vec![0usize; n];
        for (j, &t) in ids.iter().enumerate() {
            order[next[t]] = j;
            next[t] += 1;
        }
        for_rows_costed(ga, inner, (n / d.max(1)).max(1) * inner, |t, dst| {
            for &j in &order[start[t]..start[t + 1]] {
                add(dst, j, 0);
            }
        });
    }
}

// ============================================================================ transpose

/// MXNet's `transpose`: output axis `i` is input axis `axes[i]`; empty `axes` reverses the
/// axes. `axes` must be a permutation of `0..ndim`. Any dtype.
pub(crate) fn transpose(x: &NDArray, axes: &[usize]) -> Result<NDArray> {
    const OP: &str = "transpose";
    let nd = x.ndim();
    let perm: Vec<usize> = if axes.is_empty() {
        (0..nd).rev().collect()
    } else {
        let mut seen = vec![false; nd];
        let valid = axes.len() == nd
            && axes
                .iter()
                .all(|&a| a < nd && !std::mem::replace(&mut seen[a], true));
        if !valid {
            return Err(Error::invalid_arg(
                OP,
                format!(
                    "axes {axes:?} must be a permutation of 0..{nd} for an array of shape {}",
                    fmt_shape(x.shape())
                ),
            ));
        }
        axes.to_vec()
    };
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let out = NDArray::for_overwrite(&out_shape, x.dtype(), x.context())?;
    if out.size() == 0 {
        return Ok(out);
    }
    let (shape, perm) = simplify_perm(x.shape(), &perm);
    by_elem_size!(x.dtype(), T => x.read_slice::<T, _>(|s| {
        out.write_slice::<T, _>(|o| permute(s, &shape, &perm, o))
    }));
    Ok(out)
}

/// Drops size-1 axes and merges input axes that stay adjacent and in order under `perm`.
/// Returns the reduced input shape and permutation (same element order, fewer axes).
fn simplify_perm(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut renum = vec![usize::MAX; shape.len()];
    let mut kept = Vec::with_capacity(shape.len());
    for (i, &d) in shape.iter().enumerate() {
        if d != 1 {
            renum[i] = kept.len();
            kept.push(d);
        }
    }
    // Runs of consecutive input axes in output order: (first input axis, length).
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for a in perm.iter().filter(|&&a| shape[a] != 1).map(|&a| renum[a]) {
        match groups.last_mut() {
            Some(last) if last.0 + last.1 == a => last.1 += 1,
            _ => groups.push((a, 1)),
        }
    }
    let mut by_input: Vec<usize> = (0..groups.len()).collect();
    by_input.sort_by_key(|&g| groups[g].0);
    let mut rank = vec![0; groups.len()];
    let mut in_shape = Vec::with_capacity(groups.len());
    for (r, &g) in by_input.iter().enumerate() {
        rank[g] = r;
        let (s, l) = groups[g];
        in_shape.push(kept[s..s + l].iter().product());
    }
    (in_shape, rank)
}

/// `dst` = `src` (row-major `shape`) with its axes permuted (output axis `i` = input axis
/// `perm[i]`), for a simplified permutation.
fn permute<T: bytemuck::Pod + Send + Sync>(
    src: &[T],
    shape: &[usize],
    perm: &[usize],
    dst: &mut [T],
) {
    let nd = shape.len();
    if nd <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    if nd == 2 {
        // A simplified 2-axis permutation is never the identity.
        transpose2d(src, shape[0], shape[1], dst);
        return;
    }
    if nd == 3 && perm == [0, 2, 1] {
        let (r, c) = (shape[1], shape[2]);
        for_each_row(dst, r * c, |b, d| {
            transpose2d(&src[b * r * c..(b + 1) * r * c], r, c, d)
        });
        return;
    }
    let mut stride = vec![1usize; nd];
    for i in (0..nd - 1).rev() {
        stride[i] = stride[i + 1] * shape[i + 1];
    }
    let oshape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let istr: Vec<usize> = perm.iter().map(|&p| stride[p]).collect();
    let inner = oshape[nd - 1];
    let step = istr[nd - 1];
    for_each_row(dst, inner, |r, drow| {
        let mut rem = r;
        let mut off = 0;
        for d in (0..nd - 1).rev() {
            off += (rem % oshape[d]) * istr[d];
            rem /= oshape[d];
        }
        if step == 1 {
            drow.copy_from_slice(&src[off..off + inner]);
        } else {
            for (k, v) in drow.iter_mut().enumerate() {
                *v = src[off + k * step];
            }
        }
    });
}

/// `dst` (`cols × rows`) = transpose of `src` (`rows × cols`); 4-byte elements go through the
/// AVX-512 f32 kernel, others through 16×16 tiles.
fn transpose2d<T: bytemuck::Pod>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    if std::mem::size_of::<T>() == 4 {
        if let (Ok(s), Ok(d)) = (
            bytemuck::try_cast_slice::<T, f32>(src),
            bytemuck::try_cast_slice_mut::<T, f32>(dst),
        ) {
            transpose_f32(s, rows, cols, d);
            return;
        }
    }
    const B: usize = 16;
    for rb in (0..rows).step_by(B) {
        for cb in (0..cols).step_by(B) {
            for r in rb..(rb + B).min(rows) {
                let srow = &src[r * cols..(r + 1) * cols];
                for (c, &v) in srow.iter().enumerate().take((cb + B).min(cols)).skip(cb) {
                    dst[c * rows + r] = v;
                }
            }
        }
    }
}

// ============================================================================ broadcasting

/// A `shape`d copy of `x` under numpy's broadcasting rules (trailing axes aligned, size-1 axes
/// stretched, missing leading axes added). Any dtype. MXNet's `broadcast_to` additionally
/// reads 0 in `shape` as "keep"; here 0 is a size.
pub(crate) fn broadcast_to(x: &NDArray, shape: &[usize]) -> Result<NDArray> {
    const OP: &str = "broadcast_to";
    let bad = |detail: String| Error::ShapeMismatch {
        op: OP,
        lhs: x.shape().to_vec(),
        rhs: shape.to_vec(),
        detail,
    };
    if shape.len() < x.ndim() {
        return Err(bad(
            "the target shape has fewer dimensions than the array".into()
        ));
    }
    let pad = shape.len() - x.ndim();
    for (i, &d) in x.shape().iter().enumerate() {
        let t = shape[pad + i];
        if d != t && d != 1 {
            return Err(bad(format!(
                "dimension {i} of size {d} cannot stretch to {t}"
            )));
        }
    }
    let out = NDArray::for_overwrite(shape, x.dtype(), x.context())?;
    if out.size() == 0 {
        return Ok(out);
    }
    let st = bcast_strides(x.shape(), shape);
    let plan = Plan::new(shape, &st, &st);
    let inner = plan.inner();
    let step = plan.sa[plan.sa.len() - 1];
    by_elem_size!(x.dtype(), T => x.read_slice::<T, _>(|s| out.write_slice::<T, _>(|o| {
        for_each_row(o, inner, |r, row| {
            let (oa, _) = plan.row_offsets(r);
            if step == 0 {
                row.fill(s[oa]);
            } else {
                row.copy_from_slice(&s[oa..oa + inner]);
            }
        })
    })));
    Ok(out)
}

/// Sums `x` down to `shape`, which must broadcast to `x`'s shape (numpy's rules): leading axes
/// missing from `shape` are summed away and axes where `shape` has 1 are summed keeping the
/// axis. This is the gradient of broadcasting.
///
/// **Sharing:** when no summation is needed (`shape` equals `x`'s shape, or differs only by
/// size-1 axes) the result is `x` itself or a reshaped view of it, sharing its memory; never
/// write into it in place.
///
/// Floats accumulate in f64. Fast paths: all-but-trailing summed (`(N, C) -> (C,)`), trailing
/// summed (`(N, C) -> (N, 1)`); other patterns walk the broadcast plan. Other dtypes go
/// through [`NDArray::sum_axis`].
pub(crate) fn sum_to_shape(x: &NDArray, shape: &[usize]) -> Result<NDArray> {
    const OP: &str = "sum_to_shape";
    let nd = x.ndim();
    let bad = || Error::ShapeMismatch {
        op: OP,
        lhs: x.shape().to_vec(),
        rhs: shape.to_vec(),
        detail: "the target shape must broadcast to the array's shape".into(),
    };
    if shape.len() > nd {
        return Err(bad());
    }
    let pad = nd - shape.len();
    let keep: Vec<usize> = (0..nd)
        .map(|i| if i < pad { 1 } else { shape[i - pad] })
        .collect();
    if keep.iter().zip(x.shape()).any(|(&k, &d)| k != d && k != 1) {
        return Err(bad());
    }
    if shape == x.shape() {
        return Ok(x.clone());
    }
    if shape_size(shape) == Some(x.size()) {
        return x.reshape(shape);
    }
    if !x.dtype().is_float() {
        let axes: Vec<usize> = (0..nd)
            .filter(|&i| keep[i] == 1 && x.shape()[i] != 1)
            .collect();
        return x.sum_axis(&axes, true)?.reshape(shape);
    }
    with_real!(OP, x.dtype(), R => {
        let acc = read_real::<R, _>(x, |xs| sum_kernel(xs, x.shape(), &keep));
        let out = NDArray::for_overwrite(shape, x.dtype(), x.context())?;
        write_real::<R, _>(&out, |o| {
            for (o, &a) in o.iter_mut().zip(&acc) {
                *o = R::of(a);
            }
        });
        Ok(out)
    })
}

/// Sums of `xs` (row-major `xshape`) over the axes where `keep` is 1, as `keep`'s elements.
fn sum_kernel<R: Real>(xs: &[R], xshape: &[usize], keep: &[usize]) -> Vec<f64> {
    let n_out: usize = keep.iter().product();
    if xs.is_empty() {
        return vec![0.0; n_out];
    }
    let nd = xshape.len();
    // Trailing axes summed: row sums.
    let j0 = (0..=nd)
        .rev()
        .find(|&j| keep[..j] == xshape[..j])
        .unwrap_or(0);
    if keep[j0..].iter().all(|&k| k == 1) {
        let cols: usize = xshape[j0..].iter().product();
        let mut acc = vec![0.0; xs.len() / cols];
        for_rows_costed(&mut acc, 1, cols, |r, a| {
            a[0] = lane_sum(&xs[r * cols..(r + 1) * cols], |v| v.f64())
        });
        return acc;
    }
    // Leading axes summed: column sums.
    let i0 = (0..=nd).find(|&i| keep[i..] == xshape[i..]).unwrap_or(nd);
    if keep[..i0].iter().all(|&k| k == 1) {
        let cols: usize = xshape[i0..].iter().product();
        return reduce_rows(xs.len() / cols, cols, cols, |r, acc| {
            for (a, &v) in acc.iter_mut().zip(&xs[r * cols..(r + 1) * cols]) {
                *a += v.f64();
            }
        });
    }
    let plan = Plan::new(
        xshape,
        &bcast_strides(xshape, xshape),
        &bcast_strides(keep, xshape),
    );
    let inner = plan.inner();
    let step = plan.sb[plan.sb.len() - 1];
    reduce_rows(xs.len() / inner, inner, n_out, |r, acc| {
        let (_, ob) = plan.row_offsets(r);
        let row = &xs[r * inner..(r + 1) * inner];
        if step == 0 {
            acc[ob] += lane_sum(row, |v| v.f64());
        } else {
            for (a, &v) in acc[ob..ob + inner].iter_mut().zip(row) {
                *a += v.f64();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    //! Forward kernels against index-by-index references; each backward (the kernel the
    //! autograd wrapper will use: `slice_axis` for concat, `slice_axis_bwd`, `take_bwd`, the
    //! inverse transpose, `sum_to_shape` for broadcast_to and back) against central finite
    //! differences in f64.

    use super::*;
    use crate::context::Context;
    use crate::dtype::DType;
    use crate::nd::ops::nn::tests::{
        arr, assert_close, cast, cpu, fd_check, ravel, shape_vals, unravel,
    };
    use proptest::prelude::*;

    /// Values for `n` elements, cycling through `v` (strategies draw a fixed-size pool).
    fn take_n(v: &[f64], n: usize) -> Vec<f64> {
        v.iter().cycle().take(n).cloned().collect()
    }

    // ------------------------------------------------------------------ concat

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn concat_forward_backward(
            base in prop::collection::vec(1usize..4, 1..4),
            dim_pick in 0usize..4,
            lens in prop::collection::vec(1usize..4, 1..4),
            pool in prop::collection::vec(-2.0..2.0f64, 64),
        ) {
            let dim = dim_pick % base.len();
            let shapes: Vec<Vec<usize>> = lens
                .iter()
                .map(|&l| {
                    let mut s = base.clone();
                    s[dim] = l;
                    s
                })
                .collect();
            let mut k = 0;
            let vals: Vec<Vec<f64>> = shapes
                .iter()
                .map(|s| {
                    let n: usize = s.iter().product();
                    k += 7;
                    take_n(&pool[k % 64..], n)
                })
                .collect();
            let xs: Vec<NDArray> = vals.iter().zip(&shapes).map(|(v, s)| arr(v, s)).collect();
            let refs: Vec<&NDArray> = xs.iter().collect();
            let y = concat(&refs, dim).unwrap();
            let mut oshape = base.clone();
            oshape[dim] = lens.iter().sum();
            prop_assert_eq!(y.shape(), oshape.as_slice());
            let want: Vec<f64> = (0..y.size())
                .map(|i| {
                    let mut idx = unravel(i, &oshape);
                    let mut which = 0;
                    while idx[dim] >= lens[which] {
                        idx[dim] -= lens[which];
                        which += 1;
                    }
                    vals[which][ravel(&idx, &shapes[which])]
                })
                .collect();
            assert_close(&y.to_f64_vec(), &want, 0.0, "forward")?;
            // Backward: each input's gradient is its slice of dy.
            let dy = take_n(&pool[3..], y.size());
            let dya = arr(&dy, &oshape);
            let mut off = 0;
            let grads: Vec<NDArray> = lens
                .iter()
                .map(|&l| {
                    let g = slice_axis(&dya, dim, off, off + l).unwrap();
                    off += l;
                    g
                })
                .collect();
            let grefs: Vec<Option<&NDArray>> = grads.iter().map(Some).collect();
            fd_check(
                &xs,
                &dy,
                &|ins| concat(&ins.iter().collect::<Vec<_>>(), dim).unwrap(),
                &grefs,
            )?;
        }
    }

    #[test]
    fn concat_dtypes_and_errors() {
        let a = NDArray::from_slice(&[1i32, 2, 3, 4], &[2, 2], cpu()).unwrap();
        let b = NDArray::from_slice(&[5i32, 6], &[2, 1], cpu()).unwrap();
        let y = concat(&[&a, &b], 1).unwrap();
        assert_eq!(y.to_vec::<i32>().unwrap(), vec![1, 2, 5, 3, 4, 6]);
        assert!(matches!(concat(&[], 0), Err(Error::InvalidArgument { .. })));
        assert!(matches!(
            concat(&[&a, &b], 0),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            concat(&[&a, &b], 2),
            Err(Error::InvalidArgument { .. })
        ));
        let f = cast(&a, DType::Float32);
        assert!(matches!(
            concat(&[&a, &f], 0),
            Err(Error::DTypeMismatch { .. })
        ));
        let s = NDArray::scalar(1i32, cpu()).unwrap();
        assert!(matches!(
            concat(&[&s, &s], 0),
            Err(Error::InvalidShape { .. })
        ));
        let c1 = a.copy_to(Context::cpu(1)).unwrap();
        assert!(matches!(
            concat(&[&a, &c1], 0),
            Err(Error::ContextMismatch { .. })
        ));
    }

    // ------------------------------------------------------------------ slice_axis

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn slice_axis_forward_backward(
            (shape, x, dy_pool) in shape_vals(3, 4),
            axis_pick in 0usize..3,
            b in 0usize..4,
            l in 1usize..4,
        ) {
            let axis = axis_pick % shape.len();
            let d = shape[axis];
            let begin = b % d;
            let end = (begin + l).min(d);
            let xa = arr(&x, &shape);
            let y = slice_axis(&xa, axis, begin, end).unwrap();
            let mut oshape = shape.clone();
            oshape[axis] = end - begin;
            prop_assert_eq!(y.shape(), oshape.as_slice());
            let want: Vec<f64> = (0..y.size())
                .map(|i| {
                    let mut idx = unravel(i, &oshape);
                    idx[axis] += begin;
                    x[ravel(&idx, &shape)]
                })
                .collect();
            assert_close(&y.to_f64_vec(), &want, 0.0, "forward")?;
            let dy = take_n(&dy_pool, y.size());
            let dx = slice_axis_bwd(&arr(&dy, &oshape), &shape, axis, begin).unwrap();
            fd_check(
                std::slice::from_ref(&xa),
                &dy,
                &|ins| slice_axis(&ins[0], axis, begin, end).unwrap(),
                &[Some(&dx)],
            )?;
        }
    }

    #[test]
    fn slice_axis_errors_and_dtypes() {
        let x = NDArray::from_slice(&[1u8, 2, 3, 4, 5, 6], &[2, 3], cpu()).unwrap();
        assert_eq!(
            slice_axis(&x, 1, 1, 3).unwrap().to_vec::<u8>().unwrap(),
            vec![2, 3, 5, 6]
        );
        for (b, e) in [(1, 1), (2, 1), (0, 4)] {
            assert!(matches!(
                slice_axis(&x, 1, b, e),
                Err(Error::InvalidArgument { .. })
            ));
        }
        assert!(matches!(
            slice_axis(&x, 2, 0, 1),
            Err(Error::InvalidArgument { .. })
        ));
        let dy = NDArray::from_slice(&[9u8, 8], &[2, 1], cpu()).unwrap();
        let g = slice_axis_bwd(&dy, &[2, 3], 1, 2).unwrap();
        assert_eq!(g.to_vec::<u8>().unwrap(), vec![0, 0, 9, 0, 0, 8]);
        assert!(matches!(
            slice_axis_bwd(&dy, &[2, 3], 1, 3),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            slice_axis_bwd(&dy, &[3, 3], 1, 0),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    // ------------------------------------------------------------------ take

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn take_forward_backward(
            (shape, x, pool) in shape_vals(3, 4),
            axis_pick in 0usize..3,
            ishape in prop::collection::vec(1usize..4, 1..3),
            raw in prop::collection::vec(-2.0..6.0f64, 9),
        ) {
            let axis = axis_pick % shape.len();
            let d = shape[axis];
            let ni: usize = ishape.iter().product();
            let idx = take_n(&raw, ni);
            let (xa, ia) = (arr(&x, &shape), arr(&idx, &ishape));
            let y = take(&xa, &ia, axis).unwrap();
            let mut oshape = shape[..axis].to_vec();
            oshape.extend(&ishape);
            oshape.extend(&shape[axis + 1..]);
            prop_assert_eq!(y.shape(), oshape.as_slice());
            let clip = |v: f64| (v.trunc().max(0.0) as usize).min(d - 1);
            let want: Vec<f64> = (0..y.size())
                .map(|i| {
                    let o = unravel(i, &oshape);
                    let j = ravel(&o[axis..axis + ishape.len()], &ishape);
                    let mut src = o[..axis].to_vec();
                    src.push(clip(idx[j]));
                    src.extend(&o[axis + ishape.len()..]);
                    x[ravel(&src, &shape)]
                })
                .collect();
            assert_close(&y.to_f64_vec(), &want, 0.0, "forward")?;
            let dy = take_n(&pool, y.size());
            let dx = take_bwd(&ia, &arr(&dy, &oshape), &shape, axis).unwrap();
            fd_check(
                std::slice::from_ref(&xa),
                &dy,
                &|ins| take(&ins[0], &ia, axis).unwrap(),
                &[Some(&dx)],
            )?;
            let dx32 = take_bwd(
                &cast(&ia, DType::Int32),
                &cast(&arr(&dy, &oshape), DType::Float32),
                &shape,
                axis,
            )
            .unwrap();
            assert_close(&dx32.to_f64_vec(), &dx.to_f64_vec(), 1e-6, "f32 backward")?;
        }
    }

    #[test]
    fn take_large_scatter_and_errors() {
        // One block over the parallel threshold: the grouped (counting sort) path must give the
        // serial sums exactly.
        let (d, n) = (50usize, 70_000usize);
        let idx: Vec<f64> = (0..n).map(|i| ((i * 37) % 61) as f64 - 5.0).collect();
        let dy: Vec<f64> = (0..n).map(|i| ((i * 13) % 7) as f64 * 0.5).collect();
        let g = take_bwd(&arr(&idx, &[n]), &arr(&dy, &[n]), &[d], 0).unwrap();
        let mut want = vec![0.0; d];
        for (v, g) in idx.iter().zip(&dy) {
            want[(v.max(0.0) as usize).min(d - 1)] += g;
        }
        assert_eq!(g.to_f64_vec(), want);
        // Errors.
        let x = arr(&[1.0, 2.0], &[2]);
        let i = arr(&[0.0], &[1]);
        assert!(matches!(
            take(&x, &i, 1),
            Err(Error::InvalidArgument { .. })
        ));
        let s = NDArray::scalar(1.0f64, cpu()).unwrap();
        assert!(matches!(take(&s, &i, 0), Err(Error::InvalidShape { .. })));
        let empty = arr(&[], &[0, 2]);
        assert!(matches!(
            take(&empty, &i, 0),
            Err(Error::InvalidShape { .. })
        ));
        assert!(matches!(
            take_bwd(&i, &arr(&[1.0, 2.0], &[2]), &[2], 0),
            Err(Error::ShapeMismatch { .. })
        ));
        let xi = NDArray::from_slice(&[7i64, 8, 9], &[3], cpu()).unwrap();
        let t = take(&xi, &arr(&[2.0, -1.0], &[2]), 0).unwrap();
        assert_eq!(t.to_vec::<i64>().unwrap(), vec![9, 7]);
        assert!(matches!(
            take_bwd(
                &i,
                &NDArray::ones(&[1], DType::Int64, cpu()).unwrap(),
                &[3],
                0
            ),
            Err(Error::UnsupportedDType { .. })
        ));
    }

    // ------------------------------------------------------------------ transpose

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn transpose_forward_backward(
            (shape, x, pool) in shape_vals(4, 4),
            seed in prop::collection::vec(0usize..100, 4),
            reverse: bool,
        ) {
            let nd = shape.len();
            // A permutation from the seed (sort axes by their keys).
            let mut perm: Vec<usize> = (0..nd).collect();
            perm.sort_by_key(|&a| (seed[a], a));
            let axes: Vec<usize> = if reverse { vec![] } else { perm.clone() };
            if reverse {
                perm = (0..nd).rev().collect();
            }
            let xa = arr(&x, &shape);
            let y = transpose(&xa, &axes).unwrap();
            let oshape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            prop_assert_eq!(y.shape(), oshape.as_slice());
            let want: Vec<f64> = (0..y.size())
                .map(|i| {
                    let o = unravel(i, &oshape);
                    let mut src = vec![0; nd];
                    for (k, &p) in perm.iter().enumerate() {
                        src[p] = o[k];
                    }
                    x[ravel(&src, &shape)]
                })
                .collect();
            assert_close(&y.to_f64_vec(), &want, 0.0, "forward")?;
            // Every element size takes the same path.
            for dt in [DType::Float32, DType::Float16, DType::Int8] {
                let yd = transpose(&cast(&xa, dt), &axes).unwrap();
                let wd = cast(&arr(&want, &oshape), dt);
                prop_assert_eq!(yd.to_f64_vec(), wd.to_f64_vec());
            }
            let mut inv = vec![0; nd];
            for (k, &p) in perm.iter().enumerate() {
                inv[p] = k;
            }
            let dy = take_n(&pool, y.size());
            let dx = transpose(&arr(&dy, &oshape), &inv).unwrap();
            fd_check(
                std::slice::from_ref(&xa),
                &dy,
                &|ins| transpose(&ins[0], &axes).unwrap(),
                &[Some(&dx)],
            )?;
        }
    }

    #[test]
    fn transpose_tiles_and_errors() {
        // 2-D and batched 2-D shapes large and ragged enough for the tile kernels.
        for (shape, axes) in [
            (vec![37usize, 53], vec![1usize, 0]),
            (vec![3, 17, 19], vec![0, 2, 1]),
            (vec![2, 1, 33, 1, 18], vec![0, 4, 3, 2, 1]),
            (vec![5, 6, 7, 8], vec![2, 0, 3, 1]),
        ] {
            let n: usize = shape.iter().product();
            let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let oshape: Vec<usize> = axes.iter().map(|&p| shape[p]).collect();
            let want: Vec<f64> = (0..n)
                .map(|i| {
                    let o = unravel(i, &oshape);
                    let mut src = vec![0; shape.len()];
                    for (k, &p) in axes.iter().enumerate() {
                        src[p] = o[k];
                    }
                    x[ravel(&src, &shape)]
                })
                .collect();
            for dt in [
                DType::Float64,
                DType::Float32,
                DType::Int32,
                DType::Float16,
                DType::UInt8,
            ] {
                let xa = cast(&arr(&x, &shape), dt);
                let y = transpose(&xa, &axes).unwrap();
                assert_eq!(
                    y.to_f64_vec(),
                    cast(&arr(&want, &oshape), dt).to_f64_vec(),
                    "{dt}"
                );
            }
        }
        let x = arr(&[0.0; 6], &[2, 3]);
        for axes in [vec![0usize], vec![0, 0], vec![0, 2]] {
            assert!(matches!(
                transpose(&x, &axes),
                Err(Error::InvalidArgument { .. })
            ));
        }
        let s = NDArray::scalar(3.0f64, cpu()).unwrap();
        assert_eq!(transpose(&s, &[]).unwrap().to_f64_vec(), vec![3.0]);
    }

    // ------------------------------------------------------------------ broadcasting

    /// A shape `x` and a shape it broadcasts to: some of `x`'s dims are 1 and get stretched,
    /// and up to two leading dims are added.
    fn bcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        (
            prop::collection::vec((1usize..4, any::<bool>(), 1usize..4), 1..4),
            prop::collection::vec(1usize..4, 0..3),
        )
            .prop_map(|(dims, lead)| {
                let small: Vec<usize> = dims
                    .iter()
                    .map(|&(d, one, _)| if one { 1 } else { d })
                    .collect();
                let mut big = lead;
                big.extend(dims.iter().map(|&(d, one, s)| if one { s } else { d }));
                (small, big)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn broadcast_and_sum_to_shape(
            (small, big) in bcast_pair(),
            pool in prop::collection::vec(-2.0..2.0f64, 64),
        ) {
            let pad = big.len() - small.len();
            let ns: usize = small.iter().product();
            let nb: usize = big.iter().product();
            let (x, dy) = (take_n(&pool, ns), take_n(&pool[5..], nb));
            let src_of = |i: usize| {
                let o = unravel(i, &big);
                let idx: Vec<usize> =
                    small.iter().enumerate().map(|(k, &d)| if d == 1 { 0 } else { o[pad + k] }).collect();
                ravel(&idx, &small)
            };
            // broadcast_to against the reference, its gradient is sum_to_shape.
            let xa = arr(&x, &small);
            let y = broadcast_to(&xa, &big).unwrap();
            let want: Vec<f64> = (0..nb).map(|i| x[src_of(i)]).collect();
            assert_close(&y.to_f64_vec(), &want, 0.0, "broadcast_to")?;
            let dya = arr(&dy, &big);
            let dx = sum_to_shape(&dya, &small).unwrap();
            fd_check(
                std::slice::from_ref(&xa),
                &dy,
                &|ins| broadcast_to(&ins[0], &big).unwrap(),
                &[Some(&dx)],
            )?;
            // sum_to_shape against the reference, its gradient is broadcast_to.
            let mut sums = vec![0.0; ns];
            for (i, &v) in dy.iter().enumerate() {
                sums[src_of(i)] += v;
            }
            assert_close(&dx.to_f64_vec(), &sums, 1e-14, "sum_to_shape")?;
            let up = take_n(&pool[11..], ns);
            let g = broadcast_to(&arr(&up, &small), &big).unwrap();
            fd_check(
                std::slice::from_ref(&dya),
                &up,
                &|ins| sum_to_shape(&ins[0], &small).unwrap(),
                &[Some(&g)],
            )?;
            // f32 and an integer dtype agree.
            let s32 = sum_to_shape(&cast(&dya, DType::Float32), &small).unwrap();
            assert_close(&s32.to_f64_vec(), &sums, 1e-5, "f32 sum")?;
            let di = cast(&arr(&dy.iter().map(|v| (v * 4.0).round()).collect::<Vec<_>>(), &big), DType::Int32);
            let si = sum_to_shape(&di, &small).unwrap();
            prop_assert_eq!(si.dtype(), DType::Int32);
            let mut isums = vec![0.0; ns];
            for (i, v) in di.to_f64_vec().iter().enumerate() {
                isums[src_of(i)] += v;
            }
            prop_assert_eq!(si.to_f64_vec(), isums);
        }
    }

    #[test]
    fn sum_to_shape_common_cases() {
        let x: Vec<f64> = (0..12).map(|i| i as f64).collect();
        let xa = arr(&x, &[4, 3]);
        // (N, C) -> (C,), (1, C), (N, 1), (1,), ().
        assert_eq!(
            sum_to_shape(&xa, &[3]).unwrap().to_f64_vec(),
            vec![18.0, 22.0, 26.0]
        );
        assert_eq!(sum_to_shape(&xa, &[1, 3]).unwrap().shape(), &[1, 3]);
        assert_eq!(
            sum_to_shape(&xa, &[4, 1]).unwrap().to_f64_vec(),
            vec![3.0, 12.0, 21.0, 30.0]
        );
        assert_eq!(sum_to_shape(&xa, &[1]).unwrap().to_f64_vec(), vec![66.0]);
        let s = sum_to_shape(&xa, &[]).unwrap();
        assert_eq!((s.shape(), s.to_f64_vec()), (&[][..], vec![66.0]));
        // (N, C, H, W) -> (C, 1, 1): a conv bias gradient.
        let x4: Vec<f64> = (0..2 * 3 * 2 * 2).map(|i| i as f64).collect();
        let s = sum_to_shape(&arr(&x4, &[2, 3, 2, 2]), &[3, 1, 1]).unwrap();
        assert_eq!(s.to_f64_vec(), vec![60.0, 92.0, 124.0]);
        // No summation: the input itself or a view of it.
        let same = sum_to_shape(&xa, &[4, 3]).unwrap();
        assert!(same.shares_memory_with(&xa));
        let view = sum_to_shape(&arr(&x, &[1, 4, 3]), &[4, 3]).unwrap();
        assert_eq!(view.shape(), &[4, 3]);
        // Empty inputs sum to zeros.
        let e = sum_to_shape(&arr(&[], &[0, 3]), &[3]).unwrap();
        assert_eq!(e.to_f64_vec(), vec![0.0; 3]);
        // Errors.
        for bad in [vec![2usize], vec![4, 2], vec![1, 4, 3]] {
            assert!(matches!(
                sum_to_shape(&xa, &bad),
                Err(Error::ShapeMismatch { .. })
            ));
        }
        for bad in [vec![3usize], vec![4, 4], vec![2, 3]] {
            assert!(matches!(
                broadcast_to(&xa, &bad),
                Err(Error::ShapeMismatch { .. })
            ));
        }
    }

    #[test]
    fn sum_to_shape_large_paths() {
        // Over the parallel threshold, for the column-sum, row-sum and general paths.
        let (n, c) = (512usize, 300usize);
        let x: Vec<f64> = (0..n * c)
            .map(|i| ((i * 7919) % 1009) as f64 / 100.0)
            .collect();
        let xa = arr(&x, &[n, c]);
        let cols: Vec<f64> = (0..c).map(|j| (0..n).map(|i| x[i * c + j]).sum()).collect();
        assert_close(
            &sum_to_shape(&xa, &[c]).unwrap().to_f64_vec(),
            &cols,
            1e-13,
            "cols",
        )
        .unwrap();
        let rows: Vec<f64> = (0..n).map(|i| x[i * c..(i + 1) * c].iter().sum()).collect();
        assert_close(
            &sum_to_shape(&xa, &[n, 1]).unwrap().to_f64_vec(),
            &rows,
            1e-13,
            "rows",
        )
        .unwrap();
        let x3 = arr(&x, &[8, 64, c]);
        let mid: Vec<f64> = (0..64)
            .map(|m| {
                (0..8)
                    .flat_map(|a| (0..c).map(move |k| (a, k)))
                    .map(|(a, k)| x[(a * 64 + m) * c + k])
                    .sum()
            })
            .collect();
        assert_close(
            &sum_to_shape(&x3, &[64, 1]).unwrap().to_f64_vec(),
            &mid,
            1e-13,
            "general",
        )
        .unwrap();
        let b = broadcast_to(&arr(&cols, &[c]), &[n, c])
            .unwrap()
            .to_f64_vec();
        assert_eq!(b[(n - 1) * c + 7], cols[7]);
    }
}
