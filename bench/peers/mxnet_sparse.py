"""MXNet 1.9.1 peer: sparse-gradient Embedding training steps.

Workloads (ms per step; one step = forward, backward, Trainer.step on a batch of 1,000
distinct random rows, loss = sum of the outputs) of an Embedding of 10,000,000 x 64 float32
(1,000,000 rows with --quick):
  embedding_sparse_step_sgd   Embedding(sparse_grad=True) + Trainer('sgd')  (lazy_update)
  embedding_sparse_step_adam  Embedding(sparse_grad=True) + Trainer('adam') (lazy_update)
  embedding_dense_step_sgd    Embedding(sparse_grad=False) + Trainer('sgd')
Each workload runs in its own child process so that its peak RSS (extra field
`peak_rss_over_table_mib`: peak resident memory minus the process's memory before the table
was made, minus the table's own size) is its own. Prints one JSON line per figure.
"""

import os
import random
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as h  # noqa: E402

WORKLOADS = ("embedding_sparse_step_sgd", "embedding_sparse_step_adam", "embedding_dense_step_sgd")
DIM = 64
BATCH = 1000


def rows(quick):
    return 1_000_000 if quick else 10_000_000


def maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(workload, quick):
    import mxnet as mx
    from mxnet import autograd, gluon, nd

    hx = h.Harness("mxnet")
    n = rows(quick)
    base = maxrss_bytes()
    sparse = "sparse" in workload
    opt = "adam" if workload.endswith("adam") else "sgd"
    net = gluon.nn.Embedding(n, DIM, sparse_grad=sparse)
    net.initialize(mx.init.One(), ctx=mx.cpu(0))
    trainer = gluon.Trainer(net.collect_params(), opt, {"learning_rate": 0.01})
    rng = random.Random(42)
    # 64 batches of distinct rows drawn uniformly (random.sample on a range is O(BATCH))
    pool = [nd.array(rng.sample(range(n), BATCH), dtype="int64") for _ in range(64)]
    nd.waitall()
    it = [0]

    def step():
        x = pool[it[0] % len(pool)]
        it[0] += 1
        with autograd.record():
            loss = net(x).sum()
        loss.backward()
        trainer.step(1)
        nd.waitall()

    t = hx.time_per_call(step, batch_end=nd.waitall, kind="memory")
    table = n * DIM * 4
    hx.report_ms(workload, t, rows=n, dim=DIM, batch=BATCH, optimizer=opt,
                 sparse_grad=sparse, lazy_update=True,
                 peak_rss_over_table_mib=(maxrss_bytes() - base - table) / 2**20)


def main():
    argv = sys.argv[1:]
    quick = "--quick" in argv
    if "--child" in argv:
        child(argv[argv.index("--child") + 1], quick)
        return
    hx = h.Harness("mxnet")
    import mxnet as mx

    hx.info(version=mx.__version__, omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
            table_rows=rows(quick), dim=DIM, batch=BATCH)
    for w in WORKLOADS:
        if not hx.wants(w):
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--child", w] + (["--quick"] if quick else [])
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL if os.environ.get("QUIET") else None)


if __name__ == "__main__":
    main()
