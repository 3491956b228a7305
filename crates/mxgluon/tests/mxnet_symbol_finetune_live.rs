//! Live check against MXNet 1.9.1: fine-tuning an imported model. MXNet builds and exports a
//! small conv net (Conv2D + BatchNorm + relu + Dense), then fine-tunes its own
//! `gluon.SymbolBlock.imports` of it for a few SGD-momentum steps with a softmax
//! cross-entropy loss; we import the same files with `SymbolBlock::imports`, train the same
//! steps with `gluon::Trainer`, and every parameter — BatchNorm's moving statistics, which
//! training-mode forward passes update, included — must match MXNet's.

use std::path::PathBuf;

use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mxgluon::gluon::{Block, SymbolBlock, Trainer, TrainerOptions};
use mxgluon::nd::{self, NDArray};
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, Context, GradReq};

#[path = "common/mxnet.rs"]
mod mxnet_env;
use mxnet_env::{python, run_script};

const STEPS: usize = 3;
const BATCH: usize = 8;
const LR: f64 = 0.1;
const MOMENTUM: f64 = 0.9;
const WD: f64 = 1e-4;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-sft-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// max |ours − theirs| / max |theirs|.
fn rel_err(ours: &NDArray, theirs: &NDArray) -> f64 {
    assert_eq!(ours.shape(), theirs.shape());
    let a = ours.to_f64_vec();
    let b = theirs.to_f64_vec();
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    diff / scale.max(1e-30)
}

/// MXNet: build, randomize and export the net; write the batch; fine-tune the imported
/// `SymbolBlock`; save its parameters to `after.params`. Prints one `loss <mean>` per step.
fn mxnet_side(py: &str, dir: &std::path::Path) -> Vec<f64> {
    let script = format!(
        r#"
import mxnet as mx, numpy as np
from mxnet import gluon, autograd
from mxnet.gluon import nn
mx.random.seed(11); np.random.seed(11)
net = nn.HybridSequential(prefix='ft_')
with net.name_scope():
    net.add(nn.Conv2D(4, 3, in_channels=2))
    net.add(nn.BatchNorm(in_channels=4))
    net.add(nn.Activation('relu'))
    net.add(nn.Dense(3, in_units=4 * 4 * 4))
net.initialize(mx.init.Xavier(magnitude=2.0))
for name, p in net.collect_params().items():
    if name.endswith('running_mean') or name.endswith('beta') or name.endswith('bias'):
        p.set_data(mx.nd.array(np.random.uniform(-0.3, 0.3, size=p.shape)))
    elif name.endswith('running_var') or name.endswith('gamma'):
        p.set_data(mx.nd.array(np.random.uniform(0.5, 1.5, size=p.shape)))
x = np.random.uniform(-1, 1, size=({batch}, 2, 6, 6)).astype('float32')
y = np.random.randint(0, 3, size=({batch},)).astype('float32')
np.save(r'{dir}/x.npy', x)
np.save(r'{dir}/y.npy', y)
net.hybridize()
net(mx.nd.array(x))
net.export(r'{dir}/m')

blk = gluon.SymbolBlock.imports(r'{dir}/m-symbol.json', ['data'], r'{dir}/m-0000.params')
trainer = gluon.Trainer(blk.collect_params(), 'sgd',
                        {{'learning_rate': {lr}, 'momentum': {momentum}, 'wd': {wd}}})
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
xa, ya = mx.nd.array(x), mx.nd.array(y)
for _ in range({steps}):
    with autograd.record():
        l = loss_fn(blk(xa), ya)
    l.backward()
    trainer.step({batch})
    print('loss %.9g' % l.mean().asscalar())
mx.nd.save(r'{dir}/after.params', {{k: v.data() for k, v in blk.collect_params().items()}})
print('ok')
"#,
        dir = dir.display(),
        batch = BATCH,
        steps = STEPS,
        lr = LR,
        momentum = MOMENTUM,
        wd = WD,
    );
    let out = run_script(py, &script);
    assert!(out.contains("ok"), "{out}");
    out.lines()
        .filter_map(|l| l.strip_prefix("loss "))
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

/// `STEPS` SGD-momentum steps of `w` with a zero gradient: weight decay alone.
fn decay_only(w: &[f64]) -> Vec<f64> {
    w.iter()
        .map(|&w0| {
            let (mut w, mut m) = (w0, 0.0);
            for _ in 0..STEPS {
                m = MOMENTUM * m - LR * WD * w;
                w += m;
            }
            w
        })
        .collect()
}

#[test]
fn fine_tuning_an_imported_conv_net_matches_mxnet() {
    let Some(py) = python() else { return };
    let dir = tmpdir("convnet");
    let their_losses = mxnet_side(&py, &dir);
    assert_eq!(their_losses.len(), STEPS);

    let net = SymbolBlock::imports(
        dir.join("m-symbol.json"),
        &["data"],
        Some(dir.join("m-0000.params")),
        Context::cpu(0),
    )
    .unwrap();
    let x = mxgluon::io::npy::load(dir.join("x.npy")).unwrap();
    let y = mxgluon::io::npy::load(dir.join("y.npy")).unwrap();
    let params = net.collect_params().unwrap();
    let mut names = params.keys();
    names.sort();
    // The moving statistics are auxiliary: no gradient, not updated by the optimizer.
    let aux: Vec<&String> = names
        .iter()
        .filter(|n| params.get_param(n).unwrap().grad_req() == GradReq::Null)
        .collect();
    assert_eq!(aux.len(), 2, "{names:?}");
    assert!(aux
        .iter()
        .all(|n| n.contains("running") || n.contains("moving")));
    let before: Vec<NDArray> = names
        .iter()
        .map(|n| {
            let d = params.get_param(n).unwrap().data(None).unwrap();
            d.copy_to(Context::cpu(0)).unwrap()
        })
        .collect();

    let mut trainer = Trainer::new(
        &params,
        (
            "sgd",
            OptimizerOptions::new()
                .set("learning_rate", LR)
                .set("momentum", MOMENTUM)
                .set("wd", WD),
        ),
        TrainerOptions::default(),
    )
    .unwrap();
    let loss_fn = SoftmaxCrossEntropyLoss::new();
    let mut our_losses = Vec::new();
    for _ in 0..STEPS {
        let l = {
            let _r = autograd::record();
            assert!(autograd::is_training());
            let out = net.forward(&x).unwrap();
            loss_fn.loss(&out, &y, None).unwrap()
        };
        l.backward().unwrap();
        trainer.step(BATCH).unwrap();
        our_losses.push(l.mean().unwrap().as_scalar_f64().unwrap());
    }
    for (step, (a, b)) in our_losses.iter().zip(&their_losses).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1e-3),
            "step {step}: loss {a} here, {b} in MXNet"
        );
    }

    let theirs = nd::load(dir.join("after.params")).unwrap().into_arrays();
    let mut their_names: Vec<String> = theirs
        .names()
        .unwrap()
        .into_iter()
        .map(String::from)
        .collect();
    their_names.sort();
    assert_eq!(their_names, names);
    for (name, b) in names.iter().zip(&before) {
        let ours = params.get_param(name).unwrap().data(None).unwrap();
        let reference = theirs.get(name).unwrap().to_dense().unwrap();
        let err = rel_err(&ours, &reference);
        assert!(err < 1e-4, "{name}: relative error {err}");
        if name.ends_with("conv0_bias") {
            // BatchNorm right after the convolution cancels any per-channel constant, so the
            // loss's gradient of this bias is zero up to rounding (~1e-8) and only the weight
            // decay moves it: check both sides follow that trajectory.
            let want = decay_only(&b.to_f64_vec());
            for (v, w) in [&ours, &reference].iter().zip([&want, &want]) {
                let got = v.to_f64_vec();
                for (g, e) in got.iter().zip(w) {
                    assert!((g - e).abs() < 1e-7, "{name}: {g} vs weight decay only {e}");
                }
            }
            assert!(rel_err(b, &reference) > 1e-5, "{name} did not decay");
            continue;
        }
        // Training changed every other parameter (so the comparison is not of untouched
        // values).
        assert!(
            rel_err(b, &reference) > 1e-3,
            "{name} did not change in MXNet's fine-tuning"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
