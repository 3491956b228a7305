//! Behaviour of `gluon::Parameter` (spec §1, dense storage; §5.6).
//!
//! Every test names its initializers explicitly (test-local `Fill`, `Counting`, `Failing`),
//! never relying on the global default.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mxgluon::gluon::{DTypeSource, InitOptions, ParamState};
use mxgluon::init::Initializer;

mod common;
use common::{warnings_of, Fill};
use mxgluon::{Context, DType, Error, GradReq, NDArray, Parameter, StorageType};

// ---------------------------------------------------------------------- helpers

/// Fills with 1, 2, 3, ... and records every call (name, context, dtype, shape).
/// One recorded call: parameter name, context, dtype and shape of the array filled.
type Call = (String, Context, DType, Vec<usize>);

#[derive(Debug, Default)]
struct CountState {
    calls: AtomicUsize,
    seen: Mutex<Vec<Call>>,
}
/// Clones share the counters.
#[derive(Debug, Default, Clone)]
struct Counting(Arc<CountState>);
impl std::ops::Deref for Counting {
    type Target = CountState;
    fn deref(&self) -> &CountState {
        &self.0
    }
}
impl Initializer for Counting {
    fn kind(&self) -> String {
        "counting".into()
    }
    fn kwargs(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
    fn init_weight(&self, name: &str, arr: &NDArray) -> mxgluon::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push((
            name.to_string(),
            arr.context(),
            arr.dtype(),
            arr.shape().to_vec(),
        ));
        for i in 0..arr.size() {
            let mut idx = vec![0; arr.ndim()];
            let mut rem = i;
            for (d, s) in idx.iter_mut().zip(arr.shape()).rev() {
                *d = rem % s;
                rem /= s;
            }
            arr.set_f64(&idx, (i + 1) as f64)?;
        }
        Ok(())
    }
}

/// Always fails.
#[derive(Debug)]
struct Failing;
impl Initializer for Failing {
    fn kind(&self) -> String {
        "failing".into()
    }
    fn kwargs(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
    fn init_weight(&self, name: &str, arr: &NDArray) -> mxgluon::Result<()> {
        Err(Error::InitializerFailed {
            init: "failing".into(),
            name: name.into(),
            shape: arr.shape().to_vec(),
            reason: "always fails".into(),
        })
    }
}

fn counting() -> Counting {
    Counting::default()
}

fn cpu(i: u32) -> Context {
    Context::cpu(i)
}

fn f32s(a: &NDArray) -> Vec<f32> {
    a.to_vec::<f32>().unwrap()
}

fn opts(ctx: impl Into<mxgluon::ContextList>) -> InitOptions {
    InitOptions::new().ctx(ctx).default_init(Fill(0.0))
}

fn initialized(name: &str, shape: &[usize], value: f64, ctx: &[Context]) -> Parameter {
    let p = Parameter::new(name).with_shape(shape);
    p.initialize_with(InitOptions::new().init(Fill(value)).ctx(ctx.to_vec()))
        .unwrap();
    p
}

// ---------------------------------------------------------------------- §1.1, §1.2

#[test]
fn constructor_defaults() {
    let p = Parameter::new("w");
    assert_eq!(p.name(), "w");
    assert_eq!(p.grad_req(), GradReq::Write);
    assert_eq!(p.dtype(), DType::Float32);
    assert_eq!(p.lr_mult(), 1.0);
    assert_eq!(p.wd_mult(), 1.0);
    assert_eq!(p.shape(), None);
    assert!(p.init().is_none());
    assert!(!p.allow_deferred_init());
    assert!(p.differentiable());
    assert_eq!(p.stype(), StorageType::Default);
    assert_eq!(p.grad_stype(), StorageType::Default);
    assert_eq!(p.state(), ParamState::Uninitialized);
}

#[test]
fn builders_store_their_values() {
    let p = Parameter::new("w")
        .with_shape([2, 3])
        .with_dtype(DType::Float64)
        .with_grad_req(GradReq::Add)
        .with_lr_mult(2.0)
        .with_wd_mult(0.5)
        .with_init(Fill(1.0))
        .with_allow_deferred_init(true)
        .with_stype(StorageType::RowSparse)
        .with_grad_stype(StorageType::RowSparse);
    assert_eq!(p.shape(), Some(vec![2, 3]));
    assert_eq!(p.dtype(), DType::Float64);
    assert_eq!(p.grad_req(), GradReq::Add);
    assert_eq!((p.lr_mult(), p.wd_mult()), (2.0, 0.5));
    assert!(p.init().is_some());
    assert!(p.allow_deferred_init());
    assert_eq!(p.stype(), StorageType::RowSparse);
    assert_eq!(p.grad_stype(), StorageType::RowSparse);
    p.set_init(None);
    assert!(p.init().is_none());
}

#[test]
fn display_shows_shape_and_dtype() {
    let p = Parameter::new("fc_weight").with_shape([64, 100]);
    assert_eq!(
        p.to_string(),
        "Parameter fc_weight (shape=(64, 100), dtype=float32)"
    );
    assert_eq!(
        Parameter::new("w").to_string(),
        "Parameter w (shape=None, dtype=float32)"
    );
    assert_eq!(
        Parameter::new("w")
            .with_shape([3])
            .with_dtype(DType::Float16)
            .to_string(),
        "Parameter w (shape=(3,), dtype=float16)"
    );
}

#[test]
fn parameter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Parameter>();
    assert_send_sync::<mxgluon::Constant>();
}

#[test]
fn clones_are_the_same_parameter() {
    let p = Parameter::new("w").with_shape([2]);
    let q = p.clone();
    q.set_lr_mult(3.0);
    q.set_wd_mult(0.25);
    assert_eq!(p.lr_mult(), 3.0);
    assert_eq!(p.wd_mult(), 0.25);
    assert!(p.ptr_eq(&q));
    assert!(!p.ptr_eq(&Parameter::new("w")));
    q.initialize_with(InitOptions::new().init(Fill(2.0)).ctx(cpu(0)))
        .unwrap();
    assert_eq!(p.state(), ParamState::Initialized);
}

// ---------------------------------------------------------------------- §1.4 grad_req

#[test]
fn non_differentiable_forces_null() {
    let p = Parameter::new("w").with_differentiable(false);
    assert_eq!(p.grad_req(), GradReq::Null);
    p.set_grad_req(GradReq::Write).unwrap();
    assert_eq!(p.grad_req(), GradReq::Null);
    let q = Parameter::new("q")
        .with_grad_req(GradReq::Add)
        .with_differentiable(false);
    assert_eq!(q.grad_req(), GradReq::Null);
}

#[test]
fn null_drops_gradients_but_keeps_data_memory() {
    let p = initialized("w", &[2], 1.0, &[cpu(0)]);
    let before = p.data(None).unwrap();
    assert!(p.grad(None).is_ok());
    p.set_grad_req(GradReq::Null).unwrap();
    let e = p.grad(None).unwrap_err();
    assert!(matches!(&e, Error::GradReqNull { name } if name == "w"));
    assert!(e.to_string().contains("'w'"));
    assert!(matches!(p.list_grad(), Err(Error::GradReqNull { .. })));
    // Same memory: writes through the old handle are visible.
    before.fill(4.0).unwrap();
    assert_eq!(f32s(&p.data(None).unwrap()), vec![4.0, 4.0]);
    // zero_grad is a no-op without gradients.
    p.zero_grad().unwrap();
}

#[test]
fn switching_write_to_add_reallocates_zero_grads() {
    let p = initialized("w", &[3], 1.0, &[cpu(0), cpu(1)]);
    let old = p.grad(cpu(0)).unwrap();
    old.fill(3.0).unwrap();
    p.set_grad_req(GradReq::Add).unwrap();
    assert_eq!(p.grad_req(), GradReq::Add);
    for g in p.list_grad().unwrap() {
        assert_eq!(f32s(&g), vec![0.0; 3]);
    }
    assert!(!p.grad(cpu(0)).unwrap().shares_memory_with(&old));
    // add -> write also re-allocates.
    p.grad(cpu(1)).unwrap().fill(2.0).unwrap();
    p.set_grad_req(GradReq::Write).unwrap();
    assert_eq!(f32s(&p.grad(cpu(1)).unwrap()), vec![0.0; 3]);
}

#[test]
fn same_grad_req_is_a_no_op() {
    let p = initialized("w", &[3], 1.0, &[cpu(0)]);
    let g = p.grad(None).unwrap();
    g.fill(5.0).unwrap();
    p.set_grad_req(GradReq::Write).unwrap();
    assert!(p.grad(None).unwrap().shares_memory_with(&g));
    assert_eq!(f32s(&p.grad(None).unwrap()), vec![5.0; 3]);
}

#[test]
fn null_to_write_creates_zero_grads() {
    let p = Parameter::new("w")
        .with_shape([2])
        .with_grad_req(GradReq::Null);
    p.initialize_with(opts(cpu(0)).init(Fill(1.0))).unwrap();
    assert!(matches!(p.grad(None), Err(Error::GradReqNull { .. })));
    p.set_grad_req(GradReq::Write).unwrap();
    assert_eq!(f32s(&p.grad(None).unwrap()), vec![0.0, 0.0]);
}

#[test]
fn grad_req_set_before_init_applies_at_init() {
    let p = Parameter::new("w").with_shape([2]);
    p.set_grad_req(GradReq::Null).unwrap();
    p.initialize_with(opts(cpu(0))).unwrap();
    assert!(matches!(p.list_grad(), Err(Error::GradReqNull { .. })));
    let q = Parameter::new("q")
        .with_shape([2])
        .with_grad_req(GradReq::Add);
    q.initialize_with(opts(cpu(0))).unwrap();
    assert_eq!(f32s(&q.grad(None).unwrap()), vec![0.0, 0.0]);
}

// ---------------------------------------------------------------------- §1.6 shape

#[test]
fn shape_setter_fills_unknown_dims_only() {
    let p = Parameter::new("w").with_shape([0, 3]);
    p.set_shape(&[4, 3]).unwrap();
    assert_eq!(p.shape(), Some(vec![4, 3]));
    let e = p.set_shape(&[5, 3]).unwrap_err();
    assert!(
        matches!(&e, Error::IncompatibleShape { name, new, current } if name == "w" && new == &[5, 3] && current == &[4, 3])
    );
    let msg = e.to_string();
    assert!(
        msg.contains("'w'") && msg.contains("(5, 3)") && msg.contains("(4, 3)"),
        "{msg}"
    );
    // Rank mismatch.
    assert!(matches!(
        p.set_shape(&[4, 3, 1]),
        Err(Error::IncompatibleShape { .. })
    ));
    // A known dimension cannot be unset.
    let q = Parameter::new("q").with_shape([2, 3]);
    assert!(matches!(
        q.set_shape(&[0, 3]),
        Err(Error::IncompatibleShape { .. })
    ));
    // Unknown shape accepts anything, stored verbatim (may hold 0).
    let r = Parameter::new("r");
    r.set_shape(&[0, 7]).unwrap();
    assert_eq!(r.shape(), Some(vec![0, 7]));
}

// ---------------------------------------------------------------------- §1.7 lookup

#[test]
fn lookup_without_ctx_uses_only_copy_or_current_context() {
    let p = Parameter::new("w").with_shape([1]);
    p.initialize_with(InitOptions::new().init(Fill(1.0)).ctx(cpu(3)))
        .unwrap();
    // One copy: returned whatever the current context.
    assert_eq!(p.data(None).unwrap().context(), cpu(3));

    let q = initialized("q", &[1], 1.0, &[cpu(0), cpu(1)]);
    assert_eq!(q.data(None).unwrap().context(), cpu(0));
    {
        let _g = cpu(1).enter();
        assert_eq!(q.data(None).unwrap().context(), cpu(1));
        assert_eq!(q.grad(None).unwrap().context(), cpu(1));
    }
    let _g = cpu(2).enter();
    assert!(matches!(
        q.data(None),
        Err(Error::ParameterNotOnContext { ctx, .. }) if ctx == cpu(2)
    ));
}

#[test]
fn missing_context_error_lists_contexts() {
    let p = initialized("w", &[1], 1.0, &[cpu(0)]);
    let e = p.data(cpu(1)).unwrap_err();
    assert!(
        matches!(&e, Error::ParameterNotOnContext { name, ctx, available } if name == "w" && *ctx == cpu(1) && available == &[cpu(0)])
    );
    let msg = e.to_string();
    assert!(
        msg.contains("'w'") && msg.contains("cpu(1)") && msg.contains("[cpu(0)]"),
        "{msg}"
    );
    assert!(matches!(
        p.grad(cpu(1)),
        Err(Error::ParameterNotOnContext { .. })
    ));
}

#[test]
fn cpu_kinds_with_same_id_alias() {
    let p = initialized("w", &[1], 1.0, &[cpu(0), cpu(1)]);
    let pinned = p.data(Context::cpu_pinned(0)).unwrap();
    assert!(pinned.shares_memory_with(&p.data(cpu(0)).unwrap()));
    let shared = p.data(Context::cpu_shared(1)).unwrap();
    assert!(shared.shares_memory_with(&p.data(cpu(1)).unwrap()));
}

#[test]
fn duplicate_contexts_keep_two_copies_and_later_wins() {
    let p = initialized("w", &[2], 1.0, &[cpu(0), cpu(0)]);
    let all = p.list_data().unwrap();
    assert_eq!(all.len(), 2);
    assert!(!all[0].shares_memory_with(&all[1]));
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(0), cpu(0)]);
    // Two copies, so `None` means the current context, which maps to the later copy.
    assert!(p.data(None).unwrap().shares_memory_with(&all[1]));
    assert!(p.data(cpu(0)).unwrap().shares_memory_with(&all[1]));
    assert_eq!(p.list_grad().unwrap().len(), 2);
}

// ---------------------------------------------------------------------- §1.8 initialize

#[test]
fn initialize_copies_to_every_context_as_separate_buffers() {
    let p = initialized("w", &[2, 2], 0.5, &[cpu(0), cpu(1)]);
    let a = p.data(cpu(0)).unwrap();
    let b = p.data(cpu(1)).unwrap();
    assert_eq!(a.context(), cpu(0));
    assert_eq!(b.context(), cpu(1));
    assert!(!a.shares_memory_with(&b));
    assert_eq!(f32s(&a), vec![0.5; 4]);
    assert_eq!(f32s(&b), vec![0.5; 4]);
    a.fill(1.0).unwrap();
    assert_eq!(f32s(&b), vec![0.5; 4]);
    assert_eq!(p.state(), ParamState::Initialized);
}

#[test]
fn initialize_on_current_context_by_default() {
    let p = Parameter::new("w").with_shape([1]);
    {
        let _g = cpu(5).enter();
        p.initialize_with(InitOptions::new().init(Fill(1.0)))
            .unwrap();
    }
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(5)]);
    let q = Parameter::new("q").with_shape([1]).with_init(Fill(1.0));
    q.initialize(None).unwrap();
    assert_eq!(q.list_ctx().unwrap(), vec![cpu(0)]);
}

#[test]
fn initializer_precedence_explicit_then_own_then_default() {
    // init=Constant(5) beats param init One beats default Zero.
    let p = Parameter::new("w").with_shape([2]).with_init(Fill(1.0));
    p.initialize_with(
        InitOptions::new()
            .init(Fill(5.0))
            .default_init(Fill(0.0))
            .ctx(cpu(0)),
    )
    .unwrap();
    assert_eq!(f32s(&p.data(None).unwrap()), vec![5.0; 2]);

    let q = Parameter::new("q").with_shape([2]).with_init(Fill(1.0));
    q.initialize_with(InitOptions::new().default_init(Fill(0.0)).ctx(cpu(0)))
        .unwrap();
    assert_eq!(f32s(&q.data(None).unwrap()), vec![1.0; 2]);

    let r = Parameter::new("r").with_shape([2]);
    r.initialize_with(InitOptions::new().default_init(Fill(7.0)).ctx(cpu(0)))
        .unwrap();
    assert_eq!(f32s(&r.data(None).unwrap()), vec![7.0; 2]);
}

#[test]
fn reinitialize_warns_and_keeps_data() {
    let c = counting();
    let p = Parameter::new("w").with_shape([2]).with_init(c.clone());
    p.initialize(cpu(0)).unwrap();
    let d = p.data(None).unwrap();
    let logs = warnings_of(|| {
        p.initialize_with(InitOptions::new().init(Fill(9.0)).ctx(cpu(1)))
            .unwrap()
    });
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].contains("'w'") && logs[0].contains("already initialized"));
    assert_eq!(c.calls.load(Ordering::SeqCst), 1);
    assert!(p.data(None).unwrap().shares_memory_with(&d));
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(0)]);
}

#[test]
fn force_reinit_runs_the_initializer_again() {
    let p = initialized("w", &[2], 1.0, &[cpu(0)]);
    p.initialize_with(
        InitOptions::new()
            .init(Fill(3.0))
            .ctx(cpu(1))
            .force_reinit(true),
    )
    .unwrap();
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(1)]);
    assert_eq!(f32s(&p.data(None).unwrap()), vec![3.0; 2]);
}

#[test]
fn failed_force_reinit_leaves_it_uninitialized() {
    let p = initialized("w", &[2], 1.0, &[cpu(0)]);
    let e = p
        .initialize_with(InitOptions::new().init(Failing).force_reinit(true))
        .unwrap_err();
    assert!(matches!(&e, Error::InitializerFailed { name, .. } if name == "w"));
    assert_eq!(p.state(), ParamState::Uninitialized);
    assert!(matches!(
        p.data(None),
        Err(Error::ParameterNotInitialized { .. })
    ));
}

#[test]
fn unknown_shape_without_deferral_is_an_error() {
    for (shape, shown) in [
        (None, "None"),
        (Some(vec![0, 3]), "(0, 3)"),
        (Some(vec![]), "()"),
    ] {
        let mut p = Parameter::new("w");
        if let Some(s) = &shape {
            p = p.with_shape(s);
        }
        let e = p.initialize_with(opts(cpu(0))).unwrap_err();
        assert!(
            matches!(&e, Error::UnknownParameterShape { name, shape: s, deferred: false } if name == "w" && *s == shape),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("'w'") && msg.contains(shown), "{msg}");
        assert_eq!(p.state(), ParamState::Uninitialized);
    }
}

#[test]
fn unknown_shape_with_deferral_defers() {
    let c = counting();
    let p = Parameter::new("w")
        .with_shape([0, 2])
        .with_allow_deferred_init(true);
    p.initialize_with(InitOptions::new().init(c.clone()).ctx([cpu(0), cpu(1)]))
        .unwrap();
    assert_eq!(p.state(), ParamState::Deferred);
    assert_eq!(c.calls.load(Ordering::SeqCst), 0);
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(0), cpu(1)]);
    let e = p.data(None).unwrap_err();
    assert!(matches!(&e, Error::DeferredInitialization { name } if name == "w"));
    assert!(e.to_string().contains("'w'"));
    assert!(matches!(
        p.grad(None),
        Err(Error::DeferredInitialization { .. })
    ));
    assert!(matches!(
        p.list_data(),
        Err(Error::DeferredInitialization { .. })
    ));
    assert!(matches!(
        p.list_grad(),
        Err(Error::DeferredInitialization { .. })
    ));
    p.zero_grad().unwrap(); // no-op
}

#[test]
fn reinitializing_a_deferred_parameter_silently_replaces_the_record() {
    let p = Parameter::new("w").with_allow_deferred_init(true);
    p.initialize_with(opts(cpu(0))).unwrap();
    let logs = warnings_of(|| {
        p.initialize_with(InitOptions::new().init(Fill(2.0)).ctx(cpu(1)))
            .unwrap()
    });
    assert!(logs.is_empty(), "{logs:?}");
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(1)]);
    p.set_shape(&[2]).unwrap();
    p.finish_deferred_init().unwrap();
    assert_eq!(p.data(None).unwrap().context(), cpu(1));
    assert_eq!(f32s(&p.data(None).unwrap()), vec![2.0; 2]);
}

#[test]
fn empty_context_list_is_rejected() {
    let p = Parameter::new("w").with_shape([1]);
    let e = p.initialize_with(opts(Vec::<Context>::new())).unwrap_err();
    assert!(matches!(&e, Error::InvalidParameterValue { name, .. } if name == "w"));
    assert_eq!(p.state(), ParamState::Uninitialized);
}

#[test]
fn unavailable_device_leaves_it_uninitialized() {
    let p = Parameter::new("w").with_shape([1]);
    let e = p
        .initialize_with(opts([cpu(0), Context::gpu(0)]))
        .unwrap_err();
    assert!(matches!(e, Error::DeviceUnavailable { .. }));
    assert_eq!(p.state(), ParamState::Uninitialized);
}

#[test]
fn unknown_string_initializer_fails_and_leaves_it_uninitialized() {
    let p = Parameter::new("w")
        .with_shape([1])
        .with_init("no_such_initializer_xyz");
    assert!(p.initialize_with(opts(cpu(0))).is_err());
    assert_eq!(p.state(), ParamState::Uninitialized);
}

// ---------------------------------------------------------------------- §1.9 finish

#[test]
fn finish_without_record_is_a_no_op() {
    let p = Parameter::new("w");
    p.finish_deferred_init().unwrap();
    assert_eq!(p.state(), ParamState::Uninitialized);
    let q = initialized("q", &[1], 1.0, &[cpu(0)]);
    let d = q.data(None).unwrap();
    q.finish_deferred_init().unwrap();
    assert!(q.data(None).unwrap().shares_memory_with(&d));
}

#[test]
fn finish_runs_initializer_once_on_the_first_context_and_copies() {
    let c = counting();
    let p = Parameter::new("fc_weight")
        .with_allow_deferred_init(true)
        .with_dtype(DType::Float64);
    p.initialize_with(
        InitOptions::new()
            .init(c.clone())
            .ctx([cpu(1), cpu(2), cpu(3)]),
    )
    .unwrap();
    p.set_shape(&[2, 2]).unwrap();
    p.finish_deferred_init().unwrap();
    assert_eq!(c.calls.load(Ordering::SeqCst), 1);
    let seen = c.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![("fc_weight".to_string(), cpu(1), DType::Float64, vec![2, 2])]
    );
    let all = p.list_data().unwrap();
    assert_eq!(all.len(), 3);
    for (i, a) in all.iter().enumerate() {
        assert_eq!(a.context(), cpu(i as u32 + 1));
        assert_eq!(a.dtype(), DType::Float64);
        assert_eq!(a.to_vec::<f64>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        for b in &all[i + 1..] {
            assert!(!a.shares_memory_with(b));
        }
    }
    assert_eq!(p.state(), ParamState::Initialized);
}

#[test]
fn failed_finish_leaves_it_uninitialized() {
    let p = Parameter::new("w")
        .with_shape([0, 3])
        .with_allow_deferred_init(true);
    p.initialize_with(opts(cpu(0))).unwrap();
    let e = p.finish_deferred_init().unwrap_err();
    assert!(matches!(&e, Error::UnknownParameterShape { name, deferred: true, .. } if name == "w"));
    assert!(e.to_string().contains("(0, 3)"));
    assert_eq!(p.state(), ParamState::Uninitialized);
    assert!(matches!(
        p.data(None),
        Err(Error::ParameterNotInitialized { .. })
    ));
    // The record is gone: setting the shape and finishing again does nothing.
    p.set_shape(&[2, 3]).unwrap();
    p.finish_deferred_init().unwrap();
    assert_eq!(p.state(), ParamState::Uninitialized);
}

#[test]
fn failing_initializer_in_finish_leaves_it_uninitialized() {
    let p = Parameter::new("w").with_allow_deferred_init(true);
    p.initialize_with(InitOptions::new().init(Failing).ctx(cpu(0)))
        .unwrap();
    p.set_shape(&[2]).unwrap();
    assert!(matches!(
        p.finish_deferred_init(),
        Err(Error::InitializerFailed { .. })
    ));
    assert_eq!(p.state(), ParamState::Uninitialized);
}

#[test]
fn set_data_while_deferred_is_used_on_every_context() {
    let c = counting();
    let p = Parameter::new("w").with_allow_deferred_init(true);
    p.initialize_with(InitOptions::new().init(c.clone()).ctx([cpu(0), cpu(1)]))
        .unwrap();
    let v = NDArray::full(&[2, 2], 7.0, DType::Float32, cpu(0)).unwrap();
    p.set_data(&v).unwrap();
    assert_eq!(p.shape(), Some(vec![2, 2]));
    assert_eq!(p.state(), ParamState::Deferred);
    p.finish_deferred_init().unwrap();
    assert_eq!(c.calls.load(Ordering::SeqCst), 0);
    for ctx in [cpu(0), cpu(1)] {
        let d = p.data(ctx).unwrap();
        assert_eq!(f32s(&d), vec![7.0; 4]);
        assert!(!d.shares_memory_with(&v));
    }
}

#[test]
fn set_data_while_deferred_converts_to_the_parameter_dtype() {
    let p = Parameter::new("w")
        .with_allow_deferred_init(true)
        .with_dtype(DType::Float16);
    p.initialize_with(opts(cpu(0))).unwrap();
    p.set_data(&NDArray::from_vec(vec![1.5f64, 2.5], &[2], cpu(0)).unwrap())
        .unwrap();
    p.finish_deferred_init().unwrap();
    let d = p.data(None).unwrap();
    assert_eq!(d.dtype(), DType::Float16);
    assert_eq!(d.to_f64_vec(), vec![1.5, 2.5]);
}

// ---------------------------------------------------------------------- §1.10 grads

#[test]
fn grads_are_zeros_like_data() {
    let p = Parameter::new("w")
        .with_shape([2, 3])
        .with_dtype(DType::Float64);
    p.initialize_with(InitOptions::new().init(Fill(1.0)).ctx([cpu(0), cpu(1)]))
        .unwrap();
    let data = p.list_data().unwrap();
    let grads = p.list_grad().unwrap();
    assert_eq!(grads.len(), 2);
    for (d, g) in data.iter().zip(&grads) {
        assert_eq!(g.shape(), d.shape());
        assert_eq!(g.dtype(), d.dtype());
        assert_eq!(g.context(), d.context());
        assert!(!g.shares_memory_with(d));
        assert_eq!(g.to_vec::<f64>().unwrap(), vec![0.0; 6]);
    }
    assert!(p.grad(cpu(1)).unwrap().shares_memory_with(&grads[1]));
}

#[test]
fn null_grad_req_allocates_no_gradient() {
    let p = Parameter::new("w")
        .with_shape([2])
        .with_grad_req(GradReq::Null);
    p.initialize_with(opts(cpu(0))).unwrap();
    assert!(matches!(p.list_grad(), Err(Error::GradReqNull { .. })));
    assert!(matches!(p.grad(cpu(0)), Err(Error::GradReqNull { .. })));
}

// ---------------------------------------------------------------------- §1.11 data

#[test]
fn data_returns_handles_to_stored_arrays() {
    let p = initialized("w", &[3], 1.0, &[cpu(0)]);
    let a = p.data(None).unwrap();
    assert!(a.shares_memory_with(&p.data(None).unwrap()));
    a.fill(8.0).unwrap();
    assert_eq!(f32s(&p.data(cpu(0)).unwrap()), vec![8.0; 3]);
    assert!(p.list_data().unwrap()[0].shares_memory_with(&a));
}

#[test]
fn uninitialized_access_errors_name_the_parameter() {
    let p = Parameter::new("fc_weight");
    for e in [
        p.data(None).unwrap_err(),
        p.list_data().unwrap_err(),
        p.grad(None).unwrap_err(),
        p.list_grad().unwrap_err(),
        p.list_ctx().unwrap_err(),
    ] {
        assert!(
            matches!(&e, Error::ParameterNotInitialized { name } if name == "fc_weight"),
            "{e}"
        );
        assert!(e.to_string().contains("'fc_weight'"));
        assert_eq!(e.parameter_name(), Some("fc_weight"));
    }
}

#[test]
fn sparse_storage_refuses_dense_accessors() {
    let p = Parameter::new("emb")
        .with_shape([2])
        .with_stype(StorageType::RowSparse);
    p.initialize_with(opts(cpu(0))).unwrap();
    let e = p.data(None).unwrap_err();
    assert!(matches!(
        &e,
        Error::WrongParameterStorage { name, stype: StorageType::RowSparse, called: "data", use_instead: "row_sparse_data" } if name == "emb"
    ));
    assert!(e.to_string().contains("'emb'") && e.to_string().contains("row_sparse_data"));
    assert!(matches!(
        p.list_data(),
        Err(Error::WrongParameterStorage {
            called: "list_data",
            ..
        })
    ));
    // grad storage is independent of stype.
    let q = Parameter::new("q")
        .with_shape([2])
        .with_stype(StorageType::Csr);
    assert!(matches!(
        q.data(None),
        Err(Error::WrongParameterStorage {
            stype: StorageType::Csr,
            ..
        })
    ));
}

// ---------------------------------------------------------------------- §1.14, §1.15

#[test]
fn list_ctx_in_every_state() {
    let p = Parameter::new("w").with_allow_deferred_init(true);
    assert!(matches!(
        p.list_ctx(),
        Err(Error::ParameterNotInitialized { .. })
    ));
    p.initialize_with(opts([cpu(2), cpu(1)])).unwrap();
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(2), cpu(1)]);
    p.set_shape(&[1]).unwrap();
    p.finish_deferred_init().unwrap();
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(2), cpu(1)]);
}

#[test]
fn zero_grad_is_in_place() {
    let p = initialized("w", &[4], 1.0, &[cpu(0), cpu(1)]);
    let before = p.list_grad().unwrap();
    for g in &before {
        g.fill(3.0).unwrap();
    }
    p.zero_grad().unwrap();
    let after = p.list_grad().unwrap();
    for (a, b) in before.iter().zip(&after) {
        assert!(a.shares_memory_with(b));
        assert_eq!(f32s(b), vec![0.0; 4]);
    }
    Parameter::new("u").zero_grad().unwrap();
}

// ---------------------------------------------------------------------- §1.16 set_data

#[test]
fn set_data_on_uninitialized_is_an_error() {
    let p = Parameter::new("w");
    let e = p
        .set_data(&NDArray::zeros(&[2], DType::Float32, cpu(0)).unwrap())
        .unwrap_err();
    assert!(matches!(&e, Error::ParameterNotInitialized { name } if name == "w"));
    // The shape setter ran first.
    assert_eq!(p.shape(), Some(vec![2]));
}

#[test]
fn set_data_writes_every_context_in_place_converting_dtype() {
    let p = initialized("w", &[3], 1.0, &[cpu(0), cpu(1)]);
    let before = p.list_data().unwrap();
    let v = NDArray::from_vec(vec![1.0f64, 2.0, 3.0], &[3], cpu(1)).unwrap();
    p.set_data(&v).unwrap();
    let after = p.list_data().unwrap();
    for (a, b) in before.iter().zip(&after) {
        assert!(a.shares_memory_with(b));
        assert_eq!(b.dtype(), DType::Float32);
        assert_eq!(f32s(b), vec![1.0, 2.0, 3.0]);
        assert!(!b.shares_memory_with(&v));
    }
}

#[test]
fn set_data_with_wrong_shape_is_an_error() {
    let p = initialized("w", &[2, 3], 1.0, &[cpu(0)]);
    let e = p
        .set_data(&NDArray::zeros(&[3, 2], DType::Float32, cpu(0)).unwrap())
        .unwrap_err();
    assert!(matches!(&e, Error::IncompatibleShape { name, .. } if name == "w"));
    assert_eq!(f32s(&p.data(None).unwrap()), vec![1.0; 6]);
    assert!(p
        .set_data(&NDArray::zeros(&[6], DType::Float32, cpu(0)).unwrap())
        .is_err());
}

// ---------------------------------------------------------------------- §1.17, §1.18

#[test]
fn reset_ctx_averages_and_recreates_zero_grads() {
    let p = initialized("w", &[2], 0.0, &[cpu(0), cpu(1)]);
    p.data(cpu(0)).unwrap().fill(1.0).unwrap();
    p.data(cpu(1)).unwrap().fill(3.0).unwrap();
    p.grad(cpu(0)).unwrap().fill(5.0).unwrap();
    p.reset_ctx([cpu(2), cpu(3)]).unwrap();
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(2), cpu(3)]);
    for c in [cpu(2), cpu(3)] {
        assert_eq!(f32s(&p.data(c).unwrap()), vec![2.0, 2.0]);
        assert_eq!(f32s(&p.grad(c).unwrap()), vec![0.0, 0.0]);
    }
    assert!(matches!(
        p.data(cpu(0)),
        Err(Error::ParameterNotOnContext { .. })
    ));
    assert!(!p
        .data(cpu(2))
        .unwrap()
        .shares_memory_with(&p.data(cpu(3)).unwrap()));
}

#[test]
fn reset_ctx_on_deferred_replaces_pending_contexts() {
    let p = Parameter::new("w").with_allow_deferred_init(true);
    p.initialize_with(opts(cpu(0))).unwrap();
    p.reset_ctx(cpu(4)).unwrap();
    assert_eq!(p.state(), ParamState::Deferred);
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(4)]);
}

#[test]
fn reset_ctx_on_uninitialized_is_an_error() {
    let e = Parameter::new("w").reset_ctx(cpu(0)).unwrap_err();
    assert!(matches!(&e, Error::NotInitializedFor { name, .. } if name == "w"));
    assert!(e.to_string().contains("'w'"));
}

#[test]
fn reset_ctx_defaults_to_current_context() {
    let p = initialized("w", &[1], 1.0, &[cpu(0)]);
    {
        let _g = cpu(6).enter();
        p.reset_ctx(None).unwrap();
    }
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(6)]);
}

#[test]
fn reduce_is_mean_on_cpu0() {
    let p = initialized("w", &[3], 0.0, &[cpu(1), cpu(2), cpu(3)]);
    for (i, d) in p.list_data().unwrap().iter().enumerate() {
        d.fill(i as f64 * 3.0).unwrap();
    }
    let r = p.reduce().unwrap();
    assert_eq!(r.context(), cpu(0));
    assert_eq!(f32s(&r), vec![3.0; 3]);

    let single = initialized("s", &[2], 4.0, &[cpu(0)]);
    let r = single.reduce().unwrap();
    assert_eq!(f32s(&r), vec![4.0; 2]);
    assert!(!r.shares_memory_with(&single.data(None).unwrap()));
    assert!(matches!(
        Parameter::new("u").reduce(),
        Err(Error::ParameterNotInitialized { .. })
    ));
}

#[test]
fn reduce_is_exact_for_integer_and_large_arrays() {
    let p = Parameter::new("i").with_shape([2]).with_dtype(DType::Int64);
    p.initialize_with(opts([cpu(0), cpu(1)])).unwrap();
    let big = (1i64 << 62) + 1;
    p.data(cpu(0)).unwrap().copy_from_slice(&[big, 1]).unwrap();
    p.data(cpu(1)).unwrap().copy_from_slice(&[big, 4]).unwrap();
    assert_eq!(p.reduce().unwrap().to_vec::<i64>().unwrap(), vec![big, 2]);

    // Large enough to take the parallel path; values differ per block.
    let n = 300_000;
    let q = Parameter::new("q").with_shape([n]);
    q.initialize_with(opts([cpu(0), cpu(1)])).unwrap();
    let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..n).map(|i| (i as f32) + 2.0).collect();
    q.data(cpu(0)).unwrap().copy_from_slice(&a).unwrap();
    q.data(cpu(1)).unwrap().copy_from_slice(&b).unwrap();
    let r = q.reduce().unwrap().to_vec::<f32>().unwrap();
    assert!(r.iter().enumerate().all(|(i, v)| *v == i as f32 + 1.0));

    let h = Parameter::new("h")
        .with_shape([2])
        .with_dtype(DType::BFloat16);
    h.initialize_with(opts([cpu(0), cpu(1)])).unwrap();
    h.data(cpu(1)).unwrap().fill(1.0).unwrap();
    assert_eq!(h.reduce().unwrap().to_f64_vec(), vec![0.5, 0.5]);
}

// ---------------------------------------------------------------------- §1.19 cast

#[test]
fn cast_keeps_values_of_data_and_grads() {
    let p = initialized("w", &[2], 1.5, &[cpu(0), cpu(1)]);
    p.grad(cpu(1)).unwrap().fill(2.5).unwrap();
    p.cast(DType::Float64).unwrap();
    assert_eq!(p.dtype(), DType::Float64);
    for c in [cpu(0), cpu(1)] {
        let d = p.data(c).unwrap();
        assert_eq!(d.dtype(), DType::Float64);
        assert_eq!(d.to_vec::<f64>().unwrap(), vec![1.5, 1.5]);
        assert_eq!(p.grad(c).unwrap().dtype(), DType::Float64);
    }
    assert_eq!(
        p.grad(cpu(1)).unwrap().to_vec::<f64>().unwrap(),
        vec![2.5; 2]
    );
    assert_eq!(p.to_string(), "Parameter w (shape=(2,), dtype=float64)");
}

#[test]
fn cast_uninitialized_only_changes_dtype() {
    let p = Parameter::new("w").with_shape([2]);
    p.cast(DType::Int32).unwrap();
    assert_eq!(p.dtype(), DType::Int32);
    p.initialize_with(InitOptions::new().init(Fill(3.0)).ctx(cpu(0)))
        .unwrap();
    assert_eq!(p.data(None).unwrap().to_vec::<i32>().unwrap(), vec![3, 3]);
    assert_eq!(p.grad(None).unwrap().dtype(), DType::Int32);
}

#[test]
fn cast_with_null_grad_req() {
    let p = Parameter::new("w")
        .with_shape([1])
        .with_grad_req(GradReq::Null);
    p.initialize_with(opts(cpu(0)).init(Fill(1.0))).unwrap();
    p.cast(DType::Float16).unwrap();
    assert_eq!(p.data(None).unwrap().dtype(), DType::Float16);
    assert!(matches!(p.grad(None), Err(Error::GradReqNull { .. })));
}

// ---------------------------------------------------------------------- §1.22 load_init

#[test]
fn load_init_on_uninitialized_uses_cpu0_without_initializer() {
    let c = counting();
    let p = Parameter::new("w").with_shape([0, 2]).with_init(c.clone());
    let v = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], cpu(3)).unwrap();
    p.load_init(&v, None, false, DTypeSource::Current).unwrap();
    assert_eq!(c.calls.load(Ordering::SeqCst), 0);
    assert_eq!(p.shape(), Some(vec![2, 2]));
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(0)]);
    let d = p.data(None).unwrap();
    assert_eq!(f32s(&d), vec![1.0, 2.0, 3.0, 4.0]);
    assert!(!d.shares_memory_with(&v));
    assert_eq!(f32s(&p.grad(None).unwrap()), vec![0.0; 4]);
}

#[test]
fn load_init_on_given_contexts() {
    let p = Parameter::new("w").with_shape([2]);
    let v = NDArray::full(&[2], 3.0, DType::Float32, cpu(0)).unwrap();
    p.load_init(&v, [cpu(1), cpu(2)], false, DTypeSource::Current)
        .unwrap();
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(1), cpu(2)]);
    assert_eq!(f32s(&p.data(cpu(2)).unwrap()), vec![3.0; 2]);
}

#[test]
fn load_init_shape_mismatch_is_an_error() {
    let p = Parameter::new("w").with_shape([3, 2]);
    let v = NDArray::zeros(&[4, 2], DType::Float32, cpu(0)).unwrap();
    let e = p
        .load_init(&v, None, false, DTypeSource::Current)
        .unwrap_err();
    assert!(matches!(&e, Error::IncompatibleShape { name, .. } if name == "w"));
    assert_eq!(p.state(), ParamState::Uninitialized);
}

#[test]
fn load_init_compares_leading_dims_only_like_mxnet() {
    let p = Parameter::new("w").with_shape([0, 2]);
    let v = NDArray::zeros(&[3, 2, 1], DType::Float32, cpu(0)).unwrap();
    p.load_init(&v, None, false, DTypeSource::Current).unwrap();
    assert_eq!(p.shape(), Some(vec![3, 2]));
    assert_eq!(p.data(None).unwrap().shape(), &[3, 2, 1]);
    // An unknown shape is not checked and stays unknown.
    let q = Parameter::new("q");
    q.load_init(&v, None, false, DTypeSource::Current).unwrap();
    assert_eq!(q.shape(), None);
}

#[test]
fn load_init_dtype_rules() {
    let v = NDArray::from_vec(vec![1.5f64, 2.5], &[2], cpu(0)).unwrap();
    let p = Parameter::new("w").with_shape([2]);
    let e = p
        .load_init(&v, None, false, DTypeSource::Current)
        .unwrap_err();
    assert!(
        matches!(&e, Error::ParameterDTypeMismatch { name, expected: DType::Float32, got: DType::Float64 } if name == "w")
    );
    let msg = e.to_string();
    assert!(msg.contains("float32") && msg.contains("float64"), "{msg}");

    p.load_init(&v, None, true, DTypeSource::Current).unwrap();
    assert_eq!(p.dtype(), DType::Float32);
    assert_eq!(f32s(&p.data(None).unwrap()), vec![1.5, 2.5]);

    let q = Parameter::new("q").with_shape([2]);
    q.load_init(&v, None, true, DTypeSource::Saved).unwrap();
    assert_eq!(q.dtype(), DType::Float64);
    assert_eq!(
        q.data(None).unwrap().to_vec::<f64>().unwrap(),
        vec![1.5, 2.5]
    );
}

#[test]
fn load_init_on_deferred_uses_pending_contexts() {
    let c = counting();
    let p = Parameter::new("w").with_allow_deferred_init(true);
    p.initialize_with(InitOptions::new().init(c.clone()).ctx([cpu(1), cpu(2)]))
        .unwrap();
    let v = NDArray::full(&[2], 4.0, DType::Float32, cpu(0)).unwrap();
    let e = p
        .load_init(&v, cpu(0), false, DTypeSource::Current)
        .unwrap_err();
    assert!(matches!(&e, Error::ParameterContextMismatch { name, .. } if name == "w"));
    assert!(e.to_string().contains("[cpu(1), cpu(2)]"));
    // Same set in another order is fine.
    p.load_init(&v, [cpu(2), cpu(1)], false, DTypeSource::Current)
        .unwrap();
    assert_eq!(p.list_ctx().unwrap(), vec![cpu(1), cpu(2)]);
    assert_eq!(c.calls.load(Ordering::SeqCst), 0);
    assert_eq!(f32s(&p.data(cpu(2)).unwrap()), vec![4.0; 2]);
    // finish afterwards is a no-op (record cleared).
    p.finish_deferred_init().unwrap();
    assert_eq!(c.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn load_init_on_initialized_sets_data() {
    let p = initialized("w", &[2], 0.0, &[cpu(0), cpu(1)]);
    let before = p.list_data().unwrap();
    let v = NDArray::full(&[2], 6.0, DType::Float32, cpu(0)).unwrap();
    assert!(p
        .load_init(&v, cpu(0), false, DTypeSource::Current)
        .is_err());
    p.load_init(&v, None, false, DTypeSource::Current).unwrap();
    for (a, b) in before.iter().zip(p.list_data().unwrap()) {
        assert!(a.shares_memory_with(&b));
        assert_eq!(f32s(&b), vec![6.0; 2]);
    }
}

// ---------------------------------------------------------------------- §5.6

#[test]
fn initializer_weight_rule_applies_whatever_the_name() {
    // A bias is not special-cased: the effective initializer's weight rule fills it.
    let p = Parameter::new("fc_bias").with_shape([4]);
    p.initialize_with(InitOptions::new().default_init(Fill(0.25)).ctx(cpu(0)))
        .unwrap();
    assert_eq!(f32s(&p.data(None).unwrap()), vec![0.25; 4]);
    let c = counting();
    let g = Parameter::new("bn_gamma").with_shape([2]);
    g.initialize_with(InitOptions::new().default_init(c.clone()).ctx(cpu(0)))
        .unwrap();
    assert_eq!(f32s(&g.data(None).unwrap()), vec![1.0, 2.0]);
    assert_eq!(c.seen.lock().unwrap()[0].0, "bn_gamma");
}

// ---------------------------------------------------------------------- threads

#[test]
fn clones_work_across_threads() {
    let p = Parameter::new("w")
        .with_shape([8])
        .with_allow_deferred_init(true);
    let ctxs: Vec<Context> = (0..4).map(cpu).collect();
    p.initialize_with(InitOptions::new().init(Fill(1.0)).ctx(ctxs.clone()))
        .unwrap();
    let handles: Vec<_> = ctxs
        .iter()
        .map(|&c| {
            let p = p.clone();
            std::thread::spawn(move || {
                let d = p.data(c).unwrap();
                d.fill(c.device_id() as f64).unwrap();
                p.grad(c).unwrap().fill(1.0).unwrap();
                p.set_lr_mult(0.5);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for &c in &ctxs {
        assert_eq!(f32s(&p.data(c).unwrap()), vec![c.device_id() as f32; 8]);
    }
    assert_eq!(p.lr_mult(), 0.5);
    assert_eq!(f32s(&p.reduce().unwrap()), vec![1.5; 8]);
    // Concurrent zero_grad / set_data from many threads.
    let v = NDArray::full(&[8], 9.0, DType::Float32, cpu(0)).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                p.zero_grad().unwrap();
                p.set_data(&v).unwrap();
                let _ = p.to_string();
            });
        }
    });
    for &c in &ctxs {
        assert_eq!(f32s(&p.data(c).unwrap()), vec![9.0; 8]);
        assert_eq!(f32s(&p.grad(c).unwrap()), vec![0.0; 8]);
    }
}

#[test]
fn deferred_init_finished_from_another_thread() {
    let p = Parameter::new("w").with_allow_deferred_init(true);
    p.initialize_with(InitOptions::new().init(Fill(2.0)).ctx([cpu(0), cpu(1)]))
        .unwrap();
    let q = p.clone();
    std::thread::spawn(move || {
        q.set_shape(&[3]).unwrap();
        q.finish_deferred_init().unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(f32s(&p.data(cpu(1)).unwrap()), vec![2.0; 3]);
}

// ---------------------------------------------------------------------- performance

/// `set_data` and `zero_grad` on 4 contexts write into the existing buffers (no reallocation);
/// the array is large enough (1 MiB per context) to take the parallel copy path. Speed is
/// measured by the benchmark (`bench/run.sh`), not here.
#[test]
fn large_set_data_and_zero_grad_write_in_place() {
    let n = 512;
    let ctxs: Vec<Context> = (0..4).map(cpu).collect();
    let p = Parameter::new("big").with_shape([n, n]);
    p.initialize_with(InitOptions::new().init(Fill(0.0)).ctx(ctxs))
        .unwrap();
    let data = p.list_data().unwrap();
    let grads = p.list_grad().unwrap();
    let v = NDArray::full(&[n, n], 1.0, DType::Float32, cpu(0)).unwrap();
    p.set_data(&v).unwrap();
    for g in &grads {
        g.fill(3.0).unwrap();
    }
    p.zero_grad().unwrap();
    for g in p.list_grad().unwrap() {
        assert!(g.to_f32_vec().iter().all(|x| *x == 0.0));
    }
    for (a, b) in data.iter().zip(p.list_data().unwrap()) {
        assert!(a.shares_memory_with(&b));
    }
    for (a, b) in grads.iter().zip(p.list_grad().unwrap()) {
        assert!(a.shares_memory_with(&b));
    }
    assert_eq!(
        p.data(cpu(3)).unwrap().get_f64(&[n - 1, n - 1]).unwrap(),
        1.0
    );
}
