//! Symbols against the live MXNet 1.9.1: the model zoo's `resnet18_v1` and `mobilenet0_25`
//! (`pretrained=False`, nothing downloaded) are hybridized, run once on a (1, 3, 224, 224)
//! input and exported; we read the exported `-symbol.json` and must write the same bytes,
//! list the same arguments / auxiliary states / outputs and infer the same shapes. In the
//! other direction, MXNet loads graphs we built (`mx.sym.load_json`) and must report the
//! same names and shapes, and write back our bytes. `Parameter.var()` attributes are
//! compared too.
//!
//! See `mxnet_live.rs` for how the interpreter is found (CI fails rather than skipping).

use std::path::{Path, PathBuf};

use mxgluon::init;
use mxgluon::nd::ActType;
use mxgluon::symbol::{
    Activation, BatchNorm, Concat, Convolution, Dropout, Flatten, FullyConnected, NameManager,
    Pooling, Reshape, SoftmaxOutput, Symbol,
};
use mxgluon::{DType, Parameter, StorageType};
use serde_json::Value;

#[path = "common/mxnet.rs"]
mod mxnet_env;
use mxnet_env::{python, run_script};

const PY: &str = r#"
import json
import mxnet as mx
from mxnet import gluon
from mxnet.gluon.model_zoo import vision

d = DIR
out = {}

def shapes(s, **kw):
    a, o, x = s.infer_shape(**kw)
    return {'arg': [list(t) for t in a], 'out': [list(t) for t in o], 'aux': [list(t) for t in x]}

def describe(s):
    return {'arguments': s.list_arguments(), 'aux': s.list_auxiliary_states(),
            'outputs': s.list_outputs(), 'internals': s.get_internals().list_outputs()}

for name, ctor in [('resnet18_v1', vision.resnet18_v1), ('mobilenet0_25', vision.mobilenet0_25)]:
    net = ctor(pretrained=False)
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 224, 224)))
    net.export(d + '/' + name)
    s = mx.sym.load(d + '/' + name + '-symbol.json')
    r = describe(s)
    r['shapes'] = shapes(s, data=(1, 3, 224, 224))
    out[name] = r

for name, data in [('ours_mlp', (5, 10)), ('ours_convnet', (2, 3, 16, 16))]:
    s = mx.sym.load_json(open(d + '/' + name + '-symbol.json').read())
    r = describe(s)
    r['shapes'] = shapes(s, data=data)
    r['tojson'] = s.tojson()
    out[name] = r

p = gluon.Parameter('w', shape=(2, 3), dtype='float16', lr_mult=2.0, wd_mult=0.5,
                    init=mx.init.Xavier(magnitude=2), stype='row_sparse')
q = gluon.Parameter('b', init='zeros')
out['param_attrs'] = {'w': p.var().list_attr(), 'b': q.var().list_attr(),
                      'default': gluon.Parameter('c').var().list_attr()}
print(json.dumps(out))
"#;

fn tmp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-symbol-live-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn shape_list(v: &Value) -> Vec<Option<Vec<usize>>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let d: Vec<usize> = s
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            // MXNet's partial results spell an unknown shape `()`.
            (!d.is_empty()).then_some(d)
        })
        .collect()
}

/// Names, outputs and inferred shapes of `ours` equal MXNet's report `r`.
fn same_as_mxnet(what: &str, ours: &Symbol, r: &Value, data: &[usize]) {
    assert_eq!(
        ours.list_arguments(),
        strings(&r["arguments"]),
        "{what}: arguments"
    );
    assert_eq!(
        ours.list_auxiliary_states(),
        strings(&r["aux"]),
        "{what}: aux states"
    );
    assert_eq!(
        ours.list_outputs(),
        strings(&r["outputs"]),
        "{what}: outputs"
    );
    assert_eq!(
        ours.get_internals().list_outputs(),
        strings(&r["internals"]),
        "{what}: internals"
    );
    let s = ours.infer_shape([("data", data)]).unwrap();
    assert!(s.is_complete(), "{what}: {s:?}");
    assert_eq!(
        s.arg_shapes,
        shape_list(&r["shapes"]["arg"]),
        "{what}: arg shapes"
    );
    assert_eq!(
        s.out_shapes,
        shape_list(&r["shapes"]["out"]),
        "{what}: out shapes"
    );
    assert_eq!(
        s.aux_shapes,
        shape_list(&r["shapes"]["aux"]),
        "{what}: aux shapes"
    );
}

fn our_mlp() -> Symbol {
    let _names = NameManager::new().enter();
    let data = Symbol::var("data");
    let fc1 = FullyConnected::new(16).name("fc1").build(&data).unwrap();
    let bn = BatchNorm::new().fix_gamma(false).build(&fc1).unwrap();
    let act = Activation::new(ActType::Tanh).build(&bn).unwrap();
    let drop = Dropout::new(0.1).build(&act).unwrap();
    let w = Parameter::new("fc2_weight").with_shape([4, 0]).var();
    let fc2 = FullyConnected::new(4)
        .weight(&w)
        .no_bias(true)
        .name("fc2")
        .build(&drop)
        .unwrap();
    let r = Reshape::new([0, 2, -1]).build(&fc2).unwrap();
    let f = Flatten::new().build(&r).unwrap();
    SoftmaxOutput::new().name("out").build(&f).unwrap()
}

fn our_convnet() -> Symbol {
    let _names = NameManager::with_prefix("net_").enter();
    let data = Symbol::var("data");
    let c1 = Convolution::new([3, 3], 8)
        .pad([1, 1])
        .no_bias(true)
        .build(&data)
        .unwrap();
    let b1 = BatchNorm::new().eps(1e-5).build(&c1).unwrap();
    let a1 = Activation::new(ActType::Relu).build(&b1).unwrap();
    let dw = Convolution::new([3, 3], 8)
        .num_group(8)
        .stride([2, 2])
        .pad([1, 1])
        .build(&a1)
        .unwrap();
    let c2 = Convolution::new([1, 1], 4).build(&a1).unwrap();
    let p2 = Pooling::new([3, 3])
        .stride([2, 2])
        .pad([1, 1])
        .build(&c2)
        .unwrap();
    let cat = Concat::new().dim(1).build(&[&dw, &p2]).unwrap();
    let g = Pooling::global(mxgluon::symbol::ops::PoolType::Avg)
        .build(&cat)
        .unwrap();
    let f = Flatten::new().build(&g).unwrap();
    FullyConnected::new(10).build(&f).unwrap()
}

fn write(dir: &Path, name: &str, s: &Symbol) {
    s.save(dir.join(format!("{name}-symbol.json"))).unwrap();
}

#[test]
fn symbols_match_mxnet() {
    let Some(py) = python() else { return };
    let dir = tmp_dir();
    let mlp = our_mlp();
    let convnet = our_convnet();
    write(&dir, "ours_mlp", &mlp);
    write(&dir, "ours_convnet", &convnet);
    let script = PY.replace("DIR", &format!("{:?}", dir.display().to_string()));
    let out: Value = serde_json::from_str(&run_script(&py, &script)).expect("MXNet's report");

    // 1. MXNet's exported model-zoo graphs: same bytes back, same names and shapes.
    for name in ["resnet18_v1", "mobilenet0_25"] {
        let path = dir.join(format!("{name}-symbol.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let ours = Symbol::load(&path).unwrap();
        assert_eq!(
            ours.tojson(),
            text,
            "{name}: tojson differs from MXNet's file"
        );
        same_as_mxnet(name, &ours, &out[name], &[1, 3, 224, 224]);
        let t = ours.infer_type([("data", DType::Float32)]).unwrap();
        assert!(t.is_complete(), "{name}: {t:?}");
    }

    // 2. Graphs built here, loaded by MXNet.
    for (name, ours, data) in [
        ("ours_mlp", &mlp, &[5usize, 10][..]),
        ("ours_convnet", &convnet, &[2, 3, 16, 16][..]),
    ] {
        let r = &out[name];
        assert_eq!(
            r["tojson"].as_str().unwrap(),
            ours.tojson(),
            "{name}: MXNet writes our graph differently"
        );
        same_as_mxnet(name, ours, r, data);
    }

    // 3. Parameter.var() attributes.
    let attrs = |v: &Value| -> std::collections::BTreeMap<String, String> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
            .collect()
    };
    let xavier = init::create(r#"["xavier", {"magnitude": 2}]"#).unwrap();
    let w = Parameter::new("w")
        .with_shape([2, 3])
        .with_dtype(DType::Float16)
        .with_lr_mult(2.0)
        .with_wd_mult(0.5)
        .with_init(xavier)
        .with_stype(StorageType::RowSparse);
    assert_eq!(w.var().list_attr(), attrs(&out["param_attrs"]["w"]));
    let b = Parameter::new("b").with_init("zeros");
    assert_eq!(b.var().list_attr(), attrs(&out["param_attrs"]["b"]));
    assert_eq!(
        Parameter::new("c").var().list_attr(),
        attrs(&out["param_attrs"]["default"])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
