//! Host memory for dense arrays: 64-byte aligned byte buffers behind a read/write lock, and a
//! size-bucketed pool that recycles large buffers.
//!
//! Why a pool: the first touch of a fresh page costs ~0.3 µs per 4 KiB on the machines we run
//! on (3 GB/s), ten times slower than writing reused memory. Buffers of at least
//! [`POOL_MIN_BYTES`] go back to the pool when their last handle drops and are handed out
//! again for the same size class. The pool keeps at most [`pool_limit`] bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// One 64-byte aligned block of bytes: the unit buffers are made of.
#[repr(C, align(64))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Block([u8; 64]);

const BLOCK: usize = 64;

/// Buffers at least this large are recycled through the pool.
pub const POOL_MIN_BYTES: usize = 64 * 1024;

static POOL_LIMIT: AtomicUsize = AtomicUsize::new(2 << 30);

/// The most bytes the pool keeps for reuse (default 2 GiB). Set `0` to disable pooling.
pub fn pool_limit() -> usize {
    POOL_LIMIT.load(Ordering::Relaxed)
}

/// Changes the pool's byte limit; buffers beyond it are freed at once.
pub fn set_pool_limit(bytes: usize) {
    POOL_LIMIT.store(bytes, Ordering::Relaxed);
    with_pool(|pool| {
        while pool.bytes > bytes {
            let Some(key) = pool.free.keys().next().copied() else {
                break;
            };
            if let Some(list) = pool.free.get_mut(&key) {
                if let Some(b) = list.pop() {
                    pool.bytes -= b.len() * BLOCK;
                }
                if list.is_empty() {
                    pool.free.remove(&key);
                }
            }
        }
    });
}

#[derive(Default)]
struct Pool {
    free: HashMap<usize, Vec<Vec<Block>>>,
    bytes: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Runs `f` on the pool under its lock. A panic while holding the lock cannot leave the pool
/// inconsistent (each mutation is one push/pop plus a counter), so poisoning is ignored.
fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Pool::default))
}

/// Size class: blocks rounded up so that similar sizes share buffers (at most 1/8 waste).
fn size_class(blocks: usize) -> usize {
    if blocks * BLOCK < POOL_MIN_BYTES {
        return blocks;
    }
    let bits = usize::BITS - blocks.leading_zeros();
    let shift = bits.saturating_sub(4);
    let unit = 1usize << shift;
    blocks.div_ceil(unit) * unit
}

/// A heap buffer of `len_bytes` bytes (capacity rounded to whole blocks).
pub(crate) struct Buffer {
    blocks: Vec<Block>,
    len_bytes: usize,
}

impl Buffer {
    fn take(len_bytes: usize, zero: bool) -> Buffer {
        let blocks = len_bytes.div_ceil(BLOCK);
        let class = size_class(blocks);
        if class * BLOCK >= POOL_MIN_BYTES && pool_limit() > 0 {
            let reused = with_pool(|pool| {
                let b = pool.free.get_mut(&class).and_then(|l| l.pop());
                if let Some(b) = &b {
                    pool.bytes -= b.len() * BLOCK;
                }
                b
            });
            if let Some(mut b) = reused {
                if zero {
                    fill_zero(bytemuck::cast_slice_mut(&mut b[..]));
                }
                return Buffer {
                    blocks: b,
                    len_bytes,
                };
            }
        }
        Buffer {
            blocks: bytemuck::zeroed_vec(class),
            len_bytes,
        }
    }

    /// A zero-filled buffer.
    pub(crate) fn zeroed(len_bytes: usize) -> Buffer {
        Buffer::take(len_bytes, true)
    }

    /// A buffer whose contents are unspecified (but initialized) bytes: for outputs that are
    /// fully overwritten.
    pub(crate) fn for_overwrite(len_bytes: usize) -> Buffer {
        Buffer::take(len_bytes, false)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.blocks[..])[..self.len_bytes]
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.blocks[..])[..self.len_bytes]
    }

    /// The buffer as `n` values of `T`, starting at element `offset`.
    pub(crate) fn typed<T: Pod>(&self) -> &[T] {
        let n = self.len_bytes / std::mem::size_of::<T>();
        &bytemuck::cast_slice(&self.blocks[..])[..n]
    }

    pub(crate) fn typed_mut<T: Pod>(&mut self) -> &mut [T] {
        let n = self.len_bytes / std::mem::size_of::<T>();
        &mut bytemuck::cast_slice_mut(&mut self.blocks[..])[..n]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let bytes = self.blocks.len() * BLOCK;
        if bytes < POOL_MIN_BYTES || pool_limit() == 0 {
            return;
        }
        let blocks = std::mem::take(&mut self.blocks);
        let limit = pool_limit();
        with_pool(|pool| {
            if pool.bytes + bytes <= limit {
                pool.bytes += bytes;
                pool.free.entry(blocks.len()).or_default().push(blocks);
            }
        });
    }
}

/// Zero-fills a byte slice, splitting very large ones across threads.
pub(crate) fn fill_zero(bytes: &mut [u8]) {
    use rayon::prelude::*;
    const PAR: usize = 8 << 20;
    if bytes.len() >= PAR && rayon::current_num_threads() > 1 {
        bytes.par_chunks_mut(PAR / 2).for_each(|c| c.fill(0));
    } else {
        bytes.fill(0);
    }
}

/// Copies bytes, splitting very large copies across threads.
pub(crate) fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    use rayon::prelude::*;
    const PAR: usize = 8 << 20;
    debug_assert_eq!(dst.len(), src.len());
    if dst.len() >= PAR && rayon::current_num_threads() > 1 {
        dst.par_chunks_mut(PAR / 2)
            .zip(src.par_chunks(PAR / 2))
            .for_each(|(d, s)| d.copy_from_slice(s));
    } else {
        dst.copy_from_slice(src);
    }
}

/// The memory behind one or more [`NDArray`](super::NDArray) handles.
pub(crate) struct Storage {
    ctx: Context,
    dtype: DType,
    len: usize,
    version: AtomicU64,
    buf: RwLock<Buffer>,
}

impl Storage {
    fn check_ctx(ctx: Context) -> Result<()> {
        if ctx.device_type().is_host() {
            Ok(())
        } else {
            Err(Error::DeviceUnavailable {
                ctx,
                reason: "this build has no GPU backend; use cpu(i) contexts".to_string(),
            })
        }
    }

    fn byte_len(len: usize, dtype: DType) -> Result<usize> {
        len.checked_mul(dtype.size())
            .filter(|b| *b <= isize::MAX as usize)
            .ok_or_else(|| {
                Error::invalid_arg(
                    "allocate",
                    format!("{len} elements of {dtype} do not fit in memory"),
                )
            })
    }

    /// Zero-filled storage of `len` elements.
    pub(crate) fn zeros(ctx: Context, dtype: DType, len: usize) -> Result<Storage> {
        Storage::check_ctx(ctx)?;
        let bytes = Storage::byte_len(len, dtype)?;
        Ok(Storage {
            ctx,
            dtype,
            len,
            version: AtomicU64::new(0),
            buf: RwLock::new(Buffer::zeroed(bytes)),
        })
    }

    /// Storage whose contents the caller overwrites completely before anyone reads them.
    pub(crate) fn for_overwrite(ctx: Context, dtype: DType, len: usize) -> Result<Storage> {
        Storage::check_ctx(ctx)?;
        let bytes = Storage::byte_len(len, dtype)?;
        Ok(Storage {
            ctx,
            dtype,
            len,
            version: AtomicU64::new(0),
            buf: RwLock::new(Buffer::for_overwrite(bytes)),
        })
    }

    pub(crate) fn ctx(&self) -> Context {
        self.ctx
    }

    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Shared access. Lock poisoning is ignored: buffers hold plain numbers, which a panicking
    /// writer cannot leave in an unsafe state.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Buffer> {
        self.buf.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive access (see [`Storage::read`] on poisoning).
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Buffer> {
        let guard = self.buf.write().unwrap_or_else(|e| e.into_inner());
        // Bumped under the write lock: a reader holding the read lock sees a stable version.
        self.version.fetch_add(1, Ordering::Relaxed);
        guard
    }

    /// A counter that changes whenever a writer takes the buffer: caches of derived data
    /// (e.g. a transposed weight) compare it to know they are still valid.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_modestly() {
        assert_eq!(size_class(3), 3);
        let b = (POOL_MIN_BYTES / BLOCK) * 3 + 1;
        let c = size_class(b);
        assert!(c >= b && c <= b + b / 8 + 1, "{b} -> {c}");
    }

    #[test]
    fn pooled_buffers_come_back_zeroed() {
        let n = 1 << 20;
        {
            let mut b = Buffer::zeroed(n);
            b.bytes_mut().fill(7);
        }
        let b = Buffer::zeroed(n);
        assert!(b.bytes().iter().all(|x| *x == 0));
        assert_eq!(b.bytes().len(), n);
    }

    #[test]
    fn gpu_allocation_is_an_error() {
        let e = Storage::zeros(Context::gpu(0), DType::Float32, 4)
            .err()
            .unwrap();
        assert!(matches!(e, Error::DeviceUnavailable { .. }));
    }
}
