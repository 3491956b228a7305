//! Row-sparse and CSR operations against dense float64 references, including property tests
//! over random row sets.

use mxgluon::nd::{sparse, CSRNDArray, NDArray, RowSparseNDArray};
use mxgluon::{Context, DType, Error};
use proptest::prelude::*;

fn cpu() -> Context {
    Context::cpu(0)
}

/// Dense f64 table of `rows` x `cols` holding `vals[k]` in row `ids[k]` (repeats summed).
fn dense_ref(ids: &[i64], vals: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut d = vec![0.0; rows * cols];
    for (k, &r) in ids.iter().enumerate() {
        for c in 0..cols {
            d[r as usize * cols + c] += vals[k * cols + c];
        }
    }
    d
}

fn rsp(ids: &[i64], vals: &[f64], rows: usize, cols: usize) -> RowSparseNDArray {
    let v = NDArray::from_vec(vals.to_vec(), &[ids.len(), cols], cpu()).unwrap();
    RowSparseNDArray::from_row_ids(ids, &v, &[rows, cols]).unwrap()
}

fn ids_and_vals(rows: usize, cols: usize) -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
    prop::collection::vec(0..rows as i64, 0..12)
        .prop_flat_map(move |ids| {
            let n = ids.len() * cols;
            (Just(ids), prop::collection::vec(-4i32..5, n))
        })
        .prop_map(|(ids, v)| (ids, v.into_iter().map(|x| x as f64 * 0.25).collect()))
}

#[test]
fn construction_errors() {
    let v = NDArray::zeros(&[2, 3], DType::Float32, cpu()).unwrap();
    let unsorted = NDArray::from_vec(vec![3i64, 1], &[2], cpu()).unwrap();
    assert!(matches!(
        RowSparseNDArray::new(v.clone(), unsorted, &[5, 3]),
        Err(Error::InvalidSparse { .. })
    ));
    assert!(RowSparseNDArray::from_row_ids(&[0, 9], &v, &[5, 3]).is_err());
    assert!(RowSparseNDArray::from_row_ids(&[0], &v, &[5, 3]).is_err());
    let data = NDArray::zeros(&[2], DType::Float32, cpu()).unwrap();
    let bad_ptr = NDArray::from_vec(vec![0i64, 2, 1], &[3], cpu()).unwrap();
    let cols = NDArray::from_vec(vec![0i64, 1], &[2], cpu()).unwrap();
    assert!(matches!(
        CSRNDArray::new(data, cols, bad_ptr, &[2, 2]),
        Err(Error::InvalidSparse { .. })
    ));
    assert!(RowSparseNDArray::sum(&[]).is_err());
}

#[test]
fn display_matches_mxnet_repr() {
    let r = RowSparseNDArray::zeros(&[4, 2], DType::Float32, cpu()).unwrap();
    assert_eq!(r.to_string(), "<RowSparseNDArray 4x2 @cpu(0)>");
    let c = CSRNDArray::zeros(&[3, 5], DType::Float32, cpu()).unwrap();
    assert_eq!(c.to_string(), "<CSRNDArray 3x5 @cpu(0)>");
}

#[test]
fn huge_tables_cost_only_their_rows() {
    // 100M logical rows: nothing of that size is ever allocated
    let g = rsp(&[99_999_999, 3, 3], &[1.0, 2.0, 3.0], 100_000_000, 1);
    assert_eq!(g.indices_vec(), vec![3, 99_999_999]);
    assert_eq!(g.values().to_f64_vec(), vec![5.0, 1.0]);
    let s = RowSparseNDArray::sum(&[g.clone(), g.clone(), g]).unwrap();
    assert_eq!(s.values().to_f64_vec(), vec![15.0, 3.0]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn from_row_ids_add_sum_match_dense((a_ids, a_v) in ids_and_vals(9, 3), (b_ids, b_v) in ids_and_vals(9, 3), (c_ids, c_v) in ids_and_vals(9, 3)) {
        let (a, b, c) = (rsp(&a_ids, &a_v, 9, 3), rsp(&b_ids, &b_v, 9, 3), rsp(&c_ids, &c_v, 9, 3));
        let (da, db, dc) = (dense_ref(&a_ids, &a_v, 9, 3), dense_ref(&b_ids, &b_v, 9, 3), dense_ref(&c_ids, &c_v, 9, 3));
        prop_assert_eq!(a.to_dense().unwrap().to_f64_vec(), da.clone());
        let mut want_ids: Vec<i64> = a_ids.clone();
        want_ids.sort();
        want_ids.dedup();
        prop_assert_eq!(a.indices_vec(), want_ids);
        let ab: Vec<f64> = da.iter().zip(&db).map(|(x, y)| x + y).collect();
        prop_assert_eq!(a.add(&b).unwrap().to_dense().unwrap().to_f64_vec(), ab.clone());
        let abc: Vec<f64> = ab.iter().zip(&dc).map(|(x, y)| x + y).collect();
        prop_assert_eq!(RowSparseNDArray::sum(&[a.clone(), b.clone(), c]).unwrap().to_dense().unwrap().to_f64_vec(), abc);
        // add_to_dense
        let t = NDArray::from_vec(db.clone(), &[9, 3], cpu()).unwrap();
        a.add_to_dense(&t).unwrap();
        prop_assert_eq!(t.to_f64_vec(), ab);
    }

    #[test]
    fn gather_and_retain_match_dense((a_ids, a_v) in ids_and_vals(9, 2), want in prop::collection::vec(0i64..9, 0..10)) {
        let a = rsp(&a_ids, &a_v, 9, 2);
        let da = dense_ref(&a_ids, &a_v, 9, 2);
        let rows = NDArray::from_vec(want.clone(), &[want.len()], cpu()).unwrap();
        let mut keep = [false; 9];
        for &r in &want { keep[r as usize] = true; }
        let masked: Vec<f64> = da.iter().enumerate().map(|(i, &x)| if keep[i / 2] { x } else { 0.0 }).collect();
        let table = NDArray::from_vec(da.clone(), &[9, 2], cpu()).unwrap();
        let g = RowSparseNDArray::gather(&table, &rows).unwrap();
        prop_assert_eq!(g.to_dense().unwrap().to_f64_vec(), masked.clone());
        prop_assert_eq!(a.retain(&rows).unwrap().to_dense().unwrap().to_f64_vec(), masked);
    }

    #[test]
    fn dots_match_dense(cells in prop::collection::vec(prop::option::weighted(0.4, -3i32..4), 20), b in prop::collection::vec(-3i32..4, 15)) {
        let (m, k, n) = (4usize, 5usize, 3usize);
        let a: Vec<f64> = cells.iter().map(|c| c.map_or(0.0, |v| v as f64)).collect();
        let csr = CSRNDArray::from_dense(&NDArray::from_vec(a.clone(), &[m, k], cpu()).unwrap()).unwrap();
        let bv: Vec<f64> = b.iter().map(|&v| v as f64).collect();
        let mut want = vec![0.0; m * n];
        for i in 0..m { for l in 0..k { for j in 0..n { want[i * n + j] += a[i * k + l] * bv[l * n + j]; } } }
        let bd = NDArray::from_vec(bv.clone(), &[k, n], cpu()).unwrap();
        prop_assert_eq!(sparse::dot_csr_dense(&csr, &bd).unwrap().to_f64_vec(), want.clone());
        let brsp = RowSparseNDArray::from_dense(&bd).unwrap();
        prop_assert_eq!(sparse::dot_csr_rsp(&csr, &brsp).unwrap().to_f64_vec(), want);
        // transpose: (k, m) . (m, n) with a (m, n) right-hand side
        let c: Vec<f64> = (0..m * n).map(|i| i as f64 - 5.0).collect();
        let mut want_t = vec![0.0; k * n];
        for l in 0..k { for i in 0..m { for j in 0..n { want_t[l * n + j] += a[i * k + l] * c[i * n + j]; } } }
        let t = sparse::dot_csr_t_dense(&csr, &NDArray::from_vec(c, &[m, n], cpu()).unwrap()).unwrap();
        prop_assert_eq!(t.to_dense().unwrap().to_f64_vec(), want_t);
    }
}
