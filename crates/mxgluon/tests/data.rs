//! `gluon::data`: the embedded digits, MNIST folders, and the DataLoader's batching,
//! shuffling and last-batch rules (MXNet's `BatchSampler` semantics).

use mxgluon::gluon::data::vision::{Digits, Mnist};
use mxgluon::gluon::data::{ArrayDataset, DataLoader, LastBatch};
use mxgluon::io::idx;
use mxgluon::nd::NDArray;
use mxgluon::{Context, DType, Error};

fn cpu() -> Context {
    Context::cpu(0)
}

fn tmp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-data-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A dataset whose sample i is [i, 100 + i] with label i.
fn numbered(n: usize) -> ArrayDataset {
    let x: Vec<f32> = (0..n).flat_map(|i| [i as f32, 100.0 + i as f32]).collect();
    let y: Vec<f32> = (0..n).map(|i| i as f32).collect();
    ArrayDataset::new(
        NDArray::from_vec(x, &[n, 2], cpu()).unwrap(),
        NDArray::from_vec(y, &[n], cpu()).unwrap(),
    )
    .unwrap()
}

/// The label batches of one epoch, as sample indices; checks each data row matches its label.
fn epoch(loader: &mut DataLoader) -> Vec<Vec<usize>> {
    let expected = loader.len();
    let it = loader.iter();
    assert_eq!(it.len(), expected, "ExactSizeIterator::len");
    let batches: Vec<Vec<usize>> = it
        .map(|b| {
            let (x, y) = b.unwrap();
            let y = y.to_vec::<f32>().unwrap();
            let x = x.to_vec::<f32>().unwrap();
            for (k, &l) in y.iter().enumerate() {
                assert_eq!(x[2 * k], l);
                assert_eq!(x[2 * k + 1], 100.0 + l);
            }
            y.into_iter().map(|v| v as usize).collect()
        })
        .collect();
    assert_eq!(batches.len(), expected, "len() announced the batch count");
    batches
}

fn sizes(batches: &[Vec<usize>]) -> Vec<usize> {
    batches.iter().map(Vec::len).collect()
}

// ------------------------------------------------------------------ digits

/// Images per class in scikit-learn's digits (`np.bincount(load_digits().target)`).
const SKLEARN_CLASS_COUNTS: [usize; 10] = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180];

#[test]
fn digits_counts_and_classes() {
    let train = Digits::train().unwrap();
    let test = Digits::test().unwrap();
    assert_eq!(train.len(), 1438);
    assert_eq!(test.len(), 359);
    assert_eq!(train.len() + test.len(), 1797);
    let mut per_class = [0usize; 10];
    for ds in [&train, &test] {
        assert_eq!(ds.label().dtype(), DType::Float32);
        for y in ds.label().to_vec::<f32>().unwrap() {
            assert!(y.fract() == 0.0 && (0.0..=9.0).contains(&y), "label {y}");
            per_class[y as usize] += 1;
        }
    }
    assert_eq!(per_class, SKLEARN_CLASS_COUNTS);
    // stratified: every class is about 20% of its images in the test split
    let mut test_class = [0usize; 10];
    for y in test.label().to_vec::<f32>().unwrap() {
        test_class[y as usize] += 1;
    }
    for c in 0..10 {
        let frac = test_class[c] as f64 / SKLEARN_CLASS_COUNTS[c] as f64;
        assert!((0.19..0.21).contains(&frac), "class {c}: {frac}");
    }
}

#[test]
fn digits_pixels_are_rescaled_bytes_in_unit_range() {
    // round(v * 255 / 16) for v = 0..16, the only byte values the conversion produces
    let allowed: Vec<u32> = (0..=16u32)
        .map(|v| (v as f64 * 255.0 / 16.0).round_ties_even() as u32)
        .collect();
    for ds in [Digits::train().unwrap(), Digits::test().unwrap()] {
        assert_eq!(ds.data().dtype(), DType::Float32);
        assert_eq!(ds.data().shape()[1], 64);
        let x = ds.data().to_vec::<f32>().unwrap();
        let (mut lo, mut hi) = (f32::MAX, f32::MIN);
        for &v in &x {
            lo = lo.min(v);
            hi = hi.max(v);
            let byte = (v * 255.0).round();
            assert!((v * 255.0 - byte).abs() < 1e-4, "{v} is not a byte / 255");
            assert!(allowed.contains(&(byte as u32)), "{byte}");
        }
        assert_eq!((lo, hi), (0.0, 1.0));
        // digits are mostly background: the border columns are nearly empty
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        assert!((0.2..0.4).contains(&mean), "mean pixel {mean}");
    }
}

#[test]
fn digits_files_are_valid_idx() {
    // The committed files themselves (the ones embedded), read by the generic IDX reader.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits");
    let images = idx::load(dir.join("train-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(
        (images.dtype(), images.shape()),
        (DType::UInt8, &[1438, 8, 8][..])
    );
    let from_dir = Mnist::from_dir(&dir, false).unwrap();
    let embedded = Digits::test().unwrap();
    assert_eq!(
        from_dir.data().to_vec::<f32>().unwrap(),
        embedded.data().to_vec::<f32>().unwrap()
    );
}

// ------------------------------------------------------------------ DataLoader

#[test]
fn in_order_batches_keep_the_last_one_by_default() {
    let mut l = DataLoader::new(numbered(10), 3).unwrap();
    assert_eq!(l.last_batch_rule(), LastBatch::Keep);
    assert_eq!(
        epoch(&mut l),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]
    );
    // the same again: nothing carries over
    assert_eq!(sizes(&epoch(&mut l)), vec![3, 3, 3, 1]);
    assert_eq!(l.epochs_started(), 2);
}

#[test]
fn discard_drops_the_short_batch() {
    let mut l = DataLoader::new(numbered(10), 3)
        .unwrap()
        .last_batch(LastBatch::Discard);
    assert_eq!(l.len(), 3);
    assert_eq!(sizes(&epoch(&mut l)), vec![3, 3, 3]);
    assert_eq!(sizes(&epoch(&mut l)), vec![3, 3, 3]);
    let mut big = DataLoader::new(numbered(4), 5)
        .unwrap()
        .last_batch(LastBatch::Discard);
    assert!(big.is_empty());
    assert!(epoch(&mut big).is_empty());
}

#[test]
fn rollover_carries_the_rest_into_the_next_epoch() {
    // MXNet: BatchSampler(SequentialSampler(10), 3, 'rollover') yields
    // [0,1,2] [3,4,5] [6,7,8] | [9,0,1] [2,3,4] [5,6,7] | [8,9,0] [1,2,3] [4,5,6] [7,8,9]
    let mut l = DataLoader::new(numbered(10), 3)
        .unwrap()
        .last_batch(LastBatch::Rollover);
    assert_eq!(
        epoch(&mut l),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]]
    );
    assert_eq!(l.len(), 3); // (1 + 10) / 3
    assert_eq!(
        epoch(&mut l),
        vec![vec![9, 0, 1], vec![2, 3, 4], vec![5, 6, 7]]
    );
    assert_eq!(l.len(), 4); // (2 + 10) / 3
    assert_eq!(
        epoch(&mut l),
        vec![vec![8, 9, 0], vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]
    );
    assert_eq!(l.len(), 3);
    // an epoch abandoned early carries nothing over
    let first = l.iter().next().unwrap().unwrap();
    assert_eq!(first.1.to_vec::<f32>().unwrap(), vec![0.0, 1.0, 2.0]);
    assert_eq!(
        epoch(&mut l)[0],
        vec![0, 1, 2],
        "a fresh epoch after the abandoned one"
    );
}

#[test]
fn rollover_with_a_batch_larger_than_the_dataset_accumulates() {
    let mut l = DataLoader::new(numbered(4), 6)
        .unwrap()
        .last_batch(LastBatch::Rollover);
    assert!(epoch(&mut l).is_empty());
    assert_eq!(epoch(&mut l), vec![vec![0, 1, 2, 3, 0, 1]]);
    assert_eq!(epoch(&mut l), vec![vec![2, 3, 0, 1, 2, 3]]);
}

#[test]
fn shuffles_are_reproducible_and_cover_every_sample() {
    let make = |seed| DataLoader::new(numbered(37), 8).unwrap().shuffle(seed);
    let (mut a, mut b, mut c) = (make(5), make(5), make(6));
    let mut seen_orders = Vec::new();
    for _ in 0..3 {
        let ea = epoch(&mut a);
        assert_eq!(ea, epoch(&mut b), "same seed, same epoch: same batches");
        assert_ne!(ea, epoch(&mut c), "another seed");
        assert_eq!(sizes(&ea), vec![8, 8, 8, 8, 5]);
        let mut all: Vec<usize> = ea.concat();
        seen_orders.push(all.clone());
        all.sort_unstable();
        assert_eq!(all, (0..37).collect::<Vec<_>>(), "each sample once");
    }
    assert_ne!(seen_orders[0], seen_orders[1], "every epoch reshuffles");
    assert_ne!(seen_orders[1], seen_orders[2]);
    assert_ne!(seen_orders[0], (0..37).collect::<Vec<_>>());
    // the order of an epoch is a function of (seed, epoch) only
    assert_eq!(a.order(1), seen_orders[1]);
    // the global generator does not affect it
    mxgluon::random::seed(123);
    let mut d = make(5);
    mxgluon::random::uniform(0.0, 1.0, &[100], DType::Float32, cpu()).unwrap();
    assert_eq!(epoch(&mut d).concat(), seen_orders[0]);
}

#[test]
fn shuffled_rollover_uses_every_sample_once_per_pass() {
    let mut l = DataLoader::new(numbered(10), 4)
        .unwrap()
        .shuffle(1)
        .last_batch(LastBatch::Rollover);
    let mut stream = Vec::new();
    for _ in 0..2 {
        stream.extend(epoch(&mut l).concat());
    }
    // 20 samples seen, 8 + 12 = 20: exactly two passes over the data
    assert_eq!(stream.len(), 20);
    let mut counts = [0usize; 10];
    for i in stream {
        counts[i] += 1;
    }
    assert_eq!(counts, [2; 10]);
}

#[test]
fn digits_batches_are_rows_of_the_dataset() {
    let ds = Digits::train().unwrap();
    let x = ds.data().to_vec::<f32>().unwrap();
    let y = ds.label().to_vec::<f32>().unwrap();
    let mut l = DataLoader::new(ds, 64).unwrap().shuffle(42);
    let order = l.order(0);
    let mut pos = 0;
    let mut n = 0;
    for b in &mut l {
        let (xb, yb) = b.unwrap();
        assert_eq!(xb.shape()[1], 64);
        assert_eq!(xb.context(), cpu());
        let xb = xb.to_vec::<f32>().unwrap();
        for (k, &l) in yb.to_vec::<f32>().unwrap().iter().enumerate() {
            let i = order[pos];
            assert_eq!(l, y[i]);
            assert_eq!(&xb[64 * k..64 * (k + 1)], &x[64 * i..64 * (i + 1)]);
            pos += 1;
        }
        n += 1;
    }
    assert_eq!(pos, 1438);
    assert_eq!(n, 23); // ceil(1438 / 64)
}

#[test]
fn bad_arguments_are_errors() {
    assert!(matches!(
        DataLoader::new(numbered(3), 0),
        Err(Error::InvalidArgument { .. })
    ));
    let x = NDArray::zeros(&[3, 2], DType::Float32, cpu()).unwrap();
    let y = NDArray::zeros(&[2], DType::Float32, cpu()).unwrap();
    assert!(matches!(
        ArrayDataset::new(x, y),
        Err(Error::ShapeMismatch { .. })
    ));
    assert_eq!(
        "rollover".parse::<LastBatch>().unwrap(),
        LastBatch::Rollover
    );
    assert!("Rollover".parse::<LastBatch>().is_err());
}

// ------------------------------------------------------------------ MNIST folders

fn write_split(dir: &std::path::Path, train: bool, n: usize, gz_images: bool, gz_labels: bool) {
    let (img, lab) = Mnist::file_names(train);
    let pixels: Vec<u8> = (0..n * 28 * 28).map(|i| (i % 256) as u8).collect();
    let images = NDArray::from_vec(pixels, &[n, 28, 28], cpu()).unwrap();
    let labels = NDArray::from_vec((0..n).map(|i| (i % 10) as u8).collect(), &[n], cpu()).unwrap();
    let ext = |gz: bool| if gz { ".gz" } else { "" };
    idx::save(dir.join(format!("{img}{}", ext(gz_images))), &images).unwrap();
    idx::save(dir.join(format!("{lab}{}", ext(gz_labels))), &labels).unwrap();
}

#[test]
fn mnist_from_dir_reads_plain_and_gzipped_files() {
    let d = tmp_dir("mnist");
    write_split(&d, true, 6, true, false);
    write_split(&d, false, 3, false, true);
    let train = Mnist::from_dir(&d, true).unwrap();
    assert_eq!(train.data().shape(), &[6, 784]);
    assert_eq!(train.data().dtype(), DType::Float32);
    assert_eq!(train.label().shape(), &[6]);
    assert_eq!(
        train.label().to_vec::<f32>().unwrap(),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
    let x = train.data().to_vec::<f32>().unwrap();
    for (i, &v) in x.iter().enumerate().take(600) {
        assert_eq!(v, (i % 256) as f32 / 255.0);
    }
    let test = Mnist::from_dir(&d, false).unwrap();
    assert_eq!(test.len(), 3);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn mnist_prefers_the_plain_file_when_both_exist() {
    let d = tmp_dir("mnist-both");
    write_split(&d, false, 2, true, true);
    write_split(&d, false, 4, false, false);
    assert_eq!(Mnist::from_dir(&d, false).unwrap().len(), 4);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn mnist_missing_files_are_named() {
    let d = tmp_dir("mnist-missing");
    write_split(&d, true, 2, false, false);
    std::fs::remove_file(d.join("train-labels-idx1-ubyte")).unwrap();
    let e = Mnist::from_dir(&d, true).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&d.join("train-labels-idx1-ubyte").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("train-labels-idx1-ubyte.gz"), "{msg}");
    let e = Mnist::from_dir(d.join("nowhere"), false).unwrap_err();
    assert!(e.to_string().contains("t10k-images-idx3-ubyte"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn mnist_count_mismatch_and_wrong_layouts_are_errors() {
    let d = tmp_dir("mnist-bad");
    write_split(&d, true, 5, false, false);
    let labels = NDArray::from_vec(vec![1u8, 2, 3], &[3], cpu()).unwrap();
    idx::save(d.join("train-labels-idx1-ubyte"), &labels).unwrap();
    let e = Mnist::from_dir(&d, true).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::InvalidFile { .. }), "{msg}");
    assert!(
        msg.contains("5 labels") && msg.contains("found 3 labels"),
        "{msg}"
    );
    assert!(msg.contains("train-labels-idx1-ubyte"), "{msg}");
    // float images are not MNIST
    let f = NDArray::zeros(&[3, 28, 28], DType::Float32, cpu()).unwrap();
    idx::save(d.join("train-images-idx3-ubyte"), &f).unwrap();
    let e = Mnist::from_dir(&d, true).unwrap_err();
    assert!(e.to_string().contains("u8 images"), "{e}");
    // a corrupt file is the IDX reader's error, naming the file
    std::fs::write(d.join("train-images-idx3-ubyte"), [0u8, 0, 8, 3, 0]).unwrap();
    let e = Mnist::from_dir(&d, true).unwrap_err();
    assert!(matches!(e, Error::InvalidFile { .. }), "{e}");
    assert!(e.to_string().contains("train-images-idx3-ubyte"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
