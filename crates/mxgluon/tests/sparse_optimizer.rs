//! Lazy (row-sparse) optimizer updates: the spec's worked values and, for each optimizer,
//! lazy versus standard updates.

use mxgluon::nd::{NDArray, RowSparseNDArray};
use mxgluon::optimizer::{
    update_array, update_row_sparse, AdaGrad, Adam, Ftrl, OptState, Optimizer, Sgd, StepArgs,
};
use mxgluon::{Context, DType};

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

#[test]
fn spec_worked_values_lazy_and_standard() {
    // weight ones (3, 2), gradient storing row 0 (zeros), lr 1, wd 0.5
    let g = RowSparseNDArray::from_row_ids(
        &[0],
        &NDArray::zeros(&[1, 2], DType::Float32, cpu()).unwrap(),
        &[3, 2],
    )
    .unwrap();
    for (lazy, want) in [(true, [0.5, 1.0, 1.0]), (false, [0.5, 0.5, 0.5])] {
        let opt = Sgd::new(1.0).lazy_update(lazy);
        let w = NDArray::ones(&[3, 2], DType::Float32, cpu()).unwrap();
        let mut st = OptState::new(&opt, &w).unwrap();
        update_row_sparse(&opt, &args(1.0, 0.5, 1), &w, &g, &mut st).unwrap();
        let got = w.to_f64_vec();
        for r in 0..3 {
            assert_eq!(&got[r * 2..r * 2 + 2], &[want[r], want[r]]);
        }
    }
}

/// Runs two steps (rows {1} then {1, 3}) and returns the weight.
fn two_steps(opt: &dyn Optimizer) -> Vec<f64> {
    let w = NDArray::full(&[4, 2], 0.5, DType::Float64, cpu()).unwrap();
    let mut st = OptState::new(opt, &w).unwrap();
    for (t, rows) in [vec![1i64], vec![1, 3]].into_iter().enumerate() {
        let v = NDArray::full(&[rows.len(), 2], 0.2, DType::Float64, cpu()).unwrap();
        let g = RowSparseNDArray::from_row_ids(&rows, &v, &[4, 2]).unwrap();
        update_row_sparse(opt, &args(0.1, 0.0, t as u64 + 1), &w, &g, &mut st).unwrap();
    }
    w.to_f64_vec()
}

/// The same two steps with the dense gradient (zeros in the missing rows).
fn two_dense_steps(opt: &dyn Optimizer) -> Vec<f64> {
    let w = NDArray::full(&[4, 2], 0.5, DType::Float64, cpu()).unwrap();
    let mut st = OptState::new(opt, &w).unwrap();
    for (t, rows) in [vec![1i64], vec![1, 3]].into_iter().enumerate() {
        let v = NDArray::full(&[rows.len(), 2], 0.2, DType::Float64, cpu()).unwrap();
        let g = RowSparseNDArray::from_row_ids(&rows, &v, &[4, 2]).unwrap();
        update_array(
            opt,
            &args(0.1, 0.0, t as u64 + 1),
            &w,
            &g.to_dense().unwrap(),
            &mut st,
        )
        .unwrap();
    }
    w.to_f64_vec()
}

#[test]
fn lazy_versus_standard_for_each_optimizer() {
    let lazy: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::new(0.1).momentum(0.9)),
        Box::new(Adam::new(0.1)),
        Box::new(AdaGrad::new(0.1)),
    ];
    for opt in &lazy {
        assert!(opt.lazy_row_sparse(), "{}", opt.name());
        let got = two_steps(&**opt);
        // rows 0 and 2 never appear: untouched
        assert_eq!(&got[0..2], &[0.5, 0.5], "{}", opt.name());
        assert_eq!(&got[4..6], &[0.5, 0.5], "{}", opt.name());
        assert!(got[2] < 0.5 && got[6] < 0.5, "{}", opt.name());
    }
    // momentum carries over in the standard update: row 1 after its absence differs
    let std_opts: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::new(0.1).momentum(0.9).lazy_update(false)),
        Box::new(Adam::new(0.1).lazy_update(false)),
        Box::new(Ftrl::new(0.1)),
    ];
    for opt in &std_opts {
        assert!(!opt.lazy_row_sparse(), "{}", opt.name());
        assert_eq!(two_steps(&**opt), two_dense_steps(&**opt), "{}", opt.name());
    }
    // lazy SGD with momentum: momentum of row 1 decays only when row 1 is present, so the
    // lazy and standard results differ in a row that skipped a step
    let w_lazy = {
        let opt = Sgd::new(0.1).momentum(0.9);
        let w = NDArray::full(&[2, 1], 0.5, DType::Float64, cpu()).unwrap();
        let mut st = OptState::new(&opt, &w).unwrap();
        for rows in [vec![0i64], vec![1], vec![0]] {
            let v = NDArray::full(&[1, 1], 1.0, DType::Float64, cpu()).unwrap();
            let g = RowSparseNDArray::from_row_ids(&rows, &v, &[2, 1]).unwrap();
            update_row_sparse(&opt, &args(0.1, 0.0, 1), &w, &g, &mut st).unwrap();
        }
        w.to_f64_vec()
    };
    // row 0: mom -0.1 then -0.19 (no decay in the skipped step): 0.5 - 0.1 - 0.19
    assert!((w_lazy[0] - 0.21).abs() < 1e-12, "{w_lazy:?}");
    assert!((w_lazy[1] - 0.4).abs() < 1e-12, "{w_lazy:?}");
}

#[test]
fn multi_precision_rows() {
    let opt = Sgd::new(0.5).multi_precision(true);
    let w = NDArray::ones(&[3, 2], DType::Float16, cpu()).unwrap();
    let mut st = OptState::new(&opt, &w).unwrap();
    assert!(st.master.is_some());
    let v = NDArray::full(&[1, 2], 1.0, DType::Float16, cpu()).unwrap();
    let g = RowSparseNDArray::from_row_ids(&[2], &v, &[3, 2]).unwrap();
    update_row_sparse(&opt, &args(0.5, 0.0, 1), &w, &g, &mut st).unwrap();
    assert_eq!(w.to_f64_vec(), vec![1.0, 1.0, 1.0, 1.0, 0.5, 0.5]);
    let master = st.master.as_ref().unwrap().to_f64_vec();
    assert_eq!(master, vec![1.0, 1.0, 1.0, 1.0, 0.5, 0.5]);
}
