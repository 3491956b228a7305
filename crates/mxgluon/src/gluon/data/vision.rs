//! Image data sets as [`ArrayDataset`]s of flattened float32 images: the UCI 8×8 digits,
//! embedded in the library ([`Digits`]), and MNIST-format IDX files in a folder ([`Mnist`]).
//!
//! Both give the same layout: `data` is float32 of shape `(N, rows * cols)`, each row one
//! image flattened row-major (pixel `(r, c)` at column `r * cols + c`), values `byte / 255` in
//! `[0, 1]` (0 = background); `label` is float32 of shape `(N,)` holding the class as a whole
//! number (0..9 for digits). Both live on `cpu(0)`.

use std::path::{Path, PathBuf};

use super::ArrayDataset;
use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::io::idx;
use crate::nd::NDArray;

const FORMAT: &str = "MNIST IDX";

const DIGITS_TRAIN_IMAGES: &[u8] =
    include_bytes!("../../../data/digits/train-images-idx3-ubyte.gz");
const DIGITS_TRAIN_LABELS: &[u8] =
    include_bytes!("../../../data/digits/train-labels-idx1-ubyte.gz");
const DIGITS_TEST_IMAGES: &[u8] = include_bytes!("../../../data/digits/t10k-images-idx3-ubyte.gz");
const DIGITS_TEST_LABELS: &[u8] = include_bytes!("../../../data/digits/t10k-labels-idx1-ubyte.gz");

/// The UCI "Optical Recognition of Handwritten Digits" test set as shipped with scikit-learn
/// (1,797 images of 8×8 pixels, 10 classes, CC BY 4.0), embedded in the library: no file or
/// network access. Pixels were rescaled from 0..16 to 0..255 (`round(v * 255 / 16)`) so the
/// data normalises like MNIST, and split stratified per class (seeded) into 1,438 training and
/// 359 test images; `crates/mxgluon/data/digits/README.md` and `scripts/make_digits.py` in
/// the repository give the details.
///
/// Layout ([module docs](self)): `data` float32 `(N, 64)` in `[0, 1]`, `label` float32 `(N,)`
/// in 0..9.
///
/// ```
/// use mxgluon::gluon::data::vision::Digits;
/// let test = Digits::test()?;
/// assert_eq!(test.len(), Digits::TEST_LEN);
/// assert_eq!(test.data().shape(), &[359, 64]);
/// let labels = test.label().to_vec::<f32>()?;
/// assert!(labels.iter().all(|&y| (0.0..=9.0).contains(&y) && y.fract() == 0.0));
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Digits;

impl Digits {
    /// Images in the training split.
    pub const TRAIN_LEN: usize = 1438;
    /// Images in the test split.
    pub const TEST_LEN: usize = 359;
    /// Image side in pixels.
    pub const SIDE: usize = 8;
    /// Number of classes.
    pub const CLASSES: usize = 10;

    /// The training split (1,438 images).
    pub fn train() -> Result<ArrayDataset> {
        dataset(
            idx::load_from_bytes(DIGITS_TRAIN_IMAGES, "digits/train-images-idx3-ubyte.gz")?,
            idx::load_from_bytes(DIGITS_TRAIN_LABELS, "digits/train-labels-idx1-ubyte.gz")?,
            "digits/train-images-idx3-ubyte.gz",
            "digits/train-labels-idx1-ubyte.gz",
        )
    }

    /// The test split (359 images).
    pub fn test() -> Result<ArrayDataset> {
        dataset(
            idx::load_from_bytes(DIGITS_TEST_IMAGES, "digits/t10k-images-idx3-ubyte.gz")?,
            idx::load_from_bytes(DIGITS_TEST_LABELS, "digits/t10k-labels-idx1-ubyte.gz")?,
            "digits/t10k-images-idx3-ubyte.gz",
            "digits/t10k-labels-idx1-ubyte.gz",
        )
    }
}

/// MNIST (or any data set in its file layout, such as Fashion-MNIST) read from IDX files.
///
/// Layout ([module docs](self)): `data` float32 `(N, rows * cols)` in `[0, 1]` — `(N, 784)`
/// for MNIST — and `label` float32 `(N,)`. The image file must hold `u8` of shape
/// `(N, rows, cols)`, the label file `u8` of shape `(N,)`; label values are not checked.
///
/// ```
/// use mxgluon::{gluon::data::vision::Mnist, io::idx, nd::NDArray, Context};
/// let dir = std::env::temp_dir().join(format!("mxgluon-mnist-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let images = NDArray::from_vec(vec![255u8; 2 * 28 * 28], &[2, 28, 28], Context::cpu(0))?;
/// let labels = NDArray::from_vec(vec![3u8, 7], &[2], Context::cpu(0))?;
/// idx::save(dir.join("t10k-images-idx3-ubyte.gz"), &images)?;
/// idx::save(dir.join("t10k-labels-idx1-ubyte"), &labels)?;
/// let test = Mnist::from_dir(&dir, false)?;
/// assert_eq!(test.data().shape(), &[2, 784]);
/// assert_eq!(test.label().to_vec::<f32>()?, vec![3.0, 7.0]);
/// assert!(Mnist::from_dir(&dir, true).is_err()); // no training files there
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Mnist;

impl Mnist {
    /// The standard file names (without `.gz`) of a split: `(images, labels)`.
    pub fn file_names(train: bool) -> (&'static str, &'static str) {
        if train {
            ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
        } else {
            ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        }
    }

    /// Reads the training (`train = true`) or test split from `dir`, which holds the standard
    /// names ([`Mnist::file_names`]), each plain or with `.gz` (plain is preferred when both
    /// exist; the content decides whether it is gzipped). A missing file is an
    /// [`Error::Io`] naming the path looked for.
    pub fn from_dir(dir: impl AsRef<Path>, train: bool) -> Result<ArrayDataset> {
        let dir = dir.as_ref();
        let (images, labels) = Mnist::file_names(train);
        Mnist::from_files(find(dir, images)?, find(dir, labels)?)
    }

    /// Reads an image file and a label file (IDX, plain or gzipped).
    pub fn from_files(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<ArrayDataset> {
        let (images, labels) = (images.as_ref(), labels.as_ref());
        dataset(
            idx::load(images)?,
            idx::load(labels)?,
            &images.display().to_string(),
            &labels.display().to_string(),
        )
    }
}

/// `dir/name` or `dir/name.gz`, whichever exists (plain first).
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::Io {
        path: format!("{} (or {})", plain.display(), gz.display()),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file (an MNIST-style folder holds the four standard IDX names, gzipped or not)",
        ),
    })
}

fn not_mnist(file: &str, offset: u64, expected: &str, a: &NDArray) -> Error {
    Error::InvalidFile {
        file: file.to_string(),
        format: FORMAT,
        offset,
        expected: expected.to_string(),
        found: format!("{} of shape {:?}", a.dtype(), a.shape()),
    }
}

/// Checks MNIST's layout and converts to the float32 dataset.
fn dataset(
    images: NDArray,
    labels: NDArray,
    images_name: &str,
    labels_name: &str,
) -> Result<ArrayDataset> {
    if images.dtype() != DType::UInt8 || images.ndim() != 3 {
        return Err(not_mnist(
            images_name,
            2,
            "u8 images of shape (N, rows, cols)",
            &images,
        ));
    }
    if labels.dtype() != DType::UInt8 || labels.ndim() != 1 {
        return Err(not_mnist(
            labels_name,
            2,
            "u8 labels of shape (N,)",
            &labels,
        ));
    }
    let (n, pixels) = (images.shape()[0], images.shape()[1] * images.shape()[2]);
    if labels.shape()[0] != n {
        return Err(Error::InvalidFile {
            file: labels_name.to_string(),
            format: FORMAT,
            offset: 4,
            expected: format!("{n} labels, one per image in {images_name}"),
            found: format!("{} labels", labels.shape()[0]),
        });
    }
    let ctx = Context::cpu(0);
    let x: Vec<f32> =
        images.with_data::<u8, _>(|s| s.iter().map(|&v| v as f32 / 255.0).collect())?;
    let y: Vec<f32> = labels.with_data::<u8, _>(|s| s.iter().map(|&v| v as f32).collect())?;
    ArrayDataset::new(
        NDArray::from_vec(x, &[n, pixels], ctx)?,
        NDArray::from_vec(y, &[n], ctx)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_digits_have_the_documented_layout() {
        let tr = Digits::train().unwrap();
        let te = Digits::test().unwrap();
        assert_eq!(tr.data().shape(), &[Digits::TRAIN_LEN, 64]);
        assert_eq!(te.label().shape(), &[Digits::TEST_LEN]);
        assert_eq!(tr.data().dtype(), DType::Float32);
    }

    #[test]
    fn wrong_layouts_are_refused() {
        let ctx = Context::cpu(0);
        let img = NDArray::zeros(&[2, 3, 3], DType::UInt8, ctx).unwrap();
        let lab = NDArray::zeros(&[3], DType::UInt8, ctx).unwrap();
        let e = dataset(img.clone(), lab, "i", "l").unwrap_err();
        assert!(
            e.to_string().contains("2 labels, one per image in i"),
            "{e}"
        );
        let flat = NDArray::zeros(&[2, 9], DType::UInt8, ctx).unwrap();
        let lab = NDArray::zeros(&[2], DType::UInt8, ctx).unwrap();
        assert!(dataset(flat, lab.clone(), "i", "l").is_err());
        let f = NDArray::zeros(&[2], DType::Float32, ctx).unwrap();
        assert!(dataset(img, f, "i", "l").is_err());
    }
}
