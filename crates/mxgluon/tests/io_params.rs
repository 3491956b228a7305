//! `.params` files written by the real MXNet 1.9.1 (`shared/reference/mxnet-golden/`, made by
//! `gen_golden.py`): every file loads and matches `manifest.json` exactly, and saving what was
//! loaded reproduces the file byte for byte.

use std::path::{Path, PathBuf};

use mxgluon::io::params::{LoadOptions, RecordVersion, SaveOptions};
use mxgluon::io::{ArrayList, FileView};
use mxgluon::nd::{self, Array};
use mxgluon::{Context, DType, StorageType};
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/mxnet-golden"
    ))
    .to_path_buf()
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(golden_dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Checks one loaded array against its manifest description.
fn check_entry(label: &str, a: &Array, want: &Value) {
    let shape: Vec<usize> = i64s(&want["shape"]).iter().map(|&d| d as usize).collect();
    assert_eq!(a.shape(), &shape[..], "{label}: shape");
    let dtype: DType = want["dtype"].as_str().unwrap().parse().unwrap();
    assert_eq!(a.dtype(), dtype, "{label}: dtype");
    let stype: StorageType = want["stype"].as_str().unwrap().parse().unwrap();
    assert_eq!(a.stype(), stype, "{label}: stype");
    assert_eq!(a.context(), Context::cpu(0), "{label}: loaded on cpu(0)");
    let values = want
        .get("values")
        .or_else(|| want.get("values_f64"))
        .unwrap();
    let dense = a.to_dense().unwrap();
    if dtype == DType::Int64 {
        assert_eq!(
            dense.to_vec::<i64>().unwrap(),
            i64s(values),
            "{label}: values"
        );
    } else {
        assert_eq!(dense.to_f64_vec(), f64s(values), "{label}: values");
    }
    match a {
        Array::Dense(_) => {}
        Array::RowSparse(r) => assert_eq!(r.indices_vec(), i64s(&want["indices"]), "{label}"),
        Array::Csr(c) => {
            assert_eq!(c.indices_vec(), i64s(&want["indices"]), "{label}");
            assert_eq!(c.indptr_vec(), i64s(&want["indptr"]), "{label}");
        }
    }
}

#[test]
fn every_golden_file_matches_the_manifest() {
    let m = manifest();
    assert_eq!(m["mxnet_version"], "1.9.1");
    let files = m["files"].as_object().unwrap();
    // every .params file in the folder is described, and every description has its file
    let mut on_disk: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".params"))
        .collect();
    on_disk.sort();
    let mut described: Vec<String> = files.keys().cloned().collect();
    described.sort();
    assert_eq!(on_disk, described);

    for (name, desc) in files {
        let path = golden_dir().join(name);
        let loaded = nd::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            desc["bytes"].as_u64().unwrap(),
            "{name}: size"
        );
        match desc["kind"].as_str().unwrap() {
            "dict" => {
                let want = desc["entries"].as_object().unwrap();
                let names = loaded.names().expect("a dict");
                assert_eq!(
                    names,
                    want.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
                    "{name}: names in order"
                );
                for (k, w) in want {
                    check_entry(&format!("{name}:{k}"), loaded.get(k).unwrap(), w);
                }
            }
            _ => {
                let want = desc["entries"].as_array().unwrap();
                assert!(!loaded.is_dict(), "{name}: a list save loads as a list");
                let got: Vec<&Array> = loaded.iter().map(|(_, a)| a).collect();
                assert_eq!(got.len(), want.len());
                for (i, (a, w)) in got.iter().zip(want).enumerate() {
                    check_entry(&format!("{name}[{i}]"), a, w);
                }
            }
        }
    }
}

#[test]
fn resaving_reproduces_mxnets_bytes() {
    let m = manifest();
    for name in m["files"].as_object().unwrap().keys() {
        let path = golden_dir().join(name);
        let original = std::fs::read(&path).unwrap();
        let loaded = nd::load_with(&path, &LoadOptions::new().keep_context(true)).unwrap();
        let v3 = loaded
            .records()
            .iter()
            .all(|r| r.version == RecordVersion::V3);
        let opts = SaveOptions::new().np_shape(v3);
        let bytes = nd::save_to_bytes_with(loaded.arrays(), &opts).unwrap();
        assert_eq!(bytes, original, "{name}: re-saved bytes differ");
        // and through a file, atomically
        let dir = std::env::temp_dir().join(format!("mxgluon-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(name);
        nd::save_with(&out, loaded.arrays(), &opts).unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            original,
            "{name}: saved file differs"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn saved_contexts_and_record_versions_are_reported() {
    let l = nd::load(golden_dir().join("ctx_cpu3.params")).unwrap();
    assert_eq!(l.get("w").unwrap().context(), Context::cpu(0));
    assert_eq!(l.records()[0].saved_context(), Some(Context::cpu(3)));
    assert_eq!(l.records()[0].version, RecordVersion::V2);
    let v3 = nd::load(golden_dir().join("np_shape_v3.params")).unwrap();
    assert!(v3.records().iter().all(|r| r.version == RecordVersion::V3));
    assert_eq!(v3.get("scalar").unwrap().shape(), &[] as &[usize]);
    // a V3 0-d array cannot be written as V2
    assert!(nd::save_to_bytes(v3.arrays()).is_err());
}

#[test]
fn loading_from_bytes_equals_loading_the_file() {
    for name in [
        "sparse_dict.params",
        "dtypes_list.params",
        "mlp-0000.params",
    ] {
        let path = golden_dir().join(name);
        let a = nd::load(&path).unwrap();
        let b = nd::load_from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(a.len(), b.len());
        for ((na, x), (nb, y)) in a.iter().zip(b.iter()) {
            assert_eq!(na, nb);
            assert_eq!(x.stype(), y.stype());
            assert_eq!(
                x.to_dense().unwrap().to_f64_vec(),
                y.to_dense().unwrap().to_f64_vec()
            );
        }
    }
}

#[test]
fn file_views_list_golden_files_without_loading_them() {
    let m = manifest();
    for (name, desc) in m["files"].as_object().unwrap() {
        let v = FileView::open(golden_dir().join(name)).unwrap();
        let loaded = nd::load(golden_dir().join(name)).unwrap();
        assert_eq!(v.is_dict(), desc["kind"] == "dict");
        assert_eq!(v.entries().len(), loaded.len(), "{name}");
        for (i, (e, (n, a))) in v.entries().iter().zip(loaded.iter()).enumerate() {
            assert_eq!(e.name.as_deref(), n);
            assert_eq!(
                (e.stype, e.dtype, &e.shape[..]),
                (a.stype(), a.dtype(), a.shape())
            );
            let s = v.stats(i).unwrap();
            let vals = a.to_dense().unwrap().to_f64_vec();
            assert_eq!(s.count as usize, vals.len());
            if !vals.is_empty() {
                let max = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                assert_eq!(s.max, max, "{name}:{n:?}");
            }
            let back = v.to_array(i).unwrap();
            assert_eq!(back.to_dense().unwrap().to_f64_vec(), vals);
        }
    }
}

#[test]
fn arrays_convert_between_formats_losslessly() {
    let l = nd::load(golden_dir().join("dtypes_dict.params")).unwrap();
    let dir = std::env::temp_dir().join(format!("mxgluon-conv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for ext in ["safetensors", "npz"] {
        let p = dir.join(format!("d.{ext}"));
        mxgluon::io::save(&p, l.arrays()).unwrap();
        let back = mxgluon::io::load(&p).unwrap();
        for (n, a) in l.iter() {
            let b = back.get(n.unwrap()).unwrap();
            assert_eq!((b.dtype(), b.shape()), (a.dtype(), a.shape()));
            assert_eq!(
                b.to_dense().unwrap().to_f64_vec(),
                a.to_dense().unwrap().to_f64_vec()
            );
        }
    }
    // sparse entries must be densified explicitly for formats without sparse storage
    let sparse = nd::load(golden_dir().join("sparse_dict.params")).unwrap();
    assert!(mxgluon::io::save(dir.join("s.npz"), sparse.arrays()).is_err());
    let mut seen = vec![];
    let dense: ArrayList = sparse.densified(|n| seen.push(n.to_string())).unwrap();
    assert_eq!(seen, vec!["rsp_half", "rsp_empty", "csr_half", "csr_empty"]);
    mxgluon::io::save(dir.join("s.safetensors"), &dense).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
