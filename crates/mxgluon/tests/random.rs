//! Tests of the Philox generator and the random fills.

use mxgluon::random::philox::{self, Backend};
use mxgluon::{random, Context, DType, Error, NDArray};
use std::sync::Mutex;

/// The global generator is shared by the tests of this binary; tests that seed hold this.
static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn philox_known_answers() {
    // Random123's kat_vectors for philox4x32_10.
    assert_eq!(
        philox::philox4x32_10([0, 0, 0, 0], [0, 0]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        philox::philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
    assert_eq!(
        philox::philox4x32_10(
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0]
        ),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

#[test]
fn vector_backends_are_bit_exact() {
    let key = philox::key_of(0x0123_4567_89ab_cdef);
    for backend in [Backend::Avx2, Backend::Avx512] {
        if !backend.is_available() {
            eprintln!("{backend:?} not available on this CPU; skipped");
            continue;
        }
        // includes a start whose low word wraps inside a batch
        for first in [0u64, 5, 1000, u32::MAX as u64 - 7, (7u64 << 32) + 3] {
            let mut a = vec![0u32; 1000];
            let mut b = vec![0u32; 1000];
            philox::fill_words(Backend::Scalar, key, first, &mut a);
            philox::fill_words(backend, key, first, &mut b);
            assert_eq!(a, b, "{backend:?} words from block {first}");
            let mut fa = vec![0f32; 999];
            let mut fb = vec![0f32; 999];
            philox::fill_uniform_f32(Backend::Scalar, key, first, &mut fa, -0.3, 0.6);
            philox::fill_uniform_f32(backend, key, first, &mut fb, -0.3, 0.6);
            assert_eq!(
                fa.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                fb.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn words_follow_block_order() {
    let key = philox::key_of(9);
    let mut w = vec![0u32; 12];
    philox::fill_words(Backend::detect(), key, 10, &mut w);
    assert_eq!(&w[4..8], &philox::philox4x32_10([11, 0, 0, 0], key));
}

#[test]
fn uniform_f32_values_follow_the_documented_mapping() {
    let _g = lock();
    // large enough for the parallel, non-temporal path; ragged end
    let n = (1 << 21) + 5;
    random::seed(77);
    let a = random::uniform(-0.25, 0.75, &[n], DType::Float32, Context::cpu(0)).unwrap();
    let mut words = vec![0u32; n];
    philox::fill_words(Backend::Scalar, philox::key_of(77), 0, &mut words);
    let want: Vec<u32> = words
        .iter()
        .map(|w| philox::u32_to_f32(*w, -0.25, 1.0).to_bits())
        .collect();
    let got: Vec<u32> = a
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert!(got == want);
    // the next draw continues the counter: block ceil(n / 4)
    let b = random::uniform(0.0, 1.0, &[8], DType::Float32, Context::cpu(0)).unwrap();
    let mut w2 = [0u32; 8];
    philox::fill_words(
        Backend::Scalar,
        philox::key_of(77),
        (n as u64).div_ceil(4),
        &mut w2,
    );
    let want2: Vec<f32> = w2
        .iter()
        .map(|w| philox::u32_to_f32(*w, 0.0, 1.0))
        .collect();
    assert_eq!(b.to_vec::<f32>().unwrap(), want2);
}

fn all_dtypes() -> [DType; 4] {
    [
        DType::Float32,
        DType::Float64,
        DType::Float16,
        DType::BFloat16,
    ]
}

#[test]
fn seeding_reproduces() {
    let _g = lock();
    for dt in all_dtypes() {
        random::seed(42);
        let a = random::uniform(-2.0, 3.0, &[3, 1000], dt, Context::cpu(0)).unwrap();
        let n1 = random::normal(1.0, 2.0, &[1001], dt, Context::cpu(0)).unwrap();
        random::seed(42);
        let b = random::uniform(-2.0, 3.0, &[3, 1000], dt, Context::cpu(0)).unwrap();
        let n2 = random::normal(1.0, 2.0, &[1001], dt, Context::cpu(0)).unwrap();
        assert_eq!(a.to_f64_vec(), b.to_f64_vec());
        assert_eq!(n1.to_f64_vec(), n2.to_f64_vec());
        // later draws differ from earlier ones
        let c = random::uniform(-2.0, 3.0, &[3, 1000], dt, Context::cpu(0)).unwrap();
        assert_ne!(a.to_f64_vec(), c.to_f64_vec());
        random::seed(43);
        let d = random::uniform(-2.0, 3.0, &[3, 1000], dt, Context::cpu(0)).unwrap();
        assert_ne!(a.to_f64_vec(), d.to_f64_vec());
    }
}

fn run_in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let _g = lock();
    let n = (1 << 18) + 77; // large enough to go parallel, with a ragged end
    for dt in all_dtypes() {
        let draw = || {
            random::seed(5);
            let u = random::uniform(-1.0, 1.0, &[n], dt, Context::cpu(0)).unwrap();
            let g = random::normal(0.0, 1.0, &[n], dt, Context::cpu(0)).unwrap();
            (u.to_f64_vec(), g.to_f64_vec())
        };
        let one = run_in_pool(1, draw);
        let two = run_in_pool(2, draw);
        let three = run_in_pool(3, draw);
        assert!(one == two && two == three, "{dt}");
    }
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n)
}

#[test]
fn uniform_statistics_and_bounds() {
    let _g = lock();
    random::seed(1);
    let n = 1 << 20;
    for dt in all_dtypes() {
        let a = random::uniform(-0.5, 1.5, &[n], dt, Context::cpu(0)).unwrap();
        let v = a.to_f64_vec();
        assert!(v.iter().all(|x| (-0.5..=1.5).contains(x)), "{dt}");
        let (m, var) = mean_var(&v);
        // sd of the mean = 0.577/1024 ≈ 5.6e-4; bf16 rounding adds a small bias.
        assert!((m - 0.5).abs() < 0.01, "{dt} mean {m}");
        assert!((var - 4.0 / 12.0).abs() < 0.01, "{dt} var {var}");
    }
}

#[test]
fn normal_statistics() {
    let _g = lock();
    random::seed(2);
    let n = 1 << 20;
    for dt in all_dtypes() {
        let a = random::normal(3.0, 0.5, &[n], dt, Context::cpu(0)).unwrap();
        let v = a.to_f64_vec();
        let (m, var) = mean_var(&v);
        assert!((m - 3.0).abs() < 0.01, "{dt} mean {m}");
        assert!((var - 0.25).abs() < 0.01, "{dt} var {var}");
        let within = v.iter().filter(|x| (*x - 3.0).abs() < 0.5).count() as f64 / n as f64;
        assert!((within - 0.6827).abs() < 0.01, "{dt} one-sigma {within}");
    }
}

#[test]
fn fills_work_on_views_and_zero_size() {
    let a = NDArray::zeros(&[4, 3], DType::Float32, Context::cpu(0)).unwrap();
    let row = a.slice_axis0(1, 2).unwrap();
    random::fill_uniform(&row, 1.0, 2.0).unwrap();
    let v = a.to_vec::<f32>().unwrap();
    assert!(v[..3].iter().all(|x| *x == 0.0) && v[6..].iter().all(|x| *x == 0.0));
    assert!(v[3..6].iter().all(|x| (1.0..=2.0).contains(x)));
    let e = NDArray::zeros(&[0, 5], DType::Float64, Context::cpu(0)).unwrap();
    random::fill_normal(&e, 0.0, 1.0).unwrap();
    // degenerate but valid
    random::fill_uniform(&a, 2.0, 2.0).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![2.0; 12]);
    random::fill_normal(&a, 1.0, 0.0).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.0; 12]);
}

#[test]
fn errors() {
    let ctx = Context::cpu(0);
    let i = NDArray::zeros(&[3], DType::Int32, ctx).unwrap();
    assert!(matches!(
        random::fill_uniform(&i, 0.0, 1.0),
        Err(Error::UnsupportedDType { .. })
    ));
    assert!(matches!(
        random::fill_normal(&i, 0.0, 1.0),
        Err(Error::UnsupportedDType { .. })
    ));
    assert!(matches!(
        random::uniform(0.0, 1.0, &[2], DType::UInt8, ctx),
        Err(Error::UnsupportedDType { .. })
    ));
    let f = NDArray::zeros(&[3], DType::Float32, ctx).unwrap();
    for (lo, hi) in [
        (1.0, 0.0),
        (f64::NAN, 1.0),
        (0.0, f64::INFINITY),
        (-f64::MAX, f64::MAX),
    ] {
        assert!(matches!(
            random::fill_uniform(&f, lo, hi),
            Err(Error::InvalidArgument { .. })
        ));
    }
    for (m, s) in [(0.0, -1.0), (f64::NAN, 1.0), (0.0, f64::INFINITY)] {
        assert!(matches!(
            random::fill_normal(&f, m, s),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(matches!(
        random::normal(0.0, -1.0, &[2], DType::Float32, ctx),
        Err(Error::InvalidArgument { .. })
    ));
}
