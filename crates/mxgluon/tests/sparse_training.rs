//! Training with row-sparse gradients and row-sparse weights through the Trainer (spec §6
//! lazy updates, §7.2–§7.4, §7.6): lazy versus standard updates, reduction across contexts
//! merging row sets, copies kept identical, stale-gradient checks.

use mxgluon::gluon::nn::Embedding;
use mxgluon::gluon::utils::parallel_map;
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::nd::{self, Array, CSRNDArray};
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, init, Context, Error, NDArray, Parameter, StorageType};

fn cpu(i: u32) -> Context {
    Context::cpu(i)
}

fn ids(v: &[f32], ctx: Context) -> NDArray {
    NDArray::from_slice(v, &[v.len()], ctx).unwrap()
}

/// A `(rows, cols)` table whose entry (r, c) is `0.1·r + 0.01·c + 1`.
fn table(rows: usize, cols: usize) -> NDArray {
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| 1.0 + 0.1 * (i / cols) as f32 + 0.01 * (i % cols) as f32)
        .collect();
    NDArray::from_vec(v, &[rows, cols], cpu(0)).unwrap()
}

fn embedding(rows: usize, cols: usize, sparse: bool, ctxs: &[Context]) -> Embedding {
    let e = Embedding::builder(rows, cols)
        .sparse_grad(sparse)
        .build()
        .unwrap();
    e.initialize(Some(init::Zero.into()), ctxs.to_vec())
        .unwrap();
    e.weight().set_data(&table(rows, cols)).unwrap();
    e
}

/// One step: each context gets its own batch; loss = Σ (embedding · head weights).
fn step(e: &Embedding, trainer: &mut Trainer, batches: &[(Context, Vec<f32>)]) {
    for (ctx, b) in batches {
        let x = ids(b, *ctx);
        let y = {
            let _r = autograd::record();
            let out = e.forward(&x).unwrap();
            // A non-uniform head gradient so that every row gets a distinct value.
            let scale = NDArray::arange(1.0, 1.0 + out.size() as f64, 1.0, out.dtype(), *ctx)
                .unwrap()
                .reshape(out.shape())
                .unwrap();
            out.mul(&scale).unwrap().sum().unwrap()
        };
        y.backward().unwrap();
    }
    trainer
        .step(batches.iter().map(|b| b.1.len()).sum())
        .unwrap();
}

fn batches(ctxs: &[Context], k: usize) -> Vec<(Context, Vec<f32>)> {
    let sets: [&[f32]; 6] = [
        &[1.0, 4.0, 4.0],
        &[4.0, 9.0, 2.0],
        &[0.0, 11.0, 1.0],
        &[7.0, 7.0, 3.0],
        &[5.0, 2.0, 8.0],
        &[10.0, 6.0, 1.0],
    ];
    ctxs.iter()
        .enumerate()
        .map(|(i, c)| (*c, sets[(k * ctxs.len() + i) % sets.len()].to_vec()))
        .collect()
}

fn weights(e: &Embedding) -> Vec<Vec<f32>> {
    e.weight()
        .list_data()
        .unwrap()
        .iter()
        .map(|a| a.to_vec::<f32>().unwrap())
        .collect()
}

/// Rows of the trained tables; the batches use ids 0..=11 only, so rows 12 and 13 are never
/// touched.
const ROWS: usize = 14;

fn train(sparse: bool, ctxs: &[Context], opt: &str, opts: OptimizerOptions) -> Vec<Vec<f32>> {
    let e = embedding(ROWS, 3, sparse, ctxs);
    let mut t = Trainer::new(
        e.collect_params().unwrap(),
        (opt, opts),
        TrainerOptions::default(),
    )
    .unwrap();
    for k in 0..4 {
        step(&e, &mut t, &batches(ctxs, k));
    }
    weights(&e)
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "[{i}] {x} vs {y}");
    }
}

#[test]
fn sparse_and_dense_gradients_train_alike_where_the_update_is_row_local() {
    // Plain SGD without weight decay or momentum changes only the touched rows, so lazy
    // (sparse) and standard (dense) training agree exactly, on 1 and 2 contexts.
    for ctxs in [vec![cpu(0)], vec![cpu(0), cpu(1)]] {
        let o = || OptimizerOptions::new().set("learning_rate", 0.05);
        let s = train(true, &ctxs, "sgd", o());
        let d = train(false, &ctxs, "sgd", o());
        for (a, b) in s.iter().zip(&d) {
            assert_close(a, b, 1e-6);
        }
        // Copies identical.
        for c in &s[1..] {
            assert_eq!(c, &s[0]);
        }
    }
}

#[test]
fn ftrl_on_a_dense_weight_takes_the_standard_update_as_mxnet() {
    // MXNet 1.9.1's ftrl_update with a dense weight and a row_sparse gradient falls back to
    // the dense update (its lazy kernel needs row_sparse weight and states): every row moves,
    // exactly as with a dense gradient, and the two copies stay identical.
    let ctxs = [cpu(0), cpu(1)];
    let o = || OptimizerOptions::new().set("learning_rate", 0.1);
    let s = train(true, &ctxs, "ftrl", o());
    let d = train(false, &ctxs, "ftrl", o());
    assert_eq!(s[0], s[1], "copies differ");
    for (a, b) in s.iter().zip(&d) {
        assert_close(a, b, 1e-6);
    }
    let init = table(ROWS, 3).to_vec::<f32>().unwrap();
    assert_ne!(
        s[0][12 * 3..],
        init[12 * 3..],
        "untouched rows kept their value"
    );
}

#[test]
fn two_contexts_merge_row_sets_and_keep_copies_identical() {
    let ctxs = [cpu(0), cpu(1)];
    for (opt, o) in [
        (
            "sgd",
            OptimizerOptions::new()
                .set("learning_rate", 0.1)
                .set("momentum", 0.9)
                .set("wd", 0.01),
        ),
        ("adam", OptimizerOptions::new().set("learning_rate", 0.01)),
        ("adagrad", OptimizerOptions::new().set("learning_rate", 0.1)),
    ] {
        let w = train(true, &ctxs, opt, o);
        assert_eq!(w[0], w[1], "{opt}: copies differ");
        // Rows never touched by any batch keep their initial value (lazy updates), the
        // others moved.
        let init = table(ROWS, 3).to_vec::<f32>().unwrap();
        assert_eq!(
            w[0][12 * 3..],
            init[12 * 3..],
            "{opt}: untouched rows changed"
        );
        for r in 0..12 {
            assert_ne!(
                w[0][r * 3..r * 3 + 3],
                init[r * 3..r * 3 + 3],
                "{opt}: row {r}"
            );
        }
    }
}

#[test]
fn reduction_sums_row_sparse_gradients_of_both_contexts() {
    // Context 0 touches rows {1, 4}, context 1 rows {4, 9}: with lr 1 and SGD, each row moves
    // by the sum of its gradients; untouched rows stay.
    let ctxs = [cpu(0), cpu(1)];
    let e = embedding(12, 1, true, &ctxs);
    let mut t = Trainer::new(
        e.collect_params().unwrap(),
        ("sgd", OptimizerOptions::new().set("learning_rate", 1.0)),
        TrainerOptions::default(),
    )
    .unwrap();
    for (ctx, b) in [(cpu(0), [1.0f32, 4.0]), (cpu(1), [4.0, 9.0])] {
        let y = {
            let _r = autograd::record();
            e.forward(&ids(&b, ctx)).unwrap().sum().unwrap()
        };
        y.backward().unwrap();
    }
    t.step(1).unwrap();
    let init = table(12, 1).to_vec::<f32>().unwrap();
    for w in weights(&e) {
        for (r, (a, b)) in w.iter().zip(&init).enumerate() {
            let want = match r {
                1 | 9 => b - 1.0,
                4 => b - 2.0,
                _ => *b,
            };
            assert!((a - want).abs() < 1e-6, "row {r}: {a} vs {want}");
        }
    }
}

#[test]
fn lazy_and_standard_updates_differ_as_in_the_spec() {
    // Spec §6: weight ones, gradient rows {0} = 0, lr 1, wd 0.5 →
    // lazy [0.5, 1, 1], standard [0.5, 0.5, 0.5].
    for (lazy, want) in [(true, [0.5f32, 1.0, 1.0]), (false, [0.5, 0.5, 0.5])] {
        let e = Embedding::builder(3, 1)
            .sparse_grad(true)
            .weight_initializer(init::One)
            .build()
            .unwrap();
        e.initialize(None, cpu(0)).unwrap();
        let mut t = Trainer::new(
            e.collect_params().unwrap(),
            (
                "sgd",
                OptimizerOptions::new()
                    .set("learning_rate", 1.0)
                    .set("wd", 0.5)
                    .set_bool("lazy_update", lazy),
            ),
            TrainerOptions::default(),
        )
        .unwrap();
        let y = {
            let _r = autograd::record();
            e.forward(&ids(&[0.0], cpu(0))).unwrap()
        };
        y.backward_with(Some(&nd::zeros(&[1, 1], None).unwrap()), false)
            .unwrap();
        t.step(1).unwrap();
        assert_eq!(
            e.weight().data(None).unwrap().to_vec::<f32>().unwrap(),
            want,
            "lazy_update {lazy}"
        );
    }
}

#[test]
fn stale_sparse_gradients_are_reported() {
    let e = embedding(5, 2, true, &[cpu(0), cpu(1)]);
    let mut t = Trainer::new(
        e.collect_params().unwrap(),
        "sgd",
        TrainerOptions::default(),
    )
    .unwrap();
    assert!(matches!(t.step(1), Err(Error::StaleGradient { .. })));
    // Only context 0 ran backward: context 1 is stale.
    let y = {
        let _r = autograd::record();
        e.forward(&ids(&[1.0], cpu(0))).unwrap().sum().unwrap()
    };
    y.backward().unwrap();
    match t.step(1) {
        Err(Error::StaleGradient { stale }) => {
            assert_eq!(stale.len(), 1);
            assert_eq!(stale[0].1, cpu(1));
        }
        other => panic!("{other:?}"),
    }
    t.step_with(1, true).unwrap();
}

#[test]
fn row_sparse_weight_trains_through_row_sparse_data() {
    // A row_sparse weight (its value lives with the Trainer) used via dot(csr, rows): one SGD
    // step with lr 1 moves exactly the rows csr uses by dot(csr.T, 1).
    let p = Parameter::new("w")
        .with_shape([6, 2])
        .with_init(init::One)
        .with_stype(StorageType::RowSparse)
        .with_grad_stype(StorageType::RowSparse);
    let ctxs = [cpu(0), cpu(1)];
    p.initialize(ctxs.to_vec()).unwrap();
    let mut t = Trainer::new(
        vec![p.clone()],
        ("sgd", OptimizerOptions::new().set("learning_rate", 1.0)),
        TrainerOptions::default(),
    )
    .unwrap();
    // ctx 0: csr rows use columns {0, 3}; ctx 1: columns {3, 5}.
    let csr0 = CSRNDArray::from_dense(
        &NDArray::from_slice(&[1.0f32, 0.0, 0.0, 2.0, 0.0, 0.0], &[1, 6], cpu(0)).unwrap(),
    )
    .unwrap();
    let csr1 = CSRNDArray::from_dense(
        &NDArray::from_slice(&[0.0f32, 0.0, 0.0, 1.0, 0.0, 3.0], &[1, 6], cpu(1)).unwrap(),
    )
    .unwrap();
    let outs = parallel_map(
        &[(cpu(0), csr0, [0.0f32, 3.0]), (cpu(1), csr1, [3.0, 5.0])],
        |(ctx, csr, rows)| -> mxgluon::Result<f32> {
            let w = p.row_sparse_data(&ids(rows, *ctx))?;
            let y = {
                let _r = autograd::record();
                nd::sparse_dot_rsp(csr, &w)?.sum()?
            };
            y.backward()?;
            Ok(y.to_vec::<f32>()?[0])
        },
    )
    .unwrap();
    assert_eq!(outs, vec![6.0, 8.0]);
    t.step(1).unwrap();
    let all = p
        .row_sparse_data(&nd::arange(0.0, 6.0, 1.0, cpu(0)).unwrap())
        .unwrap();
    assert_eq!(
        all.to_dense().unwrap().to_vec::<f32>().unwrap(),
        vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0, -2.0, -2.0, 1.0, 1.0, -2.0, -2.0]
    );
    // The gradient stays as backward left it: a stale check fires on the next step.
    assert!(matches!(t.step(1), Err(Error::StaleGradient { .. })));
    let Array::RowSparse(g) = p.grad_array(cpu(1)).unwrap() else {
        panic!("row_sparse")
    };
    assert_eq!(g.indices_vec(), vec![3, 5]);
}
