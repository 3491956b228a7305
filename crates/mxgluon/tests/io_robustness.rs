//! Every file reader on random, truncated and mutated bytes: an error (or, for mutations that
//! happen to stay valid, a value), never a panic. `fuzz/` runs the same readers under
//! libFuzzer for longer; this runs in CI.

use mxgluon::io::{self, ArrayList, FileView, Format};
use mxgluon::nd::{self, Array, CSRNDArray, NDArray, RowSparseNDArray};
use mxgluon::{Context, DType};
use proptest::prelude::*;

fn cpu() -> Context {
    Context::cpu(0)
}

/// Valid files of every format, as mutation seeds (made once).
fn seeds() -> Vec<(Format, Vec<u8>)> {
    static SEEDS: std::sync::OnceLock<Vec<(Format, Vec<u8>)>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(make_seeds).clone()
}

fn make_seeds() -> Vec<(Format, Vec<u8>)> {
    let dense = NDArray::arange(0.0, 12.0, 1.0, DType::Float32, cpu())
        .unwrap()
        .reshape(&[3, 4])
        .unwrap();
    let ints = NDArray::arange(0.0, 5.0, 1.0, DType::Int64, cpu()).unwrap();
    let rsp = RowSparseNDArray::from_dense(&dense).unwrap();
    let csr = CSRNDArray::from_dense(&dense).unwrap();
    let all = ArrayList::from(vec![
        ("d", Array::from(dense.clone())),
        ("i", Array::from(ints.clone())),
        ("r", Array::from(rsp)),
        ("c", Array::from(csr)),
    ]);
    let dense_only = ArrayList::from(vec![("d", dense.clone()), ("i", ints)]);
    let dir = std::env::temp_dir().join(format!("mxgluon-robust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.npz");
    io::npz::save_compressed(&p, &dense_only).unwrap();
    let compressed = std::fs::read(&p).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    vec![
        (Format::Params, nd::save_to_bytes(&all).unwrap()),
        (
            Format::Safetensors,
            io::safetensors::save_to_bytes(&dense_only).unwrap(),
        ),
        (Format::Npy, io::npy::save_to_bytes(&dense).unwrap()),
        (Format::Npz, io::npz::save_to_bytes(&dense_only).unwrap()),
        (Format::Npz, compressed),
    ]
}

/// Runs every reader of `format` on `bytes`; returns whether the main reader succeeded.
fn read_all(format: Format, bytes: &[u8]) -> bool {
    let ok = match format {
        Format::Params => nd::load_from_bytes(bytes).is_ok(),
        Format::Safetensors => io::safetensors::load_from_bytes(bytes).is_ok(),
        Format::Npy => io::npy::load_from_bytes(bytes).is_ok(),
        Format::Npz => io::npz::load_from_bytes(bytes).is_ok(),
    };
    if let Ok(v) = FileView::from_bytes(bytes.to_vec(), format) {
        for i in 0..v.entries().len() {
            let _ = v.stats(i);
            let _ = v.to_array(i);
        }
    }
    ok
}

#[test]
fn seeds_are_valid() {
    for (f, b) in seeds() {
        assert!(read_all(f, &b), "{f:?}");
    }
}

#[test]
fn every_truncation_is_an_error() {
    for (f, b) in seeds() {
        for n in 0..b.len() {
            assert!(
                !read_all(f, &b[..n]),
                "{f:?} truncated to {n} of {} bytes loaded",
                b.len()
            );
        }
    }
}

/// Found by `scripts/fuzz.sh`: a 410-byte npz whose deflated member declares a 660 MB `.npy`
/// header. The header is now capped and read incrementally.
#[test]
fn fuzz_regression_npz_header_bomb() {
    let b = include_bytes!("data/npz_header_bomb.npz");
    assert!(!read_all(Format::Npz, b));
}

fn format_strategy() -> impl Strategy<Value = Format> {
    prop::sample::select(Format::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_are_rejected(format in format_strategy(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(!read_all(format, &bytes));
    }

    #[test]
    fn random_bytes_after_a_valid_magic_are_rejected(format in format_strategy(), tail in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = match format {
            Format::Params => 0x112u64.to_le_bytes().to_vec(),
            Format::Npy => b"\x93NUMPY\x01\x00".to_vec(),
            Format::Npz => b"PK\x03\x04".to_vec(),
            Format::Safetensors => (tail.len() as u64).to_le_bytes().to_vec(),
        };
        bytes.extend(tail);
        // may be valid only by an astronomically unlikely accident; must not panic
        let _ = read_all(format, &bytes);
    }

    #[test]
    fn mutated_files_never_panic(seed in 0usize..5, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8)) {
        let (format, mut bytes) = seeds().swap_remove(seed);
        for (at, v, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                // a random byte
                0 => bytes[i] = v,
                // an extreme 8-byte word (counts, lengths, dims)
                1 => {
                    let w = [u64::MAX, 1 << 60, i64::MIN as u64, 0x7fff_ffff][v as usize % 4].to_le_bytes();
                    let end = (i + 8).min(bytes.len());
                    bytes[i..end].copy_from_slice(&w[..end - i]);
                }
                // an extreme 4-byte word (ndim, flags)
                2 => {
                    let w = [u32::MAX, 0x8000_0000, 13, 0xF993_FACA][v as usize % 4].to_le_bytes();
                    let end = (i + 4).min(bytes.len());
                    bytes[i..end].copy_from_slice(&w[..end - i]);
                }
                // drop a byte
                _ => { bytes.remove(i); if bytes.is_empty() { break; } }
            }
        }
        let _ = read_all(format, &bytes);
    }
}
