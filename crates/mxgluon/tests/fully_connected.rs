//! `fully_connected` against an f64 reference, error cases, and MXNet's golden MLP output.

use mxgluon::{nd, nd::NDArray, Context, DType, Error};
use proptest::prelude::*;

fn cpu() -> Context {
    Context::cpu(0)
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matches_reference(lead in prop::collection::vec(1usize..5, 1..4), num_hidden in 1usize..9, flatten in any::<bool>(), with_bias in any::<bool>(), seed in any::<u64>(), dt in prop::sample::select(vec![DType::Float32, DType::Float64, DType::Float16, DType::BFloat16])) {
        let n_in: usize = lead.iter().product();
        let (rows, in_units) = if flatten { (lead[0], n_in / lead[0]) } else { (n_in / lead[lead.len() - 1], lead[lead.len() - 1]) };
        let x = NDArray::from_slice(&values(n_in, seed), &lead, cpu()).unwrap().astype(dt).unwrap();
        let w = NDArray::from_slice(&values(num_hidden * in_units, seed ^ 7), &[num_hidden, in_units], cpu()).unwrap().astype(dt).unwrap();
        let b = NDArray::from_slice(&values(num_hidden, seed ^ 99), &[num_hidden], cpu()).unwrap().astype(dt).unwrap();
        let y = nd::fully_connected_with(&x, &w, if with_bias { Some(&b) } else { None }, num_hidden, flatten).unwrap();
        let mut want_shape = if flatten { vec![lead[0]] } else { lead[..lead.len() - 1].to_vec() };
        want_shape.push(num_hidden);
        prop_assert_eq!(y.shape(), &want_shape[..]);
        prop_assert_eq!(y.dtype(), dt);
        let (fx, fw, fb) = (x.to_f64_vec(), w.to_f64_vec(), b.to_f64_vec());
        let tol = match dt { DType::Float16 => 5e-3, DType::BFloat16 => 3e-2, DType::Float32 => 1e-5, _ => 1e-12 };
        let got = y.to_f64_vec();
        for r in 0..rows {
            for h in 0..num_hidden {
                let mut acc = if with_bias { fb[h] } else { 0.0 };
                for k in 0..in_units {
                    acc += fx[r * in_units + k] * fw[h * in_units + k];
                }
                let g = got[r * num_hidden + h];
                prop_assert!((g - acc).abs() <= tol * (1.0 + acc.abs()), "{} vs {}", g, acc);
            }
        }
    }
}

#[test]
fn shape_dtype_context_errors() {
    let x = nd::ones(&[4, 2, 5], cpu()).unwrap();
    let w = nd::ones(&[3, 10], cpu()).unwrap();
    let b = nd::ones(&[3], cpu()).unwrap();
    assert_eq!(
        nd::fully_connected(&x, &w, Some(&b), 3).unwrap().shape(),
        &[4, 3]
    );
    // flatten=false wants in_units = 5
    assert!(matches!(
        nd::fully_connected_with(&x, &w, Some(&b), 3, false),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        nd::fully_connected(&x, &w, Some(&b), 4),
        Err(Error::ShapeMismatch { .. })
    ));
    let b4 = nd::ones(&[4], cpu()).unwrap();
    let e = nd::fully_connected(&x, &w, Some(&b4), 3).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }));
    assert!(e.to_string().contains("(4,)"), "{e}");
    let w64 = w.astype(DType::Float64).unwrap();
    assert!(matches!(
        nd::fully_connected(&x, &w64, None, 3),
        Err(Error::DTypeMismatch { .. })
    ));
    let b1 = b.copy_to(Context::cpu(1)).unwrap();
    assert!(matches!(
        nd::fully_connected(&x, &w, Some(&b1), 3),
        Err(Error::ContextMismatch { .. })
    ));
    let xi = x.astype(DType::Int32).unwrap();
    let wi = w.astype(DType::Int32).unwrap();
    assert!(matches!(
        nd::fully_connected(&xi, &wi, None, 3),
        Err(Error::UnsupportedDType { .. })
    ));
}

#[test]
fn large_layer_uses_threads_and_stays_correct() {
    let x = nd::full(&[64, 256], 0.5, cpu()).unwrap();
    let w = nd::full(&[128, 256], 0.25, cpu()).unwrap();
    let b = nd::full(&[128], 1.0, cpu()).unwrap();
    let y = nd::fully_connected(&x, &w, Some(&b), 128).unwrap();
    assert!(y.to_vec::<f32>().unwrap().iter().all(|&v| v == 33.0));
}

fn load(entry: &serde_json::Value) -> NDArray {
    let shape: Vec<usize> = entry["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let vals: Vec<f32> = entry["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    NDArray::from_slice(&vals, &shape, cpu()).unwrap()
}

#[test]
fn golden_mlp_forward() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/mxnet-golden/manifest.json"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("note: {path} not found; skipping the MXNet golden MLP test");
        return;
    };
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let f = &m["files"]["mlp_save_parameters.params"];
    let e = &f["entries"];
    let (w0, b0, w1, b1) = (
        load(&e["0.weight"]),
        load(&e["0.bias"]),
        load(&e["1.weight"]),
        load(&e["1.bias"]),
    );
    let x = load(&f["forward"]["input"]);
    let want = load(&f["forward"]["output"]).to_vec::<f32>().unwrap();
    let h = nd::fully_connected(&x, &w0, Some(&b0), 16)
        .unwrap()
        .relu()
        .unwrap();
    let y = nd::fully_connected(&h, &w1, Some(&b1), 4).unwrap();
    assert_eq!(y.shape(), &[3, 4]);
    for (g, w) in y.to_vec::<f32>().unwrap().iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
    }
}

/// Small f32 layers cache the transposed weight per thread; any write to the weight (through
/// any handle) must invalidate it, and a new weight must never see an old one's transpose.
#[test]
fn transposed_weight_cache_follows_writes() {
    let ctx = mxgluon::Context::cpu(0);
    let x = mxgluon::nd::ones(&[2, 3], ctx).unwrap();
    let w = mxgluon::nd::ones(&[4, 3], ctx).unwrap();
    let y = mxgluon::nd::fully_connected(&x, &w, None, 4).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![3.0; 8]);
    let alias = w.clone();
    alias.set_f64(&[1, 2], 10.0).unwrap();
    let y = mxgluon::nd::fully_connected(&x, &w, None, 4).unwrap();
    assert_eq!(
        y.to_vec::<f32>().unwrap(),
        vec![3.0, 12.0, 3.0, 3.0, 3.0, 12.0, 3.0, 3.0]
    );
    w.fill(2.0).unwrap();
    let y = mxgluon::nd::fully_connected(&x, &w, None, 4).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![6.0; 8]);
    // Many distinct weights (more than the cache holds), dropped and re-created.
    for i in 0..20 {
        let w = mxgluon::nd::full(&[4, 3], i as f64, ctx).unwrap();
        let y = mxgluon::nd::fully_connected(&x, &w, None, 4).unwrap();
        assert_eq!(
            y.to_vec::<f32>().unwrap(),
            vec![3.0 * i as f32; 8],
            "weight {i}"
        );
    }
}

/// A large weight is copied into row-major order only on its second unchanged use, and the
/// copy is dropped as soon as the weight is written.
#[test]
fn large_weight_transpose_cache_follows_writes() {
    let ctx = mxgluon::Context::cpu(0);
    let (n, k) = (300, 300); // 90,000 elements: above the always-transpose size
    let x = mxgluon::nd::ones(&[2, k], ctx).unwrap();
    let w = mxgluon::nd::ones(&[n, k], ctx).unwrap();
    for round in 0..3 {
        let y = mxgluon::nd::fully_connected(&x, &w, None, n).unwrap();
        assert!(
            y.to_vec::<f32>().unwrap().iter().all(|v| *v == k as f32),
            "round {round}"
        );
    }
    w.set_f64(&[5, 0], 2.0).unwrap();
    for _ in 0..2 {
        let y = mxgluon::nd::fully_connected(&x, &w, None, n).unwrap();
        let v = y.to_vec::<f32>().unwrap();
        assert_eq!(v[5], k as f32 + 1.0);
        assert_eq!(v[6], k as f32);
    }
    mxgluon::nd::set_transpose_cache_budget(0);
    let y = mxgluon::nd::fully_connected(&x, &w, None, n).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap()[5], k as f32 + 1.0);
    mxgluon::nd::set_transpose_cache_budget(64 << 20);
}
