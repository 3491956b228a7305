//! Learning-rate schedulers: MXNet 1.9.1's sequences worked by hand, warmup, validation,
//! the optimizer's base-rate overwrite, and saving / restoring progress.

use mxgluon::optimizer::{
    create, lr_scheduler, CosineScheduler, FactorScheduler, LrScheduler, MultiFactorScheduler,
    OptimizerOptions, PolyScheduler, Warmup, WarmupMode,
};
use mxgluon::Error;

fn seq(s: &mut dyn LrScheduler, range: std::ops::Range<u64>) -> Vec<f64> {
    range.map(|n| s.lr(n)).collect()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= 1e-12 * y.abs().max(1e-12),
            "{a:?} vs {b:?}"
        );
    }
}

#[test]
fn factor_steps_and_floor() {
    // base 1, step 3, factor 0.5, floor 0.2: changes after counts 3, 6, 9 (strictly above).
    let mut s = FactorScheduler::new(3, 0.5)
        .unwrap()
        .with_base_lr(1.0)
        .unwrap()
        .with_stop_factor_lr(0.2);
    close(
        &seq(&mut s, 0..12),
        &[
            1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2,
        ],
    );
    // Jumping ahead catches up in one call (MXNet's `while`).
    let mut s = FactorScheduler::new(3, 0.5)
        .unwrap()
        .with_base_lr(1.0)
        .unwrap();
    assert_eq!(s.lr(10), 0.125);
    // Default factor 1 never changes the rate.
    let mut s = FactorScheduler::new(1, 1.0).unwrap();
    assert!(seq(&mut s, 0..20).iter().all(|lr| *lr == 0.01));
}

#[test]
fn multifactor_steps() {
    let mut s = MultiFactorScheduler::new(&[2, 5], 0.1)
        .unwrap()
        .with_base_lr(1.0)
        .unwrap();
    close(
        &seq(&mut s, 0..8),
        &[1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01],
    );
}

#[test]
fn poly_and_cosine_by_hand() {
    let mut p = PolyScheduler::new(10)
        .unwrap()
        .with_base_lr(1.0)
        .unwrap()
        .with_pwr(1.0)
        .with_final_lr(0.1);
    let want: Vec<f64> = (0..=12)
        .map(|n: u64| 0.1 + 0.9 * (1.0 - n.min(10) as f64 / 10.0))
        .collect();
    close(&seq(&mut p, 0..13), &want);
    let mut c = CosineScheduler::new(4).unwrap().with_base_lr(2.0).unwrap();
    let want: Vec<f64> = (0..=4)
        .map(|n| 2.0 * (1.0 + (std::f64::consts::PI * n as f64 / 4.0).cos()) / 2.0)
        .collect();
    close(&seq(&mut c, 0..5), &want);
    assert_eq!(c.lr(100), c.lr(4));
}

#[test]
fn warmup_linear_and_constant() {
    // Linear: begin 0.1 → base 1 over 4 counts, then the decay counts from the warmup end.
    let mut s = PolyScheduler::new(8)
        .unwrap()
        .with_base_lr(1.0)
        .unwrap()
        .with_pwr(1.0)
        .with_warmup(Warmup::linear(4, 0.1))
        .unwrap();
    close(
        &seq(&mut s, 0..9),
        &[0.1, 0.325, 0.55, 0.775, 1.0, 0.75, 0.5, 0.25, 0.0],
    );
    let mut s = CosineScheduler::new(6)
        .unwrap()
        .with_base_lr(1.0)
        .unwrap()
        .with_warmup(Warmup::constant(2, 0.3))
        .unwrap();
    assert_eq!(seq(&mut s, 0..3), [0.3, 0.3, 1.0]);
    assert_eq!(WarmupMode::parse("constant").unwrap(), WarmupMode::Constant);
    assert_eq!(WarmupMode::Linear.as_str(), "linear");
}

#[test]
fn validation_errors_name_the_option() {
    let option = |e: Error| match e {
        Error::InvalidOptimizerOption { option, .. } => option,
        other => panic!("{other:?}"),
    };
    assert_eq!(option(FactorScheduler::new(0, 0.5).unwrap_err()), "step");
    assert_eq!(option(FactorScheduler::new(2, 1.01).unwrap_err()), "factor");
    assert_eq!(
        option(MultiFactorScheduler::new(&[4, 2], 0.5).unwrap_err()),
        "step"
    );
    assert_eq!(option(PolyScheduler::new(0).unwrap_err()), "max_update");
    assert_eq!(option(CosineScheduler::new(0).unwrap_err()), "max_update");
    assert_eq!(
        option(
            CosineScheduler::new(5)
                .unwrap()
                .with_warmup(Warmup::linear(2, 0.5))
                .unwrap_err()
        ),
        "warmup_begin_lr"
    );
    assert_eq!(option(WarmupMode::parse("exp").unwrap_err()), "warmup_mode");
    // A warmup that is valid for the final base rate: set the base rate first.
    assert!(CosineScheduler::new(5)
        .unwrap()
        .with_base_lr(1.0)
        .unwrap()
        .with_warmup(Warmup::linear(2, 0.5))
        .is_ok());
}

#[test]
fn optimizer_overwrites_base_lr_like_mxnet() {
    let sched = || {
        Box::new(
            FactorScheduler::new(2, 0.5)
                .unwrap()
                .with_base_lr(1.0)
                .unwrap(),
        )
    };
    // SGD: no learning_rate → the schedule's own rate.
    let mut sgd = create("sgd", &OptimizerOptions::new().lr_scheduler(sched())).unwrap();
    assert_eq!(sgd.params().learning_rate, 1.0);
    assert_eq!(sgd.params_mut().current_lr(), 1.0);
    // SGD with learning_rate, and Adam (default 0.001 always passed on): overwritten.
    let sgd = create(
        "sgd",
        &OptimizerOptions::new()
            .set("learning_rate", 0.3)
            .lr_scheduler(sched()),
    )
    .unwrap();
    assert_eq!(sgd.params().lr_scheduler.as_ref().unwrap().base_lr(), 0.3);
    let adam = create("adam", &OptimizerOptions::new().lr_scheduler(sched())).unwrap();
    assert_eq!(
        adam.params().lr_scheduler.as_ref().unwrap().base_lr(),
        0.001
    );
    // The overwrite moves base_lr only: a poly schedule keeps decaying from its own rate.
    let poly = PolyScheduler::new(4).unwrap().with_base_lr(1.0).unwrap();
    let mut opt = create(
        "sgd",
        &OptimizerOptions::new()
            .set("learning_rate", 0.5)
            .lr_scheduler(Box::new(poly)),
    )
    .unwrap();
    let lrs: Vec<f64> = (0..3)
        .map(|_| opt.params_mut().begin_step(0, 0, 1.0, 1.0).lr)
        .collect();
    close(&lrs, &[0.5625, 0.25, 0.0625]);
}

#[test]
fn clones_and_json_keep_progress() {
    let mut s: Box<dyn LrScheduler> = Box::new(
        MultiFactorScheduler::new(&[1, 2, 3], 0.5)
            .unwrap()
            .with_warmup(Warmup::linear(1, 0.0))
            .unwrap(),
    );
    s.lr(2);
    let mut c = s.clone();
    let mut j = lr_scheduler::from_json(&s.to_json().unwrap()).unwrap();
    let a = seq(s.as_mut(), 2..6);
    assert_eq!(seq(c.as_mut(), 2..6), a);
    assert_eq!(seq(j.as_mut(), 2..6), a);
    assert_eq!(a, [0.005, 0.0025, 0.00125, 0.00125]);
    // A damaged record is an error, not a panic.
    let mut bad = s.to_json().unwrap();
    bad["cur_step_ind"] = 9.into();
    assert!(lr_scheduler::from_json(&bad).is_err());
    bad["cur_step_ind"] = (-1).into();
    assert!(lr_scheduler::from_json(&bad).is_err());
}
