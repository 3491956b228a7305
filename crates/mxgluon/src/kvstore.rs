//! Gradient reduction and weight broadcast across contexts (MXNet's local `KVStore` types).
//!
//! The [`Trainer`](crate::gluon::Trainer) keeps a parameter's copies identical by summing the
//! gradients of every context, applying the optimizer once and writing the result to every
//! copy. Here that is one fused pass over the arrays: for each block of a few thousand
//! elements, the gradients are summed into a cache-resident buffer, the optimizer kernel
//! updates the first copy and the block is copied to the others, so every byte is read or
//! written once and large parameters run at memory bandwidth (blocks are spread over the
//! thread pool).

use rayon::prelude::*;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nd::{NDArray, RowSparseNDArray};
use crate::optimizer::{update_array, update_row_sparse, OptState, Optimizer, StepArgs};

/// How a [`Trainer`](crate::gluon::Trainer) combines the gradients of several contexts
/// (MXNet's `kvstore` argument, for one machine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KVStoreKind {
    /// No reduction: each context's copy is updated with its own gradient, so copies drift
    /// apart (MXNet's `kvstore=None`).
    None,
    /// Gradients are summed across contexts and every copy receives the same update
    /// (MXNet's `'device'`, the default).
    #[default]
    Device,
    /// Same arithmetic as `Device` (MXNet's `'local'` reduces on the CPU); by default the
    /// update is not fused into the reduction when the largest parameter has more than
    /// 16 Mi elements, as MXNet decides.
    Local,
}

impl KVStoreKind {
    /// MXNet's name: `"device"`, `"local"`, or `"none"`.
    pub fn name(self) -> &'static str {
        match self {
            KVStoreKind::None => "none",
            KVStoreKind::Device => "device",
            KVStoreKind::Local => "local",
        }
    }
}

impl std::str::FromStr for KVStoreKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "" => Ok(KVStoreKind::None),
            "device" => Ok(KVStoreKind::Device),
            "local" => Ok(KVStoreKind::Local),
            _ => Err(Error::InvalidEnumValue {
                what: "kvstore (distributed stores are not supported)",
                got: s.to_string(),
                valid: vec!["device".into(), "local".into(), "none".into()],
            }),
        }
    }
}

impl std::fmt::Display for KVStoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Elements per fused block: the summed gradient block stays in L1/L2.
const BLOCK: usize = 8192;
/// Arrays below this many elements are updated on the calling thread.
const PAR_MIN: usize = 1 << 17;

/// Element types the fused path handles.
trait FusedElem: bytemuck::Pod + Send + Sync + Default + std::ops::AddAssign {
    fn step(
        opt: &dyn Optimizer,
        args: &StepArgs,
        w: &mut [Self],
        g: &[Self],
        s: &mut [&mut [Self]],
    );
}

impl FusedElem for f32 {
    fn step(opt: &dyn Optimizer, args: &StepArgs, w: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        opt.step_f32(args, w, g, s)
    }
}

impl FusedElem for f64 {
    fn step(opt: &dyn Optimizer, args: &StepArgs, w: &mut [f64], g: &[f64], s: &mut [&mut [f64]]) {
        opt.step_f64(args, w, g, s)
    }
}

/// One block: sum the gradients (if several), step the optimizer on `w`, copy `w` to `copies`.
fn run_block<T: FusedElem>(
    opt: &dyn Optimizer,
    args: &StepArgs,
    grads: &[&[T]],
    start: usize,
    w: &mut [T],
    states: &mut [&mut [T]],
    copies: &mut [&mut [T]],
) {
    let len = w.len();
    match grads {
        [g] => T::step(opt, args, w, &g[start..start + len], states),
        _ => {
            let mut buf = [T::default(); BLOCK];
            let sum = &mut buf[..len];
            if let Some((first, rest)) = grads.split_first() {
                sum.copy_from_slice(&first[start..start + len]);
                for g in rest {
                    for (a, b) in sum.iter_mut().zip(&g[start..start + len]) {
                        *a += *b;
                    }
                }
            }
            T::step(opt, args, w, sum, states);
        }
    }
    for c in copies.iter_mut() {
        c.copy_from_slice(w);
    }
}

/// The fused reduce–update–broadcast over plain slices.
fn fused<T: FusedElem>(
    opt: &dyn Optimizer,
    args: &StepArgs,
    grads: &[&[T]],
    w: &mut [T],
    states: &mut [&mut [T]],
    copies: &mut [&mut [T]],
) {
    let n = w.len();
    if !opt.elementwise() {
        // Whole-array kernels (LAMB, LARS): reduce first, then one step.
        if let [g] = grads {
            T::step(opt, args, w, g, states);
        } else {
            let mut sum: Vec<T> = grads.first().map(|g| g.to_vec()).unwrap_or_default();
            for g in grads.iter().skip(1) {
                for (a, b) in sum.iter_mut().zip(g.iter()) {
                    *a += *b;
                }
            }
            T::step(opt, args, w, &sum, states);
        }
        for c in copies.iter_mut() {
            c.copy_from_slice(w);
        }
        return;
    }
    if n < PAR_MIN || rayon::current_num_threads() < 2 {
        let mut start = 0;
        while start < n {
            let end = (start + BLOCK).min(n);
            let mut st: Vec<&mut [T]> = states.iter_mut().map(|s| &mut s[start..end]).collect();
            let mut cp: Vec<&mut [T]> = copies.iter_mut().map(|c| &mut c[start..end]).collect();
            run_block(
                opt,
                args,
                grads,
                start,
                &mut w[start..end],
                &mut st,
                &mut cp,
            );
            start = end;
        }
        return;
    }
    // Split every mutable array into the same blocks and hand the blocks to the pool.
    let mut state_blocks: Vec<std::slice::ChunksMut<'_, T>> =
        states.iter_mut().map(|s| s.chunks_mut(BLOCK)).collect();
    let mut copy_blocks: Vec<std::slice::ChunksMut<'_, T>> =
        copies.iter_mut().map(|c| c.chunks_mut(BLOCK)).collect();
    type Job<'a, T> = (usize, &'a mut [T], Vec<&'a mut [T]>, Vec<&'a mut [T]>);
    let mut jobs: Vec<Job<'_, T>> = Vec::with_capacity(n.div_ceil(BLOCK));
    for (i, wb) in w.chunks_mut(BLOCK).enumerate() {
        // Every array has the weight's length, so each iterator yields exactly as many blocks.
        let st = state_blocks
            .iter_mut()
            .map(|it| it.next().unwrap_or_default())
            .collect();
        let cp = copy_blocks
            .iter_mut()
            .map(|it| it.next().unwrap_or_default())
            .collect();
        jobs.push((i * BLOCK, wb, st, cp));
    }
    jobs.into_par_iter()
        .with_min_len(4)
        .for_each(|(start, wb, mut st, mut cp)| {
            run_block(opt, args, grads, start, wb, &mut st, &mut cp)
        });
}

fn check_same(op: &'static str, what: &str, a: &NDArray, b: &NDArray) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape().to_vec(),
            rhs: b.shape().to_vec(),
            detail: format!("every {what} must have the weight's shape"),
        });
    }
    Ok(())
}

/// Sums `grads` (one per context), applies one optimizer step to `weights[0]` and copies the
/// result into `weights[1..]` — what the [`Trainer`](crate::gluon::Trainer) does per parameter
/// with several contexts (MXNet's `pushpull` on a kvstore that runs the optimizer). With one
/// gradient and one weight it is a plain update. The state belongs to `weights[0]`
/// ([`OptState::new`]); `args` come from [`OptimizerParams::begin_step`](crate::optimizer::OptimizerParams::begin_step).
///
/// float32 and float64 arrays take one fused pass over memory; other dtypes and
/// multi-precision states go through [`update_array`] on the summed gradient.
///
/// ```
/// use mxgluon::kvstore::reduce_update_broadcast;
/// use mxgluon::optimizer::{self, OptState, OptimizerOptions};
/// use mxgluon::{nd, Context};
/// let ctxs = [Context::cpu(0), Context::cpu(1)];
/// let weights = [nd::ones(&[3], ctxs[0])?, nd::ones(&[3], ctxs[1])?];
/// let grads = [nd::full(&[3], 1.0, ctxs[0])?, nd::full(&[3], 3.0, ctxs[1])?];
/// let mut opt = optimizer::create("sgd", &OptimizerOptions::new().set("learning_rate", 0.5))?;
/// let mut state = OptState::new(opt.as_ref(), &weights[0])?;
/// let args = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
/// reduce_update_broadcast(opt.as_ref(), &args, &weights, &grads, &mut state)?;
/// assert_eq!(weights[1].to_vec::<f32>()?, vec![-1.0; 3]); // 1 - 0.5 * (1 + 3)
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn reduce_update_broadcast(
    opt: &dyn Optimizer,
    args: &StepArgs,
    weights: &[NDArray],
    grads: &[NDArray],
    state: &mut OptState,
) -> Result<()> {
    const OP: &str = "gradient reduction and update";
    let Some((w0, copies)) = weights.split_first() else {
        return Ok(());
    };
    if grads.is_empty() {
        return Ok(());
    }
    for g in grads {
        check_same(OP, "gradient", w0, g)?;
    }
    for c in copies {
        check_same(OP, "copy", w0, c)?;
    }
    let dtype = w0.dtype();
    let uniform = state.master.is_none()
        && grads.iter().chain(copies).all(|a| a.dtype() == dtype)
        && state
            .slots
            .iter()
            .all(|s| s.dtype() == dtype && s.shape() == w0.shape());
    match dtype {
        DType::Float32 if uniform => fused_arrays::<f32>(opt, args, w0, copies, grads, state),
        DType::Float64 if uniform => fused_arrays::<f64>(opt, args, w0, copies, grads, state),
        _ => {
            // General path (half precision, multi-precision master weights, mixed dtypes).
            let sum = sum_arrays(grads)?;
            update_array(opt, args, w0, &sum, state)?;
            for c in copies {
                c.assign(w0)?;
            }
            Ok(())
        }
    }
}

fn fused_arrays<T: FusedElem>(
    opt: &dyn Optimizer,
    args: &StepArgs,
    w0: &NDArray,
    copies: &[NDArray],
    grads: &[NDArray],
    state: &OptState,
) -> Result<()> {
    let reads: Vec<&NDArray> = grads.iter().collect();
    let mut writes: Vec<&NDArray> = Vec::with_capacity(1 + state.slots.len() + copies.len());
    writes.push(w0);
    writes.extend(state.slots.iter());
    writes.extend(copies.iter());
    let n_states = state.slots.len();
    NDArray::with_slices::<T, _>("optimizer update", &reads, &writes, |g, w| {
        let (first, rest) = w.split_at_mut(1);
        let (st, cp) = rest.split_at_mut(n_states);
        fused::<T>(opt, args, g, first[0], st, cp);
    })
}

/// The elementwise sum of same-shaped arrays, in the first one's dtype (float32 for half
/// precision inputs, so that the optimizer sees full-precision sums).
fn sum_arrays(arrays: &[NDArray]) -> Result<NDArray> {
    let first = &arrays[0];
    let target = match first.dtype() {
        DType::Float16 | DType::BFloat16 => DType::Float32,
        d => d,
    };
    let mut acc = first.astype_untracked(target)?;
    for a in &arrays[1..] {
        let a = if a.dtype() == target {
            a.clone()
        } else {
            a.astype_untracked(target)?
        };
        acc = crate::nd::ops::add_untracked(&acc, &a)?;
    }
    Ok(acc)
}

/// Replaces every array of `grads` (one per context) by their elementwise sum, in place
/// (MXNet's `pushpull` without an optimizer).
///
/// ```
/// use mxgluon::{kvstore, nd, Context};
/// let g = [nd::full(&[2], 1.0, Context::cpu(0))?, nd::full(&[2], 3.0, Context::cpu(1))?];
/// kvstore::allreduce_in_place(&g)?;
/// assert_eq!(g[0].to_vec::<f32>()?, vec![4.0, 4.0]);
/// assert_eq!(g[1].to_vec::<f32>()?, vec![4.0, 4.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn allreduce_in_place(grads: &[NDArray]) -> Result<()> {
    let Some((first, rest)) = grads.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        return Ok(());
    }
    for g in rest {
        check_same("allreduce", "gradient", first, g)?;
    }
    let uniform = rest.iter().all(|g| g.dtype() == first.dtype());
    match first.dtype() {
        DType::Float32 if uniform => allreduce_slices::<f32>(grads),
        DType::Float64 if uniform => allreduce_slices::<f64>(grads),
        _ => {
            let sum = sum_arrays(grads)?;
            for g in grads {
                g.assign(&sum)?;
            }
            Ok(())
        }
    }
}

fn allreduce_slices<T: FusedElem>(grads: &[NDArray]) -> Result<()> {
    let writes: Vec<&NDArray> = grads.iter().collect();
    NDArray::with_slices::<T, _>("allreduce", &[], &writes, |_, gs| {
        let n = gs[0].len();
        let one = |start: usize, end: usize, blocks: &mut [&mut [T]]| {
            let mut buf = [T::default(); BLOCK];
            let sum = &mut buf[..end - start];
            sum.copy_from_slice(blocks[0]);
            for b in blocks[1..].iter() {
                for (a, x) in sum.iter_mut().zip(b.iter()) {
                    *a += *x;
                }
            }
            for b in blocks.iter_mut() {
                b.copy_from_slice(sum);
            }
        };
        let mut iters: Vec<std::slice::ChunksMut<'_, T>> =
            gs.iter_mut().map(|g| g.chunks_mut(BLOCK)).collect();
        let mut jobs = Vec::with_capacity(n.div_ceil(BLOCK));
        let mut start = 0;
        while start < n {
            let end = (start + BLOCK).min(n);
            let blocks: Vec<&mut [T]> = iters
                .iter_mut()
                .map(|it| it.next().unwrap_or_default())
                .collect();
            jobs.push((start, end, blocks));
            start = end;
        }
        if n >= PAR_MIN && rayon::current_num_threads() > 1 {
            jobs.into_par_iter()
                .with_min_len(4)
                .for_each(|(s, e, mut b)| one(s, e, &mut b));
        } else {
            for (s, e, mut b) in jobs {
                one(s, e, &mut b);
            }
        }
    })
}

/// Copies `arrays[0]` into every other array (MXNet's `broadcast`, which the Trainer runs
/// before the first update so that every copy starts from the first context's value).
pub fn broadcast_first(arrays: &[NDArray]) -> Result<()> {
    if let Some((first, rest)) = arrays.split_first() {
        for a in rest {
            a.assign(first)?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------ row_sparse

/// Sums row-sparse gradients of several contexts onto `grads[0]`'s context: the result
/// stores the union of their row sets (MXNet's kvstore reduction of `row_sparse` values).
/// Costs O(rows stored), never O(table).
///
/// Errors: [`Error::InvalidArgument`] for an empty list; shape / dtype mismatches.
pub fn reduce_row_sparse(grads: &[RowSparseNDArray]) -> Result<RowSparseNDArray> {
    let Some(first) = grads.first() else {
        return Err(Error::invalid_arg(
            "row_sparse reduction",
            "no gradients to reduce",
        ));
    };
    if grads.len() == 1 {
        return Ok(first.clone());
    }
    let ctx = first.context();
    let local = grads
        .iter()
        .map(|g| {
            if g.context() == ctx {
                Ok(g.clone())
            } else {
                g.copy_to(ctx)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    RowSparseNDArray::sum(&local)
}

/// Copies rows `rows` of `src` into each of `dsts` (same shape and dtype as `src`): the
/// broadcast of a lazy row-sparse update, O(rows × row length).
///
/// Errors: shape or dtype mismatches; a row out of range.
pub fn copy_rows(src: &NDArray, dsts: &[NDArray], rows: &[i64]) -> Result<()> {
    const OP: &str = "row copy";
    if src.ndim() == 0 {
        return Err(Error::invalid_arg(OP, "a 0-d array has no rows"));
    }
    let nrows = src.shape()[0];
    if let Some(&bad) = rows.iter().find(|&&r| r < 0 || r as usize >= nrows) {
        return Err(Error::invalid_arg(
            OP,
            format!("row {bad} is outside 0..{nrows}"),
        ));
    }
    let es = src.dtype().size();
    let row_bytes = src.shape()[1..].iter().product::<usize>() * es;
    for d in dsts {
        check_same(OP, "copy", src, d)?;
        if d.dtype() != src.dtype() {
            return Err(Error::DTypeMismatch {
                op: OP,
                expected: src.dtype(),
                got: d.dtype(),
            });
        }
        if d.shares_memory_with(src) {
            continue;
        }
        src.read_bytes(|s| {
            d.write_bytes(|o| {
                for &r in rows {
                    let r = r as usize * row_bytes;
                    o[r..r + row_bytes].copy_from_slice(&s[r..r + row_bytes]);
                }
            })
        });
    }
    Ok(())
}

/// The row-sparse counterpart of [`reduce_update_broadcast`] for a dense weight with copies
/// on several contexts: sums the row-sparse gradients (union of rows), updates the first copy
/// with [`update_row_sparse`] (lazy: only the gradient's rows, when the optimizer's
/// `lazy_row_sparse()` holds) and copies to the other copies exactly the rows that changed
/// (every row after a standard update). A lazy step costs O(rows touched).
///
/// ```
/// use mxgluon::kvstore::reduce_update_broadcast_row_sparse;
/// use mxgluon::nd::{self, RowSparseNDArray};
/// use mxgluon::optimizer::{self, OptState, OptimizerOptions};
/// use mxgluon::Context;
/// let ctxs = [Context::cpu(0), Context::cpu(1)];
/// let weights = [nd::ones(&[4, 1], ctxs[0])?, nd::ones(&[4, 1], ctxs[1])?];
/// let g0 = RowSparseNDArray::from_row_ids(&[1], &nd::full(&[1, 1], 1.0, ctxs[0])?, &[4, 1])?;
/// let g1 = RowSparseNDArray::from_row_ids(&[1, 3], &nd::full(&[2, 1], 2.0, ctxs[1])?, &[4, 1])?;
/// let mut opt = optimizer::create("sgd", &OptimizerOptions::new().set("learning_rate", 0.5))?;
/// let mut state = OptState::new(opt.as_ref(), &weights[0])?;
/// let args = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
/// reduce_update_broadcast_row_sparse(opt.as_ref(), &args, &weights, &[g0, g1], &mut state)?;
/// assert_eq!(weights[1].to_vec::<f32>()?, vec![1.0, -0.5, 1.0, 0.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn reduce_update_broadcast_row_sparse(
    opt: &dyn Optimizer,
    args: &StepArgs,
    weights: &[NDArray],
    grads: &[RowSparseNDArray],
    state: &mut OptState,
) -> Result<()> {
    let Some((w0, copies)) = weights.split_first() else {
        return Ok(());
    };
    if grads.is_empty() {
        return Ok(());
    }
    let sum = reduce_row_sparse(grads)?;
    let sum = if sum.context() != w0.context() {
        sum.copy_to(w0.context())?
    } else {
        sum
    };
    update_row_sparse(opt, args, w0, &sum, state)?;
    if copies.is_empty() {
        return Ok(());
    }
    if opt.lazy_row_sparse() {
        copy_rows(w0, copies, &sum.indices_vec())
    } else {
        broadcast_first(weights)
    }
}
