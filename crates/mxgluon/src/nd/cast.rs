//! Conversion between every pair of dtypes.
//!
//! Rules (MXNet's C casts, made total): integer to integer wraps like C; float to integer
//! truncates toward zero and saturates (NaN becomes 0); anything to float rounds to nearest;
//! anything to `bool` is "non-zero". float16/bfloat16 go through `half`'s vectorised slice
//! conversions where one side is f32 or f64.

use std::ops::Range;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use super::storage::Buffer;
use crate::dtype::{DType, Scalar};

/// Elements per parallel task for large conversions.
const PAR_CHUNK: usize = 1 << 16;

fn convert<S: Scalar, D: Scalar>(src: &[S], dst: &mut [D], to_bool: bool) {
    if to_bool {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = if s.to_f64() != 0.0 { D::ONE } else { D::ZERO };
        }
    } else if S::IS_INT && D::IS_INT {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = D::from_i128(s.to_i128());
        }
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = D::from_f64(s.to_f64());
        }
    }
}

/// Specialised conversions that `half` vectorises; returns false when none applies.
fn convert_fast(src: &[u8], sd: DType, dst: &mut [u8], dd: DType) -> bool {
    use bytemuck::{cast_slice, cast_slice_mut};
    match (sd, dd) {
        (DType::Float16, DType::Float32) => {
            cast_slice::<u8, f16>(src).convert_to_f32_slice(cast_slice_mut(dst))
        }
        (DType::Float32, DType::Float16) => {
            cast_slice_mut::<u8, f16>(dst).convert_from_f32_slice(cast_slice(src))
        }
        (DType::BFloat16, DType::Float32) => {
            cast_slice::<u8, bf16>(src).convert_to_f32_slice(cast_slice_mut(dst))
        }
        (DType::Float32, DType::BFloat16) => {
            cast_slice_mut::<u8, bf16>(dst).convert_from_f32_slice(cast_slice(src))
        }
        (DType::Float16, DType::Float64) => {
            cast_slice::<u8, f16>(src).convert_to_f64_slice(cast_slice_mut(dst))
        }
        (DType::Float64, DType::Float16) => {
            cast_slice_mut::<u8, f16>(dst).convert_from_f64_slice(cast_slice(src))
        }
        (DType::BFloat16, DType::Float64) => {
            cast_slice::<u8, bf16>(src).convert_to_f64_slice(cast_slice_mut(dst))
        }
        (DType::Float64, DType::BFloat16) => {
            cast_slice_mut::<u8, bf16>(dst).convert_from_f64_slice(cast_slice(src))
        }
        _ => return false,
    }
    true
}

fn cast_chunk(src: &[u8], sd: DType, dst: &mut [u8], dd: DType) {
    if sd == dd {
        dst.copy_from_slice(src);
        return;
    }
    if convert_fast(src, sd, dst, dd) {
        return;
    }
    let to_bool = dd == DType::Bool;
    crate::dispatch_dtype!(sd, S => {
        crate::dispatch_dtype!(dd, D => {
            convert::<S, D>(bytemuck::cast_slice(src), bytemuck::cast_slice_mut(dst), to_bool)
        })
    })
}

/// Converts elements `sr` of `src` (dtype `sd`) into elements `dr` of `dst` (dtype `dd`).
pub(crate) fn cast_buffers(
    src: &Buffer,
    sr: Range<usize>,
    sd: DType,
    dst: &mut Buffer,
    dr: Range<usize>,
    dd: DType,
) {
    let (ss, ds) = (sd.size(), dd.size());
    let s = &src.bytes()[sr.start * ss..sr.end * ss];
    let d = &mut dst.bytes_mut()[dr.start * ds..dr.end * ds];
    cast_bytes(s, sd, d, dd);
}

/// Converts a whole byte slice of `sd` elements into `dd` elements.
pub(crate) fn cast_bytes(s: &[u8], sd: DType, d: &mut [u8], dd: DType) {
    let (ss, ds) = (sd.size(), dd.size());
    let n = s.len() / ss;
    if n >= 2 * PAR_CHUNK && rayon::current_num_threads() > 1 {
        s.par_chunks(PAR_CHUNK * ss)
            .zip(d.par_chunks_mut(PAR_CHUNK * ds))
            .for_each(|(s, d)| cast_chunk(s, sd, d, dd));
    } else {
        cast_chunk(s, sd, d, dd);
    }
}

#[cfg(test)]
mod tests {
    use crate::nd::NDArray;
    use crate::{Context, DType};

    #[test]
    fn every_pair_converts_small_integers_exactly() {
        let vals = [0.0f64, 1.0, 2.0, 3.0, 100.0];
        for sd in DType::ALL {
            for dd in DType::ALL {
                let a = NDArray::zeros(&[vals.len()], sd, Context::cpu(0)).unwrap();
                for (i, v) in vals.iter().enumerate() {
                    a.set_f64(&[i], *v).unwrap();
                }
                let b = a.astype(dd).unwrap();
                assert_eq!(b.dtype(), dd);
                let got = b.to_f64_vec();
                for (i, v) in vals.iter().enumerate() {
                    let src = a.get_f64(&[i]).unwrap();
                    let want = if dd == DType::Bool {
                        (src != 0.0) as u8 as f64
                    } else {
                        src
                    };
                    assert!(src <= *v);
                    assert_eq!(got[i], want, "{sd} -> {dd} at {i}");
                }
            }
        }
    }

    #[test]
    fn float_to_int_truncates_and_saturates() {
        let a =
            NDArray::from_slice(&[-1.7f32, 2.9, 1e10, f32::NAN], &[4], Context::cpu(0)).unwrap();
        assert_eq!(
            a.astype(DType::Int32).unwrap().to_vec::<i32>().unwrap(),
            vec![-1, 2, i32::MAX, 0]
        );
        assert_eq!(
            a.astype(DType::UInt8).unwrap().to_vec::<u8>().unwrap(),
            vec![0, 2, 255, 0]
        );
        assert_eq!(
            a.astype(DType::Bool).unwrap().to_vec::<bool>().unwrap(),
            vec![true, true, true, true]
        );
    }

    #[test]
    fn int64_round_trips_exactly() {
        let big = i64::MAX - 3;
        let a = NDArray::from_slice(&[big, -big], &[2], Context::cpu(0)).unwrap();
        let b = a
            .astype(DType::UInt64)
            .unwrap()
            .astype(DType::Int64)
            .unwrap();
        assert_eq!(b.to_vec::<i64>().unwrap(), vec![big, -big]);
    }

    #[test]
    fn large_half_conversion_matches_scalar() {
        let n = 300_000;
        let v: Vec<f32> = (0..n).map(|i| (i as f32) * 0.001 - 17.0).collect();
        let a = NDArray::from_slice(&v, &[n], Context::cpu(0)).unwrap();
        let h = a
            .astype(DType::Float16)
            .unwrap()
            .to_vec::<half::f16>()
            .unwrap();
        for (x, y) in v.iter().zip(&h) {
            assert_eq!(half::f16::from_f32(*x), *y);
        }
        let b = a
            .astype(DType::BFloat16)
            .unwrap()
            .astype(DType::Float32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        for (x, y) in v.iter().zip(&b) {
            assert_eq!(half::bf16::from_f32(*x).to_f32(), *y);
        }
    }
}
