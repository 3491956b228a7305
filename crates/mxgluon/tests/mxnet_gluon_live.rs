//! Live comparison with the real MXNet 1.9.1 Gluon: the same layers, losses and operators with
//! the same deterministic inputs and weights, forward values and gradients compared.
//!
//! One Python process computes every case and prints JSON; see `mxnet_live.rs` for how the
//! interpreter is found (CI fails rather than skipping).

use mxgluon::gluon::loss::{
    L1Loss, L2Loss, Loss, SigmoidBinaryCrossEntropyLoss, SoftmaxCrossEntropyLoss,
};
use mxgluon::gluon::nn::{BatchNorm, Dense, LayerNorm, LeakyReLU, PReLU, Sequential, ELU};
use mxgluon::gluon::Block;
use mxgluon::nd::{self, ActType, NDArray};
use mxgluon::{autograd, Context, GradReq};
use serde_json::Value;

#[path = "common/mxnet.rs"]
mod mxnet_env;
use mxnet_env::{python, run_script};

/// The deterministic test values `sin(0.37·i + phase)·scale`, used by both sides.
fn det(n: usize, phase: f64, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|i| (0.37 * i as f64 + phase).sin() * scale)
        .collect()
}

const PY: &str = r#"
import json, math
import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

def det(shape, phase, scale):
    n = int(np.prod(shape))
    return nd.array([math.sin(0.37 * i + phase) * scale for i in range(n)], dtype='float64').reshape(shape).astype('float32')

out = {}
def flat(a): return [float(v) for v in a.asnumpy().ravel()]

# 1. An MLP with BatchNorm, LayerNorm, PReLU and a softmax cross-entropy loss.
net = nn.Sequential(prefix='net_')
with net.name_scope():
    net.add(nn.Dense(8, in_units=6, activation='tanh'))
    net.add(nn.BatchNorm(in_channels=8))
    net.add(nn.PReLU())
    net.add(nn.Dense(7, in_units=8))
    net.add(nn.LayerNorm(in_channels=7))
    net.add(nn.Dense(5, in_units=7))
net.initialize()
params = net.collect_params()
for k, (name, p) in enumerate(params.items()):
    if 'running' in name or 'alpha' in name:
        continue
    p.set_data(det(p.shape, 0.5 * k, 0.4))
x = det((4, 6), 1.0, 1.5)
label = nd.array([0, 3, 4, 1])
lossf = gluon.loss.SoftmaxCrossEntropyLoss()
with autograd.record():
    y = net(x)
    L = lossf(y, label)
L.backward()
out['mlp'] = {'y': flat(y), 'loss': flat(L),
              'grads': {name: flat(p.grad()) for name, p in params.items() if p.grad_req != 'null'},
              'running_mean': flat(params['net_batchnorm0_running_mean'].data()),
              'running_var': flat(params['net_batchnorm0_running_var'].data())}
# predict mode afterwards uses the updated running statistics
out['mlp']['y_predict'] = flat(net(x))

# 2. Losses, values and gradients w.r.t. pred.
pred = det((3, 4), 0.3, 2.0)
losses = {
  'sce_sparse': (gluon.loss.SoftmaxCrossEntropyLoss(), nd.array([1, 0, 3])),
  'sce_dense': (gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False), nd.softmax(det((3, 4), 2.0, 1.0))),
  'sce_logits_weighted': (gluon.loss.SoftmaxCrossEntropyLoss(from_logits=True, weight=0.7), nd.array([2, 2, 0])),
  'l2': (gluon.loss.L2Loss(), det((3, 4), 1.1, 1.0)),
  'l2_weighted': (gluon.loss.L2Loss(weight=3.0), det((3, 4), 1.1, 1.0)),
  'l1': (gluon.loss.L1Loss(), det((3, 4), 1.3, 1.0)),
  'sbce': (gluon.loss.SigmoidBinaryCrossEntropyLoss(), (det((3, 4), 0.9, 1.0) > 0)),
  'sbce_from_sigmoid': (gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=True), (det((3, 4), 0.9, 1.0) > 0)),
}
out['losses'] = {}
for name, (f, lab) in losses.items():
    p = pred.copy()
    if name == 'sbce_from_sigmoid':
        p = nd.sigmoid(p)
    p.attach_grad()
    sw = det((3, 1), 0.2, 1.0) if name == 'l1' else None
    with autograd.record():
        l = f(p, lab.astype('float32'), sw) if sw is not None else f(p, lab.astype('float32'))
    l.backward()
    out['losses'][name] = {'loss': flat(l), 'grad': flat(p.grad)}

# 3. Activations and the leaky family on values across zero.
xa = det((2, 3, 2), 0.1, 2.5)
acts = {}
for act in ['relu', 'sigmoid', 'tanh', 'softrelu', 'softsign']:
    v = xa.copy(); v.attach_grad()
    with autograd.record():
        r = nd.Activation(v, act_type=act)
    r.backward(det(r.shape, 0.7, 1.0))
    acts[act] = {'y': flat(r), 'grad': flat(v.grad)}
for name, blk in [('leaky', nn.LeakyReLU(0.15)), ('elu', nn.ELU(0.8))]:
    v = xa.copy(); v.attach_grad()
    with autograd.record():
        r = blk(v)
    r.backward(det(r.shape, 0.7, 1.0))
    acts[name] = {'y': flat(r), 'grad': flat(v.grad)}
for name, fn in [('softmax', lambda v: nd.softmax(v, axis=1)), ('log_softmax', lambda v: nd.log_softmax(v, axis=-1))]:
    v = xa.copy(); v.attach_grad()
    with autograd.record():
        r = fn(v)
    r.backward(det(r.shape, 0.7, 1.0))
    acts[name] = {'y': flat(r), 'grad': flat(v.grad)}
out['acts'] = acts

# 4. Embedding gradient with repeated indices.
emb = nn.Embedding(6, 3)
emb.initialize()
emb.weight.set_data(det((6, 3), 0.0, 1.0))
idx = nd.array([[1, 4, 1], [5, 0, 1]])
with autograd.record():
    r = emb(idx)
r.backward(det(r.shape, 0.4, 1.0))
out['embedding'] = {'y': flat(r), 'grad': flat(emb.weight.grad())}
print(json.dumps(out))
"#;

fn run_py(py: &str) -> Value {
    serde_json::from_str(&run_script(py, PY)).expect("python printed invalid JSON")
}

fn f32s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn close(what: &str, ours: &[f64], theirs: &[f64], tol: f64) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let err = (a - b).abs() / b.abs().max(1.0);
        assert!(err <= tol, "{what}[{i}]: ours {a} vs MXNet {b}");
    }
}

fn det_arr(shape: &[usize], phase: f64, scale: f64) -> NDArray {
    let n = shape.iter().product();
    let v: Vec<f32> = det(n, phase, scale).into_iter().map(|x| x as f32).collect();
    NDArray::from_vec(v, shape, Context::cpu(0)).unwrap()
}

fn check_mlp(r: &Value) {
    let ctx = Context::cpu(0);
    let net = Sequential::with_prefix(Some("net_"), None);
    {
        let _s = net.name_scope();
        net.add(
            Dense::builder(8)
                .in_units(6)
                .activation(ActType::Tanh)
                .build()
                .unwrap(),
        );
        net.add(BatchNorm::builder().in_channels(8).build().unwrap());
        net.add(PReLU::new(1).unwrap());
        net.add(Dense::builder(7).in_units(8).build().unwrap());
        net.add(LayerNorm::builder().in_channels(7).build().unwrap());
        net.add(Dense::builder(5).in_units(7).build().unwrap());
    }
    net.initialize(None, ctx).unwrap();
    let params = net.collect_params().unwrap();
    for (k, (name, p)) in params.items().into_iter().enumerate() {
        if name.contains("running") || name.contains("alpha") {
            continue;
        }
        p.set_data(&det_arr(&p.shape().unwrap(), 0.5 * k as f64, 0.4))
            .unwrap();
    }
    let x = det_arr(&[4, 6], 1.0, 1.5);
    let label = nd::array(&[0.0f32, 3.0, 4.0, 1.0], &[4], None).unwrap();
    let (y, l) = {
        let _r = autograd::record();
        let y = net.forward(&x).unwrap();
        let l = SoftmaxCrossEntropyLoss::new()
            .loss(&y, &label, None)
            .unwrap();
        (y, l)
    };
    l.backward().unwrap();
    close("mlp y", &y.to_f64_vec(), &f32s(&r["y"]), 1e-5);
    close("mlp loss", &l.to_f64_vec(), &f32s(&r["loss"]), 1e-5);
    let grads = r["grads"].as_object().unwrap();
    for (name, g) in grads {
        let p = params
            .get_param(name)
            .unwrap_or_else(|| panic!("no parameter {name}"));
        close(
            &format!("grad {name}"),
            &p.grad(ctx).unwrap().to_f64_vec(),
            &f32s(g),
            1e-4,
        );
    }
    assert_eq!(
        grads.len(),
        params
            .values()
            .iter()
            .filter(|p| p.grad_req() != GradReq::Null)
            .count()
    );
    let rm = params.get_param("net_batchnorm0_running_mean").unwrap();
    let rv = params.get_param("net_batchnorm0_running_var").unwrap();
    close(
        "running_mean",
        &rm.data(ctx).unwrap().to_f64_vec(),
        &f32s(&r["running_mean"]),
        1e-5,
    );
    close(
        "running_var",
        &rv.data(ctx).unwrap().to_f64_vec(),
        &f32s(&r["running_var"]),
        1e-5,
    );
    let yp = net.forward(&x).unwrap();
    close(
        "mlp y predict",
        &yp.to_f64_vec(),
        &f32s(&r["y_predict"]),
        1e-5,
    );
}

fn check_losses(r: &Value) {
    let pred = det_arr(&[3, 4], 0.3, 2.0);
    let bin = |phase| {
        det_arr(&[3, 4], phase, 1.0)
            .to_f32_vec()
            .iter()
            .map(|&v| (v > 0.0) as u8 as f32)
            .collect::<Vec<_>>()
    };
    let cases: Vec<(&str, Box<dyn Loss>, NDArray)> = vec![
        (
            "sce_sparse",
            Box::new(SoftmaxCrossEntropyLoss::new()),
            nd::array(&[1.0f32, 0.0, 3.0], &[3], None).unwrap(),
        ),
        (
            "sce_dense",
            Box::new(SoftmaxCrossEntropyLoss::new().sparse_label(false)),
            nd::softmax(&det_arr(&[3, 4], 2.0, 1.0), -1).unwrap(),
        ),
        (
            "sce_logits_weighted",
            Box::new(SoftmaxCrossEntropyLoss::new().from_logits(true).weight(0.7)),
            nd::array(&[2.0f32, 2.0, 0.0], &[3], None).unwrap(),
        ),
        ("l2", Box::new(L2Loss::new()), det_arr(&[3, 4], 1.1, 1.0)),
        (
            "l2_weighted",
            Box::new(L2Loss::new().weight(3.0)),
            det_arr(&[3, 4], 1.1, 1.0),
        ),
        ("l1", Box::new(L1Loss::new()), det_arr(&[3, 4], 1.3, 1.0)),
        (
            "sbce",
            Box::new(SigmoidBinaryCrossEntropyLoss::new()),
            NDArray::from_vec(bin(0.9), &[3, 4], Context::cpu(0)).unwrap(),
        ),
        (
            "sbce_from_sigmoid",
            Box::new(SigmoidBinaryCrossEntropyLoss::new().from_sigmoid(true)),
            NDArray::from_vec(bin(0.9), &[3, 4], Context::cpu(0)).unwrap(),
        ),
    ];
    for (name, f, label) in cases {
        let mut p = if name == "sbce_from_sigmoid" {
            nd::activation(&pred, ActType::Sigmoid).unwrap()
        } else {
            pred.copy_to(Context::cpu(0)).unwrap()
        };
        p.attach_grad(GradReq::Write).unwrap();
        let sw = (name == "l1").then(|| det_arr(&[3, 1], 0.2, 1.0));
        let l = {
            let _r = autograd::record();
            f.loss(&p, &label, sw.as_ref()).unwrap()
        };
        l.backward().unwrap();
        close(
            &format!("{name} loss"),
            &l.to_f64_vec(),
            &f32s(&r[name]["loss"]),
            1e-5,
        );
        close(
            &format!("{name} grad"),
            &p.grad().unwrap().to_f64_vec(),
            &f32s(&r[name]["grad"]),
            1e-5,
        );
    }
}

fn check_acts(r: &Value) {
    let xa = det_arr(&[2, 3, 2], 0.1, 2.5);
    let head = det_arr(&[2, 3, 2], 0.7, 1.0);
    let run = |name: &str, f: &dyn Fn(&NDArray) -> NDArray| {
        let mut v = xa.copy_to(Context::cpu(0)).unwrap();
        v.attach_grad(GradReq::Write).unwrap();
        let y = {
            let _r = autograd::record();
            f(&v)
        };
        y.backward_with(Some(&head), false).unwrap();
        close(
            &format!("{name} y"),
            &y.to_f64_vec(),
            &f32s(&r[name]["y"]),
            1e-5,
        );
        close(
            &format!("{name} grad"),
            &v.grad().unwrap().to_f64_vec(),
            &f32s(&r[name]["grad"]),
            1e-5,
        );
    };
    for (name, act) in [
        ("relu", ActType::Relu),
        ("sigmoid", ActType::Sigmoid),
        ("tanh", ActType::Tanh),
        ("softrelu", ActType::SoftRelu),
        ("softsign", ActType::SoftSign),
    ] {
        run(name, &|v| nd::activation(v, act).unwrap());
    }
    let leaky = LeakyReLU::new(0.15).unwrap();
    run("leaky", &|v| leaky.forward(v).unwrap());
    let elu = ELU::new(0.8);
    run("elu", &|v| elu.forward(v).unwrap());
    run("softmax", &|v| nd::softmax(v, 1).unwrap());
    run("log_softmax", &|v| nd::log_softmax(v, -1).unwrap());
}

fn check_embedding(r: &Value) {
    let ctx = Context::cpu(0);
    let emb = mxgluon::gluon::nn::Embedding::builder(6, 3)
        .build()
        .unwrap();
    emb.initialize(None, ctx).unwrap();
    emb.weight().set_data(&det_arr(&[6, 3], 0.0, 1.0)).unwrap();
    let idx = nd::array(&[1.0f32, 4.0, 1.0, 5.0, 0.0, 1.0], &[2, 3], None).unwrap();
    let y = {
        let _r = autograd::record();
        emb.forward(&idx).unwrap()
    };
    y.backward_with(Some(&det_arr(&[2, 3, 3], 0.4, 1.0)), false)
        .unwrap();
    close("embedding y", &y.to_f64_vec(), &f32s(&r["y"]), 1e-6);
    close(
        "embedding grad",
        &emb.weight().grad(ctx).unwrap().to_f64_vec(),
        &f32s(&r["grad"]),
        1e-6,
    );
}

#[test]
fn gluon_layers_losses_and_gradients_match_mxnet() {
    let Some(py) = python() else { return };
    let r = run_py(&py);
    check_mlp(&r["mlp"]);
    check_losses(&r["losses"]);
    check_acts(&r["acts"]);
    check_embedding(&r["embedding"]);
}
