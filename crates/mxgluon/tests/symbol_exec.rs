//! The symbolic-graph executor (`symbol::Executor`) and `gluon::SymbolBlock` without MXNet:
//! every kernel the executor runs, on a one- or two-operator graph, against a float64
//! reference computed here (or the eager `nd` operator where no closed form is at hand);
//! its errors; gradients through an executed graph; and the block's import / export paths.

use std::path::PathBuf;

use mxgluon::gluon::nn::{Activation as ActLayer, Dense, Sequential};
use mxgluon::gluon::{Block, SymbolBlock};
use mxgluon::io::ArrayList;
use mxgluon::nd::{self, ActType, BatchNormOptions, ConvOptions, LeakyAct, NDArray, PoolOptions};
use mxgluon::symbol::ops::{BinaryOp, Layout, LeakyActType, PoolType, PoolingConvention};
use mxgluon::symbol::{
    Activation, BatchNorm, Broadcast, Clip, Concat, Convolution, Dropout, Elemwise, Executor,
    Flatten, FullyConnected, LeakyReLU, Pooling, Reshape, Softmax, SoftmaxOutput, Symbol,
};
use mxgluon::{autograd, init, Context, DType, Error, GradReq};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Deterministic values in about [-1.5, 1.5].
fn det(n: usize, phase: f64) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as f64) * 0.731 + phase).sin() * 1.5)
        .collect()
}

fn a64(v: &[f64], shape: &[usize]) -> NDArray {
    nd::array(v, shape, None).unwrap()
}

fn rand64(shape: &[usize], phase: f64) -> NDArray {
    a64(&det(shape.iter().product(), phase), shape)
}

/// Runs `sym` with the values named in `vals` (in whatever order the executor lists them).
fn run_named(sym: &Symbol, vals: &[(&str, &NDArray)]) -> Vec<NDArray> {
    let e = Executor::new(sym).unwrap();
    let args: Vec<NDArray> = e
        .variables()
        .iter()
        .map(|v| {
            vals.iter()
                .find(|(n, _)| n == v)
                .unwrap_or_else(|| panic!("no value given for variable {v}"))
                .1
                .clone()
        })
        .collect();
    e.run(&args).unwrap()
}

fn run1(sym: &Symbol, vals: &[(&str, &NDArray)]) -> NDArray {
    let mut out = run_named(sym, vals);
    assert_eq!(out.len(), 1, "one output expected");
    out.swap_remove(0)
}

/// `got` equals `want` within `tol` (relative to max(1, |want|)), shape included.
#[track_caller]
fn assert_close(got: &NDArray, want: &[f64], shape: &[usize], tol: f64) {
    assert_eq!(got.shape(), shape, "shape");
    let g = got.to_f64_vec();
    assert_eq!(g.len(), want.len());
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "element {i}: got {a}, want {b}"
        );
    }
}

#[track_caller]
fn assert_same(got: &NDArray, want: &NDArray) {
    assert_close(got, &want.to_f64_vec(), want.shape(), 1e-6);
}

/// A scalar function (reference of a unary operator).
type F1 = fn(f64) -> f64;
/// A function of a value and a scalar.
type F2 = fn(f64, f64) -> f64;

fn map(x: &NDArray, f: impl Fn(f64) -> f64) -> Vec<f64> {
    x.to_f64_vec().into_iter().map(f).collect()
}

/// A graph in MXNet's JSON: nodes `(op, name, attrs, inputs)` (input `i` is output 0 of node
/// `i`) and the heads.
type JNode<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [usize]);

fn graph_json(nodes: &[JNode<'_>], heads: &[(usize, usize)]) -> String {
    let jnodes: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(op, name, attrs, inputs)| {
            let mut m = serde_json::Map::new();
            m.insert("op".into(), (*op).into());
            m.insert("name".into(), (*name).into());
            if !attrs.is_empty() {
                let a: serde_json::Map<String, serde_json::Value> = attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), (*v).into()))
                    .collect();
                m.insert("attrs".into(), a.into());
            }
            let ins: Vec<serde_json::Value> = inputs
                .iter()
                .map(|&i| serde_json::json!([i, 0, 0]))
                .collect();
            m.insert("inputs".into(), ins.into());
            m.into()
        })
        .collect();
    let arg_nodes: Vec<usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.0 == "null")
        .map(|(i, _)| i)
        .collect();
    let heads: Vec<serde_json::Value> = heads
        .iter()
        .map(|&(n, o)| serde_json::json!([n, o, 0]))
        .collect();
    serde_json::json!({
        "nodes": jnodes,
        "arg_nodes": arg_nodes,
        "heads": heads,
        "attrs": {"mxnet_version": ["int", 10901]}
    })
    .to_string()
}

fn load(nodes: &[JNode<'_>], heads: &[(usize, usize)]) -> Symbol {
    Symbol::load_json(&graph_json(nodes, heads)).unwrap()
}

/// `op(x)` with attributes, loaded from JSON (for operators the builders do not cover).
fn unary_json(op: &str, attrs: &[(&str, &str)]) -> Symbol {
    load(
        &[("null", "x", &[], &[]), (op, "y", attrs, &[0])],
        &[(1, 0)],
    )
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-symexec-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------------------------
// float64 references
// ---------------------------------------------------------------------------------------------

struct ConvRef<'a> {
    x: &'a [f64],
    xs: [usize; 4],
    w: &'a [f64],
    ws: [usize; 4],
    b: Option<&'a [f64]>,
    stride: [usize; 2],
    pad: [usize; 2],
    dilate: [usize; 2],
    groups: usize,
}

fn conv2d_ref(c: &ConvRef<'_>) -> (Vec<f64>, Vec<usize>) {
    let [n, ch, h, w] = c.xs;
    let [f, cg, kh, kw] = c.ws;
    assert_eq!(cg * c.groups, ch);
    let fg = f / c.groups;
    let oh = (h + 2 * c.pad[0] - (c.dilate[0] * (kh - 1) + 1)) / c.stride[0] + 1;
    let ow = (w + 2 * c.pad[1] - (c.dilate[1] * (kw - 1) + 1)) / c.stride[1] + 1;
    let mut out = vec![0.0; n * f * oh * ow];
    for b in 0..n {
        for o in 0..f {
            let g = o / fg;
            for y in 0..oh {
                for x in 0..ow {
                    let mut s = c.b.map_or(0.0, |bias| bias[o]);
                    for ci in 0..cg {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy =
                                    (y * c.stride[0] + i * c.dilate[0]) as i64 - c.pad[0] as i64;
                                let ix =
                                    (x * c.stride[1] + j * c.dilate[1]) as i64 - c.pad[1] as i64;
                                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                                    continue;
                                }
                                let xi =
                                    ((b * ch + g * cg + ci) * h + iy as usize) * w + ix as usize;
                                let wi = ((o * cg + ci) * kh + i) * kw + j;
                                s += c.x[xi] * c.w[wi];
                            }
                        }
                    }
                    out[((b * f + o) * oh + y) * ow + x] = s;
                }
            }
        }
    }
    (out, vec![n, f, oh, ow])
}

#[derive(Clone, Copy, PartialEq)]
enum Red {
    Max,
    Avg,
    Sum,
}

/// 2-D pooling as MXNet 1.9.1's CPU kernel: windows start at `o·s − p`, end at
/// `min(start + k, size + p)` (the average's divisor with padding counted), then are clipped to
/// the data.
#[allow(clippy::too_many_arguments)]
fn pool2d_ref(
    x: &[f64],
    xs: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    red: Red,
    full: bool,
    count_include_pad: bool,
) -> (Vec<f64>, Vec<usize>) {
    let [n, c, h, w] = xs;
    let osz = |len: usize, d: usize| {
        let span = len + 2 * p[d] - k[d];
        if full {
            span.div_ceil(s[d]) + 1
        } else {
            span / s[d] + 1
        }
    };
    let (oh, ow) = (osz(h, 0), osz(w, 1));
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for b in 0..n {
        for ch in 0..c {
            for y in 0..oh {
                for xo in 0..ow {
                    let hs = (y * s[0]) as i64 - p[0] as i64;
                    let ws = (xo * s[1]) as i64 - p[1] as i64;
                    let he = (hs + k[0] as i64).min((h + p[0]) as i64);
                    let we = (ws + k[1] as i64).min((w + p[1]) as i64);
                    let padded = ((he - hs) * (we - ws)) as f64;
                    let (hs, ws) = (hs.max(0), ws.max(0));
                    let (he, we) = (he.min(h as i64), we.min(w as i64));
                    let mut acc = if red == Red::Max {
                        f64::NEG_INFINITY
                    } else {
                        0.0
                    };
                    for iy in hs..he {
                        for ix in ws..we {
                            let v = x[((b * c + ch) * h + iy as usize) * w + ix as usize];
                            acc = if red == Red::Max { acc.max(v) } else { acc + v };
                        }
                    }
                    let valid = ((he - hs) * (we - ws)) as f64;
                    out.push(match red {
                        Red::Max | Red::Sum => acc,
                        Red::Avg if count_include_pad => acc / padded,
                        Red::Avg => acc / valid,
                    });
                }
            }
        }
    }
    (out, vec![n, c, oh, ow])
}

/// Per-channel (axis `axis`) mean and biased variance.
fn channel_stats(x: &[f64], shape: &[usize], axis: usize) -> (Vec<f64>, Vec<f64>) {
    let c = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut sum = vec![0.0; c];
    let mut sq = vec![0.0; c];
    let mut cnt = vec![0.0; c];
    for (i, v) in x.iter().enumerate() {
        let ch = (i / inner) % c;
        sum[ch] += v;
        cnt[ch] += 1.0;
    }
    let mean: Vec<f64> = sum.iter().zip(&cnt).map(|(s, n)| s / n).collect();
    for (i, v) in x.iter().enumerate() {
        let ch = (i / inner) % c;
        sq[ch] += (v - mean[ch]).powi(2);
    }
    let var = sq.iter().zip(&cnt).map(|(s, n)| s / n).collect();
    (mean, var)
}

#[allow(clippy::too_many_arguments)]
fn bn_ref(
    x: &[f64],
    shape: &[usize],
    axis: usize,
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    var: &[f64],
    eps: f64,
) -> Vec<f64> {
    let c = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / inner) % c;
            gamma[ch] * (v - mean[ch]) / (var[ch] + eps).sqrt() + beta[ch]
        })
        .collect()
}

fn softmax_rows(x: &[f64], rows: usize, t: f64, log: bool) -> Vec<f64> {
    let cols = x.len() / rows;
    let mut out = Vec::with_capacity(x.len());
    for r in 0..rows {
        let row: Vec<f64> = x[r * cols..(r + 1) * cols].iter().map(|v| v / t).collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for v in row {
            out.push(if log {
                v - m - z.ln()
            } else {
                (v - m).exp() / z
            });
        }
    }
    out
}

/// Moves axis `axis` of a row-major array to the end (so softmax over it is a row softmax).
fn axis_to_last(x: &[f64], shape: &[usize], axis: usize) -> (Vec<f64>, Vec<usize>) {
    let mut perm: Vec<usize> = (0..shape.len()).filter(|&a| a != axis).collect();
    perm.push(axis);
    transpose_ref(x, shape, &perm)
}

fn transpose_ref(x: &[f64], shape: &[usize], perm: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let nd = shape.len();
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut strides = vec![1; nd];
    for d in (0..nd.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let n = x.len();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; nd];
    for _ in 0..n {
        let src: usize = (0..nd).map(|d| idx[d] * strides[perm[d]]).sum();
        out.push(x[src]);
        for d in (0..nd).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    (out, out_shape)
}

fn fc_ref(x: &[f64], rows: usize, w: &[f64], units: usize, b: Option<&[f64]>) -> Vec<f64> {
    let k = x.len() / rows;
    let mut out = Vec::with_capacity(rows * units);
    for r in 0..rows {
        for u in 0..units {
            let mut s = b.map_or(0.0, |b| b[u]);
            for i in 0..k {
                s += x[r * k + i] * w[u * k + i];
            }
            out.push(s);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

#[test]
fn fully_connected_with_bias_without_bias_and_without_flatten() {
    let xs = Symbol::var("x");
    let x = rand64(&[2, 3, 2], 0.1);
    let w = rand64(&[4, 6], 0.7);
    let b = rand64(&[4], 1.3);
    let fc = FullyConnected::new(4).name("fc").build(&xs).unwrap();
    let y = run1(&fc, &[("x", &x), ("fc_weight", &w), ("fc_bias", &b)]);
    let want = fc_ref(
        &x.to_f64_vec(),
        2,
        &w.to_f64_vec(),
        4,
        Some(&b.to_f64_vec()),
    );
    assert_close(&y, &want, &[2, 4], 1e-6);

    let fc = FullyConnected::new(4)
        .no_bias(true)
        .name("fcn")
        .build(&xs)
        .unwrap();
    let e = Executor::new(&fc).unwrap();
    assert_eq!(e.variables(), ["x", "fcn_weight"]);
    let y = run1(&fc, &[("x", &x), ("fcn_weight", &w)]);
    let want = fc_ref(&x.to_f64_vec(), 2, &w.to_f64_vec(), 4, None);
    assert_close(&y, &want, &[2, 4], 1e-6);

    // flatten=False: the last axis is contracted, the leading ones kept.
    let w2 = rand64(&[5, 2], 0.2);
    let fc = FullyConnected::new(5)
        .flatten(false)
        .name("fcf")
        .build(&xs)
        .unwrap();
    let b5 = rand64(&[5], 0.4);
    let y = run1(&fc, &[("x", &x), ("fcf_weight", &w2), ("fcf_bias", &b5)]);
    let want = fc_ref(
        &x.to_f64_vec(),
        6,
        &w2.to_f64_vec(),
        5,
        Some(&b5.to_f64_vec()),
    );
    assert_close(&y, &want, &[2, 3, 5], 1e-6);
}

#[test]
fn convolution_with_groups_stride_pad_and_dilation() {
    let xs = Symbol::var("x");
    let x = rand64(&[2, 4, 9, 8], 0.3);
    let w = rand64(&[6, 2, 3, 2], 1.1);
    let b = rand64(&[6], 2.2);
    let conv = Convolution::new([3, 2], 6)
        .num_group(2)
        .stride([2, 1])
        .pad([1, 2])
        .dilate([2, 3])
        .name("conv")
        .build(&xs)
        .unwrap();
    let y = run1(&conv, &[("x", &x), ("conv_weight", &w), ("conv_bias", &b)]);
    let (want, shape) = conv2d_ref(&ConvRef {
        x: &x.to_f64_vec(),
        xs: [2, 4, 9, 8],
        w: &w.to_f64_vec(),
        ws: [6, 2, 3, 2],
        b: Some(&b.to_f64_vec()),
        stride: [2, 1],
        pad: [1, 2],
        dilate: [2, 3],
        groups: 2,
    });
    assert_close(&y, &want, &shape, 1e-6);
    // The same through the eager operator.
    let eager = nd::convolution(
        &x,
        &w,
        Some(&b),
        &ConvOptions::new(&[3, 2], 6)
            .num_group(2)
            .stride(&[2, 1])
            .pad(&[1, 2])
            .dilate(&[2, 3]),
    )
    .unwrap();
    assert_same(&y, &eager);

    // Depthwise, no bias.
    let dw = Convolution::new([3, 3], 4)
        .num_group(4)
        .pad([1, 1])
        .no_bias(true)
        .name("dw")
        .build(&xs)
        .unwrap();
    let wd = rand64(&[4, 1, 3, 3], 0.9);
    let y = run1(&dw, &[("x", &x), ("dw_weight", &wd)]);
    let (want, shape) = conv2d_ref(&ConvRef {
        x: &x.to_f64_vec(),
        xs: [2, 4, 9, 8],
        w: &wd.to_f64_vec(),
        ws: [4, 1, 3, 3],
        b: None,
        stride: [1, 1],
        pad: [1, 1],
        dilate: [1, 1],
        groups: 4,
    });
    assert_close(&y, &want, &shape, 1e-6);
}

#[test]
fn convolution_1d() {
    let xs = Symbol::var("x");
    let x = rand64(&[2, 3, 11], 0.5);
    let w = rand64(&[2, 3, 3], 0.6);
    let b = rand64(&[2], 0.8);
    let conv = Convolution::new([3], 2)
        .stride([2])
        .pad([1])
        .name("c1")
        .build(&xs)
        .unwrap();
    let y = run1(&conv, &[("x", &x), ("c1_weight", &w), ("c1_bias", &b)]);
    // As a 2-D convolution with a height of 1.
    let (want, _) = conv2d_ref(&ConvRef {
        x: &x.to_f64_vec(),
        xs: [2, 3, 1, 11],
        w: &w.to_f64_vec(),
        ws: [2, 3, 1, 3],
        b: Some(&b.to_f64_vec()),
        stride: [1, 2],
        pad: [0, 1],
        dilate: [1, 1],
        groups: 1,
    });
    assert_close(&y, &want, &[2, 2, 6], 1e-6);
}

#[allow(clippy::too_many_arguments)]
fn check_pool(
    sym: &Symbol,
    xshape: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    red: Red,
    full: bool,
    cip: bool,
) {
    let x = rand64(&xshape, 0.37);
    let y = run1(sym, &[("x", &x)]);
    let (want, shape) = pool2d_ref(&x.to_f64_vec(), xshape, k, s, p, red, full, cip);
    assert_close(&y, &want, &shape, 1e-6);
}

#[test]
fn pooling_max_avg_sum_with_padding_and_conventions() {
    let xs = Symbol::var("x");
    let sh = [2, 3, 7, 6];
    let max = Pooling::new([3, 3])
        .stride([2, 2])
        .pad([1, 1])
        .build(&xs)
        .unwrap();
    check_pool(&max, sh, [3, 3], [2, 2], [1, 1], Red::Max, false, true);

    let avg = Pooling::new([3, 2])
        .stride([2, 2])
        .pad([1, 1])
        .pool_type(PoolType::Avg)
        .build(&xs)
        .unwrap();
    check_pool(&avg, sh, [3, 2], [2, 2], [1, 1], Red::Avg, false, true);

    let avg_excl = Pooling::new([3, 2])
        .stride([2, 2])
        .pad([1, 1])
        .pool_type(PoolType::Avg)
        .count_include_pad(false)
        .build(&xs)
        .unwrap();
    check_pool(
        &avg_excl,
        sh,
        [3, 2],
        [2, 2],
        [1, 1],
        Red::Avg,
        false,
        false,
    );

    let sum = Pooling::new([2, 2])
        .stride([1, 2])
        .pool_type(PoolType::Sum)
        .build(&xs)
        .unwrap();
    check_pool(&sum, sh, [2, 2], [1, 2], [0, 0], Red::Sum, false, true);

    // Full (ceil) convention: 7 rows, kernel 2, stride 2 give 4 rows, the last window partial.
    let full_max = Pooling::new([2, 2])
        .stride([2, 2])
        .pooling_convention(PoolingConvention::Full)
        .build(&xs)
        .unwrap();
    check_pool(&full_max, sh, [2, 2], [2, 2], [0, 0], Red::Max, true, true);
    let full_avg = Pooling::new([3, 3])
        .stride([2, 2])
        .pad([1, 1])
        .pool_type(PoolType::Avg)
        .pooling_convention(PoolingConvention::Full)
        .build(&xs)
        .unwrap();
    check_pool(&full_avg, sh, [3, 3], [2, 2], [1, 1], Red::Avg, true, true);
}

#[test]
fn global_pooling() {
    let xs = Symbol::var("x");
    let x = rand64(&[2, 3, 5, 4], 0.2);
    let v = x.to_f64_vec();
    for (t, red) in [
        (PoolType::Max, Red::Max),
        (PoolType::Avg, Red::Avg),
        (PoolType::Sum, Red::Sum),
    ] {
        let g = Pooling::global(t).build(&xs).unwrap();
        let y = run1(&g, &[("x", &x)]);
        let want: Vec<f64> = v
            .chunks(20)
            .map(|c| match red {
                Red::Max => c.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                Red::Avg => c.iter().sum::<f64>() / 20.0,
                Red::Sum => c.iter().sum::<f64>(),
            })
            .collect();
        assert_close(&y, &want, &[2, 3, 1, 1], 1e-6);
    }
    // A global pooling ignores its kernel.
    let g = Pooling::new([2, 2])
        .global_pool(true)
        .pool_type(PoolType::Avg)
        .build(&xs)
        .unwrap();
    let y = run1(&g, &[("x", &x)]);
    assert_eq!(y.shape(), &[2, 3, 1, 1]);
}

#[test]
fn batch_norm_inference_uses_the_moving_statistics() {
    let xs = Symbol::var("x");
    let shape = [2, 3, 2, 3];
    let x = rand64(&shape, 0.4);
    let gamma = a64(&[0.5, 1.5, -2.0], &[3]);
    let beta = a64(&[0.1, -0.2, 0.3], &[3]);
    let mm = a64(&[0.2, -0.1, 0.05], &[3]);
    let mv = a64(&[0.8, 1.3, 0.6], &[3]);
    let vals = |name: &str| -> Vec<(String, NDArray)> {
        vec![
            ("x".into(), x.clone()),
            (format!("{name}_gamma"), gamma.clone()),
            (format!("{name}_beta"), beta.clone()),
            (format!("{name}_moving_mean"), mm.clone()),
            (format!("{name}_moving_var"), mv.clone()),
        ]
    };
    let go = |sym: &Symbol, name: &str| {
        let v = vals(name);
        let r: Vec<(&str, &NDArray)> = v.iter().map(|(k, a)| (k.as_str(), a)).collect();
        run1(sym, &r)
    };
    let (g, b, m, v) = (
        gamma.to_f64_vec(),
        beta.to_f64_vec(),
        mm.to_f64_vec(),
        mv.to_f64_vec(),
    );

    // fix_gamma false, eps given.
    let bn = BatchNorm::new()
        .fix_gamma(false)
        .eps(1e-4)
        .name("bn")
        .build(&xs)
        .unwrap();
    let y = go(&bn, "bn");
    let want = bn_ref(&x.to_f64_vec(), &shape, 1, &g, &b, &m, &v, 1e-4);
    assert_close(&y, &want, &shape, 1e-6);

    // MXNet's defaults: fix_gamma true (gamma read as 1), eps 1e-3.
    let bn = BatchNorm::new().name("bnd").build(&xs).unwrap();
    let y = go(&bn, "bnd");
    let want = bn_ref(&x.to_f64_vec(), &shape, 1, &[1.0; 3], &b, &m, &v, 1e-3);
    assert_close(&y, &want, &shape, 1e-6);

    // Channels on the last axis (axis -1).
    let x3 = rand64(&[4, 2, 3], 0.9);
    let bn = BatchNorm::new()
        .fix_gamma(false)
        .axis(-1)
        .name("bnl")
        .build(&xs)
        .unwrap();
    let y = run1(
        &bn,
        &[
            ("x", &x3),
            ("bnl_gamma", &gamma),
            ("bnl_beta", &beta),
            ("bnl_moving_mean", &mm),
            ("bnl_moving_var", &mv),
        ],
    );
    let want = bn_ref(&x3.to_f64_vec(), &[4, 2, 3], 2, &g, &b, &m, &v, 1e-3);
    assert_close(&y, &want, &[4, 2, 3], 1e-6);
    // Inference leaves the moving statistics alone.
    assert_eq!(mm.to_f64_vec(), m);
    assert_eq!(mv.to_f64_vec(), v);
}

#[test]
fn batch_norm_training_uses_batch_statistics_and_updates_the_moving_ones() {
    let xs = Symbol::var("x");
    let shape = [3, 2, 2, 2];
    let x = rand64(&shape, 0.25);
    let gamma = a64(&[1.5, 0.5], &[2]);
    let beta = a64(&[0.1, -0.3], &[2]);
    let (m0, v0) = (vec![0.3, -0.2], vec![0.7, 1.4]);
    let mm = a64(&m0, &[2]);
    let mv = a64(&v0, &[2]);
    let bn = BatchNorm::new()
        .fix_gamma(false)
        .momentum(0.8)
        .eps(1e-5)
        .name("bn")
        .build(&xs)
        .unwrap();
    let y = {
        let _t = autograd::train_mode();
        run1(
            &bn,
            &[
                ("x", &x),
                ("bn_gamma", &gamma),
                ("bn_beta", &beta),
                ("bn_moving_mean", &mm),
                ("bn_moving_var", &mv),
            ],
        )
    };
    let (bm, bv) = channel_stats(&x.to_f64_vec(), &shape, 1);
    let want = bn_ref(
        &x.to_f64_vec(),
        &shape,
        1,
        &gamma.to_f64_vec(),
        &beta.to_f64_vec(),
        &bm,
        &bv,
        1e-5,
    );
    assert_close(&y, &want, &shape, 1e-6);
    // The caller's moving statistics were updated in place: m ← 0.8·m + 0.2·batch.
    let want_m: Vec<f64> = m0.iter().zip(&bm).map(|(m, b)| 0.8 * m + 0.2 * b).collect();
    let want_v: Vec<f64> = v0.iter().zip(&bv).map(|(v, b)| 0.8 * v + 0.2 * b).collect();
    assert_close(&mm, &want_m, &[2], 1e-6);
    assert_close(&mv, &want_v, &[2], 1e-6);

    // use_global_stats: the moving statistics normalize and stay as they are, even in training.
    let bn = BatchNorm::new()
        .fix_gamma(false)
        .use_global_stats(true)
        .name("bg")
        .build(&xs)
        .unwrap();
    let (m1, v1) = (mm.to_f64_vec(), mv.to_f64_vec());
    let y = {
        let _t = autograd::train_mode();
        run1(
            &bn,
            &[
                ("x", &x),
                ("bg_gamma", &gamma),
                ("bg_beta", &beta),
                ("bg_moving_mean", &mm),
                ("bg_moving_var", &mv),
            ],
        )
    };
    let want = bn_ref(
        &x.to_f64_vec(),
        &shape,
        1,
        &gamma.to_f64_vec(),
        &beta.to_f64_vec(),
        &m1,
        &v1,
        1e-3,
    );
    assert_close(&y, &want, &shape, 1e-6);
    assert_eq!(mm.to_f64_vec(), m1);
    assert_eq!(mv.to_f64_vec(), v1);
}

#[test]
fn dropout_is_the_identity_in_inference_and_drops_in_training() {
    let xs = Symbol::var("x");
    let x = a64(
        &det(400, 0.1).iter().map(|v| v + 3.0).collect::<Vec<_>>(),
        &[4, 100],
    );
    let d = Dropout::new(0.5).build(&xs).unwrap();
    let y = run1(&d, &[("x", &x)]);
    assert_eq!(y.to_f64_vec(), x.to_f64_vec());

    let check_dropped = |y: &NDArray| -> usize {
        let mut zeros = 0;
        for (a, b) in y.to_f64_vec().iter().zip(x.to_f64_vec()) {
            if *a == 0.0 {
                zeros += 1;
            } else {
                assert!((a - 2.0 * b).abs() < 1e-12, "{a} is neither 0 nor 2·{b}");
            }
        }
        zeros
    };
    let y = {
        let _t = autograd::train_mode();
        run1(&d, &[("x", &x)])
    };
    let zeros = check_dropped(&y);
    assert!((100..300).contains(&zeros), "{zeros} of 400 dropped");

    // mode "always" drops in inference too.
    let da = Dropout::new(0.5).always(true).build(&xs).unwrap();
    let y = run1(&da, &[("x", &x)]);
    let zeros = check_dropped(&y);
    assert!((100..300).contains(&zeros), "{zeros} of 400 dropped");

    // axes: one mask value per row when axis 1 is shared.
    let dx = Dropout::new(0.5).axes([1]).build(&xs).unwrap();
    let y = {
        let _t = autograd::train_mode();
        run1(&dx, &[("x", &x)])
    };
    check_dropped(&y);
    for row in y.to_f64_vec().chunks(100) {
        let z = row.iter().filter(|v| **v == 0.0).count();
        assert!(
            z == 0 || z == 100,
            "a row with {z} zeros: the mask is not shared"
        );
    }
}

#[test]
fn activations() {
    let xs = Symbol::var("x");
    let x = rand64(&[3, 5], 0.6);
    let refs: [(ActType, F1); 5] = [
        (ActType::Relu, |v| v.max(0.0)),
        (ActType::Sigmoid, |v| 1.0 / (1.0 + (-v).exp())),
        (ActType::Tanh, f64::tanh),
        (ActType::SoftRelu, |v| (1.0 + v.exp()).ln()),
        (ActType::SoftSign, |v| v / (1.0 + v.abs())),
    ];
    for (t, f) in refs {
        let s = Activation::new(t).build(&xs).unwrap();
        assert_close(&run1(&s, &[("x", &x)]), &map(&x, f), &[3, 5], 1e-6);
    }
    // The standalone operators of the same functions.
    let refs: [(&str, F1); 4] = [
        ("relu", |v| v.max(0.0)),
        ("sigmoid", |v| 1.0 / (1.0 + (-v).exp())),
        ("tanh", f64::tanh),
        ("softsign", |v| v / (1.0 + v.abs())),
    ];
    for (op, f) in refs {
        let s = unary_json(op, &[]);
        assert_close(&run1(&s, &[("x", &x)]), &map(&x, f), &[3, 5], 1e-6);
    }
}

#[test]
fn leaky_relu_variants() {
    let xs = Symbol::var("x");
    let x = rand64(&[2, 3, 4], 0.15);
    let leaky = LeakyReLU::new(LeakyActType::Leaky)
        .slope(0.1)
        .build(&xs)
        .unwrap();
    let want = map(&x, |v| if v > 0.0 { v } else { 0.1 * v });
    assert_close(&run1(&leaky, &[("x", &x)]), &want, &[2, 3, 4], 1e-6);

    // Default slope 0.25.
    let leaky = LeakyReLU::new(LeakyActType::Leaky).build(&xs).unwrap();
    let want = map(&x, |v| if v > 0.0 { v } else { 0.25 * v });
    assert_close(&run1(&leaky, &[("x", &x)]), &want, &[2, 3, 4], 1e-6);

    let elu = LeakyReLU::new(LeakyActType::Elu)
        .slope(0.3)
        .build(&xs)
        .unwrap();
    let want = map(&x, |v| if v > 0.0 { v } else { 0.3 * (v.exp() - 1.0) });
    assert_close(&run1(&elu, &[("x", &x)]), &want, &[2, 3, 4], 1e-6);

    let selu = LeakyReLU::new(LeakyActType::Selu).build(&xs).unwrap();
    let (l, a) = (1.050_700_987_355_480_5, 1.673_263_242_354_377_3);
    let want = map(&x, |v| {
        if v > 0.0 {
            l * v
        } else {
            l * a * (v.exp() - 1.0)
        }
    });
    assert_close(&run1(&selu, &[("x", &x)]), &want, &[2, 3, 4], 1e-6);

    // gelu (erf form): against the eager operator.
    let gelu = LeakyReLU::new(LeakyActType::Gelu).build(&xs).unwrap();
    let eager = nd::leaky_relu(&x, LeakyAct::Gelu, 0.25, None).unwrap();
    assert_same(&run1(&gelu, &[("x", &x)]), &eager);
    // ... and two values by hand: gelu(1) = Φ(1), gelu(-1) = -(1 - Φ(1)).
    let two = a64(&[1.0, -1.0], &[2]);
    let phi1 = 0.841_344_746_068_542_9;
    assert_close(
        &run1(&gelu, &[("x", &two)]),
        &[phi1, -(1.0 - phi1)],
        &[2],
        1e-6,
    );

    // prelu: one learned slope per channel (axis 1).
    let gamma = a64(&[0.1, 0.2, 0.3], &[3]);
    let prelu = LeakyReLU::new(LeakyActType::Prelu)
        .name("pr")
        .build(&xs)
        .unwrap();
    let y = run1(&prelu, &[("x", &x), ("pr_gamma", &gamma)]);
    let want: Vec<f64> = x
        .to_f64_vec()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let g = [0.1, 0.2, 0.3][(i / 4) % 3];
            if v > 0.0 {
                v
            } else {
                g * v
            }
        })
        .collect();
    assert_close(&y, &want, &[2, 3, 4], 1e-6);

    // rrelu in inference: the slope is the mean of its bounds; in training it is refused.
    let rrelu = LeakyReLU::new(LeakyActType::Rrelu)
        .lower_bound(0.1)
        .upper_bound(0.3)
        .name("rr")
        .build(&xs)
        .unwrap();
    // Like MXNet's, the rrelu symbol exposes its mask too; reading it is unsupported.
    assert_eq!(rrelu.num_outputs(), 2);
    assert!(matches!(
        Executor::new(&rrelu),
        Err(Error::UnsupportedOperator { node, op }) if node == "rr" && op.contains("mask")
    ));
    let rrelu = rrelu.output(0).unwrap();
    let want = map(&x, |v| if v > 0.0 { v } else { 0.2 * v });
    assert_close(&run1(&rrelu, &[("x", &x)]), &want, &[2, 3, 4], 1e-6);
    let e = Executor::new(&rrelu).unwrap();
    let err = {
        let _t = autograd::train_mode();
        e.run(std::slice::from_ref(&x)).unwrap_err()
    };
    assert!(
        matches!(&err, Error::NodeFailed { node, op, .. } if node == "rr" && op == "LeakyReLU"),
        "{err:?}"
    );
}

#[test]
fn flatten_and_clip() {
    let xs = Symbol::var("x");
    let x = rand64(&[2, 3, 4], 0.5);
    let f = Flatten::new().build(&xs).unwrap();
    assert_close(&run1(&f, &[("x", &x)]), &x.to_f64_vec(), &[2, 12], 0.0);
    let c = Clip::new(-0.5, 0.75).build(&xs).unwrap();
    assert_close(
        &run1(&c, &[("x", &x)]),
        &map(&x, |v| v.clamp(-0.5, 0.75)),
        &[2, 3, 4],
        0.0,
    );
}

fn bin(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
    }
}

#[test]
fn elemwise_and_broadcast_arithmetic() {
    let (a, b) = (Symbol::var("a"), Symbol::var("b"));
    let x = rand64(&[2, 3], 0.1);
    let y = a64(&[1.5, -2.0, 0.7, 3.0, -0.9, 1.1], &[2, 3]);
    let row = a64(&[0.5, -1.5, 2.5], &[1, 3]);
    let col = a64(&[1.25, -0.75], &[2, 1]);
    let (xv, yv, rv, cv) = (
        x.to_f64_vec(),
        y.to_f64_vec(),
        row.to_f64_vec(),
        col.to_f64_vec(),
    );
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
        let s = Elemwise::new(op).build(&a, &b).unwrap();
        let want: Vec<f64> = xv.iter().zip(&yv).map(|(p, q)| bin(op, *p, *q)).collect();
        assert_close(&run1(&s, &[("a", &x), ("b", &y)]), &want, &[2, 3], 1e-12);

        let s = Broadcast::new(op).build(&a, &b).unwrap();
        let want: Vec<f64> = (0..6).map(|i| bin(op, xv[i], rv[i % 3])).collect();
        assert_close(&run1(&s, &[("a", &x), ("b", &row)]), &want, &[2, 3], 1e-12);
        // Both sides broadcast: (2, 1) with (1, 3).
        let want: Vec<f64> = (0..6).map(|i| bin(op, cv[i / 3], rv[i % 3])).collect();
        assert_close(
            &run1(&s, &[("a", &col), ("b", &row)]),
            &want,
            &[2, 3],
            1e-12,
        );
    }
    // Elemwise operators do not broadcast: the node fails, named.
    let s = Elemwise::new(BinaryOp::Add)
        .name("plus")
        .build(&a, &b)
        .unwrap();
    let e = Executor::new(&s).unwrap();
    let err = e.run(&[x.clone(), row.clone()]).unwrap_err();
    assert!(
        matches!(&err, Error::NodeFailed { node, op, .. } if node == "plus" && op == "elemwise_add"),
        "{err:?}"
    );
}

#[test]
fn concat_along_axes() {
    let (a, b, c) = (Symbol::var("a"), Symbol::var("b"), Symbol::var("c"));
    let x = rand64(&[2, 1, 3], 0.1);
    let y = rand64(&[2, 2, 3], 0.2);
    let z = rand64(&[2, 3, 3], 0.3);
    let s = Concat::new().build(&[&a, &b, &c]).unwrap();
    let got = run1(&s, &[("a", &x), ("b", &y), ("c", &z)]);
    let (xv, yv, zv) = (x.to_f64_vec(), y.to_f64_vec(), z.to_f64_vec());
    let mut want = Vec::new();
    for n in 0..2 {
        want.extend_from_slice(&xv[n * 3..(n + 1) * 3]);
        want.extend_from_slice(&yv[n * 6..(n + 1) * 6]);
        want.extend_from_slice(&zv[n * 9..(n + 1) * 9]);
    }
    assert_close(&got, &want, &[2, 6, 3], 0.0);

    // dim -1 on (2, 2) and (2, 1).
    let p = rand64(&[2, 2], 0.4);
    let q = rand64(&[2, 1], 0.5);
    let s = Concat::new().dim(-1).build(&[&a, &b]).unwrap();
    let got = run1(&s, &[("a", &p), ("b", &q)]);
    let (pv, qv) = (p.to_f64_vec(), q.to_f64_vec());
    assert_close(
        &got,
        &[pv[0], pv[1], qv[0], pv[2], pv[3], qv[1]],
        &[2, 3],
        0.0,
    );
}

#[test]
fn softmax_family() {
    let xs = Symbol::var("x");
    let x = rand64(&[2, 3, 4], 0.35);
    let xv = x.to_f64_vec();
    // Default axis -1.
    let s = Softmax::new().build(&xs).unwrap();
    assert_close(
        &run1(&s, &[("x", &x)]),
        &softmax_rows(&xv, 6, 1.0, false),
        &[2, 3, 4],
        1e-6,
    );
    // Axis 1 with a temperature.
    let s = Softmax::new().axis(1).temperature(2.5).build(&xs).unwrap();
    let got = run1(&s, &[("x", &x)]);
    let (moved, _) = axis_to_last(&xv, &[2, 3, 4], 1);
    let sm = softmax_rows(&moved, 8, 2.5, false);
    let (back, _) = transpose_ref(&sm, &[2, 4, 3], &[0, 2, 1]);
    assert_close(&got, &back, &[2, 3, 4], 1e-6);
    // dtype float64 from float32 input.
    let x32 = x.astype(DType::Float32).unwrap();
    let s = Softmax::new().dtype(DType::Float64).build(&xs).unwrap();
    let got = run1(&s, &[("x", &x32)]);
    assert_eq!(got.dtype(), DType::Float64);
    let want = softmax_rows(&x32.to_f64_vec(), 6, 1.0, false);
    assert_close(&got, &want, &[2, 3, 4], 1e-6);

    // log_softmax: default axis -1, and axis 0 with a temperature.
    let s = unary_json("log_softmax", &[]);
    assert_close(
        &run1(&s, &[("x", &x)]),
        &softmax_rows(&xv, 6, 1.0, true),
        &[2, 3, 4],
        1e-6,
    );
    let s = unary_json("log_softmax", &[("axis", "0"), ("temperature", "0.5")]);
    let (moved, _) = axis_to_last(&xv, &[2, 3, 4], 0);
    let sm = softmax_rows(&moved, 12, 0.5, true);
    let (back, _) = transpose_ref(&sm, &[3, 4, 2], &[2, 0, 1]);
    assert_close(&run1(&s, &[("x", &x)]), &back, &[2, 3, 4], 1e-6);

    // SoftmaxActivation: instance mode over all but the batch axis, channel mode over axis 1.
    let s = unary_json("SoftmaxActivation", &[]);
    assert_close(
        &run1(&s, &[("x", &x)]),
        &softmax_rows(&xv, 2, 1.0, false),
        &[2, 3, 4],
        1e-6,
    );
    let s = unary_json("SoftmaxActivation", &[("mode", "channel")]);
    let (moved, _) = axis_to_last(&xv, &[2, 3, 4], 1);
    let sm = softmax_rows(&moved, 8, 1.0, false);
    let (back, _) = transpose_ref(&sm, &[2, 4, 3], &[0, 2, 1]);
    assert_close(&run1(&s, &[("x", &x)]), &back, &[2, 3, 4], 1e-6);
}

#[test]
fn softmax_output_ignores_its_label() {
    let xs = Symbol::var("x");
    let x = rand64(&[2, 3, 4], 0.8);
    let xv = x.to_f64_vec();
    let s = SoftmaxOutput::new().name("so").build(&xs).unwrap();
    let e = Executor::new(&s).unwrap();
    assert_eq!(e.variables(), ["x", "so_label"]);
    assert!(e.variable_is_used(0));
    assert!(!e.variable_is_used(1), "the label is not read in inference");
    // A label of any shape and content: not read.
    for label in [nd::zeros(&[2], None).unwrap(), rand64(&[7, 1], 0.1)] {
        let y = e.run(&[x.clone(), label]).unwrap();
        assert_close(&y[0], &softmax_rows(&xv, 2, 1.0, false), &[2, 3, 4], 1e-6);
    }
    // Under record and training too.
    let y = {
        let _r = autograd::record();
        e.run(&[x.clone(), nd::zeros(&[1], None).unwrap()]).unwrap()
    };
    assert_close(&y[0], &softmax_rows(&xv, 2, 1.0, false), &[2, 3, 4], 1e-6);

    // preserve_shape: over the last axis; multi_output: over axis 1.
    let s = SoftmaxOutput::new()
        .preserve_shape(true)
        .name("sp")
        .build(&xs)
        .unwrap();
    let y = run1(&s, &[("x", &x), ("sp_label", &x)]);
    assert_close(&y, &softmax_rows(&xv, 6, 1.0, false), &[2, 3, 4], 1e-6);
    let s = SoftmaxOutput::new()
        .multi_output(true)
        .name("sm")
        .build(&xs)
        .unwrap();
    let y = run1(&s, &[("x", &x), ("sm_label", &x)]);
    let (moved, _) = axis_to_last(&xv, &[2, 3, 4], 1);
    let sm = softmax_rows(&moved, 8, 1.0, false);
    let (back, _) = transpose_ref(&sm, &[2, 4, 3], &[0, 2, 1]);
    assert_close(&y, &back, &[2, 3, 4], 1e-6);
}

#[test]
fn reshape_special_codes() {
    let xs = Symbol::var("x");
    let x = rand64(&[2, 3, 4], 0.45);
    let xv = x.to_f64_vec();
    let cases: &[(&[i64], &[usize])] = &[
        (&[0, -1], &[2, 12]),
        (&[-1], &[24]),
        (&[4, -1], &[4, 6]),
        (&[-2], &[2, 3, 4]),
        (&[0, -2], &[2, 3, 4]),
        (&[-3, -2], &[6, 4]),
        (&[0, -3], &[2, 12]),
        (&[-4, 1, 2, -2], &[1, 2, 3, 4]),
        (&[0, -4, -1, 1, 0], &[2, 3, 1, 4]),
        (&[2, 0, 2, 2], &[2, 3, 2, 2]),
    ];
    for (codes, want) in cases {
        let s = Reshape::new(codes).build(&xs).unwrap();
        let y = run1(&s, &[("x", &x)]);
        assert_close(&y, &xv, want, 0.0);
    }
    // reverse: codes matched from the right; (10, 5, 4) with (-1, 0) is (50, 4).
    let z = rand64(&[10, 5, 4], 0.1);
    let s = Reshape::new([-1, 0]).reverse(true).build(&xs).unwrap();
    assert_close(&run1(&s, &[("x", &z)]), &z.to_f64_vec(), &[50, 4], 0.0);
    // A shape that does not fit fails at the node.
    let s = Reshape::new([5, -1]).name("rs").build(&xs).unwrap();
    let e = Executor::new(&s).unwrap();
    let err = e.run(std::slice::from_ref(&x)).unwrap_err();
    assert!(
        matches!(&err, Error::NodeFailed { node, op, .. } if node == "rs" && op == "Reshape"),
        "{err:?}"
    );
}

#[test]
fn identity_and_block_grad() {
    let x = rand64(&[2, 3], 0.3);
    for op in [
        "_copy",
        "identity",
        "_npi_copy",
        "BlockGrad",
        "stop_gradient",
    ] {
        let s = unary_json(op, &[]);
        assert_close(&run1(&s, &[("x", &x)]), &x.to_f64_vec(), &[2, 3], 0.0);
    }
    // BlockGrad stops the gradient; _copy passes it.
    for (op, want) in [("BlockGrad", 0.0), ("_copy", 1.0)] {
        let mut v = rand64(&[2, 3], 0.3);
        v.attach_grad(GradReq::Write).unwrap();
        let s = load(
            &[
                ("null", "x", &[], &[]),
                (op, "g", &[], &[0]),
                ("elemwise_add", "s", &[], &[1, 0]),
            ],
            &[(2, 0)],
        );
        let e = Executor::new(&s).unwrap();
        let y = {
            let _r = autograd::record();
            e.run(std::slice::from_ref(&v)).unwrap()
        };
        y[0].backward().unwrap();
        assert_close(&v.grad().unwrap(), &[1.0 + want; 6], &[2, 3], 0.0);
    }
}

#[test]
fn scalar_operators() {
    let x = a64(&[1.5, -2.0, 0.25, 4.0], &[2, 2]);
    let k = 2.5;
    let cases: [(&[&str], F2); 8] = [
        (&["_plus_scalar", "_PlusScalar"], |v, k| v + k),
        (&["_minus_scalar", "_MinusScalar"], |v, k| v - k),
        (&["_rminus_scalar", "_RMinusScalar"], |v, k| k - v),
        (&["_mul_scalar", "_MulScalar"], |v, k| v * k),
        (&["_div_scalar", "_DivScalar"], |v, k| v / k),
        (&["_rdiv_scalar", "_RDivScalar"], |v, k| k / v),
        (&["_maximum_scalar", "_MaximumScalar"], |v, k| v.max(k)),
        (&["_minimum_scalar", "_MinimumScalar"], |v, k| v.min(k)),
    ];
    for (names, f) in cases {
        for op in names {
            let s = unary_json(op, &[("scalar", "2.5")]);
            let y = run1(&s, &[("x", &x)]);
            assert_close(&y, &map(&x, |v| f(v, k)), &[2, 2], 1e-12);
        }
    }
    // A scalar operator without its scalar is the node's failure.
    let s = unary_json("_plus_scalar", &[]);
    let err = Executor::new(&s).unwrap_err();
    assert!(
        matches!(&err, Error::NodeFailed { node, .. } if node == "y"),
        "{err:?}"
    );
}

#[test]
fn unary_math() {
    let x = a64(&[1.5, 0.2, 0.25, 4.0, 2.0, 0.7], &[2, 3]);
    let neg = a64(&[-1.5, 0.2, -0.25, 4.0, -2.0, 0.0], &[2, 3]);
    let cases: [(&str, F1, bool); 6] = [
        ("exp", f64::exp, true),
        ("log", f64::ln, false),
        ("sqrt", f64::sqrt, false),
        ("square", |v| v * v, true),
        ("abs", f64::abs, true),
        ("negative", |v| -v, true),
    ];
    for (op, f, signed) in cases {
        let input = if signed { &neg } else { &x };
        let s = unary_json(op, &[]);
        assert_close(&run1(&s, &[("x", input)]), &map(input, f), &[2, 3], 1e-12);
    }
}

#[test]
fn add_n_sums_every_input() {
    for op in ["add_n", "ElementWiseSum", "_add_n"] {
        let s = load(
            &[
                ("null", "a", &[], &[]),
                ("null", "b", &[], &[]),
                ("null", "c", &[], &[]),
                (op, "s", &[("num_args", "3")], &[0, 1, 2]),
            ],
            &[(3, 0)],
        );
        let (a, b, c) = (
            rand64(&[2, 2], 0.1),
            rand64(&[2, 2], 0.2),
            rand64(&[2, 2], 0.3),
        );
        let want: Vec<f64> = (0..4)
            .map(|i| a.to_f64_vec()[i] + b.to_f64_vec()[i] + c.to_f64_vec()[i])
            .collect();
        assert_close(
            &run1(&s, &[("a", &a), ("b", &b), ("c", &c)]),
            &want,
            &[2, 2],
            1e-12,
        );
    }
}

#[test]
fn reductions() {
    let x = rand64(&[2, 3, 4], 0.55);
    let xv = x.to_f64_vec();
    let at = |i: usize, j: usize, k: usize| xv[(i * 3 + j) * 4 + k];
    // sum over axis 1, keepdims.
    let s = unary_json("sum", &[("axis", "1"), ("keepdims", "True")]);
    let want: Vec<f64> = (0..2)
        .flat_map(|i| (0..4).map(move |k| (i, k)))
        .map(|(i, k)| (0..3).map(|j| at(i, j, k)).sum())
        .collect();
    assert_close(&run1(&s, &[("x", &x)]), &want, &[2, 1, 4], 1e-12);
    // sum_axis spells the same operator.
    let s = unary_json("sum_axis", &[("axis", "(1,)")]);
    assert_close(&run1(&s, &[("x", &x)]), &want, &[2, 4], 1e-12);
    // mean over (0, 2).
    let s = unary_json("mean", &[("axis", "(0, 2)")]);
    let want: Vec<f64> = (0..3)
        .map(|j| {
            (0..2)
                .flat_map(|i| (0..4).map(move |k| (i, k)))
                .map(|(i, k)| at(i, j, k))
                .sum::<f64>()
                / 8.0
        })
        .collect();
    assert_close(&run1(&s, &[("x", &x)]), &want, &[3], 1e-12);
    // mean over the last axis (negative).
    let s = unary_json("mean", &[("axis", "-1")]);
    let want: Vec<f64> = xv.chunks(4).map(|c| c.iter().sum::<f64>() / 4.0).collect();
    assert_close(&run1(&s, &[("x", &x)]), &want, &[2, 3], 1e-12);
    // Every axis: a (1,) result.
    let s = unary_json("sum", &[]);
    assert_close(&run1(&s, &[("x", &x)]), &[xv.iter().sum()], &[1], 1e-12);
    let s = unary_json("mean", &[("axis", "()"), ("keepdims", "True")]);
    assert_close(
        &run1(&s, &[("x", &x)]),
        &[xv.iter().sum::<f64>() / 24.0],
        &[1, 1, 1],
        1e-12,
    );
    // exclude is not supported.
    let s = unary_json("sum", &[("axis", "1"), ("exclude", "True")]);
    let err = Executor::new(&s).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOperator { node, .. } if node == "y"),
        "{err:?}"
    );
}

#[test]
fn transpose_default_and_given_axes() {
    let x = rand64(&[2, 3, 4], 0.65);
    let xv = x.to_f64_vec();
    let s = unary_json("transpose", &[]);
    let (want, shape) = transpose_ref(&xv, &[2, 3, 4], &[2, 1, 0]);
    assert_close(&run1(&s, &[("x", &x)]), &want, &shape, 0.0);
    let s = unary_json("transpose", &[("axes", "(1, 2, 0)")]);
    let (want, shape) = transpose_ref(&xv, &[2, 3, 4], &[1, 2, 0]);
    assert_close(&run1(&s, &[("x", &x)]), &want, &shape, 0.0);
    assert_eq!(shape, [3, 4, 2]);
}

#[test]
fn a_two_operator_chain_equals_the_eager_operators() {
    // Convolution → Pooling, and FullyConnected → softmax: the executor runs exactly the
    // eager operators.
    let xs = Symbol::var("x");
    let conv = Convolution::new([3, 3], 4)
        .pad([1, 1])
        .name("c")
        .build(&xs)
        .unwrap();
    let pool = Pooling::new([2, 2])
        .stride([2, 2])
        .pool_type(PoolType::Avg)
        .build(&conv)
        .unwrap();
    let x = nd::array(&det(2 * 3 * 6 * 6, 0.1), &[2, 3, 6, 6], None)
        .unwrap()
        .astype(DType::Float32)
        .unwrap();
    let w = rand64(&[4, 3, 3, 3], 0.2).astype(DType::Float32).unwrap();
    let b = rand64(&[4], 0.3).astype(DType::Float32).unwrap();
    let y = run1(&pool, &[("x", &x), ("c_weight", &w), ("c_bias", &b)]);
    let eager = nd::pooling(
        &nd::convolution(&x, &w, Some(&b), &ConvOptions::new(&[3, 3], 4).pad(&[1, 1])).unwrap(),
        &PoolOptions::new(&[2, 2], nd::PoolType::Avg).stride(&[2, 2]),
    )
    .unwrap();
    assert_eq!(y.dtype(), DType::Float32);
    assert_eq!(y.shape(), eager.shape());
    assert_eq!(y.to_vec::<f32>().unwrap(), eager.to_vec::<f32>().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unknown_operator_is_unsupported_naming_its_node() {
    let s = load(
        &[
            ("null", "x", &[], &[]),
            ("Activation", "act", &[("act_type", "relu")], &[0]),
            ("_contrib_Frobnicate", "frob7", &[("k", "3")], &[1]),
        ],
        &[(2, 0)],
    );
    let err = Executor::new(&s).unwrap_err();
    match &err {
        Error::UnsupportedOperator { op, node } => {
            assert_eq!(node, "frob7");
            assert!(op.contains("_contrib_Frobnicate"), "{op}");
        }
        e => panic!("expected UnsupportedOperator, got {e:?}"),
    }
    assert!(err.to_string().contains("frob7"), "{err}");
    // SymbolBlock refuses it the same way.
    assert!(matches!(
        SymbolBlock::new(s, &["x"], None),
        Err(Error::UnsupportedOperator { .. })
    ));
}

#[test]
fn unsupported_options_are_named() {
    let xs = Symbol::var("x");
    let lp = Pooling::new([2, 2])
        .pool_type(PoolType::Lp)
        .p_value(2)
        .name("lp")
        .build(&xs)
        .unwrap();
    assert!(
        matches!(Executor::new(&lp), Err(Error::UnsupportedOperator { node, .. }) if node == "lp")
    );
    let nhwc = Convolution::new([3, 3], 2)
        .layout(Layout::Nhwc)
        .name("cl")
        .build(&xs)
        .unwrap();
    assert!(
        matches!(Executor::new(&nhwc), Err(Error::UnsupportedOperator { node, .. }) if node == "cl")
    );
    // An attribute the executor cannot read is the node's failure, at compile time.
    let s = unary_json("SoftmaxActivation", &[("mode", "sideways")]);
    assert!(matches!(Executor::new(&s), Err(Error::NodeFailed { node, .. }) if node == "y"));
    let s = unary_json("transpose", &[("axes", "(0, -1, 1)")]);
    assert!(matches!(Executor::new(&s), Err(Error::NodeFailed { node, .. }) if node == "y"));
    let s = unary_json("log_softmax", &[("use_length", "True")]);
    assert!(
        matches!(Executor::new(&s), Err(Error::UnsupportedOperator { node, .. }) if node == "y")
    );
}

#[test]
fn a_wrong_number_of_values_is_an_invalid_argument() {
    let fc = FullyConnected::new(2)
        .name("fc")
        .build(&Symbol::var("x"))
        .unwrap();
    let e = Executor::new(&fc).unwrap();
    let x = rand64(&[1, 3], 0.1);
    let err = e.run(std::slice::from_ref(&x)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("fc_weight"), "{err}");
    let w = rand64(&[2, 3], 0.2);
    let b = rand64(&[2], 0.3);
    let err = e.run(&[x.clone(), w, b, x]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
}

#[test]
fn data_that_does_not_fit_a_weight_fails_at_that_node() {
    let xs = Symbol::var("x");
    let fc1 = FullyConnected::new(4).name("fc1").build(&xs).unwrap();
    let act = Activation::new(ActType::Relu).build(&fc1).unwrap();
    let fc2 = FullyConnected::new(2).name("fc2").build(&act).unwrap();
    let x = rand64(&[3, 5], 0.1);
    let w1 = rand64(&[4, 5], 0.2);
    let b1 = rand64(&[4], 0.3);
    // fc2's weight expects 3 inputs but fc1 gives 4.
    let w2 = rand64(&[2, 3], 0.4);
    let b2 = rand64(&[2], 0.5);
    let e = Executor::new(&fc2).unwrap();
    let err = e.run(&[x, w1, b1, w2, b2]).unwrap_err();
    match &err {
        Error::NodeFailed { node, op, source } => {
            assert_eq!(node, "fc2");
            assert_eq!(op, "FullyConnected");
            assert!(!matches!(**source, Error::NodeFailed { .. }));
        }
        e => panic!("expected NodeFailed, got {e:?}"),
    }
    assert!(err.to_string().contains("fc2"), "{err}");

    // A convolution whose input has the wrong channel count.
    let conv = Convolution::new([3, 3], 2).name("conv").build(&xs).unwrap();
    let e = Executor::new(&conv).unwrap();
    let err = e
        .run(&[
            rand64(&[1, 4, 5, 5], 0.1),
            rand64(&[2, 3, 3, 3], 0.2),
            rand64(&[2], 0.3),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, Error::NodeFailed { node, op, .. } if node == "conv" && op == "Convolution"),
        "{err:?}"
    );
}

#[test]
fn reading_batch_norms_hidden_mean_is_unsupported() {
    let bn = BatchNorm::new()
        .output_mean_var(true)
        .name("bn")
        .build(&Symbol::var("x"))
        .unwrap();
    // Output 0 alone is fine.
    assert!(Executor::new(&bn.output(0).unwrap()).is_ok());
    // The batch mean as a graph output.
    let mean = bn.output(1).unwrap();
    let err = Executor::new(&mean).unwrap_err();
    match &err {
        Error::UnsupportedOperator { op, node } => {
            assert_eq!(node, "bn");
            assert!(op.contains("BatchNorm") && op.contains("mean"), "{op}");
        }
        e => panic!("expected UnsupportedOperator, got {e:?}"),
    }
    // The batch variance read by another operator.
    let s = load(
        &[
            ("null", "x", &[], &[]),
            ("null", "bn_gamma", &[], &[]),
            ("null", "bn_beta", &[], &[]),
            ("null", "bn_moving_mean", &[], &[]),
            ("null", "bn_moving_var", &[], &[]),
            (
                "BatchNorm",
                "bn",
                &[("output_mean_var", "True")],
                &[0, 1, 2, 3, 4],
            ),
            ("null", "y", &[], &[]),
        ],
        &[(5, 0)],
    );
    assert!(Executor::new(&s).is_ok());
    let json = graph_json(
        &[
            ("null", "x", &[], &[]),
            ("null", "bn_gamma", &[], &[]),
            ("null", "bn_beta", &[], &[]),
            ("null", "bn_moving_mean", &[], &[]),
            ("null", "bn_moving_var", &[], &[]),
            (
                "BatchNorm",
                "bn",
                &[("output_mean_var", "True")],
                &[0, 1, 2, 3, 4],
            ),
            ("Activation", "act", &[("act_type", "relu")], &[5]),
        ],
        &[(6, 0)],
    )
    // Point the activation at output 2 (the variance).
    .replace("[[5,0,0]]", "[[5,2,0]]");
    let s = Symbol::load_json(&json).unwrap();
    let err = Executor::new(&s).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOperator { node, op } if node == "bn" && op.contains("act")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Gradients
// ---------------------------------------------------------------------------------------------

fn grad_array(shape: &[usize], phase: f64) -> NDArray {
    let mut a = rand64(shape, phase).astype(DType::Float32).unwrap();
    a.attach_grad(GradReq::Write).unwrap();
    a
}

#[test]
fn gradients_through_an_executed_graph_equal_the_eager_ones() {
    // conv → BatchNorm (training) → relu → avg pool → flatten → fc → softmax.
    let xs = Symbol::var("x");
    let conv = Convolution::new([3, 3], 4)
        .pad([1, 1])
        .name("c")
        .build(&xs)
        .unwrap();
    let bn = BatchNorm::new()
        .fix_gamma(false)
        .name("bn")
        .build(&conv)
        .unwrap();
    let act = Activation::new(ActType::Relu).build(&bn).unwrap();
    let pool = Pooling::new([2, 2])
        .stride([2, 2])
        .pool_type(PoolType::Avg)
        .build(&act)
        .unwrap();
    let flat = Flatten::new().build(&pool).unwrap();
    let fc = FullyConnected::new(3).name("fc").build(&flat).unwrap();
    let out = Softmax::new().build(&fc).unwrap();
    let exec = Executor::new(&out).unwrap();

    let shapes: [(&str, Vec<usize>); 9] = [
        ("x", vec![2, 2, 4, 4]),
        ("c_weight", vec![4, 2, 3, 3]),
        ("c_bias", vec![4]),
        ("bn_gamma", vec![4]),
        ("bn_beta", vec![4]),
        ("bn_moving_mean", vec![4]),
        ("bn_moving_var", vec![4]),
        ("fc_weight", vec![3, 16]),
        ("fc_bias", vec![3]),
    ];
    let make = || -> Vec<NDArray> {
        shapes
            .iter()
            .enumerate()
            .map(|(i, (name, s))| {
                if name.contains("moving") {
                    let v = if name.ends_with("var") { 1.0 } else { 0.0 };
                    nd::full(s, v, None)
                        .unwrap()
                        .astype(DType::Float32)
                        .unwrap()
                } else {
                    grad_array(s, 0.37 * i as f64)
                }
            })
            .collect()
    };
    let head = rand64(&[2, 3], 0.9).astype(DType::Float32).unwrap();

    // Through the executor.
    let ours = make();
    let by_name =
        |v: &[NDArray], n: &str| v[shapes.iter().position(|(k, _)| *k == n).unwrap()].clone();
    let args: Vec<NDArray> = exec.variables().iter().map(|n| by_name(&ours, n)).collect();
    let y = {
        let _r = autograd::record();
        exec.run(&args).unwrap().swap_remove(0)
    };
    y.backward_with(Some(&head), false).unwrap();

    // Eagerly.
    let theirs = make();
    let g = |n: &str| by_name(&theirs, n);
    let y2 = {
        let _r = autograd::record();
        let c = nd::convolution(
            &g("x"),
            &g("c_weight"),
            Some(&g("c_bias")),
            &ConvOptions::new(&[3, 3], 4).pad(&[1, 1]),
        )
        .unwrap();
        let b = nd::batch_norm(
            &c,
            &g("bn_gamma"),
            &g("bn_beta"),
            &g("bn_moving_mean"),
            &g("bn_moving_var"),
            &BatchNormOptions {
                axis: 1,
                eps: 1e-3,
                momentum: 0.9,
                fix_gamma: false,
                use_global_stats: false,
            },
            true,
        )
        .unwrap();
        let a = nd::activation(&b, ActType::Relu).unwrap();
        let p = nd::pooling(
            &a,
            &PoolOptions::new(&[2, 2], nd::PoolType::Avg).stride(&[2, 2]),
        )
        .unwrap();
        let f = nd::flatten(&p).unwrap();
        let l =
            nd::fully_connected_with(&f, &g("fc_weight"), Some(&g("fc_bias")), 3, true).unwrap();
        nd::softmax(&l, -1).unwrap()
    };
    y2.backward_with(Some(&head), false).unwrap();

    assert_eq!(y.to_vec::<f32>().unwrap(), y2.to_vec::<f32>().unwrap());
    for (name, _) in &shapes {
        let (a, b) = (by_name(&ours, name), by_name(&theirs, name));
        if name.contains("moving") {
            // Updated by the training-mode forward pass, identically.
            assert_ne!(
                a.to_f64_vec(),
                vec![if name.ends_with("var") { 1.0 } else { 0.0 }; 4]
            );
            assert_close(&a, &b.to_f64_vec(), b.shape(), 1e-6);
            continue;
        }
        let (ga, gb) = (a.grad().unwrap(), b.grad().unwrap());
        assert!(
            gb.to_f64_vec().iter().any(|v| *v != 0.0),
            "{name}: zero gradient"
        );
        assert_close(&ga, &gb.to_f64_vec(), gb.shape(), 1e-6);
    }
}

#[test]
fn gradient_of_a_small_graph_by_hand() {
    // y = sum over units of (x·Wᵀ + b) * 2: dy/dW[u, i] = 2·Σ_r x[r, i]; dy/db = 2·rows.
    let s = load(
        &[
            ("null", "x", &[], &[]),
            ("null", "w", &[], &[]),
            ("null", "b", &[], &[]),
            ("FullyConnected", "fc", &[("num_hidden", "2")], &[0, 1, 2]),
            ("_mul_scalar", "m", &[("scalar", "2")], &[3]),
        ],
        &[(4, 0)],
    );
    let mut x = rand64(&[3, 4], 0.2);
    let mut w = rand64(&[2, 4], 0.5);
    let mut b = rand64(&[2], 0.7);
    for a in [&mut x, &mut w, &mut b] {
        a.attach_grad(GradReq::Write).unwrap();
    }
    let e = Executor::new(&s).unwrap();
    let y = {
        let _r = autograd::record();
        e.run(&[x.clone(), w.clone(), b.clone()])
            .unwrap()
            .swap_remove(0)
    };
    y.backward().unwrap();
    let xv = x.to_f64_vec();
    let col: Vec<f64> = (0..4)
        .map(|i| 2.0 * (0..3).map(|r| xv[r * 4 + i]).sum::<f64>())
        .collect();
    let want_w: Vec<f64> = col.iter().chain(&col).cloned().collect();
    assert_close(&w.grad().unwrap(), &want_w, &[2, 4], 1e-12);
    assert_close(&b.grad().unwrap(), &[6.0, 6.0], &[2], 1e-12);
    let wv = w.to_f64_vec();
    let want_x: Vec<f64> = (0..3)
        .flat_map(|_| (0..4).map(|i| 2.0 * (wv[i] + wv[4 + i])))
        .collect();
    assert_close(&x.grad().unwrap(), &want_x, &[3, 4], 1e-12);
}

// ---------------------------------------------------------------------------------------------
// SymbolBlock
// ---------------------------------------------------------------------------------------------

fn save_fc_model(dir: &std::path::Path) -> PathBuf {
    let fc = FullyConnected::new(2)
        .name("fc")
        .build(&Symbol::var("data"))
        .unwrap();
    let json = dir.join("m-symbol.json");
    fc.save(&json).unwrap();
    json
}

fn save_params(path: &std::path::Path, entries: &[(&str, NDArray)]) {
    nd::save(
        path,
        &ArrayList::Dict(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone().into()))
                .collect(),
        ),
    )
    .unwrap();
}

#[test]
fn imports_with_a_missing_or_an_extra_parameter_names_it() {
    let dir = tmpdir("mismatch");
    let json = save_fc_model(&dir);
    let w = nd::ones(&[2, 3], None).unwrap();
    let b = nd::zeros(&[2], None).unwrap();

    let missing = dir.join("missing.params");
    save_params(&missing, &[("arg:fc_weight", w.clone())]);
    match SymbolBlock::imports(&json, &["data"], Some(&missing), Context::cpu(0)) {
        Err(Error::ParameterLoadMismatch {
            missing,
            unexpected,
            ..
        }) => {
            assert_eq!(missing, ["fc_bias"]);
            assert!(unexpected.is_empty(), "{unexpected:?}");
        }
        Err(e) => panic!("expected ParameterLoadMismatch, got {e:?}"),
        Ok(_) => panic!("a file without fc_bias was accepted"),
    }

    let extra = dir.join("extra.params");
    save_params(
        &extra,
        &[
            ("arg:fc_weight", w.clone()),
            ("arg:fc_bias", b.clone()),
            ("arg:stray_weight", b.clone()),
        ],
    );
    let err = SymbolBlock::imports(&json, &["data"], Some(&extra), Context::cpu(0))
        .err()
        .expect("a file with an extra parameter was accepted");
    match &err {
        Error::ParameterLoadMismatch {
            missing,
            unexpected,
            ..
        } => {
            assert!(missing.is_empty(), "{missing:?}");
            assert_eq!(unexpected, &["stray_weight"]);
        }
        e => panic!("expected ParameterLoadMismatch, got {e:?}"),
    }
    assert!(err.to_string().contains("stray_weight"), "{err}");

    // The exact set loads and runs.
    let ok = dir.join("ok.params");
    save_params(&ok, &[("arg:fc_weight", w), ("arg:fc_bias", b)]);
    let net = SymbolBlock::imports(&json, &["data"], Some(&ok), Context::cpu(0)).unwrap();
    let y = net.forward(&nd::ones(&[1, 3], None).unwrap()).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![3.0, 3.0]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn symbol_block_infers_parameter_shapes_on_the_first_forward() {
    let data = Symbol::var("data");
    let conv = Convolution::new([3, 3], 4)
        .name("conv")
        .build(&data)
        .unwrap();
    let bn = BatchNorm::new().name("bn").build(&conv).unwrap();
    let fc = FullyConnected::new(3).name("fc").build(&bn).unwrap();
    let net = SymbolBlock::new(fc, &["data"], None).unwrap();
    let params = net.collect_params().unwrap();
    let mut keys = params.keys();
    keys.sort();
    assert_eq!(
        keys,
        [
            "bn_beta",
            "bn_gamma",
            "bn_moving_mean",
            "bn_moving_var",
            "conv_bias",
            "conv_weight",
            "fc_bias",
            "fc_weight"
        ]
    );
    // The auxiliary states take no gradient.
    assert_eq!(
        params.get_param("bn_moving_mean").unwrap().grad_req(),
        GradReq::Null
    );
    assert_eq!(
        params.get_param("fc_weight").unwrap().grad_req(),
        GradReq::Write
    );
    // Unknown before the first forward (the input channels and fc's input size).
    let known = |n: &str| {
        params
            .get_param(n)
            .unwrap()
            .shape()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|&d| d > 0))
    };
    assert!(!known("conv_weight"));
    assert!(!known("fc_weight"));
    net.initialize(Some(init::Uniform::new(0.1).into()), Context::cpu(0))
        .unwrap();
    assert!(
        params.get_param("fc_weight").unwrap().data(None).is_err(),
        "initialization is deferred until the shapes are known"
    );
    let x = nd::ones(&[2, 5, 6, 7], None).unwrap();
    let y = net.forward(&x).unwrap();
    assert_eq!(y.shape(), &[2, 3]);
    let shape = |n: &str| params.get_param(n).unwrap().shape().unwrap();
    assert_eq!(shape("conv_weight"), [4, 5, 3, 3]);
    assert_eq!(shape("conv_bias"), [4]);
    assert_eq!(shape("bn_gamma"), [4]);
    assert_eq!(shape("bn_moving_var"), [4]);
    assert_eq!(shape("fc_weight"), [3, 4 * 4 * 5]);
    // Every parameter, the moving statistics included, took the block's initializer (as in
    // MXNet 1.9.1, whose SymbolBlock does not read the variables' `__init__`).
    for name in ["bn_moving_var", "bn_moving_mean", "bn_gamma", "fc_bias"] {
        let v = params.get_param(name).unwrap().data(None).unwrap();
        let v = v.to_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| x.abs() <= 0.1), "{name}: {v:?}");
        assert!(v.iter().any(|x| *x != 0.0), "{name}: {v:?}");
    }
    // A second input of another batch size runs with the same parameters.
    assert_eq!(
        net.forward(&nd::ones(&[1, 5, 6, 7], None).unwrap())
            .unwrap()
            .shape(),
        &[1, 3]
    );
}

#[test]
fn symbol_block_forward_multi_and_input_errors() {
    let (a, b) = (Symbol::var("a"), Symbol::var("b"));
    let s = Elemwise::new(BinaryOp::Mul).build(&a, &b).unwrap();
    let t = Broadcast::new(BinaryOp::Add).build(&s, &a).unwrap();
    let g = Symbol::group(&[s, t]).unwrap();
    let net = SymbolBlock::new(g, &["a", "b"], None).unwrap();
    assert!(net.collect_params().unwrap().keys().is_empty());
    let x = a64(&[1.0, 2.0], &[2]);
    let y = a64(&[3.0, 4.0], &[2]);
    let out = net.forward_multi(&[x.clone(), y.clone()]).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].to_f64_vec(), [3.0, 8.0]);
    assert_eq!(out[1].to_f64_vec(), [4.0, 10.0]);
    assert!(matches!(
        net.forward_multi(std::slice::from_ref(&x)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        SymbolBlock::new(Symbol::var("a"), &["nope"], None),
        Err(Error::InvalidArgument { .. })
    ));
}

fn mlp() -> Sequential {
    let net = Sequential::new();
    {
        let _s = net.name_scope();
        net.add(Dense::builder(8).in_units(5).build().unwrap());
        net.add(ActLayer::new(ActType::Tanh));
        net.add(Dense::builder(3).in_units(8).build().unwrap());
    }
    net
}

#[test]
fn export_then_imports_round_trips_a_sequential() {
    let dir = tmpdir("export");
    let net = mlp();
    net.initialize(Some(init::Xavier::default().into()), Context::cpu(0))
        .unwrap();
    let x = nd::array(
        &(0..20).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(),
        &[4, 5],
        None,
    )
    .unwrap();
    let want = net.forward(&x).unwrap();
    let prefix = dir.join("mlp");
    net.export(&prefix, 7).unwrap();
    let json_path = dir.join("mlp-symbol.json");
    let params_path = dir.join("mlp-0007.params");
    assert!(json_path.exists() && params_path.exists());

    let back =
        SymbolBlock::imports(&json_path, &["data"], Some(&params_path), Context::cpu(0)).unwrap();
    let got = back.forward(&x).unwrap();
    assert_eq!(got.shape(), &[4, 3]);
    assert_eq!(got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    // Same parameter values, by position in the graph (names are gluon's, not asserted).
    let ours = net.collect_params().unwrap();
    let theirs = back.collect_params().unwrap();
    assert_eq!(ours.keys().len(), 4);
    assert_eq!(theirs.keys().len(), 4);

    // The graph file: three operators with MXNet's ops and attributes.
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let nodes = j["nodes"].as_array().unwrap();
    let ops: Vec<&str> = nodes
        .iter()
        .map(|n| n["op"].as_str().unwrap())
        .filter(|op| *op != "null")
        .collect();
    assert_eq!(ops, ["FullyConnected", "Activation", "FullyConnected"]);
    let op_nodes: Vec<&serde_json::Value> = nodes.iter().filter(|n| n["op"] != "null").collect();
    assert_eq!(op_nodes[0]["attrs"]["num_hidden"], "8");
    assert_eq!(op_nodes[1]["attrs"]["act_type"], "tanh");
    assert_eq!(op_nodes[2]["attrs"]["num_hidden"], "3");
    for fc in [op_nodes[0], op_nodes[2]] {
        if let Some(nb) = fc["attrs"].get("no_bias") {
            assert_eq!(nb, "False");
        }
        if let Some(fl) = fc["attrs"].get("flatten") {
            assert_eq!(fl, "True");
        }
        assert_eq!(
            fc["inputs"].as_array().unwrap().len(),
            3,
            "data, weight, bias"
        );
    }
    // arg_nodes: exactly the variables; the data variable first.
    let vars: Vec<u64> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n["op"] == "null")
        .map(|(i, _)| i as u64)
        .collect();
    let arg_nodes: Vec<u64> = j["arg_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(arg_nodes, vars);
    assert_eq!(vars.len(), 5);
    assert_eq!(nodes[vars[0] as usize]["name"], "data");
    // The single head is the last node's output 0.
    let last = nodes.len() as u64 - 1;
    assert_eq!(j["heads"], serde_json::json!([[last, 0, 0]]));
    assert_eq!(nodes[last as usize]["op"], "FullyConnected");
    // The FC nodes read the variables the parameter file holds, as arg: entries.
    let loaded = nd::load(&params_path).unwrap();
    let mut file_keys: Vec<String> = loaded
        .arrays()
        .names()
        .unwrap()
        .into_iter()
        .map(String::from)
        .collect();
    file_keys.sort();
    let mut graph_keys: Vec<String> = vars[1..]
        .iter()
        .map(|&i| format!("arg:{}", nodes[i as usize]["name"].as_str().unwrap()))
        .collect();
    graph_keys.sort();
    assert_eq!(file_keys, graph_keys);
    std::fs::remove_dir_all(&dir).ok();
}
