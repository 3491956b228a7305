//! `mxgluon-bench`: times mxgluon on the workloads of `bench/README.md` and prints one JSON line
//! per figure, in the format `bench/report.py` reads:
//!
//! ```text
//! {"workload": "fc_seed", "impl": "ours", "value": 1.02, "unit": "us", "higher_is_better": false, ...}
//! ```
//!
//! The harness is the same as the peers' (`bench/peers/harness.py`): one warm-up call, calls per
//! batch doubled until a batch lasts at least the batch time, then several timed batches; the
//! median per-call time is reported, with the fastest and slowest batch as a range.
//!
//! Usage: `mxgluon-bench [--quick] [--filter NAME]` (`NAME` matches workloads by substring).

mod resnet;
mod sparse;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use mxgluon::gluon::InitOptions;
use mxgluon::{init, nd, Context, DType, NDArray, Parameter, Result};

/// `(batch, in_units, num_hidden)` of the tiny fully-connected layer.
const FC_SEED: (usize, usize, usize) = (16, 100, 64);
/// `(batch, in_units, num_hidden)` of the large fully-connected layer.
const FC_LARGE: (usize, usize, usize) = (256, 1024, 4096);
/// The parameter shape of the initialization and multi-context workloads.
const BIG: [usize; 2] = [4096, 4096];
/// Number of contexts the multi-context parameter lives on.
const NCTX: u32 = 4;
/// Bytes of one f32 copy of a `BIG` parameter (64 MiB).
const PARAM_BYTES: usize = 4096 * 4096 * 4;
/// Bytes written by `set_data` / `zero_grad` across the `NCTX` copies.
const BYTES_NCTX: f64 = (NCTX as usize * PARAM_BYTES) as f64;

/// How long and how often to measure.
#[derive(Clone, Copy)]
struct Profile {
    batches: usize,
    /// Minimum seconds per batch for compute-bound workloads (GEMM).
    compute_s: f64,
    /// Minimum seconds per batch for memory-bound workloads (fills, copies, RNG).
    memory_s: f64,
}

const NORMAL: Profile = Profile {
    batches: 5,
    compute_s: 0.2,
    memory_s: 0.5,
};
const QUICK: Profile = Profile {
    batches: 3,
    compute_s: 0.05,
    memory_s: 0.1,
};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Compute,
    Memory,
}

/// Seconds per call: median over the batches, fastest and slowest batch, calls per batch.
struct Timing {
    median: f64,
    min: f64,
    max: f64,
    calls: usize,
}

struct Harness {
    profile: Profile,
    filter: Option<String>,
}

impl Harness {
    fn wants(&self, workload: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| workload.contains(f))
    }

    /// Times `call` with the calibrated batch scheme described in the module docs.
    fn time(&self, kind: Kind, mut call: impl FnMut() -> Result<()>) -> Result<Timing> {
        let min_s = match kind {
            Kind::Compute => self.profile.compute_s,
            Kind::Memory => self.profile.memory_s,
        };
        let mut run = |n: usize| -> Result<f64> {
            let t0 = Instant::now();
            for _ in 0..n {
                call()?;
            }
            Ok(t0.elapsed().as_secs_f64())
        };
        run(1)?; // warm-up: first touch of pooled buffers, rayon start-up
        let mut n = 1usize;
        loop {
            let t = run(n)?;
            if t >= min_s {
                break;
            }
            // Aim a little past the target so that one more doubling is rarely needed.
            let estimate = (n as f64 * min_s * 1.2 / t.max(1e-9)) as usize;
            n = (n * 2).max(estimate);
        }
        let mut per_call = Vec::with_capacity(self.profile.batches);
        for _ in 0..self.profile.batches {
            per_call.push(run(n)? / n as f64);
        }
        per_call.sort_by(f64::total_cmp);
        Ok(Timing {
            median: median(&per_call),
            min: per_call[0],
            max: per_call[per_call.len() - 1],
            calls: n,
        })
    }

    fn emit(&self, f: Figure<'_>) {
        println!(
            "{{\"workload\": {}, \"impl\": {}, \"value\": {}, \"unit\": {}, \"higher_is_better\": {}, \
             \"range\": [{}, {}], \"calls_per_batch\": {}, \"batches\": {}, \"mode\": {}}}",
            json_str(f.workload),
            json_str(f.imp),
            json_num(f.value),
            json_str(f.unit),
            f.higher_is_better,
            json_num(f.range.0),
            json_num(f.range.1),
            f.calls,
            self.profile.batches,
            json_str(f.mode),
        );
    }

    /// Reports `t` scaled to a time unit (`scale` = 1e6 for microseconds).
    fn report_time(
        &self,
        workload: &str,
        imp: &str,
        t: &Timing,
        unit: &str,
        scale: f64,
        mode: &str,
    ) {
        self.emit(Figure {
            workload,
            imp,
            value: t.median * scale,
            range: (t.min * scale, t.max * scale),
            unit,
            higher_is_better: false,
            calls: t.calls,
            mode,
        });
    }

    /// Reports a rate, `amount` per call divided by the time per call (GFLOP/s, GB/s).
    fn report_rate(
        &self,
        workload: &str,
        imp: &str,
        t: &Timing,
        amount: f64,
        unit: &str,
        mode: &str,
    ) {
        self.emit(Figure {
            workload,
            imp,
            value: amount / t.median,
            range: (amount / t.max, amount / t.min),
            unit,
            higher_is_better: true,
            calls: t.calls,
            mode,
        });
    }
}

/// One output line.
struct Figure<'a> {
    workload: &'a str,
    imp: &'a str,
    value: f64,
    /// Slowest and fastest batch, in the unit of `value`.
    range: (f64, f64),
    unit: &'a str,
    higher_is_better: bool,
    calls: usize,
    mode: &'a str,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// A JSON number; non-finite values (which JSON cannot hold) become `null`.
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_string()
    }
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Stops with a message when a workload computed something it should not have: a fast wrong
/// answer is not a benchmark result.
fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(mxgluon::Error::invalid_arg(
            "mxgluon-bench",
            format!("sanity check failed: {what}"),
        ))
    }
}

/// `fully_connected` forward of `(m, k) x (n, k)^T + b`.
fn bench_fc(h: &Harness, workload: &str, (m, k, n): (usize, usize, usize)) -> Result<()> {
    let ctx = Context::cpu(0);
    let x = mxgluon::random::uniform(-1.0, 1.0, &[m, k], DType::Float32, ctx)?;
    let w = mxgluon::random::uniform(-0.1, 0.1, &[n, k], DType::Float32, ctx)?;
    let b = mxgluon::random::uniform(-0.1, 0.1, &[n], DType::Float32, ctx)?;
    let out = nd::fully_connected(&x, &w, Some(&b), n)?;
    check(out.shape() == [m, n], "fully_connected output shape")?;
    let t = h.time(Kind::Compute, || {
        let out = nd::fully_connected(black_box(&x), black_box(&w), Some(black_box(&b)), n)?;
        black_box(out);
        Ok(())
    })?;
    let mode = "nd::fully_connected, synchronous (result ready on return)";
    if workload == "fc_seed" {
        h.report_time(workload, "ours", &t, "us", 1e6, mode);
    } else {
        let gflop = 2.0 * (m * n * k) as f64 / 1e9;
        h.report_rate(workload, "ours", &t, gflop, "GFLOP/s", mode);
    }
    Ok(())
}

/// Xavier(uniform, avg, magnitude 3) initialization of a 4096x4096 parameter on one context.
fn bench_xavier(h: &Harness) -> Result<()> {
    let ctxs = vec![Context::cpu(0)];
    let p = Parameter::new("w")
        .with_shape(BIG)
        .with_init(init::Xavier::default());
    p.initialize(ctxs.clone())?;
    let t = h.time(Kind::Memory, || {
        p.initialize_with(InitOptions::new().ctx(ctxs.clone()).force_reinit(true))
    })?;
    // Xavier's bound for fan_in = fan_out = 4096 is sqrt(6 / 8192) ~= 0.027.
    let v = p.data(Context::cpu(0))?.get_f64(&[17, 4000])?;
    check(v.abs() <= 0.0271 && v != 0.0, "Xavier value out of range")?;
    let mode = "Parameter(init=Xavier).initialize_with(force_reinit), 1 context";
    h.report_time("xavier_init", "ours", &t, "ms", 1e3, mode);
    Ok(())
}

/// `set_data` and `zero_grad` on a parameter with a copy on each of 4 contexts, next to plain
/// memcpy / memset of the same bytes on both cores.
fn bench_multi_ctx(h: &Harness) -> Result<()> {
    let elems = PARAM_BYTES / 4;
    let mut dsts: Vec<Vec<f32>> = (0..NCTX).map(|_| vec![1.0f32; elems]).collect();
    let src_vec = vec![0.5f32; elems]; // both written: pages are faulted in before timing

    if h.wants("set_data_4ctx") {
        let t = h.time(Kind::Memory, || {
            for d in dsts.iter_mut() {
                // Two threads, each copying half: the reference runs on both cores like ours.
                let (d0, d1) = d.split_at_mut(elems / 2);
                let (s0, s1) = black_box(&src_vec).split_at(elems / 2);
                std::thread::scope(|sc| {
                    sc.spawn(|| d0.copy_from_slice(s0));
                    d1.copy_from_slice(s1);
                });
            }
            black_box(&mut dsts);
            Ok(())
        })?;
        let mode = "copy_from_slice of a 64 MiB pre-faulted Vec, x4, 2 threads";
        h.report_rate(
            "set_data_4ctx",
            "memcpy",
            &t,
            BYTES_NCTX / 1e9,
            "GB/s",
            mode,
        );
    }
    if h.wants("zero_grad_4ctx") {
        let t = h.time(Kind::Memory, || {
            for d in dsts.iter_mut() {
                let (d0, d1) = d.split_at_mut(elems / 2);
                std::thread::scope(|sc| {
                    sc.spawn(|| d0.fill(0.0));
                    d1.fill(0.0);
                });
            }
            black_box(&mut dsts);
            Ok(())
        })?;
        let mode = "fill(0) of a 64 MiB pre-faulted Vec, x4, 2 threads";
        h.report_rate(
            "zero_grad_4ctx",
            "memset",
            &t,
            BYTES_NCTX / 1e9,
            "GB/s",
            mode,
        );
    }
    drop(dsts);
    drop(src_vec);

    let ctxs: Vec<Context> = (0..NCTX).map(Context::cpu).collect();
    let p = Parameter::new("w")
        .with_shape(BIG)
        .with_init(init::Xavier::default());
    p.initialize(ctxs.clone())?;
    let src: NDArray = mxgluon::random::uniform(-1.0, 1.0, &BIG, DType::Float32, Context::cpu(0))?;

    if h.wants("set_data_4ctx") {
        let t = h.time(Kind::Memory, || p.set_data(&src))?;
        let want = src.get_f64(&[4095, 4095])?;
        for &c in &ctxs {
            check(
                p.data(c)?.get_f64(&[4095, 4095])? == want,
                "set_data did not reach every context",
            )?;
        }
        let mode = "Parameter::set_data(&src), 4 contexts";
        h.report_rate("set_data_4ctx", "ours", &t, BYTES_NCTX / 1e9, "GB/s", mode);
    }
    if h.wants("zero_grad_4ctx") {
        let t = h.time(Kind::Memory, || p.zero_grad())?;
        let mode = "Parameter::zero_grad(), 4 contexts";
        h.report_rate("zero_grad_4ctx", "ours", &t, BYTES_NCTX / 1e9, "GB/s", mode);
    }
    Ok(())
}

/// Arrays in the file workloads: `FILE_ARRAYS` float32 arrays of `FILE_ELEMS` elements.
const FILE_ARRAYS: usize = 32;
const FILE_ELEMS: usize = 2 << 20;
/// Bytes of data in the file workloads (256 MiB).
const FILE_BYTES: f64 = (FILE_ARRAYS * FILE_ELEMS * 4) as f64;

/// A folder for the file workloads, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let d = std::env::temp_dir().join(format!("mxgluon-bench-{}", std::process::id()));
        std::fs::create_dir_all(&d).map_err(|e| mxgluon::Error::Io {
            path: d.display().to_string(),
            source: e,
        })?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io_err(path: &std::path::Path) -> impl Fn(std::io::Error) -> mxgluon::Error + '_ {
    move |e| mxgluon::Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// `nd::save` / `nd::load` of a dict of float32 arrays totalling 256 MiB, next to plain
/// writes and reads of the same number of bytes.
fn bench_params_io(h: &Harness) -> Result<()> {
    use std::io::{Read, Write};
    let dir = TempDir::new()?;
    let ctx = Context::cpu(0);
    let arrays: Vec<(String, NDArray)> = (0..FILE_ARRAYS)
        .map(|i| {
            let a = mxgluon::random::uniform(
                -1.0,
                1.0,
                &[FILE_ELEMS / 1024, 1024],
                DType::Float32,
                ctx,
            )?;
            Ok((format!("layer{i}.weight"), a))
        })
        .collect::<Result<_>>()?;
    let data = nd::ArrayList::from(arrays);
    let path = dir.0.join("bench.params");
    let plain = dir.0.join("plain.bin");
    let gb = FILE_BYTES / 1e9;
    let durable = nd::SaveOptions::new();
    let fast = nd::SaveOptions::new().durable(false);
    // the plain references move the same bytes between a pre-faulted buffer and a file
    let mut buf = vec![1u8; FILE_BYTES as usize];

    if h.wants("params_save") {
        let t = h.time(Kind::Memory, || nd::save_with(&path, &data, &durable))?;
        h.report_rate(
            "params_save",
            "ours",
            &t,
            gb,
            "GB/s",
            "nd::save (temp file, fsync, rename, fsync dir)",
        );
        let t = h.time(Kind::Memory, || nd::save_with(&path, &data, &fast))?;
        h.report_rate(
            "params_save",
            "ours-nofsync",
            &t,
            gb,
            "GB/s",
            "nd::save_with(durable(false)): temp file, rename",
        );
        for (imp, sync) in [("write", false), ("write-fsync", true)] {
            let t = h.time(Kind::Memory, || {
                let mut f = std::fs::File::create(&plain).map_err(io_err(&plain))?;
                f.write_all(black_box(&buf)).map_err(io_err(&plain))?;
                if sync {
                    f.sync_all().map_err(io_err(&plain))?;
                }
                Ok(())
            })?;
            let mode = if sync {
                "File::create + write_all + sync_all of 256 MiB"
            } else {
                "File::create + write_all of 256 MiB"
            };
            h.report_rate("params_save", imp, &t, gb, "GB/s", mode);
        }
    }
    if h.wants("params_load") {
        nd::save_with(&path, &data, &fast)?;
        let want = data
            .get("layer31.weight")
            .and_then(|a| a.as_dense())
            .map(|a| a.to_f32_vec()[12345]);
        let t = h.time(Kind::Memory, || {
            let l = nd::load(black_box(&path))?;
            if l.len() != FILE_ARRAYS {
                return check(false, "loaded array count");
            }
            black_box(l);
            Ok(())
        })?;
        let l = nd::load(&path)?;
        let got = l
            .get("layer31.weight")
            .and_then(|a| a.as_dense())
            .map(|a| a.to_f32_vec()[12345]);
        check(got == want && got.is_some(), "loaded values")?;
        h.report_rate(
            "params_load",
            "ours",
            &t,
            gb,
            "GB/s",
            "nd::load into new arrays",
        );
        std::fs::write(&plain, &buf).map_err(io_err(&plain))?;
        let t = h.time(Kind::Memory, || {
            let mut f = std::fs::File::open(&plain).map_err(io_err(&plain))?;
            f.read_exact(black_box(&mut buf)).map_err(io_err(&plain))?;
            Ok(())
        })?;
        h.report_rate(
            "params_load",
            "read",
            &t,
            gb,
            "GB/s",
            "File::open + read_exact of 256 MiB into a pre-faulted buffer",
        );
    }
    Ok(())
}

fn parse_args() -> std::result::Result<Harness, String> {
    let mut h = Harness {
        profile: NORMAL,
        filter: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => h.profile = QUICK,
            "--filter" => h.filter = Some(args.next().ok_or("--filter needs a workload name")?),
            "-h" | "--help" => {
                return Err("usage: mxgluon-bench [--quick] [--filter NAME]".to_string());
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(h)
}

/// Register-resident FMA chains: 16 independent accumulators per thread, so the figure is the
/// core's FMA throughput, not latency. AVX-512 when the CPU has it, else AVX2.
#[cfg(target_arch = "x86_64")]
fn fma_chain(iters: usize) -> f32 {
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(iters: usize) -> f32 {
        use std::arch::x86_64::*;
        let mut acc = [_mm512_set1_ps(0.0); 16];
        let a = _mm512_set1_ps(0.999_999_9);
        let b = _mm512_set1_ps(1e-7);
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        acc.iter().map(|x| _mm512_reduce_add_ps(*x)).sum()
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(iters: usize) -> f32 {
        use std::arch::x86_64::*;
        let mut acc = [_mm256_set1_ps(0.0); 16];
        let a = _mm256_set1_ps(0.999_999_9);
        let b = _mm256_set1_ps(1e-7);
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut out = [0f32; 8];
        let mut s = 0.0;
        for x in acc {
            // SAFETY: `out` holds 8 floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), x) };
            s += out.iter().sum::<f32>();
        }
        s
    }
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked).
        unsafe { avx512(iters) }
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked).
        unsafe { avx2(iters) }
    } else {
        0.0
    }
}

/// FLOP per `fma_chain` iteration: 16 accumulators × lanes × 2.
#[cfg(target_arch = "x86_64")]
fn fma_flop_per_iter() -> f64 {
    let lanes = if is_x86_feature_detected!("avx512f") {
        16.0
    } else {
        8.0
    };
    16.0 * lanes * 2.0
}

/// The machine's f32 FMA peak on all cores, the reference for the GEMM figures.
#[cfg(target_arch = "x86_64")]
fn bench_peak(h: &Harness) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let iters = 2_000_000;
    let t = h.time(Kind::Compute, || {
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..threads)
                .map(|_| sc.spawn(move || black_box(fma_chain(black_box(iters)))))
                .collect();
            for j in hs {
                black_box(j.join().ok());
            }
        });
        Ok(())
    })?;
    let flop = fma_flop_per_iter() * iters as f64 * threads as f64;
    let mode = "register-resident FMA chains on every core (AVX-512 if present)";
    h.report_rate("fma_peak", "ours", &t, flop / 1e9, "GFLOP/s", mode);
    Ok(())
}

/// Layer sizes of the MLP workload (784→256→256→10) and its batch.
const MLP: [usize; 4] = [784, 256, 256, 10];
const MLP_BATCH: usize = 64;
/// Recorded operations per call of the overhead workload.
const OPS_PER_CALL: usize = 100;

/// Forward + softmax cross-entropy + backward of a 3-layer MLP (784→256→256→10, ReLU, batch
/// 64, f32) through Gluon-style blocks and autograd.
fn bench_mlp(h: &Harness) -> Result<()> {
    use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
    use mxgluon::gluon::nn::{Dense, Sequential};
    use mxgluon::gluon::Block;
    use mxgluon::nd::ActType;
    let ctx = Context::cpu(0);
    let net = Sequential::new();
    {
        let _s = net.name_scope();
        net.add(
            Dense::builder(MLP[1])
                .in_units(MLP[0])
                .activation(ActType::Relu)
                .build()?,
        );
        net.add(
            Dense::builder(MLP[2])
                .in_units(MLP[1])
                .activation(ActType::Relu)
                .build()?,
        );
        net.add(Dense::builder(MLP[3]).in_units(MLP[2]).build()?);
    }
    net.initialize(Some(init::Xavier::default().into()), ctx)?;
    let x = mxgluon::random::uniform(0.0, 1.0, &[MLP_BATCH, MLP[0]], DType::Float32, ctx)?;
    let labels: Vec<f32> = (0..MLP_BATCH).map(|i| (i * 7 % 10) as f32).collect();
    let label = NDArray::from_vec(labels, &[MLP_BATCH], ctx)?;
    let lossf = SoftmaxCrossEntropyLoss::new();
    let step = || -> Result<()> {
        let l = {
            let _r = mxgluon::autograd::record();
            let y = net.forward(black_box(&x))?;
            lossf.loss(&y, &label, None)?
        };
        l.backward()?;
        black_box(l);
        Ok(())
    };
    step()?;
    let w = net.collect_params()?.values()[0].grad(ctx)?;
    check(
        w.to_f32_vec().iter().any(|&g| g != 0.0),
        "the MLP's first weight gets a gradient",
    )?;
    let t = h.time(Kind::Compute, step)?;
    h.report_time(
        "mlp_fwd_bwd",
        "ours",
        &t,
        "us",
        1e6,
        "Sequential of 3 Dense (ReLU) + SoftmaxCrossEntropyLoss under autograd::record, then backward; grad_req write",
    );
    Ok(())
}

/// Framework overhead of one recorded operation on a tiny array: a chain of
/// `OPS_PER_CALL` `x * 1.0001` on 4 elements under `autograd::record`, without and with the
/// backward pass through it.
fn bench_op_overhead(h: &Harness) -> Result<()> {
    let ctx = Context::cpu(0);
    let mut x = nd::ones(&[4], ctx)?;
    x.attach_grad(mxgluon::GradReq::Write)?;
    let chain = |x: &NDArray| -> Result<NDArray> {
        let _r = mxgluon::autograd::record();
        let mut y = x.clone();
        for _ in 0..OPS_PER_CALL {
            y = y.mul_scalar(1.0001)?;
        }
        Ok(y)
    };
    check(chain(&x)?.is_tracked(), "the chain is recorded")?;
    let t = h.time(Kind::Compute, || {
        black_box(chain(black_box(&x))?);
        Ok(())
    })?;
    let per_op = |t: &Timing| Timing {
        median: t.median / OPS_PER_CALL as f64,
        min: t.min / OPS_PER_CALL as f64,
        max: t.max / OPS_PER_CALL as f64,
        calls: t.calls,
    };
    h.report_time(
        "recorded_op",
        "ours",
        &per_op(&t),
        "us",
        1e6,
        "per op: mul_scalar on a (4,) f32 variable under autograd::record, chain of 100",
    );
    let t = h.time(Kind::Compute, || {
        let y = chain(black_box(&x))?;
        y.backward()?;
        Ok(())
    })?;
    h.report_time(
        "recorded_op_fwd_bwd",
        "ours",
        &per_op(&t),
        "us",
        1e6,
        "per op: the same chain recorded, then backward through it",
    );
    Ok(())
}

/// Batch size, hidden sizes and learning rate of the `train_epoch_digits` workload: the
/// defaults of `mxgluon train`.
const TRAIN_BATCH: usize = 64;
const TRAIN_HIDDEN: [usize; 2] = [128, 64];
const TRAIN_LR: f64 = 0.1;

/// One epoch of `mxgluon train`'s default model on the embedded digits (training split, fixed
/// batch order): MLP 64-128-64-10 with ReLU, softmax cross-entropy, SGD with momentum 0.9,
/// batch 64, `Trainer::step` per batch; on one context, and data-parallel on two.
fn bench_train_epoch(h: &Harness) -> Result<()> {
    use mxgluon::gluon::data::vision::Digits;
    use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
    use mxgluon::gluon::nn::{Dense, Sequential};
    use mxgluon::gluon::utils::{parallel_map, split_and_load};
    use mxgluon::gluon::{Block, Trainer, TrainerOptions};
    use mxgluon::nd::ActType;
    use mxgluon::optimizer::OptimizerOptions;

    let train = Digits::train()?;
    let (x, y) = (train.data().clone(), train.label().clone());
    let n = x.shape()[0];
    for (workload, ctxs) in [
        ("train_epoch_digits", vec![Context::cpu(0)]),
        (
            "train_epoch_digits_2ctx",
            vec![Context::cpu(0), Context::cpu(1)],
        ),
    ] {
        if !h.wants(workload) {
            continue;
        }
        let net = Sequential::new();
        {
            let _s = net.name_scope();
            let mut fan_in = x.shape()[1];
            for &units in &TRAIN_HIDDEN {
                net.add(
                    Dense::builder(units)
                        .in_units(fan_in)
                        .activation(ActType::Relu)
                        .build()?,
                );
                fan_in = units;
            }
            net.add(Dense::builder(10).in_units(fan_in).build()?);
        }
        net.initialize(Some(init::Xavier::default().into()), ctxs.clone())?;
        let mut trainer = Trainer::new(
            &net.collect_params()?,
            (
                "sgd",
                OptimizerOptions::new()
                    .set("learning_rate", TRAIN_LR)
                    .set("momentum", 0.9),
            ),
            TrainerOptions::default(),
        )?;
        let lossf = SoftmaxCrossEntropyLoss::new();
        let mut batches = Vec::new();
        for start in (0..n).step_by(TRAIN_BATCH) {
            let end = (start + TRAIN_BATCH).min(n);
            let xb = x.slice_axis0(start, end)?.copy_to(Context::cpu(0))?;
            let yb = y.slice_axis0(start, end)?.copy_to(Context::cpu(0))?;
            let parts: Vec<(NDArray, NDArray)> = split_and_load(&xb, &ctxs, false)?
                .into_iter()
                .zip(split_and_load(&yb, &ctxs, false)?)
                .collect();
            batches.push((end - start, parts));
        }
        let one = |xb: &NDArray, yb: &NDArray| -> Result<()> {
            let l = {
                let _r = mxgluon::autograd::record();
                lossf.loss(&net.forward(xb)?, yb, None)?
            };
            l.backward()
        };
        let mut epoch = || -> Result<()> {
            for (bs, parts) in &batches {
                parallel_map(parts, |(xb, yb)| one(xb, yb))?;
                trainer.step(*bs)?;
            }
            Ok(())
        };
        epoch()?;
        let t = h.time(Kind::Compute, &mut epoch)?;
        let out = net.forward(&x.copy_to(ctxs[0])?)?.to_f32_vec();
        let labels = y.to_f32_vec();
        let hits = out
            .chunks(10)
            .zip(&labels)
            .filter(|(r, &l)| (0..10).fold(0, |b, i| if r[i] > r[b] { i } else { b }) == l as usize)
            .count();
        check(
            hits * 10 > n * 9,
            "training fits the digits (over 90% train accuracy)",
        )?;
        let mode = format!(
            "{n} samples, batch {TRAIN_BATCH}, MLP 64-128-64-10 ReLU, SGD lr {TRAIN_LR} momentum 0.9, Trainer.step per batch, {} context(s){}",
            ctxs.len(),
            if ctxs.len() > 1 { ", one pool task per context (gluon::utils::parallel_map)" } else { "" }
        );
        h.report_time(workload, "ours", &t, "ms", 1e3, &mode);
    }
    Ok(())
}

/// Gradient reduction + SGD-with-momentum update of a 4096×4096 f32 parameter held on 4
/// contexts: sum 4 gradients, update the first copy and its momentum, copy it to 3 others.
/// Traffic: 4 gradient reads, weight and momentum read + write, 3 copy writes (11 × 64 MiB).
/// A 2-thread memcpy of the same buffers gives this run's bandwidth reference.
fn bench_kv_update(h: &Harness) -> Result<()> {
    use mxgluon::kvstore::reduce_update_broadcast;
    use mxgluon::optimizer::{self, OptState, OptimizerOptions};
    const TRAFFIC: f64 = 11.0 * PARAM_BYTES as f64;

    let elems = PARAM_BYTES / 4;
    {
        let mut dst = vec![1.0f32; elems];
        let src = vec![0.5f32; elems];
        let t = h.time(Kind::Memory, || {
            let (d0, d1) = dst.split_at_mut(elems / 2);
            let (s0, s1) = black_box(&src).split_at(elems / 2);
            std::thread::scope(|sc| {
                sc.spawn(|| d0.copy_from_slice(s0));
                d1.copy_from_slice(s1);
            });
            black_box(&mut dst);
            Ok(())
        })?;
        h.report_rate(
            "kv_update_4ctx",
            "memcpy",
            &t,
            2.0 * PARAM_BYTES as f64 / 1e9,
            "GB/s",
            "bandwidth reference: copy_from_slice of 64 MiB on 2 threads, read + write bytes",
        );
    }
    let ctxs: Vec<Context> = (0..NCTX).map(Context::cpu).collect();
    let weights: Vec<NDArray> = ctxs
        .iter()
        .map(|&c| nd::full(&BIG, 0.5, c))
        .collect::<Result<_>>()?;
    let grads: Vec<NDArray> = ctxs
        .iter()
        .map(|&c| nd::full(&BIG, 1e-3, c))
        .collect::<Result<_>>()?;
    let mut opt = optimizer::create(
        "sgd",
        &OptimizerOptions::new()
            .set("learning_rate", 0.01)
            .set("momentum", 0.9),
    )?;
    let mut state = OptState::new(opt.as_ref(), &weights[0])?;
    let t = h.time(Kind::Memory, || {
        let args = opt.params_mut().begin_step(0, 0, 1.0, 1.0);
        reduce_update_broadcast(opt.as_ref(), &args, &weights, &grads, &mut state)
    })?;
    check(
        weights[3].get_f64(&[4095, 4095])? == weights[0].get_f64(&[4095, 4095])?
            && weights[0].get_f64(&[0, 0])? < 0.5,
        "the update reached every copy",
    )?;
    h.report_rate(
        "kv_update_4ctx",
        "ours",
        &t,
        TRAFFIC / 1e9,
        "GB/s",
        "kvstore::reduce_update_broadcast: sum 4 grads + SGD momentum on copy 0 + copy to 3, fused; traffic 11 x 64 MiB",
    );
    Ok(())
}

fn run(h: &Harness) -> Result<()> {
    println!(
        "{{\"info\": {{\"version\": {}, \"threads\": {}}}, \"impl\": \"ours\"}}",
        json_str(env!("CARGO_PKG_VERSION")),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    mxgluon::random::seed(42);
    #[cfg(target_arch = "x86_64")]
    if h.wants("fc_large") || h.wants("fma_peak") {
        bench_peak(h)?;
    }
    if h.wants("fc_seed") {
        bench_fc(h, "fc_seed", FC_SEED)?;
    }
    if h.wants("fc_large") {
        bench_fc(h, "fc_large", FC_LARGE)?;
    }
    if h.wants("xavier_init") {
        bench_xavier(h)?;
    }
    if h.wants("set_data_4ctx") || h.wants("zero_grad_4ctx") {
        bench_multi_ctx(h)?;
    }
    if h.wants("mlp_fwd_bwd") {
        bench_mlp(h)?;
    }
    if h.wants("recorded_op") {
        bench_op_overhead(h)?;
    }
    if h.wants("params_save") || h.wants("params_load") {
        bench_params_io(h)?;
    }
    if h.wants("train_epoch_digits") {
        bench_train_epoch(h)?;
    }
    if h.wants("kv_update_4ctx") {
        bench_kv_update(h)?;
    }
    if sparse::wanted(h) {
        sparse::bench_sparse(h)?;
    }
    if resnet::wanted(h) {
        resnet::bench_resnet(h)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let h = match parse_args() {
        Ok(h) => h,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&h) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mxgluon-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
