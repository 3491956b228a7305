//! Gradients of the basic operators against float64 finite differences (property tests over
//! random shapes and values).

mod common;
#[path = "common/gradcheck.rs"]
mod gradcheck;

use gradcheck::check_grad;
use mxgluon::{nd, Context, NDArray};
use proptest::prelude::*;

fn arr(v: Vec<f64>, shape: &[usize]) -> NDArray {
    NDArray::from_vec(v, shape, Context::cpu(0)).unwrap()
}

/// Values away from 0 (for div, log, sqrt, abs) in [0.5, 2] with a random sign when `signed`.
fn vals(n: usize, signed: bool) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec((0.5f64..2.0, any::<bool>()), n).prop_map(move |v| {
        v.into_iter()
            .map(|(x, s)| if signed && s { -x } else { x })
            .collect()
    })
}

fn shapes() -> impl Strategy<Value = (usize, usize)> {
    (1usize..4, 1usize..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn binary_broadcast((r, c) in shapes(), seed in vals(32, true), seed2 in vals(32, true)) {
        let a = arr(seed[..r * c].to_vec(), &[r, c]);
        let b = arr(seed2[..c].to_vec(), &[c]);
        let bcol = arr(seed2[..r].to_vec(), &[r, 1]);
        check_grad("add", vec![a.clone(), b.clone()], |x| nd::add(&x[0], &x[1]), 1e-6);
        check_grad("sub", vec![a.clone(), bcol.clone()], |x| nd::sub(&x[0], &x[1]), 1e-6);
        check_grad("mul", vec![a.clone(), b.clone()], |x| nd::mul(&x[0], &x[1]), 1e-6);
        check_grad("div", vec![a.clone(), bcol.clone()], |x| nd::div(&x[0], &x[1]), 1e-5);
        check_grad("div_rev", vec![b.clone(), a.clone()], |x| nd::div(&x[0], &x[1]), 1e-5);
        let a2 = arr(seed2[..r * c].to_vec(), &[r, c]);
        check_grad("maximum", vec![a.clone(), a2.clone()], |x| nd::maximum(&x[0], &x[1]), 1e-6);
        check_grad("minimum", vec![a, a2], |x| nd::minimum(&x[0], &x[1]), 1e-6);
    }

    #[test]
    fn unary_and_scalar((r, c) in shapes(), pos in vals(32, false), signed in vals(32, true)) {
        let p = arr(pos[..r * c].to_vec(), &[r, c]);
        let s = arr(signed[..r * c].to_vec(), &[r, c]);
        check_grad("neg", vec![s.clone()], |x| x[0].neg(), 1e-6);
        check_grad("abs", vec![s.clone()], |x| x[0].abs(), 1e-6);
        check_grad("square", vec![s.clone()], |x| x[0].square(), 1e-6);
        check_grad("sqrt", vec![p.clone()], |x| x[0].sqrt(), 1e-5);
        check_grad("exp", vec![s.clone()], |x| x[0].exp(), 1e-5);
        check_grad("log", vec![p.clone()], |x| x[0].log(), 1e-5);
        check_grad("add_scalar", vec![s.clone()], |x| x[0].add_scalar(1.5), 1e-6);
        check_grad("sub_scalar", vec![s.clone()], |x| x[0].sub_scalar(1.5), 1e-6);
        check_grad("rsub_scalar", vec![s.clone()], |x| x[0].rsub_scalar(1.5), 1e-6);
        check_grad("mul_scalar", vec![s.clone()], |x| x[0].mul_scalar(-2.5), 1e-6);
        check_grad("div_scalar", vec![s.clone()], |x| x[0].div_scalar(4.0), 1e-6);
        check_grad("rdiv_scalar", vec![s.clone()], |x| x[0].rdiv_scalar(3.0), 1e-5);
        // Values are at least 0.5 away from the kinks at ±0.25.
        check_grad("maximum_scalar", vec![s.clone()], |x| x[0].maximum_scalar(0.25), 1e-6);
        check_grad("minimum_scalar", vec![s.clone()], |x| x[0].minimum_scalar(-0.25), 1e-6);
        check_grad("relu", vec![s.clone()], |x| x[0].relu(), 1e-6);
        check_grad("clip", vec![s.clone()], |x| x[0].clip(-1.0, 1.0), 1e-6);
        check_grad("astype", vec![s.clone()], |x| x[0].astype(mxgluon::DType::Float64), 1e-6);
        check_grad("copy_to", vec![s], |x| x[0].copy_to(Context::cpu(1))?.copy_to(Context::cpu(0)), 1e-6);
    }

    #[test]
    fn reductions_and_reshape(d0 in 1usize..4, d1 in 1usize..4, d2 in 1usize..4, v in vals(64, true)) {
        let n = d0 * d1 * d2;
        let a = arr(v[..n].to_vec(), &[d0, d1, d2]);
        check_grad("sum", vec![a.clone()], |x| x[0].sum(), 1e-6);
        check_grad("mean", vec![a.clone()], |x| x[0].mean(), 1e-6);
        check_grad("sum_axis1", vec![a.clone()], |x| x[0].sum_axis(&[1], false), 1e-6);
        check_grad("sum_axis02_keep", vec![a.clone()], |x| x[0].sum_axis(&[0, 2], true), 1e-6);
        check_grad("mean_axis2", vec![a.clone()], |x| x[0].mean_axis(&[2], false), 1e-6);
        check_grad("mean_axis_all", vec![a.clone()], |x| x[0].mean_axis(&[], true), 1e-6);
        check_grad("reshape", vec![a.clone()], |x| x[0].reshape(&[n]), 1e-6);
        check_grad("reshape_infer", vec![a], |x| x[0].reshape_infer(&[0, -1])?.square(), 1e-6);
    }

    #[test]
    fn matrix_products(m in 1usize..4, k in 1usize..4, n in 1usize..4, v in vals(64, true), w in vals(64, true)) {
        let a = arr(v[..m * k].to_vec(), &[m, k]);
        let at = arr(v[..m * k].to_vec(), &[k, m]);
        let b = arr(w[..k * n].to_vec(), &[k, n]);
        let bt = arr(w[..k * n].to_vec(), &[n, k]);
        check_grad("dot", vec![a.clone(), b.clone()], |x| nd::dot(&x[0], &x[1]), 1e-6);
        check_grad("dot_ta", vec![at.clone(), b.clone()], |x| nd::dot_t(&x[0], &x[1], true, false), 1e-6);
        check_grad("dot_tb", vec![a.clone(), bt.clone()], |x| nd::dot_t(&x[0], &x[1], false, true), 1e-6);
        check_grad("dot_tab", vec![at, bt.clone()], |x| nd::dot_t(&x[0], &x[1], true, true), 1e-6);
        let a3 = arr(v[..2 * m * k].to_vec(), &[2, m, k]);
        check_grad("dot_3d", vec![a3, b], |x| nd::dot(&x[0], &x[1]), 1e-6);
        let bias = arr(w[..n].to_vec(), &[n]);
        check_grad("fully_connected", vec![a.clone(), bt.clone(), bias], |x| nd::fully_connected(&x[0], &x[1], Some(&x[2]), n), 1e-6);
        check_grad("fully_connected_nobias", vec![a.clone(), bt.clone()], |x| nd::fully_connected(&x[0], &x[1], None, n), 1e-6);
        let x4 = arr(v[..2 * m * k].to_vec(), &[2, m, k]);
        check_grad("fully_connected_flatten", vec![x4.clone(), arr(w[..n * m * k].to_vec(), &[n, m * k])], |x| nd::fully_connected(&x[0], &x[1], None, n), 1e-6);
        check_grad("fully_connected_noflatten", vec![x4, bt], |x| nd::fully_connected_with(&x[0], &x[1], None, n, false), 1e-6);
        // A weight used twice: contributions are summed before being stored.
        check_grad("shared_weight", vec![a], |x| nd::dot_t(&x[0], &x[0], false, true), 1e-6);
    }
}
