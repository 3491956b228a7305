//! Sparse parameters and sparse gradients (spec §1.11–§1.15, §1.17–§1.18, §1.21, §7.2, §7.6,
//! quirk 19): storage-type errors, `row_sparse_data`, row-sparse gradient buffers of
//! `Embedding(sparse_grad)` and `dot(csr, w)`, `grad_req = add` merging row sets, zero_grad,
//! saving and reloading.

use mxgluon::gluon::nn::Embedding;
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::kvstore::KVStoreKind;
use mxgluon::nd::{self, Array, CSRNDArray, RowSparseNDArray};
use mxgluon::{autograd, init, Context, Error, GradReq, NDArray, Parameter, StorageType};

fn cpu(i: u32) -> Context {
    Context::cpu(i)
}

fn rsp_param(name: &str, shape: &[usize], ctxs: &[Context]) -> Parameter {
    let p = Parameter::new(name)
        .with_shape(shape)
        .with_init(init::One)
        .with_stype(StorageType::RowSparse)
        .with_grad_stype(StorageType::RowSparse);
    p.initialize(ctxs.to_vec()).unwrap();
    p
}

fn ids(v: &[f32], ctx: Context) -> NDArray {
    NDArray::from_slice(v, &[v.len()], ctx).unwrap()
}

fn rsp_grad(p: &Parameter, ctx: Context) -> RowSparseNDArray {
    match p.grad_array(ctx).unwrap() {
        Array::RowSparse(g) => g,
        other => panic!("expected a row_sparse gradient, got {}", other.stype()),
    }
}

// ------------------------------------------------------------------ invalid accesses

#[test]
fn row_sparse_parameter_refuses_dense_accessors() {
    let p = rsp_param("w", &[4, 2], &[cpu(0)]);
    match p.data(None) {
        Err(Error::WrongParameterStorage {
            called,
            use_instead,
            stype,
            ..
        }) => {
            assert_eq!(called, "data");
            assert_eq!(use_instead, "row_sparse_data");
            assert_eq!(stype, StorageType::RowSparse);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.list_data(),
        Err(Error::WrongParameterStorage {
            called: "list_data",
            ..
        })
    ));
    // Gradients are row-sparse: the dense accessors refuse, the array accessor works.
    assert!(matches!(
        p.grad(None),
        Err(Error::WrongParameterStorage {
            use_instead: "grad_array",
            ..
        })
    ));
    assert!(matches!(
        p.list_grad(),
        Err(Error::WrongParameterStorage { .. })
    ));
    assert_eq!(rsp_grad(&p, cpu(0)).nnz_rows(), 0);
}

#[test]
fn row_sparse_data_needs_a_trainer_and_a_row_sparse_parameter() {
    let p = rsp_param("w", &[4, 2], &[cpu(0)]);
    assert!(matches!(
        p.row_sparse_data(&ids(&[0.0], cpu(0))),
        Err(Error::NoTrainer { .. })
    ));
    assert!(matches!(
        p.list_row_sparse_data(&ids(&[0.0], cpu(0))),
        Err(Error::NoTrainer { .. })
    ));
    // Dense parameters refuse the sparse accessors (MXNet: "Please use data() instead").
    let q = Parameter::new("q").with_shape([4, 2]);
    q.initialize(cpu(0)).unwrap();
    let _t = Trainer::new(vec![q.clone()], "sgd", TrainerOptions::default()).unwrap();
    match q.row_sparse_data(&ids(&[0.0], cpu(0))) {
        Err(Error::WrongParameterStorage {
            called,
            use_instead,
            ..
        }) => {
            assert_eq!(called, "row_sparse_data");
            assert_eq!(use_instead, "data");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        q.list_row_sparse_data(&ids(&[0.0], cpu(0))),
        Err(Error::WrongParameterStorage { .. })
    ));
}

#[test]
fn a_row_sparse_parameter_belongs_to_one_trainer() {
    let p = rsp_param("w", &[4, 2], &[cpu(0)]);
    let t1 = Trainer::new(vec![p.clone()], "sgd", TrainerOptions::default()).unwrap();
    assert!(matches!(
        Trainer::new(vec![p.clone()], "sgd", TrainerOptions::default()),
        Err(Error::TrainerAlreadySet {
            stype: StorageType::RowSparse,
            ..
        })
    ));
    // Dense parameters may join several trainers.
    let q = Parameter::new("q").with_shape([2]);
    q.initialize(cpu(0)).unwrap();
    let _a = Trainer::new(vec![q.clone()], "sgd", TrainerOptions::default()).unwrap();
    let _b = Trainer::new(vec![q.clone()], "sgd", TrainerOptions::default()).unwrap();
    // Once the first trainer is gone, another may take the sparse parameter.
    drop(t1);
    assert!(matches!(
        p.row_sparse_data(&ids(&[0.0], cpu(0))),
        Err(Error::NoTrainer { .. })
    ));
    let _t2 = Trainer::new(vec![p.clone()], "sgd", TrainerOptions::default()).unwrap();
    assert!(p.row_sparse_data(&ids(&[0.0], cpu(0))).is_ok());
}

#[test]
fn trainer_rules_for_sparse_weights() {
    // Spec §7.2: kvstore None and update_on_kvstore=false are refused with sparse weights.
    let p = rsp_param("w", &[4, 2], &[cpu(0)]);
    let mut t = Trainer::new(
        vec![p.clone()],
        "sgd",
        TrainerOptions::new().kvstore(KVStoreKind::None),
    )
    .unwrap();
    assert!(matches!(t.step(1), Err(Error::InvalidArgument { .. })));
    drop(t);
    let mut t = Trainer::new(
        vec![p.clone()],
        "sgd",
        TrainerOptions::new().update_on_kvstore(false),
    )
    .unwrap();
    assert!(matches!(t.step(1), Err(Error::InvalidArgument { .. })));
}

// ------------------------------------------------------------------ row_sparse_data

#[test]
fn row_sparse_data_returns_the_requested_rows_on_the_row_ids_context() {
    let ctxs = [cpu(0), cpu(1)];
    let p = rsp_param("w", &[6, 2], &ctxs);
    let _t = Trainer::new(vec![p.clone()], "sgd", TrainerOptions::default()).unwrap();
    // Unsorted, repeated ids: the rows are the sorted distinct ids.
    let r = p
        .row_sparse_data(&ids(&[4.0, 0.0, 4.0, 2.0], cpu(1)))
        .unwrap();
    assert_eq!(r.context(), cpu(1));
    assert_eq!(r.shape(), &[6, 2]);
    assert_eq!(r.indices_vec(), vec![0, 2, 4]);
    assert_eq!(r.values().to_vec::<f32>().unwrap(), vec![1.0; 6]);
    let all = p.list_row_sparse_data(&ids(&[5.0], cpu(0))).unwrap();
    assert_eq!(all.len(), 2);
    for (a, c) in all.iter().zip(ctxs) {
        assert_eq!(a.context(), c);
        assert_eq!(a.indices_vec(), vec![5]);
    }
    // A context the parameter does not live on.
    assert!(matches!(
        p.row_sparse_data(&ids(&[0.0], cpu(3))),
        Err(Error::ParameterNotOnContext { .. })
    ));
}

#[test]
fn row_sparse_weight_gets_a_row_sparse_gradient_through_sparse_dot() {
    let p = rsp_param("w", &[5, 3], &[cpu(0)]);
    let _t = Trainer::new(vec![p.clone()], "sgd", TrainerOptions::default()).unwrap();
    // csr (2, 5) = [[0, 2, 0, 0, 0], [0, 0, 0, 1, 3]]
    let dense = NDArray::from_slice(
        &[0.0f32, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 3.0],
        &[2, 5],
        cpu(0),
    )
    .unwrap();
    let csr = CSRNDArray::from_dense(&dense).unwrap();
    let w = p.row_sparse_data(&ids(&[1.0, 3.0, 4.0], cpu(0))).unwrap();
    let y = {
        let _r = autograd::record();
        nd::sparse_dot_rsp(&csr, &w).unwrap()
    };
    assert_eq!(
        y.to_vec::<f32>().unwrap(),
        vec![2.0, 2.0, 2.0, 4.0, 4.0, 4.0]
    );
    y.backward().unwrap();
    let g = rsp_grad(&p, cpu(0));
    assert_eq!(g.shape(), &[5, 3]);
    assert_eq!(g.indices_vec(), vec![1, 3, 4]);
    assert_eq!(
        g.values().to_vec::<f32>().unwrap(),
        vec![2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0]
    );
}

// ------------------------------------------------------------------ sparse gradients

fn embedding_twice(req: GradReq) -> RowSparseNDArray {
    let e = Embedding::builder(20, 3)
        .sparse_grad(true)
        .weight_initializer(init::One)
        .build()
        .unwrap();
    e.initialize(None, cpu(0)).unwrap();
    e.weight().set_grad_req(req).unwrap();
    let x = nd::arange(0.0, 10.0, 1.0, None).unwrap();
    for _ in 0..2 {
        let y = {
            let _r = autograd::record();
            e.forward(&x).unwrap()
        };
        y.backward().unwrap();
    }
    rsp_grad(e.weight(), cpu(0))
}

#[test]
fn embedding_over_arange_twice_with_add_gives_two_on_rows_0_to_9() {
    // MXNet 1.9.1's SparseEmbedding refuses grad_req='add' ("doesn't support weight gradient
    // calculation with req != write"); here `add` merges row sets as the issue asks.
    let g = embedding_twice(GradReq::Add);
    assert_eq!(g.indices_vec(), (0..10).collect::<Vec<i64>>());
    assert_eq!(g.values().to_vec::<f32>().unwrap(), vec![2.0; 30]);
    assert_eq!(g.to_dense().unwrap().shape(), &[20, 3]);
}

#[test]
fn embedding_over_arange_twice_with_write_gives_one_on_rows_0_to_9() {
    let g = embedding_twice(GradReq::Write);
    assert_eq!(g.indices_vec(), (0..10).collect::<Vec<i64>>());
    assert_eq!(g.values().to_vec::<f32>().unwrap(), vec![1.0; 30]);
}

#[test]
fn add_merges_different_row_sets_and_zero_grad_empties() {
    let e = Embedding::builder(8, 1)
        .sparse_grad(true)
        .weight_initializer(init::One)
        .build()
        .unwrap();
    e.initialize(None, cpu(0)).unwrap();
    e.weight().set_grad_req(GradReq::Add).unwrap();
    for batch in [[1.0f32, 5.0, 5.0], [5.0, 7.0, 0.0]] {
        let y = {
            let _r = autograd::record();
            e.forward(&ids(&batch, cpu(0))).unwrap()
        };
        y.backward().unwrap();
    }
    let g = rsp_grad(e.weight(), cpu(0));
    assert_eq!(g.indices_vec(), vec![0, 1, 5, 7]);
    assert_eq!(
        g.values().to_vec::<f32>().unwrap(),
        vec![1.0, 1.0, 3.0, 1.0]
    );
    e.weight().zero_grad().unwrap();
    let g = rsp_grad(e.weight(), cpu(0));
    assert_eq!(g.nnz_rows(), 0);
    assert_eq!(g.shape(), &[8, 1]);
}

#[test]
fn sparse_gradient_into_a_dense_buffer_equals_the_dense_gradient() {
    // An Embedding with sparse_grad feeding a dense gradient buffer: scattered, so the
    // values equal the dense Embedding's gradient (write zeroes the other rows).
    let x = ids(&[3.0, 1.0, 3.0, 9.0, -2.0], cpu(0));
    let mut dense_w = nd::ones(&[6, 2], cpu(0)).unwrap();
    dense_w.attach_grad(GradReq::Write).unwrap();
    dense_w.grad().unwrap().fill(7.0).unwrap();
    let mut ref_w = nd::ones(&[6, 2], cpu(0)).unwrap();
    ref_w.attach_grad(GradReq::Write).unwrap();
    for (w, sparse) in [(&dense_w, true), (&ref_w, false)] {
        let y = {
            let _r = autograd::record();
            nd::embedding_ex(&x, w, sparse)
                .unwrap()
                .mul_scalar(2.0)
                .unwrap()
        };
        y.backward().unwrap();
    }
    assert_eq!(
        dense_w.grad().unwrap().to_vec::<f32>().unwrap(),
        ref_w.grad().unwrap().to_vec::<f32>().unwrap()
    );
}

#[test]
fn dense_and_sparse_contributions_to_one_variable_sum() {
    // w used by a sparse Embedding and by a dense op: the sum is dense and correct.
    let mut w = nd::ones(&[4, 1], cpu(0)).unwrap();
    w.attach_grad_with(GradReq::Write, StorageType::RowSparse)
        .unwrap();
    let y = {
        let _r = autograd::record();
        let a = nd::embedding_ex(&ids(&[2.0, 2.0], cpu(0)), &w, true)
            .unwrap()
            .sum()
            .unwrap();
        let b = nd::slice_axis(&w.mul_scalar(3.0).unwrap(), 0, 0, 1)
            .unwrap()
            .sum()
            .unwrap();
        a.add(&b).unwrap()
    };
    y.backward().unwrap();
    let Some(Array::RowSparse(g)) = w.grad_array() else {
        panic!("row_sparse buffer")
    };
    assert_eq!(
        g.to_dense().unwrap().to_vec::<f32>().unwrap(),
        vec![3.0, 0.0, 2.0, 0.0]
    );
}

#[test]
fn sparse_dot_of_a_dense_weight_gives_a_row_sparse_gradient() {
    let dense = NDArray::from_slice(
        &[0.0f32, 0.0, 1.5, 0.0, 2.0, 0.0, 0.0, 0.0],
        &[2, 4],
        cpu(0),
    )
    .unwrap();
    let csr = CSRNDArray::from_dense(&dense).unwrap();
    let p = Parameter::new("w")
        .with_shape([4, 2])
        .with_init(init::One)
        .with_grad_stype(StorageType::RowSparse);
    p.initialize(cpu(0)).unwrap();
    let w = p.data(None).unwrap();
    let y = {
        let _r = autograd::record();
        nd::sparse_dot(&csr, &w).unwrap()
    };
    let head = NDArray::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], cpu(0)).unwrap();
    y.backward_with(Some(&head), false).unwrap();
    let g = rsp_grad(&p, cpu(0));
    // dot(csr.T, head): row 0 = 2·[3, 4]; row 2 = 1.5·[1, 2]
    assert_eq!(g.indices_vec(), vec![0, 2]);
    assert_eq!(
        g.values().to_vec::<f32>().unwrap(),
        vec![6.0, 8.0, 1.5, 3.0]
    );
}

// ------------------------------------------------------------------ reduce, save, reset_ctx

#[test]
fn saving_a_row_sparse_parameter_needs_its_trainer_and_writes_every_row() {
    let dir = std::env::temp_dir().join(format!("mxgluon-sparse-params-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.params");
    let p = rsp_param("w", &[3, 2], &[cpu(0)]);
    let dict = mxgluon::ParameterDict::new("");
    dict.insert(p.clone()).unwrap();
    // Quirk 19: no Trainer, no value.
    assert!(matches!(dict.save(&path, ""), Err(Error::NoTrainer { .. })));
    assert!(matches!(p.reset_ctx(cpu(1)), Err(Error::NoTrainer { .. })));
    let _t = Trainer::new(vec![p.clone()], "sgd", TrainerOptions::default()).unwrap();
    dict.save(&path, "").unwrap();
    let loaded = nd::load(&path).unwrap().into_arrays();
    let mxgluon::io::ArrayList::Dict(entries) = loaded else {
        panic!("a dict")
    };
    let Array::RowSparse(saved) = &entries[0].1 else {
        panic!("MXNet writes a row_sparse record")
    };
    assert_eq!(saved.indices_vec(), vec![0, 1, 2]);
    assert_eq!(saved.values().to_vec::<f32>().unwrap(), vec![1.0; 6]);
    // Loading into a row_sparse parameter sets its value.
    let q = Parameter::new("w")
        .with_shape([3, 2])
        .with_stype(StorageType::RowSparse);
    let qd = mxgluon::ParameterDict::new("");
    qd.insert(q.clone()).unwrap();
    qd.load(&path, &mxgluon::gluon::LoadParams::default())
        .unwrap();
    let _tq = Trainer::new(vec![q.clone()], "sgd", TrainerOptions::default()).unwrap();
    let rows = q.row_sparse_data(&ids(&[0.0, 2.0], cpu(0))).unwrap();
    assert_eq!(rows.values().to_vec::<f32>().unwrap(), vec![1.0; 4]);
    // reset_ctx works with the trainer and keeps the value.
    p.reset_ctx(cpu(1)).unwrap();
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(1)]);
    let _ = std::fs::remove_dir_all(&dir);
}
