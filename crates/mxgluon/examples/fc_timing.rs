//! Times `nd::fully_connected` (f32) on a tiny and a large layer. Run with
//! `cargo run --release -p mxgluon --example fc_timing`.

use std::time::Instant;

use mxgluon::{nd, Context};

fn time(n: usize, k: usize, h: usize, iters: usize) -> mxgluon::Result<()> {
    let ctx = Context::cpu(0);
    let x = nd::full(&[n, k], 0.5, ctx)?;
    let w = nd::full(&[h, k], 0.25, ctx)?;
    let b = nd::full(&[h], 1.0, ctx)?;
    let mut best = f64::INFINITY;
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..iters {
            let y = nd::fully_connected(&x, &w, Some(&b), h)?;
            std::hint::black_box(&y);
        }
        let per = t.elapsed().as_secs_f64() / iters as f64;
        best = best.min(per);
        times.push(per);
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    let gflop = 2.0 * (n * k * h) as f64 / 1e9;
    println!(
        "{n}x{k}->{h}: median {:.3} us ({:.1} GFLOP/s), best {:.3} us ({:.1} GFLOP/s)",
        med * 1e6,
        gflop / med,
        best * 1e6,
        gflop / best
    );
    Ok(())
}

fn main() -> mxgluon::Result<()> {
    time(16, 100, 64, 200_000)?;
    time(256, 1024, 4096, 40)?;
    Ok(())
}
