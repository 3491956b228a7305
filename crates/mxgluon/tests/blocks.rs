//! Blocks: naming, parameter collection and selection, sharing, deferred initialization on the
//! first forward pass, and whole-model operations (spec §4, §1.9).

use std::sync::Arc;

use mxgluon::gluon::nn::{BatchNorm, Dense, Dropout, Embedding, Flatten, LayerNorm, Sequential};
use mxgluon::gluon::{Block, InitOptions, ParamState};
use mxgluon::nd::ActType;
use mxgluon::{autograd, init, nd, Context, DType, Error, GradReq};

fn cpu(i: u32) -> Context {
    Context::cpu(i)
}

/// A model with its own parameter, a direct child and a nested Sequential (spec §4.3's example).
fn nested() -> Sequential {
    let net = Sequential::with_prefix(Some("net_"), None);
    {
        let _s = net.name_scope();
        net.add(Dense::builder(4).in_units(3).build().unwrap());
        let body = Sequential::new();
        {
            let _b = body.name_scope();
            body.add(Dense::builder(4).in_units(4).build().unwrap());
            body.add(
                Dense::builder(2)
                    .in_units(4)
                    .use_bias(false)
                    .build()
                    .unwrap(),
            );
        }
        net.add(body);
    }
    net
}

#[test]
fn automatic_prefixes_count_per_hint_and_scope() {
    let a = Dense::new(2).unwrap();
    let b = Dense::new(2).unwrap();
    let s = Sequential::new();
    assert_eq!(a.prefix(), "dense0_");
    assert_eq!(b.prefix(), "dense1_");
    assert_eq!(s.prefix(), "sequential0_");
    assert_eq!(a.name(), "dense0");
    {
        let _scope = s.name_scope();
        let c = Dense::new(2).unwrap();
        assert_eq!(c.prefix(), "sequential0_dense0_");
        assert_eq!(c.weight().name(), "sequential0_dense0_weight");
    }
    // Outside the scope the global counter continues.
    assert_eq!(Dense::new(1).unwrap().prefix(), "dense2_");
}

#[test]
fn collect_params_in_registration_order_and_select() {
    let net = nested();
    let keys = net.collect_params().unwrap().keys();
    assert_eq!(
        keys,
        [
            "net_dense0_weight",
            "net_dense0_bias",
            "net_sequential0_dense0_weight",
            "net_sequential0_dense0_bias",
            "net_sequential0_dense1_weight",
        ]
    );
    let w = net.collect_params_select(".*weight").unwrap().keys();
    assert_eq!(
        w,
        [
            "net_dense0_weight",
            "net_sequential0_dense0_weight",
            "net_sequential0_dense1_weight"
        ]
    );
    // Anchored at the start: "weight" matches nothing.
    assert!(net.collect_params_select("weight").unwrap().is_empty());
    assert!(net.collect_params_select("(").is_err());
    let structural: Vec<String> = net
        .collect_params_with_prefix("")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        structural,
        ["0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.1.weight"]
    );
}

#[test]
fn sharing_parameters_uses_the_same_objects() {
    let a = Dense::builder(3).in_units(2).build().unwrap();
    let b = Dense::builder(3)
        .in_units(2)
        .prefix("other_")
        .params(a.params())
        .build()
        .unwrap();
    assert_eq!(b.prefix(), "other_");
    assert!(a.weight().ptr_eq(b.weight()));
    assert_eq!(b.weight().name(), a.weight().name());
    a.initialize(Some(init::One.into()), cpu(0)).unwrap();
    let y = b.forward(&nd::ones(&[1, 2], None).unwrap()).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![2.0; 3]);
}

#[test]
fn deferred_dense_completes_on_every_context_at_first_forward() {
    let d = Dense::builder(3)
        .weight_initializer(init::One)
        .build()
        .unwrap();
    d.initialize(None, vec![cpu(0), cpu(1)]).unwrap();
    assert_eq!(d.weight().state(), ParamState::Deferred);
    assert!(matches!(
        d.weight().data(cpu(0)),
        Err(Error::DeferredInitialization { .. })
    ));
    let y = d.forward(&nd::ones(&[2, 7], cpu(1)).unwrap()).unwrap();
    assert_eq!(y.shape(), &[2, 3]);
    assert_eq!(d.weight().shape(), Some(vec![3, 7]));
    for c in [cpu(0), cpu(1)] {
        assert_eq!(
            d.weight().data(c).unwrap().to_vec::<f32>().unwrap(),
            vec![1.0; 21]
        );
        assert_eq!(
            d.bias().unwrap().data(c).unwrap().to_vec::<f32>().unwrap(),
            vec![0.0; 3]
        );
    }
    assert_eq!(d.to_string(), "Dense(7 -> 3, linear)");
}

#[test]
fn concurrent_first_forwards_complete_once() {
    let d = Arc::new(Dense::builder(5).build().unwrap());
    d.initialize(None, vec![cpu(0), cpu(1)]).unwrap();
    std::thread::scope(|s| {
        for c in [cpu(0), cpu(1)] {
            let d = d.clone();
            s.spawn(move || {
                let y = d.forward(&nd::ones(&[2, 4], c).unwrap()).unwrap();
                assert_eq!(y.shape(), &[2, 5]);
            });
        }
    });
    assert_eq!(
        d.weight().data(cpu(0)).unwrap().to_vec::<f32>().unwrap(),
        d.weight().data(cpu(1)).unwrap().to_vec::<f32>().unwrap()
    );
}

#[test]
fn failed_shape_inference_leaves_parameters_deferred() {
    let d = Dense::builder(3).build().unwrap();
    d.initialize(None, cpu(0)).unwrap();
    let err = d.forward(&nd::NDArray::scalar(1.0f32, cpu(0)).unwrap());
    assert!(
        matches!(err, Err(Error::ShapeInferenceFailed { .. })),
        "{err:?}"
    );
    assert_eq!(d.weight().state(), ParamState::Deferred);
    // A later good input still completes it.
    assert!(d.forward(&nd::ones(&[1, 2], None).unwrap()).is_ok());
}

#[test]
fn uninitialized_block_errors_name_the_parameter() {
    let d = Dense::builder(3).in_units(2).build().unwrap();
    let err = d.forward(&nd::ones(&[1, 2], None).unwrap()).unwrap_err();
    assert_eq!(err.parameter_name(), Some(d.weight().name()));
}

#[test]
fn whole_model_zero_grad_cast_reset_ctx() {
    let net = nested();
    net.initialize(Some(init::One.into()), cpu(0)).unwrap();
    let x = nd::ones(&[2, 3], None).unwrap();
    let y = {
        let _r = autograd::record();
        net.forward(&x).unwrap().sum().unwrap()
    };
    y.backward().unwrap();
    let params = net.collect_params().unwrap();
    let w0 = params.get_param("net_dense0_weight").unwrap();
    assert!(w0
        .grad(cpu(0))
        .unwrap()
        .to_f64_vec()
        .iter()
        .any(|&g| g != 0.0));
    net.zero_grad().unwrap();
    for p in params.values() {
        assert!(p
            .grad(cpu(0))
            .unwrap()
            .to_f64_vec()
            .iter()
            .all(|&g| g == 0.0));
    }
    net.cast(DType::Float64).unwrap();
    for p in params.values() {
        assert_eq!(p.dtype(), DType::Float64);
        assert_eq!(p.data(cpu(0)).unwrap().dtype(), DType::Float64);
    }
    net.reset_ctx(vec![cpu(1), cpu(2)].into()).unwrap();
    assert_eq!(w0.list_ctx().unwrap(), vec![cpu(1), cpu(2)]);
    let y = net
        .forward(
            &nd::ones(&[2, 3], cpu(2))
                .unwrap()
                .astype(DType::Float64)
                .unwrap(),
        )
        .unwrap();
    assert_eq!(y.context(), cpu(2));
}

#[test]
fn initialize_twice_warns_and_force_reinit_reinitializes() {
    let d = Dense::builder(2).in_units(2).build().unwrap();
    d.initialize(Some(init::One.into()), cpu(0)).unwrap();
    d.initialize(Some(init::Zero.into()), cpu(0)).unwrap();
    assert_eq!(
        d.weight().data(cpu(0)).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0; 4]
    );
    d.initialize_with(
        InitOptions::new()
            .default_init(init::Zero)
            .ctx(cpu(0))
            .force_reinit(true),
    )
    .unwrap();
    assert_eq!(
        d.weight().data(cpu(0)).unwrap().to_vec::<f32>().unwrap(),
        vec![0.0; 4]
    );
}

#[test]
fn frozen_layer_gets_no_gradient_and_no_gradient_memory() {
    let net = nested();
    net.initialize(Some(init::One.into()), cpu(0)).unwrap();
    let frozen = net.collect_params_select("net_dense0_.*").unwrap();
    frozen.set_grad_req(GradReq::Null).unwrap();
    let x = nd::ones(&[2, 3], None).unwrap();
    let y = {
        let _r = autograd::record();
        net.forward(&x).unwrap().sum().unwrap()
    };
    y.backward().unwrap();
    for p in frozen.values() {
        assert!(matches!(p.grad(cpu(0)), Err(Error::GradReqNull { .. })));
        assert!(p.data(cpu(0)).unwrap().grad().is_none());
    }
    let w1 = net
        .collect_params()
        .unwrap()
        .get_param("net_sequential0_dense0_weight")
        .unwrap();
    assert!(w1
        .grad(cpu(0))
        .unwrap()
        .to_f64_vec()
        .iter()
        .any(|&g| g != 0.0));
}

#[test]
fn batchnorm_running_stats_are_frozen_parameters_updated_in_training() {
    let bn = BatchNorm::builder().build().unwrap();
    bn.initialize(None, cpu(0)).unwrap();
    for p in [bn.running_mean(), bn.running_var()] {
        assert_eq!(p.grad_req(), GradReq::Null);
        assert!(!p.differentiable());
    }
    let x = nd::array(&[1.0f32, 10.0, 3.0, 30.0], &[2, 2], None).unwrap();
    // Predict mode: running stats (0, 1) are used and not updated.
    let y = bn.forward(&x).unwrap();
    let expect: Vec<f32> = [1.0f32, 10.0, 3.0, 30.0]
        .iter()
        .map(|v| v / (1.0f32 + 1e-5).sqrt())
        .collect();
    for (a, b) in y.to_vec::<f32>().unwrap().iter().zip(&expect) {
        assert!((a - b).abs() < 1e-5);
    }
    assert_eq!(
        bn.running_mean()
            .data(cpu(0))
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        vec![0.0, 0.0]
    );
    // Training mode: batch statistics; running mean moves by (1 - momentum) · batch mean.
    let y = {
        let _r = autograd::record();
        bn.forward(&x).unwrap()
    };
    let rm = bn
        .running_mean()
        .data(cpu(0))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert!(
        (rm[0] - 0.2).abs() < 1e-5 && (rm[1] - 2.0).abs() < 1e-5,
        "{rm:?}"
    );
    let v = y.to_vec::<f32>().unwrap();
    assert!(
        (v[0] + 1.0).abs() < 1e-3 && (v[2] - 1.0).abs() < 1e-3,
        "{v:?}"
    );
    assert!(bn
        .to_string()
        .starts_with("BatchNorm(axis=1, eps=1e-5, momentum=0.9"));
}

#[test]
fn layers_infer_their_shapes() {
    let ln = LayerNorm::builder().build().unwrap();
    ln.initialize(None, cpu(0)).unwrap();
    let y = ln.forward(&nd::ones(&[2, 5], None).unwrap()).unwrap();
    assert_eq!(ln.gamma().shape(), Some(vec![5]));
    assert_eq!(y.shape(), &[2, 5]);
    let e = Embedding::builder(10, 3).build().unwrap();
    e.initialize(None, cpu(0)).unwrap();
    let y = e
        .forward(&nd::array(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], None).unwrap())
        .unwrap();
    assert_eq!(y.shape(), &[2, 2, 3]);
    let f = Flatten::new();
    assert_eq!(
        f.forward(&nd::ones(&[2, 3, 4], None).unwrap())
            .unwrap()
            .shape(),
        &[2, 12]
    );
}

#[test]
fn dropout_is_identity_in_predict_mode_and_scales_in_training() {
    let d = Dropout::new(0.5).unwrap();
    let x = nd::ones(&[1000], None).unwrap();
    assert_eq!(
        d.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0; 1000]
    );
    let y = {
        let _t = autograd::train_mode();
        d.forward(&x).unwrap().to_vec::<f32>().unwrap()
    };
    assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    let kept = y.iter().filter(|&&v| v == 2.0).count();
    assert!((350..650).contains(&kept), "{kept}");
    assert!(Dropout::new(1.0).is_err());
}

#[test]
fn model_display_lists_children() {
    let net = Sequential::new();
    {
        let _s = net.name_scope();
        net.add(
            Dense::builder(8)
                .activation(ActType::Relu)
                .in_units(4)
                .build()
                .unwrap(),
        );
        net.add(Dropout::new(0.25).unwrap());
        net.add(Dense::builder(2).build().unwrap());
    }
    assert_eq!(
        net.to_string(),
        "Sequential(\n  (0): Dense(4 -> 8, Activation(relu))\n  (1): Dropout(p = 0.25, axes=())\n  (2): Dense(None -> 2, linear)\n)"
    );
}

/// An initializer that always fails.
#[derive(Debug)]
struct Failing;
impl mxgluon::init::Initializer for Failing {
    fn kind(&self) -> String {
        "failing".into()
    }
    fn kwargs(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
    fn init_weight(&self, name: &str, _arr: &nd::NDArray) -> mxgluon::Result<()> {
        Err(Error::invalid_arg(
            "failing",
            format!("cannot initialize {name}"),
        ))
    }
}

#[test]
fn failed_deferred_completion_leaves_the_parameter_uninitialized() {
    let d = Dense::builder(3)
        .weight_initializer(Failing)
        .build()
        .unwrap();
    d.initialize(None, vec![cpu(0), cpu(1)]).unwrap();
    assert!(d.forward(&nd::ones(&[2, 4], None).unwrap()).is_err());
    // Spec §1.9: the deferred record was cleared before the initializer ran.
    assert_eq!(d.weight().state(), ParamState::Uninitialized);
    assert!(matches!(
        d.weight().data(cpu(0)),
        Err(Error::ParameterNotInitialized { .. })
    ));
    // The shape was inferred all the same.
    assert_eq!(d.weight().shape(), Some(vec![3, 4]));
}
