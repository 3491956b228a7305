//! Elementwise ops, reductions and dot against f64 references.

use mxgluon::{nd, nd::NDArray, Context, DType, Error};
use proptest::prelude::*;

fn cpu() -> Context {
    Context::cpu(0)
}

/// Reference broadcast: value of `a` (with `shape`) at output index `idx` of `out`.
fn bget(a: &[f64], shape: &[usize], out: &[usize], idx: &[usize]) -> f64 {
    let pad = out.len() - shape.len();
    let mut flat = 0;
    for (i, &d) in shape.iter().enumerate() {
        let j = if d == 1 { 0 } else { idx[pad + i] };
        flat = flat * d + j;
    }
    a[flat]
}

fn unravel(mut f: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = f % shape[d];
        f /= shape[d];
    }
    idx
}

/// Two broadcast-compatible shapes: a base shape and a derived one with some axes set to 1
/// and some leading axes dropped.
fn bshapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..5, 0..4).prop_flat_map(|base| {
        let n = base.len();
        (
            Just(base),
            prop::collection::vec(any::<bool>(), n),
            prop::collection::vec(any::<bool>(), n),
            0..=n,
        )
            .prop_map(|(base, ma, mb, drop)| {
                let a: Vec<usize> = base
                    .iter()
                    .zip(&ma)
                    .map(|(&d, &m)| if m { 1 } else { d })
                    .collect();
                let b: Vec<usize> = base
                    .iter()
                    .zip(&mb)
                    .map(|(&d, &m)| if m { 1 } else { d })
                    .collect();
                (a, b[drop..].to_vec())
            })
    })
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

fn close(got: &[f64], want: &[f64], tol: f64) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn broadcast_arith_matches_reference((sa, sb) in bshapes(), seed in any::<u64>(), dt in prop::sample::select(vec![DType::Float32, DType::Float64, DType::Float16, DType::BFloat16])) {
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        let va = values(na, seed);
        // keep divisors away from zero
        let vb: Vec<f32> = values(nb, seed ^ 0xabc).iter().map(|v| if v.abs() < 0.25 { v + 0.5 } else { *v }).collect();
        let a = NDArray::from_slice(&va, &sa, cpu()).unwrap().astype(dt).unwrap();
        let b = NDArray::from_slice(&vb, &sb, cpu()).unwrap().astype(dt).unwrap();
        let (fa, fb) = (a.to_f64_vec(), b.to_f64_vec());
        let tol = match dt { DType::Float16 => 2e-3, DType::BFloat16 => 1e-2, DType::Float32 => 1e-6, _ => 1e-12 };
        for (name, f) in [("add", 0), ("sub", 1), ("mul", 2), ("div", 3)] {
            let c = match f { 0 => nd::add(&a, &b), 1 => nd::sub(&a, &b), 2 => a.mul(&b), _ => a.div(&b) }.unwrap();
            let out_shape = c.shape().to_vec();
            let want: Vec<f64> = (0..c.size()).map(|i| {
                let idx = unravel(i, &out_shape);
                let (x, y) = (bget(&fa, &sa, &out_shape, &idx), bget(&fb, &sb, &out_shape, &idx));
                match f { 0 => x + y, 1 => x - y, 2 => x * y, _ => x / y }
            }).collect();
            prop_assert_eq!(c.dtype(), dt);
            prop_assert!(close(&c.to_f64_vec(), &want, tol), "{} {:?} {:?}", name, sa, sb);
        }
        // in place: b broadcasts into a when the result shape equals a's shape
        let c = nd::add(&a, &b).unwrap();
        if c.shape() == a.shape() {
            let d = a.copy_to(cpu()).unwrap();
            d.add_assign(&b).unwrap();
            prop_assert_eq!(d.to_f64_vec(), c.to_f64_vec());
        }
    }

    #[test]
    fn sums_match_reference(shape in prop::collection::vec(1usize..6, 1..4), seed in any::<u64>(), keep in any::<bool>(), axis_sel in any::<u8>()) {
        let n: usize = shape.iter().product();
        let v = values(n, seed);
        let a = NDArray::from_slice(&v, &shape, cpu()).unwrap();
        let total: f64 = v.iter().map(|&x| x as f64).sum();
        prop_assert!((a.sum().unwrap().as_scalar_f64().unwrap() - total).abs() < 1e-4);
        prop_assert!((a.mean().unwrap().as_scalar_f64().unwrap() - total / n as f64).abs() < 1e-5);
        let axes: Vec<usize> = (0..shape.len()).filter(|i| axis_sel >> i & 1 == 1).collect();
        let s = a.sum_axis(&axes, keep).unwrap();
        let m = a.mean_axis(&axes, keep).unwrap();
        let reduced = |i: usize| axes.is_empty() || axes.contains(&i);
        let kshape: Vec<usize> = shape.iter().enumerate().map(|(i, &d)| if reduced(i) { 1 } else { d }).collect();
        let mut want = vec![0f64; kshape.iter().product()];
        for (f, &x) in v.iter().enumerate() {
            let idx = unravel(f, &shape);
            let o = idx.iter().zip(&kshape).fold(0, |acc, (&i, &d)| acc * d + if d == 1 { 0 } else { i });
            want[o] += x as f64;
        }
        let cnt = (n / want.len()) as f64;
        if keep { prop_assert_eq!(s.shape(), &kshape[..]); } else { prop_assert_eq!(s.size(), want.len()); }
        prop_assert!(close(&s.to_f64_vec(), &want, 1e-5));
        let wm: Vec<f64> = want.iter().map(|w| w / cnt).collect();
        prop_assert!(close(&m.to_f64_vec(), &wm, 1e-5));
    }

    #[test]
    fn dot_matches_reference(m in 1usize..9, k in 1usize..9, n in 1usize..9, ta in any::<bool>(), tb in any::<bool>(), seed in any::<u64>(), dt in prop::sample::select(vec![DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32])) {
        let va: Vec<f32> = values(m * k, seed).iter().map(|x| if dt == DType::Int32 { (x * 4.0).round() } else { *x }).collect();
        let vb: Vec<f32> = values(k * n, !seed).iter().map(|x| if dt == DType::Int32 { (x * 4.0).round() } else { *x }).collect();
        let a = NDArray::from_slice(&va, &(if ta { [k, m] } else { [m, k] }), cpu()).unwrap().astype(dt).unwrap();
        let b = NDArray::from_slice(&vb, &(if tb { [n, k] } else { [k, n] }), cpu()).unwrap().astype(dt).unwrap();
        let (fa, fb) = (a.to_f64_vec(), b.to_f64_vec());
        let c = nd::dot_t(&a, &b, ta, tb).unwrap();
        prop_assert_eq!(c.shape(), &[m, n]);
        let mut want = vec![0f64; m * n];
        for i in 0..m { for j in 0..n { for p in 0..k {
            let x = if ta { fa[p * m + i] } else { fa[i * k + p] };
            let y = if tb { fb[j * k + p] } else { fb[p * n + j] };
            want[i * n + j] += x * y;
        }}}
        let tol = match dt { DType::Float16 => 4e-3, DType::BFloat16 => 2e-2, DType::Float32 => 1e-5, _ => 1e-12 };
        prop_assert!(close(&c.to_f64_vec(), &want, tol), "{:?} vs {:?}", c.to_f64_vec(), want);
    }
}

#[test]
fn dot_shapes_follow_mxnet() {
    let v = nd::arange(0.0, 3.0, 1.0, cpu()).unwrap();
    let d = nd::dot(&v, &v).unwrap();
    assert_eq!(d.shape(), &[1]);
    assert_eq!(d.to_vec::<f32>().unwrap(), vec![5.0]);
    let m = nd::arange(0.0, 6.0, 1.0, cpu())
        .unwrap()
        .reshape(&[2, 3])
        .unwrap();
    assert_eq!(
        nd::dot(&m, &v).unwrap().to_vec::<f32>().unwrap(),
        vec![5.0, 14.0]
    );
    let a = nd::ones(&[2, 3, 4], cpu()).unwrap();
    let b = nd::ones(&[4, 5, 6], cpu()).unwrap();
    let c = nd::dot(&a, &b).unwrap();
    assert_eq!(c.shape(), &[2, 3, 5, 6]);
    assert!(c.to_vec::<f32>().unwrap().iter().all(|&x| x == 4.0));
    assert!(matches!(nd::dot(&a, &a), Err(Error::ShapeMismatch { .. })));
}

#[test]
fn error_variants() {
    let a = nd::ones(&[2, 3], cpu()).unwrap();
    let b = nd::ones(&[3, 2], cpu()).unwrap();
    assert!(matches!(nd::add(&a, &b), Err(Error::ShapeMismatch { .. })));
    let i = NDArray::ones(&[2, 3], DType::Int32, cpu()).unwrap();
    assert!(matches!(nd::mul(&a, &i), Err(Error::DTypeMismatch { .. })));
    assert!(matches!(nd::dot(&a, &i), Err(Error::DTypeMismatch { .. })));
    let c1 = nd::ones(&[2, 3], Context::cpu(1)).unwrap();
    assert!(matches!(
        nd::sub(&a, &c1),
        Err(Error::ContextMismatch { .. })
    ));
    assert!(matches!(
        a.add_assign(&c1),
        Err(Error::ContextMismatch { .. })
    ));
    assert!(matches!(
        nd::ones(&[3], cpu()).unwrap().add_assign(&a),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        a.sum_axis(&[2], false),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        a.sum_axis(&[0, 0], false),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn in_place_aliasing_and_scalars() {
    let a = nd::arange(1.0, 5.0, 1.0, cpu()).unwrap();
    let alias = a.clone();
    a.add_assign(&alias).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0, 8.0]);
    let row = a.reshape(&[2, 2]).unwrap().slice_axis0(0, 1).unwrap();
    a.reshape(&[2, 2]).unwrap().mul_assign(&row).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![4.0, 16.0, 12.0, 32.0]);
    assert_eq!(
        a.rsub_scalar(1.0).unwrap().to_vec::<f32>().unwrap(),
        vec![-3.0, -15.0, -11.0, -31.0]
    );
    assert_eq!(
        a.rdiv_scalar(16.0).unwrap().to_vec::<f32>().unwrap(),
        vec![4.0, 1.0, 16.0 / 12.0, 0.5]
    );
    assert_eq!(
        a.sub_scalar(4.0)
            .unwrap()
            .neg()
            .unwrap()
            .relu()
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        vec![0.0; 4]
    );
    assert_eq!(
        a.clip(5.0, 20.0).unwrap().to_vec::<f32>().unwrap(),
        vec![5.0, 16.0, 12.0, 20.0]
    );
    assert_eq!(a.sqrt().unwrap().to_vec::<f32>().unwrap()[1], 4.0);
    assert_eq!(
        a.log().unwrap().exp().unwrap().to_vec::<f32>().unwrap()[0].round(),
        4.0
    );
    assert_eq!(a.max().unwrap().to_vec::<f32>().unwrap(), vec![32.0]);
    assert_eq!(a.min().unwrap().to_vec::<f32>().unwrap(), vec![4.0]);
    let i = NDArray::from_slice(&[7i32, -8, 9], &[3], cpu()).unwrap();
    assert_eq!(
        i.div_scalar(0.0).unwrap().to_vec::<i32>().unwrap(),
        vec![0, 0, 0]
    );
    assert_eq!(
        i.abs().unwrap().square().unwrap().to_vec::<i32>().unwrap(),
        vec![49, 64, 81]
    );
    assert_eq!(i.mean().unwrap().to_vec::<i32>().unwrap(), vec![2]);
    let u = NDArray::from_slice(&[250u8, 10], &[2], cpu()).unwrap();
    assert_eq!(u.sum().unwrap().to_vec::<u8>().unwrap(), vec![4]);
}

#[test]
fn large_arrays_use_parallel_paths() {
    let n = 1 << 18;
    let a = nd::full(&[n], 1.5, cpu()).unwrap();
    let b = nd::full(&[4, n / 4], 2.0, cpu()).unwrap();
    let c = nd::mul(&a.reshape(&[4, n / 4]).unwrap(), &b).unwrap();
    assert_eq!(c.sum().unwrap().as_scalar_f64().unwrap(), 3.0 * n as f64);
    let r = nd::full(&[n / 4], 1.0, cpu()).unwrap();
    let d = nd::add(&b, &r).unwrap();
    assert!(d.to_vec::<f32>().unwrap().iter().all(|&x| x == 3.0));
}
