//! Optimizer steps with row-sparse gradients: MXNet's lazy updates.
//!
//! A lazy update applies the optimizer's elementwise kernel to the rows a
//! [`RowSparseNDArray`] gradient stores and leaves every other row of the weight and of its
//! state arrays alone (no weight decay, no momentum decay there). This is what MXNet 1.9.1's
//! `sgd_update` / `sgd_mom_update` / `adam_update` do with `lazy_update=True` and what its
//! sparse AdaGrad kernel always does. (MXNet's FTRL is lazy only for a row_sparse weight; with
//! a dense weight it falls back to the dense update, and so does [`Ftrl`](super::Ftrl) here.) Cost: O(stored rows · row length), whatever the
//! table's size; large updates run on the rayon pool, one task per group of rows.
//!
//! Without a lazy rule (`lazy_update=False`, or an optimizer that has none) the gradient is
//! made dense and every row is updated by [`update_array`], exactly as a dense gradient with
//! zeros in the missing rows.

use rayon::prelude::*;

use super::{check_state, update_array, OptState, Optimizer, StepArgs};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nd::par::worth_parallel;
use crate::nd::sparse::{row_len, rows_mut};
use crate::nd::{NDArray, RowSparseNDArray};

const OP: &str = "optimizer update";

/// One optimizer step of the dense table `weight` with a row-sparse gradient `grad` of the
/// same shape; `state` is the dense state made by [`OptState::new`] for `weight`.
///
/// When [`Optimizer::lazy_row_sparse`] is true only the rows stored in `grad` change (weight,
/// state slots and the float32 master copy of a multi-precision weight); otherwise the update
/// is the standard one over all rows. MXNet's sparse AdaGrad refuses weight decay, and so does
/// this function ([`Error::InvalidArgument`] when `args.wd != 0`).
///
/// The worked example of MXNet's documentation: a weight of ones, a gradient storing row 0
/// (zeros), learning rate 1 and weight decay 0.5 leave `[0.5, 1, 1]` lazily and
/// `[0.5, 0.5, 0.5]` with the standard update.
///
/// ```
/// use mxgluon::nd::{NDArray, RowSparseNDArray};
/// use mxgluon::optimizer::{update_row_sparse, OptState, Sgd, StepArgs};
/// use mxgluon::{Context, DType};
/// let ctx = Context::cpu(0);
/// let args = StepArgs { lr: 1.0, wd: 0.5, rescale_grad: 1.0, clip_gradient: None, t: 1, num_update: 1 };
/// let grad = RowSparseNDArray::from_row_ids(&[0], &NDArray::zeros(&[1, 1], DType::Float32, ctx)?, &[3, 1])?;
/// for (lazy, want) in [(true, vec![0.5f32, 1.0, 1.0]), (false, vec![0.5, 0.5, 0.5])] {
///     let opt = Sgd::new(1.0).lazy_update(lazy);
///     let w = NDArray::ones(&[3, 1], DType::Float32, ctx)?;
///     let mut state = OptState::new(&opt, &w)?;
///     update_row_sparse(&opt, &args, &w, &grad, &mut state)?;
///     assert_eq!(w.to_vec::<f32>()?, want);
/// }
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn update_row_sparse(
    opt: &dyn Optimizer,
    args: &StepArgs,
    weight: &NDArray,
    grad: &RowSparseNDArray,
    state: &mut OptState,
) -> Result<()> {
    if weight.shape() != grad.shape() {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: weight.shape().to_vec(),
            rhs: grad.shape().to_vec(),
            detail: "the gradient must have the weight's shape".into(),
        });
    }
    if opt.name() == "adagrad" && args.wd != 0.0 {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "adagrad with a row_sparse gradient does not support weight decay (wd = {}), \
                 as in MXNet; set wd to 0 or use a dense gradient",
                args.wd
            ),
        });
    }
    if !(opt.lazy_row_sparse() && opt.elementwise()) {
        return update_array(opt, args, weight, &grad.to_dense()?, state);
    }
    check_state(opt, weight, state)?;
    if grad.nnz_rows() == 0 || row_len(weight.shape()) == 0 {
        return Ok(());
    }
    let rows = grad.indices_vec();
    // The gradient rows in the compute dtype; copied when they share memory with an argument
    // that is written.
    let compute = if weight.dtype() == DType::Float64 {
        DType::Float64
    } else {
        DType::Float32
    };
    let aliased = grad.values().shares_memory_with(weight)
        || state
            .slots
            .iter()
            .chain(state.master.iter())
            .any(|s| s.shares_memory_with(grad.values()));
    let g = if grad.dtype() == compute && !aliased {
        grad.values().clone()
    } else {
        grad.values().astype_untracked(compute)?
    };
    match weight.dtype() {
        DType::Float32 => lazy_rows::<f32>(weight, &rows, &g, &state.slots, &rows, |w, g, s| {
            opt.step_f32(args, w, g, s)
        }),
        DType::Float64 => lazy_rows::<f64>(weight, &rows, &g, &state.slots, &rows, |w, g, s| {
            opt.step_f64(args, w, g, s)
        }),
        DType::Float16 | DType::BFloat16 => {
            let shape = weight.shape();
            let kernel =
                |w: &mut [f32], g: &[f32], s: &mut [&mut [f32]]| opt.step_f32(args, w, g, s);
            // The float32 rows updated: those of the master copy, or a float32 copy of the
            // weight's rows when there is none.
            let updated = match &state.master {
                Some(master) => {
                    lazy_rows::<f32>(master, &rows, &g, &state.slots, &rows, kernel)?;
                    RowSparseNDArray::gather(master, grad.indices())?
                }
                None => {
                    let w32 =
                        RowSparseNDArray::gather(weight, grad.indices())?.astype(DType::Float32)?;
                    let local: Vec<i64> = (0..rows.len() as i64).collect();
                    lazy_rows::<f32>(w32.values(), &local, &g, &state.slots, &rows, kernel)?;
                    w32
                }
            };
            let back = RowSparseNDArray::new(
                updated.values().astype_untracked(weight.dtype())?,
                updated.indices().clone(),
                shape,
            )?;
            back.assign_rows_to_dense(weight)
        }
        other => Err(Error::UnsupportedDType {
            op: OP,
            dtype: other,
            hint: "optimizers update floating-point parameters only".into(),
        }),
    }
}

/// One row of a lazy update: its position in the gradient, the weight row, the state rows.
type RowJob<'a, T> = (usize, &'a mut [T], Vec<&'a mut [T]>);

/// Runs `kernel` on row `w_rows[i]` of `weight`, row `i` of `grad` and row `s_rows[i]` of
/// every state slot, for each `i`, all arrays locked at once.
fn lazy_rows<T: bytemuck::Pod + Send + Sync>(
    weight: &NDArray,
    w_rows: &[i64],
    grad: &NDArray,
    slots: &[NDArray],
    s_rows: &[i64],
    kernel: impl Fn(&mut [T], &[T], &mut [&mut [T]]) + Sync + Send,
) -> Result<()> {
    let rl = row_len(grad.shape());
    let mut writes: Vec<&NDArray> = Vec::with_capacity(1 + slots.len());
    writes.push(weight);
    writes.extend(slots.iter());
    NDArray::with_slices::<T, _>(OP, &[grad], &writes, |g, w| {
        let g = g[0];
        let mut tables = w.iter_mut();
        let Some(wt) = tables.next() else {
            return;
        };
        let w_rows = rows_mut(wt, w_rows, rl);
        let mut slot_rows: Vec<std::vec::IntoIter<&mut [T]>> = tables
            .map(|t| rows_mut(t, s_rows, rl).into_iter())
            .collect();
        let jobs: Vec<RowJob<'_, T>> = w_rows
            .into_iter()
            .enumerate()
            .map(|(i, wr)| {
                // Every slot has one row per gradient row: `next` cannot run out.
                let states: Vec<&mut [T]> =
                    slot_rows.iter_mut().filter_map(|it| it.next()).collect();
                (i, wr, states)
            })
            .collect();
        let run = |(i, wr, mut states): RowJob<'_, T>| {
            kernel(wr, &g[i * rl..(i + 1) * rl], &mut states);
        };
        if worth_parallel(jobs.len().saturating_mul(rl)) {
            jobs.into_par_iter()
                .with_min_len((crate::nd::par::CHUNK / rl.max(1)).max(1))
                .for_each(run);
        } else {
            jobs.into_iter().for_each(run);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::{AdaGrad, Adam, Ftrl, RmsProp, Sgd};
    use crate::Context;

    fn cpu() -> Context {
        Context::cpu(0)
    }

    fn args(lr: f64, wd: f64, t: u64) -> StepArgs {
        StepArgs {
            lr,
            wd,
            rescale_grad: 1.0,
            clip_gradient: None,
            t,
            num_update: t,
        }
    }

    fn grad(rows: &[i64], vals: &[f64], shape: &[usize], dtype: DType) -> RowSparseNDArray {
        let mut vs = shape.to_vec();
        vs[0] = rows.len();
        let v = NDArray::from_vec(vals.to_vec(), &vs, cpu())
            .unwrap()
            .astype(dtype)
            .unwrap();
        RowSparseNDArray::from_row_ids(rows, &v, shape).unwrap()
    }

    #[test]
    fn spec_worked_values() {
        let g = grad(&[0], &[0.0], &[3, 1], DType::Float32);
        for (lazy, want) in [(true, vec![0.5, 1.0, 1.0]), (false, vec![0.5, 0.5, 0.5])] {
            let opt = Sgd::new(1.0).lazy_update(lazy);
            let w = NDArray::ones(&[3, 1], DType::Float32, cpu()).unwrap();
            let mut st = OptState::new(&opt, &w).unwrap();
            update_row_sparse(&opt, &args(1.0, 0.5, 1), &w, &g, &mut st).unwrap();
            assert_eq!(w.to_f64_vec(), want);
        }
    }

    /// The lazy update equals the dense update restricted to the stored rows, for each
    /// optimizer with a lazy rule and over several steps with changing rows.
    fn lazy_matches_dense_on_rows(opt: &dyn Optimizer, dtype: DType, wd: f64) {
        let shape = [6usize, 3];
        let init: Vec<f64> = (0..18).map(|i| 0.1 * i as f64 - 0.7).collect();
        let w = NDArray::from_vec(init.clone(), &shape, cpu())
            .unwrap()
            .astype(dtype)
            .unwrap();
        let mut st = OptState::new(opt, &w).unwrap();
        // reference: every row kept separately, dense-updated only when its row is present
        let mut ref_rows: Vec<(NDArray, OptState)> = (0..6)
            .map(|r| {
                let wr = NDArray::from_vec(init[r * 3..r * 3 + 3].to_vec(), &[1, 3], cpu())
                    .unwrap()
                    .astype(dtype)
                    .unwrap();
                let s = OptState::new(opt, &wr).unwrap();
                (wr, s)
            })
            .collect();
        let steps: [&[i64]; 3] = [&[0, 4], &[4, 5, 1], &[2]];
        for (t, rows) in steps.iter().enumerate() {
            let vals: Vec<f64> = (0..rows.len() * 3).map(|i| 0.3 - 0.05 * i as f64).collect();
            let g = grad(rows, &vals, &shape, dtype);
            let a = args(0.1, wd, t as u64 + 1);
            update_row_sparse(opt, &a, &w, &g, &mut st).unwrap();
            for (k, &r) in rows.iter().enumerate() {
                let gr = NDArray::from_vec(vals[k * 3..k * 3 + 3].to_vec(), &[1, 3], cpu())
                    .unwrap()
                    .astype(dtype)
                    .unwrap();
                let (wr, s) = &mut ref_rows[r as usize];
                update_array(opt, &a, wr, &gr, s).unwrap();
            }
        }
        let got = w.to_f64_vec();
        for (r, (wr, _)) in ref_rows.iter().enumerate() {
            assert_eq!(&got[r * 3..r * 3 + 3], &wr.to_f64_vec()[..], "row {r}");
        }
    }

    #[test]
    fn lazy_rows_match_the_dense_kernel() {
        for dtype in [DType::Float32, DType::Float64] {
            lazy_matches_dense_on_rows(&Sgd::new(0.1), dtype, 0.01);
            lazy_matches_dense_on_rows(&Sgd::new(0.1).momentum(0.9), dtype, 0.01);
            lazy_matches_dense_on_rows(&Adam::new(0.1), dtype, 0.01);
            lazy_matches_dense_on_rows(&AdaGrad::new(0.1), dtype, 0.0);
        }
        lazy_matches_dense_on_rows(&Sgd::new(0.1).momentum(0.9), DType::Float16, 0.01);
        lazy_matches_dense_on_rows(&Adam::new(0.1).multi_precision(true), DType::Float16, 0.01);
    }

    #[test]
    fn standard_update_touches_every_row() {
        // RmsProp and FTRL have no lazy rule; Adam with lazy_update=false neither
        for opt in [
            Box::new(RmsProp::new(0.1)) as Box<dyn Optimizer>,
            Box::new(Ftrl::new(0.1)),
            Box::new(Adam::new(0.1).lazy_update(false)),
        ] {
            let w = NDArray::ones(&[3, 2], DType::Float32, cpu()).unwrap();
            let w2 = w.copy_to(cpu()).unwrap();
            let mut st = OptState::new(&*opt, &w).unwrap();
            let mut st2 = OptState::new(&*opt, &w).unwrap();
            let g = grad(&[1], &[1.0, -2.0], &[3, 2], DType::Float32);
            update_row_sparse(&*opt, &args(0.1, 0.1, 1), &w, &g, &mut st).unwrap();
            update_array(
                &*opt,
                &args(0.1, 0.1, 1),
                &w2,
                &g.to_dense().unwrap(),
                &mut st2,
            )
            .unwrap();
            assert_eq!(w.to_f64_vec(), w2.to_f64_vec());
        }
    }

    #[test]
    fn errors() {
        let opt = AdaGrad::new(0.1);
        let w = NDArray::ones(&[3, 2], DType::Float32, cpu()).unwrap();
        let mut st = OptState::new(&opt, &w).unwrap();
        let g = grad(&[1], &[1.0, -2.0], &[3, 2], DType::Float32);
        assert!(matches!(
            update_row_sparse(&opt, &args(0.1, 0.1, 1), &w, &g, &mut st),
            Err(Error::InvalidArgument { .. })
        ));
        let g4 = grad(&[1], &[1.0, -2.0], &[4, 2], DType::Float32);
        assert!(matches!(
            update_row_sparse(&opt, &args(0.1, 0.0, 1), &w, &g4, &mut st),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut bad = OptState::new(&Sgd::new(0.1), &w).unwrap();
        assert!(update_row_sparse(&opt, &args(0.1, 0.0, 1), &w, &g, &mut bad).is_err());
        // a gradient in another dtype is converted
        let g64 = grad(&[1], &[1.0, -2.0], &[3, 2], DType::Float64);
        update_row_sparse(&opt, &args(0.1, 0.0, 1), &w, &g64, &mut st).unwrap();
        assert_eq!(w.to_f64_vec()[0], 1.0);
        assert!(w.to_f64_vec()[2] < 1.0);
    }

    #[test]
    fn big_tables_take_the_parallel_path() {
        let opt = Adam::new(0.01);
        let rl = 64;
        let w = NDArray::zeros(&[200_000, rl], DType::Float32, cpu()).unwrap();
        let mut st = OptState::new(&opt, &w).unwrap();
        let ids: Vec<i64> = (0..2000).map(|i| i * 97).collect();
        let v = NDArray::ones(&[2000, rl], DType::Float32, cpu()).unwrap();
        let g = RowSparseNDArray::from_row_ids(&ids, &v, &[200_000, rl]).unwrap();
        update_row_sparse(&opt, &args(0.01, 0.0, 1), &w, &g, &mut st).unwrap();
        let back = RowSparseNDArray::from_dense(&w).unwrap();
        assert_eq!(back.indices_vec(), ids);
        assert!(back
            .values()
            .to_f32_vec()
            .iter()
            .all(|&x| (x + 0.01).abs() < 1e-6));
    }
}
