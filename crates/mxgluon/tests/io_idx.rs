//! The IDX reader and writer (`mxgluon::io::idx`): round trips of every storable dtype, plain
//! and gzipped, through bytes and files; and the reader on random, truncated and mutated
//! input: an `InvalidFile` error (or, for mutations that stay valid, an array no larger than
//! the input allows), never a panic, an I/O error or an oversized allocation.

use mxgluon::io::idx;
use mxgluon::nd::NDArray;
use mxgluon::{Context, DType, Error};
use proptest::prelude::*;

fn cpu() -> Context {
    Context::cpu(0)
}

const STORABLE: [DType; 6] = [
    DType::UInt8,
    DType::Int8,
    DType::Int16,
    DType::Int32,
    DType::Float32,
    DType::Float64,
];

fn tmp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-io-idx-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An array of `dtype` and `shape` with values from `raw`, exactly representable in every
/// storable dtype.
fn array(dtype: DType, shape: &[usize], raw: &[i8]) -> NDArray {
    let n: usize = shape.iter().product();
    let vals: Vec<f64> = (0..n)
        .map(|i| {
            let v = raw[i % raw.len()] as f64;
            if dtype == DType::UInt8 {
                v.abs()
            } else {
                v
            }
        })
        .collect();
    let a = NDArray::zeros(shape, dtype, cpu()).unwrap();
    let mut idx = vec![0usize; shape.len()];
    for v in vals {
        a.set_f64(&idx, v).unwrap();
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    a
}

/// Valid files as mutation seeds: (bytes, gzipped).
fn seeds() -> Vec<Vec<u8>> {
    let images = array(DType::UInt8, &[3, 4, 4], &[0, 17, 99, 127, -5]);
    let floats = array(DType::Float64, &[2, 3], &[1, -2, 3]);
    let shorts = array(DType::Int16, &[5], &[7, -8]);
    vec![
        idx::save_to_bytes(&images, false).unwrap(),
        idx::save_to_bytes(&images, true).unwrap(),
        idx::save_to_bytes(&floats, false).unwrap(),
        idx::save_to_bytes(&floats, true).unwrap(),
        idx::save_to_bytes(&shorts, false).unwrap(),
    ]
}

/// Reads `bytes`; an error must be `InvalidFile` (or `UnsupportedByFormat`, never raised by
/// the reader today), a success must fit the input. Returns whether it loaded.
fn check_read(bytes: &[u8]) -> bool {
    match idx::load_from_bytes(bytes, "<bytes>") {
        Ok(a) => {
            assert!(
                a.nbytes() as u64 <= bytes.len() as u64 * 1032,
                "{} bytes from {} input bytes",
                a.nbytes(),
                bytes.len()
            );
            if !bytes.starts_with(&idx::GZIP_MAGIC) {
                assert_eq!(a.nbytes() + 4 + 4 * a.ndim(), bytes.len());
            }
            true
        }
        Err(Error::InvalidFile { file, .. }) => {
            assert_eq!(file, "<bytes>");
            false
        }
        Err(e) => panic!("not an InvalidFile error: {e}"),
    }
}

#[test]
fn mnist_layout_by_hand() {
    // 2 images of 2x3, as MNIST's files lay them out.
    let mut b = vec![0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
    b.extend(0u8..12);
    let a = idx::load_from_bytes(&b, "x").unwrap();
    assert_eq!(a.dtype(), DType::UInt8);
    assert_eq!(a.shape(), &[2, 2, 3]);
    assert_eq!(a.to_vec::<u8>().unwrap(), (0..12).collect::<Vec<u8>>());
    assert_eq!(idx::save_to_bytes(&a, false).unwrap(), b);
    // f32, big-endian
    let mut b = vec![0, 0, 0x0D, 1, 0, 0, 0, 2];
    b.extend(0.5f32.to_be_bytes());
    b.extend((-3.25f32).to_be_bytes());
    let a = idx::load_from_bytes(&b, "x").unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![0.5, -3.25]);
}

#[test]
fn files_round_trip_and_gzip_follows_the_extension() {
    let d = tmp_dir("files");
    for (i, dt) in STORABLE.into_iter().enumerate() {
        let a = array(dt, &[3, 2, 2], &[1, -1, 100, -100, 0, 5]);
        for name in [format!("a{i}-idx3-ubyte"), format!("a{i}-idx3-ubyte.GZ")] {
            let p = d.join(&name);
            idx::save(&p, &a).unwrap();
            let raw = std::fs::read(&p).unwrap();
            assert_eq!(
                raw.starts_with(&idx::GZIP_MAGIC),
                name.ends_with(".GZ"),
                "{name}"
            );
            let b = idx::load(&p).unwrap();
            assert_eq!(b.dtype(), dt);
            assert_eq!(b.shape(), a.shape());
            assert_eq!(b.to_f64_vec(), a.to_f64_vec(), "{dt} {name}");
            // the content decides, not the name
            let renamed = d.join(format!("renamed-{i}"));
            std::fs::rename(&p, &renamed).unwrap();
            assert_eq!(idx::load(&renamed).unwrap().to_f64_vec(), a.to_f64_vec());
        }
    }
    // no temporary files left behind
    for e in std::fs::read_dir(&d).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(!n.ends_with(".tmp"), "{n}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn unsupported_arrays_are_refused_without_writing() {
    let d = tmp_dir("unsupported");
    for dt in [DType::Float16, DType::Int64, DType::Bool, DType::BFloat16] {
        let a = NDArray::zeros(&[2], dt, cpu()).unwrap();
        let p = d.join("x.gz");
        let e = idx::save(&p, &a).unwrap_err();
        assert!(matches!(e, Error::UnsupportedByFormat { .. }), "{dt}: {e}");
        assert!(e.to_string().contains(&dt.to_string()), "{e}");
        assert!(!p.exists());
    }
    let many = NDArray::zeros(&[1; 256], DType::UInt8, cpu()).unwrap();
    assert!(matches!(
        idx::save_to_bytes(&many, false),
        Err(Error::UnsupportedByFormat { .. })
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn missing_files_are_io_errors_naming_the_path() {
    let p = std::env::temp_dir().join("mxgluon-no-such-dir-idx/none-idx1-ubyte");
    let e = idx::load(&p).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("none-idx1-ubyte"), "{e}");
}

#[test]
fn file_errors_name_the_file() {
    let d = tmp_dir("names");
    let p = d.join("broken-idx1-ubyte.gz");
    let mut b = seeds().swap_remove(1);
    b.truncate(b.len() - 3);
    std::fs::write(&p, &b).unwrap();
    let e = idx::load(&p).unwrap_err();
    assert!(matches!(e, Error::InvalidFile { .. }), "{e}");
    assert!(e.to_string().contains("broken-idx1-ubyte.gz"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn seeds_are_valid_and_every_truncation_is_an_error() {
    for b in seeds() {
        assert!(check_read(&b));
        for n in 0..b.len() {
            assert!(!check_read(&b[..n]), "truncated to {n} of {}", b.len());
        }
    }
}

#[test]
fn trailing_bytes_are_errors() {
    for b in seeds() {
        let mut longer = b.clone();
        longer.extend_from_slice(&[0, 1, 2]);
        // a gzip member followed by junk: flate2 reads the first member only, so the trailing
        // bytes are outside the IDX stream and ignored; plain files must end exactly.
        if !b.starts_with(&idx::GZIP_MAGIC) {
            assert!(!check_read(&longer));
        }
    }
}

fn dtype_strategy() -> impl Strategy<Value = DType> {
    prop::sample::select(STORABLE.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arrays_round_trip(
        dtype in dtype_strategy(),
        shape in prop::collection::vec(0usize..5, 0..4),
        raw in prop::collection::vec(any::<i8>(), 1..16),
        gzip in any::<bool>(),
    ) {
        let a = array(dtype, &shape, &raw);
        let bytes = idx::save_to_bytes(&a, gzip).unwrap();
        prop_assert_eq!(bytes.starts_with(&idx::GZIP_MAGIC), gzip);
        let b = idx::load_from_bytes(&bytes, "rt").unwrap();
        prop_assert_eq!(b.dtype(), dtype);
        prop_assert_eq!(b.shape(), a.shape());
        prop_assert_eq!(b.to_f64_vec(), a.to_f64_vec());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_read(&bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_magic_never_panic(
        code in prop::sample::select(vec![0x08u8, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
        ndim in 0u8..6,
        tail in prop::collection::vec(any::<u8>(), 0..128),
        gzip in any::<bool>(),
    ) {
        let mut bytes = vec![0, 0, code, ndim];
        bytes.extend(tail);
        if gzip {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&bytes).unwrap();
            bytes = enc.finish().unwrap();
        }
        check_read(&bytes);
    }

    #[test]
    fn mutated_files_never_panic(
        seed in 0usize..5,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let mut bytes = seeds().swap_remove(seed);
        for (at, v, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = v,
                // an extreme big-endian dimension
                1 => {
                    let w = [u32::MAX, 0x8000_0000, 0x0100_0000, 1][v as usize % 4].to_be_bytes();
                    let end = (i + 4).min(bytes.len());
                    bytes[i..end].copy_from_slice(&w[..end - i]);
                }
                // flip one bit
                2 => bytes[i] ^= 1 << (v % 8),
                _ => {
                    bytes.remove(i);
                    if bytes.is_empty() {
                        break;
                    }
                }
            }
        }
        check_read(&bytes);
    }
}
