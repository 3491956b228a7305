//! Autograd: recording scopes, backward into preallocated buffers per grad_req, and
//! Parameter integration (spec §1.4, §1.10).

use mxgluon::{autograd, init, nd, Context, DType, Error, GradReq, NDArray, Parameter};

fn cpu(i: u32) -> Context {
    Context::cpu(i)
}

fn arr(v: &[f64], shape: &[usize]) -> NDArray {
    NDArray::from_vec(v.to_vec(), shape, cpu(0)).unwrap()
}

#[test]
fn recording_flags_are_scoped_and_per_thread() {
    assert!(!autograd::is_recording());
    assert!(!autograd::is_training());
    {
        let _r = autograd::record();
        assert!(autograd::is_recording());
        assert!(autograd::is_training());
        {
            let _p = autograd::pause();
            assert!(!autograd::is_recording());
            assert!(!autograd::is_training());
        }
        assert!(autograd::is_recording());
        std::thread::spawn(|| assert!(!autograd::is_recording()))
            .join()
            .unwrap();
    }
    assert!(!autograd::is_recording());
    {
        let _r = autograd::record_with(false);
        assert!(autograd::is_recording() && !autograd::is_training());
        let _t = autograd::train_mode();
        assert!(autograd::is_training());
    }
    assert!(!autograd::is_training());
}

#[test]
fn write_replaces_and_add_accumulates() {
    for (req, expect) in [(GradReq::Write, 2.0), (GradReq::Add, 4.0)] {
        let mut x = arr(&[1.0, 2.0, 3.0], &[3]);
        x.attach_grad(req).unwrap();
        for _ in 0..2 {
            let y = {
                let _r = autograd::record();
                x.mul_scalar(2.0).unwrap().sum().unwrap()
            };
            y.backward().unwrap();
        }
        assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![expect; 3]);
    }
}

#[test]
fn nothing_is_recorded_outside_record_or_for_plain_arrays() {
    let mut x = arr(&[1.0], &[1]);
    x.attach_grad(GradReq::Write).unwrap();
    let y = x.mul_scalar(3.0).unwrap();
    assert!(!y.is_tracked());
    assert!(matches!(y.backward(), Err(Error::NoGraph)));
    let plain = arr(&[1.0], &[1]);
    let z = {
        let _r = autograd::record();
        plain.mul_scalar(3.0).unwrap()
    };
    assert!(!z.is_tracked());
}

#[test]
fn retain_graph_allows_a_second_backward() {
    let mut x = arr(&[1.0, 2.0], &[2]);
    x.attach_grad(GradReq::Add).unwrap();
    let y = {
        let _r = autograd::record();
        x.square().unwrap().sum().unwrap()
    };
    y.backward_with(None, true).unwrap();
    y.backward_with(None, false).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![4.0, 8.0]);
    assert!(matches!(y.backward(), Err(Error::GraphFreed { .. })));
}

#[test]
fn head_gradient_scales_and_is_checked() {
    let mut x = arr(&[1.0, 2.0], &[2]);
    x.attach_grad(GradReq::Write).unwrap();
    let y = {
        let _r = autograd::record();
        x.mul_scalar(3.0).unwrap()
    };
    let bad = arr(&[1.0], &[1]);
    assert!(matches!(
        y.backward_with(Some(&bad), true),
        Err(Error::ShapeMismatch { .. })
    ));
    y.backward_with(Some(&arr(&[1.0, -2.0], &[2])), false)
        .unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![3.0, -6.0]);
}

#[test]
fn a_variable_used_twice_gets_the_sum() {
    let mut x = arr(&[3.0], &[1]);
    x.attach_grad(GradReq::Write).unwrap();
    let y = {
        let _r = autograd::record();
        // y = x*x + x  → dy/dx = 2x + 1
        nd::add(&x.mul(&x).unwrap(), &x).unwrap()
    };
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![7.0]);
}

#[test]
fn broadcasting_gradients_reduce_to_operand_shapes() {
    let mut a = arr(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let mut b = arr(&[10.0, 20.0, 30.0], &[3]);
    a.attach_grad(GradReq::Write).unwrap();
    b.attach_grad(GradReq::Write).unwrap();
    let y = {
        let _r = autograd::record();
        nd::mul(&a, &b).unwrap().sum().unwrap()
    };
    y.backward().unwrap();
    assert_eq!(
        a.grad().unwrap().to_vec::<f64>().unwrap(),
        vec![10.0, 20.0, 30.0, 10.0, 20.0, 30.0]
    );
    assert_eq!(
        b.grad().unwrap().to_vec::<f64>().unwrap(),
        vec![5.0, 7.0, 9.0]
    );
}

#[test]
fn parameter_gradients_follow_grad_req() {
    let ctx = cpu(0);
    let w = Parameter::new("w")
        .with_shape([2, 3])
        .with_init(init::One)
        .with_dtype(DType::Float64);
    w.initialize(ctx).unwrap();
    let x = NDArray::from_vec(vec![1.0f64, 2.0, 3.0], &[1, 3], ctx).unwrap();
    let step = |w: &Parameter| {
        let y = {
            let _r = autograd::record();
            nd::fully_connected(&x, &w.data(ctx).unwrap(), None, 2)
                .unwrap()
                .sum()
                .unwrap()
        };
        y.backward().unwrap();
    };
    let grad_buf = w.grad(ctx).unwrap();
    step(&w);
    step(&w);
    let write = w.grad(ctx).unwrap().to_vec::<f64>().unwrap();
    assert_eq!(write, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    // The gradient went into the preallocated buffer.
    assert!(grad_buf.shares_memory_with(&w.grad(ctx).unwrap()));

    // write -> add: fresh zeros, then accumulation.
    w.set_grad_req(GradReq::Add).unwrap();
    assert_eq!(w.grad(ctx).unwrap().to_vec::<f64>().unwrap(), vec![0.0; 6]);
    step(&w);
    step(&w);
    let add = w.grad(ctx).unwrap().to_vec::<f64>().unwrap();
    assert_eq!(add, write.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
    w.zero_grad().unwrap();
    step(&w);
    assert_eq!(w.grad(ctx).unwrap().to_vec::<f64>().unwrap(), write);

    // null: no gradient buffer, nothing recorded.
    w.set_grad_req(GradReq::Null).unwrap();
    assert!(w.grad(ctx).is_err());
    assert!(w.data(ctx).unwrap().grad().is_none());
    let y = {
        let _r = autograd::record();
        nd::fully_connected(&x, &w.data(ctx).unwrap(), None, 2).unwrap()
    };
    assert!(!y.is_tracked());

    // null -> write: fresh zeros, marked again.
    w.set_grad_req(GradReq::Write).unwrap();
    step(&w);
    assert_eq!(w.grad(ctx).unwrap().to_vec::<f64>().unwrap(), write);
}

#[test]
fn old_handles_see_a_remarked_parameter() {
    let ctx = cpu(0);
    let w = Parameter::new("w").with_shape([2]).with_init(init::One);
    w.initialize(ctx).unwrap();
    let old = w.data(ctx).unwrap();
    w.set_grad_req(GradReq::Add).unwrap();
    let y = {
        let _r = autograd::record();
        old.mul_scalar(5.0).unwrap().sum().unwrap()
    };
    y.backward().unwrap();
    assert_eq!(
        w.grad(ctx).unwrap().to_vec::<f32>().unwrap(),
        vec![5.0, 5.0]
    );
}

#[test]
fn cast_keeps_gradients_working() {
    let ctx = cpu(0);
    let w = Parameter::new("w").with_shape([2]).with_init(init::One);
    w.initialize(ctx).unwrap();
    w.cast(DType::Float64).unwrap();
    let y = {
        let _r = autograd::record();
        w.data(ctx).unwrap().mul_scalar(2.0).unwrap().sum().unwrap()
    };
    y.backward().unwrap();
    assert_eq!(
        w.grad(ctx).unwrap().to_vec::<f64>().unwrap(),
        vec![2.0, 2.0]
    );
}

#[test]
fn per_context_graphs_run_on_their_own_threads() {
    let w = Parameter::new("w").with_shape([3]).with_init(init::One);
    w.initialize(vec![cpu(0), cpu(1)]).unwrap();
    std::thread::scope(|s| {
        for (i, c) in [cpu(0), cpu(1)].into_iter().enumerate() {
            let w = w.clone();
            s.spawn(move || {
                let y = {
                    let _r = autograd::record();
                    w.data(c)
                        .unwrap()
                        .mul_scalar(i as f64 + 1.0)
                        .unwrap()
                        .sum()
                        .unwrap()
                };
                y.backward().unwrap();
            });
        }
    });
    assert_eq!(
        w.grad(cpu(0)).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0; 3]
    );
    assert_eq!(
        w.grad(cpu(1)).unwrap().to_vec::<f32>().unwrap(),
        vec![2.0; 3]
    );
}

#[test]
fn grad_returns_without_touching_buffers() {
    let mut x = arr(&[2.0], &[1]);
    x.attach_grad(GradReq::Write).unwrap();
    let y = {
        let _r = autograd::record();
        x.exp().unwrap()
    };
    let g = autograd::grad(&[&y], &[&x], None, false).unwrap();
    assert!((g[0].to_vec::<f64>().unwrap()[0] - 2f64.exp()).abs() < 1e-12);
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![0.0]);
}
