//! Behaviour of `gluon::Constant` (spec §2).

use mxgluon::gluon::{InitOptions, ParamState};

mod common;
use common::{warnings_of, Fill};
use mxgluon::{Constant, Context, DType, Error, GradReq, NDArray, Parameter};

fn cpu(i: u32) -> Context {
    Context::cpu(i)
}

fn value_2x2() -> NDArray {
    NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], cpu(0)).unwrap()
}

fn defaults() -> InitOptions {
    InitOptions::new().default_init(Fill(0.0))
}

#[test]
fn takes_shape_and_dtype_from_value() {
    let c = Constant::new("const", &value_2x2()).unwrap();
    assert_eq!(c.name(), "const");
    assert_eq!(c.shape(), Some(vec![2, 2]));
    assert_eq!(c.dtype(), DType::Float32);
    assert_eq!(c.grad_req(), GradReq::Null);
    assert_eq!(c.lr_mult(), 1.0);
    assert_eq!(c.wd_mult(), 1.0);
    assert!(c.differentiable());
    assert!(c.init().is_some());
    assert!(c.is_constant());
    let h = NDArray::from_vec(vec![1i32, 2], &[2], cpu(0)).unwrap();
    assert_eq!(Constant::new("i", &h).unwrap().dtype(), DType::Int32);
}

#[test]
fn value_is_copied() {
    let v = value_2x2();
    let c = Constant::new("const", &v).unwrap();
    v.fill(0.0).unwrap();
    assert!(!c.value().shares_memory_with(&v));
    c.initialize_with(defaults().ctx(cpu(0))).unwrap();
    assert_eq!(
        c.data(None).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, 2.0, 3.0, 4.0]
    );
}

#[test]
fn initialize_fills_every_context_with_the_value() {
    let c = Constant::new("const", &value_2x2()).unwrap();
    c.initialize_with(defaults().ctx([cpu(0), cpu(1)])).unwrap();
    let a = c.data(cpu(0)).unwrap();
    let b = c.data(cpu(1)).unwrap();
    assert!(!a.shares_memory_with(&b));
    assert!(!a.shares_memory_with(c.value()));
    for d in [a, b] {
        assert_eq!(d.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    }
}

#[test]
fn grad_req_stays_null_with_a_warning() {
    let c = Constant::new("const", &value_2x2()).unwrap();
    let logs = warnings_of(|| c.set_grad_req(GradReq::Write).unwrap());
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].contains("\"const\"") && logs[0].contains("write") && logs[0].contains("ignored"),
        "{}",
        logs[0]
    );
    assert_eq!(c.grad_req(), GradReq::Null);
    // Through the Parameter handle too.
    let p: &Parameter = c.as_parameter();
    let logs = warnings_of(|| p.set_grad_req(GradReq::Add).unwrap());
    assert_eq!(logs.len(), 1);
    assert_eq!(p.grad_req(), GradReq::Null);
    // Setting null is silent.
    assert!(warnings_of(|| c.set_grad_req(GradReq::Null).unwrap()).is_empty());
    c.initialize_with(defaults().ctx(cpu(0))).unwrap();
    let e = c.grad(None).unwrap_err();
    assert!(matches!(&e, Error::GradReqNull { name } if name == "const"));
}

#[test]
fn display_says_constant() {
    let c = Constant::new("const", &value_2x2()).unwrap();
    assert_eq!(
        c.to_string(),
        "Constant const (shape=(2, 2), dtype=float32)"
    );
    assert_eq!(
        c.as_parameter().to_string(),
        "Constant const (shape=(2, 2), dtype=float32)"
    );
    assert_eq!(format!("{c:?}"), c.to_string());
}

#[test]
fn initializer_dumps_the_value() {
    let c = Constant::new("const", &value_2x2()).unwrap();
    let init = c.init().unwrap().resolve().unwrap();
    assert_eq!(init.kind(), "constant");
    let dumped: serde_json::Value = serde_json::from_str(&init.dumps()).unwrap();
    assert_eq!(
        dumped,
        serde_json::json!(["constant", {"value": [[1.0, 2.0], [3.0, 4.0]]}])
    );
    let i = Constant::new(
        "i",
        &NDArray::from_vec(vec![1i32, -2, 3], &[3], cpu(0)).unwrap(),
    )
    .unwrap();
    let dumped: serde_json::Value =
        serde_json::from_str(&i.init().unwrap().resolve().unwrap().dumps()).unwrap();
    assert_eq!(
        dumped,
        serde_json::json!(["constant", {"value": [1, -2, 3]}])
    );
}

#[test]
fn default_init_does_not_override_the_value() {
    let c = Constant::new("const", &value_2x2()).unwrap();
    c.initialize_with(InitOptions::new().default_init(Fill(9.0)).ctx(cpu(0)))
        .unwrap();
    assert_eq!(
        c.data(None).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, 2.0, 3.0, 4.0]
    );
}

#[test]
fn explicit_init_with_force_reinit_overrides() {
    let c = Constant::new("const", &value_2x2()).unwrap();
    c.initialize_with(defaults().ctx(cpu(0))).unwrap();
    c.initialize_with(InitOptions::new().init(Fill(0.0)).force_reinit(true))
        .unwrap();
    assert_eq!(c.data(None).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 4]);
}

#[test]
fn scalar_value_cannot_initialize_in_legacy_mode() {
    let c = Constant::new("s", &NDArray::scalar(2.0f32, cpu(0)).unwrap()).unwrap();
    assert_eq!(c.shape(), Some(vec![]));
    let e = c.initialize_with(defaults().ctx(cpu(0))).unwrap_err();
    assert!(matches!(&e, Error::UnknownParameterShape { name, .. } if name == "s"));
    assert_eq!(c.state(), ParamState::Uninitialized);
}

#[test]
fn set_data_still_works() {
    let c = Constant::new("const", &value_2x2()).unwrap();
    c.initialize_with(defaults().ctx(cpu(0))).unwrap();
    c.set_data(&NDArray::full(&[2, 2], 5.0, DType::Float32, cpu(0)).unwrap())
        .unwrap();
    assert_eq!(c.data(None).unwrap().to_vec::<f32>().unwrap(), vec![5.0; 4]);
}

#[test]
fn parameter_view_is_the_same_parameter() {
    let c = Constant::new("const", &value_2x2()).unwrap();
    let p: Parameter = c.clone().into();
    p.initialize_with(defaults().ctx(cpu(0))).unwrap();
    assert_eq!(c.state(), ParamState::Initialized);
    assert!(p.ptr_eq(c.as_parameter()));
    assert!(c.clone().into_parameter().ptr_eq(&p));
}
