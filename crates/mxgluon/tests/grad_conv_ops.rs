//! Gradients of convolution and pooling, through autograd, against float64 central finite
//! differences (property tests over random geometry and values).

#[path = "common/gradcheck.rs"]
mod gradcheck;

use gradcheck::check_grad;
use mxgluon::nd::{self, ConvOptions, NDArray, PoolOptions, PoolType, PoolingConvention};
use mxgluon::{autograd, Context, GradReq};
use proptest::prelude::*;

fn arr(v: &[f64], shape: &[usize]) -> NDArray {
    let n: usize = shape.iter().product();
    NDArray::from_vec(v[..n].to_vec(), shape, Context::cpu(0)).unwrap()
}

fn vals(n: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(-2.0f64..2.0, n)
}

/// `n` distinct values at least 0.05 apart, in a random order (max pooling away from ties).
fn distinct(n: usize) -> impl Strategy<Value = Vec<f64>> {
    Just((0..n).map(|i| i as f64 * 0.05 - 1.0).collect::<Vec<f64>>()).prop_shuffle()
}

/// Whether a dilated kernel fits every padded spatial size.
fn fits(input: &[usize], k: &[usize], d: &[usize], p: &[usize]) -> bool {
    (0..input.len()).all(|i| (k[i] - 1) * d[i] < input[i] + 2 * p[i])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn convolution_2d(
        n in 1usize..3, groups in 1usize..3, cg in 1usize..3, mg in 1usize..3,
        h in 1usize..6, w in 1usize..6, kh in 1usize..4, kw in 1usize..4,
        sh in 1usize..3, sw in 1usize..4, dh in 1usize..3, dw in 1usize..3,
        ph in 0usize..3, pw in 0usize..2, bias in any::<bool>(),
        xv in vals(2 * 4 * 25), wv in vals(4 * 2 * 9), bv in vals(4),
    ) {
        prop_assume!(fits(&[h, w], &[kh, kw], &[dh, dw], &[ph, pw]));
        let (c, m) = (cg * groups, mg * groups);
        let x = arr(&xv, &[n, c, h, w]);
        let wt = arr(&wv, &[m, cg, kh, kw]);
        let o = ConvOptions::new(&[kh, kw], m).stride(&[sh, sw]).dilate(&[dh, dw]).pad(&[ph, pw])
            .num_group(groups).no_bias(!bias);
        let name = format!("conv2d {o:?} x {:?}", x.shape());
        if bias {
            check_grad(&name, vec![x, wt, arr(&bv, &[m])], |i| nd::convolution(&i[0], &i[1], Some(&i[2]), &o), 1e-6);
        } else {
            check_grad(&name, vec![x, wt], |i| nd::convolution(&i[0], &i[1], None, &o), 1e-6);
        }
    }

    #[test]
    fn convolution_1d_and_3d(
        n in 1usize..3, groups in 1usize..3, len in 1usize..8, k in 1usize..4, s in 1usize..3,
        d in 1usize..3, p in 0usize..3, xv in vals(2 * 2 * 64), wv in vals(2 * 2 * 27), bv in vals(4),
    ) {
        prop_assume!(fits(&[len], &[k], &[d], &[p]));
        let x = arr(&xv, &[n, groups, len]);
        let wt = arr(&wv, &[2 * groups, 1, k]);
        let o = ConvOptions::new(&[k], 2 * groups).stride(&[s]).dilate(&[d]).pad(&[p]).num_group(groups);
        check_grad(&format!("conv1d {o:?} x {:?}", x.shape()), vec![x, wt, arr(&bv, &[2 * groups])],
            |i| nd::convolution(&i[0], &i[1], Some(&i[2]), &o), 1e-6);
        // 3-D: a small cube with kernel up to 2 per axis.
        let k3 = [k.min(2), 1 + k % 2, 2];
        let in3 = [2, 3, len.clamp(2, 4)];
        prop_assume!(fits(&in3, &k3, &[1, d, 1], &[p.min(1), 0, 1]));
        let x3 = arr(&xv, &[1, 2, in3[0], in3[1], in3[2]]);
        let w3 = arr(&wv, &[2, 2, k3[0], k3[1], k3[2]]);
        let o3 = ConvOptions::new(&k3, 2).stride(&[1, s, 1]).dilate(&[1, d, 1]).pad(&[p.min(1), 0, 1]).no_bias(true);
        check_grad(&format!("conv3d {o3:?}"), vec![x3, w3], |i| nd::convolution(&i[0], &i[1], None, &o3), 1e-6);
    }

    #[test]
    fn pooling_avg_and_sum(
        n in 1usize..3, c in 1usize..3, h in 1usize..7, w in 1usize..7, kh in 1usize..4, kw in 1usize..4,
        sh in 1usize..3, sw in 1usize..4, ph in 0usize..2, pw in 0usize..3,
        full in any::<bool>(), include in any::<bool>(), xv in vals(2 * 2 * 49),
    ) {
        prop_assume!(kh <= h + 2 * ph && kw <= w + 2 * pw);
        let x = arr(&xv, &[n, c, h, w]);
        let conv = if full { PoolingConvention::Full } else { PoolingConvention::Valid };
        for pt in [PoolType::Avg, PoolType::Sum] {
            let o = PoolOptions::new(&[kh, kw], pt).stride(&[sh, sw]).pad(&[ph, pw])
                .pooling_convention(conv).count_include_pad(include);
            check_grad(&format!("pool {o:?} x {:?}", x.shape()), vec![x.clone()], |i| nd::pooling(&i[0], &o), 1e-6);
        }
        check_grad("global avg", vec![x.clone()], |i| nd::pooling(&i[0], &PoolOptions::global(PoolType::Avg)), 1e-6);
        let x1 = arr(&xv, &[n, c, h * w]);
        let o1 = PoolOptions::new(&[kw], PoolType::Avg).stride(&[sw]).pad(&[pw]).pooling_convention(conv);
        prop_assume!(kw <= h * w + 2 * pw);
        check_grad("pool1d avg", vec![x1], |i| nd::pooling(&i[0], &o1), 1e-6);
    }

    #[test]
    fn pooling_max_away_from_ties(
        n in 1usize..3, c in 1usize..3, h in 1usize..7, w in 1usize..7, kh in 1usize..4, kw in 1usize..4,
        sh in 1usize..3, sw in 1usize..4, ph in 0usize..2, pw in 0usize..3, full in any::<bool>(),
        xv in distinct(2 * 2 * 49),
    ) {
        prop_assume!(kh <= h + 2 * ph && kw <= w + 2 * pw);
        let x = arr(&xv, &[n, c, h, w]);
        let conv = if full { PoolingConvention::Full } else { PoolingConvention::Valid };
        let o = PoolOptions::new(&[kh, kw], PoolType::Max).stride(&[sh, sw]).pad(&[ph, pw]).pooling_convention(conv);
        // A window entirely in the padding yields the lowest float, whose finite differences
        // are meaningless.
        let y = nd::pooling(&x, &o).unwrap();
        prop_assume!(y.to_f64_vec().iter().all(|v| *v > -1e300));
        check_grad(&format!("max pool {o:?} x {:?}", x.shape()), vec![x.clone()], |i| nd::pooling(&i[0], &o), 1e-6);
        check_grad("global max", vec![x], |i| nd::pooling(&i[0], &PoolOptions::global(PoolType::Max)), 1e-6);
    }
}

/// The weight and bias gradients written straight into the variables' buffers (`write` and
/// `add`) equal the values `autograd::grad` returns.
#[test]
fn gradient_buffers_write_and_accumulate() {
    let xv: Vec<f64> = (0..2 * 4 * 36)
        .map(|i| ((i * 37 % 19) as f64) * 0.1 - 0.9)
        .collect();
    let wv: Vec<f64> = (0..6 * 2 * 9)
        .map(|i| ((i * 11 % 7) as f64) * 0.2 - 0.6)
        .collect();
    let o = ConvOptions::new(&[3, 3], 6)
        .pad(&[1, 1])
        .stride(&[2, 1])
        .num_group(2);
    for req in [GradReq::Write, GradReq::Add] {
        let mut x = arr(&xv, &[2, 4, 6, 6]);
        let mut w = arr(&wv, &[6, 2, 3, 3]);
        let mut b = arr(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], &[6]);
        for v in [&mut x, &mut w, &mut b] {
            v.attach_grad(req).unwrap();
        }
        let run = || {
            let y = {
                let _r = autograd::record();
                nd::convolution(&x, &w, Some(&b), &o)
                    .unwrap()
                    .square()
                    .unwrap()
            };
            y.backward().unwrap();
            y
        };
        let y = run();
        let expect = {
            let _r = autograd::record();
            let y2 = nd::convolution(&x, &w, Some(&b), &o)
                .unwrap()
                .square()
                .unwrap();
            autograd::grad(&[&y2], &[&x, &w, &b], None, false).unwrap()
        };
        assert_eq!(y.shape(), &[2, 6, 3, 6]);
        for (v, e) in [&x, &w, &b].iter().zip(&expect) {
            assert_eq!(v.grad().unwrap().to_f64_vec(), e.to_f64_vec());
        }
        run();
        let scale = if req == GradReq::Add { 2.0 } else { 1.0 };
        for (v, e) in [&x, &w, &b].iter().zip(&expect) {
            let got = v.grad().unwrap().to_f64_vec();
            for (g, e) in got.iter().zip(e.to_f64_vec()) {
                // Accumulating sums in another order: equal up to rounding.
                assert!(
                    (g - e * scale).abs() <= 1e-12 * e.abs().max(1.0),
                    "{req:?}: {g} vs {}",
                    e * scale
                );
            }
        }
    }
}

/// Only the tracked inputs get gradients; pooling's gradient flows through a chain.
#[test]
fn untracked_inputs_and_chains() {
    let mut x = arr(
        &(0..32).map(|i| (i as f64 * 0.37).sin()).collect::<Vec<_>>(),
        &[1, 2, 4, 4],
    );
    let w = arr(&[0.5; 2 * 2 * 4], &[2, 2, 2, 2]);
    x.attach_grad(GradReq::Write).unwrap();
    let o = ConvOptions::new(&[2, 2], 2).no_bias(true);
    let y = {
        let _r = autograd::record();
        let c = nd::convolution(&x, &w, None, &o).unwrap();
        nd::pooling(&c, &PoolOptions::global(PoolType::Avg)).unwrap()
    };
    y.backward().unwrap();
    // d(mean of the 3×3 conv outputs of channel m)/dx = Σ_m w · (window count) / 9.
    let g = x.grad().unwrap().to_f64_vec();
    assert_eq!(g[0], 2.0 * 0.5 / 9.0);
    assert_eq!(g[5], 2.0 * 0.5 * 4.0 / 9.0);
    assert!(w.grad().is_none());
}
