//! resnet18_v1 inference (issue "Symbols"): `resnet18_infer_b1` and `resnet18_infer_b32`.
//!
//! The graph is built here with the symbol API in the layout of the Gluon model zoo's
//! `resnet18_v1` (7×7/2 stem, BatchNorm, ReLU, 3×3/2 max pool, four stages of two basic
//! blocks, global average pool, 1000-way dense layer; BatchNorm eps 1e-5), loaded into a
//! [`SymbolBlock`] with random weights and random BatchNorm statistics, and run on
//! 3×224×224 float32 input outside autograd (inference mode) — the path
//! `SymbolBlock::imports` takes for a model exported by MXNet. The peers run the same
//! network: MXNet's model zoo hybridized with static_alloc/static_shape, PyTorch eager in
//! eval mode. `--quick` replaces batch 32 by batch 8.

use mxgluon::gluon::{Block, SymbolBlock};
use mxgluon::nd::{self, ActType};
use mxgluon::symbol::ops::{BinaryOp, PoolType};
use mxgluon::symbol::{
    Activation, BatchNorm, Convolution, Elemwise, Flatten, FullyConnected, Pooling, Symbol,
};
use mxgluon::{init, random, Context, DType, Result};

use super::{check, Harness, Kind, QUICK};

/// Whether any workload of this module is selected.
pub(crate) fn wanted(h: &Harness) -> bool {
    h.wants("resnet18_infer_b1") || h.wants("resnet18_infer_b32")
}

fn conv(x: &Symbol, name: &str, k: usize, ch: usize, stride: usize, pad: usize) -> Result<Symbol> {
    Convolution::new([k, k], ch)
        .stride([stride, stride])
        .pad([pad, pad])
        .no_bias(true)
        .name(name)
        .build(x)
}

fn bn(x: &Symbol, name: &str) -> Result<Symbol> {
    BatchNorm::new()
        .eps(1e-5)
        .fix_gamma(false)
        .name(name)
        .build(x)
}

fn relu(x: &Symbol) -> Result<Symbol> {
    Activation::new(ActType::Relu).build(x)
}

/// The model zoo's `BasicBlockV1`: `relu(bn(conv(relu(bn(conv(x))))) + shortcut)`.
fn basic_block(x: &Symbol, name: &str, ch: usize, stride: usize, down: bool) -> Result<Symbol> {
    let y = conv(x, &format!("{name}_conv0"), 3, ch, stride, 1)?;
    let y = relu(&bn(&y, &format!("{name}_batchnorm0"))?)?;
    let y = conv(&y, &format!("{name}_conv1"), 3, ch, 1, 1)?;
    let y = bn(&y, &format!("{name}_batchnorm1"))?;
    let skip = if down {
        let s = conv(x, &format!("{name}_conv2"), 1, ch, stride, 0)?;
        bn(&s, &format!("{name}_batchnorm2"))?
    } else {
        x.clone()
    };
    relu(&Elemwise::new(BinaryOp::Add).build(&y, &skip)?)
}

/// resnet18_v1 as a graph with input `data`.
pub(crate) fn resnet18_v1() -> Result<Symbol> {
    let data = Symbol::var("data");
    let x = conv(&data, "resnetv10_conv0", 7, 64, 2, 3)?;
    let x = relu(&bn(&x, "resnetv10_batchnorm0")?)?;
    let mut x = Pooling::new([3, 3]).stride([2, 2]).pad([1, 1]).build(&x)?;
    let mut cin = 64;
    for (stage, ch) in [64usize, 128, 256, 512].into_iter().enumerate() {
        let stride = if stage == 0 { 1 } else { 2 };
        for b in 0..2 {
            let name = format!("resnetv10_stage{}_block{b}", stage + 1);
            let s = if b == 0 { stride } else { 1 };
            x = basic_block(&x, &name, ch, s, b == 0 && (s != 1 || cin != ch))?;
        }
        cin = ch;
    }
    let x = Pooling::global(PoolType::Avg).build(&x)?;
    let x = Flatten::new().build(&x)?;
    FullyConnected::new(1000).name("resnetv10_dense0").build(&x)
}

/// The model with random weights (Xavier's bound) and random BatchNorm statistics and affine
/// terms.
pub(crate) fn model(ctx: Context) -> Result<SymbolBlock> {
    let net = SymbolBlock::new(resnet18_v1()?, &["data"], None)?;
    net.initialize(Some(init::Uniform::default().into()), ctx)?;
    // Shapes come from the first input.
    net.forward(&nd::zeros(&[1, 3, 224, 224], Some(ctx))?)?;
    let params = net.collect_params()?;
    for name in params.keys() {
        let Some(p) = params.get_param(&name) else {
            continue;
        };
        let shape = p.shape().unwrap_or_default();
        let (lo, hi) = if name.ends_with("_weight") {
            // Xavier (uniform, avg): bound sqrt(3 / ((fan_in + fan_out) / 2))
            let hw: usize = shape[2..].iter().product();
            let fan = (shape[0] + shape[1]) * hw;
            let b = (6.0 / fan as f64).sqrt();
            (-b, b)
        } else if name.ends_with("_gamma") || name.ends_with("_moving_var") {
            (0.5, 1.5)
        } else if name.ends_with("_beta") || name.ends_with("_moving_mean") {
            (-0.1, 0.1)
        } else {
            continue;
        };
        let v = random::uniform(lo, hi, &shape, DType::Float32, ctx)?;
        p.set_data(&v)?;
    }
    Ok(net)
}

/// Runs the selected workloads.
pub(crate) fn bench_resnet(h: &Harness) -> Result<()> {
    let quick = h.profile.compute_s == QUICK.compute_s && h.profile.batches == QUICK.batches;
    let ctx = Context::cpu(0);
    let net = model(ctx)?;
    let plan = mxgluon::symbol::Executor::new(&resnet18_v1()?)?;
    let steps = (plan.num_steps(), plan.num_inference_steps());
    let big = if quick { 8 } else { 32 };
    for (workload, batch) in [("resnet18_infer_b1", 1usize), ("resnet18_infer_b32", big)] {
        if !h.wants(workload) {
            continue;
        }
        let x = random::uniform(0.0, 1.0, &[batch, 3, 224, 224], DType::Float32, ctx)?;
        let y = net.forward(&x)?;
        check(y.shape() == [batch, 1000], "resnet18 output shape")?;
        let finite = y.to_vec::<f32>()?.iter().all(|v| v.is_finite());
        check(finite, "resnet18 output is not finite")?;
        let t = h.time(Kind::Compute, || net.forward(&x).map(drop))?;
        let mode = format!(
            "resnet18_v1 graph (model-zoo layout) in a SymbolBlock, random weights, batch {batch} \
             of 3x224x224 f32, inference (not recording): {} operator steps, {} after fusion",
            steps.0, steps.1
        );
        h.report_time(workload, "ours", &t, "ms", 1e3, &mode);
    }
    Ok(())
}
