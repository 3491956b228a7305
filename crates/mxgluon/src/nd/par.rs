//! Helpers that split large element loops across the rayon pool and keep small ones on the
//! calling thread (a rayon fork/join costs microseconds, more than a small loop itself).

use rayon::prelude::*;

/// Element count below which loops stay single-threaded.
pub(crate) const PAR_MIN: usize = 1 << 16;

/// Elements per parallel task.
pub(crate) const CHUNK: usize = 1 << 15;

/// Whether a loop over `n` elements is worth splitting.
#[inline]
pub(crate) fn worth_parallel(n: usize) -> bool {
    n >= PAR_MIN && rayon::current_num_threads() > 1
}

/// Sets every element of `s` to `v`.
pub(crate) fn fill<T: Copy + Send + Sync>(s: &mut [T], v: T) {
    if worth_parallel(s.len()) {
        s.par_chunks_mut(CHUNK).for_each(|c| c.fill(v));
    } else {
        s.fill(v);
    }
}

/// `dst[i] = f(dst[i])` for every element.
pub(crate) fn map_inplace<T: Copy + Send + Sync>(s: &mut [T], f: impl Fn(T) -> T + Sync) {
    if worth_parallel(s.len()) {
        s.par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|x| *x = f(*x)));
    } else {
        s.iter_mut().for_each(|x| *x = f(*x));
    }
}

/// `dst[i] = f(a[i], b[i])` for every element (all three of one length).
pub(crate) fn zip_map<A: Copy + Sync, B: Copy + Sync, D: Copy + Send>(
    a: &[A],
    b: &[B],
    dst: &mut [D],
    f: impl Fn(A, B) -> D + Sync,
) {
    debug_assert!(a.len() == dst.len() && b.len() == dst.len());
    if worth_parallel(dst.len()) {
        dst.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(d, (a, b))| {
                for ((d, a), b) in d.iter_mut().zip(a).zip(b) {
                    *d = f(*a, *b);
                }
            });
    } else {
        for ((d, a), b) in dst.iter_mut().zip(a).zip(b) {
            *d = f(*a, *b);
        }
    }
}
