//! Data-parallel training over two contexts: each batch is split with `split_and_load`, every
//! context runs forward and backward on its own thread, and the Trainer sums the gradients and
//! applies one update to every copy (MXNet's `kvstore='device'`).
//!
//! Run with `cargo run --release -p mxgluon --example multi_context`.

use mxgluon::gluon::loss::{L2Loss, Loss};
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::utils::split_and_load;
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::nd::ActType;
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, init, random, Context, DType, NDArray};

fn main() -> mxgluon::Result<()> {
    let ctxs = [Context::cpu(0), Context::cpu(1)];
    random::seed(11);
    // Regression target: y = sin(3 x0) + x1^2.
    let n = 1024;
    let x = random::uniform(-1.0, 1.0, &[n, 2], DType::Float32, ctxs[0])?;
    let target: Vec<f32> = x
        .to_f32_vec()
        .chunks(2)
        .map(|r| (3.0 * r[0]).sin() + r[1] * r[1])
        .collect();
    let y = NDArray::from_vec(target, &[n, 1], ctxs[0])?;

    let net = Sequential::new();
    {
        let _scope = net.name_scope();
        net.add(Dense::builder(32).activation(ActType::Tanh).build()?);
        net.add(Dense::builder(1).build()?);
    }
    net.initialize(Some(init::Xavier::default().into()), ctxs.to_vec())?;
    let mut trainer = Trainer::new(
        &net.collect_params()?,
        (
            "sgd",
            OptimizerOptions::new()
                .set("learning_rate", 0.2)
                .set("momentum", 0.9),
        ),
        TrainerOptions::default(),
    )?;
    let lossf = L2Loss::new();
    let batch = 128;
    for epoch in 1..=40 {
        let mut total = 0.0;
        for start in (0..n).step_by(batch) {
            let xs = split_and_load(&x.slice_axis0(start, start + batch)?, &ctxs, true)?;
            let ys = split_and_load(&y.slice_axis0(start, start + batch)?, &ctxs, true)?;
            let losses: Vec<mxgluon::Result<f32>> = std::thread::scope(|s| {
                let handles: Vec<_> = xs
                    .iter()
                    .zip(&ys)
                    .map(|(xb, yb)| {
                        let (net, lossf) = (&net, &lossf);
                        s.spawn(move || {
                            let loss = {
                                let _rec = autograd::record();
                                lossf.loss(&net.forward(xb)?, yb, None)?
                            };
                            loss.backward()?;
                            Ok(loss.to_f32_vec().iter().sum::<f32>())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("worker thread panicked"))
                    .collect()
            });
            for l in losses {
                total += l?;
            }
            trainer.step(batch)?;
        }
        if epoch % 10 == 0 {
            println!("epoch {epoch:2}: mean loss {:.5}", total / n as f32);
        }
    }
    // Every parameter has one copy per context, and the copies are identical.
    for p in net.collect_params()?.values() {
        let copies = p.list_data()?;
        assert_eq!(copies[0].to_f32_vec(), copies[1].to_f32_vec());
        println!(
            "{p}: identical on {}",
            mxgluon::error::fmt_ctx_list(&p.list_ctx()?)
        );
    }
    Ok(())
}
