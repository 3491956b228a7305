//! [`DataLoader`]: mini-batches of an [`ArrayDataset`], in order or shuffled.

use super::ArrayDataset;
use crate::error::{Error, Result};
use crate::nd::NDArray;
use crate::random::philox;

/// What to do with the samples left over when the batch size does not divide the dataset
/// (MXNet's `last_batch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LastBatch {
    /// Yield them as a last, smaller batch (MXNet's default, `'keep'`).
    #[default]
    Keep,
    /// Drop them (`'discard'`).
    Discard,
    /// Carry them over to the front of the next epoch (`'rollover'`): the next epoch's first
    /// batch starts with them, followed by that epoch's own order. Only a fully consumed epoch
    /// leaves samples to carry; an epoch abandoned early carries none.
    Rollover,
}

impl LastBatch {
    /// MXNet's name: `"keep"`, `"discard"` or `"rollover"`.
    pub fn name(self) -> &'static str {
        match self {
            LastBatch::Keep => "keep",
            LastBatch::Discard => "discard",
            LastBatch::Rollover => "rollover",
        }
    }
}

impl std::str::FromStr for LastBatch {
    type Err = Error;

    /// Parses MXNet's names `keep`, `discard`, `rollover`.
    fn from_str(s: &str) -> Result<LastBatch> {
        match s {
            "keep" => Ok(LastBatch::Keep),
            "discard" => Ok(LastBatch::Discard),
            "rollover" => Ok(LastBatch::Rollover),
            _ => Err(Error::invalid_arg(
                "LastBatch",
                format!(
                    "last_batch must be one of 'keep', 'discard', or 'rollover', but got {s:?}"
                ),
            )),
        }
    }
}

/// Mini-batches `(data, label)` of an [`ArrayDataset`], like Gluon's
/// `DataLoader(dataset, batch_size, shuffle, last_batch)` with the default batchify: each
/// batch is a new array of shape `(batch, ...)` stacking the samples (and one for their
/// labels), on the dataset's context.
///
/// Every call to [`DataLoader::iter`] starts an epoch. Without shuffling an epoch visits the
/// samples in order; with [`DataLoader::shuffle`]`(seed)` epoch `k` (counting from 0) visits
/// them in a permutation that depends only on `(seed, k)`: a Fisher–Yates shuffle drawing from
/// Philox4x32-10 keyed by the seed, counter `(block, k)`. It does not touch the global
/// generator of [`crate::random`], so two loaders with the same seed give the same batches,
/// whatever else the program draws.
///
/// ```
/// use mxgluon::{gluon::data::{ArrayDataset, DataLoader, LastBatch}, nd, Context};
/// let x = nd::arange(0.0, 10.0, 1.0, Context::cpu(0))?;
/// let ds = ArrayDataset::new(x.clone(), x)?;
/// let mut loader = DataLoader::new(ds, 3)?.last_batch(LastBatch::Rollover);
/// let first: Vec<Vec<f32>> = loader.iter().map(|b| b.unwrap().0.to_vec().unwrap()).collect();
/// assert_eq!(first, vec![vec![0.0, 1.0, 2.0], vec![3.0, 4.0, 5.0], vec![6.0, 7.0, 8.0]]);
/// // sample 9 rolls over into the next epoch
/// assert_eq!(loader.len(), 3);
/// let (x0, _) = loader.iter().next().unwrap()?;
/// assert_eq!(x0.to_vec::<f32>()?, vec![9.0, 0.0, 1.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct DataLoader {
    dataset: ArrayDataset,
    batch_size: usize,
    seed: Option<u64>,
    last_batch: LastBatch,
    /// Epochs started so far.
    epoch: u64,
    /// Samples rolled over from the last fully consumed epoch.
    prev: Vec<usize>,
}

impl DataLoader {
    /// A loader of `batch_size` samples per batch, in order, keeping the last smaller batch.
    /// `batch_size` must be positive.
    pub fn new(dataset: ArrayDataset, batch_size: usize) -> Result<DataLoader> {
        if batch_size == 0 {
            return Err(Error::invalid_arg(
                "DataLoader",
                "batch_size must be a positive integer",
            ));
        }
        Ok(DataLoader {
            dataset,
            batch_size,
            seed: None,
            last_batch: LastBatch::Keep,
            epoch: 0,
            prev: Vec::new(),
        })
    }

    /// Shuffles every epoch, reproducibly from `seed` (see the type's documentation).
    pub fn shuffle(mut self, seed: u64) -> DataLoader {
        self.seed = Some(seed);
        self
    }

    /// Sets what happens to the samples left over at the end of an epoch.
    pub fn last_batch(mut self, last_batch: LastBatch) -> DataLoader {
        self.last_batch = last_batch;
        self
    }

    /// The dataset.
    pub fn dataset(&self) -> &ArrayDataset {
        &self.dataset
    }

    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The shuffling seed, `None` when not shuffling.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// The last-batch rule.
    pub fn last_batch_rule(&self) -> LastBatch {
        self.last_batch
    }

    /// How many epochs [`DataLoader::iter`] has started.
    pub fn epochs_started(&self) -> u64 {
        self.epoch
    }

    /// Number of batches the next epoch yields (MXNet's `len(loader)`): `ceil(N / batch)` for
    /// `Keep`, `floor(N / batch)` for `Discard`, `floor((rolled over + N) / batch)` for
    /// `Rollover`.
    pub fn len(&self) -> usize {
        let n = self.dataset.len();
        let b = self.batch_size;
        match self.last_batch {
            LastBatch::Keep => n.div_ceil(b),
            LastBatch::Discard => n / b,
            LastBatch::Rollover => (self.prev.len() + n) / b,
        }
    }

    /// Whether the next epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sample order of epoch `epoch`: `0..N`, or its seeded permutation when shuffling.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        match self.seed {
            Some(seed) => permutation(seed, epoch, self.dataset.len()),
            None => (0..self.dataset.len()).collect(),
        }
    }

    /// Starts the next epoch: an iterator over its batches, each a `Result<(data, label)>`.
    pub fn iter(&mut self) -> Batches<'_> {
        let mut order = std::mem::take(&mut self.prev);
        order.extend(self.order(self.epoch));
        self.epoch += 1;
        Batches {
            loader: self,
            order,
            pos: 0,
        }
    }
}

impl<'a> IntoIterator for &'a mut DataLoader {
    type Item = Result<(NDArray, NDArray)>;
    type IntoIter = Batches<'a>;

    fn into_iter(self) -> Batches<'a> {
        self.iter()
    }
}

/// The batches of one epoch of a [`DataLoader`] (from [`DataLoader::iter`]).
#[derive(Debug)]
pub struct Batches<'a> {
    loader: &'a mut DataLoader,
    /// Rolled-over samples, then this epoch's order.
    order: Vec<usize>,
    pos: usize,
}

impl Batches<'_> {
    fn remaining_batches(&self) -> usize {
        let left = self.order.len() - self.pos;
        let b = self.loader.batch_size;
        match self.loader.last_batch {
            LastBatch::Keep => left.div_ceil(b),
            LastBatch::Discard | LastBatch::Rollover => left / b,
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(NDArray, NDArray)>;

    fn next(&mut self) -> Option<Self::Item> {
        let left = self.order.len() - self.pos;
        if left == 0 {
            return None;
        }
        let b = self.loader.batch_size;
        let take = if left >= b {
            b
        } else {
            match self.loader.last_batch {
                LastBatch::Keep => left,
                LastBatch::Discard => {
                    self.pos = self.order.len();
                    return None;
                }
                LastBatch::Rollover => {
                    self.loader.prev = self.order[self.pos..].to_vec();
                    self.pos = self.order.len();
                    return None;
                }
            }
        };
        let idx = &self.order[self.pos..self.pos + take];
        self.pos += take;
        Some(self.loader.dataset.take(idx))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining_batches();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}

/// A uniformly random permutation of `0..n` for `(seed, epoch)`: Fisher–Yates from the end,
/// step `i` drawing `j < i + 1` as the high half of a 64-bit Philox word times `i + 1`.
fn permutation(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let key = philox::key_of(seed);
    let mut p: Vec<usize> = (0..n).collect();
    let (mut block, mut words, mut used) = (0u64, [0u32; 4], 4usize);
    for i in (1..n).rev() {
        if used == 4 {
            words = philox::philox4x32_10(
                [
                    block as u32,
                    (block >> 32) as u32,
                    epoch as u32,
                    (epoch >> 32) as u32,
                ],
                key,
            );
            block += 1;
            used = 0;
        }
        let r = (words[used] as u64) << 32 | words[used + 1] as u64;
        used += 2;
        let j = ((r as u128 * (i as u128 + 1)) >> 64) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_permutations_and_differ_by_seed_and_epoch() {
        for n in [0usize, 1, 2, 7, 100] {
            let mut p = permutation(3, 0, n);
            p.sort_unstable();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
        let a = permutation(1, 0, 50);
        assert_eq!(a, permutation(1, 0, 50));
        assert_ne!(a, permutation(2, 0, 50));
        assert_ne!(a, permutation(1, 1, 50));
    }

    #[test]
    fn permutation_is_roughly_uniform() {
        // Position of element 0 over many seeds: each of 4 places about 1/4 of the time.
        let mut counts = [0usize; 4];
        for seed in 0..4000 {
            let p = permutation(seed, 0, 4);
            counts[p.iter().position(|&v| v == 0).unwrap()] += 1;
        }
        for c in counts {
            assert!((850..1150).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn last_batch_names_parse() {
        for lb in [LastBatch::Keep, LastBatch::Discard, LastBatch::Rollover] {
            assert_eq!(lb.name().parse::<LastBatch>().unwrap(), lb);
        }
        assert!("drop".parse::<LastBatch>().is_err());
    }
}
