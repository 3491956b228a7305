//! Saving and loading Blocks and ParameterDicts in MXNet's `.params` format (spec §3, §4.4,
//! §4.5): byte-identical files to MXNet 1.9.1's, MXNet's files loaded and run, structural and
//! legacy names, deduplication, deferred shapes completed from the file, and structured
//! mismatch errors that leave the model untouched.

use std::path::PathBuf;

use mxgluon::error::LoadConflict;
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::{Block, DTypeSource, LoadParams, ParamState};
use mxgluon::nd::{ActType, NDArray};
use mxgluon::{init, nd, Context, DType, Error};
use serde_json::Value;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/mxnet-golden/"
);

fn golden(name: &str) -> PathBuf {
    PathBuf::from(GOLDEN).join(name)
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(golden("manifest.json")).unwrap()).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-save-load-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn values(v: &Value) -> Vec<f64> {
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The golden MLP: Dense(16, relu, in_units=8) -> Dense(4, in_units=16) in a container with
/// the given prefix.
fn mlp(prefix: Option<&str>, in_units: usize) -> Sequential {
    let net = Sequential::with_prefix(prefix, None);
    {
        let _s = net.name_scope();
        net.add(
            Dense::builder(16)
                .activation(ActType::Relu)
                .in_units(in_units)
                .build()
                .unwrap(),
        );
        net.add(Dense::builder(4).in_units(16).build().unwrap());
    }
    net
}

fn check_forward(net: &Sequential, fwd: &Value) {
    let x = NDArray::from_vec(
        values(&fwd["input"]).iter().map(|&v| v as f32).collect(),
        &[3, 8],
        Context::cpu(0),
    )
    .unwrap();
    let y = net.forward(&x).unwrap().to_f64_vec();
    let want = values(&fwd["output"]);
    assert_eq!(y.len(), want.len());
    for (a, b) in y.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn mxnet_save_parameters_file_loads_runs_and_resaves_byte_identical() {
    let m = manifest();
    let f = &m["files"]["mlp_save_parameters.params"];
    // Loading initializes an uninitialized model (on cpu(0)).
    let net = mlp(None, 8);
    net.load_parameters(golden("mlp_save_parameters.params"), &LoadParams::new())
        .unwrap();
    check_forward(&net, &f["forward"]);
    let out = tmp("resaved.params");
    net.save_parameters(&out, false).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(golden("mlp_save_parameters.params")).unwrap()
    );
}

#[test]
fn deferred_shapes_are_completed_from_the_file() {
    let m = manifest();
    let net = mlp(None, 0);
    net.initialize(None, Context::cpu(0)).unwrap();
    let w = net.collect_params().unwrap().values()[0].clone();
    assert_eq!(w.state(), ParamState::Deferred);
    net.load_parameters(golden("mlp_save_parameters.params"), &LoadParams::new())
        .unwrap();
    assert_eq!(w.shape(), Some(vec![16, 8]));
    check_forward(&net, &m["files"]["mlp_save_parameters.params"]["forward"]);
}

#[test]
fn paramdict_files_and_export_files_load_by_full_name() {
    let m = manifest();
    let net = mlp(Some("hybridsequential0_"), 8);
    let params = net.collect_params().unwrap();
    params
        .load(golden("mlp_paramdict_save.params"), &LoadParams::new())
        .unwrap();
    // Same net as the save_parameters file, so the same forward pass.
    check_forward(&net, &m["files"]["mlp_save_parameters.params"]["forward"]);
    let out = tmp("dict.params");
    params.save(&out, "").unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(golden("mlp_paramdict_save.params")).unwrap()
    );
    // export files carry arg:/aux: prefixes, which the loader strips.
    let net2 = mlp(Some("hybridsequential0_"), 8);
    net2.collect_params()
        .unwrap()
        .load(golden("mlp-0000.params"), &LoadParams::new())
        .unwrap();
    check_forward(&net2, &m["files"]["mlp-0000.params"]["forward"]);
}

#[test]
fn legacy_full_name_files_load_through_the_block_prefix() {
    let a = mlp(Some("a_"), 8);
    a.initialize(Some(init::Xavier::default().into()), Context::cpu(0))
        .unwrap();
    let path = tmp("legacy.params");
    // save_params: full names with the block prefix stripped (no dots).
    a.collect_params().unwrap().save(&path, "a_").unwrap();
    let b = mlp(Some("b_"), 8);
    b.load_parameters(&path, &LoadParams::new()).unwrap();
    let x = nd::ones(&[2, 8], None).unwrap();
    assert_eq!(
        a.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        b.forward(&x).unwrap().to_vec::<f32>().unwrap()
    );
    // A prefix that does not match is refused by the dict-level save.
    assert!(a
        .collect_params()
        .unwrap()
        .save(tmp("bad.params"), "zzz_")
        .is_err());
}

#[test]
fn structural_names_survive_a_different_prefix() {
    let a = mlp(Some("first_"), 8);
    a.initialize(Some(init::Xavier::default().into()), Context::cpu(0))
        .unwrap();
    let path = tmp("structural.params");
    a.save_parameters(&path, false).unwrap();
    let b = mlp(None, 8);
    b.initialize(None, vec![Context::cpu(0), Context::cpu(1)])
        .unwrap();
    b.load_parameters(&path, &LoadParams::new()).unwrap();
    let x = nd::ones(&[2, 8], None).unwrap();
    let want = a.forward(&x).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(b.forward(&x).unwrap().to_vec::<f32>().unwrap(), want);
    let x1 = nd::ones(&[2, 8], Context::cpu(1)).unwrap();
    assert_eq!(b.forward(&x1).unwrap().to_vec::<f32>().unwrap(), want);
}

#[test]
fn deduplicate_keeps_the_last_name_of_a_shared_parameter() {
    let net = Sequential::new();
    let first = Dense::builder(2).in_units(2).build().unwrap();
    let second = Dense::builder(2)
        .in_units(2)
        .params(first.params())
        .build()
        .unwrap();
    net.add(first);
    net.add(second);
    net.initialize(None, Context::cpu(0)).unwrap();
    let all = tmp("dup_all.params");
    let dedup = tmp("dup_one.params");
    net.save_parameters(&all, false).unwrap();
    net.save_parameters(&dedup, true).unwrap();
    let names = |p: &PathBuf| -> Vec<String> {
        nd::load(p)
            .unwrap()
            .arrays()
            .names()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(names(&all), ["0.weight", "0.bias", "1.weight", "1.bias"]);
    assert_eq!(names(&dedup), ["1.weight", "1.bias"]);
    // A file holding only one name per shared parameter still loads (allow_missing not needed).
    net.load_parameters(&dedup, &LoadParams::new()).unwrap();
}

#[test]
fn mismatches_are_reported_together_and_nothing_is_loaded() {
    let net = Sequential::with_prefix(Some("m_"), None);
    {
        let _s = net.name_scope();
        net.add(Dense::builder(16).in_units(8).build().unwrap());
        net.add(Dense::builder(5).in_units(16).build().unwrap()); // file has 4 units
        net.add(Dense::builder(3).in_units(5).build().unwrap()); // not in the file
    }
    net.initialize(Some(init::One.into()), Context::cpu(0))
        .unwrap();
    let err = net
        .load_parameters(golden("mlp_save_parameters.params"), &LoadParams::new())
        .unwrap_err();
    let Error::ParameterLoadMismatch {
        missing,
        unexpected,
        conflicts,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(missing, &["2.weight", "2.bias"]);
    assert!(unexpected.is_empty());
    assert_eq!(conflicts.len(), 2, "{conflicts:?}");
    assert!(
        matches!(&conflicts[0], LoadConflict::Shape { expected, saved, .. } if expected == &vec![5, 16] && saved == &vec![4, 16])
    );
    assert!(err.to_string().contains("'2.weight'"));
    // Nothing changed, not even the parameters that did fit.
    let w0 = net.collect_params().unwrap().values()[0]
        .data(Context::cpu(0))
        .unwrap();
    assert!(w0.to_f32_vec().iter().all(|&v| v == 1.0));
    // Extra names are reported unless ignored.
    let small = mlp(None, 8);
    let path = tmp("extra.params");
    net.save_parameters(&path, false).unwrap();
    let err = small
        .load_parameters(&path, &LoadParams::new())
        .unwrap_err();
    assert!(
        matches!(&err, Error::ParameterLoadMismatch { unexpected, .. } if unexpected == &["2.weight", "2.bias"])
    );
}

#[test]
fn dtypes_must_match_unless_cast() {
    let net = mlp(None, 8);
    net.initialize(None, Context::cpu(0)).unwrap();
    net.cast(DType::Float64).unwrap();
    let file = golden("mlp_save_parameters.params");
    let err = net.load_parameters(&file, &LoadParams::new()).unwrap_err();
    assert!(
        matches!(&err, Error::ParameterLoadMismatch { conflicts, .. }
        if conflicts.iter().all(|c| matches!(c, LoadConflict::DType { expected: DType::Float64, saved: DType::Float32, .. })))
    );
    net.load_parameters(&file, &LoadParams::new().cast_dtype(DTypeSource::Current))
        .unwrap();
    let w = net.collect_params().unwrap().values()[0].clone();
    assert_eq!(w.data(Context::cpu(0)).unwrap().dtype(), DType::Float64);
    net.load_parameters(&file, &LoadParams::new().cast_dtype(DTypeSource::Saved))
        .unwrap();
    assert_eq!(w.dtype(), DType::Float32);
}
