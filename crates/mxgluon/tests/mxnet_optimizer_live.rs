//! Live comparison with MXNet 1.9.1's own optimizers and learning-rate schedulers.
//!
//! For every optimizer and several option combinations, MXNet runs five steps through
//! `mx.optimizer.create` + `mx.optimizer.get_updater` on random float32 (and, with
//! `multi_precision`, float16) arrays; we run the same steps through `optimizer::create`,
//! `OptimizerParams::begin_step` and `update_array`, and compare the weights after every step
//! and the final states. AdamW, which 1.9.1 only has as an operator, is driven through
//! `mx.nd.contrib.adamw_update` the way MXNet's own AdamW optimizer calls it. The schedulers'
//! learning-rate sequences, their validation errors and the optimizer/scheduler base-rate
//! rules are compared too.
//!
//! See `mxnet_live.rs` for how the interpreter is found (CI fails rather than skipping).

use mxgluon::optimizer::{
    self, lr_scheduler::LrScheduler, update_array, CosineScheduler, FactorScheduler,
    MultiFactorScheduler, OptState, OptimizerOptions, PolyScheduler, Warmup, WarmupMode,
};
use mxgluon::{f16, Context, DType, NDArray};
use serde_json::Value;

#[path = "common/mxnet.rs"]
mod mxnet_env;
use mxnet_env::{python, run_script};

/// The optimizer cases: MXNet keyword options, array shape, RNG seed; optional `sched`
/// (scheduler keywords plus `type`), `dtype` and `gscale` (gradient scale).
const CASES: &str = r#"[
 {"id": "sgd", "opt": "sgd", "kw": {}},
 {"id": "sgd_mom", "opt": "sgd", "kw": {"learning_rate": 0.1, "momentum": 0.9}},
 {"id": "sgd_all", "opt": "sgd", "kw": {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.1, "rescale_grad": 0.5, "clip_gradient": 0.3}},
 {"id": "sgd_wd_clip", "opt": "sgd", "kw": {"learning_rate": 0.2, "wd": 0.05, "clip_gradient": 0.4, "lazy_update": false}},
 {"id": "sgd_sched", "opt": "sgd", "kw": {"momentum": 0.5}, "sched": {"type": "factor", "step": 2, "factor": 0.5, "base_lr": 0.3}},
 {"id": "nag", "opt": "nag", "kw": {"learning_rate": 0.1}},
 {"id": "nag_mom", "opt": "nag", "kw": {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.05}},
 {"id": "nag_clip", "opt": "nag", "kw": {"learning_rate": 0.1, "momentum": 0.8, "clip_gradient": 0.3, "rescale_grad": 2.0}},
 {"id": "signum", "opt": "signum", "kw": {}},
 {"id": "signum_all", "opt": "signum", "kw": {"learning_rate": 0.05, "momentum": 0.8, "wd": 0.02, "wd_lh": 0.01, "clip_gradient": 0.5, "rescale_grad": 0.7}},
 {"id": "signsgd", "opt": "signum", "kw": {"learning_rate": 0.05, "momentum": 0.0, "wd": 0.1}},
 {"id": "adam", "opt": "adam", "kw": {}},
 {"id": "adam_all", "opt": "adam", "kw": {"learning_rate": 0.01, "wd": 0.1, "clip_gradient": 0.5, "rescale_grad": 2.0}},
 {"id": "adam_betas", "opt": "adam", "kw": {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6, "lazy_update": false}},
 {"id": "adam_sched", "opt": "adam", "kw": {}, "sched": {"type": "poly", "max_update": 4, "base_lr": 0.2, "pwr": 2}},
 {"id": "adamw", "opt": "adamw", "kw": {}},
 {"id": "adamw_all", "opt": "adamw", "kw": {"learning_rate": 0.01, "wd": 0.1, "clip_gradient": 0.5, "rescale_grad": 2.0, "beta1": 0.8, "epsilon": 1e-7}},
 {"id": "adamw_nobias", "opt": "adamw", "kw": {"learning_rate": 0.01, "wd": 0.1, "correct_bias": false}},
 {"id": "adagrad", "opt": "adagrad", "kw": {"learning_rate": 0.1}},
 {"id": "adagrad_all", "opt": "adagrad", "kw": {"learning_rate": 0.1, "wd": 0.1, "clip_gradient": 0.2, "rescale_grad": 0.5, "eps": 1e-5}},
 {"id": "rmsprop", "opt": "rmsprop", "kw": {}},
 {"id": "rmsprop_cw", "opt": "rmsprop", "kw": {"learning_rate": 0.01, "clip_weights": 0.9, "rescale_grad": 1.5}},
 {"id": "rmsprop_centered", "opt": "rmsprop", "kw": {"learning_rate": 0.01, "centered": true}},
 {"id": "rmsprop_centered_all", "opt": "rmsprop", "kw": {"learning_rate": 0.01, "centered": true, "wd": 0.1, "clip_gradient": 0.5, "clip_weights": 0.8, "gamma1": 0.95, "gamma2": 0.8}},
 {"id": "adadelta", "opt": "adadelta", "kw": {}},
 {"id": "adadelta_all", "opt": "adadelta", "kw": {"wd": 0.1, "clip_gradient": 0.4, "rho": 0.95, "rescale_grad": 0.5}},
 {"id": "adamax", "opt": "adamax", "kw": {}},
 {"id": "adamax_all", "opt": "adamax", "kw": {"learning_rate": 0.01, "wd": 0.1, "clip_gradient": 0.5, "beta1": 0.8}},
 {"id": "nadam", "opt": "nadam", "kw": {}},
 {"id": "nadam_all", "opt": "nadam", "kw": {"learning_rate": 0.01, "wd": 0.1, "clip_gradient": 0.5, "schedule_decay": 0.01}},
 {"id": "ftrl", "opt": "ftrl", "kw": {}},
 {"id": "ftrl_all", "opt": "ftrl", "kw": {"learning_rate": 0.5, "lamda1": 0.1, "beta": 0.5, "wd": 0.1, "clip_gradient": 0.5}},
 {"id": "lamb", "opt": "lamb", "kw": {}},
 {"id": "lamb_all", "opt": "lamb", "kw": {"learning_rate": 0.01, "wd": 0.1, "clip_gradient": 0.5, "rescale_grad": 0.8, "lower_bound": 0.1, "upper_bound": 2.0}},
 {"id": "lamb_nobias", "opt": "lamb", "kw": {"learning_rate": 0.01, "bias_correction": false, "lower_bound": 10.0}},
 {"id": "lars", "opt": "lars", "kw": {"learning_rate": 0.1}},
 {"id": "lars_mom", "opt": "lars", "kw": {"learning_rate": 0.5, "momentum": 0.9, "wd": 0.01, "eta": 0.01}},
 {"id": "lars_clip", "opt": "lars", "kw": {"learning_rate": 0.5, "momentum": 0.9, "clip_gradient": 0.1, "rescale_grad": 0.5, "eps": 0.001}},
 {"id": "lars_sched", "opt": "lars", "kw": {"momentum": 0.9, "eta": 0.1}, "sched": {"type": "factor", "step": 2, "factor": 0.5, "base_lr": 1.0}},
 {"id": "lars_sched_nocorr", "opt": "lars", "kw": {"momentum": 0.9, "eta": 0.1, "momentum_correction": false}, "sched": {"type": "factor", "step": 2, "factor": 0.5, "base_lr": 1.0}},
 {"id": "sgd_mp16", "opt": "sgd", "kw": {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01, "multi_precision": true}, "dtype": "float16", "gscale": 0.01},
 {"id": "adam_mp16", "opt": "adam", "kw": {"learning_rate": 0.01, "multi_precision": true}, "dtype": "float16"}
]"#;

const PY_OPT: &str = r#"
import contextlib, io, json, math
import numpy as np
import mxnet as mx

cases = json.loads(r'''__CASES__''')

def make_sched(spec):
    spec = dict(spec)
    cls = {'factor': mx.lr_scheduler.FactorScheduler,
           'multifactor': mx.lr_scheduler.MultiFactorScheduler,
           'poly': mx.lr_scheduler.PolyScheduler,
           'cosine': mx.lr_scheduler.CosineScheduler}[spec.pop('type')]
    return cls(**spec)

def flat(a):
    return [float(v) for v in a.asnumpy().astype('float64').ravel()]

def states_list(s):
    if s is None:
        return []
    if isinstance(s, mx.nd.NDArray):
        return [s]
    out = []
    for x in s:
        out += states_list(x)
    return out

out = {}
for c in cases:
    rs = np.random.RandomState(c.get('seed', 7))
    shape = tuple(c.get('shape', [3, 7]))
    dtype = c.get('dtype', 'float32')
    w0 = rs.randn(*shape).astype(dtype)
    grads = [(rs.randn(*shape) * c.get('gscale', 1.0)).astype(dtype) for _ in range(5)]
    kw = dict(c['kw'])
    w = mx.nd.array(w0, dtype=dtype)
    ws = []
    master = None
    if c['opt'] == 'adamw':
        lr = kw.get('learning_rate', 0.001)
        b1, b2 = kw.get('beta1', 0.9), kw.get('beta2', 0.999)
        mean, var = mx.nd.zeros(shape), mx.nd.zeros(shape)
        for t, g in enumerate(grads, 1):
            eta = lr * math.sqrt(1. - b2 ** t) / (1. - b1 ** t) if kw.get('correct_bias', True) else lr
            mx.nd.contrib.adamw_update(w, mx.nd.array(g), mean, var,
                rescale_grad=mx.nd.array([kw.get('rescale_grad', 1.0)]), lr=1.0, eta=eta,
                wd=kw.get('wd', 0.0), beta1=b1, beta2=b2, epsilon=kw.get('epsilon', 1e-6),
                clip_gradient=kw.get('clip_gradient', -1.0), out=w)
            ws.append(flat(w))
        states = [mean, var]
    else:
        if 'sched' in c:
            kw['lr_scheduler'] = make_sched(c['sched'])
        with contextlib.redirect_stdout(io.StringIO()):
            opt = mx.optimizer.create(c['opt'], **kw)
        upd = mx.optimizer.get_updater(opt)
        for g in grads:
            upd(0, mx.nd.array(g, dtype=dtype), w)
            ws.append(flat(w))
        st = upd.states[0]
        if dtype == 'float16' and kw.get('multi_precision'):
            if c['opt'] in ('sgd', 'nag', 'lars'):
                inner, m = st
            else:
                m, inner = st
            master = flat(m)
            states = states_list(inner)
        else:
            states = states_list(st)
    out[c['id']] = {'w0': [float(v) for v in w0.astype('float64').ravel()],
                    'shape': list(shape),
                    'grads': [[float(v) for v in g.astype('float64').ravel()] for g in grads],
                    'ws': ws, 'states': [flat(s) for s in states], 'master': master}
print(json.dumps(out))
"#;

/// Scheduler specs (MXNet keywords plus `type`), evaluated at 0..=30 in order.
const SCHEDULERS: &str = r#"[
 {"type": "factor", "step": 3, "factor": 0.5, "base_lr": 1.0, "stop_factor_lr": 0.1, "warmup_steps": 4, "warmup_begin_lr": 0.1},
 {"type": "factor", "step": 1, "factor": 0.9, "base_lr": 0.1},
 {"type": "factor", "step": 5, "factor": 1.0},
 {"type": "multifactor", "step": [3, 7, 12], "factor": 0.3, "base_lr": 0.5, "warmup_steps": 2, "warmup_begin_lr": 0.05, "warmup_mode": "constant"},
 {"type": "multifactor", "step": [1], "factor": 0.5},
 {"type": "poly", "max_update": 20, "base_lr": 1.0, "pwr": 2, "final_lr": 0.1, "warmup_steps": 5, "warmup_begin_lr": 0.0},
 {"type": "poly", "max_update": 20, "base_lr": 0.3, "pwr": 1.5},
 {"type": "cosine", "max_update": 25, "base_lr": 2.0, "final_lr": 0.2, "warmup_steps": 3, "warmup_begin_lr": 0.5},
 {"type": "cosine", "max_update": 10, "base_lr": 0.7}
]"#;

/// Scheduler specs MXNet rejects (all must fail on both sides).
const BAD_SCHEDULERS: &str = r#"[
 {"type": "factor", "step": 0},
 {"type": "factor", "step": 2, "factor": 1.5},
 {"type": "factor", "step": 2, "base_lr": 0.1, "warmup_steps": 3, "warmup_begin_lr": 0.2},
 {"type": "factor", "step": 2, "warmup_steps": 3, "warmup_mode": "cubic"},
 {"type": "multifactor", "step": [3, 3]},
 {"type": "multifactor", "step": [0, 2]},
 {"type": "multifactor", "step": [2, 5], "factor": 2.0},
 {"type": "poly", "max_update": 0},
 {"type": "cosine", "max_update": 0}
]"#;

/// An optimizer given a scheduler, with or without `learning_rate`: the base-rate rules and
/// the rate sequence through the optimizer.
const WITH_OPT: &str = r#"[
 {"opt": "sgd", "kw": {}, "sched": {"type": "factor", "step": 3, "factor": 0.5, "base_lr": 0.5}},
 {"opt": "sgd", "kw": {"learning_rate": 0.2}, "sched": {"type": "factor", "step": 3, "factor": 0.5, "base_lr": 0.5}},
 {"opt": "adam", "kw": {}, "sched": {"type": "poly", "max_update": 10, "base_lr": 1.0, "warmup_steps": 3, "warmup_begin_lr": 0.1}},
 {"opt": "ftrl", "kw": {"learning_rate": 0.3}, "sched": {"type": "cosine", "max_update": 12, "base_lr": 0.5}},
 {"opt": "rmsprop", "kw": {"learning_rate": 0.05}, "sched": {"type": "multifactor", "step": [2, 4], "factor": 0.5, "base_lr": 1.0}},
 {"opt": "nag", "kw": {"learning_rate": 0.05}, "sched": {"type": "cosine", "max_update": 12, "base_lr": 0.5, "warmup_steps": 2}}
]"#;

const PY_SCHED: &str = r#"
import contextlib, io, json
import mxnet as mx

def make_sched(spec):
    spec = dict(spec)
    cls = {'factor': mx.lr_scheduler.FactorScheduler,
           'multifactor': mx.lr_scheduler.MultiFactorScheduler,
           'poly': mx.lr_scheduler.PolyScheduler,
           'cosine': mx.lr_scheduler.CosineScheduler}[spec.pop('type')]
    return cls(**spec)

out = {'seq': [], 'bad': [], 'with_opt': []}
for spec in json.loads(r'''__SCHEDULERS__'''):
    s = make_sched(spec)
    out['seq'].append([s(n) for n in range(31)])
for spec in json.loads(r'''__BAD__'''):
    try:
        make_sched(spec)
        out['bad'].append(None)
    except (ValueError, AssertionError) as e:
        out['bad'].append(str(e))
for c in json.loads(r'''__WITH_OPT__'''):
    kw = dict(c['kw'])
    kw['lr_scheduler'] = make_sched(c['sched'])
    with contextlib.redirect_stdout(io.StringIO()):
        opt = mx.optimizer.create(c['opt'], **kw)
    base = opt.lr_scheduler.base_lr
    seq = []
    for n in range(16):
        opt.num_update = n
        seq.append(opt.learning_rate)
    out['with_opt'].append({'base': base, 'seq': seq})
print(json.dumps(out))
"#;

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn options(kw: &Value) -> OptimizerOptions {
    let mut o = OptimizerOptions::new();
    for (k, v) in kw.as_object().expect("kw object") {
        o = match v {
            Value::Bool(b) => o.set_bool(k, *b),
            Value::Null => o.set_none(k),
            v => o.set(k, v.as_f64().expect("numeric option")),
        };
    }
    o
}

/// Our scheduler for an MXNet keyword spec.
fn make_sched(spec: &Value) -> mxgluon::Result<Box<dyn LrScheduler>> {
    let num = |k: &str, d: f64| spec.get(k).and_then(Value::as_f64).unwrap_or(d);
    let int = |k: &str, d: u64| spec.get(k).and_then(Value::as_u64).unwrap_or(d);
    let mode = match spec.get("warmup_mode").and_then(Value::as_str) {
        Some(m) => WarmupMode::parse(m)?,
        None => WarmupMode::Linear,
    };
    let warmup = Warmup {
        steps: int("warmup_steps", 0),
        begin_lr: num("warmup_begin_lr", 0.0),
        mode,
    };
    let base = num("base_lr", 0.01);
    Ok(match spec["type"].as_str().expect("type") {
        "factor" => Box::new(
            FactorScheduler::new(int("step", 1), num("factor", 1.0))?
                .with_stop_factor_lr(num("stop_factor_lr", 1e-8))
                .with_base_lr(base)?
                .with_warmup(warmup)?,
        ),
        "multifactor" => {
            let steps: Vec<u64> = spec["step"]
                .as_array()
                .expect("steps")
                .iter()
                .map(|s| s.as_u64().expect("step"))
                .collect();
            Box::new(
                MultiFactorScheduler::new(&steps, num("factor", 1.0))?
                    .with_base_lr(base)?
                    .with_warmup(warmup)?,
            )
        }
        "poly" => Box::new(
            PolyScheduler::new(int("max_update", 0))?
                .with_pwr(num("pwr", 2.0))
                .with_final_lr(num("final_lr", 0.0))
                .with_base_lr(base)?
                .with_warmup(warmup)?,
        ),
        "cosine" => Box::new(
            CosineScheduler::new(int("max_update", 0))?
                .with_final_lr(num("final_lr", 0.0))
                .with_base_lr(base)?
                .with_warmup(warmup)?,
        ),
        other => panic!("unknown scheduler {other}"),
    })
}

/// Largest error of `ours` against `theirs`, relative to `max(|theirs|, floor)`.
fn max_rel_err(ours: &[f64], theirs: &[f64], floor: f64) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs() / b.abs().max(floor))
        .fold(0.0, f64::max)
}

struct Ours {
    ws: Vec<Vec<f64>>,
    states: Vec<Vec<f64>>,
    master: Option<Vec<f64>>,
}

fn run_ours(case: &Value, theirs: &Value) -> Ours {
    let mut opts = options(&case["kw"]);
    if let Some(spec) = case.get("sched") {
        opts = opts.lr_scheduler(make_sched(spec).expect("scheduler"));
    }
    let mut opt = optimizer::create(case["opt"].as_str().unwrap(), &opts).expect("create");
    let shape: Vec<usize> = f64s(&theirs["shape"]).iter().map(|d| *d as usize).collect();
    let half = case.get("dtype").and_then(Value::as_str) == Some("float16");
    let array = |v: &[f64]| -> NDArray {
        if half {
            let h: Vec<f16> = v.iter().map(|x| f16::from_f64(*x)).collect();
            NDArray::from_slice(&h, &shape, Context::cpu(0)).unwrap()
        } else {
            let s: Vec<f32> = v.iter().map(|x| *x as f32).collect();
            NDArray::from_slice(&s, &shape, Context::cpu(0)).unwrap()
        }
    };
    let w = array(&f64s(&theirs["w0"]));
    assert_eq!(
        w.dtype(),
        if half { DType::Float16 } else { DType::Float32 }
    );
    let mut state = OptState::new(opt.as_ref(), &w).unwrap();
    let mut ws = Vec::new();
    for g in theirs["grads"].as_array().unwrap() {
        let g = array(&f64s(g));
        let args = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
        update_array(opt.as_ref(), &args, &w, &g, &mut state).unwrap();
        ws.push(w.to_f64_vec());
    }
    Ours {
        ws,
        states: state.slots.iter().map(|s| s.to_f64_vec()).collect(),
        master: state.master.as_ref().map(|m| m.to_f64_vec()),
    }
}

#[test]
fn optimizers_match_mxnet() {
    let Some(py) = python() else { return };
    let out: Value =
        serde_json::from_str(&run_script(&py, &PY_OPT.replace("__CASES__", CASES))).unwrap();
    let cases: Value = serde_json::from_str(CASES).unwrap();
    let mut failures = Vec::new();
    for case in cases.as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let theirs = &out[id];
        let ours = run_ours(case, theirs);
        let half = case.get("dtype").is_some();
        // float32: a few ulps of every value (relative to the array's scale near zero);
        // float16 weights: one half-precision ulp.
        let rtol = if half { 1e-3 } else { 1e-5 };
        let mut check = |what: String, a: &[f64], b: &[f64]| {
            let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let err = max_rel_err(a, b, (scale * 1e-2).max(1e-6));
            if err > rtol {
                failures.push(format!("{id} {what}: max relative error {err:.3e}"));
            }
        };
        let their_ws = theirs["ws"].as_array().unwrap();
        assert_eq!(their_ws.len(), ours.ws.len());
        for (step, (a, b)) in ours.ws.iter().zip(their_ws).enumerate() {
            check(format!("weight after step {}", step + 1), a, &f64s(b));
        }
        let their_states = theirs["states"].as_array().unwrap();
        assert_eq!(
            their_states.len(),
            ours.states.len(),
            "{id}: number of state arrays"
        );
        for (k, (a, b)) in ours.states.iter().zip(their_states).enumerate() {
            check(format!("state {k}"), a, &f64s(b));
        }
        match (&ours.master, theirs["master"].as_array()) {
            (Some(a), Some(_)) => check("master weight".into(), a, &f64s(&theirs["master"])),
            (None, None) => {}
            _ => failures.push(format!("{id}: master weight present on one side only")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn schedulers_match_mxnet() {
    let Some(py) = python() else { return };
    let script = PY_SCHED
        .replace("__SCHEDULERS__", SCHEDULERS)
        .replace("__BAD__", BAD_SCHEDULERS)
        .replace("__WITH_OPT__", WITH_OPT);
    let out: Value = serde_json::from_str(&run_script(&py, &script)).unwrap();

    let specs: Value = serde_json::from_str(SCHEDULERS).unwrap();
    for (spec, seq) in specs
        .as_array()
        .unwrap()
        .iter()
        .zip(out["seq"].as_array().unwrap())
    {
        let mut s = make_sched(spec).expect("valid scheduler");
        let ours: Vec<f64> = (0..31).map(|n| s.lr(n)).collect();
        let err = max_rel_err(&ours, &f64s(seq), 1e-300);
        assert!(err <= 1e-15, "{spec}: {ours:?} vs {seq}");
    }

    let bad: Value = serde_json::from_str(BAD_SCHEDULERS).unwrap();
    for (spec, msg) in bad
        .as_array()
        .unwrap()
        .iter()
        .zip(out["bad"].as_array().unwrap())
    {
        assert!(!msg.is_null(), "MXNet accepted {spec}");
        let e = make_sched(spec).expect_err(&format!("we accepted {spec} (MXNet: {msg})"));
        assert!(
            matches!(e, mxgluon::Error::InvalidOptimizerOption { .. }),
            "{spec}: {e:?}"
        );
    }

    let with: Value = serde_json::from_str(WITH_OPT).unwrap();
    for (c, theirs) in with
        .as_array()
        .unwrap()
        .iter()
        .zip(out["with_opt"].as_array().unwrap())
    {
        let opts = options(&c["kw"]).lr_scheduler(make_sched(&c["sched"]).unwrap());
        let mut opt = optimizer::create(c["opt"].as_str().unwrap(), &opts).unwrap();
        let p = opt.params_mut();
        assert_eq!(
            p.lr_scheduler.as_ref().unwrap().base_lr(),
            theirs["base"].as_f64().unwrap(),
            "{c}: scheduler base_lr after create"
        );
        let seq: Vec<f64> = (0..16)
            .map(|n| {
                p.num_update = n;
                p.current_lr()
            })
            .collect();
        let err = max_rel_err(&seq, &f64s(&theirs["seq"]), 1e-300);
        assert!(err <= 1e-15, "{c}: {seq:?} vs {}", theirs["seq"]);
    }
}
