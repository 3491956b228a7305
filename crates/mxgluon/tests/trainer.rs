//! `gluon::Trainer` against spec §7 (values verified on MXNet 1.9.1 where the spec says so).

use mxgluon::gluon::{Trainer, TrainerOptions};
use mxgluon::kvstore::KVStoreKind;
use mxgluon::optimizer::{self, Optimizer, OptimizerOptions};
use mxgluon::{autograd, nd, Context, Error, GradReq, NDArray, Parameter, ParameterDict};

fn cpu(i: u32) -> Context {
    Context::cpu(i)
}

fn sgd(lr: f64, wd: f64, momentum: f64) -> Box<dyn Optimizer> {
    optimizer::create(
        "sgd",
        &OptimizerOptions::new()
            .set("learning_rate", lr)
            .set("wd", wd)
            .set("momentum", momentum),
    )
    .unwrap()
}

/// A parameter of the given shape filled with `value` on `ctxs`.
fn param(name: &str, shape: &[usize], value: f64, ctxs: &[Context]) -> Parameter {
    let p = Parameter::new(name).with_shape(shape);
    p.initialize(ctxs.to_vec()).unwrap();
    p.set_data(&nd::full(shape, value, None).unwrap()).unwrap();
    p
}

/// Runs a backward pass that leaves `grad` in `p`'s gradient on `ctx` (through `w * 1`).
fn backward_with(p: &Parameter, ctx: Context, grad: &[f32]) {
    let w = p.data(ctx).unwrap();
    let head = NDArray::from_slice(grad, w.shape(), ctx)
        .unwrap()
        .astype(w.dtype())
        .unwrap();
    let y = {
        let _rec = autograd::record();
        w.mul_scalar(1.0).unwrap()
    };
    y.backward_with(Some(&head), false).unwrap();
}

fn values(p: &Parameter, ctx: Context) -> Vec<f32> {
    p.data(ctx).unwrap().to_vec::<f32>().unwrap()
}

#[test]
fn lr_mult_and_wd_mult_scale_the_step() {
    // spec §7.4 (a): 1 - 0.5 * (1 + 0.2 * 1) = 0.4 with grad 2 and batch 2.
    let p = param("w", &[1], 1.0, &[cpu(0)])
        .with_lr_mult(0.5)
        .with_wd_mult(2.0);
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.1, 0.0), TrainerOptions::new()).unwrap();
    backward_with(&p, cpu(0), &[2.0]);
    t.step(2).unwrap();
    assert!((values(&p, cpu(0))[0] - 0.4).abs() < 1e-6);
}

#[test]
fn device_reduction_sums_gradients_and_keeps_copies_identical() {
    // spec §7.4 (b): grads 1 and 3, lr 1 → both copies -3.
    let p = param("w", &[1], 1.0, &[cpu(0), cpu(1)]);
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.0, 0.0), TrainerOptions::new()).unwrap();
    backward_with(&p, cpu(0), &[1.0]);
    backward_with(&p, cpu(1), &[3.0]);
    t.step(1).unwrap();
    assert_eq!(values(&p, cpu(0)), vec![-3.0]);
    assert_eq!(values(&p, cpu(1)), vec![-3.0]);
    // The gradient buffers keep their per-context values (MXNet's pushpull into the weights).
    assert_eq!(p.grad(cpu(0)).unwrap().to_vec::<f32>().unwrap(), vec![1.0]);
    assert_eq!(p.grad(cpu(1)).unwrap().to_vec::<f32>().unwrap(), vec![3.0]);
}

#[test]
fn allreduce_then_update_matches_step() {
    // spec §7.4 (c): allreduce → both grads 4; update → -3.
    let p = param("w", &[1], 1.0, &[cpu(0), cpu(1)]);
    let opts = TrainerOptions::new().update_on_kvstore(false);
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.0, 0.0), opts).unwrap();
    backward_with(&p, cpu(0), &[1.0]);
    backward_with(&p, cpu(1), &[3.0]);
    t.allreduce_grads().unwrap();
    assert_eq!(p.grad(cpu(0)).unwrap().to_vec::<f32>().unwrap(), vec![4.0]);
    assert_eq!(p.grad(cpu(1)).unwrap().to_vec::<f32>().unwrap(), vec![4.0]);
    t.update(1, false).unwrap();
    assert_eq!(values(&p, cpu(0)), vec![-3.0]);
    assert_eq!(values(&p, cpu(1)), vec![-3.0]);
}

#[test]
fn allreduce_and_update_are_refused_when_fused() {
    let p = param("w", &[1], 1.0, &[cpu(0), cpu(1)]);
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.0, 0.0), TrainerOptions::new()).unwrap();
    let e = t.allreduce_grads().unwrap_err();
    assert!(e.to_string().contains("update_on_kvstore(false)"), "{e}");
    assert!(t.update(1, true).is_err());
}

#[test]
fn rescale_grad_is_divided_by_the_batch_size() {
    // spec §7.4 (d): rescale_grad 0.5, step(4) → rescale 0.125, w 1 → 0.875.
    let p = param("w", &[1], 1.0, &[cpu(0)]);
    let opt = optimizer::create(
        "sgd",
        &OptimizerOptions::new()
            .set("learning_rate", 1.0)
            .set("rescale_grad", 0.5),
    )
    .unwrap();
    let mut t = Trainer::new(vec![p.clone()], opt, TrainerOptions::new()).unwrap();
    backward_with(&p, cpu(0), &[1.0]);
    t.step(4).unwrap();
    assert_eq!(values(&p, cpu(0)), vec![0.875]);
    assert_eq!(t.optimizer().params().rescale_grad, 0.125);
    assert!(matches!(t.step(0), Err(Error::InvalidArgument { .. })));
}

#[test]
fn without_a_kvstore_copies_follow_their_own_gradients() {
    // spec §7.4 step 3 / quirk 12: grads 1 and 3 → weights 0 and -2.
    let p = param("w", &[1], 1.0, &[cpu(0), cpu(1)]);
    let opts = TrainerOptions::new().kvstore(KVStoreKind::None);
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.0, 0.0), opts).unwrap();
    backward_with(&p, cpu(0), &[1.0]);
    backward_with(&p, cpu(1), &[3.0]);
    t.step(1).unwrap();
    assert_eq!(values(&p, cpu(0)), vec![0.0]);
    assert_eq!(values(&p, cpu(1)), vec![-2.0]);
}

#[test]
fn the_first_step_broadcasts_the_first_copy() {
    // quirk 13: the first context's value overwrites the other copies.
    let p = param("w", &[2], 1.0, &[cpu(0), cpu(1)]);
    p.data(cpu(1)).unwrap().fill(7.0).unwrap();
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.0, 0.0), TrainerOptions::new()).unwrap();
    backward_with(&p, cpu(0), &[0.0, 0.0]);
    backward_with(&p, cpu(1), &[0.0, 0.0]);
    t.step(1).unwrap();
    assert_eq!(values(&p, cpu(1)), vec![1.0, 1.0]);
}

#[test]
fn stale_gradients_are_an_error_naming_them_unless_ignored() {
    let a = param("a", &[1], 1.0, &[cpu(0)]);
    let b = param("b", &[1], 1.0, &[cpu(0)]);
    let mut t = Trainer::new(
        vec![a.clone(), b.clone()],
        sgd(1.0, 0.0, 0.0),
        TrainerOptions::new(),
    )
    .unwrap();
    // No backward at all: both are stale, nothing changes.
    match t.step(1) {
        Err(Error::StaleGradient { stale }) => {
            let names: Vec<&str> = stale.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, vec!["a", "b"]);
        }
        other => panic!("expected StaleGradient, got {other:?}"),
    }
    backward_with(&a, cpu(0), &[1.0]);
    let e = t.step(1).unwrap_err();
    assert!(
        e.to_string().contains("'b'") && !e.to_string().contains("'a'"),
        "{e}"
    );
    assert_eq!(
        values(&a, cpu(0)),
        vec![1.0],
        "nothing is updated when the check fails"
    );
    t.step_with(1, true).unwrap();
    assert_eq!(values(&a, cpu(0)), vec![0.0]);
    assert_eq!(values(&b, cpu(0)), vec![1.0]);
    // The fresh flag was consumed: a second step without backward is stale again.
    assert!(matches!(t.step(1), Err(Error::StaleGradient { .. })));
}

#[test]
fn stale_check_runs_on_every_step_with_several_contexts() {
    // MXNet only checks at the first fused step (quirk 11); we check every step.
    let p = param("w", &[1], 1.0, &[cpu(0), cpu(1)]);
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.0, 0.0), TrainerOptions::new()).unwrap();
    backward_with(&p, cpu(0), &[1.0]);
    backward_with(&p, cpu(1), &[1.0]);
    t.step(1).unwrap();
    backward_with(&p, cpu(0), &[1.0]);
    match t.step(1) {
        Err(Error::StaleGradient { stale }) => assert_eq!(stale, vec![("w".to_string(), cpu(1))]),
        other => panic!("expected StaleGradient, got {other:?}"),
    }
}

#[test]
fn grad_req_add_is_stepped_and_not_zeroed() {
    // spec §7.4: two backwards, step → w = 1 - 2 = -1, grad stays 2.
    let p = Parameter::new("w")
        .with_shape([1])
        .with_grad_req(GradReq::Add);
    p.initialize(cpu(0)).unwrap();
    p.set_data(&nd::ones(&[1], None).unwrap()).unwrap();
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.0, 0.0), TrainerOptions::new()).unwrap();
    backward_with(&p, cpu(0), &[1.0]);
    backward_with(&p, cpu(0), &[1.0]);
    t.step(1).unwrap();
    assert_eq!(values(&p, cpu(0)), vec![-1.0]);
    assert_eq!(p.grad(cpu(0)).unwrap().to_vec::<f32>().unwrap(), vec![2.0]);
}

#[test]
fn null_grad_req_parameters_are_skipped() {
    let frozen = param("frozen", &[1], 1.0, &[cpu(0)]);
    frozen.set_grad_req(GradReq::Null).unwrap();
    let mut t = Trainer::new(
        vec![frozen.clone()],
        sgd(1.0, 0.0, 0.0),
        TrainerOptions::new(),
    )
    .unwrap();
    t.step(1).unwrap(); // only null parameters: steps silently
    assert_eq!(values(&frozen, cpu(0)), vec![1.0]);
}

#[test]
fn multiplier_changes_after_creation_take_effect() {
    let p = param("w", &[1], 1.0, &[cpu(0)]);
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.0, 0.0), TrainerOptions::new()).unwrap();
    p.set_lr_mult(0.0);
    backward_with(&p, cpu(0), &[1.0]);
    t.step(1).unwrap();
    assert_eq!(values(&p, cpu(0)), vec![1.0]);
    p.set_lr_mult(2.0);
    backward_with(&p, cpu(0), &[1.0]);
    t.step(1).unwrap();
    assert_eq!(values(&p, cpu(0)), vec![-1.0]);
}

#[test]
fn weight_decay_applies_to_biases() {
    // spec §6: bias 1 → 0.5 with lr 1, wd 0.5, zero gradient.
    let b = param("fc_bias", &[1], 1.0, &[cpu(0)]);
    let mut t = Trainer::new(vec![b.clone()], sgd(1.0, 0.5, 0.0), TrainerOptions::new()).unwrap();
    backward_with(&b, cpu(0), &[0.0]);
    t.step(1).unwrap();
    assert_eq!(values(&b, cpu(0)), vec![0.5]);
}

#[test]
fn dict_parameters_are_indexed_in_sorted_name_order() {
    let d = ParameterDict::new("");
    d.insert(param("zeros_weight", &[1], 0.0, &[cpu(0)]))
        .unwrap();
    d.insert(param("ones_weight", &[1], 1.0, &[cpu(0)]))
        .unwrap();
    let t = Trainer::new(&d, sgd(0.1, 0.0, 0.0), TrainerOptions::new()).unwrap();
    assert_eq!(t.param_index("ones_weight"), Some(0));
    assert_eq!(t.param_index("zeros_weight"), Some(1));
    let names: Vec<&str> = t.params().iter().map(|p| p.name()).collect();
    assert_eq!(names, vec!["ones_weight", "zeros_weight"]);
}

#[test]
fn parameters_must_share_contexts_and_be_initialized() {
    let a = param("a", &[1], 1.0, &[cpu(0), cpu(1)]);
    let b = param("b", &[1], 1.0, &[cpu(1), cpu(0)]);
    match Trainer::new(
        vec![a.clone(), b],
        sgd(0.1, 0.0, 0.0),
        TrainerOptions::new(),
    ) {
        Err(Error::TrainerContextMismatch {
            name,
            found,
            expected,
        }) => {
            assert_eq!(name, "b");
            assert_eq!(found, vec![cpu(1), cpu(0)]);
            assert_eq!(expected, vec![cpu(0), cpu(1)]);
        }
        other => panic!("expected TrainerContextMismatch, got {other:?}"),
    }
    let u = Parameter::new("u").with_shape([1]);
    assert!(matches!(
        Trainer::new(vec![u], sgd(0.1, 0.0, 0.0), TrainerOptions::new()),
        Err(Error::ParameterNotInitialized { .. })
    ));
    let dup = Trainer::new(
        vec![a.clone(), a],
        sgd(0.1, 0.0, 0.0),
        TrainerOptions::new(),
    );
    assert!(matches!(dup, Err(Error::DuplicateParameter { .. })));
}

#[test]
fn deferred_parameters_are_accepted_and_broadcast_once_initialized() {
    let p = Parameter::new("w")
        .with_shape([0, 2])
        .with_allow_deferred_init(true);
    p.initialize(vec![cpu(0), cpu(1)]).unwrap();
    let mut t = Trainer::new(vec![p.clone()], sgd(1.0, 0.0, 0.0), TrainerOptions::new()).unwrap();
    assert!(matches!(
        t.step(1),
        Err(Error::DeferredInitialization { .. })
    ));
    p.set_shape(&[1, 2]).unwrap();
    p.finish_deferred_init().unwrap();
    p.data(cpu(1)).unwrap().fill(5.0).unwrap();
    backward_with(&p, cpu(0), &[1.0, 1.0]);
    backward_with(&p, cpu(1), &[1.0, 1.0]);
    t.step(1).unwrap();
    assert_eq!(values(&p, cpu(0)), values(&p, cpu(1)));
}

#[test]
fn learning_rate_get_and_set() {
    let p = param("w", &[1], 1.0, &[cpu(0)]);
    let mut t = Trainer::new(vec![p], sgd(0.1, 0.0, 0.0), TrainerOptions::new()).unwrap();
    assert_eq!(t.learning_rate(), 0.1);
    t.set_learning_rate(0.5).unwrap();
    assert_eq!(t.learning_rate(), 0.5);
}

#[test]
fn optimizer_by_name_and_errors() {
    let p = param("w", &[1], 1.0, &[cpu(0)]);
    let t = Trainer::new(
        vec![p.clone()],
        ("adam", OptimizerOptions::new().set("learning_rate", 0.01)),
        TrainerOptions::new(),
    )
    .unwrap();
    assert_eq!(t.optimizer().name(), "adam");
    assert!(matches!(
        Trainer::new(vec![p], "no_such_optimizer", TrainerOptions::new()),
        Err(Error::UnknownOptimizer { .. })
    ));
}

#[test]
fn save_and_load_states_round_trip() {
    let dir = tempdir();
    let file = dir.join("trainer.states");
    let p = param("w", &[3], 1.0, &[cpu(0)]);
    let mut t = Trainer::new(vec![p.clone()], sgd(0.1, 0.0, 0.9), TrainerOptions::new()).unwrap();
    backward_with(&p, cpu(0), &[1.0, 2.0, 3.0]);
    t.step(1).unwrap();
    t.save_states(&file).unwrap();

    // A second trainer with another learning rate takes the saved optimizer and momentum.
    let q = param("w", &[3], 1.0, &[cpu(0)]);
    q.set_data(&p.data(cpu(0)).unwrap()).unwrap();
    let mut u = Trainer::new(vec![q.clone()], sgd(0.5, 0.0, 0.9), TrainerOptions::new()).unwrap();
    u.load_states(&file).unwrap();
    assert_eq!(u.learning_rate(), 0.1);
    for tr in [(&mut t, &p), (&mut u, &q)] {
        backward_with(tr.1, cpu(0), &[1.0, 1.0, 1.0]);
        tr.0.step(1).unwrap();
    }
    assert_eq!(values(&p, cpu(0)), values(&q, cpu(0)));

    // The file is an ordinary NDArray dict.
    let loaded = nd::load(&file).unwrap().into_arrays();
    let names: Vec<String> = match &loaded {
        mxgluon::io::ArrayList::Dict(d) => d.iter().map(|(k, _)| k.clone()).collect(),
        _ => panic!("expected a dict"),
    };
    assert_eq!(
        names,
        vec!["__optimizer__".to_string(), "0:momentum".to_string()]
    );

    std::fs::write(&file, b"garbage").unwrap();
    assert!(u.load_states(&file).is_err());
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mxgluon-trainer-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_scheduler_owns_the_learning_rate_and_travels_with_the_states() {
    use mxgluon::optimizer::{FactorScheduler, Sgd};
    let p = param("w", &[1], 1.0, &[cpu(0)]);
    let opt = Sgd::new(1.0).lr_scheduler(Box::new(FactorScheduler::new(1, 0.5).unwrap()));
    let mut t = Trainer::new(vec![p.clone()], opt, TrainerOptions::new()).unwrap();
    assert!(matches!(
        t.set_learning_rate(0.1),
        Err(Error::InvalidOptimizerOption { .. })
    ));
    let mut lrs = Vec::new();
    for _ in 0..3 {
        backward_with(&p, cpu(0), &[1.0]);
        let before = values(&p, cpu(0))[0];
        t.step(1).unwrap();
        lrs.push(before - values(&p, cpu(0))[0]);
    }
    // MXNet's FactorScheduler(step 1, factor 0.5): the rate halves after each update.
    assert_eq!(lrs, vec![1.0, 0.5, 0.25]);

    let dir = tempdir();
    let file = dir.join("sched.states");
    t.save_states(&file).unwrap();
    let q = param("w", &[1], 0.0, &[cpu(0)]);
    let mut u = Trainer::new(vec![q.clone()], sgd(1.0, 0.0, 0.0), TrainerOptions::new()).unwrap();
    u.load_states(&file).unwrap();
    backward_with(&q, cpu(0), &[1.0]);
    u.step(1).unwrap();
    assert_eq!(
        values(&q, cpu(0)),
        vec![-0.125],
        "the schedule continues where it was saved"
    );
}

#[test]
fn half_precision_parameters_train_through_float32_master_weights() {
    use mxgluon::DType;
    for multi_precision in [false, true] {
        let p = Parameter::new("w")
            .with_shape([4])
            .with_dtype(DType::Float16);
        p.initialize(cpu(0)).unwrap();
        p.set_data(&nd::full(&[4], 1.0, None).unwrap()).unwrap();
        let opt = optimizer::create(
            "sgd",
            &OptimizerOptions::new()
                .set("learning_rate", 1e-4)
                .set_bool("multi_precision", multi_precision),
        )
        .unwrap();
        let mut t = Trainer::new(vec![p.clone()], opt, TrainerOptions::new()).unwrap();
        for _ in 0..10 {
            backward_with(&p, cpu(0), &[1.0; 4]);
            t.step(1).unwrap();
        }
        let w = p.data(cpu(0)).unwrap().to_f64_vec()[0];
        if multi_precision {
            // 1 - 10 * 1e-4 = 0.999, rounded once to float16 (spacing 2^-11 below 1).
            assert!((w - 0.999).abs() < 5e-4, "{w}");
        } else {
            // Each 1e-4 step is below half of float16's spacing at 1 and rounds away.
            assert_eq!(w, 1.0);
        }
    }
}

#[test]
fn four_contexts_reduce_large_parameters_in_parallel_blocks() {
    // Above the parallel threshold: every block of every copy gets the same update.
    let ctxs = [cpu(0), cpu(1), cpu(2), cpu(3)];
    let n = 300_001;
    let p = param("big", &[n], 0.5, &ctxs);
    let mut t = Trainer::new(vec![p.clone()], sgd(0.1, 0.0, 0.9), TrainerOptions::new()).unwrap();
    for (i, &c) in ctxs.iter().enumerate() {
        let g: Vec<f32> = (0..n)
            .map(|j| ((j % 7) as f32) * (i as f32 + 1.0))
            .collect();
        backward_with(&p, c, &g);
    }
    t.step(1).unwrap();
    let w0 = values(&p, cpu(0));
    for &c in &ctxs[1..] {
        assert_eq!(values(&p, c), w0);
    }
    for (j, w) in w0.iter().enumerate().step_by(9973) {
        let g = ((j % 7) as f32) * 10.0; // summed over contexts 1 + 2 + 3 + 4
        assert!((w - (0.5 - 0.1 * g)).abs() < 1e-5, "{j}: {w}");
    }
}
