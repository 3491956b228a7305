//! Symbols: variables and their attributes (`Parameter::var`), composition with MXNet's
//! automatic names, the list_* queries, shape and type inference (forward, backward,
//! partial, contradictions), and MXNet's graph JSON: the golden file written by MXNet 1.9.1,
//! a network built here against MXNet's own bytes, older formats, and hostile input.
//!
//! Expected values were produced by MXNet 1.9.1 (`mx.sym` in the project's venv);
//! `mxnet_symbol_live.rs` re-checks the main ones against the live interpreter.

use std::collections::BTreeMap;

use mxgluon::init;
use mxgluon::nd::ActType;
use mxgluon::symbol::ops::{BinaryOp, LeakyActType, OpParams, PoolType, PoolingConvention};
use mxgluon::symbol::{
    Activation, BatchNorm, Broadcast, Clip, Concat, Convolution, Dropout, Elemwise, Flatten,
    FullyConnected, LeakyReLU, NameManager, Pooling, Reshape, Softmax, SoftmaxOutput, Symbol,
    VarOptions,
};
use mxgluon::{DType, Error, Parameter, StorageType};
use proptest::prelude::*;

fn golden() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/mxnet-golden/mlp-symbol.json"
    );
    std::fs::read_to_string(path).expect("the MXNet golden files (shared/reference)")
}

fn attrs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn some(v: &[&[usize]]) -> Vec<Option<Vec<usize>>> {
    v.iter().map(|s| Some(s.to_vec())).collect()
}

/// `mx.sym` in MXNet 1.9.1, inside `with mx.name.NameManager():`
/// ```python
/// data = mx.sym.var('data')
/// c = mx.sym.Convolution(data, kernel=(3,3), num_filter=8, pad=(1,1))
/// b = mx.sym.BatchNorm(c, fix_gamma=False, eps=1e-5)
/// a = mx.sym.Activation(b, act_type='relu')
/// p = mx.sym.Pooling(a, kernel=(2,2), stride=(2,2))
/// f = mx.sym.Flatten(p)
/// d = mx.sym.Dropout(f, p=0.25)
/// fc = mx.sym.FullyConnected(d, num_hidden=10)
/// out = mx.sym.SoftmaxOutput(fc)
/// out.tojson()
/// ```
const MXNET_CONVNET: &str = r#"{
  "nodes": [
    {
      "op": "null", 
      "name": "data", 
      "inputs": []
    }, 
    {
      "op": "null", 
      "name": "convolution0_weight", 
      "attrs": {
        "kernel": "(3, 3)", 
        "num_filter": "8", 
        "pad": "(1, 1)"
      }, 
      "inputs": []
    }, 
    {
      "op": "null", 
      "name": "convolution0_bias", 
      "attrs": {
        "kernel": "(3, 3)", 
        "num_filter": "8", 
        "pad": "(1, 1)"
      }, 
      "inputs": []
    }, 
    {
      "op": "Convolution", 
      "name": "convolution0", 
      "attrs": {
        "kernel": "(3, 3)", 
        "num_filter": "8", 
        "pad": "(1, 1)"
      }, 
      "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    }, 
    {
      "op": "null", 
      "name": "batchnorm0_gamma", 
      "attrs": {
        "eps": "1e-05", 
        "fix_gamma": "False"
      }, 
      "inputs": []
    }, 
    {
      "op": "null", 
      "name": "batchnorm0_beta", 
      "attrs": {
        "eps": "1e-05", 
        "fix_gamma": "False"
      }, 
      "inputs": []
    }, 
    {
      "op": "null", 
      "name": "batchnorm0_moving_mean", 
      "attrs": {
        "__init__": "[\"zero\", {}]", 
        "eps": "1e-05", 
        "fix_gamma": "False"
      }, 
      "inputs": []
    }, 
    {
      "op": "null", 
      "name": "batchnorm0_moving_var", 
      "attrs": {
        "__init__": "[\"one\", {}]", 
        "eps": "1e-05", 
        "fix_gamma": "False"
      }, 
      "inputs": []
    }, 
    {
      "op": "BatchNorm", 
      "name": "batchnorm0", 
      "attrs": {
        "eps": "1e-05", 
        "fix_gamma": "False"
      }, 
      "inputs": [[3, 0, 0], [4, 0, 0], [5, 0, 0], [6, 0, 1], [7, 0, 1]]
    }, 
    {
      "op": "Activation", 
      "name": "activation0", 
      "attrs": {"act_type": "relu"}, 
      "inputs": [[8, 0, 0]]
    }, 
    {
      "op": "Pooling", 
      "name": "pooling0", 
      "attrs": {
        "kernel": "(2, 2)", 
        "stride": "(2, 2)"
      }, 
      "inputs": [[9, 0, 0]]
    }, 
    {
      "op": "Flatten", 
      "name": "flatten0", 
      "inputs": [[10, 0, 0]]
    }, 
    {
      "op": "Dropout", 
      "name": "dropout0", 
      "attrs": {"p": "0.25"}, 
      "inputs": [[11, 0, 0]]
    }, 
    {
      "op": "null", 
      "name": "fullyconnected0_weight", 
      "attrs": {"num_hidden": "10"}, 
      "inputs": []
    }, 
    {
      "op": "null", 
      "name": "fullyconnected0_bias", 
      "attrs": {"num_hidden": "10"}, 
      "inputs": []
    }, 
    {
      "op": "FullyConnected", 
      "name": "fullyconnected0", 
      "attrs": {"num_hidden": "10"}, 
      "inputs": [[12, 0, 0], [13, 0, 0], [14, 0, 0]]
    }, 
    {
      "op": "null", 
      "name": "softmaxoutput0_label", 
      "inputs": []
    }, 
    {
      "op": "SoftmaxOutput", 
      "name": "softmaxoutput0", 
      "inputs": [[15, 0, 0], [16, 0, 0]]
    }
  ], 
  "arg_nodes": [0, 1, 2, 4, 5, 6, 7, 13, 14, 16], 
  "node_row_ptr": [
    0, 
    1, 
    2, 
    3, 
    4, 
    5, 
    6, 
    7, 
    8, 
    11, 
    12, 
    14, 
    15, 
    17, 
    18, 
    19, 
    20, 
    21, 
    22
  ], 
  "heads": [[17, 0, 0]], 
  "attrs": {"mxnet_version": ["int", 10901]}
}"#;

/// The same network with our constructors.
fn convnet() -> Symbol {
    let _names = NameManager::new().enter();
    let data = Symbol::var("data");
    let c = Convolution::new([3, 3], 8)
        .pad([1, 1])
        .build(&data)
        .unwrap();
    let b = BatchNorm::new()
        .fix_gamma(false)
        .eps(1e-5)
        .build(&c)
        .unwrap();
    let a = Activation::new(ActType::Relu).build(&b).unwrap();
    let p = Pooling::new([2, 2]).stride([2, 2]).build(&a).unwrap();
    let f = Flatten::new().build(&p).unwrap();
    let d = Dropout::new(0.25).build(&f).unwrap();
    let fc = FullyConnected::new(10).build(&d).unwrap();
    SoftmaxOutput::new().build(&fc).unwrap()
}

// ------------------------------------------------------------------ variables

#[test]
fn var_attributes_use_mxnet_spellings() {
    let opts = VarOptions::new()
        .shape([2, 3])
        .dtype(DType::Float16)
        .lr_mult(2.0)
        .wd_mult(0.5)
        .init("zeros")
        .stype(StorageType::RowSparse)
        .attr("__mood__", "angry")
        .unwrap();
    let v = Symbol::var_with("w", &opts);
    assert_eq!(
        v.list_attr(),
        attrs(&[
            ("__dtype__", "2"),
            ("__init__", "zeros"),
            ("__lr_mult__", "2.0"),
            ("__mood__", "angry"),
            ("__shape__", "(2, 3)"),
            ("__storage_type__", "1"),
            ("__wd_mult__", "0.5"),
            ("lr_mult", "2.0"),
            ("wd_mult", "0.5"),
        ])
    );
    assert_eq!(v.attr("wd_mult").as_deref(), Some("0.5"));
    assert_eq!(v.attr("name").as_deref(), Some("w"));
    assert_eq!(v.attr("missing"), None);
    let small = Symbol::var_with("s", &VarOptions::new().shape([3]).lr_mult(1e-5));
    assert_eq!(small.attr("__shape__").as_deref(), Some("(3,)"));
    assert_eq!(small.attr("__lr_mult__").as_deref(), Some("1e-05"));
    assert!(matches!(
        VarOptions::new().attr("mood", "x"),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(Symbol::var("plain").list_attr().is_empty());
}

#[test]
fn parameter_var_has_exactly_the_spec_attributes() {
    // Spec §1.20, `Parameter('b').var().list_attr()`.
    let b = Parameter::new("b");
    assert_eq!(
        b.var().list_attr(),
        attrs(&[
            ("__dtype__", "0"),
            ("__lr_mult__", "1.0"),
            ("__storage_type__", "0"),
            ("__wd_mult__", "1.0"),
            ("lr_mult", "1.0"),
            ("wd_mult", "1.0"),
        ])
    );
    // Spec §1.20's full example.
    let xavier = init::create(
        r#"["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 2}]"#,
    )
    .unwrap();
    let w = Parameter::new("w")
        .with_shape([2, 3])
        .with_dtype(DType::Float16)
        .with_lr_mult(2.0)
        .with_wd_mult(0.5)
        .with_init(xavier)
        .with_stype(StorageType::RowSparse);
    assert_eq!(
        w.var().list_attr(),
        attrs(&[
            ("__dtype__", "2"),
            (
                "__init__",
                r#"["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 2}]"#
            ),
            ("__lr_mult__", "2.0"),
            ("__shape__", "(2, 3)"),
            ("__storage_type__", "1"),
            ("__wd_mult__", "0.5"),
            ("lr_mult", "2.0"),
            ("wd_mult", "0.5"),
        ])
    );
    assert_eq!(w.var().name().as_deref(), Some("w"));
}

#[test]
fn parameter_var_is_created_once() {
    let p = Parameter::new("fc_weight")
        .with_shape([0, 3])
        .with_init("zeros");
    let first = p.var();
    p.set_shape(&[2, 3]).unwrap();
    p.set_lr_mult(4.0);
    let again = p.var();
    assert!(again.ptr_eq(&first));
    assert!(again.outputs()[0].node().ptr_eq(first.outputs()[0].node()));
    assert_eq!(again.attr("__shape__").as_deref(), Some("(0, 3)"));
    assert_eq!(again.attr("__lr_mult__").as_deref(), Some("1.0"));
    // A clone of the parameter is the same parameter.
    assert!(p.clone().var().ptr_eq(&first));
    // Using it in two graphs shares the node.
    let a = FullyConnected::new(2)
        .weight(&first)
        .name("a")
        .build(&Symbol::var("x"))
        .unwrap();
    let b = FullyConnected::new(2)
        .weight(&p.var())
        .name("b")
        .build(&a)
        .unwrap();
    assert_eq!(
        b.list_arguments(),
        ["x", "fc_weight", "a_bias", "b_bias"],
        "the shared weight is one argument"
    );
}

// ------------------------------------------------------------------ composition

#[test]
fn builders_reproduce_mxnet_json_byte_for_byte() {
    let out = convnet();
    assert_eq!(out.tojson(), MXNET_CONVNET);
    assert_eq!(
        Symbol::load_json(MXNET_CONVNET).unwrap().tojson(),
        MXNET_CONVNET
    );
}

#[test]
fn list_queries_on_a_conv_net() {
    let out = convnet();
    assert_eq!(
        out.list_arguments(),
        [
            "data",
            "convolution0_weight",
            "convolution0_bias",
            "batchnorm0_gamma",
            "batchnorm0_beta",
            "fullyconnected0_weight",
            "fullyconnected0_bias",
            "softmaxoutput0_label"
        ]
    );
    assert_eq!(
        out.list_auxiliary_states(),
        ["batchnorm0_moving_mean", "batchnorm0_moving_var"]
    );
    assert_eq!(out.list_outputs(), ["softmaxoutput0_output"]);
    assert_eq!(out.list_inputs().len(), 10);
    assert_eq!(
        out.get_internals().list_outputs(),
        [
            "data",
            "convolution0_weight",
            "convolution0_bias",
            "convolution0_output",
            "batchnorm0_gamma",
            "batchnorm0_beta",
            "batchnorm0_moving_mean",
            "batchnorm0_moving_var",
            "batchnorm0_output",
            "activation0_output",
            "pooling0_output",
            "flatten0_output",
            "dropout0_output",
            "fullyconnected0_weight",
            "fullyconnected0_bias",
            "fullyconnected0_output",
            "softmaxoutput0_label",
            "softmaxoutput0_output"
        ]
    );
    let internals = out.get_internals();
    let fc = internals.output_named("fullyconnected0_output").unwrap();
    assert_eq!(fc.name().as_deref(), Some("fullyconnected0"));
    assert_eq!(fc.list_attr(), attrs(&[("num_hidden", "10")]));
    assert!(internals.output_named("nope").is_err());
    assert!(internals.output(18).is_err());
    // attr_dict: every node with attributes (MXNet 1.9.1's values).
    let ad = out.attr_dict();
    assert_eq!(ad.len(), 14);
    assert_eq!(
        ad["batchnorm0_moving_var"],
        attrs(&[
            ("__init__", r#"["one", {}]"#),
            ("eps", "1e-05"),
            ("fix_gamma", "False")
        ])
    );
    assert_eq!(
        ad["pooling0"],
        attrs(&[("kernel", "(2, 2)"), ("stride", "(2, 2)")])
    );
    assert!(!ad.contains_key("flatten0") && !ad.contains_key("data"));
}

#[test]
fn debug_str_matches_mxnet() {
    let s = convnet().debug_str();
    let expected_head = "Symbol Outputs:\n\toutput[0]=softmaxoutput0(0)\nVariable:data\n\
        Variable:convolution0_weight\nVariable:convolution0_bias\n--------------------\n\
        Op:Convolution, Name=convolution0\nInputs:\n\targ[0]=data(0) version=0\n\
        \targ[1]=convolution0_weight(0) version=0\n\targ[2]=convolution0_bias(0) version=0\n\
        Attrs:\n\tkernel=(3, 3)\n\tnum_filter=8\n\tpad=(1, 1)\n";
    assert!(s.starts_with(expected_head), "{s}");
    assert!(s.contains(
        "Op:BatchNorm, Name=batchnorm0\nInputs:\n\targ[0]=convolution0(0)\n\
         \targ[1]=batchnorm0_gamma(0) version=0\n\targ[2]=batchnorm0_beta(0) version=0\n\
         \targ[3]=batchnorm0_moving_mean(0) version=1\n\targ[4]=batchnorm0_moving_var(0) version=1\n"
    ));
    assert!(s.ends_with(
        "Op:SoftmaxOutput, Name=softmaxoutput0\nInputs:\n\targ[0]=fullyconnected0(0)\n\
         \targ[1]=softmaxoutput0_label(0) version=0\n"
    ));
    assert_eq!(Symbol::var("x").debug_str(), "Variable:x\n");
}

#[test]
fn automatic_names_and_created_inputs() {
    let _names = NameManager::new().enter();
    let x = Symbol::var("x");
    let a = FullyConnected::new(16).build(&x).unwrap();
    let b = FullyConnected::new(4).build(&a).unwrap();
    assert_eq!(a.name().as_deref(), Some("fullyconnected0"));
    assert_eq!(b.name().as_deref(), Some("fullyconnected1"));
    // Created variables carry a copy of the operator's attributes (MXNet does this).
    let internals = b.get_internals();
    let w = internals.output_named("fullyconnected1_weight").unwrap();
    assert_eq!(w.list_attr(), attrs(&[("num_hidden", "4")]));
    // Operators through the generic entry point, aliases resolved, hint from the name used.
    let sum = Symbol::op("_Plus", &[&a, &a], &[], None).unwrap();
    assert_eq!(sum.name().as_deref(), Some("_plus0"));
    assert_eq!(sum.outputs()[0].node().op_name(), "elemwise_add");
    let bsum = Broadcast::new(BinaryOp::Add).build(&x, &a).unwrap();
    assert_eq!(bsum.name().as_deref(), Some("broadcast_add0"));
    let cat = Concat::new().build(&[&x, &x, &x]).unwrap();
    assert_eq!(cat.list_attr(), attrs(&[("num_args", "3")]));
    assert_eq!(cat.name().as_deref(), Some("concat0"));
    // A prefix applies to given and generated names, and to created inputs.
    {
        let _p = NameManager::with_prefix("net_").enter();
        let c = FullyConnected::new(2).name("fc").build(&x).unwrap();
        assert_eq!(c.list_arguments(), ["x", "net_fc_weight", "net_fc_bias"]);
    }
    let d = FullyConnected::new(2).build(&x).unwrap();
    assert_eq!(d.name().as_deref(), Some("fullyconnected2"));
}

#[test]
fn composition_errors() {
    let x = Symbol::var("x");
    let bad = |r: mxgluon::Result<Symbol>| {
        assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}")
    };
    bad(Symbol::op("NoSuchOp", &[&x], &[], None));
    bad(Symbol::op("FullyConnected", &[&x], &[], None)); // num_hidden missing
    bad(Symbol::op(
        "FullyConnected",
        &[&x],
        &[("num_hidden", "0")],
        None,
    ));
    bad(Symbol::op(
        "FullyConnected",
        &[&x],
        &[("num_hidden", "4"), ("foo", "1")],
        None,
    ));
    bad(Symbol::op(
        "FullyConnected",
        &[&x, &x, &x, &x],
        &[("num_hidden", "4")],
        None,
    ));
    bad(Symbol::op(
        "FullyConnected",
        &[&x],
        &[("num_hidden", "4"), ("weight_lr_mult", "2")],
        None,
    ));
    bad(Symbol::op_named(
        "FullyConnected",
        &[("data", &x), ("wieght", &x)],
        &[("num_hidden", "4")],
        None,
    ));
    bad(Symbol::op(
        "Activation",
        &[&x],
        &[("act_type", "swish")],
        None,
    ));
    bad(Symbol::op(
        "Convolution",
        &[&x],
        &[("kernel", "(3, 3)"), ("num_filter", "4"), ("pad", "(1,)")],
        None,
    ));
    // An input with several outputs.
    let bn = BatchNorm::new().output_mean_var(true).build(&x).unwrap();
    assert_eq!(bn.num_outputs(), 3);
    bad(Symbol::op(
        "Activation",
        &[&bn],
        &[("act_type", "relu")],
        None,
    ));
    // A mutated input must be a variable.
    let relu = Activation::new(ActType::Relu).build(&x).unwrap();
    bad(BatchNorm::new().moving_mean(&relu).build(&x));
    bad(Symbol::group(&[]));
    // Hidden keys given as operator attributes are dundered.
    let fc = Symbol::op(
        "FullyConnected",
        &[&x],
        &[("num_hidden", "4"), ("lr_mult", "2")],
        None,
    )
    .unwrap();
    assert_eq!(fc.attr("__lr_mult__").as_deref(), Some("2"));
}

#[test]
fn multi_output_operators_and_groups() {
    let x = Symbol::var("x");
    let bn = BatchNorm::new()
        .output_mean_var(true)
        .name("bn")
        .build(&x)
        .unwrap();
    assert_eq!(bn.list_outputs(), ["bn_output", "bn_mean", "bn_var"]);
    assert_eq!(bn.name().as_deref(), Some("bn"));
    assert_eq!(bn.to_string(), "<Symbol bn>");
    assert_eq!(bn.output(1).unwrap().list_outputs(), ["bn_mean"]);
    let rrelu = LeakyReLU::new(LeakyActType::Rrelu)
        .name("r")
        .build(&x)
        .unwrap();
    assert_eq!(rrelu.list_outputs(), ["r_output", "r_mask"]);
    let drop = Dropout::new(0.5).name("d").build(&x).unwrap();
    assert_eq!(drop.list_outputs(), ["d_output"]);
    let g = Symbol::group(&[x.clone(), drop.clone()]).unwrap();
    assert_eq!(g.name(), None);
    assert_eq!(g.to_string(), "<Symbol group [x, d]>");
    assert_eq!(g.list_outputs(), ["x", "d_output"]);
    assert_eq!(g.attr("name"), None);
    assert_eq!(g.output(1).unwrap().list_outputs(), ["d_output"]);
    let only = x.output(0).unwrap();
    assert!(only.ptr_eq(&x));
    let children = drop.get_children().unwrap();
    assert_eq!(children.list_outputs(), ["x"]);
    assert!(x.get_children().is_none());
    // The max pooling of MXNet's oneDNN build has a hidden workspace output.
    let p = Pooling::new([2, 2]).name("p").build(&x).unwrap();
    assert_eq!(p.list_outputs(), ["p_output"]);
    assert_eq!(p.outputs()[0].node().num_outputs(), 2);
}

// ------------------------------------------------------------------ shape inference

#[test]
fn infer_shape_of_the_conv_net() {
    let out = convnet();
    let s = out.infer_shape([("data", [2, 3, 8, 8])]).unwrap();
    assert_eq!(
        s.arg_shapes,
        some(&[
            &[2, 3, 8, 8],
            &[8, 3, 3, 3],
            &[8],
            &[8],
            &[8],
            &[10, 128],
            &[10],
            &[2]
        ])
    );
    assert_eq!(s.out_shapes, some(&[&[2, 10]]));
    assert_eq!(s.aux_shapes, some(&[&[8], &[8]]));
    assert!(s.is_complete());
    // Nothing known: everything unknown, no error (MXNet's infer_shape_partial).
    let none = out.infer_shape::<&str, [usize; 0]>([]).unwrap();
    assert!(none.arg_shapes.iter().all(|s| s.is_none()));
    assert!(!none.is_complete());
    let t = out.infer_type([("data", DType::Float32)]).unwrap();
    assert!(t.is_complete());
    assert!(t
        .arg_types
        .iter()
        .chain(&t.aux_types)
        .all(|&d| d == Some(DType::Float32)));
}

#[test]
fn infer_shape_per_operator() {
    let x = Symbol::var("x");
    let y = Symbol::var("y");
    let one = |s: Symbol, shape: &[usize]| s.infer_shape([("x", shape.to_vec())]).unwrap();
    // Expected values: MXNet 1.9.1.
    let fc = FullyConnected::new(3)
        .flatten(false)
        .name("fc")
        .build(&x)
        .unwrap();
    let r = one(fc, &[2, 5, 7]);
    assert_eq!(r.arg_shapes, some(&[&[2, 5, 7], &[3, 7], &[3]]));
    assert_eq!(r.out_shapes, some(&[&[2, 5, 3]]));
    let fc = FullyConnected::new(3).name("fc").build(&x).unwrap();
    assert_eq!(one(fc, &[2, 5, 7]).arg_shapes[1], Some(vec![3, 35]));
    let dw = Convolution::new([3, 3], 8)
        .num_group(8)
        .stride([2, 2])
        .pad([1, 1])
        .dilate([2, 2]);
    let r = one(dw.build(&x).unwrap(), &[1, 8, 10, 10]);
    assert_eq!(r.arg_shapes[1], Some(vec![8, 1, 3, 3]));
    assert_eq!(r.out_shapes, some(&[&[1, 8, 4, 4]]));
    let c1 = Convolution::new([3], 4).no_bias(true).build(&x).unwrap();
    let r = one(c1, &[2, 3, 9]);
    assert_eq!(r.arg_shapes, some(&[&[2, 3, 9], &[4, 3, 3]]));
    assert_eq!(r.out_shapes, some(&[&[2, 4, 7]]));
    let c3 = Convolution::new([1, 3, 3], 4)
        .pad([0, 1, 1])
        .build(&x)
        .unwrap();
    let r = one(c3, &[2, 3, 5, 9, 9]);
    assert_eq!(r.arg_shapes[1], Some(vec![4, 3, 1, 3, 3]));
    assert_eq!(r.out_shapes, some(&[&[2, 4, 5, 9, 9]]));
    let nhwc = Convolution::new([3, 3], 4).layout(mxgluon::symbol::ops::Layout::Nhwc);
    let r = one(nhwc.build(&x).unwrap(), &[2, 9, 9, 3]);
    assert_eq!(r.arg_shapes[1], Some(vec![4, 3, 3, 3]));
    assert_eq!(r.out_shapes, some(&[&[2, 7, 7, 4]]));
    let pool = |conv| {
        Pooling::new([2, 2])
            .stride([2, 2])
            .pooling_convention(conv)
            .build(&x)
            .unwrap()
    };
    assert_eq!(
        one(pool(PoolingConvention::Valid), &[1, 1, 7, 7]).out_shapes,
        some(&[&[1, 1, 3, 3]])
    );
    assert_eq!(
        one(pool(PoolingConvention::Full), &[1, 1, 7, 7]).out_shapes,
        some(&[&[1, 1, 4, 4]])
    );
    let same = Pooling::new([3])
        .stride([2])
        .pooling_convention(PoolingConvention::Same);
    assert_eq!(
        one(same.build(&x).unwrap(), &[1, 1, 7]).out_shapes,
        some(&[&[1, 1, 4]])
    );
    let padded = Pooling::new([3, 3])
        .stride([2, 2])
        .pad([1, 1])
        .build(&x)
        .unwrap();
    assert_eq!(
        one(padded, &[1, 64, 112, 112]).out_shapes,
        some(&[&[1, 64, 56, 56]])
    );
    let global = Pooling::global(PoolType::Avg).build(&x).unwrap();
    assert_eq!(
        one(global, &[2, 4, 7, 5]).out_shapes,
        some(&[&[2, 4, 1, 1]])
    );
    let bn = BatchNorm::new().axis(-1).build(&x).unwrap();
    let r = one(bn, &[2, 5, 3]);
    assert_eq!(r.arg_shapes, some(&[&[2, 5, 3], &[3], &[3]]));
    assert_eq!(r.aux_shapes, some(&[&[3], &[3]]));
    let cat = Concat::new().dim(1).build(&[&x, &y]).unwrap();
    let r = cat
        .infer_shape([("x", vec![2, 3, 4]), ("y", vec![2, 5, 4])])
        .unwrap();
    assert_eq!(r.out_shapes, some(&[&[2, 8, 4]]));
    let r = cat.infer_shape([("x", [2, 3, 4])]).unwrap();
    assert_eq!(
        r.arg_shapes,
        some(&[&[2, 3, 4], &[2, 0, 4]]),
        "partial, as MXNet"
    );
    let cat = Concat::new().dim(-1).build(&[&x, &y]).unwrap();
    let r = cat.infer_shape([("x", [2, 3]), ("y", [2, 5])]).unwrap();
    assert_eq!(r.out_shapes, some(&[&[2, 8]]));
    for (codes, reverse, expected) in [
        (vec![-1, 0], false, vec![40, 5]),
        (vec![-1, 0], true, vec![50, 4]),
        (vec![-3, -2], false, vec![50, 4]),
        (vec![2, 0, -1], false, vec![2, 5, 20]),
        (vec![-2, 1, 1], false, vec![10, 5, 4, 1, 1]),
        (vec![0, -4, 5, -1, 0], false, vec![10, 5, 1, 4]),
    ] {
        let r = Reshape::new(&codes).reverse(reverse).build(&x).unwrap();
        assert_eq!(
            one(r, &[10, 5, 4]).out_shapes,
            vec![Some(expected)],
            "{codes:?}"
        );
    }
    let b = Broadcast::new(BinaryOp::Add).build(&x, &y).unwrap();
    let r = b
        .infer_shape([("x", vec![2, 1, 4]), ("y", vec![3, 1])])
        .unwrap();
    assert_eq!(r.out_shapes, some(&[&[2, 3, 4]]));
    let e = Elemwise::new(BinaryOp::Mul).build(&x, &y).unwrap();
    assert_eq!(
        one(e, &[2, 3]).arg_shapes,
        some(&[&[2, 3], &[2, 3]]),
        "backward to y"
    );
    let so = SoftmaxOutput::new().build(&x).unwrap();
    assert_eq!(one(so, &[4, 10]).arg_shapes[1], Some(vec![4]));
    let so = SoftmaxOutput::new().multi_output(true).build(&x).unwrap();
    assert_eq!(one(so, &[4, 10, 3, 3]).arg_shapes[1], Some(vec![4, 9]));
    let d = Dropout::new(0.5).axes([1]).build(&x).unwrap();
    assert_eq!(one(d, &[4, 10, 3]).out_shapes, some(&[&[4, 10, 3]]));
    let pr = LeakyReLU::new(LeakyActType::Prelu).build(&x).unwrap();
    assert_eq!(one(pr, &[4, 10, 3]).arg_shapes[1], Some(vec![10]));
    let f = Flatten::new().build(&x).unwrap();
    assert_eq!(one(f, &[4, 10, 3]).out_shapes, some(&[&[4, 30]]));
    let c = Clip::new(0.0, 1.0).build(&x).unwrap();
    assert_eq!(one(c, &[4, 10, 3]).out_shapes, some(&[&[4, 10, 3]]));
    let sm = Softmax::new().build(&x).unwrap();
    assert_eq!(one(sm.clone(), &[2, 3]).out_shapes, some(&[&[2, 3]]));
}

#[test]
fn infer_shape_uses_shape_attributes_and_partial_dims() {
    let x = Symbol::var("x");
    let w = Symbol::var_with("fc_weight", &VarOptions::new().shape([3, 0]));
    let fc = FullyConnected::new(3)
        .weight(&w)
        .name("fc")
        .build(&x)
        .unwrap();
    let r = fc.infer_shape::<&str, [usize; 0]>([]).unwrap();
    assert_eq!(r.arg_shapes, vec![None, Some(vec![3, 0]), None]);
    let r = fc.infer_shape([("x", [2, 5])]).unwrap();
    assert_eq!(r.arg_shapes, some(&[&[2, 5], &[3, 5], &[3]]));
    // A given 0 dimension is unknown, filled by inference.
    let r = fc
        .infer_shape([("x", [2, 5]), ("fc_weight", [0, 5])])
        .unwrap();
    assert_eq!(r.arg_shapes[1], Some(vec![3, 5]));
    // Backward inference through an element-wise op does not reach FullyConnected's data.
    let y = Symbol::var("y");
    let fc1 = FullyConnected::new(4).name("fc1").build(&x).unwrap();
    let e = Elemwise::new(BinaryOp::Add).build(&fc1, &y).unwrap();
    let r = e.infer_shape([("y", [7, 4])]).unwrap();
    assert_eq!(r.arg_shapes, vec![None, None, None, Some(vec![7, 4])]);
    assert_eq!(r.out_shapes, some(&[&[7, 4]]));
}

#[test]
fn infer_shape_errors_name_the_node() {
    let x = Symbol::var("x");
    let w = Symbol::var_with("fc_weight", &VarOptions::new().shape([3, 4]));
    let fc = FullyConnected::new(3)
        .weight(&w)
        .name("fc")
        .build(&x)
        .unwrap();
    match fc.infer_shape([("x", [2, 5])]) {
        Err(Error::SymbolInference {
            node,
            op,
            what,
            reason,
        }) => {
            assert_eq!(
                (node.as_str(), op.as_str(), what),
                ("fc", "FullyConnected", "shape")
            );
            assert!(
                reason.contains("weight") && reason.contains("(3, 4)") && reason.contains("(3, 5)"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let fc = FullyConnected::new(3).name("fc").build(&x).unwrap();
    let e = fc
        .infer_shape([("x", vec![2, 5]), ("fc_weight", vec![3, 6])])
        .unwrap_err();
    assert!(e.to_string().contains("'fc'"), "{e}");
    assert!(matches!(
        fc.infer_shape([("foo", [1])]),
        Err(Error::InvalidArgument { .. })
    ));
    let y = Symbol::var("y");
    let b = Broadcast::new(BinaryOp::Add)
        .name("b")
        .build(&x, &y)
        .unwrap();
    let e = b
        .infer_shape([("x", vec![2, 3]), ("y", vec![4, 3])])
        .unwrap_err();
    assert!(e.to_string().contains("broadcast"), "{e}");
    let e2 = Elemwise::new(BinaryOp::Add)
        .name("e")
        .build(&x, &y)
        .unwrap();
    assert!(matches!(
        e2.infer_shape([("x", vec![2, 3]), ("y", vec![2, 4])]),
        Err(Error::SymbolInference { .. })
    ));
    let c = Convolution::new([5, 5], 2).name("c").build(&x).unwrap();
    let e = c.infer_shape([("x", [1, 1, 3, 3])]).unwrap_err();
    assert!(e.to_string().contains("exceeds"), "{e}");
    let r = Reshape::new([5, -1]).name("r").build(&x).unwrap();
    assert!(matches!(
        r.infer_shape([("x", [2, 3, 4])]),
        Err(Error::SymbolInference { .. })
    ));
    // MXNet 1.9.1 infers (4, 5, 2) here (its size check is compiled out) and fails later,
    // at run time; mxgluon refuses at once.
    let r = Reshape::new([4, 0, 2]).name("r").build(&x).unwrap();
    assert!(r.infer_shape([("x", [10, 5, 4])]).is_err());
    let r = Reshape::new([0, -4, 2, -1, 0]).name("r").build(&x).unwrap();
    assert!(
        r.infer_shape([("x", [10, 5, 4])]).is_err(),
        "5 does not split by 2"
    );
    let bn = BatchNorm::new().axis(3).name("bn").build(&x).unwrap();
    assert!(bn.infer_shape([("x", [2, 3])]).is_err());
    // Invalid __shape__ attribute.
    let v = Symbol::var_with("v", &VarOptions::new().attr("__shape__", "(2, x)").unwrap());
    let a = Activation::new(ActType::Relu).build(&v).unwrap();
    assert!(matches!(
        a.infer_shape::<&str, [usize; 0]>([]),
        Err(Error::SymbolInference { .. })
    ));
}

#[test]
fn infer_type_rules() {
    let x = Symbol::var("x");
    // Expected values: MXNet 1.9.1.
    let bn = BatchNorm::new().name("bn").build(&x).unwrap();
    let t = bn.infer_type([("x", DType::Float16)]).unwrap();
    assert_eq!(
        t.arg_types,
        [
            Some(DType::Float16),
            Some(DType::Float32),
            Some(DType::Float32)
        ]
    );
    assert_eq!(t.out_types, [Some(DType::Float16)]);
    assert_eq!(t.aux_types, [Some(DType::Float32); 2]);
    let fc = FullyConnected::new(3).build(&x).unwrap();
    let t = fc.infer_type([("x", DType::Float64)]).unwrap();
    assert_eq!(t.arg_types, [Some(DType::Float64); 3]);
    let partial = fc.infer_type::<&str>([]).unwrap();
    assert!(!partial.is_complete() && partial.arg_types.iter().all(|t| t.is_none()));
    let w16 = Symbol::var_with("w", &VarOptions::new().dtype(DType::Float16));
    let fc16 = FullyConnected::new(3)
        .weight(&w16)
        .name("fc")
        .build(&x)
        .unwrap();
    assert!(matches!(
        fc16.infer_type([("x", DType::Float32)]),
        Err(Error::SymbolInference { what: "type", .. })
    ));
    let t = fc16.infer_type::<&str>([]).unwrap();
    assert_eq!(
        t.arg_types,
        [Some(DType::Float16); 3],
        "__dtype__ propagates to data and bias"
    );
    let pool = Pooling::new([2, 2]).build(&x).unwrap();
    assert_eq!(
        pool.infer_type([("x", DType::Float64)]).unwrap().out_types,
        [Some(DType::Float64)]
    );
    let sm = Softmax::new().dtype(DType::Float64).build(&x).unwrap();
    let t = sm.infer_type([("x", DType::Float32)]).unwrap();
    assert_eq!(
        (t.arg_types[0], t.out_types[0]),
        (Some(DType::Float32), Some(DType::Float64))
    );
    let y = Symbol::var("y");
    let e = Elemwise::new(BinaryOp::Add).build(&x, &y).unwrap();
    assert_eq!(
        e.infer_type([("y", DType::Int32)]).unwrap().arg_types,
        [Some(DType::Int32); 2]
    );
    let bn_int = bn.infer_type([("x", DType::Int32)]);
    assert!(matches!(bn_int, Err(Error::SymbolInference { .. })));
}

// ------------------------------------------------------------------ JSON

#[test]
fn golden_json_round_trips_byte_for_byte() {
    let g = golden();
    let s = Symbol::load_json(&g).unwrap();
    assert_eq!(s.tojson(), g);
    assert_eq!(
        s.list_arguments(),
        [
            "data",
            "hybridsequential0_dense0_weight",
            "hybridsequential0_dense0_bias",
            "hybridsequential0_dense1_weight",
            "hybridsequential0_dense1_bias"
        ]
    );
    assert_eq!(s.list_outputs(), ["hybridsequential0_dense1_fwd_output"]);
    let r = s.infer_shape([("data", [5, 8])]).unwrap();
    assert_eq!(
        r.arg_shapes,
        some(&[&[5, 8], &[16, 8], &[16], &[4, 16], &[4]])
    );
    assert_eq!(r.out_shapes, some(&[&[5, 4]]));
    // What the executor walks.
    let g = s.graph();
    assert_eq!(g.nodes().len(), 8);
    assert_eq!(g.inputs_of(7), [(4, 0), (5, 0), (6, 0)]);
    match g.nodes()[3].params() {
        Some(OpParams::FullyConnected(p)) => assert!(p.num_hidden == 16 && p.flatten && !p.no_bias),
        other => panic!("{other:?}"),
    }
    assert_eq!(g.arg_nodes(), [0, 1, 2, 5, 6]);
    let shapes = g.infer_entry_shapes([("data", [5, 8])]).unwrap();
    assert_eq!(shapes[g.entry_id(4, 0)], Some(vec![5, 16]));
}

#[test]
fn save_and_load_files() {
    let dir = std::env::temp_dir().join(format!("mxgluon-symbol-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net-symbol.json");
    let net = convnet();
    net.save(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), MXNET_CONVNET);
    let back = Symbol::load(&path).unwrap();
    assert_eq!(back.list_arguments(), net.list_arguments());
    assert!(matches!(
        Symbol::load(dir.join("missing.json")),
        Err(Error::Io { .. })
    ));
    std::fs::write(&path, "{").unwrap();
    match Symbol::load(&path) {
        Err(Error::InvalidSymbolJson { file, .. }) => assert!(file.ends_with("net-symbol.json")),
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writer_layout_for_long_arrays_and_many_inputs() {
    let _names = NameManager::new().enter();
    let xs: Vec<Symbol> = (0..11).map(|i| Symbol::var(format!("x{i}"))).collect();
    let refs: Vec<&Symbol> = xs.iter().collect();
    let cat = Concat::new().name("cat").build(&refs).unwrap();
    let j = cat.tojson();
    // More than ten entries: one per line, as dmlc's JSONWriter does.
    assert!(
        j.contains("\"inputs\": [\n        [0, 0, 0], \n        [1, 0, 0], "),
        "{j}"
    );
    assert!(j.contains("\"arg_nodes\": [\n    0, \n    1, "), "{j}");
    assert!(j.ends_with(
        "\"heads\": [[11, 0, 0]], \n  \"attrs\": {\"mxnet_version\": [\"int\", 10901]}\n}"
    ));
    assert_eq!(Symbol::load_json(&j).unwrap().tojson(), j);
    // Strings are escaped like MXNet's writer.
    let v = Symbol::var_with("a\"b\\c\nd", &VarOptions::new().init("[\"x\", {}]\t"));
    let j = v.tojson();
    assert!(j.contains(r#""name": "a\"b\\c\nd""#), "{j}");
    assert!(
        j.contains(r#""attrs": {"__init__": "[\"x\", {}]\t"}"#),
        "{j}"
    );
    let back = Symbol::load_json(&j).unwrap();
    assert_eq!(back.name().as_deref(), Some("a\"b\\c\nd"));
    assert_eq!(back.tojson(), j);
}

#[test]
fn older_json_forms_load() {
    // `attr` instead of `attrs`, `param` merged, two-element entries, no node_row_ptr, no
    // version (0.8.0): hidden keys are upgraded and BatchNorm's missing states added.
    let old = r#"{
      "nodes": [
        {"op": "null", "name": "data", "inputs": []},
        {"op": "null", "name": "fc_weight", "attr": {"lr_mult": "2.0"}, "inputs": []},
        {"op": "FullyConnected", "name": "fc", "param": {"num_hidden": "4", "no_bias": "True"},
         "attr": {"weight_wd_mult": "0.5", "ctx_group": "dev1"}, "inputs": [[0, 0], [1, 0]],
         "backward_source_id": -1},
        {"op": "null", "name": "bn_gamma", "inputs": []},
        {"op": "null", "name": "bn_beta", "inputs": []},
        {"op": "BatchNorm", "name": "bn", "param": {"eps": "0.001"}, "inputs": [[2, 0], [3, 0], [4, 0]]}
      ],
      "arg_nodes": [0, 1, 3, 4],
      "heads": [[5, 0]]
    }"#;
    let s = Symbol::load_json(old).unwrap();
    assert_eq!(
        s.list_arguments(),
        ["data", "fc_weight", "bn_gamma", "bn_beta"]
    );
    assert_eq!(
        s.list_auxiliary_states(),
        ["bn_moving_mean", "bn_moving_var"]
    );
    let ad = s.attr_dict();
    assert_eq!(ad["fc_weight"]["__lr_mult__"], "2.0");
    assert_eq!(ad["fc_weight"]["__wd_mult__"], "0.5");
    assert_eq!(ad["fc"]["__ctx_group__"], "dev1");
    assert!(!ad["fc"].contains_key("weight_wd_mult"));
    assert_eq!(ad["bn_moving_mean"]["__init__"], r#"["zero", {}]"#);
    assert_eq!(ad["bn_moving_var"]["eps"], "0.001");
    let r = s.infer_shape([("data", [2, 3])]).unwrap();
    assert_eq!(r.aux_shapes, some(&[&[4], &[4]]));
    // Written back in today's form, which reads back identically.
    let j = s.tojson();
    assert!(j.contains("\"node_row_ptr\"") && j.contains("10901"));
    assert_eq!(Symbol::load_json(&j).unwrap().tojson(), j);
    // Aliases become canonical names; unknown operators are kept as they are.
    let aliased = r#"{"nodes": [{"op": "null", "name": "a", "inputs": []},
        {"op": "_Plus", "name": "p", "inputs": [[0, 0, 0], [0, 0, 0]]},
        {"op": "_contrib_Fancy", "name": "f", "attrs": {"k": "v"}, "inputs": [[1, 0, 0]]}],
        "arg_nodes": [0], "node_row_ptr": [0, 1, 2, 4], "heads": [[2, 1, 0]],
        "attrs": {"mxnet_version": ["int", 10901]}}"#;
    let s = Symbol::load_json(aliased).unwrap();
    let j = s.tojson();
    assert!(j.contains("\"op\": \"elemwise_add\"") && j.contains("\"op\": \"_contrib_Fancy\""));
    assert!(j.contains("\"node_row_ptr\": [0, 1, 2, 4]"), "{j}");
    assert_eq!(s.list_outputs(), ["f_output1"]);
    match s.infer_shape([("a", [2])]) {
        Err(Error::SymbolInference { node, op, .. }) => {
            assert_eq!((node.as_str(), op.as_str()), ("f", "_contrib_Fancy"))
        }
        other => panic!("{other:?}"),
    }
}

/// Each of these must be refused with `InvalidSymbolJson`, never a panic.
const HOSTILE: &[&str] = &[
    "",
    "null",
    "[]",
    "{",
    r#"{"nodes": [], "arg_nodes": [], "heads": []}"#,
    r#"{"nodes": [], "arg_nodes": []}"#,
    r#"{"nodes": {}, "arg_nodes": [], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[0, 1, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[0, 0, -1]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[0, 0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[4294967296, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[0.5, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [3], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[0, 0, 0]], "extra": 1}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": [], "color": "red"}], "arg_nodes": [0], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "inputs": []}], "arg_nodes": [0], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": 3, "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "attrs": {"k": 1}, "inputs": []}], "arg_nodes": [0], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "node_row_ptr": [0], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "node_row_ptr": [1, 0], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[0, 0, 0]], "attrs": {"mxnet_version": ["str", "x"]}}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": []}], "arg_nodes": [0], "heads": [[0, 0, 0]], "attrs": {"mxnet_version": 10901}}"#,
    r#"{"nodes": [{"op": "null", "name": "a", "inputs": [[0, 0, 0]]}], "arg_nodes": [0], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[0, 0, 0]]}], "arg_nodes": [], "heads": [[0, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[2, 0, 0]]}, {"op": "Activation", "name": "b", "attrs": {"act_type": "relu"}, "inputs": [[1, 0, 0]]}], "arg_nodes": [0], "heads": [[2, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[0, 0, 0]]}], "arg_nodes": [1], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Activation", "name": "a", "attrs": {"act_type": "swish"}, "inputs": [[0, 0, 0]]}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Activation", "name": "a", "attrs": {"act_type": "relu", "bogus": "1"}, "inputs": [[0, 0, 0]]}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[0, 0, 0], [0, 0, 0]]}], "arg_nodes": [0], "heads": [[1, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "FullyConnected", "name": "f", "attrs": {"num_hidden": "2"}, "inputs": [[0, 0, 0]]}], "arg_nodes": [0], "heads": [[1, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[0, 1, 0]]}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[0, 0, 0]], "control_deps": [5]}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[0, 0, 0]], "control_deps": [1]}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "_foreach", "name": "a", "inputs": [[0, 0, 0]], "subgraphs": [{}]}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Convolution", "name": "c", "attrs": {"kernel": "(3, 3, 3, 3)", "num_filter": "2"}, "inputs": [[0, 0, 0], [0, 0, 0], [0, 0, 0]]}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "Reshape", "name": "r", "attrs": {"shape": "(2, -9)"}, "inputs": [[0, 0, 0]]}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "_x", "name": "u", "inputs": [[0, 0, 0]]}], "arg_nodes": [0], "node_row_ptr": [0, 1, 4000000000], "heads": [[1, 0, 0]]}"#,
    r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "_x", "name": "u", "inputs": [[0, 0, 0]]}], "arg_nodes": [0], "heads": [[1, 4000000000, 0]]}"#,
];

#[test]
fn hostile_json_is_refused_cleanly() {
    for (i, text) in HOSTILE.iter().enumerate() {
        match Symbol::load_json(text) {
            Err(Error::InvalidSymbolJson {
                location, reason, ..
            }) => {
                assert!(!location.is_empty() && !reason.is_empty(), "case {i}");
            }
            other => panic!("case {i} ({text}): expected InvalidSymbolJson, got {other:?}"),
        }
    }
    // Deep nesting is refused by the JSON parser's depth limit.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        Symbol::load_json(&deep),
        Err(Error::InvalidSymbolJson { .. })
    ));
    // Errors say where.
    let e = Symbol::load_json(HOSTILE[7]).unwrap_err().to_string();
    assert!(e.contains("heads[0]") && e.contains("out of range"), "{e}");
    for i in [25, 26, 34] {
        let e = Symbol::load_json(HOSTILE[i]).unwrap_err().to_string();
        assert!(e.contains("cycle"), "case {i}: {e}");
    }
    let e = Symbol::load_json(HOSTILE[27]).unwrap_err().to_string();
    assert!(
        e.contains("arg_nodes[0]") && e.contains("not a variable"),
        "{e}"
    );
}

#[test]
fn long_chains_load_query_and_drop_without_recursion() {
    let n = 50_000;
    let mut s = String::from(r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}"#);
    for i in 1..=n {
        s.push_str(&format!(
            r#", {{"op": "Activation", "name": "a{i}", "attrs": {{"act_type": "relu"}}, "inputs": [[{}, 0, 0]]}}"#,
            i - 1
        ));
    }
    s.push_str(&format!(r#"], "arg_nodes": [0], "heads": [[{n}, 0, 0]]}}"#));
    // Run on a small stack: nothing may recurse per node.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let sym = Symbol::load_json(&s).unwrap();
            assert_eq!(sym.list_arguments(), ["x"]);
            let r = sym.infer_shape([("x", [2, 3])]).unwrap();
            assert_eq!(r.out_shapes, some(&[&[2, 3]]));
            let j = sym.tojson();
            drop(sym);
            let again = Symbol::load_json(&j).unwrap();
            assert_eq!(again.tojson(), j);
        })
        .unwrap()
        .join()
        .unwrap();
}

// ------------------------------------------------------------------ properties

/// A random graph description with arbitrary (possibly invalid) indices and attributes.
fn arb_graph() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        Just("null"),
        Just("Activation"),
        Just("elemwise_add"),
        Just("FullyConnected"),
        Just("BatchNorm"),
        Just("Pooling"),
        Just("Concat"),
        Just("_unknown_op"),
    ];
    let attr = prop_oneof![
        Just(r#"{}"#),
        Just(r#"{"act_type": "relu"}"#),
        Just(r#"{"num_hidden": "3"}"#),
        Just(r#"{"kernel": "(2, 2)"}"#),
        Just(r#"{"num_args": "2"}"#),
        Just(r#"{"__shape__": "(2, 3)"}"#),
    ];
    let entry = (0u32..8, 0u32..3, 0u32..2);
    let node = (op, attr, proptest::collection::vec(entry.clone(), 0..4));
    (
        proptest::collection::vec(node, 1..8),
        proptest::collection::vec(0u32..8, 0..4),
        proptest::collection::vec(entry, 0..3),
        any::<bool>(),
    )
        .prop_map(|(nodes, args, heads, rows)| {
            let nodes: Vec<String> = nodes
                .iter()
                .enumerate()
                .map(|(i, (op, attr, ins))| {
                    let ins: Vec<String> = ins
                        .iter()
                        .map(|(a, b, c)| format!("[{a}, {b}, {c}]"))
                        .collect();
                    format!(
                        r#"{{"op": "{op}", "name": "n{i}", "attrs": {attr}, "inputs": [{}]}}"#,
                        ins.join(", ")
                    )
                })
                .collect();
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let heads: Vec<String> = heads
                .iter()
                .map(|(a, b, c)| format!("[{a}, {b}, {c}]"))
                .collect();
            let rows = if rows {
                let r: Vec<String> = (0..=nodes.len()).map(|i| i.to_string()).collect();
                format!(r#", "node_row_ptr": [{}]"#, r.join(", "))
            } else {
                String::new()
            };
            format!(
                r#"{{"nodes": [{}], "arg_nodes": [{}]{rows}, "heads": [{}]}}"#,
                nodes.join(", "),
                args.join(", "),
                heads.join(", ")
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary graphs either load, write back stably and survive inference, or are
    /// refused with InvalidSymbolJson.
    #[test]
    fn random_graphs_never_panic(text in arb_graph()) {
        match Symbol::load_json(&text) {
            Ok(s) => {
                let j = s.tojson();
                let again = Symbol::load_json(&j).unwrap();
                prop_assert_eq!(again.tojson(), j);
                let _ = s.list_arguments();
                let _ = s.list_outputs();
                let _ = s.get_internals().list_outputs();
                let _ = s.debug_str();
                let _ = s.infer_shape([("n0", [2, 3])]);
                let _ = s.infer_type([("n0", DType::Float32)]);
            }
            Err(e) => prop_assert!(matches!(e, Error::InvalidSymbolJson { .. }), "{}", e),
        }
    }

    /// Corrupting the golden file anywhere never panics.
    #[test]
    fn corrupted_golden_never_panics(pos in 0usize..3000, byte in any::<u8>(), cut in any::<bool>()) {
        let mut g = golden().into_bytes();
        let pos = pos % g.len();
        if cut { g.truncate(pos) } else { g[pos] = byte }
        if let Ok(text) = String::from_utf8(g) {
            match Symbol::load_json(&text) {
                Ok(s) => { let _ = s.infer_shape([("data", [1, 8])]); let _ = s.tojson(); }
                Err(e) => prop_assert!(matches!(e, Error::InvalidSymbolJson { .. }), "{}", e),
            }
        }
    }
}
