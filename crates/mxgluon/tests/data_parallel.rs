//! Data-parallel training: `split_and_load`, one thread per context, gradient reduction.

use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::utils::{parallel_map, split_and_load, split_data};
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::nd::ActType;
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, init, random, Context, DType, NDArray};

fn mlp(prefix: &str) -> Sequential {
    let net = Sequential::with_prefix(Some(prefix), None);
    {
        let _scope = net.name_scope();
        net.add(
            Dense::builder(16)
                .activation(ActType::Tanh)
                .in_units(8)
                .build()
                .unwrap(),
        );
        net.add(Dense::builder(4).in_units(16).build().unwrap());
    }
    net
}

/// Forward + loss + backward of every (data, label) part: on its own thread when `threads`,
/// else as tasks of the pool (`parallel_map`).
fn forward_backward(net: &Sequential, parts: &[(NDArray, NDArray)], threads: bool) {
    let lossf = SoftmaxCrossEntropyLoss::new();
    let one = |(x, y): &(NDArray, NDArray)| -> mxgluon::Result<()> {
        let loss = {
            let _rec = autograd::record();
            lossf.loss(&net.forward(x)?, y, None)?
        };
        loss.backward()
    };
    if threads {
        std::thread::scope(|s| {
            for part in parts {
                let one = &one;
                s.spawn(move || one(part).unwrap());
            }
        });
    } else {
        parallel_map(parts, one).unwrap();
    }
}

fn train(ctxs: &[Context], optimizer: &str, opts: OptimizerOptions, steps: usize) -> Vec<Vec<f32>> {
    random::seed(7);
    let net = mlp("net_");
    net.initialize(Some(init::Xavier::default().into()), ctxs.to_vec())
        .unwrap();
    // The same starting values whatever the contexts: the first copy is broadcast by the
    // trainer, and the seeded initializer fills cpu(0) identically in both runs.
    let mut trainer = Trainer::new(
        net.collect_params().unwrap(),
        (optimizer, opts),
        TrainerOptions::new(),
    )
    .unwrap();
    let batch = 32;
    for step in 0..steps {
        random::seed(100 + step as u64);
        let x = random::uniform(-1.0, 1.0, &[batch, 8], DType::Float32, Context::cpu(0)).unwrap();
        let labels: Vec<f32> = (0..batch).map(|i| ((i * 7 + step) % 4) as f32).collect();
        let y = NDArray::from_vec(labels, &[batch], Context::cpu(0)).unwrap();
        let xs = split_and_load(&x, ctxs, true).unwrap();
        let ys = split_and_load(&y, ctxs, true).unwrap();
        let parts: Vec<(NDArray, NDArray)> = xs.into_iter().zip(ys).collect();
        forward_backward(&net, &parts, step % 2 == 0);
        trainer.step(batch).unwrap();
    }
    let params = net.collect_params().unwrap();
    let mut out = Vec::new();
    for (_, p) in params.items() {
        let copies = p.list_data().unwrap();
        let first = copies[0].to_vec::<f32>().unwrap();
        for c in &copies[1..] {
            assert_eq!(
                c.to_vec::<f32>().unwrap(),
                first,
                "copies of {} drifted",
                p.name()
            );
        }
        out.push(first);
    }
    out
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() <= tol * (1.0 + u.abs()), "{u} vs {v}");
        }
    }
}

#[test]
fn two_contexts_train_like_one_with_the_same_total_batch() {
    let one = train(
        &[Context::cpu(0)],
        "sgd",
        OptimizerOptions::new()
            .set("learning_rate", 0.5)
            .set("momentum", 0.9),
        20,
    );
    let two = train(
        &[Context::cpu(0), Context::cpu(1)],
        "sgd",
        OptimizerOptions::new()
            .set("learning_rate", 0.5)
            .set("momentum", 0.9),
        20,
    );
    assert_close(&one, &two, 1e-5);
    let four = train(
        &[
            Context::cpu(0),
            Context::cpu(1),
            Context::cpu(2),
            Context::cpu(3),
        ],
        "adam",
        OptimizerOptions::new().set("learning_rate", 0.01),
        10,
    );
    let one_adam = train(
        &[Context::cpu(0)],
        "adam",
        OptimizerOptions::new().set("learning_rate", 0.01),
        10,
    );
    assert_close(&one_adam, &four, 1e-4);
}

#[test]
fn split_and_load_places_even_and_uneven_parts() {
    let x = NDArray::from_vec((0..10).map(|v| v as f32).collect(), &[10], Context::cpu(0)).unwrap();
    let ctxs = [Context::cpu(0), Context::cpu(1), Context::cpu(2)];
    assert!(split_and_load(&x, &ctxs, true).is_err());
    let parts = split_and_load(&x, &ctxs, false).unwrap();
    let got: Vec<(Vec<f32>, Context)> = parts
        .iter()
        .map(|p| (p.to_vec::<f32>().unwrap(), p.context()))
        .collect();
    assert_eq!(
        got,
        vec![
            (vec![0.0, 1.0, 2.0], Context::cpu(0)),
            (vec![3.0, 4.0, 5.0], Context::cpu(1)),
            (vec![6.0, 7.0, 8.0, 9.0], Context::cpu(2)),
        ]
    );
    // Fewer elements than slices: one element per part.
    let small = NDArray::from_vec(vec![1.0f32, 2.0], &[2], Context::cpu(0)).unwrap();
    assert_eq!(split_data(&small, 3, 0, false).unwrap().len(), 2);
    // Another batch axis.
    let m = NDArray::from_vec(
        (0..12).map(|v| v as f32).collect(),
        &[3, 4],
        Context::cpu(0),
    )
    .unwrap();
    let cols = split_data(&m, 2, 1, true).unwrap();
    assert_eq!(cols[1].shape(), &[3, 2]);
    assert_eq!(
        cols[1].to_vec::<f32>().unwrap(),
        vec![2.0, 3.0, 6.0, 7.0, 10.0, 11.0]
    );
    assert!(split_data(&m, 2, 2, true).is_err());
    assert!(split_and_load(&m, &[], true).is_err());
}
