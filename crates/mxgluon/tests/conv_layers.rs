//! Convolution and pooling layers: output shapes, deferred initialization of the input
//! channels, Gluon's naming (`conv<n>_`, `pool<n>_`) and printout.

use mxgluon::gluon::nn::{
    AvgPool1D, AvgPool2D, Conv1D, Conv2D, Conv3D, GlobalAvgPool1D, GlobalAvgPool2D,
    GlobalMaxPool2D, MaxPool1D, MaxPool2D, MaxPool3D, Sequential,
};
use mxgluon::gluon::{Block, ParamState};
use mxgluon::nd::{ActType, PoolType, PoolingConvention};
use mxgluon::{autograd, init, nd, Context, Error, GradReq};

fn ctx() -> Context {
    Context::cpu(0)
}

#[test]
fn names_use_the_conv_and_pool_hints() {
    let c2 = Conv2D::builder(4, [3, 3]).build().unwrap();
    let c1 = Conv1D::builder(4, [3]).build().unwrap();
    let p = MaxPool2D::new();
    let g = GlobalAvgPool2D::new();
    assert_eq!(c2.prefix(), "conv0_");
    assert_eq!(c1.prefix(), "conv1_");
    assert_eq!(p.prefix(), "pool0_");
    assert_eq!(g.prefix(), "pool1_");
    let names: Vec<String> = c2.collect_params().unwrap().keys();
    assert_eq!(names, vec!["conv0_weight", "conv0_bias"]);
    let nobias = Conv2D::builder(4, [1, 1]).use_bias(false).build().unwrap();
    assert_eq!(
        nobias.collect_params().unwrap().keys(),
        vec!["conv2_weight"]
    );
    assert!(nobias.bias().is_none());

    let net = Sequential::with_prefix(Some("net_"), None);
    {
        let _s = net.name_scope();
        net.add(Conv2D::builder(8, [3, 3]).build().unwrap());
        net.add(MaxPool2D::new());
        net.add(Conv2D::builder(8, [3, 3]).build().unwrap());
        net.add(GlobalAvgPool2D::new());
    }
    assert_eq!(
        net.collect_params().unwrap().keys(),
        vec![
            "net_conv0_weight",
            "net_conv0_bias",
            "net_conv1_weight",
            "net_conv1_bias"
        ]
    );
    let explicit = Conv2D::builder(2, [1, 1]).prefix("stem_").build().unwrap();
    assert_eq!(explicit.weight().name(), "stem_weight");
}

#[test]
fn deferred_in_channels_are_inferred_at_the_first_forward() {
    let conv = Conv2D::builder(16, [3, 3])
        .padding([1, 1])
        .groups(2)
        .build()
        .unwrap();
    assert_eq!(conv.weight().shape(), Some(vec![16, 0, 3, 3]));
    assert_eq!(
        conv.to_string(),
        "Conv2D(None -> 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2)"
    );
    conv.initialize(None, ctx()).unwrap();
    assert_eq!(conv.weight().state(), ParamState::Deferred);
    let y = conv
        .forward(&nd::ones(&[2, 6, 8, 8], ctx()).unwrap())
        .unwrap();
    assert_eq!(y.shape(), &[2, 16, 8, 8]);
    assert_eq!(conv.weight().shape(), Some(vec![16, 3, 3, 3]));
    assert_eq!(conv.bias().unwrap().shape(), Some(vec![16]));
    // Like Gluon, the printout shows the weight's input dimension (channels per group).
    assert_eq!(
        conv.to_string(),
        "Conv2D(3 -> 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2)"
    );
}

#[test]
fn failed_inference_leaves_the_weight_deferred() {
    let conv = Conv2D::builder(4, [3, 3]).groups(2).build().unwrap();
    conv.initialize(None, ctx()).unwrap();
    // 3 channels cannot be split into 2 groups; a 3-D input is not NCHW.
    let e = conv
        .forward(&nd::ones(&[1, 3, 5, 5], ctx()).unwrap())
        .unwrap_err();
    assert!(matches!(e, Error::ShapeInferenceFailed { .. }), "{e}");
    assert!(e.to_string().contains("groups"), "{e}");
    let e = conv
        .forward(&nd::ones(&[1, 4, 5], ctx()).unwrap())
        .unwrap_err();
    assert!(matches!(e, Error::ShapeInferenceFailed { .. }), "{e}");
    assert_eq!(conv.weight().state(), ParamState::Deferred);
    let y = conv
        .forward(&nd::ones(&[1, 4, 5, 5], ctx()).unwrap())
        .unwrap();
    assert_eq!(y.shape(), &[1, 4, 3, 3]);
}

#[test]
fn invalid_options_are_rejected_at_build() {
    assert!(Conv2D::builder(0, [3, 3]).build().is_err());
    assert!(Conv2D::builder(4, [0, 3]).build().is_err());
    assert!(Conv2D::builder(4, [3, 3]).strides([1, 0]).build().is_err());
    assert!(Conv2D::builder(6, [3, 3]).groups(4).build().is_err());
    assert!(Conv2D::builder(4, [3, 3])
        .groups(2)
        .in_channels(3)
        .build()
        .is_err());
    assert!(MaxPool2D::builder().pool_size([0, 2]).build().is_err());
    assert!(AvgPool2D::builder().strides([2, 0]).build().is_err());
}

#[test]
fn output_shapes() {
    let shape = |b: &dyn Block, x: &[usize]| -> Vec<usize> {
        b.forward(&nd::ones(x, ctx()).unwrap())
            .unwrap()
            .shape()
            .to_vec()
    };
    let c1 = Conv1D::builder(5, [3])
        .strides([2])
        .padding([1])
        .in_channels(2)
        .build()
        .unwrap();
    c1.initialize(None, ctx()).unwrap();
    assert_eq!(shape(&c1, &[3, 2, 9]), vec![3, 5, 5]);
    let c2 = Conv2D::builder(4, [3, 5])
        .strides([2, 1])
        .dilation([2, 1])
        .build()
        .unwrap();
    c2.initialize(None, ctx()).unwrap();
    assert_eq!(shape(&c2, &[1, 3, 11, 9]), vec![1, 4, 4, 5]);
    let c3 = Conv3D::builder(2, [2, 3, 3])
        .padding([0, 1, 1])
        .build()
        .unwrap();
    c3.initialize(None, ctx()).unwrap();
    assert_eq!(shape(&c3, &[1, 1, 4, 5, 5]), vec![1, 2, 3, 5, 5]);

    assert_eq!(shape(&MaxPool2D::new(), &[2, 3, 7, 7]), vec![2, 3, 3, 3]);
    let ceil = MaxPool2D::builder().ceil_mode(true).build().unwrap();
    assert_eq!(shape(&ceil, &[2, 3, 7, 7]), vec![2, 3, 4, 4]);
    assert_eq!(ceil.options().pooling_convention, PoolingConvention::Full);
    let p = MaxPool2D::builder()
        .pool_size([3, 3])
        .strides([2, 2])
        .padding([1, 1])
        .build()
        .unwrap();
    assert_eq!(shape(&p, &[1, 64, 112, 112]), vec![1, 64, 56, 56]);
    assert_eq!(shape(&MaxPool1D::new(), &[1, 2, 9]), vec![1, 2, 4]);
    assert_eq!(shape(&AvgPool1D::new(), &[1, 2, 9]), vec![1, 2, 4]);
    assert_eq!(
        shape(&MaxPool3D::new(), &[1, 2, 4, 5, 6]),
        vec![1, 2, 2, 2, 3]
    );
    assert_eq!(
        shape(&GlobalAvgPool2D::new(), &[2, 8, 7, 5]),
        vec![2, 8, 1, 1]
    );
    assert_eq!(
        shape(&GlobalMaxPool2D::new(), &[2, 8, 7, 5]),
        vec![2, 8, 1, 1]
    );
    assert_eq!(shape(&GlobalAvgPool1D::new(), &[2, 8, 7]), vec![2, 8, 1]);
}

#[test]
fn values_activation_and_gradients() {
    // Ones convolved with ones over a 3×3 window padded by 1, bias 0.5, then relu(x − …).
    let conv = Conv2D::builder(2, [3, 3])
        .padding([1, 1])
        .activation(ActType::Relu)
        .weight_initializer(init::One)
        .bias_initializer(init::Constant::new(-4.5))
        .build()
        .unwrap();
    conv.initialize(None, ctx()).unwrap();
    let x = nd::ones(&[1, 1, 3, 3], ctx()).unwrap();
    let y = conv.forward(&x).unwrap();
    // Corner windows hold 4 ones, edges 6, the centre 9; minus 4.5, then relu.
    assert_eq!(
        y.to_vec::<f32>().unwrap()[..9],
        [0.0, 1.5, 0.0, 1.5, 4.5, 1.5, 0.0, 1.5, 0.0]
    );
    let mut x = x;
    x.attach_grad(GradReq::Write).unwrap();
    let out = {
        let _r = autograd::record();
        let h = conv.forward(&x).unwrap();
        GlobalAvgPool2D::new().forward(&h).unwrap()
    };
    out.backward().unwrap();
    let gw = conv.weight().grad(ctx()).unwrap();
    assert_eq!(gw.shape(), &[2, 1, 3, 3]);
    // Only the 5 active outputs (value > 0) pass gradient, each 1/9 per channel.
    let gb = conv
        .bias()
        .unwrap()
        .grad(ctx())
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    for g in gb {
        assert!((g - 5.0 / 9.0).abs() < 1e-6);
    }
    assert_eq!(x.grad().unwrap().shape(), &[1, 1, 3, 3]);
}

#[test]
fn printout_matches_gluon() {
    let cases: Vec<(Box<dyn Block>, &str)> = vec![
        (
            Box::new(
                Conv2D::builder(16, [3, 3])
                    .padding([1, 1])
                    .in_channels(8)
                    .groups(2)
                    .activation(ActType::Relu)
                    .use_bias(false)
                    .build()
                    .unwrap(),
            ),
            "Conv2D(4 -> 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2, bias=False, Activation(relu))",
        ),
        (
            Box::new(
                Conv2D::builder(16, [3, 5])
                    .strides([2, 2])
                    .dilation([2, 1])
                    .build()
                    .unwrap(),
            ),
            "Conv2D(None -> 16, kernel_size=(3, 5), stride=(2, 2), dilation=(2, 1))",
        ),
        (
            Box::new(Conv1D::builder(4, [3]).build().unwrap()),
            "Conv1D(None -> 4, kernel_size=(3,), stride=(1,))",
        ),
        (
            Box::new(MaxPool2D::new()),
            "MaxPool2D(size=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=False, global_pool=False, pool_type=max, layout=NCHW)",
        ),
        (
            Box::new(
                MaxPool2D::builder()
                    .pool_size([3, 3])
                    .strides([2, 2])
                    .padding([1, 1])
                    .ceil_mode(true)
                    .build()
                    .unwrap(),
            ),
            "MaxPool2D(size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True, global_pool=False, pool_type=max, layout=NCHW)",
        ),
        (
            Box::new(AvgPool2D::builder().count_include_pad(false).build().unwrap()),
            "AvgPool2D(size=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=False, global_pool=False, pool_type=avg, layout=NCHW)",
        ),
        (
            Box::new(AvgPool1D::new()),
            "AvgPool1D(size=(2,), stride=(2,), padding=(0,), ceil_mode=False, global_pool=False, pool_type=avg, layout=NCW)",
        ),
        (
            Box::new(GlobalAvgPool2D::new()),
            "GlobalAvgPool2D(size=(1, 1), stride=(1, 1), padding=(0, 0), ceil_mode=True, global_pool=True, pool_type=avg, layout=NCHW)",
        ),
        (
            Box::new(GlobalMaxPool2D::new()),
            "GlobalMaxPool2D(size=(1, 1), stride=(1, 1), padding=(0, 0), ceil_mode=True, global_pool=True, pool_type=max, layout=NCHW)",
        ),
    ];
    for (b, want) in cases {
        assert_eq!(b.describe(), want);
    }
    let avg = AvgPool2D::builder()
        .count_include_pad(false)
        .build()
        .unwrap();
    assert!(!avg.options().count_include_pad);
    assert_eq!(avg.options().pool_type, PoolType::Avg);

    let net = Sequential::with_prefix(Some("net_"), None);
    {
        let _s = net.name_scope();
        net.add(Conv2D::builder(4, [3, 3]).in_channels(3).build().unwrap());
        net.add(GlobalMaxPool2D::new());
    }
    assert_eq!(
        net.to_string(),
        "Sequential(\n  (0): Conv2D(3 -> 4, kernel_size=(3, 3), stride=(1, 1))\n  (1): GlobalMaxPool2D(size=(1, 1), stride=(1, 1), padding=(0, 0), ceil_mode=True, global_pool=True, pool_type=max, layout=NCHW)\n)"
    );
}
