//! Training a large embedding table with row-sparse gradients: `Embedding(sparse_grad)` gives
//! a gradient holding only the rows a batch touches, and the Trainer's lazy SGD updates only
//! those rows, so a step costs O(batch) whatever the table's size.
//!
//! The task: 1,000,000 items, each with a hidden score `sin(id)`; the model learns a scalar
//! per item (an embedding of width 1) from batches of 512 random ids with an L2 loss. Only
//! items seen in a batch move; the table itself is never scanned.
//!
//! Run with `cargo run --release -p mxgluon --example sparse_embedding`.

use std::time::Instant;

use mxgluon::gluon::loss::{L2Loss, Loss};
use mxgluon::gluon::nn::Embedding;
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::nd::Array;
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, init, Context, NDArray};

const ITEMS: usize = 1_000_000;
const BATCH: usize = 512;

fn main() -> mxgluon::Result<()> {
    let ctx = Context::cpu(0);
    let table = Embedding::builder(ITEMS, 1)
        .sparse_grad(true)
        .weight_initializer(init::Zero)
        .build()?;
    table.initialize(None, ctx)?;
    let mut trainer = Trainer::new(
        &table.collect_params()?,
        ("sgd", OptimizerOptions::new().set("learning_rate", 0.5)),
        TrainerOptions::default(),
    )?;
    let loss = L2Loss::new();
    // Ids drawn from a small hot set (so items are seen repeatedly) by an LCG.
    let hot = 4096u64;
    let mut state = 12345u64;
    let start = Instant::now();
    for step in 0..300 {
        let ids: Vec<f32> = (0..BATCH)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % hot * (ITEMS as u64 / hot)) as f32
            })
            .collect();
        let target: Vec<f32> = ids.iter().map(|&i| (i as f64).sin() as f32).collect();
        let x = NDArray::from_vec(ids, &[BATCH], ctx)?;
        let y = NDArray::from_vec(target, &[BATCH, 1], ctx)?;
        let l = {
            let _rec = autograd::record();
            loss.loss(&table.forward(&x)?, &y, None)?
        };
        l.backward()?;
        if step == 0 {
            // The gradient is row-sparse: at most BATCH of the 1,000,000 rows.
            if let Array::RowSparse(g) = table.weight().grad_array(None)? {
                println!(
                    "step 0: gradient stores {} of {} rows",
                    g.nnz_rows(),
                    g.shape()[0]
                );
            }
        }
        trainer.step(1)?; // per-item gradients, not averaged: each row learns at rate 0.5
        if step % 100 == 99 {
            let mean = l.mean()?.to_vec::<f32>()?[0];
            println!("step {:3}: loss {mean:.5}", step + 1);
        }
    }
    println!(
        "300 steps on a {ITEMS}-row table in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
