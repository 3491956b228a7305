"""MXNet 1.9.1 peer: the bench/ workloads through mx.nd and gluon.Parameter.

Run with OMP_NUM_THREADS=2 (bench/run.sh does), or MXNet uses one core here;
the OPENBLAS_* environment is left as the machine sets it (see bench/README.md).
Prints one JSON line per figure.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mxnet as mx  # noqa: E402
from mxnet import gluon, nd  # noqa: E402

import harness as h  # noqa: E402


def main():
    hx = h.Harness("mxnet")
    hx.info(
        version=mx.__version__,
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        openblas_env={k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        features=[f.name for f in mx.runtime.Features().values() if f.enabled],
    )
    ctx = mx.cpu(0)
    mx.random.seed(42)

    for name, (m, k, n) in (("fc_seed", h.FC_SEED), ("fc_large", h.FC_LARGE)):
        if not hx.wants(name):
            continue
        x = nd.random.uniform(-1, 1, shape=(m, k), ctx=ctx)
        w = nd.random.uniform(-0.1, 0.1, shape=(n, k), ctx=ctx)
        b = nd.random.uniform(-0.1, 0.1, shape=(n,), ctx=ctx)
        mx.nd.waitall()

        def fc():
            return nd.FullyConnected(x, w, b, num_hidden=n)

        # Asynchronous throughput: N calls, then one waitall (MXNet's best case).
        t = hx.time_per_call(fc, batch_end=mx.nd.waitall)
        if name == "fc_seed":
            hx.report_us(name, t, mode="async: N calls then one mx.nd.waitall()")

            # Synchronous latency: each result is waited for, as a caller that reads it must.
            def fc_sync():
                fc().wait_to_read()

            hx.report_us(name, hx.time_per_call(fc_sync), impl="mxnet-sync",
                         mode="sync: wait_to_read() after every call")
        else:
            hx.report_rate(name, t, h.gflop(m, k, n), "GFLOP/s",
                           mode="async: N calls then one mx.nd.waitall()")

    if hx.wants("xavier_init"):
        p = gluon.Parameter("w", shape=h.XAVIER_SHAPE, init=mx.init.Xavier())
        p.initialize(ctx=ctx)
        mx.nd.waitall()

        def reinit():
            p.initialize(ctx=ctx, force_reinit=True)
            mx.nd.waitall()

        hx.report_ms("xavier_init", hx.time_per_call(reinit, kind="memory"),
                     mode="gluon.Parameter(init=Xavier()).initialize(force_reinit=True) + waitall")

    if hx.wants("set_data_4ctx") or hx.wants("zero_grad_4ctx"):
        ctxs = [mx.cpu(i) for i in range(h.NCTX)]
        p = gluon.Parameter("w", shape=h.XAVIER_SHAPE, init=mx.init.Xavier())
        p.initialize(ctx=ctxs)
        src = nd.random.uniform(-1, 1, shape=h.XAVIER_SHAPE, ctx=ctx)
        mx.nd.waitall()
        if hx.wants("set_data_4ctx"):
            def set_data():
                p.set_data(src)
                mx.nd.waitall()

            hx.report_rate("set_data_4ctx", hx.time_per_call(set_data, kind="memory"),
                           h.BYTES_4CTX / 1e9, "GB/s", mode="p.set_data(src) + waitall, 4 contexts")
        if hx.wants("zero_grad_4ctx"):
            def zero_grad():
                p.zero_grad()
                mx.nd.waitall()

            hx.report_rate("zero_grad_4ctx", hx.time_per_call(zero_grad, kind="memory"),
                           h.BYTES_4CTX / 1e9, "GB/s", mode="p.zero_grad() + waitall, 4 contexts")

    if hx.wants("mlp_fwd_bwd"):
        from mxnet import autograd
        from mxnet.gluon import nn
        d0, d1, d2, d3 = h.MLP
        net = nn.Sequential()
        with net.name_scope():
            net.add(nn.Dense(d1, in_units=d0, activation="relu"))
            net.add(nn.Dense(d2, in_units=d1, activation="relu"))
            net.add(nn.Dense(d3, in_units=d2))
        net.initialize(mx.init.Xavier(), ctx=ctx)
        x = nd.random.uniform(0, 1, shape=(h.MLP_BATCH, d0), ctx=ctx)
        label = nd.array([(i * 7) % 10 for i in range(h.MLP_BATCH)], ctx=ctx)
        lossf = gluon.loss.SoftmaxCrossEntropyLoss()

        def step():
            with autograd.record():
                loss = lossf(net(x), label)
            loss.backward()

        hx.report_us("mlp_fwd_bwd", hx.time_per_call(step, batch_end=mx.nd.waitall),
                     mode="Gluon nn.Sequential (not hybridized) + SoftmaxCrossEntropyLoss, "
                          "record + backward; async, waitall per batch")

    if hx.wants("recorded_op"):
        from mxnet import autograd
        x = nd.ones((4,), ctx=ctx)
        x.attach_grad()

        def chain():
            with autograd.record():
                y = x
                for _ in range(h.OPS_PER_CALL):
                    y = y * 1.0001
            return y

        def fwd():
            chain()

        def fwd_bwd():
            chain().backward()

        hx.report_us_per("recorded_op", hx.time_per_call(fwd, batch_end=mx.nd.waitall),
                         h.OPS_PER_CALL, mode="per op: y * 1.0001 on (4,) under autograd.record")
        hx.report_us_per("recorded_op_fwd_bwd", hx.time_per_call(fwd_bwd, batch_end=mx.nd.waitall),
                         h.OPS_PER_CALL, mode="per op: the chain recorded, then backward")

    if hx.wants("params_save") or hx.wants("params_load"):
        d = tempfile.mkdtemp(prefix="mxgluon-bench-mxnet-")
        try:
            arrs = {"layer%d.weight" % i: nd.random.uniform(-1, 1, shape=h.FILE_SHAPE, ctx=ctx)
                    for i in range(h.FILE_ARRAYS)}
            mx.nd.waitall()
            path = os.path.join(d, "bench.params")
            if hx.wants("params_save"):
                hx.report_rate("params_save", hx.time_per_call(lambda: nd.save(path, arrs), kind="memory"),
                               h.FILE_BYTES / 1e9, "GB/s", mode="mx.nd.save(path, dict) (no fsync)")
            if hx.wants("params_load"):
                nd.save(path, arrs)

                def load():
                    loaded = nd.load(path)
                    mx.nd.waitall()
                    assert len(loaded) == h.FILE_ARRAYS

                hx.report_rate("params_load", hx.time_per_call(load, kind="memory"),
                               h.FILE_BYTES / 1e9, "GB/s", mode="mx.nd.load(path) + waitall")
        finally:
            shutil.rmtree(d, ignore_errors=True)

    for workload, nctx in (("train_epoch_digits", 1), ("train_epoch_digits_2ctx", 2)):
        if not hx.wants(workload):
            continue
        from mxnet import autograd
        from mxnet.gluon import nn
        ctxs = [mx.cpu(i) for i in range(nctx)]
        x, y = h.load_digits_train()
        net = nn.Sequential()
        with net.name_scope():
            for units in h.TRAIN_HIDDEN:
                net.add(nn.Dense(units, activation="relu"))
            net.add(nn.Dense(10))
        net.initialize(mx.init.Xavier(), ctx=ctxs)
        trainer = gluon.Trainer(net.collect_params(), "sgd",
                                {"learning_rate": h.TRAIN_LR, "momentum": 0.9})
        lossf = gluon.loss.SoftmaxCrossEntropyLoss()
        batches = []
        for xb, yb in h.train_batches(x, y):
            xs = gluon.utils.split_and_load(nd.array(xb), ctxs, even_split=False)
            ys = gluon.utils.split_and_load(nd.array(yb), ctxs, even_split=False)
            batches.append((len(xb), list(zip(xs, ys))))

        def epoch():
            for bs, parts in batches:
                with autograd.record():
                    losses = [lossf(net(xp), yp) for xp, yp in parts]
                for l in losses:
                    l.backward()
                trainer.step(bs)
            mx.nd.waitall()

        hx.report_ms(workload, hx.time_per_call(epoch),
                     mode="Gluon nn.Sequential (not hybridized), Trainer sgd momentum 0.9, "
                          "%d context(s), batches pre-loaded; waitall per epoch" % nctx)

    if hx.wants("kv_update_4ctx"):
        ctxs = [mx.cpu(i) for i in range(h.NCTX)]
        p = gluon.Parameter("w", shape=h.XAVIER_SHAPE, init=mx.init.Constant(0.5))
        p.initialize(ctx=ctxs)
        for g in p.list_grad():
            g[:] = 1e-3
        for d in p.list_data():
            d._fresh_grad = True  # as backward would set it
        trainer = gluon.Trainer([p], "sgd", {"learning_rate": 0.01, "momentum": 0.9},
                                kvstore="device")
        mx.nd.waitall()

        def kv_step():
            trainer.step(1)
            mx.nd.waitall()

        hx.report_rate("kv_update_4ctx", hx.time_per_call(kv_step, kind="memory"),
                       h.KV_TRAFFIC / 1e9, "GB/s",
                       mode="Trainer.step on 4 cpu contexts, kvstore='device' (update on kvstore) + waitall")


if __name__ == "__main__":
    main()
