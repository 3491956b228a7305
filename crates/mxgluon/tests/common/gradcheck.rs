//! Finite-difference gradient checking in float64.

use mxgluon::{autograd, Context, GradReq, NDArray};

/// Compares the autograd gradient of `f` at `inputs` (float64 arrays) with central finite
/// differences of `L = Σ f(inputs) ⊙ head`, for a fixed pseudo-random `head`. Panics with a
/// description of the worst element when they differ by more than `tol` (relative to
/// max(1, |numeric|)).
pub fn check_grad(
    name: &str,
    inputs: Vec<NDArray>,
    f: impl Fn(&[NDArray]) -> mxgluon::Result<NDArray>,
    tol: f64,
) {
    let mut vars: Vec<NDArray> = inputs
        .iter()
        .map(|a| a.copy_to(a.context()).unwrap())
        .collect();
    for v in vars.iter_mut() {
        v.attach_grad(GradReq::Write).unwrap();
    }
    let y = {
        let _r = autograd::record();
        f(&vars).unwrap()
    };
    let n = y.size();
    let head: Vec<f64> = (0..n)
        .map(|i| ((i * 7919 % 17) as f64 - 8.0) / 8.0)
        .collect();
    let head_arr = NDArray::from_vec(head.clone(), y.shape(), Context::cpu(0)).unwrap();
    let refs: Vec<&NDArray> = vars.iter().collect();
    let analytic = autograd::grad(&[&y], &refs, Some(&[head_arr]), false).unwrap();
    let loss = |xs: &[NDArray]| -> f64 {
        let y = f(xs).unwrap().to_f64_vec();
        y.iter().zip(&head).map(|(a, b)| a * b).sum()
    };
    let h = 1e-6;
    for (k, inp) in inputs.iter().enumerate() {
        let base = inp.to_f64_vec();
        let got = analytic[k].to_f64_vec();
        assert_eq!(
            got.len(),
            base.len(),
            "{name}: gradient {k} has the wrong size"
        );
        for i in 0..base.len() {
            let probe = |delta: f64| {
                let xs: Vec<NDArray> = inputs
                    .iter()
                    .enumerate()
                    .map(|(j, a)| {
                        let c = a.copy_to(a.context()).unwrap();
                        if j == k {
                            let mut v = base.clone();
                            v[i] += delta;
                            c.copy_from_slice(&v).unwrap();
                        }
                        c
                    })
                    .collect();
                loss(&xs)
            };
            let numeric = (probe(h) - probe(-h)) / (2.0 * h);
            let err = (numeric - got[i]).abs() / numeric.abs().max(1.0);
            assert!(
                err <= tol,
                "{name}: d/d input{k}[{i}]: autograd {} vs finite difference {numeric}",
                got[i]
            );
        }
    }
}
