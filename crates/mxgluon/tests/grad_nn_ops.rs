//! Gradients of the neural-network and shape operators, through autograd, against float64
//! finite differences (property tests over random shapes and values).

#[path = "common/gradcheck.rs"]
mod gradcheck;

use gradcheck::check_grad;
use mxgluon::nd::{self, ActType, BatchNormOptions, LeakyAct, NDArray};
use mxgluon::{autograd, random, Context};
use proptest::prelude::*;

fn arr(v: &[f64], shape: &[usize]) -> NDArray {
    let n: usize = shape.iter().product();
    NDArray::from_vec(v[..n].to_vec(), shape, Context::cpu(0)).unwrap()
}

/// Values in ±[0.2, 2] (away from the kinks at 0).
fn vals(n: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec((0.2f64..2.0, any::<bool>()), n)
        .prop_map(|v| v.into_iter().map(|(x, s)| if s { -x } else { x }).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn activations_and_softmax(r in 1usize..4, c in 1usize..5, v in vals(64), g in vals(8)) {
        let x = arr(&v, &[r, c]);
        for act in [ActType::Relu, ActType::Sigmoid, ActType::Tanh, ActType::SoftRelu, ActType::SoftSign] {
            check_grad(&format!("{act}"), vec![x.clone()], |i| nd::activation(&i[0], act), 1e-5);
        }
        check_grad("leaky", vec![x.clone()], |i| nd::leaky_relu(&i[0], LeakyAct::Leaky, 0.2, None), 1e-5);
        check_grad("elu", vec![x.clone()], |i| nd::leaky_relu(&i[0], LeakyAct::Elu, 0.7, None), 1e-5);
        check_grad("gelu", vec![x.clone()], |i| nd::leaky_relu(&i[0], LeakyAct::Gelu, 0.0, None), 1e-5);
        check_grad("selu", vec![x.clone()], |i| nd::leaky_relu(&i[0], LeakyAct::Selu, 0.0, None), 1e-5);
        let gamma = arr(&g, &[c]);
        check_grad("prelu", vec![x.clone(), gamma], |i| nd::leaky_relu(&i[0], LeakyAct::Prelu, 0.0, Some(&i[1])), 1e-5);
        check_grad("softmax", vec![x.clone()], |i| nd::softmax(&i[0], -1), 1e-5);
        check_grad("softmax0", vec![x.clone()], |i| nd::softmax(&i[0], 0), 1e-5);
        check_grad("softmax_t", vec![x.clone()], |i| nd::softmax_with_temperature(&i[0], 1, 2.5), 1e-5);
        check_grad("log_softmax", vec![x.clone()], |i| nd::log_softmax(&i[0], 1), 1e-5);
        let idx = arr(&(0..r).map(|k| (k % c) as f64).collect::<Vec<_>>(), &[r]);
        check_grad("pick", vec![x.clone()], |i| nd::pick(&i[0], &idx, -1, true), 1e-6);
        check_grad("dropout", vec![x], |i| {
            random::seed(3);
            let _t = autograd::train_mode();
            nd::dropout(&i[0], 0.4)
        }, 1e-6);
    }

    #[test]
    fn normalization(n in 2usize..5, c in 1usize..4, w in 1usize..3, v in vals(64), p in vals(8)) {
        let x = arr(&v, &[n, c, w]);
        let gamma = arr(&p, &[c]);
        let beta = arr(&p[4..], &[c]);
        for (training, fix_gamma) in [(true, false), (true, true), (false, false)] {
            let opts = BatchNormOptions { fix_gamma, ..BatchNormOptions::default() };
            check_grad(&format!("batch_norm train={training} fix={fix_gamma}"), vec![x.clone(), gamma.clone(), beta.clone()], |i| {
                // Fresh running statistics for each probe: the training pass updates them.
                let rm = NDArray::from_vec(vec![0.1f64; c], &[c], Context::cpu(0))?;
                let rv = NDArray::from_vec(vec![1.5f64; c], &[c], Context::cpu(0))?;
                nd::batch_norm(&i[0], &i[1], &i[2], &rm, &rv, &opts, training)
            }, 1e-4);
        }
        let g2 = arr(&p, &[w]);
        let b2 = arr(&p[3..], &[w]);
        check_grad("layer_norm", vec![x.clone(), g2, b2], |i| nd::layer_norm(&i[0], &i[1], &i[2], -1, 1e-5), 1e-4);
        let g1 = arr(&p, &[c]);
        let b1 = arr(&p[2..], &[c]);
        check_grad("layer_norm_axis1", vec![x, g1, b1], |i| nd::layer_norm(&i[0], &i[1], &i[2], 1, 1e-5), 1e-4);
    }

    #[test]
    fn shape_operators(a in 1usize..4, b in 1usize..4, c in 1usize..4, v in vals(64), u in vals(64)) {
        let x = arr(&v, &[a, b, c]);
        let y = arr(&u, &[a, 2, c]);
        check_grad("concat", vec![x.clone(), y], |i| nd::concat(&[&i[0], &i[1]], 1), 1e-6);
        check_grad("slice_axis", vec![x.clone()], |i| nd::slice_axis(&i[0], 2, 0, c.div_ceil(2)), 1e-6);
        let idx = arr(&[0.0, (a - 1) as f64, 0.0], &[3]);
        check_grad("take", vec![x.clone()], |i| nd::take(&i[0], &idx, 0), 1e-6);
        check_grad("transpose", vec![x.clone()], |i| nd::transpose(&i[0], &[2, 0, 1]), 1e-6);
        check_grad("transpose_rev", vec![x.clone()], |i| nd::transpose(&i[0], &[]), 1e-6);
        check_grad("flatten", vec![x.clone()], |i| nd::flatten(&i[0])?.square(), 1e-6);
        let small = arr(&u, &[b, 1]);
        check_grad("broadcast_to", vec![small], |i| nd::broadcast_to(&i[0], &[a, b, c]), 1e-6);
        let table = arr(&u, &[4, c]);
        let ids = arr(&[3.0, 1.0, 3.0, 0.0], &[2, 2]);
        check_grad("embedding", vec![table], |i| nd::embedding(&ids, &i[0]), 1e-6);
    }
}
