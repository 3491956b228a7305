//! Live file interop with the real MXNet 1.9.1 and NumPy 1.23.5: files we write load there
//! with the same names, dtypes, storage types and bytes, files they write load here, and the
//! bytes of a re-save are identical on both sides.
//!
//! `./scripts/test.sh` passes the venv's interpreter in `MXGLUON_MXNET_PYTHON`. Without it these
//! tests print a note and pass locally, but fail under CI (`CI` set). Each test runs one Python
//! process for all its checks.

use std::path::{Path, PathBuf};

use mxgluon::io::{self, npy, ArrayList};
use mxgluon::nd::{self, Array, CSRNDArray, NDArray, RowSparseNDArray};
use mxgluon::{Context, DType, StorageType};
use serde_json::Value;

#[path = "common/mxnet.rs"]
mod mxnet_env;
use mxnet_env::{python, run_script};

/// Helpers every script gets: `desc(a)` describes an MXNet array with hex bytes.
const PRELUDE: &str = r#"
import json, sys, os
import mxnet as mx
import numpy as np
BF16 = np.dtype([('bfloat16', np.uint16)])
def dname(dt):
    return 'bfloat16' if np.dtype(dt) == BF16 else np.dtype(dt).name
def hx(a):
    return np.ascontiguousarray(a).tobytes().hex()
def desc(a):
    d = {'dtype': dname(a.dtype), 'stype': a.stype, 'shape': list(a.shape), 'ctx': str(a.context)}
    if a.stype == 'default':
        d['data'] = hx(a.asnumpy())
    else:
        d['data'] = hx(a.data.asnumpy())
        d['indices'] = hx(a.indices.asnumpy())
        if a.stype == 'csr':
            d['indptr'] = hx(a.indptr.asnumpy())
    return d
def out(**kw):
    print(json.dumps(kw), flush=True)
"#;

/// Runs a script (after the prelude) with `DIR` set to `dir`; returns its JSON output lines.
fn run_py(py: &str, dir: &Path, code: &str) -> Vec<Value> {
    let script = format!("{PRELUDE}\nDIR = {:?}\n{code}\n", dir.display().to_string());
    run_script(py, &script)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-live-io-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The raw (little-endian, row-major) bytes of an array, through the npy writer.
fn raw(a: &NDArray) -> Vec<u8> {
    let b = npy::save_to_bytes(a).unwrap();
    b[b.len() - a.nbytes()..].to_vec()
}

/// Deterministic pseudo-random values.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn shape(&mut self) -> Vec<usize> {
        let nd = 1 + (self.next() % 3) as usize;
        (0..nd).map(|_| 1 + (self.next() % 5) as usize).collect()
    }
    fn array(&mut self, dtype: DType, shape: &[usize]) -> NDArray {
        let n: usize = shape.iter().product();
        let (lo, hi) = match dtype {
            DType::Bool => (0.0, 2.0),
            DType::UInt8 => (0.0, 256.0),
            DType::Int8 => (-128.0, 128.0),
            DType::Int32 | DType::Int64 => (-1e6, 1e6),
            _ => (-3.0, 3.0),
        };
        let v: Vec<f64> = (0..n)
            .map(|_| {
                let x = lo + (hi - lo) * self.unit();
                if dtype.is_float() {
                    x
                } else {
                    x.floor()
                }
            })
            .collect();
        NDArray::from_vec(v, shape, Context::cpu(0))
            .unwrap()
            .astype(dtype)
            .unwrap()
    }
}

/// Every dtype MXNet's `nd` layer creates.
const ND_DTYPES: [DType; 9] = [
    DType::Float32,
    DType::Float64,
    DType::Float16,
    DType::UInt8,
    DType::Int8,
    DType::Int32,
    DType::Int64,
    DType::Bool,
    DType::BFloat16,
];

/// Checks an MXNet description (from `desc`) against our array.
fn check_desc(label: &str, d: &Value, a: &Array) {
    assert_eq!(d["dtype"], a.dtype().name(), "{label}: dtype");
    assert_eq!(d["stype"], a.stype().name(), "{label}: stype");
    let shape: Vec<usize> = d["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(shape, a.shape(), "{label}: shape");
    match a {
        Array::Dense(x) => assert_eq!(d["data"], hex(&raw(x)), "{label}: values"),
        Array::RowSparse(r) => {
            assert_eq!(d["data"], hex(&raw(r.values())), "{label}: values");
            assert_eq!(d["indices"], hex(&raw(r.indices())), "{label}: indices");
        }
        Array::Csr(c) => {
            assert_eq!(d["data"], hex(&raw(c.data())), "{label}: values");
            assert_eq!(d["indices"], hex(&raw(c.indices())), "{label}: indices");
            assert_eq!(d["indptr"], hex(&raw(c.indptr())), "{label}: indptr");
        }
    }
}

fn sparse_pair(rng: &mut Rng, dtype: DType) -> (RowSparseNDArray, CSRNDArray) {
    let dense = rng.array(dtype, &[7, 4]);
    // zero out rows 1, 2, 5 and scattered elements
    let mut v = dense
        .astype(DType::Float64)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    for (i, x) in v.iter_mut().enumerate() {
        if [1, 2, 5].contains(&(i / 4)) || i % 3 == 0 {
            *x = 0.0;
        }
    }
    let dense = NDArray::from_vec(v, &[7, 4], Context::cpu(0))
        .unwrap()
        .astype(dtype)
        .unwrap();
    (
        RowSparseNDArray::from_dense(&dense).unwrap(),
        CSRNDArray::from_dense(&dense).unwrap(),
    )
}

#[test]
fn files_we_write_load_in_mxnet() {
    let Some(py) = python() else { return };
    let dir = tmp("ours");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut dict: Vec<(String, Array)> = Vec::new();
    for dt in ND_DTYPES {
        let shape = rng.shape();
        dict.push((format!("dense_{dt}"), Array::Dense(rng.array(dt, &shape))));
    }
    for dt in [DType::Float32, DType::Float64, DType::Int32] {
        let (r, c) = sparse_pair(&mut rng, dt);
        dict.push((format!("rsp_{dt}"), r.into()));
        dict.push((format!("csr_{dt}"), c.into()));
    }
    dict.push((
        "rsp_empty".into(),
        RowSparseNDArray::zeros(&[5, 2], DType::Float32, Context::cpu(0))
            .unwrap()
            .into(),
    ));
    dict.push((
        "csr_empty".into(),
        CSRNDArray::zeros(&[3, 4], DType::Float32, Context::cpu(0))
            .unwrap()
            .into(),
    ));
    dict.push((
        "on_cpu3".into(),
        Array::Dense(
            rng.array(DType::Float32, &[2, 3])
                .copy_to(Context::cpu(3))
                .unwrap(),
        ),
    ));
    let data = ArrayList::Dict(dict);
    nd::save(dir.join("dict.params"), &data).unwrap();
    let list = ArrayList::List(data.iter().map(|(_, a)| a.clone()).collect());
    nd::save(dir.join("list.params"), &list).unwrap();

    let lines = run_py(
        &py,
        &dir,
        r#"
d = mx.nd.load(os.path.join(DIR, 'dict.params'))
out(kind=type(d).__name__, names=list(d.keys()))
for k, v in d.items():
    out(name=k, **desc(v))
mx.nd.save(os.path.join(DIR, 'dict_resaved.params'), d)
l = mx.nd.load(os.path.join(DIR, 'list.params'))
out(kind=type(l).__name__, n=len(l))
mx.nd.save(os.path.join(DIR, 'list_resaved.params'), l)
"#,
    );
    assert_eq!(lines[0]["kind"], "dict");
    let names: Vec<&str> = lines[0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(names, data.names().unwrap());
    for (line, (name, a)) in lines[1..].iter().zip(data.iter()) {
        let name = name.unwrap();
        assert_eq!(line["name"], name);
        check_desc(name, line, a);
        assert_eq!(
            line["ctx"], "cpu(0)",
            "{name}: MXNet loads CPU records on cpu(0)"
        );
    }
    let last = lines.last().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["n"].as_u64()),
        (Some("list"), Some(data.len() as u64))
    );
    // MXNet re-saving what it loaded (everything now on cpu(0)) writes our bytes exactly
    for (ours, theirs) in [
        ("dict.params", "dict_resaved.params"),
        ("list.params", "list_resaved.params"),
    ] {
        let on_cpu0 = nd::load(dir.join(ours)).unwrap();
        assert_eq!(
            nd::save_to_bytes(on_cpu0.arrays()).unwrap(),
            std::fs::read(dir.join(theirs)).unwrap(),
            "{ours}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn files_mxnet_writes_load_here() {
    let Some(py) = python() else { return };
    let dir = tmp("theirs");
    let lines = run_py(
        &py,
        &dir,
        r#"
rng = np.random.RandomState(11)
arrs = {}
for dt in ['float32', 'float64', 'float16', 'uint8', 'int8', 'int32', 'int64', 'bool', 'bfloat16']:
    shp = tuple(int(x) for x in rng.randint(1, 6, size=rng.randint(1, 4)))
    if dt == 'bool':
        a = mx.nd.array(rng.randint(0, 2, size=shp).astype(np.bool_), dtype='bool')
    elif dt == 'bfloat16':
        a = mx.nd.array(rng.standard_normal(shp).astype('float32')).astype(BF16)
    elif dt.startswith('float'):
        a = mx.nd.array(rng.standard_normal(shp).astype(dt), dtype=dt)
    else:
        a = mx.nd.array(rng.randint(-100 if dt.startswith('int') else 0, 100, size=shp), dtype=dt)
    arrs['d_' + dt] = a
for dt in ['float32', 'float64']:
    dense = rng.standard_normal((6, 5)).astype(dt)
    dense[[0, 3]] = 0
    dense[rng.rand(6, 5) < 0.4] = 0
    arrs['rsp_' + dt] = mx.nd.array(dense, dtype=dt).tostype('row_sparse')
    arrs['csr_' + dt] = mx.nd.array(dense, dtype=dt).tostype('csr')
arrs['rsp_zero'] = mx.nd.sparse.zeros('row_sparse', (4, 3))
arrs['csr_zero'] = mx.nd.sparse.zeros('csr', (4, 3))
arrs['cpu2'] = mx.nd.array([[1, 2], [3, 4]], ctx=mx.cpu(2))
mx.nd.save(os.path.join(DIR, 'dict.params'), arrs)
mx.nd.save(os.path.join(DIR, 'list.params'), list(arrs.values()))
out(file='dict.params', entries={k: desc(v) for k, v in arrs.items()}, order=list(arrs.keys()))

from mxnet.gluon import nn
net = nn.HybridSequential()
with net.name_scope():
    net.add(nn.Dense(5, activation='relu', in_units=3))
    net.add(nn.BatchNorm(in_channels=5))
    net.add(nn.Dense(2, in_units=5))
net.initialize(mx.init.Xavier())
net.hybridize()
x = mx.nd.array(rng.standard_normal((4, 3)))
with mx.autograd.record():
    y = net(x)
net.save_parameters(os.path.join(DIR, 'net.params'))
net.export(os.path.join(DIR, 'net'), epoch=3)
out(file='net.params', entries={k: desc(v.data()) for k, v in net._collect_params_with_prefix().items()})
pd = {}
for k, v in net.collect_params().items():
    pd[('aux:' if 'running' in k else 'arg:') + k] = desc(v.data())
out(file='net-0003.params', entries=pd)
"#,
    );
    for line in &lines {
        let file = line["file"].as_str().unwrap();
        let want = line["entries"].as_object().unwrap();
        let loaded = nd::load(dir.join(file)).unwrap();
        let names = loaded.names().unwrap();
        if file == "net-0003.params" {
            // export writes args then aux states; compare as sets
            let mut a: Vec<&str> = names.clone();
            let mut b: Vec<&str> = want.keys().map(|k| k.as_str()).collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{file}");
        } else {
            assert_eq!(
                names,
                want.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
                "{file}"
            );
        }
        for (k, d) in want {
            let a = loaded.get(k).unwrap();
            check_desc(&format!("{file}:{k}"), d, a);
            assert_eq!(a.context(), Context::cpu(0));
        }
        // re-saving what we loaded, on the saved contexts, gives MXNet's bytes
        let kept =
            nd::load_with(dir.join(file), &nd::LoadOptions::new().keep_context(true)).unwrap();
        assert_eq!(
            nd::save_to_bytes(kept.arrays()).unwrap(),
            std::fs::read(dir.join(file)).unwrap(),
            "{file}"
        );
    }
    // the list file: same arrays, no names
    let list = nd::load(dir.join("list.params")).unwrap();
    let dict = nd::load(dir.join("dict.params")).unwrap();
    assert!(!list.is_dict());
    assert_eq!(list.len(), dict.len());
    let cpu2 = dict.records()[dict
        .names()
        .unwrap()
        .iter()
        .position(|n| *n == "cpu2")
        .unwrap()]
    .saved_context();
    assert_eq!(cpu2, Some(Context::cpu(2)));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn npy_and_npz_interoperate_with_numpy() {
    let Some(py) = python() else { return };
    let dir = tmp("numpy");
    let mut rng = Rng(12345);
    let mut ours: Vec<(String, NDArray)> = Vec::new();
    for dt in DType::ALL {
        let shape = rng.shape();
        ours.push((format!("a_{dt}"), rng.array(dt, &shape)));
    }
    ours.push((
        "scalar".into(),
        NDArray::scalar(2.5f64, Context::cpu(0)).unwrap(),
    ));
    ours.push((
        "empty".into(),
        NDArray::zeros(&[0, 3], DType::Int16, Context::cpu(0)).unwrap(),
    ));
    for (n, a) in &ours {
        npy::save(dir.join(format!("{n}.npy")), a).unwrap();
    }
    let list = ArrayList::from(ours.clone());
    io::npz::save(dir.join("ours.npz"), &list).unwrap();
    io::npz::save_compressed(dir.join("ours_c.npz"), &list).unwrap();
    let names: Vec<String> = ours.iter().map(|(n, _)| n.clone()).collect();
    let lines = run_py(
        &py,
        &dir,
        &format!(
            r#"
names = {names:?}
for n in names:
    a = np.load(os.path.join(DIR, n + '.npy'))
    np.save(os.path.join(DIR, 'np_' + n + '.npy'), a)
    out(name=n, descr=np.lib.format.dtype_to_descr(a.dtype), shape=list(a.shape), data=hx(a))
for f in ['ours.npz', 'ours_c.npz']:
    z = np.load(os.path.join(DIR, f))
    out(npz=f, names=sorted(z.files), same=all(hx(z[n]) == hx(np.load(os.path.join(DIR, n + '.npy'))) for n in names))
rng = np.random.RandomState(5)
f = rng.standard_normal((3, 4)).astype('<f4')
np.save(os.path.join(DIR, 'fortran.npy'), np.asfortranarray(f))
np.save(os.path.join(DIR, 'big.npy'), f.astype('>f8'))
np.savez(os.path.join(DIR, 'theirs.npz'), f, w=f.astype('int16'))
np.savez_compressed(os.path.join(DIR, 'theirs_c.npz'), w=f.astype('float16'), b=f > 0)
out(f=hx(f), f64=hx(f.astype('<f8')), i16=hx(f.astype('int16')), f16=hx(f.astype('float16')), b=hx(f > 0))
"#
        ),
    );
    let n = ours.len();
    for (line, (name, a)) in lines[..n].iter().zip(&ours) {
        assert_eq!(line["name"], name.as_str());
        assert_eq!(
            line["data"],
            hex(&raw(a)),
            "{name}: values as numpy reads them"
        );
        let shape: Vec<usize> = line["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, a.shape());
        if a.dtype() == DType::BFloat16 {
            assert_eq!(line["descr"], "|V2", "numpy reads bfloat16 as 2-byte void");
        } else {
            // numpy re-saving the array writes our bytes exactly
            assert_eq!(
                std::fs::read(dir.join(format!("np_{name}.npy"))).unwrap(),
                std::fs::read(dir.join(format!("{name}.npy"))).unwrap(),
                "{name}: np.save bytes"
            );
        }
    }
    for line in &lines[n..n + 2] {
        assert_eq!(line["same"], true, "{line}");
        let mut want = names.clone();
        want.sort();
        assert_eq!(line["names"], serde_json::json!(want));
    }
    let last = &lines[n + 2];
    let f = npy::load(dir.join("fortran.npy")).unwrap();
    assert_eq!(
        (f.shape(), hex(&raw(&f))),
        (&[3usize, 4][..], last["f"].as_str().unwrap().to_string())
    );
    let b = npy::load(dir.join("big.npy")).unwrap();
    assert_eq!(
        (b.dtype(), hex(&raw(&b))),
        (DType::Float64, last["f64"].as_str().unwrap().to_string())
    );
    let z = io::npz::load(dir.join("theirs.npz")).unwrap();
    let mut members = z.names().unwrap();
    members.sort();
    assert_eq!(members, vec!["arr_0", "w"]);
    assert_eq!(
        hex(&raw(&z.get("arr_0").unwrap().to_dense().unwrap())),
        last["f"]
    );
    assert_eq!(
        hex(&raw(&z.get("w").unwrap().to_dense().unwrap())),
        last["i16"]
    );
    let zc = io::npz::load(dir.join("theirs_c.npz")).unwrap();
    assert_eq!(
        hex(&raw(&zc.get("w").unwrap().to_dense().unwrap())),
        last["f16"]
    );
    let bools = zc.get("b").unwrap();
    assert_eq!(
        (bools.dtype(), bools.stype()),
        (DType::Bool, StorageType::Default)
    );
    assert_eq!(hex(&raw(&bools.to_dense().unwrap())), last["b"]);
    std::fs::remove_dir_all(&dir).ok();
}
