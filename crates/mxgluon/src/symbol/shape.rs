//! Per-operator shape and type rules (MXNet 1.9.1's `FInferShape` / `FInferType`), forward and
//! backward: each rule reads the shapes known so far for a node's inputs and outputs and fills
//! in what follows from them, or reports a contradiction.
//!
//! Shapes here use MXNet's internal convention: `None` is an unknown shape, `-1` an unknown
//! dimension. (The public API converts to the crate's `0` = unknown dimension.)

use super::ops::{Layout, LeakyActType, OpParams, PoolingConvention};
use crate::dtype::DType;

/// A shape being inferred: `None` unknown, `-1` an unknown dimension.
pub(crate) type TShape = Option<Vec<i64>>;

/// Which slot of a node a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    In(usize),
    Out(usize),
}

/// A contradiction found by a rule.
#[derive(Debug)]
pub(crate) struct RuleError {
    pub(crate) slot: Option<Slot>,
    pub(crate) msg: String,
}

type R<T> = std::result::Result<T, RuleError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(RuleError {
        slot: None,
        msg: msg.into(),
    })
}

/// `(2, 3)` with `?` for unknown dimensions, `None` for an unknown shape.
pub(crate) fn show(s: &TShape) -> String {
    match s {
        None => "None".into(),
        Some(d) => {
            let parts: Vec<String> = d
                .iter()
                .map(|&x| if x < 0 { "?".into() } else { x.to_string() })
                .collect();
            match parts.len() {
                1 => format!("({},)", parts[0]),
                _ => format!("({})", parts.join(", ")),
            }
        }
    }
}

pub(crate) fn is_known(s: &TShape) -> bool {
    s.as_ref().is_some_and(|d| d.iter().all(|&x| x >= 0))
}

/// Number of unknown dimensions (1 for an unknown shape).
pub(crate) fn num_unknown(s: &TShape) -> usize {
    match s {
        None => 1,
        Some(d) => d.iter().filter(|&&x| x < 0).count(),
    }
}

/// MXNet's `shape_assign`: merges `x` into `y`; false on a contradiction.
pub(crate) fn shape_assign(y: &mut TShape, x: &TShape) -> bool {
    let Some(xs) = x else { return true };
    match y {
        None => {
            *y = Some(xs.clone());
            true
        }
        Some(ys) if ys.len() != xs.len() => false,
        Some(ys) => {
            for (a, &b) in ys.iter_mut().zip(xs) {
                if *a < 0 {
                    *a = b;
                } else if b >= 0 && *a != b {
                    return false;
                }
            }
            true
        }
    }
}

/// `SHAPE_ASSIGN_CHECK`.
fn assign(slots: &mut [TShape], i: usize, x: TShape, slot: fn(usize) -> Slot) -> R<()> {
    let before = slots[i].clone();
    if shape_assign(&mut slots[i], &x) {
        Ok(())
    } else {
        Err(RuleError {
            slot: Some(slot(i)),
            msg: format!(
                "shape inconsistent: provided {}, inferred {}",
                show(&before),
                show(&x)
            ),
        })
    }
}

fn assign_in(ins: &mut [TShape], i: usize, x: TShape) -> R<()> {
    assign(ins, i, x, Slot::In)
}

fn assign_out(outs: &mut [TShape], i: usize, x: TShape) -> R<()> {
    assign(outs, i, x, Slot::Out)
}

/// Product of dimensions; `-1` if any is unknown; an error on overflow.
fn prod(d: &[i64]) -> R<i64> {
    if d.iter().any(|&x| x < 0) {
        return Ok(-1);
    }
    d.iter().try_fold(1i64, |a, &b| {
        a.checked_mul(b).ok_or_else(|| RuleError {
            slot: None,
            msg: "the number of elements overflows".into(),
        })
    })
}

fn to_i64(v: i128) -> R<i64> {
    i64::try_from(v).or_else(|_| err("a dimension overflows"))
}

/// `axis` in `[-ndim, ndim)`, normalized.
fn check_axis(axis: i64, ndim: usize, what: &str) -> R<usize> {
    let n = ndim as i64;
    if axis < -n || axis >= n {
        return err(format!(
            "{what} {axis} is out of range for {ndim} dimensions"
        ));
    }
    Ok(if axis < 0 { axis + n } else { axis } as usize)
}

/// MXNet's `ElemwiseAttr` with reverse inference: every input and output gets the same value.
fn unify<T: Clone + PartialEq>(
    ins: &mut [T],
    outs: &mut [T],
    merge: impl Fn(&mut T, &T) -> bool,
    show: impl Fn(&T) -> String,
    empty: T,
) -> R<T> {
    let mut d = empty;
    for (i, v) in ins.iter().enumerate() {
        if !merge(&mut d, v) {
            return Err(RuleError {
                slot: Some(Slot::In(i)),
                msg: format!("expected {}, got {}", show(&d), show(v)),
            });
        }
    }
    for (i, v) in outs.iter().enumerate() {
        if !merge(&mut d, v) {
            return Err(RuleError {
                slot: Some(Slot::Out(i)),
                msg: format!("expected {}, got {}", show(&d), show(v)),
            });
        }
    }
    for (i, v) in ins.iter_mut().enumerate() {
        if !merge(v, &d) {
            return Err(RuleError {
                slot: Some(Slot::In(i)),
                msg: format!("expected {}, got {}", show(&d), show(v)),
            });
        }
    }
    for (i, v) in outs.iter_mut().enumerate() {
        if !merge(v, &d) {
            return Err(RuleError {
                slot: Some(Slot::Out(i)),
                msg: format!("expected {}, got {}", show(&d), show(v)),
            });
        }
    }
    Ok(d)
}

fn elemwise_shape(ins: &mut [TShape], outs: &mut [TShape]) -> R<bool> {
    let d = unify(ins, outs, shape_assign, show, None)?;
    Ok(is_known(&d))
}

/// Channel-first order of a layout's dimensions: `perm[i]` is the position in the layout of
/// the `i`-th channel-first dimension.
fn to_channel_first(d: &[i64], layout: Layout) -> Vec<i64> {
    if !layout.channels_last() {
        return d.to_vec();
    }
    let n = d.len();
    let mut v = vec![d[0], d[n - 1]];
    v.extend_from_slice(&d[1..n - 1]);
    v
}

fn from_channel_first(d: &[i64], layout: Layout) -> Vec<i64> {
    if !layout.channels_last() {
        return d.to_vec();
    }
    let mut v = vec![d[0]];
    v.extend_from_slice(&d[2..]);
    v.push(d[1]);
    v
}

/// Infers shapes for one node. `Ok(false)` means "not enough information yet".
pub(crate) fn infer_shape(p: &OpParams, ins: &mut [TShape], outs: &mut [TShape]) -> R<bool> {
    match p {
        OpParams::FullyConnected(p) => {
            let Some(mut d) = ins[0].clone() else {
                return Ok(false);
            };
            let prev_out = outs[0].clone();
            if d.is_empty() {
                return err("data must have at least one dimension");
            }
            let num_input = if p.flatten {
                prod(&d[1..])?
            } else {
                d[d.len() - 1]
            };
            let h = p.num_hidden as i64;
            assign_in(ins, 1, Some(vec![h, num_input]))?;
            if !p.no_bias {
                let mut b = ins[2].clone();
                if !shape_assign(&mut b, &Some(vec![h])) {
                    b = ins[2].clone();
                    if !shape_assign(&mut b, &Some(vec![h, 1])) {
                        return Err(RuleError {
                            slot: Some(Slot::In(2)),
                            msg: format!(
                                "unexpected shape {} for bias, expected ({h},)",
                                show(&ins[2])
                            ),
                        });
                    }
                }
                ins[2] = b;
            }
            let out = if p.flatten {
                vec![d[0], h]
            } else {
                let mut o = d.clone();
                *o.last_mut().unwrap_or(&mut 0) = h;
                o
            };
            assign_out(outs, 0, Some(out))?;
            if let Some(o) = prev_out {
                if let Some(&o0) = o.first() {
                    d[0] = o0;
                    assign_in(ins, 0, Some(d))?;
                }
            }
            Ok(true)
        }
        OpParams::Convolution(p) => {
            let Some(dl) = ins[0].clone() else {
                return Ok(false);
            };
            let k = p.kernel.len();
            if dl.len() != k + 2 {
                return err(format!(
                    "a {k}-D convolution needs {}-D data ({}), got {}",
                    k + 2,
                    p.layout,
                    show(&ins[0])
                ));
            }
            let mut d = to_channel_first(&dl, p.layout);
            let g = p.num_group as i64;
            let nf = p.num_filter as i64;
            let mut w = vec![nf / g, if d[1] >= 0 { d[1] / g } else { -1 }];
            w.extend(p.kernel.iter().map(|&x| x as i64));
            let mut w = from_channel_first(&w, p.layout);
            w[0] *= g;
            assign_in(ins, 1, Some(w))?;
            if !p.no_bias {
                assign_in(ins, 2, Some(vec![nf]))?;
            }
            if d[1] >= 0 && d[1] % g != 0 {
                return err(format!(
                    "the input channels {} are not divisible by num_group {g}",
                    d[1]
                ));
            }
            let mut o = vec![d[0], nf];
            for i in 0..k {
                let x = d[2 + i];
                if x < 0 {
                    o.push(-1);
                    continue;
                }
                let padded = x as i128 + 2 * p.pad[i] as i128;
                let dk = p.dilated_kernel(i) as i128;
                if dk > padded {
                    return err(format!(
                        "kernel size {} (dilated) exceeds the padded input size {padded}",
                        dk
                    ));
                }
                o.push(to_i64((padded - dk) / p.stride[i] as i128 + 1)?);
            }
            assign_out(outs, 0, Some(from_channel_first(&o, p.layout)))?;
            // Back-fill the batch size, and spatial sizes where the stride is 1.
            let Some(ol) = outs[0].clone() else {
                return Ok(true);
            };
            let o = to_channel_first(&ol, p.layout);
            d[0] = o[0];
            for i in 0..k {
                if o[2 + i] >= 0 && p.stride[i] == 1 {
                    let v =
                        o[2 + i] as i128 + p.dilated_kernel(i) as i128 - 1 - 2 * p.pad[i] as i128;
                    if v > 0 {
                        d[2 + i] = to_i64(v)?;
                    }
                }
            }
            assign_in(ins, 0, Some(from_channel_first(&d, p.layout)))?;
            Ok(true)
        }
        OpParams::BatchNorm(p) => {
            let Some(d) = ins[0].clone() else {
                return Ok(false);
            };
            let axis = check_axis(p.axis, d.len(), "channel axis")?;
            let c = d[axis];
            for i in 1..5 {
                assign_in(ins, i, Some(vec![c]))?;
            }
            assign_out(outs, 0, Some(d))?;
            assign_out(outs, 1, Some(vec![c]))?;
            assign_out(outs, 2, Some(vec![c]))?;
            Ok(true)
        }
        OpParams::Pooling(p) => pooling_shape(p, ins, outs, p_num_outputs(p)),
        OpParams::Activation(_) | OpParams::Elemwise(_) | OpParams::Clip(_) => {
            elemwise_shape(ins, outs)
        }
        OpParams::LeakyReLU(p) => {
            let Some(d) = ins[0].clone() else {
                return Ok(false);
            };
            if p.act_type == LeakyActType::Prelu && ins[1].is_none() {
                if d.len() < 2 {
                    return err("prelu needs data with a channel axis (at least 2 dimensions)");
                }
                ins[1] = Some(vec![d[1]]);
            }
            for i in 0..outs.len() {
                assign_out(outs, i, Some(d.clone()))?;
            }
            Ok(true)
        }
        OpParams::Flatten => {
            if !is_known(&ins[0]) {
                return Ok(false);
            }
            let d = ins[0].clone().unwrap_or_default();
            if d.is_empty() {
                return err("cannot flatten a 0-D array");
            }
            let rest = prod(&d[1..])?;
            assign_out(outs, 0, Some(vec![d[0], rest]))?;
            Ok(true)
        }
        OpParams::Broadcast(_) => {
            let (Some(l), Some(r)) = (ins[0].clone(), ins[1].clone()) else {
                return Ok(false);
            };
            if l == r {
                assign_out(outs, 0, Some(l.clone()))?;
                return Ok(is_known(&Some(l)));
            }
            let n = l.len().max(r.len());
            let mut out = vec![-1; n];
            for (i, o) in out.iter_mut().enumerate() {
                let a = if i >= n - l.len() {
                    l[i - (n - l.len())]
                } else {
                    1
                };
                let b = if i >= n - r.len() {
                    r[i - (n - r.len())]
                } else {
                    1
                };
                if a < 0 || b < 0 {
                    continue;
                }
                if a != b {
                    if a != 1 && b != 1 {
                        return err(format!(
                            "operands could not be broadcast together with shapes {} {}",
                            show(&Some(l.clone())),
                            show(&Some(r.clone()))
                        ));
                    }
                    *o = if a == 1 { b } else { a };
                } else {
                    *o = a;
                }
            }
            assign_out(outs, 0, Some(out.clone()))?;
            Ok(is_known(&Some(l)) && is_known(&Some(r)) && is_known(&Some(out)))
        }
        OpParams::Concat(p) => {
            let mut dshape: TShape = None;
            let mut size: i128 = 0;
            let mut has_unknown = false;
            let mut axis = 0usize;
            for s in ins.iter().flatten() {
                axis = check_axis(p.dim, s.len(), "concat dim")?;
                has_unknown |= s[axis] < 0;
                size += s[axis] as i128;
                let mut t = s.clone();
                t[axis] = -1;
                if !shape_assign(&mut dshape, &Some(t)) {
                    return err(format!(
                        "incompatible input shapes: expected {} (any size along axis {axis}), \
                         got {}",
                        show(&dshape),
                        show(&Some(s.clone()))
                    ));
                }
            }
            if let Some(o) = &outs[0] {
                axis = check_axis(p.dim, o.len(), "concat dim")?;
                let mut t = o.clone();
                t[axis] = -1;
                if !shape_assign(&mut dshape, &Some(t)) {
                    return Err(RuleError {
                        slot: Some(Slot::Out(0)),
                        msg: format!(
                            "incompatible output shape: expected {}, got {}",
                            show(&dshape),
                            show(&outs[0])
                        ),
                    });
                }
            }
            let Some(mut d) = dshape else {
                return Ok(false);
            };
            if d.is_empty() {
                return err("zero-dimensional arrays cannot be concatenated");
            }
            for i in 0..ins.len() {
                assign_in(ins, i, Some(d.clone()))?;
            }
            if !has_unknown {
                d[axis] = to_i64(size)?;
            }
            assign_out(outs, 0, Some(d.clone()))?;
            Ok(is_known(&Some(d)))
        }
        OpParams::Dropout(p) => {
            let Some(d) = ins[0].clone() else {
                return Ok(false);
            };
            assign_out(outs, 0, Some(d.clone()))?;
            let mut mask = d;
            for &a in &p.axes {
                if a >= mask.len() {
                    return err(format!(
                        "dropout axis {a} is out of range for {} dimensions",
                        mask.len()
                    ));
                }
                mask[a] = 1;
            }
            assign_out(outs, 1, Some(mask))?;
            Ok(true)
        }
        OpParams::Softmax(p) => {
            if p.use_length {
                if let Some(d) = &ins[0] {
                    let axis = check_axis(p.axis, d.len(), "softmax axis")?;
                    let mut l: Vec<i64> = d
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != axis)
                        .map(|(_, &x)| x)
                        .collect();
                    if l.is_empty() {
                        l.push(1);
                    }
                    assign_in(ins, 1, Some(l))?;
                }
            }
            // Forward only: MXNet unifies a copy of the data shape with the output.
            let mut tmp = [ins[0].clone()];
            elemwise_shape(&mut tmp, outs)
        }
        OpParams::SoftmaxOutput(p) => {
            let Some(d) = ins[0].clone() else {
                return Ok(false);
            };
            if ins[1].as_ref() != Some(&d) {
                if p.multi_output {
                    if d.len() < 2 {
                        return err("multi_output needs data with at least 2 dimensions");
                    }
                    let rest = if is_known(&Some(d.clone())) && d[0] > 0 && d[1] > 0 {
                        prod(&d)? / d[0] / d[1]
                    } else {
                        -1
                    };
                    let l1 = vec![d[0], rest];
                    let mut l2 = vec![d[0]];
                    l2.extend_from_slice(&d[2..]);
                    let mut l3 = d.clone();
                    l3[1] = 1;
                    match &ins[1] {
                        None => ins[1] = Some(l1),
                        Some(l) if *l == l1 || *l == l2 || *l == l3 => {}
                        Some(_) => {
                            return Err(RuleError {
                                slot: Some(Slot::In(1)),
                                msg: format!(
                                    "expecting a label of shape {} or {}, got {}",
                                    show(&Some(l1)),
                                    show(&Some(l2)),
                                    show(&ins[1])
                                ),
                            })
                        }
                    }
                } else {
                    if d.is_empty() {
                        return err("data must have at least one dimension");
                    }
                    assign_in(ins, 1, Some(d[..d.len() - 1].to_vec()))?;
                }
            }
            assign_out(outs, 0, Some(d))?;
            Ok(true)
        }
        OpParams::Reshape(p) => reshape_shape(p, ins, outs),
        OpParams::Unknown { .. } => Ok(false),
    }
}

fn p_num_outputs(p: &super::ops::PoolingParam) -> usize {
    if p.has_workspace() {
        2
    } else {
        1
    }
}

fn pooling_shape(
    p: &super::ops::PoolingParam,
    ins: &mut [TShape],
    outs: &mut [TShape],
    nout: usize,
) -> R<bool> {
    let Some(d) = ins[0].clone() else {
        return Ok(false);
    };
    let n = d.len();
    if p.pooling_convention == PoolingConvention::Same {
        if n != 3 {
            return err("the 'same' pooling convention supports 1-D pooling only (3-D data)");
        }
        if p.pad.iter().any(|&x| x != 0) {
            return err("the 'same' pooling convention does not allow padding");
        }
    }
    if !(3..=5).contains(&n) {
        return err(format!(
            "pooling needs 3-D, 4-D or 5-D data (batch, channel, spatial...), got {}",
            show(&ins[0])
        ));
    }
    let layout = p.layout.unwrap_or(Layout::default_for(n - 2));
    if layout.spatial_dims() != n - 2 {
        return err(format!(
            "layout {layout} does not fit {n}-D data {}",
            show(&ins[0])
        ));
    }
    let oshape = if p.global_pool {
        let c = if layout.channels_last() { n - 1 } else { 1 };
        let mut o = d.clone();
        for (i, x) in o.iter_mut().enumerate().skip(1) {
            if i != c {
                *x = 1;
            }
        }
        o
    } else if p.kernel.is_empty() {
        return Ok(false);
    } else {
        let k = p.kernel.len();
        if n != k + 2 {
            return err(format!(
                "a {k}-D pooling needs {}-D data, got {}",
                k + 2,
                show(&ins[0])
            ));
        }
        let dc = to_channel_first(&d, layout);
        let mut o = dc.clone();
        for i in 0..k {
            let x = dc[2 + i];
            if x < 0 {
                continue;
            }
            let padded = x as i128 + 2 * p.pad[i] as i128;
            let kk = p.kernel[i] as i128;
            let s = p.stride[i] as i128;
            if kk > padded {
                return err(format!(
                    "kernel size ({kk}) exceeds input ({x} padded to {padded})"
                ));
            }
            let v = match p.pooling_convention {
                PoolingConvention::Valid => 1 + (padded - kk) / s,
                PoolingConvention::Same if k == 1 => (padded + s - 1) / s,
                _ => 1 + (padded - kk + s - 1) / s,
            };
            o[2 + i] = to_i64(v)?;
        }
        from_channel_first(&o, layout)
    };
    for i in 0..nout {
        assign_out(outs, i, Some(oshape.clone()))?;
    }
    Ok(true)
}

/// MXNet's `InferReshapeShape` with the special codes 0 (copy), -1 (infer), -2 (copy the
/// rest), -3 (merge two), -4 (split one into the next two codes).
fn infer_reshape(codes: &[i64], d: &[i64], reverse: bool) -> R<Vec<i64>> {
    let mut src: Vec<i64> = d.to_vec();
    let mut par: Vec<i64> = codes.to_vec();
    if reverse {
        src.reverse();
        par.reverse();
    }
    let mut tmp: Vec<i64> = Vec::new();
    let mut si = 0usize;
    let mut inf: Option<usize> = None;
    let mut i = 0usize;
    while i < par.len() {
        match par[i] {
            0 => {
                let Some(&v) = src.get(si) else {
                    return err(format!(
                        "reshape code 0 at position {i} has no source dimension to copy"
                    ));
                };
                tmp.push(v);
                si += 1;
            }
            -1 => {
                if inf.is_some() {
                    return err("only one dimension can be inferred (-1)");
                }
                inf = Some(tmp.len());
                tmp.push(1);
                si += 1;
            }
            -2 => {
                while si < src.len() {
                    tmp.push(src[si]);
                    si += 1;
                }
            }
            -3 => {
                if si + 1 >= src.len() {
                    return err("reshape code -3 needs two source dimensions to merge");
                }
                let (a, b) = (src[si], src[si + 1]);
                si += 2;
                tmp.push(if a < 0 || b < 0 {
                    -1
                } else {
                    to_i64(a as i128 * b as i128)?
                });
            }
            -4 => {
                if i + 2 >= par.len() {
                    return err("reshape code -4 must be followed by two dimensions");
                }
                let Some(&d0) = src.get(si) else {
                    return err("reshape code -4 has no source dimension to split");
                };
                si += 1;
                let (mut d1, mut d2) = (par[i + 1], par[i + 2]);
                i += 2;
                if d1 == -1 && d2 == -1 {
                    return err("split dimensions cannot both be -1");
                }
                if d1 < -1 || d2 < -1 || d1 == 0 || d2 == 0 {
                    return err("split dimensions must be positive or -1");
                }
                if d1 == -1 && d0 >= 0 {
                    d1 = d0 / d2;
                }
                if d2 == -1 && d0 >= 0 {
                    d2 = d0 / d1;
                }
                if d0 >= 0 && d1 as i128 * d2 as i128 != d0 as i128 {
                    return err(format!(
                        "split dimensions {d1}, {d2} do not divide the source dimension {d0}"
                    ));
                }
                tmp.push(d1);
                tmp.push(d2);
            }
            v => {
                tmp.push(v);
                si += 1;
            }
        }
        i += 1;
    }
    if let Some(k) = inf {
        if d.iter().all(|&x| x >= 0) {
            let total = prod(d)?;
            let rest = prod(&tmp)?;
            if rest < 0 {
                tmp[k] = -1;
            } else if rest == 0 || total % rest != 0 {
                return err(format!(
                    "cannot infer the -1 dimension: {} elements do not split into blocks of {rest}",
                    total
                ));
            } else {
                tmp[k] = total / rest;
            }
        } else {
            tmp[k] = -1;
        }
    }
    if reverse {
        tmp.reverse();
    }
    Ok(tmp)
}

/// MXNet's `ReverseReshapeInferShape`: fills the one unknown input dimension from a known
/// output.
fn reverse_reshape(input: &mut TShape, out: &TShape) -> R<bool> {
    let (Some(inp), Some(o)) = (input.as_mut(), out.as_ref()) else {
        return Ok(false);
    };
    let out_known = o.iter().all(|&x| x >= 0);
    if inp.iter().all(|&x| x >= 0) && out_known {
        if prod(inp)? != prod(o)? {
            return err(format!(
                "cannot reshape {} into {}: the sizes differ",
                show(&Some(inp.clone())),
                show(&Some(o.clone()))
            ));
        }
        return Ok(true);
    }
    if !out_known {
        return Ok(false);
    }
    let unknown: Vec<usize> = (0..inp.len()).filter(|&i| inp[i] < 0).collect();
    if unknown.len() != 1 {
        return Ok(false);
    }
    let known = prod(&inp.iter().copied().filter(|&x| x >= 0).collect::<Vec<_>>())?;
    let total = prod(o)?;
    if known == 0 || total % known != 0 {
        return err(format!(
            "cannot reshape {} into {}",
            show(&Some(inp.clone())),
            show(&Some(o.clone()))
        ));
    }
    inp[unknown[0]] = total / known;
    Ok(true)
}

fn reshape_shape(p: &super::ops::ReshapeParam, ins: &mut [TShape], outs: &mut [TShape]) -> R<bool> {
    let Some(d) = ins[0].clone() else {
        return Ok(false);
    };
    let oshape = if !p.shape.is_empty() {
        infer_reshape(&p.shape, &d, p.reverse)?
    } else if let Some(t) = &p.target_shape {
        let mut o = t.clone();
        let start = usize::from(p.keep_highest);
        if p.keep_highest {
            if o.is_empty() || d.is_empty() {
                return err("keep_highest needs a non-empty target_shape and data");
            }
            o[0] = d[0];
        }
        let zeros: Vec<usize> = (start..o.len()).filter(|&i| o[i] == 0).collect();
        if zeros.len() == 1 {
            o[zeros[0]] = 1;
            let total = prod(&d)?;
            let rest = prod(&o)?;
            o[zeros[0]] = if total < 0 || rest <= 0 {
                -1
            } else {
                total / rest
            };
        }
        o
    } else {
        return if is_known(&outs[0]) {
            let out = outs[0].clone();
            reverse_reshape(&mut ins[0], &out)
        } else {
            Ok(false)
        };
    };
    let oshape = Some(oshape);
    reverse_reshape(&mut ins[0], &oshape)?;
    assign_out(outs, 0, oshape)?;
    let out = outs[0].clone();
    reverse_reshape(&mut ins[0], &out)
}

// ------------------------------------------------------------------------------------ types

/// A dtype being inferred.
pub(crate) type TType = Option<DType>;

pub(crate) fn show_type(t: &TType) -> String {
    match t {
        None => "unknown".into(),
        Some(d) => d.name().into(),
    }
}

pub(crate) fn type_assign(y: &mut TType, x: &TType) -> bool {
    match (y.as_ref(), x) {
        (_, None) => true,
        (None, Some(v)) => {
            *y = Some(*v);
            true
        }
        (Some(a), Some(b)) => a == b,
    }
}

fn assign_type(slots: &mut [TType], i: usize, x: TType, slot: fn(usize) -> Slot) -> R<()> {
    let before = slots[i];
    if type_assign(&mut slots[i], &x) {
        Ok(())
    } else {
        Err(RuleError {
            slot: Some(slot(i)),
            msg: format!(
                "type inconsistent: provided {}, inferred {}",
                show_type(&before),
                show_type(&x)
            ),
        })
    }
}

fn elemwise_type(ins: &mut [TType], outs: &mut [TType]) -> R<bool> {
    Ok(unify(ins, outs, type_assign, show_type, None)?.is_some())
}

/// The dtype of the first input, else of the first output; then every input must have it
/// (MXNet's rule for Convolution and SoftmaxOutput).
fn first_input_type(ins: &mut [TType], outs: &mut [TType]) -> R<bool> {
    let Some(d) = ins[0].or(outs[0]) else {
        return Ok(false);
    };
    assign_type(outs, 0, Some(d), Slot::Out)?;
    for i in 0..ins.len() {
        assign_type(ins, i, Some(d), Slot::In)?;
    }
    Ok(true)
}

/// Infers dtypes for one node. `Ok(false)` means "not enough information yet".
pub(crate) fn infer_type(p: &OpParams, ins: &mut [TType], outs: &mut [TType]) -> R<bool> {
    match p {
        OpParams::Convolution(_) | OpParams::SoftmaxOutput(_) => first_input_type(ins, outs),
        OpParams::BatchNorm(_) => {
            let Some(d) = ins[0].or(outs[0]) else {
                return Ok(false);
            };
            let acc = match d {
                DType::Float32 | DType::Float16 | DType::BFloat16 => DType::Float32,
                DType::Float64 => DType::Float64,
                other => {
                    return Err(RuleError {
                        slot: Some(Slot::In(0)),
                        msg: format!("BatchNorm supports floating-point data only, got {other}"),
                    })
                }
            };
            assign_type(ins, 0, Some(d), Slot::In)?;
            assign_type(outs, 0, Some(d), Slot::Out)?;
            for i in 1..outs.len() {
                assign_type(outs, i, Some(acc), Slot::Out)?;
            }
            for i in 1..ins.len() {
                assign_type(ins, i, Some(acc), Slot::In)?;
            }
            Ok(true)
        }
        OpParams::Pooling(p) => {
            let Some(d) = ins[0] else {
                return Ok(false);
            };
            assign_type(outs, 0, Some(d), Slot::Out)?;
            if p.has_workspace() {
                assign_type(outs, 1, Some(DType::Int32), Slot::Out)?;
            }
            Ok(true)
        }
        OpParams::Dropout(_) => {
            let Some(d) = ins[0] else {
                return Ok(false);
            };
            assign_type(outs, 0, Some(d), Slot::Out)?;
            assign_type(outs, 1, Some(d), Slot::Out)?;
            Ok(true)
        }
        OpParams::Softmax(p) => match p.dtype {
            Some(t) => {
                assign_type(outs, 0, Some(t), Slot::Out)?;
                if ins[0].is_none() {
                    ins[0] = outs[0];
                }
                Ok(true)
            }
            None => {
                let mut tmp = [ins[0]];
                elemwise_type(&mut tmp, outs)
            }
        },
        OpParams::Unknown { .. } => Ok(false),
        // Everything else (Concat included) unifies all inputs and outputs.
        _ => elemwise_type(ins, outs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_merges_partial_shapes() {
        let mut y = Some(vec![-1, 3]);
        assert!(shape_assign(&mut y, &Some(vec![2, -1])));
        assert_eq!(y, Some(vec![2, 3]));
        assert!(!shape_assign(&mut y, &Some(vec![2, 4])));
        assert!(!shape_assign(&mut y, &Some(vec![2])));
        assert!(shape_assign(&mut y, &None));
    }

    #[test]
    fn reshape_codes() {
        let d = [2, 3, 4];
        assert_eq!(infer_reshape(&[4, 0, 2], &d, false).unwrap(), vec![4, 3, 2]);
        assert_eq!(infer_reshape(&[2, 0, 0], &d, false).unwrap(), vec![2, 3, 4]);
        assert_eq!(
            infer_reshape(&[6, 1, -1], &d, false).unwrap(),
            vec![6, 1, 4]
        );
        assert_eq!(
            infer_reshape(&[3, -1, 8], &d, false).unwrap(),
            vec![3, 1, 8]
        );
        assert_eq!(infer_reshape(&[-1], &d, false).unwrap(), vec![24]);
        assert_eq!(infer_reshape(&[-2], &d, false).unwrap(), vec![2, 3, 4]);
        assert_eq!(infer_reshape(&[2, -2], &d, false).unwrap(), vec![2, 3, 4]);
        assert_eq!(
            infer_reshape(&[-2, 1, 1], &d, false).unwrap(),
            vec![2, 3, 4, 1, 1]
        );
        assert_eq!(infer_reshape(&[-3, 4], &d, false).unwrap(), vec![6, 4]);
        assert_eq!(infer_reshape(&[-3, -2], &d, false).unwrap(), vec![6, 4]);
        assert_eq!(
            infer_reshape(&[-4, 1, 2, -2], &d, false).unwrap(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            infer_reshape(&[2, -4, -1, 3, -2], &d, false).unwrap(),
            vec![2, 1, 3, 4]
        );
        let d2 = [10, 5, 4];
        assert_eq!(infer_reshape(&[-1, 0], &d2, false).unwrap(), vec![40, 5]);
        assert_eq!(infer_reshape(&[-1, 0], &d2, true).unwrap(), vec![50, 4]);
        assert!(infer_reshape(&[-1, -1], &d, false).is_err());
        assert!(infer_reshape(&[5, -1], &d, false).is_err());
        assert!(infer_reshape(&[-4, 5, -1], &d, false).is_err());
    }
}
