//! Sparse-gradient training steps on a huge embedding table (issue "Sparse storage"):
//!
//! * `embedding_sparse_step_sgd` / `embedding_sparse_step_adam`: `Embedding(10,000,000 × 64,
//!   sparse_grad)` f32, a batch of 1,000 distinct random ids (new every step), loss = sum of
//!   the outputs (backward with a head gradient of ones), `Trainer::step` with lazy SGD / Adam;
//! * `embedding_dense_step_sgd`: the same with a dense gradient (the baseline the sparse step
//!   must beat by 1000×).
//!
//! `--quick` uses a 1,000,000-row table. Besides the time per step, the peak resident memory
//! reached during the steps, over the memory held once the table exists, is reported as the
//! figure `<workload>_peak_mem`, a percentage of the table's size (Linux: `VmHWM` after resetting it through
//! `/proc/self/clear_refs`).

use std::collections::HashSet;

use mxgluon::gluon::nn::Embedding;
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, init, Context, NDArray, Result};

use super::{check, Figure, Harness, Kind, QUICK};

const WIDTH: usize = 64;
const BATCH: usize = 1000;

/// `(workload, sparse gradient, optimizer)`.
const WORKLOADS: [(&str, bool, &str); 3] = [
    ("embedding_sparse_step_sgd", true, "sgd"),
    ("embedding_sparse_step_adam", true, "adam"),
    ("embedding_dense_step_sgd", false, "sgd"),
];

/// Whether any workload of this module is selected.
pub(crate) fn wanted(h: &Harness) -> bool {
    WORKLOADS.iter().any(|w| h.wants(w.0))
}

/// Runs the selected workloads.
pub(crate) fn bench_sparse(h: &Harness) -> Result<()> {
    let quick = h.profile.memory_s == QUICK.memory_s && h.profile.batches == QUICK.batches;
    let rows = if quick { 1_000_000 } else { 10_000_000 };
    for (workload, sparse, opt) in WORKLOADS {
        if h.wants(workload) {
            bench_one(h, workload, rows, sparse, opt)?;
        }
    }
    Ok(())
}

/// A xorshift generator: the ids only need to be spread and cheap to draw.
struct Ids(u64);

impl Ids {
    /// `BATCH` distinct ids below `rows`, as f32 values (exact below 2^24).
    fn next_batch(&mut self, rows: usize) -> Vec<f32> {
        let mut seen = HashSet::with_capacity(BATCH * 2);
        let mut out = Vec::with_capacity(BATCH);
        while out.len() < BATCH {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let id = (self.0 % rows as u64) as usize;
            if seen.insert(id) {
                out.push(id as f32);
            }
        }
        out
    }
}

/// Resident memory figures of this process in bytes: (current, peak); `None` off Linux.
fn rss() -> Option<(usize, usize)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<usize> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn bench_one(h: &Harness, workload: &str, rows: usize, sparse: bool, opt: &str) -> Result<()> {
    let ctx = Context::cpu(0);
    let e = Embedding::builder(rows, WIDTH)
        .sparse_grad(sparse)
        .weight_initializer(init::One) // writes every page: the table is resident
        .build()?;
    e.initialize(None, ctx)?;
    // Memory baseline: the table exists. The peak is reset here, so what the steps add
    // (gradients, optimizer states, temporaries) is measured on top of it.
    let table_bytes = rows * WIDTH * 4;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = rss();
    let opts = match opt {
        "adam" => OptimizerOptions::new().set("learning_rate", 0.001),
        _ => OptimizerOptions::new().set("learning_rate", 0.1),
    };
    let mut trainer = Trainer::new(&e.collect_params()?, (opt, opts), TrainerOptions::default())?;
    // 64 batches drawn before timing, as the peers' scripts do: the step is what is measured.
    let mut gen = Ids(0x9E37_79B9_7F4A_7C15);
    let batches: Vec<Vec<f32>> = (0..64).map(|_| gen.next_batch(rows)).collect();
    let first = batches[0].clone();
    let pool = batches
        .into_iter()
        .map(|b| NDArray::from_vec(b, &[BATCH], ctx))
        .collect::<Result<Vec<_>>>()?;
    let mut it = 0usize;
    let mut step = || -> Result<()> {
        let x = &pool[it % pool.len()];
        it += 1;
        let y = {
            let _rec = autograd::record();
            e.forward(x)?
        };
        y.backward()?; // head gradient of ones: loss = sum of the outputs
        trainer.step(BATCH)
    };
    let t = h.time(Kind::Memory, &mut step)?;
    let after = rss();
    let w = e.weight().data(None)?;
    let row = first[0] as usize;
    let v = w.get_f64(&[row, 0])?;
    check(v < 1.0, "a touched row was not updated")?;
    let mode = format!(
        "Embedding({rows}x{WIDTH}, sparse_grad={sparse}) f32, {BATCH} distinct random ids per \
         step, forward + backward(ones) + Trainer.step({opt}), 1 context"
    );
    h.report_time(workload, "ours", &t, "ms", 1e3, &mode);
    if let (Some((rss0, _)), Some((_, peak))) = (base, after) {
        let growth = peak.saturating_sub(rss0) as f64 / table_bytes as f64 * 100.0;
        let mem_mode = format!(
            "peak RSS during the steps minus the RSS once the {:.1} MiB table existed, as % of \
             the table ({:.1} MiB above)",
            table_bytes as f64 / 1048576.0,
            peak.saturating_sub(rss0) as f64 / 1048576.0
        );
        h.emit(Figure {
            workload: &format!("{workload}_peak_mem"),
            imp: "ours",
            value: growth,
            range: (growth, growth),
            unit: "% of table",
            higher_is_better: false,
            calls: t.calls,
            mode: &mem_mode,
        });
    }
    Ok(())
}
