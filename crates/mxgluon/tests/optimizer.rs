//! Optimizers: the update kernels of every optimizer, the interplay of rescaling, clipping
//! and weight decay, update counting, `update_array` over dtypes (float16 with and without
//! multi-precision master weights), and creation by name.

use mxgluon::optimizer::{
    self, config_json, create, create_from_json, update_array, AdaDelta, AdaGrad, Adam, AdamW,
    Adamax, FactorScheduler, Ftrl, Lamb, Lars, Nadam, Nag, OptState, Optimizer, OptimizerOptions,
    RmsProp, Sgd, Signum, StepArgs,
};
use mxgluon::{f16, Context, DType, Error, NDArray};

fn cpu() -> Context {
    Context::cpu(0)
}

fn args(lr: f64, wd: f64, rescale: f64, clip: Option<f64>, t: u64) -> StepArgs {
    StepArgs {
        lr,
        wd,
        rescale_grad: rescale,
        clip_gradient: clip,
        t,
        num_update: t,
    }
}

/// Deterministic test values `sin(0.37·i + phase)·scale`.
fn det(n: usize, phase: f64, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|i| (0.37 * i as f64 + phase).sin() * scale)
        .collect()
}

/// One optimizer of every kind, with non-default options that exercise every branch.
fn all_optimizers() -> Vec<Box<dyn Optimizer>> {
    vec![
        Box::new(Sgd::new(0.1)),
        Box::new(Sgd::new(0.1).momentum(0.9).wd(0.01).clip_gradient(0.5)),
        Box::new(Nag::new(0.1).momentum(0.9).wd(0.01)),
        Box::new(Signum::new(0.01).wd_lh(0.01)),
        Box::new(Signum::new(0.01).momentum(0.0)),
        Box::new(Adam::new(0.01).wd(0.01).clip_gradient(1.0)),
        Box::new(AdamW::new(0.01).wd(0.01)),
        Box::new(Adamax::new(0.01)),
        Box::new(Nadam::new(0.01).clip_gradient(1.0)),
        Box::new(AdaGrad::new(0.1)),
        Box::new(RmsProp::new(0.01)),
        Box::new(RmsProp::new(0.01).centered(true).clip_weights(2.0)),
        Box::new(AdaDelta::new().wd(0.01)),
        Box::new(Ftrl::new(0.1)),
        Box::new(Lamb::new(0.01).wd(0.01).upper_bound(3.0)),
        Box::new(Lars::new(0.1).momentum(0.9).wd(0.01)),
    ]
}

/// Runs `steps` kernel steps in f64 on whole arrays; returns weight and states.
fn run_f64(opt: &dyn Optimizer, n: usize, steps: u64) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut w = det(n, 0.3, 1.0);
    let mut states = vec![vec![0.0f64; n]; opt.state_names().len()];
    for t in 1..=steps {
        let g = det(n, 0.7 * t as f64, 2.0);
        let mut refs: Vec<&mut [f64]> = states.iter_mut().map(|s| s.as_mut_slice()).collect();
        opt.step_f64(&args(0.05, 0.01, 0.8, Some(1.5), t), &mut w, &g, &mut refs);
    }
    (w, states)
}

#[test]
fn state_names_and_elementwise() {
    let names = |o: &dyn Optimizer| o.state_names();
    assert!(names(&Sgd::default()).is_empty());
    assert_eq!(names(&Sgd::default().momentum(0.5)), ["momentum"]);
    assert_eq!(names(&Nag::default().momentum(0.5)), ["momentum"]);
    assert_eq!(names(&Signum::default()), ["momentum"]);
    assert!(names(&Signum::default().momentum(0.0)).is_empty());
    assert_eq!(names(&Adam::default()), ["mean", "var"]);
    assert_eq!(names(&AdamW::default()), ["mean", "var"]);
    assert_eq!(names(&Adamax::default()), ["mean", "u"]);
    assert_eq!(names(&Nadam::default()), ["mean", "var"]);
    assert_eq!(names(&AdaGrad::default()), ["history"]);
    assert_eq!(names(&RmsProp::default()), ["n"]);
    assert_eq!(
        names(&RmsProp::default().centered(true)),
        ["n", "g", "delta"]
    );
    assert_eq!(names(&AdaDelta::default()), ["acc_g", "acc_delta"]);
    assert_eq!(names(&Ftrl::default()), ["z", "n"]);
    assert_eq!(names(&Lamb::default()), ["mean", "var"]);
    assert!(names(&Lars::default()).is_empty());
    for o in all_optimizers() {
        let layerwise = matches!(o.name(), "lamb" | "lars");
        assert_eq!(o.elementwise(), !layerwise, "{}", o.name());
    }
}

#[test]
fn f32_kernels_follow_f64_kernels() {
    let n = 37;
    for opt in all_optimizers() {
        let (w64, s64) = run_f64(opt.as_ref(), n, 6);
        let mut w: Vec<f32> = det(n, 0.3, 1.0).iter().map(|x| *x as f32).collect();
        let mut states = vec![vec![0.0f32; n]; opt.state_names().len()];
        for t in 1..=6 {
            let g: Vec<f32> = det(n, 0.7 * t as f64, 2.0)
                .iter()
                .map(|x| *x as f32)
                .collect();
            let mut refs: Vec<&mut [f32]> = states.iter_mut().map(|s| s.as_mut_slice()).collect();
            opt.step_f32(&args(0.05, 0.01, 0.8, Some(1.5), t), &mut w, &g, &mut refs);
        }
        // Signum takes signs, so compare only where the f64 momentum is not tiny.
        for (i, (a, b)) in w.iter().zip(&w64).enumerate() {
            assert!(
                (*a as f64 - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{}: element {i}: f32 {a} vs f64 {b}",
                opt.name()
            );
        }
        for (sa, sb) in states.iter().zip(&s64) {
            for (a, b) in sa.iter().zip(sb) {
                assert!(
                    (*a as f64 - b).abs() <= 1e-4 * b.abs().max(1e-2),
                    "{}: state {a} vs {b}",
                    opt.name()
                );
            }
        }
    }
}

#[test]
fn elementwise_kernels_can_run_on_sub_ranges() {
    // The Trainer splits large arrays across threads: two halves must give the whole.
    let n = 50;
    for opt in all_optimizers().into_iter().filter(|o| o.elementwise()) {
        let (whole_w, whole_s) = run_f64(opt.as_ref(), n, 4);
        let mut w = det(n, 0.3, 1.0);
        let mut states = vec![vec![0.0f64; n]; opt.state_names().len()];
        for t in 1..=4 {
            let g = det(n, 0.7 * t as f64, 2.0);
            let a = args(0.05, 0.01, 0.8, Some(1.5), t);
            let (w1, w2) = w.split_at_mut(23);
            let mut lo: Vec<&mut [f64]> = Vec::new();
            let mut hi: Vec<&mut [f64]> = Vec::new();
            for s in states.iter_mut() {
                let (x, y) = s.split_at_mut(23);
                lo.push(x);
                hi.push(y);
            }
            opt.step_f64(&a, w2, &g[23..], &mut hi);
            opt.step_f64(&a, w1, &g[..23], &mut lo);
        }
        assert_eq!(w, whole_w, "{}", opt.name());
        assert_eq!(states, whole_s, "{}", opt.name());
    }
}

#[test]
fn spec_rescale_then_clip_then_weight_decay() {
    // spec §6 (verified on MXNet): grad 10, rescale 0.5, clip 0.5 → step 0.5 with lr 1.
    let opt = create(
        "sgd",
        &OptimizerOptions::new()
            .set("learning_rate", 1.0)
            .set("rescale_grad", 0.5)
            .set("clip_gradient", 0.5),
    )
    .unwrap();
    let mut opt = opt;
    let w = NDArray::from_slice(&[2.0f32], &[1], cpu()).unwrap();
    let g = NDArray::from_slice(&[10.0f32], &[1], cpu()).unwrap();
    let mut st = OptState::new(opt.as_ref(), &w).unwrap();
    let a = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
    update_array(opt.as_ref(), &a, &w, &g, &mut st).unwrap();
    assert_eq!(w.to_vec::<f32>().unwrap(), [1.5]);

    // spec §6: lr 1, wd 0.5, weight (or bias) 1, zero gradient → 0.5.
    let mut opt = create(
        "sgd",
        &OptimizerOptions::new()
            .set("learning_rate", 1.0)
            .set("wd", 0.5),
    )
    .unwrap();
    let b = NDArray::from_slice(&[1.0f32, 1.0], &[2], cpu()).unwrap();
    let z = NDArray::zeros(&[2], DType::Float32, cpu()).unwrap();
    let mut st = OptState::new(opt.as_ref(), &b).unwrap();
    let a = opt.params_mut().begin_step(3, 0, 1.0, 1.0);
    update_array(opt.as_ref(), &a, &b, &z, &mut st).unwrap();
    assert_eq!(b.to_vec::<f32>().unwrap(), [0.5, 0.5]);
}

#[test]
fn momentum_by_hand_through_update_array() {
    // lr 0.1, momentum 0.9, grad 1: mom −0.1, −0.19, −0.271; w 1 → 0.9 → 0.71 → 0.439.
    let mut opt = create(
        "sgd",
        &OptimizerOptions::parse("learning_rate=0.1,momentum=0.9").unwrap(),
    )
    .unwrap();
    let w = NDArray::from_slice(&[1.0f64], &[1], cpu()).unwrap();
    let g = NDArray::from_slice(&[1.0f64], &[1], cpu()).unwrap();
    let mut st = OptState::new(opt.as_ref(), &w).unwrap();
    assert_eq!(st.slots[0].dtype(), DType::Float64);
    let mut ws = Vec::new();
    for _ in 0..3 {
        let a = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
        update_array(opt.as_ref(), &a, &w, &g, &mut st).unwrap();
        ws.push(w.to_vec::<f64>().unwrap()[0]);
    }
    for (got, want) in ws.iter().zip([0.9, 0.71, 0.439]) {
        assert!((got - want).abs() < 1e-14, "{ws:?}");
    }
    assert!((st.slots[0].to_vec::<f64>().unwrap()[0] + 0.271).abs() < 1e-14);
}

#[test]
fn adam_couples_weight_decay_adamw_decouples_it() {
    // Zero gradient, weight 1, wd 0.1, lr 0.01: Adam's gradient is wd·w = 0.1, so the first
    // step is ≈ lr (normalized); AdamW's moments stay 0 and the step is η·wd·w.
    let w0 = 1.0f64;
    let (mut wa, mut ma, mut va) = ([w0], [0.0], [0.0]);
    Adam::new(0.01).step_f64(
        &args(0.01, 0.1, 1.0, None, 1),
        &mut wa,
        &[0.0],
        &mut [&mut ma, &mut va],
    );
    assert!((wa[0] - (w0 - 0.01)).abs() < 1e-6, "{wa:?}");
    let (mut ww, mut mw, mut vw) = ([w0], [0.0], [0.0]);
    AdamW::new(0.01).step_f64(
        &args(0.01, 0.1, 1.0, None, 1),
        &mut ww,
        &[0.0],
        &mut [&mut mw, &mut vw],
    );
    let eta = 0.01 * (1.0f64 - 0.999).sqrt() / (1.0 - 0.9);
    assert!((ww[0] - (w0 - eta * 0.1 * w0)).abs() < 1e-15);
    assert_eq!((mw[0], vw[0]), (0.0, 0.0));
}

#[test]
fn clipping_applies_after_rescaling_for_every_gradient_clipper() {
    // A huge gradient rescaled and clipped to ±c must update exactly like a gradient of c.
    for name in [
        "sgd", "nag", "adam", "adagrad", "rmsprop", "adamax", "nadam", "ftrl", "lamb",
    ] {
        let opts = OptimizerOptions::new()
            .set("clip_gradient", 0.25)
            .set("rescale_grad", 0.5);
        let opt = create(name, &opts).unwrap();
        let run = |g: f64| {
            let mut w = vec![0.5f64, -0.5];
            let mut s = vec![vec![0.0f64; 2]; opt.state_names().len()];
            let mut refs: Vec<&mut [f64]> = s.iter_mut().map(|x| x.as_mut_slice()).collect();
            opt.step_f64(
                &args(0.1, 0.0, 0.5, Some(0.25), 1),
                &mut w,
                &[g, -g],
                &mut refs,
            );
            (w, s)
        };
        assert_eq!(run(1000.0), run(0.5), "{name}");
        assert_ne!(run(0.2), run(0.5), "{name}");
    }
}

#[test]
fn begin_step_counts_per_index_and_device_and_applies_mults() {
    let mut opt = Sgd::new(0.5).wd(0.2).begin_num_update(10);
    let p = opt.params_mut();
    let a = p.begin_step(0, 0, 2.0, 0.5);
    assert_eq!((a.t, a.num_update, a.lr, a.wd), (11, 11, 1.0, 0.1));
    let a = p.begin_step(0, 0, 1.0, 1.0);
    assert_eq!((a.t, a.num_update), (12, 12));
    // Another index and another device count separately; num_update is the maximum.
    let a = p.begin_step(1, 0, 1.0, 1.0);
    assert_eq!((a.t, a.num_update), (11, 12));
    let a = p.begin_step(0, 1, 1.0, 1.0);
    assert_eq!((a.t, a.num_update), (11, 12));
    assert_eq!(p.index_update_count[&(0, 0)], 12);
}

#[test]
fn scheduled_learning_rate_reaches_the_step() {
    let sched = FactorScheduler::new(2, 0.5)
        .unwrap()
        .with_base_lr(1.0)
        .unwrap();
    let mut opt = create(
        "sgd",
        &OptimizerOptions::new().lr_scheduler(Box::new(sched)),
    )
    .unwrap();
    let lrs: Vec<f64> = (0..5)
        .map(|_| opt.params_mut().begin_step(0, 0, 3.0, 1.0).lr)
        .collect();
    assert_eq!(lrs, [3.0, 3.0, 1.5, 1.5, 0.75]);
    let h = opt.params().lr_history;
    assert_eq!((h.current(), h.previous()), (Some(0.25), Some(0.5)));
}

#[test]
fn lars_momentum_correction_uses_the_previous_step_rate() {
    // Base lr 1 then 0.5 (factor schedule): at the second step the momentum is 0.9·0.5.
    let run = |correct: bool| {
        let sched = FactorScheduler::new(1, 0.5)
            .unwrap()
            .with_base_lr(1.0)
            .unwrap();
        let mut opt = Lars::new(1.0)
            .momentum(0.9)
            .eta(1.0)
            .momentum_correction(correct)
            .lr_scheduler(Box::new(sched));
        let (mut w, mut m) = ([1.0f64, 1.0], [0.0f64, 0.0]);
        let mut moms = Vec::new();
        for _ in 0..2 {
            let a = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
            opt.step_f64(&a, &mut w, &[1.0, 1.0], &mut [&mut m]);
            moms.push(m[0]);
        }
        moms
    };
    // Step 1: ‖w‖ = ‖g‖ and η = 1, so lr_l = lr = 1: mom = −1 and w becomes 0. Step 2:
    // ‖w‖ = 0, so lr_l = lr = 0.5: mom = μ·(−1) − 0.5 with μ = 0.9·(0.5/1) corrected.
    let with = run(true);
    let without = run(false);
    assert!((with[0] + 1.0).abs() < 1e-12 && (without[0] + 1.0).abs() < 1e-12);
    assert!((with[1] - (-0.45 - 0.5)).abs() < 1e-12, "{with:?}");
    assert!((without[1] - (-0.9 - 0.5)).abs() < 1e-12, "{without:?}");
}

#[test]
fn nadam_schedule_is_per_parameter() {
    // MXNet advances one shared product per update of any parameter; here parameter B's
    // first step is the same whether or not A was updated before.
    let mut opt = Nadam::new(0.01);
    let step = |opt: &mut Nadam, idx: usize, w: &mut [f64], m: &mut [f64], v: &mut [f64]| {
        let a = opt.params_mut().begin_step(idx, 0, 1.0, 1.0);
        opt.step_f64(&a, w, &[0.3], &mut [m, v]);
    };
    let (mut wa, mut ma, mut va) = ([1.0f64], [0.0], [0.0]);
    for _ in 0..3 {
        step(&mut opt, 0, &mut wa, &mut ma, &mut va);
    }
    let (mut wb, mut mb, mut vb) = ([1.0f64], [0.0], [0.0]);
    step(&mut opt, 1, &mut wb, &mut mb, &mut vb);
    let mut fresh = Nadam::new(0.01);
    let (mut wc, mut mc, mut vc) = ([1.0f64], [0.0], [0.0]);
    step(&mut fresh, 0, &mut wc, &mut mc, &mut vc);
    assert_eq!(wb, wc);
}

#[test]
fn update_array_float64_matches_the_kernel() {
    let mut opt = create("adam", &OptimizerOptions::new().set("learning_rate", 0.1)).unwrap();
    let w0 = det(6, 0.1, 1.0);
    let g = det(6, 0.9, 1.0);
    let w = NDArray::from_slice(&w0, &[2, 3], cpu()).unwrap();
    let ga = NDArray::from_slice(&g, &[2, 3], cpu()).unwrap();
    let mut st = OptState::new(opt.as_ref(), &w).unwrap();
    let a = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
    update_array(opt.as_ref(), &a, &w, &ga, &mut st).unwrap();
    let mut wk = w0.clone();
    let (mut m, mut v) = (vec![0.0; 6], vec![0.0; 6]);
    opt.step_f64(&a, &mut wk, &g, &mut [&mut m, &mut v]);
    assert_eq!(w.to_vec::<f64>().unwrap(), wk);
    assert_eq!(st.slots[1].to_vec::<f64>().unwrap(), v);
    // A float32 gradient for a float64 weight is converted.
    let g32 = ga.astype(DType::Float32).unwrap();
    let a = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
    update_array(opt.as_ref(), &a, &w, &g32, &mut st).unwrap();
}

#[test]
fn float16_multi_precision_keeps_small_updates() {
    // lr·g = 1e-4 is below half an f16 ulp at 1.0 (4.9e-4): without a master copy every
    // step rounds back to 1.0; with one the updates accumulate.
    let run = |mp: bool| {
        let mut opt = Sgd::new(1e-4).multi_precision(mp);
        let w = NDArray::from_slice(&[f16::from_f32(1.0); 4], &[4], cpu()).unwrap();
        let g = NDArray::from_slice(&[f16::from_f32(1.0); 4], &[4], cpu()).unwrap();
        let mut st = OptState::new(&opt, &w).unwrap();
        assert_eq!(st.master.is_some(), mp);
        for _ in 0..20 {
            let a = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
            update_array(&opt, &a, &w, &g, &mut st).unwrap();
        }
        assert_eq!(w.dtype(), DType::Float16);
        (w.to_f64_vec()[0], st.master.map(|m| m.to_f64_vec()[0]))
    };
    assert_eq!(run(false), (1.0, None));
    let (w, master) = run(true);
    let master = master.unwrap();
    assert!((master - (1.0 - 20.0 * 1e-4)).abs() < 1e-6, "{master}");
    assert_eq!(w, f16::from_f64(master).to_f64());
    assert!(w < 1.0);
}

#[test]
fn float16_states_are_float32() {
    let opt = Adam::new(0.1).multi_precision(true);
    let w = NDArray::zeros(&[3], DType::Float16, cpu()).unwrap();
    let st = OptState::new(&opt, &w).unwrap();
    assert!(st.slots.iter().all(|s| s.dtype() == DType::Float32));
    assert_eq!(st.master.as_ref().unwrap().dtype(), DType::Float32);
}

#[test]
fn update_array_rejects_bad_input() {
    let opt = Adam::new(0.1);
    let a = args(0.1, 0.0, 1.0, None, 1);
    let w = NDArray::zeros(&[3], DType::Float32, cpu()).unwrap();
    let mut st = OptState::new(&opt, &w).unwrap();
    let g2 = NDArray::zeros(&[2], DType::Float32, cpu()).unwrap();
    assert!(matches!(
        update_array(&opt, &a, &w, &g2, &mut st),
        Err(Error::ShapeMismatch { .. })
    ));
    // State for another optimizer (SGD without momentum has no slots).
    let mut sgd_state = OptState::new(&Sgd::default(), &w).unwrap();
    let g = NDArray::zeros(&[3], DType::Float32, cpu()).unwrap();
    assert!(matches!(
        update_array(&opt, &a, &w, &g, &mut sgd_state),
        Err(Error::InvalidArgument { .. })
    ));
    // State of another dtype.
    let w64 = NDArray::zeros(&[3], DType::Float64, cpu()).unwrap();
    assert!(update_array(&opt, &a, &w64, &g, &mut st).is_err());
    // Integer weights have no optimizer state.
    let wi = NDArray::zeros(&[3], DType::Int32, cpu()).unwrap();
    assert!(matches!(
        OptState::new(&opt, &wi),
        Err(Error::UnsupportedDType { .. })
    ));
}

#[test]
fn gradient_aliasing_the_weight_is_copied_not_deadlocked() {
    let mut opt = Sgd::new(0.5);
    let w = NDArray::from_slice(&[2.0f32, 4.0], &[2], cpu()).unwrap();
    let mut st = OptState::new(&opt, &w).unwrap();
    let a = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
    update_array(&opt, &a, &w, &w.clone(), &mut st).unwrap();
    assert_eq!(w.to_vec::<f32>().unwrap(), [1.0, 2.0]);
}

#[test]
fn create_by_name_and_errors() {
    assert_eq!(optimizer::registered().len(), 13);
    for name in optimizer::registered() {
        let opt = create(name, &OptimizerOptions::new()).unwrap();
        assert_eq!(opt.name(), name);
        assert_eq!(
            create(&name.to_uppercase(), &OptimizerOptions::new())
                .unwrap()
                .name(),
            name
        );
    }
    match create("ftml", &OptimizerOptions::new()) {
        Err(Error::UnknownOptimizer { name, known }) => {
            assert_eq!(name, "ftml");
            assert!(known.iter().any(|k| k == "sgd"));
        }
        other => panic!("{other:?}"),
    }
    let e = create("adam", &OptimizerOptions::new().set("momentum", 0.9)).unwrap_err();
    match &e {
        Error::InvalidOptimizerOption {
            optimizer,
            option,
            reason,
        } => {
            assert_eq!((optimizer.as_str(), option.as_str()), ("adam", "momentum"));
            assert!(reason.contains("beta1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    for (name, opts) in [
        (
            "rmsprop",
            OptimizerOptions::new().set_str("centered", "sometimes"),
        ),
        ("sgd", OptimizerOptions::new().set_bool("momentum", true)),
        (
            "sgd",
            OptimizerOptions::new().set("learning_rate", f64::NAN),
        ),
        ("sgd", OptimizerOptions::new().set("begin_num_update", -1.0)),
        (
            "lamb",
            OptimizerOptions::new().set_str("lower_bound", "low"),
        ),
    ] {
        assert!(
            matches!(
                create(name, &opts),
                Err(Error::InvalidOptimizerOption { .. })
            ),
            "{name} {opts:?}"
        );
    }
    // Typed values as text, None for optional options.
    let opt = create(
        "lamb",
        &OptimizerOptions::parse("lower_bound=None,upper_bound=5,bias_correction=0,wd=1e-4")
            .unwrap(),
    )
    .unwrap();
    let h = opt.hyper_json();
    assert!(h["lower_bound"].is_null());
    assert_eq!(h["upper_bound"], 5.0);
    assert_eq!(h["bias_correction"], false);
    assert_eq!(opt.params().wd, 1e-4);
}

#[test]
fn hyper_json_uses_create_names_and_rebuilds() {
    for opt in all_optimizers() {
        let json = config_json(opt.as_ref());
        let back = create_from_json(opt.name(), &json).unwrap();
        assert_eq!(config_json(back.as_ref()), json, "{}", opt.name());
        assert_eq!(back.state_names(), opt.state_names());
        // Same kernel behaviour.
        assert_eq!(run_f64(back.as_ref(), 9, 3), run_f64(opt.as_ref(), 9, 3));
    }
}

#[test]
fn rebuilt_optimizer_keeps_schedule_progress() {
    let sched = FactorScheduler::new(1, 0.5)
        .unwrap()
        .with_base_lr(1.0)
        .unwrap();
    let mut opt = create(
        "adam",
        &OptimizerOptions::new()
            .set("learning_rate", 0.8)
            .lr_scheduler(Box::new(sched)),
    )
    .unwrap();
    for _ in 0..3 {
        opt.params_mut().begin_step(0, 0, 1.0, 1.0);
    }
    let mut back = create_from_json("adam", &config_json(opt.as_ref())).unwrap();
    back.params_mut().num_update = opt.params().num_update;
    back.params_mut().index_update_count = opt.params().index_update_count.clone();
    for _ in 0..2 {
        let a = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
        let b = back.params_mut().begin_step(0, 0, 1.0, 1.0);
        assert_eq!(a, b);
    }
    assert_eq!(back.params().learning_rate, 0.8);
}

#[test]
fn clone_box_is_independent() {
    let mut a: Box<dyn Optimizer> = Box::new(Sgd::new(0.1).momentum(0.9));
    let b = a.clone();
    a.params_mut().learning_rate = 0.5;
    a.params_mut().begin_step(0, 0, 1.0, 1.0);
    assert_eq!(b.params().learning_rate, 0.1);
    assert!(b.params().index_update_count.is_empty());
    assert_eq!(b.hyper_json()["momentum"], 0.9);
}
