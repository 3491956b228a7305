//! A small training loop by hand: a Gluon-style MLP, softmax cross-entropy, autograd, and a
//! plain SGD update written against the parameters' data and gradient buffers.
//!
//! Run with `cargo run --release -p mxgluon --example autograd_mlp`.

use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::Block;
use mxgluon::nd::{ActType, NDArray};
use mxgluon::{autograd, init, random, Context, DType};

fn main() -> mxgluon::Result<()> {
    let ctx = Context::cpu(0);
    random::seed(1);
    // A toy problem: the class is the index of the largest of 4 inputs.
    let n = 256;
    let x = random::uniform(-1.0, 1.0, &[n, 4], DType::Float32, ctx)?;
    let labels: Vec<f32> = x
        .to_f32_vec()
        .chunks(4)
        .map(|r| {
            let best = r
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
            best.0 as f32
        })
        .collect();
    let y = NDArray::from_vec(labels, &[n], ctx)?;

    let net = Sequential::new();
    {
        let _scope = net.name_scope();
        net.add(Dense::builder(32).activation(ActType::Relu).build()?); // in_units inferred
        net.add(Dense::builder(4).build()?);
    }
    net.initialize(Some(init::Xavier::default().into()), ctx)?;
    let lossf = SoftmaxCrossEntropyLoss::new();
    let lr = 0.5;
    for epoch in 0..30 {
        let loss = {
            let _rec = autograd::record();
            lossf.loss(&net.forward(&x)?, &y, None)?
        };
        loss.backward()?;
        // SGD: w -= lr * grad / batch (the loss is per sample; backward summed over the batch).
        for p in net.collect_params()?.values() {
            let step = p.grad(ctx)?.mul_scalar(lr / n as f64)?;
            p.data(ctx)?.sub_assign(&step)?;
        }
        if epoch % 10 == 9 {
            let pred = net.forward(&x)?.to_f32_vec();
            let correct = pred
                .chunks(4)
                .zip(y.to_f32_vec())
                .filter(|(r, label)| argmax(r) == *label as usize)
                .count();
            println!(
                "epoch {:2}: mean loss {:.4}, accuracy {:.1}%",
                epoch + 1,
                loss.mean()?.to_f32_vec()[0],
                100.0 * correct as f64 / n as f64
            );
        }
    }
    println!("{net}");
    Ok(())
}

/// Index of the largest value.
fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}
