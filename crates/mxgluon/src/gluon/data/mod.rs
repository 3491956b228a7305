//! Gluon's `gluon.data`, in small: a dataset pairing samples with labels ([`ArrayDataset`]),
//! a mini-batch iterator over it ([`DataLoader`], with MXNet's shuffling and last-batch
//! rules) and two image data sets ([`vision::Digits`], embedded; [`vision::Mnist`], read
//! from IDX files).
//!
//! ```
//! use mxgluon::gluon::data::{vision::Digits, DataLoader, LastBatch};
//! let train = Digits::train()?;
//! assert_eq!(train.data().shape(), &[1438, 64]);
//! let mut loader = DataLoader::new(train, 100)?
//!     .shuffle(7)
//!     .last_batch(LastBatch::Discard);
//! assert_eq!(loader.len(), 14);
//! for batch in loader.iter() {
//!     let (x, y) = batch?;
//!     assert_eq!(x.shape(), &[100, 64]);
//!     assert_eq!(y.shape(), &[100]);
//! }
//! # Ok::<(), mxgluon::Error>(())
//! ```

mod dataset;
mod loader;
pub mod vision;

pub use dataset::ArrayDataset;
pub use loader::{Batches, DataLoader, LastBatch};
