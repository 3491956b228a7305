//! Behaviour of `gluon::ParameterDict` (spec §3, and the selection rule of §4.3).
//!
//! Initializers are named explicitly (test-local `Fill`) except in the one test that checks
//! the global default.

use mxgluon::gluon::{InitOptions, ParamSpec, ParamState, ParameterDict};
use mxgluon::init::{self, InitSpec};

mod common;
use common::{warnings_of, Fill};
use mxgluon::{Context, DType, Error, GradReq, NDArray, Parameter, StorageType};

// ---------------------------------------------------------------------- helpers

fn cpu(i: u32) -> Context {
    Context::cpu(i)
}

fn f32s(a: &NDArray) -> Vec<f32> {
    a.to_vec::<f32>().unwrap()
}

/// A dict `net_` holding `net_dense0_weight`, `net_dense0_bias`, `net_dense1_weight`,
/// `net_dense1_bias` (weights (2, 3) filled with 1, biases (2,) filled with 0) on `cpu(0)`.
fn two_dense() -> ParameterDict {
    let d = ParameterDict::new("net_");
    for i in 0..2 {
        d.get(
            &format!("dense{i}_weight"),
            ParamSpec::new().shape([2, 3]).init(Fill(1.0)),
        )
        .unwrap();
        d.get(
            &format!("dense{i}_bias"),
            ParamSpec::new().shape([2]).init(Fill(0.0)),
        )
        .unwrap();
    }
    d
}

/// The attribute, desired and stored text of a `ParameterAttributeMismatch`, or a panic
/// naming what came instead.
fn mismatch(r: mxgluon::Result<Parameter>) -> (String, &'static str, String, String) {
    match r {
        Err(Error::ParameterAttributeMismatch {
            name,
            attribute,
            desired,
            stored,
        }) => (name, attribute, desired, stored),
        other => panic!("expected ParameterAttributeMismatch, got {other:?}"),
    }
}

// ---------------------------------------------------------------------- construction, lookup

#[test]
fn new_dict_is_empty_with_its_prefix() {
    let d = ParameterDict::new("net_");
    assert_eq!(d.prefix(), "net_");
    assert!(d.shared().is_none());
    assert!(d.is_empty());
    assert_eq!(d.len(), 0);
    assert!(d.keys().is_empty());
    let e = ParameterDict::default();
    assert_eq!(e.prefix(), "");
    let s = ParameterDict::with_shared("b_", Some(d.clone()));
    assert!(s.shared().is_some_and(|x| x.ptr_eq(&d)));
}

#[test]
fn dict_is_a_send_sync_handle() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<ParameterDict>();
    let d = ParameterDict::new("p_");
    let clone = d.clone();
    std::thread::spawn(move || {
        clone.get("w", ParamSpec::new().shape([1])).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(d.keys(), ["p_w"], "a clone is the same dict");
}

#[test]
fn get_creates_with_prefix_in_insertion_order() {
    let d = ParameterDict::new("net_");
    let w = d.get("w", ParamSpec::new()).unwrap();
    let b = d.get("b", ParamSpec::new()).unwrap();
    let a = d.get("a", ParamSpec::new()).unwrap();
    assert_eq!(w.name(), "net_w");
    assert_eq!(d.keys(), ["net_w", "net_b", "net_a"]);
    assert_eq!(d.len(), 3);
    let vals = d.values();
    assert!(vals[0].ptr_eq(&w) && vals[1].ptr_eq(&b) && vals[2].ptr_eq(&a));
    let items = d.items();
    assert_eq!(items[1].0, "net_b");
    assert!(items[1].1.ptr_eq(&b));
    let iterated: Vec<String> = (&d).into_iter().map(|(k, _)| k).collect();
    assert_eq!(iterated, d.keys());
    assert!(d.contains("net_w"));
    assert!(!d.contains("w"), "contains takes the full name");
    assert!(d.get_param("net_b").unwrap().ptr_eq(&b));
    assert!(d.get_param("b").is_none());
    // Asking again returns the same object and keeps the order.
    assert!(d.get("w", ParamSpec::new()).unwrap().ptr_eq(&w));
    assert_eq!(d.keys(), ["net_w", "net_b", "net_a"]);
}

#[test]
fn get_applies_every_attribute_to_a_new_parameter() {
    let d = ParameterDict::new("");
    let p = d
        .get(
            "p",
            ParamSpec::new()
                .shape([0, 4])
                .dtype(DType::Float64)
                .init(Fill(2.0))
                .grad_req(GradReq::Add)
                .lr_mult(0.5)
                .wd_mult(0.25)
                .allow_deferred_init(true)
                .stype(StorageType::RowSparse)
                .grad_stype(StorageType::RowSparse),
        )
        .unwrap();
    assert_eq!(p.shape(), Some(vec![0, 4]));
    assert_eq!(p.dtype(), DType::Float64);
    assert_eq!(p.init(), Some(InitSpec::from(Fill(2.0))));
    assert_eq!(p.grad_req(), GradReq::Add);
    assert_eq!(p.lr_mult(), 0.5);
    assert_eq!(p.wd_mult(), 0.25);
    assert!(p.allow_deferred_init());
    assert!(p.differentiable());
    assert_eq!(p.stype(), StorageType::RowSparse);
    assert_eq!(p.grad_stype(), StorageType::RowSparse);

    // Defaults when nothing is asked for.
    let q = d.get("q", ParamSpec::new()).unwrap();
    assert_eq!(q.shape(), None);
    assert_eq!(q.dtype(), DType::Float32);
    assert_eq!(q.grad_req(), GradReq::Write);
    assert!(q.init().is_none());
    assert!(!q.allow_deferred_init());
}

#[test]
fn non_differentiable_new_parameter_gets_null_grad_req() {
    let d = ParameterDict::new("");
    let p = d
        .get(
            "p",
            ParamSpec::new()
                .grad_req(GradReq::Write)
                .differentiable(false),
        )
        .unwrap();
    assert!(!p.differentiable());
    assert_eq!(p.grad_req(), GradReq::Null);
}

// ---------------------------------------------------------------------- get: merge rules

#[test]
fn get_merges_unknown_dims_from_either_side() {
    let d = ParameterDict::new("net_");
    let w = d.get("w", ParamSpec::new().shape([0, 3])).unwrap();
    let again = d.get("w", ParamSpec::new().shape([4, 0])).unwrap();
    assert!(again.ptr_eq(&w));
    assert_eq!(w.shape(), Some(vec![4, 3]));
    // A request with fewer known dims leaves the stored shape alone.
    d.get("w", ParamSpec::new().shape([0, 0])).unwrap();
    assert_eq!(w.shape(), Some(vec![4, 3]));
    d.get("w", ParamSpec::new().shape([4, 3])).unwrap();
    assert_eq!(w.shape(), Some(vec![4, 3]));
    // Two different known dims.
    let (name, attr, desired, stored) = mismatch(d.get("w", ParamSpec::new().shape([5, 3])));
    assert_eq!(
        (name.as_str(), attr, desired.as_str(), stored.as_str()),
        ("net_w", "shape", "(5, 3)", "(4, 3)")
    );
    assert_eq!(w.shape(), Some(vec![4, 3]));
}

#[test]
fn get_shape_rank_mismatch_is_an_error() {
    let d = ParameterDict::new("");
    let w = d.get("w", ParamSpec::new().shape([4, 3])).unwrap();
    let (_, attr, desired, stored) = mismatch(d.get("w", ParamSpec::new().shape([4, 3, 1])));
    assert_eq!(
        (attr, desired.as_str(), stored.as_str()),
        ("shape", "(4, 3, 1)", "(4, 3)")
    );
    // Even with unknown dims, a different rank never merges.
    let (_, attr, _, _) = mismatch(d.get("w", ParamSpec::new().shape([0])));
    assert_eq!(attr, "shape");
    assert_eq!(w.shape(), Some(vec![4, 3]));
}

#[test]
fn get_sets_a_shape_on_a_parameter_without_one() {
    let d = ParameterDict::new("");
    let w = d.get("w", ParamSpec::new()).unwrap();
    d.get("w", ParamSpec::new().shape([7, 0])).unwrap();
    assert_eq!(w.shape(), Some(vec![7, 0]));
}

#[test]
fn get_dtype_must_match() {
    let d = ParameterDict::new("");
    let w = d.get("w", ParamSpec::new().dtype(DType::Float16)).unwrap();
    d.get("w", ParamSpec::new().dtype(DType::Float16)).unwrap();
    let (_, attr, desired, stored) = mismatch(d.get("w", ParamSpec::new().dtype(DType::Float32)));
    assert_eq!(
        (attr, desired.as_str(), stored.as_str()),
        ("dtype", "float32", "float16")
    );
    assert_eq!(w.dtype(), DType::Float16);
}

#[test]
fn get_multipliers_and_grad_req_must_match() {
    let d = ParameterDict::new("m_");
    let w = d
        .get("w", ParamSpec::new().lr_mult(2.0).wd_mult(0.0))
        .unwrap();
    d.get(
        "w",
        ParamSpec::new()
            .lr_mult(2.0)
            .wd_mult(0.0)
            .grad_req(GradReq::Write),
    )
    .unwrap();
    let (name, attr, desired, stored) = mismatch(d.get("w", ParamSpec::new().lr_mult(1.0)));
    assert_eq!(
        (name.as_str(), attr, desired.as_str(), stored.as_str()),
        ("m_w", "lr_mult", "1.0", "2.0")
    );
    let (_, attr, _, _) = mismatch(d.get("w", ParamSpec::new().wd_mult(1.0)));
    assert_eq!(attr, "wd_mult");
    let (_, attr, desired, stored) = mismatch(d.get("w", ParamSpec::new().grad_req(GradReq::Add)));
    assert_eq!(
        (attr, desired.as_str(), stored.as_str()),
        ("grad_req", "add", "write")
    );
    assert_eq!((w.lr_mult(), w.wd_mult()), (2.0, 0.0));
    assert_eq!(w.grad_req(), GradReq::Write);
}

#[test]
fn get_init_objects_compare_by_kind_and_kwargs() {
    let d = ParameterDict::new("");
    let w = d.get("w", ParamSpec::new().init(init::One)).unwrap();
    // A different instance of the same class with the same kwargs is equal.
    d.get("w", ParamSpec::new().init(init::One)).unwrap();
    let (_, attr, desired, stored) = mismatch(d.get("w", ParamSpec::new().init(init::Zero)));
    assert_eq!(
        (attr, desired.as_str(), stored.as_str()),
        ("init", r#"["zero", {}]"#, r#"["one", {}]"#)
    );

    let u = d
        .get("u", ParamSpec::new().init(init::Uniform::default()))
        .unwrap();
    d.get("u", ParamSpec::new().init(init::Uniform::new(0.07)))
        .unwrap();
    let (_, attr, _, _) = mismatch(d.get("u", ParamSpec::new().init(init::Uniform::new(0.1))));
    assert_eq!(attr, "init");
    assert_eq!(u.init(), Some(InitSpec::from(init::Uniform::default())));
    assert!(w.init().is_some());
}

#[test]
fn get_init_strings_compare_by_value_and_never_equal_objects() {
    let d = ParameterDict::new("");
    d.get("s", ParamSpec::new().init("zeros")).unwrap();
    d.get("s", ParamSpec::new().init(String::from("zeros")))
        .unwrap();
    let (_, attr, desired, stored) = mismatch(d.get("s", ParamSpec::new().init("zero")));
    assert_eq!(
        (attr, desired.as_str(), stored.as_str()),
        ("init", "zero", "zeros")
    );
    // MXNet: Zero() == 'zeros' is False.
    let (_, attr, _, _) = mismatch(d.get("s", ParamSpec::new().init(init::Zero)));
    assert_eq!(attr, "init");
}

#[test]
fn get_gives_an_init_to_a_parameter_without_one() {
    let d = ParameterDict::new("");
    let w = d.get("w", ParamSpec::new().shape([2])).unwrap();
    assert!(w.init().is_none());
    d.get("w", ParamSpec::new().init(Fill(3.0))).unwrap();
    assert_eq!(w.init(), Some(InitSpec::from(Fill(3.0))));
    w.initialize(cpu(0)).unwrap();
    assert_eq!(f32s(&w.data(None).unwrap()), [3.0, 3.0]);
}

#[test]
fn get_ignores_private_attributes_of_an_existing_parameter() {
    let d = ParameterDict::new("");
    let w = d.get("w", ParamSpec::new()).unwrap();
    d.get(
        "w",
        ParamSpec::new()
            .allow_deferred_init(true)
            .differentiable(false)
            .stype(StorageType::Csr)
            .grad_stype(StorageType::RowSparse),
    )
    .unwrap();
    assert!(!w.allow_deferred_init());
    assert!(w.differentiable());
    assert_eq!(w.grad_req(), GradReq::Write);
    assert_eq!(w.stype(), StorageType::Default);
    assert_eq!(w.grad_stype(), StorageType::Default);
}

#[test]
fn get_mismatch_changes_nothing() {
    let d = ParameterDict::new("");
    let w = d
        .get("w", ParamSpec::new().shape([0, 3]).dtype(DType::Float32))
        .unwrap();
    // The shape would merge and the init would be set, but the dtype conflicts.
    let err = d
        .get(
            "w",
            ParamSpec::new()
                .shape([4, 0])
                .init(Fill(1.0))
                .dtype(DType::Float64),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::ParameterAttributeMismatch {
            attribute: "dtype",
            ..
        }
    ));
    assert_eq!(w.shape(), Some(vec![0, 3]));
    assert!(w.init().is_none());
}

#[test]
fn mismatch_error_names_everything() {
    let d = ParameterDict::new("net_");
    d.get("w", ParamSpec::new().lr_mult(2.0)).unwrap();
    let err = d.get("w", ParamSpec::new().lr_mult(3.0)).unwrap_err();
    assert_eq!(err.parameter_name(), Some("net_w"));
    let msg = err.to_string();
    for part in ["'net_w'", "lr_mult", "'3.0'", "'2.0'"] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
}

#[test]
fn get_on_a_constant_checks_its_null_grad_req() {
    let d = ParameterDict::new("");
    let v = NDArray::from_vec(vec![1.0f32], &[1], cpu(0)).unwrap();
    d.get_constant("c", Some(&v)).unwrap();
    d.get("c", ParamSpec::new().grad_req(GradReq::Null).shape([1]))
        .unwrap();
    let (_, attr, _, _) = mismatch(d.get("c", ParamSpec::new().grad_req(GradReq::Write)));
    assert_eq!(attr, "grad_req");
}

// ---------------------------------------------------------------------- shared dicts

#[test]
fn shared_lookup_copies_the_parameter_into_self() {
    let base = ParameterDict::new("d0_");
    let w = base.get("weight", ParamSpec::new().shape([2, 2])).unwrap();
    // Block(params=...) gives the new dict the shared dict's prefix.
    let sharer = ParameterDict::with_shared(base.prefix(), Some(base.clone()));
    assert!(sharer.is_empty());
    assert!(!sharer.contains("d0_weight"));
    let got = sharer
        .get("weight", ParamSpec::new().shape([2, 2]))
        .unwrap();
    assert!(got.ptr_eq(&w), "the shared object itself");
    assert_eq!(sharer.keys(), ["d0_weight"], "copied into the sharing dict");
    // A name the shared dict lacks is created in the sharing dict only.
    sharer.get("bias", ParamSpec::new()).unwrap();
    assert_eq!(sharer.keys(), ["d0_weight", "d0_bias"]);
    assert_eq!(base.keys(), ["d0_weight"]);
    // get_param by full name does the same copy.
    base.get("extra", ParamSpec::new()).unwrap();
    let other = ParameterDict::with_shared("other_", Some(base.clone()));
    assert!(other.get_param("d0_extra").is_some());
    assert_eq!(other.keys(), ["d0_extra"]);
}

#[test]
fn shared_lookup_then_mismatch_still_copies() {
    let base = ParameterDict::new("");
    base.get("w", ParamSpec::new().shape([2])).unwrap();
    let sharer = ParameterDict::with_shared("", Some(base));
    assert!(sharer.get("w", ParamSpec::new().shape([3])).is_err());
    assert_eq!(
        sharer.keys(),
        ["w"],
        "MXNet's _get_impl copied it before the check"
    );
}

#[test]
fn concurrent_gets_create_one_parameter() {
    let d = ParameterDict::new("t_");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let d = d.clone();
            std::thread::spawn(move || d.get("w", ParamSpec::new().shape([3])).unwrap())
        })
        .collect();
    let got: Vec<Parameter> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(got.iter().all(|p| p.ptr_eq(&got[0])));
    assert_eq!(d.len(), 1);
}

// ---------------------------------------------------------------------- update, insert

#[test]
fn update_adds_entries_in_order() {
    let a = ParameterDict::new("a_");
    let aw = a.get("w", ParamSpec::new()).unwrap();
    let b = ParameterDict::new("b_");
    b.get("w", ParamSpec::new()).unwrap();
    b.get("b", ParamSpec::new()).unwrap();
    b.insert(aw.clone()).unwrap(); // the same object under the same name: no conflict
    a.update(&b).unwrap();
    assert_eq!(a.keys(), ["a_w", "b_w", "b_b"]);
    assert!(a.get_param("a_w").unwrap().ptr_eq(&aw));
    assert_eq!(a.prefix(), "a_", "update keeps the prefix");
    // Updating again, or with itself, changes nothing.
    a.update(&b).unwrap();
    a.update(&a.clone()).unwrap();
    assert_eq!(a.keys(), ["a_w", "b_w", "b_b"]);
}

#[test]
fn update_conflict_names_the_key_and_inserts_nothing() {
    let a = ParameterDict::new("");
    let x = a.get("x", ParamSpec::new()).unwrap();
    let b = ParameterDict::new("");
    b.get("new_first", ParamSpec::new()).unwrap();
    b.get("x", ParamSpec::new()).unwrap(); // a different object named "x"
    b.get("new_last", ParamSpec::new()).unwrap();
    match a.update(&b) {
        Err(Error::DuplicateParameter { name }) => assert_eq!(name, "x"),
        other => panic!("expected DuplicateParameter, got {other:?}"),
    }
    assert_eq!(a.keys(), ["x"], "nothing inserted");
    assert!(a.get_param("x").unwrap().ptr_eq(&x));
}

#[test]
fn insert_registers_parameters_made_elsewhere() {
    let d = ParameterDict::new("net_");
    let p = Parameter::new("free_p").with_shape([1]);
    d.insert(p.clone()).unwrap();
    assert_eq!(d.keys(), ["free_p"], "inserted under its own full name");
    d.insert(p.clone()).unwrap();
    assert_eq!(d.len(), 1);
    let err = d.insert(Parameter::new("free_p")).unwrap_err();
    assert!(matches!(err, Error::DuplicateParameter { ref name } if name == "free_p"));
    assert!(d.get_param("free_p").unwrap().ptr_eq(&p));
}

// ---------------------------------------------------------------------- get_constant

#[test]
fn get_constant_missing_without_value_is_an_error() {
    let d = ParameterDict::new("net_");
    match d.get_constant("c", None) {
        Err(Error::ConstantNotFound { name }) => assert_eq!(name, "net_c"),
        other => panic!("expected ConstantNotFound, got {other:?}"),
    }
    assert!(d.is_empty());
}

#[test]
fn get_constant_creates_then_checks_the_value() {
    let d = ParameterDict::new("net_");
    let v = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], cpu(0)).unwrap();
    let c = d.get_constant("c", Some(&v)).unwrap();
    assert!(c.is_constant());
    assert_eq!(c.name(), "net_c");
    assert_eq!(c.shape(), Some(vec![2, 2]));
    assert_eq!(c.grad_req(), GradReq::Null);
    assert_eq!(d.keys(), ["net_c"]);
    // The constant holds a copy: changing `v` later does not change it.
    v.fill(9.0).unwrap();
    let same = NDArray::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2], cpu(0)).unwrap();
    assert!(d.get_constant("c", Some(&same)).unwrap().ptr_eq(&c));
    assert!(d.get_constant("c", None).unwrap().ptr_eq(&c));

    match d.get_constant("c", Some(&v)) {
        Err(Error::ConstantValueMismatch {
            name,
            stored_shape,
            given_shape,
        }) => {
            assert_eq!(name, "net_c");
            assert_eq!((stored_shape, given_shape), (vec![2, 2], vec![2, 2]));
        }
        other => panic!("expected ConstantValueMismatch, got {other:?}"),
    }
    let flat = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4], cpu(0)).unwrap();
    assert!(matches!(
        d.get_constant("c", Some(&flat)),
        Err(Error::ConstantValueMismatch { .. })
    ));
    // The stored constant initializes to its own value even under a dict default.
    d.initialize(Fill(0.0), cpu(0), false).unwrap();
    assert_eq!(f32s(&c.data(None).unwrap()), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn get_constant_on_an_ordinary_parameter() {
    let d = ParameterDict::new("");
    let p = d.get("p", ParamSpec::new()).unwrap();
    let v = NDArray::from_vec(vec![0.0f32], &[1], cpu(0)).unwrap();
    match d.get_constant("p", Some(&v)) {
        Err(Error::NotAConstant { name }) => assert_eq!(name, "p"),
        other => panic!("expected NotAConstant, got {other:?}"),
    }
    // Without a value MXNet returns whatever is stored.
    assert!(d.get_constant("p", None).unwrap().ptr_eq(&p));
}

#[test]
fn get_constant_finds_a_shared_constant() {
    let base = ParameterDict::new("b_");
    let v = NDArray::from_vec(vec![5i32, 6], &[2], cpu(0)).unwrap();
    let c = base.get_constant("c", Some(&v)).unwrap();
    let sharer = ParameterDict::with_shared("b_", Some(base));
    assert!(sharer.get_constant("c", Some(&v)).unwrap().ptr_eq(&c));
    assert_eq!(sharer.keys(), ["b_c"]);
}

// ---------------------------------------------------------------------- initialize

#[test]
fn initialize_dict_init_is_only_the_default() {
    let d = ParameterDict::new("");
    let own = d
        .get("own", ParamSpec::new().shape([2]).init(Fill(1.0)))
        .unwrap();
    let plain = d.get("plain", ParamSpec::new().shape([2])).unwrap();
    d.initialize(Fill(5.0), [cpu(0), cpu(1)], false).unwrap();
    assert_eq!(
        f32s(&own.data(cpu(1)).unwrap()),
        [1.0, 1.0],
        "own init wins"
    );
    assert_eq!(f32s(&plain.data(cpu(0)).unwrap()), [5.0, 5.0]);
    assert_eq!(plain.list_ctx().unwrap(), [cpu(0), cpu(1)]);
}

#[test]
fn initialize_without_init_uses_uniform_007() {
    let d = ParameterDict::new("");
    let w = d.get("w", ParamSpec::new().shape([1000])).unwrap();
    d.initialize_with(InitOptions::new().ctx(cpu(0))).unwrap();
    let v = f32s(&w.data(None).unwrap());
    assert!(v.iter().all(|x| x.abs() <= 0.07));
    assert!(v.iter().any(|x| x.abs() > 0.05), "spread over the range");
    // The same default as passing it explicitly: equal initializers.
    assert_eq!(
        InitSpec::from(init::Uniform::default()),
        InitSpec::from(init::Uniform::new(0.07))
    );
}

#[test]
fn initialize_warns_unless_forced() {
    let d = ParameterDict::new("");
    let w = d.get("w", ParamSpec::new().shape([2])).unwrap();
    d.initialize(Fill(1.0), cpu(0), false).unwrap();
    let logs = warnings_of(|| d.initialize(Fill(2.0), cpu(0), false).unwrap());
    assert!(logs
        .iter()
        .any(|l| l.contains("'w'") && l.contains("already initialized")));
    assert_eq!(f32s(&w.data(None).unwrap()), [1.0, 1.0]);
    d.initialize(Fill(2.0), cpu(0), true).unwrap();
    assert_eq!(f32s(&w.data(None).unwrap()), [2.0, 2.0]);
}

#[test]
fn initialize_with_explicit_init_overrides_own() {
    let d = ParameterDict::new("");
    let w = d
        .get("w", ParamSpec::new().shape([1]).init(Fill(1.0)))
        .unwrap();
    d.initialize_with(InitOptions::new().init(Fill(7.0)).ctx(cpu(0)))
        .unwrap();
    assert_eq!(f32s(&w.data(None).unwrap()), [7.0]);
}

#[test]
fn initialize_defers_and_stops_at_the_first_error() {
    let d = ParameterDict::new("");
    let deferred = d
        .get(
            "deferred",
            ParamSpec::new().shape([0, 2]).allow_deferred_init(true),
        )
        .unwrap();
    let bad = d.get("bad", ParamSpec::new().shape([0, 2])).unwrap();
    let after = d.get("after", ParamSpec::new().shape([2])).unwrap();
    let err = d.initialize(Fill(1.0), cpu(0), false).unwrap_err();
    assert!(matches!(err, Error::UnknownParameterShape { ref name, .. } if name == "bad"));
    assert_eq!(deferred.state(), ParamState::Deferred);
    assert_eq!(bad.state(), ParamState::Uninitialized);
    assert_eq!(after.state(), ParamState::Uninitialized, "not reached");
}

// ---------------------------------------------------------------------- whole-dict operations

#[test]
fn zero_grad_zeroes_every_gradient_in_place() {
    let d = two_dense();
    d.initialize(Fill(0.0), [cpu(0), cpu(1)], false).unwrap();
    d.get_param("net_dense1_bias")
        .unwrap()
        .set_grad_req(GradReq::Null)
        .unwrap();
    let mut grads = Vec::new();
    for p in d.values() {
        if p.grad_req() != GradReq::Null {
            for g in p.list_grad().unwrap() {
                g.fill(3.0).unwrap();
                grads.push(g);
            }
        }
    }
    assert_eq!(grads.len(), 6);
    d.zero_grad().unwrap();
    for g in &grads {
        assert!(f32s(g).iter().all(|&x| x == 0.0), "same buffers zeroed");
    }
    // Uninitialized parameters have nothing to zero.
    two_dense().zero_grad().unwrap();
}

#[test]
fn reset_ctx_moves_every_parameter() {
    let d = two_dense();
    d.initialize(Fill(0.0), cpu(0), false).unwrap();
    d.reset_ctx([cpu(1), cpu(2)]).unwrap();
    for p in d.values() {
        assert_eq!(p.list_ctx().unwrap(), [cpu(1), cpu(2)]);
    }
    let w = d.get_param("net_dense0_weight").unwrap();
    assert_eq!(f32s(&w.data(cpu(2)).unwrap()), [1.0; 6], "values kept");
    assert!(w.data(cpu(0)).is_err());
    // Uninitialized parameters cannot be moved.
    assert!(matches!(
        two_dense().reset_ctx(cpu(0)),
        Err(Error::NotInitializedFor { .. })
    ));
}

#[test]
fn list_ctx_is_the_union_in_first_seen_order() {
    let d = ParameterDict::new("");
    let a = d.get("a", ParamSpec::new().shape([1])).unwrap();
    let b = d.get("b", ParamSpec::new().shape([1])).unwrap();
    let c = d
        .get("c", ParamSpec::new().shape([0]).allow_deferred_init(true))
        .unwrap();
    a.initialize_with(InitOptions::new().init(Fill(0.0)).ctx([cpu(1), cpu(0)]))
        .unwrap();
    b.initialize_with(InitOptions::new().init(Fill(0.0)).ctx([cpu(0), cpu(2)]))
        .unwrap();
    c.initialize([cpu(3), cpu(1)]).unwrap(); // deferred: its pending contexts count
    assert_eq!(d.list_ctx().unwrap(), [cpu(1), cpu(0), cpu(2), cpu(3)]);
    d.get("never", ParamSpec::new()).unwrap();
    match d.list_ctx() {
        Err(Error::ParameterNotInitialized { name }) => assert_eq!(name, "never"),
        other => panic!("expected ParameterNotInitialized, got {other:?}"),
    }
    assert!(ParameterDict::new("").list_ctx().unwrap().is_empty());
}

#[test]
fn cast_converts_every_parameter() {
    let d = two_dense();
    d.initialize(Fill(0.0), cpu(0), false).unwrap();
    let unset = d.get("unset", ParamSpec::new()).unwrap();
    d.cast(DType::Float64).unwrap();
    for p in d.values() {
        assert_eq!(p.dtype(), DType::Float64);
    }
    let w = d.get_param("net_dense0_weight").unwrap();
    assert_eq!(w.data(None).unwrap().to_vec::<f64>().unwrap(), [1.0; 6]);
    assert_eq!(w.grad(None).unwrap().dtype(), DType::Float64);
    assert_eq!(unset.dtype(), DType::Float64);
}

#[test]
fn freezing_weights_through_select_leaves_biases_alone() {
    let d = two_dense();
    d.initialize(Fill(0.0), cpu(0), false).unwrap();
    d.select(".*weight")
        .unwrap()
        .set_grad_req(GradReq::Null)
        .unwrap();
    for (name, p) in &d {
        if name.ends_with("weight") {
            assert_eq!(p.grad_req(), GradReq::Null, "{name}");
            assert!(
                matches!(p.grad(None), Err(Error::GradReqNull { .. })),
                "{name}: gradient memory freed"
            );
        } else {
            assert_eq!(p.grad_req(), GradReq::Write, "{name}");
            assert_eq!(f32s(&p.grad(None).unwrap()), [0.0, 0.0]);
        }
    }
}

#[test]
fn multipliers_are_set_on_every_parameter() {
    let d = two_dense();
    d.select(".*bias").unwrap().set_wd_mult(0.0);
    d.set_lr_mult(0.1);
    for (name, p) in &d {
        assert_eq!(p.lr_mult(), 0.1);
        let wd = if name.ends_with("bias") { 0.0 } else { 1.0 };
        assert_eq!(p.wd_mult(), wd, "{name}");
    }
}

#[test]
fn set_grad_req_respects_constants() {
    let d = ParameterDict::new("");
    let v = NDArray::from_vec(vec![1.0f32], &[1], cpu(0)).unwrap();
    let c = d.get_constant("c", Some(&v)).unwrap();
    let w = d
        .get("w", ParamSpec::new().grad_req(GradReq::Null))
        .unwrap();
    d.set_grad_req(GradReq::Add).unwrap();
    assert_eq!(c.grad_req(), GradReq::Null);
    assert_eq!(w.grad_req(), GradReq::Add);
}

// ---------------------------------------------------------------------- select

#[test]
fn select_matches_full_names_anchored_at_the_start() {
    let d = two_dense();
    assert!(
        d.select("weight").unwrap().is_empty(),
        "re.match, not search"
    );
    let w = d.select(".*weight").unwrap();
    assert_eq!(w.keys(), ["net_dense0_weight", "net_dense1_weight"]);
    assert_eq!(w.prefix(), "net_", "same prefix");
    assert!(w.shared().is_none());
    assert!(w
        .get_param("net_dense0_weight")
        .unwrap()
        .ptr_eq(&d.get_param("net_dense0_weight").unwrap()));
    // Only the start is anchored: a prefix of the name is enough.
    assert_eq!(d.select("net_dense1").unwrap().len(), 2);
    assert_eq!(
        d.select("").unwrap().keys(),
        d.keys(),
        "empty pattern selects all"
    );
    // The result is a new dict: adding to it leaves the original alone.
    w.get("extra", ParamSpec::new()).unwrap();
    assert!(!d.contains("net_extra"));
}

#[test]
fn select_anchors_every_alternative() {
    let d = ParameterDict::new("");
    for n in ["a_w", "a_b", "b_w", "b_b", "zb_b", "xa_w"] {
        d.get(n, ParamSpec::new()).unwrap();
    }
    // `^a_w|b_b` would also pick zb_b; the whole alternation must be anchored.
    assert_eq!(d.select("a_w|b_b").unwrap().keys(), ["a_w", "b_b"]);
    assert_eq!(d.select("(a|b)_w").unwrap().keys(), ["a_w", "b_w"]);
}

#[test]
fn select_rejects_invalid_patterns() {
    let d = two_dense();
    match d.select("dense[0") {
        Err(Error::InvalidRegex { pattern, reason }) => {
            assert_eq!(pattern, "dense[0");
            assert!(!reason.is_empty());
        }
        other => panic!("expected InvalidRegex, got {other:?}"),
    }
    assert!(matches!(
        d.select("net)|(.*"),
        Err(Error::InvalidRegex { .. })
    ));
}

// ---------------------------------------------------------------------- printing

#[test]
fn display_matches_mxnet_repr() {
    assert_eq!(ParameterDict::new("x_").to_string(), "x_ (\n\n)");
    assert_eq!(ParameterDict::new("").to_string(), "(\n\n)");

    let d = ParameterDict::new("a_");
    d.get("w", ParamSpec::new().shape([1])).unwrap();
    d.get("b", ParamSpec::new()).unwrap();
    assert_eq!(
        d.to_string(),
        "a_ (\n  Parameter a_w (shape=(1,), dtype=float32)\n  Parameter a_b (shape=None, dtype=float32)\n)"
    );

    let e = ParameterDict::new("");
    e.get("w", ParamSpec::new().shape([2, 3]).dtype(DType::Float64))
        .unwrap();
    let v = NDArray::from_vec(vec![1.0f32, 2.0], &[2], cpu(0)).unwrap();
    e.get_constant("c", Some(&v)).unwrap();
    assert_eq!(
        e.to_string(),
        "(\n  Parameter w (shape=(2, 3), dtype=float64)\n  Constant c (shape=(2,), dtype=float32)\n)"
    );
}

#[test]
fn debug_names_prefix_shared_and_parameters() {
    let base = ParameterDict::new("base_");
    let d = ParameterDict::with_shared("net_", Some(base));
    d.get("w", ParamSpec::new().shape([2])).unwrap();
    let s = format!("{d:?}");
    for part in ["ParameterDict", "net_", "base_", "net_w (2,)"] {
        assert!(s.contains(part), "{part} missing from {s}");
    }
}

#[test]
fn parameters_stay_shared_between_dict_and_callers() {
    let d = ParameterDict::new("");
    let w = d.get("w", ParamSpec::new().shape([1])).unwrap();
    let via_dict = d.get_param("w").unwrap();
    w.set_lr_mult(4.0);
    assert_eq!(via_dict.lr_mult(), 4.0);
}
