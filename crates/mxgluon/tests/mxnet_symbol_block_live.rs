//! Live interop with MXNet 1.9.1 for graphs: MXNet exports model-zoo networks with random
//! weights (and random BatchNorm running statistics, so they matter) and we run them with
//! `SymbolBlock::imports` on the same input; and models we export run in MXNet's
//! `SymbolBlock.imports` with matching outputs.

use std::path::{Path, PathBuf};

use mxgluon::gluon::nn::{
    Activation, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Embedding, Flatten, GlobalAvgPool2D,
    HybridSequential, LayerNorm, LeakyReLU, MaxPool2D, PReLU, Sequential, ELU,
};
use mxgluon::gluon::{Block, SymbolBlock};
use mxgluon::nd::{self, ActType, NDArray};
use mxgluon::{autograd, init, Context};

#[path = "common/mxnet.rs"]
mod mxnet_env;
use mxnet_env::{python, run_script};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-sbl-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rel_err(ours: &NDArray, reference: &NDArray) -> f64 {
    assert_eq!(ours.shape(), reference.shape());
    let a = ours.to_vec::<f32>().unwrap();
    let b = reference.to_vec::<f32>().unwrap();
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    diff / scale.max(1e-30)
}

/// MXNet builds `model` from the model zoo, randomizes it, runs `x` and exports it into
/// `dir`; returns the paths of the graph, the parameters, the input and the output.
fn mxnet_zoo(
    py: &str,
    model: &str,
    dir: &Path,
    shape: &str,
) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let script = format!(
        r#"
import mxnet as mx, numpy as np
from mxnet.gluon.model_zoo import vision
mx.random.seed(7); np.random.seed(7)
net = vision.get_model('{model}', pretrained=False)
net.initialize(mx.init.Xavier(magnitude=2.0))
x = mx.nd.array(np.random.uniform(-1, 1, size={shape}).astype('float32'))
net(x)
for name, p in net.collect_params().items():
    if name.endswith('running_mean'):
        p.set_data(mx.nd.array(np.random.uniform(-0.2, 0.2, size=p.shape)))
    elif name.endswith('running_var'):
        p.set_data(mx.nd.array(np.random.uniform(0.5, 1.5, size=p.shape)))
    elif name.endswith('gamma'):
        p.set_data(mx.nd.array(np.random.uniform(0.5, 1.5, size=p.shape)))
    elif name.endswith('beta'):
        p.set_data(mx.nd.array(np.random.uniform(-0.2, 0.2, size=p.shape)))
net.hybridize()
y = net(x)
net.export(r'{dir}/m')
np.save(r'{dir}/x.npy', x.asnumpy())
np.save(r'{dir}/y.npy', y.asnumpy())
print('ok')
"#,
        dir = dir.display()
    );
    let out = run_script(py, &script);
    assert!(out.contains("ok"));
    (
        dir.join("m-symbol.json"),
        dir.join("m-0000.params"),
        dir.join("x.npy"),
        dir.join("y.npy"),
    )
}

fn check_zoo(model: &str, shape: &str) {
    let Some(py) = python() else { return };
    let dir = tmpdir(model);
    let (sym, params, x, y) = mxnet_zoo(&py, model, &dir, shape);
    let net = SymbolBlock::imports(&sym, &["data"], Some(&params), Context::cpu(0)).unwrap();
    let x = mxgluon::io::npy::load(&x).unwrap();
    let reference = mxgluon::io::npy::load(&y).unwrap();
    let ours = net.forward(&x).unwrap();
    let err = rel_err(&ours, &reference);
    assert!(err < 1e-4, "{model}: relative error {err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resnet18_v1_exported_by_mxnet_runs_here() {
    check_zoo("resnet18_v1", "(1, 3, 224, 224)");
}

#[test]
fn mobilenet0_25_exported_by_mxnet_runs_here() {
    check_zoo("mobilenet0.25", "(1, 3, 224, 224)");
}

#[test]
fn squeezenet1_1_exported_by_mxnet_runs_here() {
    // Concat, Dropout, max pooling with ceil mode, average pooling, Flatten.
    check_zoo("squeezenet1.1", "(1, 3, 224, 224)");
}

#[test]
fn densenet121_exported_by_mxnet_runs_here() {
    // 121 layers of BatchNorm → relu → Convolution with a Concat after every dense layer,
    // average-pooling transitions.
    check_zoo("densenet121", "(1, 3, 224, 224)");
}

#[test]
fn mobilenet_v2_clip_runs_here() {
    check_zoo("mobilenetv2_0.25", "(1, 3, 64, 64)");
}

/// Runs our exported model in MXNet and returns its output file.
fn mxnet_imports(py: &str, dir: &Path, prefix: &str) -> NDArray {
    let script = format!(
        r#"
import mxnet as mx, numpy as np
from mxnet import gluon
net = gluon.SymbolBlock.imports(r'{dir}/{prefix}-symbol.json', ['data'], r'{dir}/{prefix}-0000.params')
x = mx.nd.array(np.load(r'{dir}/x.npy'))
np.save(r'{dir}/y_mx.npy', net(x).asnumpy())
print('ok')
"#,
        dir = dir.display()
    );
    assert!(run_script(py, &script).contains("ok"));
    mxgluon::io::npy::load(dir.join("y_mx.npy")).unwrap()
}

fn randomize_bn_stats(net: &dyn Block) {
    for (name, p) in net.collect_params().unwrap().items() {
        let shape = p.shape().unwrap();
        let n: usize = shape.iter().product();
        let vals: Vec<f32> = (0..n)
            .map(|i| {
                let s = (0.7 * i as f32 + 0.3).sin();
                if name.ends_with("running_var") {
                    1.0 + 0.5 * s
                } else {
                    0.2 * s
                }
            })
            .collect();
        if name.ends_with("running_var") || name.ends_with("running_mean") {
            p.set_data(&nd::array(&vals, &shape, None).unwrap())
                .unwrap();
        }
    }
}

#[test]
fn our_exported_mlp_runs_in_mxnet() {
    let Some(py) = python() else { return };
    let dir = tmpdir("mlp");
    let net = Sequential::new();
    {
        let _s = net.name_scope();
        net.add(
            Dense::builder(16)
                .in_units(10)
                .activation(ActType::Relu)
                .build()
                .unwrap(),
        );
        net.add(BatchNorm::builder().in_channels(16).build().unwrap());
        net.add(Activation::new(ActType::Tanh));
        net.add(Dropout::new(0.5).unwrap());
        net.add(LeakyReLU::new(0.1).unwrap());
        net.add(
            Dense::builder(4)
                .in_units(16)
                .use_bias(false)
                .build()
                .unwrap(),
        );
    }
    mxgluon::random::seed(3);
    net.initialize(Some(init::Xavier::default().into()), Context::cpu(0))
        .unwrap();
    randomize_bn_stats(&net);
    let x = nd::array(
        &(0..30).map(|i| (i as f32 * 0.31).sin()).collect::<Vec<_>>(),
        &[3, 10],
        None,
    )
    .unwrap();
    mxgluon::io::npy::save(dir.join("x.npy"), &x).unwrap();
    net.export(dir.join("mlp"), 0).unwrap();
    let theirs = mxnet_imports(&py, &dir, "mlp");
    let _p = autograd::predict_mode();
    let ours = net.forward(&x).unwrap();
    assert!(rel_err(&ours, &theirs) < 1e-5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn our_exported_conv_net_runs_in_mxnet() {
    let Some(py) = python() else { return };
    let dir = tmpdir("cnn");
    let net = Sequential::new();
    {
        let _s = net.name_scope();
        net.add(
            Conv2D::builder(6, [3, 3])
                .padding([1, 1])
                .in_channels(3)
                .activation(ActType::Relu)
                .build()
                .unwrap(),
        );
        net.add(BatchNorm::builder().in_channels(6).build().unwrap());
        net.add(MaxPool2D::new());
        net.add(
            Conv2D::builder(8, [3, 3])
                .strides([2, 2])
                .groups(2)
                .in_channels(6)
                .build()
                .unwrap(),
        );
        net.add(GlobalAvgPool2D::new());
        net.add(Flatten::new());
        net.add(Dense::builder(5).in_units(8).build().unwrap());
    }
    net.initialize(Some(init::Xavier::default().into()), Context::cpu(0))
        .unwrap();
    randomize_bn_stats(&net);
    let x = nd::array(
        &(0..2 * 3 * 12 * 12)
            .map(|i| (i as f32 * 0.13).cos())
            .collect::<Vec<_>>(),
        &[2, 3, 12, 12],
        None,
    )
    .unwrap();
    mxgluon::io::npy::save(dir.join("x.npy"), &x).unwrap();
    net.export(dir.join("cnn"), 0).unwrap();
    let theirs = mxnet_imports(&py, &dir, "cnn");
    let ours = net.forward(&x).unwrap();
    assert!(rel_err(&ours, &theirs) < 1e-5);
    std::fs::remove_dir_all(&dir).ok();
}

/// `(op, name)` of every node of a graph file, in file order, and the operator nodes'
/// attributes.
type GraphNodes = (Vec<(String, String)>, Vec<serde_json::Value>);

fn graph_nodes(path: &Path) -> GraphNodes {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let pairs = nodes
        .iter()
        .map(|n| {
            (
                n["op"].as_str().unwrap().to_string(),
                n["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let attrs = nodes
        .iter()
        .filter(|n| n["op"] != "null")
        .map(|n| n.get("attrs").cloned().unwrap_or_default())
        .collect();
    (pairs, attrs)
}

fn param_keys(path: &Path) -> Vec<String> {
    match mxgluon::io::load(path).unwrap() {
        mxgluon::io::ArrayList::Dict(v) => v.into_iter().map(|(k, _)| k).collect(),
        mxgluon::io::ArrayList::List(_) => panic!("{} holds no names", path.display()),
    }
}

/// Gluon's export of the same networks as [`parity_nets`], in the same order (so the
/// automatic prefixes agree), to `dir/mx<i>`.
const MXNET_PARITY_NETS: &str = r#"
import mxnet as mx, numpy as np
from mxnet.gluon import nn
def export(net, x, i):
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(x)
    net.export(DIR + '/mx%d' % i)
net = nn.HybridSequential()
with net.name_scope():
    net.add(nn.Dense(16, in_units=10, activation='relu'), nn.Activation('tanh'),
            nn.Dense(4, in_units=16))
export(net, mx.nd.ones((2, 10)), 0)
net = nn.HybridSequential()
with net.name_scope():
    net.add(nn.Conv2D(6, 3, padding=1, in_channels=3), nn.BatchNorm(in_channels=6),
            nn.Activation('relu'), nn.MaxPool2D(), nn.Flatten(), nn.Dense(5, in_units=96))
export(net, mx.nd.ones((2, 3, 8, 8)), 1)
net = nn.HybridSequential()
with net.name_scope():
    net.add(nn.Conv2D(4, 3, in_channels=3, activation='sigmoid'), nn.AvgPool2D(),
            nn.LeakyReLU(0.1), nn.ELU(), nn.PReLU(), nn.Dropout(0.5), nn.Dropout(0.0),
            nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(3, in_units=4, use_bias=False))
export(net, mx.nd.ones((2, 3, 8, 8)), 2)
net = nn.HybridSequential()
with net.name_scope():
    net.add(nn.Embedding(20, 6), nn.LayerNorm(), nn.Dense(3, flatten=False, in_units=6))
export(net, mx.nd.ones((2, 5)), 3)
print('ok')
"#;

/// The networks of [`MXNET_PARITY_NETS`], built with mxgluon in the same order.
fn parity_nets() -> Vec<HybridSequential> {
    let net0 = HybridSequential::new();
    {
        let _s = net0.name_scope();
        net0.add(
            Dense::builder(16)
                .in_units(10)
                .activation(ActType::Relu)
                .build()
                .unwrap(),
        );
        net0.add(Activation::new(ActType::Tanh));
        net0.add(Dense::builder(4).in_units(16).build().unwrap());
    }
    let net1 = HybridSequential::new();
    {
        let _s = net1.name_scope();
        net1.add(
            Conv2D::builder(6, [3, 3])
                .padding([1, 1])
                .in_channels(3)
                .build()
                .unwrap(),
        );
        net1.add(BatchNorm::builder().in_channels(6).build().unwrap());
        net1.add(Activation::new(ActType::Relu));
        net1.add(MaxPool2D::new());
        net1.add(Flatten::new());
        net1.add(Dense::builder(5).in_units(96).build().unwrap());
    }
    let net2 = HybridSequential::new();
    {
        let _s = net2.name_scope();
        net2.add(
            Conv2D::builder(4, [3, 3])
                .in_channels(3)
                .activation(ActType::Sigmoid)
                .build()
                .unwrap(),
        );
        net2.add(AvgPool2D::new());
        net2.add(LeakyReLU::new(0.1).unwrap());
        net2.add(ELU::new(1.0));
        net2.add(PReLU::new(1).unwrap());
        net2.add(Dropout::new(0.5).unwrap());
        net2.add(Dropout::new(0.0).unwrap());
        net2.add(GlobalAvgPool2D::new());
        net2.add(Flatten::new());
        net2.add(
            Dense::builder(3)
                .in_units(4)
                .use_bias(false)
                .build()
                .unwrap(),
        );
    }
    let net3 = embedding_layernorm_net();
    vec![net0, net1, net2, net3]
}

/// Embedding(20, 6) → LayerNorm → Dense(3, flatten = false), as Gluon names it.
fn embedding_layernorm_net() -> HybridSequential {
    let net = HybridSequential::new();
    {
        let _s = net.name_scope();
        net.add(Embedding::builder(20, 6).build().unwrap());
        net.add(LayerNorm::builder().build().unwrap());
        net.add(
            Dense::builder(3)
                .flatten(false)
                .in_units(6)
                .build()
                .unwrap(),
        );
    }
    net
}

#[test]
fn exported_graphs_name_nodes_and_parameters_as_gluon_does() {
    let Some(py) = python() else { return };
    let dir = tmpdir("names");
    let script = format!("DIR = r'{}'\n{MXNET_PARITY_NETS}", dir.display());
    assert!(run_script(&py, &script).contains("ok"));
    let inputs: [&[usize]; 4] = [&[2, 10], &[2, 3, 8, 8], &[2, 3, 8, 8], &[2, 5]];
    for (i, net) in parity_nets().iter().enumerate() {
        net.initialize(Some(init::Xavier::default().into()), Context::cpu(0))
            .unwrap();
        // As in Gluon, a first forward pass completes the deferred initialization.
        net.forward(&nd::ones(inputs[i], None).unwrap()).unwrap();
        net.export(dir.join(format!("ours{i}")), 0).unwrap();
        let (theirs, their_attrs) = graph_nodes(&dir.join(format!("mx{i}-symbol.json")));
        let (ours, our_attrs) = graph_nodes(&dir.join(format!("ours{i}-symbol.json")));
        assert_eq!(ours, theirs, "net {i}: (op, name) of the nodes");
        assert_eq!(our_attrs, their_attrs, "net {i}: operator attributes");
        assert_eq!(
            param_keys(&dir.join(format!("ours{i}-0000.params"))),
            param_keys(&dir.join(format!("mx{i}-0000.params"))),
            "net {i}: parameter file keys"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn our_exported_embedding_layernorm_net_runs_in_mxnet() {
    let Some(py) = python() else { return };
    let dir = tmpdir("emb");
    let net = embedding_layernorm_net();
    mxgluon::random::seed(5);
    net.initialize(Some(init::Xavier::default().into()), Context::cpu(0))
        .unwrap();
    net.forward(&nd::ones(&[1, 5], None).unwrap()).unwrap();
    // gamma and beta away from their ones / zeros, so that a swap would show.
    for (name, p) in net.collect_params().unwrap().items() {
        let shape = p.shape().unwrap();
        let n: usize = shape.iter().product();
        let phase = if name.ends_with("gamma") { 1.0 } else { 0.0 };
        if name.ends_with("gamma") || name.ends_with("beta") {
            let vals: Vec<f32> = (0..n)
                .map(|i| phase + 0.3 * (0.9 * i as f32 + 0.2).sin())
                .collect();
            p.set_data(&nd::array(&vals, &shape, None).unwrap())
                .unwrap();
        }
    }
    let idx: Vec<f32> = [3, 0, 19, 7, 7, 12, 1, 5, 18, 2]
        .iter()
        .map(|&i| i as f32)
        .collect();
    let x = nd::array(&idx, &[2, 5], None).unwrap();
    mxgluon::io::npy::save(dir.join("x.npy"), &x).unwrap();
    net.export(dir.join("emb"), 0).unwrap();
    let theirs = mxnet_imports(&py, &dir, "emb");
    let ours = net.forward(&x).unwrap();
    assert_eq!(ours.shape(), &[2, 5, 3]);
    let err = rel_err(&ours, &theirs);
    assert!(err < 1e-5, "relative error {err}");
    // The exported files also run through our own executor (Embedding and LayerNorm nodes).
    let back = SymbolBlock::imports(
        dir.join("emb-symbol.json"),
        &["data"],
        Some(dir.join("emb-0000.params")),
        Context::cpu(0),
    )
    .unwrap();
    let again = back.forward(&x).unwrap();
    assert_eq!(
        again.to_vec::<f32>().unwrap(),
        ours.to_vec::<f32>().unwrap()
    );
    std::fs::remove_dir_all(&dir).ok();
}
