//! Tests of the initializer catalogue, registry, Mixed and Load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mxgluon::init::{
    self, Bilinear, ConstValue, Constant, FactorType, Initializer, LSTMBias, Load, MSRAPrelu,
    Mixed, Normal, One, Orthogonal, RandType, RndType, Uniform, Xavier, Zero,
};
use mxgluon::{random, Context, DType, Error, NDArray};

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn ctx() -> Context {
    Context::cpu(0)
}

fn zeros(shape: &[usize]) -> NDArray {
    NDArray::zeros(shape, DType::Float32, ctx()).unwrap()
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n)
}

fn all() -> Vec<Arc<dyn Initializer>> {
    vec![
        Arc::new(Zero),
        Arc::new(One),
        Arc::new(Constant::new(2.5)),
        Arc::new(Constant::new(2)),
        Arc::new(Constant::from_value(
            ConstValue::from_json(&serde_json::json!([[1.0, 2.0], [3.0, 4.5]])).unwrap(),
        )),
        Arc::new(Uniform::default()),
        Arc::new(Uniform::new(1)),
        Arc::new(Normal::default()),
        Arc::new(Xavier::default()),
        Arc::new(Xavier::new(RndType::Gaussian, FactorType::Out, 2.34)),
        Arc::new(MSRAPrelu::default()),
        Arc::new(MSRAPrelu::new(FactorType::In, 0)),
        Arc::new(Orthogonal::default()),
        Arc::new(Orthogonal::new(2, RandType::Normal)),
        Arc::new(Bilinear),
        Arc::new(LSTMBias::default()),
        Arc::new(LSTMBias::new(2)),
    ]
}

#[test]
fn dumps_match_mxnet() {
    let cases: Vec<(Arc<dyn Initializer>, &str)> = vec![
        (
            Arc::new(Uniform::default()),
            r#"["uniform", {"scale": 0.07}]"#,
        ),
        (
            Arc::new(Xavier::default()),
            r#"["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 3}]"#,
        ),
        (Arc::new(Zero), r#"["zero", {}]"#),
        (Arc::new(One), r#"["one", {}]"#),
        (
            Arc::new(Constant::new(2.5)),
            r#"["constant", {"value": 2.5}]"#,
        ),
        (
            Arc::new(Normal::default()),
            r#"["normal", {"sigma": 0.01}]"#,
        ),
        (
            Arc::new(MSRAPrelu::default()),
            r#"["msraprelu", {"factor_type": "avg", "slope": 0.25}]"#,
        ),
        (
            Arc::new(Orthogonal::default()),
            r#"["orthogonal", {"scale": 1.414, "rand_type": "uniform"}]"#,
        ),
        (Arc::new(Bilinear), r#"["bilinear", {}]"#),
        (
            Arc::new(LSTMBias::default()),
            r#"["lstmbias", {"forget_bias": 1.0}]"#,
        ),
        (Arc::new(Uniform::new(1)), r#"["uniform", {"scale": 1}]"#),
        (
            Arc::new(Normal::new(1e-5)),
            r#"["normal", {"sigma": 1e-05}]"#,
        ),
        (
            Arc::new(Constant::from_ndarray(
                &NDArray::ones(&[2], DType::Float32, ctx()).unwrap(),
            )),
            r#"["constant", {"value": [1.0, 1.0]}]"#,
        ),
        (
            Arc::new(Constant::from_ndarray(
                &NDArray::from_vec(vec![1i32, 2, 3, 4], &[2, 2], ctx()).unwrap(),
            )),
            r#"["constant", {"value": [[1, 2], [3, 4]]}]"#,
        ),
    ];
    for (i, s) in cases {
        assert_eq!(i.dumps(), s);
    }
    assert_eq!(
        init::default_initializer().dumps(),
        r#"["uniform", {"scale": 0.07}]"#
    );
}

#[test]
fn create_round_trips_every_initializer() {
    for i in all() {
        let d = i.dumps();
        let c = init::create(&d).unwrap();
        assert_eq!(c.dumps(), d);
        assert!(init::equal(c.as_ref(), i.as_ref()), "{d}");
    }
}

#[test]
fn create_from_every_name_and_form() {
    let expect = [
        ("zero", r#"["zero", {}]"#),
        ("zeros", r#"["zero", {}]"#),
        ("one", r#"["one", {}]"#),
        ("ones", r#"["one", {}]"#),
        ("uniform", r#"["uniform", {"scale": 0.07}]"#),
        ("normal", r#"["normal", {"sigma": 0.01}]"#),
        (
            "xavier",
            r#"["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 3}]"#,
        ),
        (
            "msraprelu",
            r#"["msraprelu", {"factor_type": "avg", "slope": 0.25}]"#,
        ),
        (
            "orthogonal",
            r#"["orthogonal", {"scale": 1.414, "rand_type": "uniform"}]"#,
        ),
        ("bilinear", r#"["bilinear", {}]"#),
        ("lstmbias", r#"["lstmbias", {"forget_bias": 1.0}]"#),
    ];
    for (name, d) in expect {
        assert_eq!(init::create(name).unwrap().dumps(), d);
        assert_eq!(init::create(&name.to_uppercase()).unwrap().dumps(), d);
        assert_eq!(
            init::create(&format!("[\"{name}\", {{}}]"))
                .unwrap()
                .dumps(),
            d
        );
        assert_eq!(
            init::create(&format!("{{\"initializer\": \"{name}\"}}"))
                .unwrap()
                .dumps(),
            d
        );
    }
    // constant needs its value
    assert!(matches!(
        init::create("constant"),
        Err(Error::InvalidInitializer { .. })
    ));
    let c = init::create(r#"{"initializer": "constant", "value": [[1, 2]]}"#).unwrap();
    assert_eq!(c.dumps(), r#"["constant", {"value": [[1, 2]]}]"#);
    let x = init::create(r#"{"initializer": "Xavier", "magnitude": 2.0, "rnd_type": "gaussian"}"#)
        .unwrap();
    assert_eq!(
        x.dumps(),
        r#"["xavier", {"rnd_type": "gaussian", "factor_type": "avg", "magnitude": 2.0}]"#
    );
    let names = init::registered_names();
    for n in [
        "zero",
        "zeros",
        "one",
        "ones",
        "constant",
        "uniform",
        "normal",
        "xavier",
        "msraprelu",
        "orthogonal",
        "bilinear",
        "lstmbias",
    ] {
        assert!(names.iter().any(|k| k == n), "{n}");
    }
}

#[test]
fn create_errors() {
    match init::create("nope") {
        Err(Error::UnknownInitializer { name, known }) => {
            assert_eq!(name, "nope");
            assert!(known.iter().any(|k| k == "xavier"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        init::create(r#"["nope", {}]"#),
        Err(Error::UnknownInitializer { .. })
    ));
    for bad in [
        r#"["uniform", {"scale": "big"}]"#,
        r#"["uniform", {"scal": 1}]"#,
        r#"["uniform", {"scale": 1}"#,
        r#"["uniform", 3]"#,
        r#"[3, {}]"#,
        r#"{"scale": 1}"#,
        r#"{"initializer": 3}"#,
        r#"["xavier", {"rnd_type": "cauchy"}]"#,
        r#"["xavier", {"factor_type": "mid"}]"#,
        r#"["orthogonal", {"rand_type": "gaussian"}]"#,
        r#"["constant", {"value": [[1, 2], [3]]}]"#,
        r#"["constant", {"value": "x"}]"#,
        r#"["zero", {"x": 1}]"#,
    ] {
        assert!(
            matches!(init::create(bad), Err(Error::InvalidInitializer { .. })),
            "{bad}: {:?}",
            init::create(bad)
        );
    }
}

#[test]
fn register_user_initializer() {
    init::register("MyConst", |kw| {
        let k = init::Kwargs::new("myconst", kw, &["v"])?;
        Ok(Arc::new(Constant::new(k.num("v", init::Num::Float(7.0))?)) as Arc<dyn Initializer>)
    });
    let a = zeros(&[3]);
    init::create("myconst")
        .unwrap()
        .init_weight("a", &a)
        .unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![7.0; 3]);
    init::create(r#"["MYCONST", {"v": 1.5}]"#)
        .unwrap()
        .init_weight("a", &a)
        .unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.5; 3]);
    assert!(init::create(r#"["myconst", {"w": 1.5}]"#).is_err());
}

#[test]
fn equality_like_mxnet() {
    assert!(init::equal(&Uniform::default(), &Uniform::new(0.07)));
    assert!(!init::equal(&Uniform::default(), &Uniform::new(0.1)));
    assert!(init::equal(
        &Xavier::default(),
        &Xavier::new(RndType::Uniform, FactorType::Avg, 3.0)
    ));
    assert!(!init::equal(&Zero, &One));
}

#[test]
fn zero_one_constant_exact() {
    for dt in [
        DType::Float32,
        DType::Float64,
        DType::Float16,
        DType::Int32,
        DType::UInt8,
    ] {
        let a = NDArray::full(&[2, 3], 9.0, dt, ctx()).unwrap();
        Zero.init_weight("a", &a).unwrap();
        assert_eq!(a.to_f64_vec(), vec![0.0; 6]);
        One.init_weight("a", &a).unwrap();
        assert_eq!(a.to_f64_vec(), vec![1.0; 6]);
        Constant::new(2.5).init_weight("a", &a).unwrap();
        let want = if dt.is_float() { 2.5 } else { 2.0 };
        assert_eq!(a.to_f64_vec(), vec![want; 6]);
    }
    // broadcasting array constants
    let a = zeros(&[2, 3]);
    let row = Constant::from_value(ConstValue::from_json(&serde_json::json!([1, 2, 3])).unwrap());
    row.init_weight("a", &a).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1., 2., 3., 1., 2., 3.]);
    let col = Constant::from_value(ConstValue::from_json(&serde_json::json!([[1], [2]])).unwrap());
    col.init_weight("a", &a).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1., 1., 1., 2., 2., 2.]);
    let bad = Constant::from_value(ConstValue::from_json(&serde_json::json!([1, 2])).unwrap());
    assert!(matches!(
        bad.init_weight("a", &a),
        Err(Error::InitializerFailed { .. })
    ));
}

#[test]
fn uniform_and_normal_statistics() {
    let _g = lock();
    random::seed(11);
    let n = 1 << 20;
    let a = zeros(&[1024, 1024]);
    Uniform::default().init_weight("w", &a).unwrap();
    let v = a.to_f64_vec();
    assert!(v.iter().all(|x| x.abs() <= 0.07 + 1e-9));
    let (m, var) = mean_var(&v);
    assert!(m.abs() < 5e-4, "{m}"); // sd of mean ≈ 4e-5
    assert!(
        (var - 0.07f64.powi(2) / 3.0).abs() < 0.02 * 0.07f64.powi(2) / 3.0,
        "{var}"
    );
    Normal::new(0.5).init_weight("w", &a).unwrap();
    let (m, var) = mean_var(&a.to_f64_vec());
    assert!(m.abs() < 0.005 && (var - 0.25).abs() < 0.005, "{m} {var}");
    assert_eq!(a.size(), n);
    // integer arrays are rejected, like MXNet
    let i = NDArray::zeros(&[3], DType::Int32, ctx()).unwrap();
    assert!(matches!(
        Uniform::default().init_weight("w", &i),
        Err(Error::UnsupportedDType { .. })
    ));
    assert!(matches!(
        Normal::default().init_weight("w", &i),
        Err(Error::UnsupportedDType { .. })
    ));
}

#[test]
fn xavier_fans_and_bounds() {
    let _g = lock();
    random::seed(3);
    let a = zeros(&[64, 32, 3, 3]);
    let x = Xavier::default();
    let bound = (3.0f64 / ((288.0 + 576.0) / 2.0)).sqrt();
    assert!((bound - 0.083333).abs() < 1e-5);
    assert!((x.scale_for(a.shape()).unwrap() - bound).abs() < 1e-15);
    x.init_weight("w", &a).unwrap();
    let v = a.to_f64_vec();
    let max = v.iter().fold(0f64, |m, x| m.max(x.abs()));
    assert!(max <= bound + 1e-7 && max > 0.99 * bound, "{max}");
    let (_, var) = mean_var(&v);
    assert!((var - bound * bound / 3.0).abs() < 0.05 * bound * bound / 3.0);
    // factor types
    let s = |f, shape: &[usize]| {
        Xavier::new(RndType::Uniform, f, 3)
            .scale_for(shape)
            .unwrap()
    };
    assert!((s(FactorType::In, &[64, 32, 3, 3]) - (3.0f64 / 288.0).sqrt()).abs() < 1e-15);
    assert!((s(FactorType::Out, &[64, 32, 3, 3]) - (3.0f64 / 576.0).sqrt()).abs() < 1e-15);
    assert!((s(FactorType::Avg, &[10, 20]) - (3.0f64 / 15.0).sqrt()).abs() < 1e-15);
    // gaussian variance = scale²
    let g = zeros(&[512, 1024]);
    Xavier::new(RndType::Gaussian, FactorType::Avg, 3)
        .init_weight("w", &g)
        .unwrap();
    let sc2 = 3.0 / 768.0;
    let (m, var) = mean_var(&g.to_f64_vec());
    assert!(
        m.abs() < 1e-3 && (var - sc2).abs() < 0.02 * sc2,
        "{m} {var}"
    );
    // vectors are rejected
    for shape in [&[5usize][..], &[]] {
        assert!(matches!(
            x.init_weight("b", &zeros(shape)),
            Err(Error::InitializerFailed { .. })
        ));
    }
}

#[test]
fn msraprelu_is_gaussian_xavier() {
    let _g = lock();
    random::seed(4);
    let m = MSRAPrelu::default();
    assert!((m.magnitude() - 1.882_352_941_176_470_5).abs() < 1e-12);
    let a = zeros(&[256, 128, 4, 4]);
    m.init_weight("w", &a).unwrap();
    let want = m.magnitude() / ((128.0 * 16.0 + 256.0 * 16.0) / 2.0);
    let (mean, var) = mean_var(&a.to_f64_vec());
    assert!(
        mean.abs() < 1e-3 && (var - want).abs() < 0.02 * want,
        "{var} vs {want}"
    );
    assert!(m.init_weight("v", &zeros(&[3])).is_err());
}

fn gram_check(shape: &[usize], rand: RandType, dt: DType) {
    let a = NDArray::zeros(shape, dt, ctx()).unwrap();
    Orthogonal::new(1.414, rand).init_weight("w", &a).unwrap();
    let nout = shape[0];
    let nin: usize = shape[1..].iter().product();
    let v = a.to_f64_vec();
    let tol = if dt == DType::Float64 { 1e-9 } else { 1e-4 };
    // rows orthonormal when wide, columns when tall/square
    type At<'a> = Box<dyn Fn(usize, usize) -> f64 + 'a>;
    let (k, len, at): (usize, usize, At<'_>) = if nin > nout {
        (nout, nin, Box::new(|r, j| v[r * nin + j]))
    } else {
        (nin, nout, Box::new(|c, i| v[i * nin + c]))
    };
    for p in 0..k {
        for q in 0..k {
            let d: f64 = (0..len).map(|t| at(p, t) * at(q, t)).sum();
            let want = if p == q { 1.414f64 * 1.414 } else { 0.0 };
            assert!((d - want).abs() < tol, "{shape:?} ({p},{q}) {d}");
        }
    }
}

#[test]
fn orthogonal_gram_matrices() {
    let _g = lock();
    random::seed(5);
    gram_check(&[8, 20], RandType::Uniform, DType::Float64);
    gram_check(&[20, 8], RandType::Uniform, DType::Float64);
    gram_check(&[12, 12], RandType::Normal, DType::Float64);
    gram_check(&[6, 2, 3, 3], RandType::Normal, DType::Float32);
    gram_check(&[30, 3, 2], RandType::Uniform, DType::Float32);
    gram_check(&[5], RandType::Uniform, DType::Float64);
    assert!(Orthogonal::default().init_weight("w", &zeros(&[])).is_err());
}

#[test]
fn bilinear_examples() {
    let a = zeros(&[1, 1, 4, 4]);
    Bilinear.init_weight("up", &a).unwrap();
    let r0 = [0.0625, 0.1875, 0.1875, 0.0625];
    let r1 = [0.1875, 0.5625, 0.5625, 0.1875];
    let want: Vec<f32> = [r0, r1, r1, r0].concat();
    assert_eq!(a.to_vec::<f32>().unwrap(), want);
    let b = zeros(&[1, 1, 3, 3]);
    Bilinear.init_weight("up", &b).unwrap();
    assert_eq!(
        b.to_vec::<f32>().unwrap(),
        vec![0.0625, 0.1875, 0.1875, 0.1875, 0.5625, 0.5625, 0.1875, 0.5625, 0.5625]
    );
    // same kernel for every (n, c)
    let c = zeros(&[2, 3, 4, 4]);
    Bilinear.init_weight("up", &c).unwrap();
    let v = c.to_vec::<f32>().unwrap();
    for k in v.chunks(16) {
        assert_eq!(k, &want[..]);
    }
    // width-derived factor on both axes: (1,1,2,4)
    let d = zeros(&[1, 1, 2, 4]);
    Bilinear.init_weight("up", &d).unwrap();
    assert_eq!(d.to_vec::<f32>().unwrap(), [r0, r1].concat());
    assert!(matches!(
        Bilinear.init_weight("up", &zeros(&[4, 4])),
        Err(Error::InitializerFailed { .. })
    ));
}

#[test]
fn lstmbias_examples() {
    let a = zeros(&[8]);
    LSTMBias::new(2.0).init_weight("b", &a).unwrap();
    assert_eq!(
        a.to_vec::<f32>().unwrap(),
        vec![0., 0., 2., 2., 0., 0., 0., 0.]
    );
    let b = NDArray::full(&[6], 5.0, DType::Float32, ctx()).unwrap();
    LSTMBias::new(2.0).init_weight("b", &b).unwrap();
    assert_eq!(b.to_vec::<f32>().unwrap(), vec![0., 2., 0., 0., 0., 0.]);
    let c = zeros(&[4, 2]);
    LSTMBias::default().init_weight("b", &c).unwrap();
    assert_eq!(
        c.to_vec::<f32>().unwrap(),
        vec![0., 0., 1., 1., 0., 0., 0., 0.]
    );
    assert!(LSTMBias::default().init_weight("b", &zeros(&[])).is_err());
}

#[test]
fn legacy_name_dispatch() {
    let _g = lock();
    let x: &dyn Initializer = &Constant::new(3.0);
    let check = |name: &str, shape: &[usize], want: Option<Vec<f32>>| {
        let a = NDArray::full(shape, 9.0, DType::Float32, ctx()).unwrap();
        let r = init::init_by_name(x, name, &a);
        match want {
            Some(w) => {
                r.unwrap();
                assert_eq!(a.to_vec::<f32>().unwrap(), w, "{name}");
            }
            None => assert!(matches!(r, Err(Error::InitializerFailed { .. })), "{name}"),
        }
    };
    check("fc_bias", &[2], Some(vec![0.0; 2]));
    check("bn_gamma", &[2], Some(vec![1.0; 2]));
    check("bn_beta", &[2], Some(vec![0.0; 2]));
    check("fc_weight", &[2], Some(vec![3.0; 2]));
    check("bn_moving_mean", &[2], Some(vec![0.0; 2]));
    check("bn_moving_var", &[2], Some(vec![1.0; 2]));
    check("bn_moving_inv_var", &[2], Some(vec![0.0; 2]));
    check("x_moving_avg", &[2], Some(vec![0.0; 2]));
    check("q_min", &[2], Some(vec![0.0; 2]));
    check("q_max", &[2], Some(vec![1.0; 2]));
    check("stn_loc_weight", &[2], Some(vec![0.0; 2]));
    check("stn_loc_bias", &[6], Some(vec![1., 0., 0., 0., 1., 0.]));
    check("stn_loc_bias", &[5], None);
    check(
        "upsampling_kernel",
        &[1, 1, 2, 2],
        Some(vec![1., 0., 0., 0.]),
    ); // f = 1, c = 0
    check("fc_other", &[2], None);
}

#[test]
fn mixed_examples() {
    let m = Mixed::new(&["bias", ".*"], vec![Zero.into(), One.into()]).unwrap();
    let a = zeros(&[3]);
    a.fill(5.0).unwrap();
    m.apply("fc_bias", &a).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![0.0; 3]);
    m.apply("fc_weight", &a).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.0; 3]);
    m.apply("bias_weight", &a).unwrap(); // "bias" matches at the start → Zero
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![0.0; 3]);
    let only = Mixed::new(&["conv.*"], vec!["ones".into()]).unwrap();
    only.apply("conv1_weight", &a).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.0; 3]);
    match only.apply("fc_weight", &a) {
        Err(e @ Error::InitializerFailed { .. }) => assert!(e.to_string().contains(".*")),
        other => panic!("{other:?}"),
    }
    assert!(Mixed::new(&["a"], vec![]).is_err());
    assert!(Mixed::new(&["("], vec![Zero.into()]).is_err());
    assert!(Mixed::new(&["a"], vec!["nope".into()]).is_err());
}

#[test]
fn load_examples() {
    let mut saved = HashMap::new();
    saved.insert(
        "arg:fc_weight".to_string(),
        NDArray::full(&[2], 3.0, DType::Float64, ctx()).unwrap(),
    );
    saved.insert(
        "aux:bn_moving_var".to_string(),
        NDArray::full(&[2], 4.0, DType::Float32, ctx()).unwrap(),
    );
    let l = Load::new(saved.clone(), Some(One.into())).unwrap();
    let a = zeros(&[2]);
    l.apply("fc_weight", &a).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![3.0; 2]);
    l.apply("bn_moving_var", &a).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![4.0; 2]);
    l.apply("other_weight", &a).unwrap(); // default (legacy rules)
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.0; 2]);
    l.apply("other_bias", &a).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![0.0; 2]);
    assert!(matches!(
        l.apply("fc_weight", &zeros(&[3])),
        Err(Error::ShapeMismatch { .. })
    ));
    let strict = Load::from_pairs(saved, None).unwrap();
    assert!(matches!(
        strict.apply("missing", &a),
        Err(Error::InitializerFailed { .. })
    ));
}

#[test]
fn half_and_double_fills() {
    let _g = lock();
    random::seed(8);
    for dt in [DType::Float16, DType::BFloat16, DType::Float64] {
        let a = NDArray::zeros(&[128, 256], dt, ctx()).unwrap();
        Xavier::default().init_weight("w", &a).unwrap();
        let bound = (3.0f64 / 192.0).sqrt();
        let v = a.to_f64_vec();
        // rounding to 16 bits may reach the bound itself
        assert!(v.iter().all(|x| x.abs() <= bound * 1.004), "{dt}");
        let (m, var) = mean_var(&v);
        assert!(
            m.abs() < 2e-3 && (var - bound * bound / 3.0).abs() < 0.05 * bound * bound / 3.0,
            "{dt}"
        );
        Orthogonal::default().init_weight("w", &a).unwrap();
    }
}

#[test]
fn seeded_initializers_repeat() {
    let _g = lock();
    let draw = || {
        let a = zeros(&[64, 64]);
        Xavier::default().init_weight("w", &a).unwrap();
        Orthogonal::default().init_weight("w", &a).unwrap();
        a.to_vec::<f32>().unwrap()
    };
    random::seed(42);
    let x = draw();
    random::seed(42);
    assert_eq!(x, draw());
}
