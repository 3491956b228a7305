"""PyTorch peer: sparse-gradient Embedding training steps (see mxnet_sparse.py).

Workloads (ms per step; forward, backward, optimizer step on a batch of 1,000 distinct
random rows, loss = sum of the outputs) of an Embedding of 10,000,000 x 64 float32
(1,000,000 rows with --quick):
  embedding_sparse_step_sgd   nn.Embedding(sparse=True) + optim.SGD
  embedding_sparse_step_adam  nn.Embedding(sparse=True) + optim.SparseAdam
  embedding_dense_step_sgd    nn.Embedding(sparse=False) + optim.SGD
Each workload runs in its own child process; `peak_rss_over_table_mib` is the peak resident
memory minus the memory before the table was made, minus the table's own size.
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
    import torch

    hx = h.Harness("torch")
    n = rows(quick)
    base = maxrss_bytes()
    sparse = "sparse" in workload
    emb = torch.nn.Embedding(n, DIM, sparse=sparse, _weight=torch.ones(n, DIM))  # ones: every page written, as ours and MXNet
    if workload.endswith("adam"):
        opt = torch.optim.SparseAdam(emb.parameters(), lr=0.01)
    else:
        opt = torch.optim.SGD(emb.parameters(), lr=0.01)
    rng = random.Random(42)
    # 64 batches of distinct rows drawn uniformly (random.sample on a range is O(BATCH))
    pool = [torch.tensor(rng.sample(range(n), BATCH), dtype=torch.int64) for _ in range(64)]
    it = [0]

    def step():
        x = pool[it[0] % len(pool)]
        it[0] += 1
        opt.zero_grad(set_to_none=True)
        emb(x).sum().backward()
        opt.step()

    t = hx.time_per_call(step, kind="memory")
    table = n * DIM * 4
    hx.report_ms(workload, t, rows=n, dim=DIM, batch=BATCH,
                 optimizer=type(opt).__name__, sparse_grad=sparse,
                 peak_rss_over_table_mib=(maxrss_bytes() - base - table) / 2**20)


def main():
    argv = sys.argv[1:]
    quick = "--quick" in argv
    if "--child" in argv:
        child(argv[argv.index("--child") + 1], quick)
        return
    hx = h.Harness("torch")
    import torch

    hx.info(version=torch.__version__, threads=torch.get_num_threads(),
            table_rows=rows(quick), dim=DIM, batch=BATCH)
    for w in WORKLOADS:
        if not hx.wants(w):
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--child", w] + (["--quick"] if quick else [])
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
