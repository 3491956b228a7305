//! Live comparison with MXNet 1.9.1: sparse-gradient and sparse-weight training.
//!
//! * `Embedding(20, 4, sparse_grad=True)` + `Dense(3)` trained 5 steps with SGD (momentum,
//!   weight decay) and with Adam, on 1 and 2 contexts (MXNet: no kvstore / a local kvstore
//!   reducing row_sparse gradients, lazy updates);
//! * a row_sparse weight (`Parameter(stype='row_sparse', grad_stype='row_sparse')`) used
//!   through `sparse.dot(csr, w.row_sparse_data(ids))` + `Dense(3)`, same optimizers
//!   (MXNet: the weight's value lives in the kvstore, updated there).
//!
//! Same data and initial weights on both sides; the weights must agree to 1e-5.

use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mxgluon::gluon::nn::{Dense, Embedding, Sequential};
use mxgluon::gluon::utils::{parallel_map, split_and_load};
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::nd::{self, CSRNDArray, NDArray};
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, Context, Parameter, StorageType};
use serde_json::Value;

#[path = "common/mxnet.rs"]
mod mxnet_env;
use mxnet_env::{python, run_script};

const STEPS: usize = 5;
const BATCH: usize = 8;
const ROWS: usize = 20;
const DIM: usize = 4;

/// `sin(0.37·i + phase)·scale`, computed the same way on both sides.
fn det(n: usize, phase: f64, scale: f64) -> Vec<f32> {
    (0..n)
        .map(|i| ((0.37 * i as f64 + phase).sin() * scale) as f32)
        .collect()
}

/// (case name, optimizer, Python options, our options, contexts)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    OptimizerOptions,
    usize,
);

fn cases() -> Vec<Case> {
    let sgd = || {
        OptimizerOptions::new()
            .set("learning_rate", 0.2)
            .set("momentum", 0.9)
            .set("wd", 0.01)
    };
    let adam = || {
        OptimizerOptions::new()
            .set("learning_rate", 0.05)
            .set("wd", 0.001)
    };
    let sgd_py = "{'learning_rate': 0.2, 'momentum': 0.9, 'wd': 0.01}";
    let adam_py = "{'learning_rate': 0.05, 'wd': 0.001}";
    vec![
        ("sgd_1ctx", "sgd", sgd_py, sgd(), 1),
        ("sgd_2ctx", "sgd", sgd_py, sgd(), 2),
        ("adam_1ctx", "adam", adam_py, adam(), 1),
        ("adam_2ctx", "adam", adam_py, adam(), 2),
    ]
}

/// The ids of step `step`: repeated within a batch, several rows never touched.
fn batch_ids(step: usize) -> Vec<f32> {
    (0..BATCH)
        .map(|i| ((i * 7 + step * 3) % 13) as f32)
        .collect()
}

fn labels(step: usize) -> Vec<f32> {
    (0..BATCH).map(|i| ((i + step) % 3) as f32).collect()
}

/// The dense form of step `step`'s csr input `(BATCH, ROWS)`.
fn csr_dense(step: usize) -> Vec<f32> {
    let vals = det(BATCH * ROWS, 0.5 * step as f64, 1.0);
    (0..BATCH * ROWS)
        .map(|k| {
            let (i, j) = (k / ROWS, k % ROWS);
            if (i * 5 + j * 3 + step).is_multiple_of(7) {
                vals[k]
            } else {
                0.0
            }
        })
        .collect()
}

fn py_script() -> String {
    let mut s = String::from(
        r#"
import json, math
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

STEPS, BATCH, ROWS, DIM = __STEPS__, __BATCH__, __ROWS__, __DIM__

def det(n, phase, scale):
    return np.array([math.sin(0.37 * i + phase) * scale for i in range(n)], dtype='float64').astype('float32')

def batch_ids(step):
    return [float((i * 7 + step * 3) % 13) for i in range(BATCH)]

def labels(step):
    return [float((i + step) % 3) for i in range(BATCH)]

def csr_dense(step):
    vals = det(BATCH * ROWS, 0.5 * step, 1.0)
    out = np.zeros(BATCH * ROWS, dtype='float32')
    for k in range(BATCH * ROWS):
        i, j = k // ROWS, k % ROWS
        if (i * 5 + j * 3 + step) % 7 == 0:
            out[k] = vals[k]
    return out.reshape((BATCH, ROWS))

def set_params(params):
    for k, name in enumerate(sorted(params.keys())):
        p = params[name]
        n = int(np.prod(p.shape))
        v = nd.array(det(n, 0.3 * k, 0.5).reshape(p.shape))
        if p._stype == 'default':
            p.set_data(v)
        else:
            for d in p._data:
                d[:] = v.tostype('row_sparse')

def dump(params, ctx):
    out = {}
    for name in sorted(params.keys()):
        p = params[name]
        if p._stype == 'default':
            out[name] = [float(v) for v in p.data(ctx).asnumpy().ravel()]
        else:
            full = p.row_sparse_data(nd.arange(0, ROWS, ctx=ctx))
            out[name] = [float(v) for v in full.tostype('default').asnumpy().ravel()]
    return out

def run_embedding(opt, opt_params, nctx):
    ctxs = [mx.cpu(i) for i in range(nctx)]
    net = nn.Sequential(prefix='net_')
    with net.name_scope():
        net.add(nn.Embedding(ROWS, DIM, sparse_grad=True))
        net.add(nn.Dense(3, in_units=DIM))
    net.initialize(ctx=ctxs)
    params = net.collect_params()
    set_params(params)
    trainer = gluon.Trainer(params, opt, opt_params)
    lossf = gluon.loss.SoftmaxCrossEntropyLoss()
    for step in range(STEPS):
        xs = gluon.utils.split_and_load(nd.array(batch_ids(step)), ctxs)
        ys = gluon.utils.split_and_load(nd.array(labels(step)), ctxs)
        with autograd.record():
            losses = [lossf(net(a), b) for a, b in zip(xs, ys)]
        for l in losses:
            l.backward()
        trainer.step(BATCH)
    return dump(params, ctxs[-1])

def run_rsp_weight(opt, opt_params, nctx):
    ctxs = [mx.cpu(i) for i in range(nctx)]
    w = gluon.Parameter('sw_weight', shape=(ROWS, DIM), stype='row_sparse', grad_stype='row_sparse')
    head = nn.Dense(3, in_units=DIM, prefix='head_')
    w.initialize(ctx=ctxs)
    head.initialize(ctx=ctxs)
    params = gluon.ParameterDict()
    params._params['sw_weight'] = w
    params.update(head.collect_params())
    set_params(params)
    trainer = gluon.Trainer(params, opt, opt_params)
    lossf = gluon.loss.SoftmaxCrossEntropyLoss()
    per = BATCH // nctx
    for step in range(STEPS):
        dense = csr_dense(step)
        lab = labels(step)
        losses = []
        with autograd.record():
            for k, ctx in enumerate(ctxs):
                part = dense[k * per:(k + 1) * per]
                csr = nd.array(part, ctx=ctx).tostype('csr')
                cols = sorted(set(int(j) for j in np.nonzero(part)[1]))
                rows = w.row_sparse_data(nd.array(cols, ctx=ctx))
                out = head(nd.sparse.dot(csr, rows))
                losses.append(lossf(out, nd.array(lab[k * per:(k + 1) * per], ctx=ctx)))
        for l in losses:
            l.backward()
        trainer.step(BATCH)
    return dump(params, ctxs[-1])

out = {}
"#,
    );
    s = s
        .replace("__STEPS__", &STEPS.to_string())
        .replace("__BATCH__", &BATCH.to_string())
        .replace("__ROWS__", &ROWS.to_string())
        .replace("__DIM__", &DIM.to_string());
    for (name, opt, py_opts, _, nctx) in cases() {
        s.push_str(&format!(
            "out['emb_{name}'] = run_embedding('{opt}', {py_opts}, {nctx})\n\
             out['rsp_{name}'] = run_rsp_weight('{opt}', {py_opts}, {nctx})\n"
        ));
    }
    s.push_str("print(json.dumps(out))\n");
    s
}

fn set_params(params: &[(String, Parameter)]) {
    for (k, (_, p)) in params.iter().enumerate() {
        let shape = p.shape().unwrap();
        let n: usize = shape.iter().product();
        let v = NDArray::from_vec(det(n, 0.3 * k as f64, 0.5), &shape, Context::cpu(0)).unwrap();
        p.set_data(&v).unwrap();
    }
}

fn dump(params: &[(String, Parameter)], ctx: Context) -> Vec<(String, Vec<f32>)> {
    params
        .iter()
        .map(|(n, p)| {
            let v = if p.stype() == StorageType::Default {
                p.data(ctx).unwrap().to_vec::<f32>().unwrap()
            } else {
                p.row_sparse_data(&nd::arange(0.0, ROWS as f64, 1.0, ctx).unwrap())
                    .unwrap()
                    .to_dense()
                    .unwrap()
                    .to_vec::<f32>()
                    .unwrap()
            };
            (n.clone(), v)
        })
        .collect()
}

fn sorted_params(dict: &mxgluon::ParameterDict) -> Vec<(String, Parameter)> {
    let mut items = dict.items();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

fn ours_embedding(opt: &str, opts: OptimizerOptions, nctx: usize) -> Vec<(String, Vec<f32>)> {
    let ctxs: Vec<Context> = (0..nctx as u32).map(Context::cpu).collect();
    let net = Sequential::with_prefix(Some("net_"), None);
    {
        let _s = net.name_scope();
        net.add(
            Embedding::builder(ROWS, DIM)
                .sparse_grad(true)
                .build()
                .unwrap(),
        );
        net.add(Dense::builder(3).in_units(DIM).build().unwrap());
    }
    net.initialize(None, ctxs.clone()).unwrap();
    let dict = net.collect_params().unwrap();
    let params = sorted_params(&dict);
    set_params(&params);
    let mut trainer = Trainer::new(&dict, (opt, opts), TrainerOptions::new()).unwrap();
    let lossf = SoftmaxCrossEntropyLoss::new();
    for step in 0..STEPS {
        let x = NDArray::from_vec(batch_ids(step), &[BATCH], Context::cpu(0)).unwrap();
        let y = NDArray::from_vec(labels(step), &[BATCH], Context::cpu(0)).unwrap();
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
    dump(&params, *ctxs.last().unwrap())
}

fn ours_rsp_weight(opt: &str, opts: OptimizerOptions, nctx: usize) -> Vec<(String, Vec<f32>)> {
    let ctxs: Vec<Context> = (0..nctx as u32).map(Context::cpu).collect();
    let w = Parameter::new("sw_weight")
        .with_shape([ROWS, DIM])
        .with_stype(StorageType::RowSparse)
        .with_grad_stype(StorageType::RowSparse);
    let head = Dense::builder(3)
        .in_units(DIM)
        .prefix("head_")
        .build()
        .unwrap();
    w.initialize(ctxs.clone()).unwrap();
    head.initialize(None, ctxs.clone()).unwrap();
    let dict = mxgluon::ParameterDict::new("");
    dict.insert(w.clone()).unwrap();
    for (_, p) in head.collect_params().unwrap().items() {
        dict.insert(p).unwrap();
    }
    let params = sorted_params(&dict);
    set_params(&params);
    let mut trainer = Trainer::new(&dict, (opt, opts), TrainerOptions::new()).unwrap();
    let lossf = SoftmaxCrossEntropyLoss::new();
    let per = BATCH / nctx;
    for step in 0..STEPS {
        let dense = csr_dense(step);
        let lab = labels(step);
        let parts: Vec<(Context, Vec<f32>, Vec<f32>)> = ctxs
            .iter()
            .enumerate()
            .map(|(k, c)| {
                (
                    *c,
                    dense[k * per * ROWS..(k + 1) * per * ROWS].to_vec(),
                    lab[k * per..(k + 1) * per].to_vec(),
                )
            })
            .collect();
        parallel_map(&parts, |(ctx, part, lab)| {
            let csr = CSRNDArray::from_dense(&NDArray::from_slice(part, &[per, ROWS], *ctx)?)?;
            let mut cols: Vec<usize> = (0..part.len())
                .filter(|&k| part[k] != 0.0)
                .map(|k| k % ROWS)
                .collect();
            cols.sort_unstable();
            cols.dedup();
            let ids: Vec<f32> = cols.iter().map(|&c| c as f32).collect();
            let rows = w.row_sparse_data(&NDArray::from_slice(&ids, &[ids.len()], *ctx)?)?;
            let label = NDArray::from_slice(lab, &[lab.len()], *ctx)?;
            let l = {
                let _r = autograd::record();
                let out = head.forward(&nd::sparse_dot_rsp(&csr, &rows)?)?;
                lossf.loss(&out, &label, None)?
            };
            l.backward()
        })
        .unwrap();
        trainer.step(BATCH).unwrap();
    }
    dump(&params, *ctxs.last().unwrap())
}

fn compare(case: &str, theirs: &Value, mine: Vec<(String, Vec<f32>)>) {
    for (pname, mine) in mine {
        let want: Vec<f64> = theirs[&pname]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: MXNet has no {pname}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(want.len(), mine.len(), "{case} {pname}");
        for (i, (a, b)) in mine.iter().zip(&want).enumerate() {
            let tol = 1e-5 * (1.0 + b.abs());
            assert!(
                (*a as f64 - b).abs() <= tol,
                "{case} {pname}[{i}]: ours {a} vs MXNet {b}"
            );
        }
    }
}

#[test]
fn sparse_training_matches_mxnet() {
    let Some(py) = python() else { return };
    let out: Value = serde_json::from_str(run_script(&py, &py_script()).trim()).unwrap();
    for (name, opt, _, opts, nctx) in cases() {
        compare(
            &format!("emb_{name}"),
            &out[format!("emb_{name}")],
            ours_embedding(opt, opts.clone(), nctx),
        );
        compare(
            &format!("rsp_{name}"),
            &out[format!("rsp_{name}")],
            ours_rsp_weight(opt, opts, nctx),
        );
    }
}
