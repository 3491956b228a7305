//! Live comparison with MXNet 1.9.1's `gluon.Trainer`: the same two-layer net with the same
//! weights and batches is trained for several steps on one and on two contexts, with several
//! optimizers, a changed `lr_mult` / `wd_mult`, a frozen parameter and `update_on_kvstore`
//! off; the weights after every run must match.

use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::utils::{parallel_map, split_and_load};
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::nd::{ActType, NDArray};
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, Context, GradReq};
use serde_json::Value;

#[path = "common/mxnet.rs"]
mod mxnet_env;
use mxnet_env::{python, run_script};

/// `sin(0.37·i + phase)·scale`, computed the same way on both sides.
fn det(n: usize, phase: f64, scale: f64) -> Vec<f32> {
    (0..n)
        .map(|i| ((0.37 * i as f64 + phase).sin() * scale) as f32)
        .collect()
}

/// (name, optimizer, options as Python dict text, our options, contexts, update_on_kvstore)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    OptimizerOptions,
    usize,
    bool,
);

fn cases() -> Vec<Case> {
    let o = OptimizerOptions::new;
    vec![
        (
            "sgd_1ctx",
            "sgd",
            "{'learning_rate': 0.3, 'momentum': 0.9, 'wd': 0.01}",
            o().set("learning_rate", 0.3)
                .set("momentum", 0.9)
                .set("wd", 0.01),
            1,
            true,
        ),
        (
            "sgd_2ctx",
            "sgd",
            "{'learning_rate': 0.3, 'momentum': 0.9, 'wd': 0.01}",
            o().set("learning_rate", 0.3)
                .set("momentum", 0.9)
                .set("wd", 0.01),
            2,
            true,
        ),
        (
            "sgd_2ctx_allreduce",
            "sgd",
            "{'learning_rate': 0.3, 'momentum': 0.9}",
            o().set("learning_rate", 0.3).set("momentum", 0.9),
            2,
            false,
        ),
        (
            "adam_2ctx",
            "adam",
            "{'learning_rate': 0.05, 'wd': 0.001, 'clip_gradient': 0.5}",
            o().set("learning_rate", 0.05)
                .set("wd", 0.001)
                .set("clip_gradient", 0.5),
            2,
            true,
        ),
        (
            "rmsprop_1ctx",
            "rmsprop",
            "{'learning_rate': 0.01, 'centered': True}",
            o().set("learning_rate", 0.01).set_bool("centered", true),
            1,
            true,
        ),
    ]
}

const STEPS: usize = 4;
const BATCH: usize = 8;

fn py_script() -> String {
    let mut s = String::from(
        r#"
import json, math
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

def det(n, phase, scale):
    return nd.array([math.sin(0.37 * i + phase) * scale for i in range(n)], dtype='float64').astype('float32')

def run(opt, opt_params, nctx, uok):
    ctxs = [mx.cpu(i) for i in range(nctx)]
    net = nn.Sequential(prefix='net_')
    with net.name_scope():
        net.add(nn.Dense(6, in_units=5, activation='tanh'))
        net.add(nn.Dense(3, in_units=6))
    net.initialize(ctx=ctxs)
    params = net.collect_params()
    for k, name in enumerate(sorted(params.keys())):
        p = params[name]
        p.set_data(det(p.shape[0] * (p.shape[1] if len(p.shape) > 1 else 1), 0.3 * k, 0.5).reshape(p.shape))
    params['net_dense1_bias'].lr_mult = 0.5
    params['net_dense0_bias'].grad_req = 'null'
    trainer = gluon.Trainer(params, opt, opt_params, update_on_kvstore=(None if uok else False))
    params['net_dense1_weight'].wd_mult = 2.0
    lossf = gluon.loss.SoftmaxCrossEntropyLoss()
    for step in range(STEPS):
        x = det(BATCH * 5, 0.7 * step, 1.5).reshape((BATCH, 5))
        y = nd.array([(i * 3 + step) % 3 for i in range(BATCH)])
        xs = gluon.utils.split_and_load(x, ctxs)
        ys = gluon.utils.split_and_load(y, ctxs)
        with autograd.record():
            losses = [lossf(net(a), b) for a, b in zip(xs, ys)]
        for l in losses:
            l.backward()
        trainer.step(BATCH)
    return {name: [float(v) for v in params[name].data(ctxs[-1]).asnumpy().ravel()] for name in sorted(params.keys())}

out = {}
"#,
    );
    s = s
        .replace("STEPS", &STEPS.to_string())
        .replace("BATCH", &BATCH.to_string());
    for (name, opt, py_opts, _, nctx, uok) in cases() {
        s.push_str(&format!(
            "out['{name}'] = run('{opt}', {py_opts}, {nctx}, {})\n",
            if uok { "True" } else { "False" }
        ));
    }
    s.push_str("print(json.dumps(out))\n");
    s
}

fn ours(opt: &str, opts: OptimizerOptions, nctx: usize, uok: bool) -> Vec<(String, Vec<f32>)> {
    let ctxs: Vec<Context> = (0..nctx as u32).map(Context::cpu).collect();
    let net = Sequential::with_prefix(Some("net_"), None);
    {
        let _s = net.name_scope();
        net.add(
            Dense::builder(6)
                .in_units(5)
                .activation(ActType::Tanh)
                .build()
                .unwrap(),
        );
        net.add(Dense::builder(3).in_units(6).build().unwrap());
    }
    net.initialize(None, ctxs.clone()).unwrap();
    let params = net.collect_params().unwrap();
    let mut names = params.keys();
    names.sort();
    for (k, name) in names.iter().enumerate() {
        let p = params.get_param(name).unwrap();
        let shape = p.shape().unwrap();
        let n: usize = shape.iter().product();
        let v = NDArray::from_vec(det(n, 0.3 * k as f64, 0.5), &shape, Context::cpu(0)).unwrap();
        p.set_data(&v).unwrap();
    }
    params
        .get_param("net_dense1_bias")
        .unwrap()
        .set_lr_mult(0.5);
    params
        .get_param("net_dense0_bias")
        .unwrap()
        .set_grad_req(GradReq::Null)
        .unwrap();
    let topts = if uok {
        TrainerOptions::new()
    } else {
        TrainerOptions::new().update_on_kvstore(false)
    };
    let mut trainer = Trainer::new(&params, (opt, opts), topts).unwrap();
    params
        .get_param("net_dense1_weight")
        .unwrap()
        .set_wd_mult(2.0);
    let lossf = SoftmaxCrossEntropyLoss::new();
    for step in 0..STEPS {
        let x = NDArray::from_vec(
            det(BATCH * 5, 0.7 * step as f64, 1.5),
            &[BATCH, 5],
            Context::cpu(0),
        )
        .unwrap();
        let labels: Vec<f32> = (0..BATCH).map(|i| ((i * 3 + step) % 3) as f32).collect();
        let y = NDArray::from_vec(labels, &[BATCH], Context::cpu(0)).unwrap();
        let parts: Vec<(NDArray, NDArray)> = split_and_load(&x, &ctxs, true)
            .unwrap()
            .into_iter()
            .zip(split_and_load(&y, &ctxs, true).unwrap())
            .collect();
        parallel_map(&parts, |(a, b)| {
            let l = {
                let _r = autograd::record();
                lossf.loss(&net.forward(a)?, b, None)?
            };
            l.backward()
        })
        .unwrap();
        trainer.step(BATCH).unwrap();
    }
    let last = *ctxs.last().unwrap();
    names
        .into_iter()
        .map(|n| {
            let v = params
                .get_param(&n)
                .unwrap()
                .data(last)
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            (n, v)
        })
        .collect()
}

#[test]
fn trainer_matches_mxnet_over_several_steps() {
    let Some(py) = python() else { return };
    let out: Value = serde_json::from_str(run_script(&py, &py_script()).trim()).unwrap();
    for (name, opt, _, opts, nctx, uok) in cases() {
        let theirs = &out[name];
        for (pname, mine) in ours(opt, opts, nctx, uok) {
            let want: Vec<f64> = theirs[&pname]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: MXNet has no {pname}"))
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(want.len(), mine.len(), "{name} {pname}");
            for (i, (a, b)) in mine.iter().zip(&want).enumerate() {
                let tol = 2e-5 * (1.0 + b.abs());
                assert!(
                    (*a as f64 - b).abs() <= tol,
                    "{name} {pname}[{i}]: ours {a} vs MXNet {b}"
                );
            }
        }
    }
}
