//! Out-of-place 2-D transpose of f32 matrices, with an AVX-512 16×16 tile kernel.
//!
//! Used to turn a small `(n, k)` weight into `(k, n)` so the GEMM runs its fast
//! "both operands row-major" path: for small fully-connected layers the transpose plus that
//! path beats the transposed-operand path by a wide margin.

/// Writes the transpose of `src` (`rows × cols`, row-major) into `dst` (`cols × rows`).
pub(crate) fn transpose_f32(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    // Guards the unsafe kernel; callers pass buffers of exactly rows × cols elements.
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above) and the lengths were asserted.
            unsafe { transpose_avx512(src, rows, cols, dst) };
            return;
        }
    }
    transpose_scalar(src, rows, cols, dst, 0, 0);
}

/// Scalar transpose of the part of the matrix at or beyond row `r0` or column `c0`.
fn transpose_scalar(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], r0: usize, c0: usize) {
    for r in 0..rows {
        let start = if r < r0 { c0 } else { 0 };
        for c in start..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_avx512(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let (rt, ct) = (rows / 16 * 16, cols / 16 * 16);
    for r in (0..rt).step_by(16) {
        for c in (0..ct).step_by(16) {
            // SAFETY: the 16×16 tile at (r, c) lies inside both matrices (r + 16 <= rows,
            // c + 16 <= cols, lengths asserted by the caller).
            unsafe {
                tile16(
                    src.as_ptr().add(r * cols + c),
                    cols,
                    dst.as_mut_ptr().add(c * rows + r),
                    rows,
                )
            };
        }
    }
    // Edges: rows >= rt (all columns) and columns >= ct (rows < rt).
    transpose_scalar(src, rows, cols, dst, rt, ct);
}

/// Transposes one 16×16 tile: `src` rows are `ss` apart, `dst` rows `ds` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile16(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    use std::arch::x86_64::*;
    let mut r = [_mm512_setzero_ps(); 16];
    for (i, v) in r.iter_mut().enumerate() {
        // SAFETY: row i of the tile is in bounds (see caller).
        *v = unsafe { _mm512_loadu_ps(src.add(i * ss)) };
    }
    // 32-bit interleave of row pairs.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // 64-bit interleave: u[4g + j] lane L holds column 4L + j of rows 4g..4g+4.
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (a, b, c, d) = (
            _mm512_castps_pd(t[4 * g]),
            _mm512_castps_pd(t[4 * g + 1]),
            _mm512_castps_pd(t[4 * g + 2]),
            _mm512_castps_pd(t[4 * g + 3]),
        );
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    // 128-bit lane gathers: output row 4L + j = lane L of u[j], u[4 + j], u[8 + j], u[12 + j].
    for j in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
        let v1 = _mm512_shuffle_f32x4::<0xDD>(u[j], u[4 + j]);
        let w0 = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
        let w1 = _mm512_shuffle_f32x4::<0xDD>(u[8 + j], u[12 + j]);
        let rows = [
            (j, _mm512_shuffle_f32x4::<0x88>(v0, w0)),
            (4 + j, _mm512_shuffle_f32x4::<0x88>(v1, w1)),
            (8 + j, _mm512_shuffle_f32x4::<0xDD>(v0, w0)),
            (12 + j, _mm512_shuffle_f32x4::<0xDD>(v1, w1)),
        ];
        for (row, v) in rows {
            // SAFETY: output row `row` of the tile is in bounds (see caller).
            unsafe { _mm512_storeu_ps(dst.add(row * ds), v) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scalar_on_ragged_shapes() {
        for (rows, cols) in [
            (1, 1),
            (16, 16),
            (64, 100),
            (17, 33),
            (3, 50),
            (48, 16),
            (100, 7),
        ] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut fast = vec![0f32; rows * cols];
            let mut slow = vec![0f32; rows * cols];
            transpose_f32(&src, rows, cols, &mut fast);
            transpose_scalar(&src, rows, cols, &mut slow, 0, 0);
            assert_eq!(fast, slow, "{rows}x{cols}");
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(fast[c * rows + r], src[r * cols + c]);
                }
            }
        }
    }
}
