"""Calibrated timing harness shared by the peer scripts (stdlib only).

Same logic as the Rust harness in crates/mxgluon-bench/src/main.rs:
one warm-up call, then the number of calls per batch is doubled until one
batch takes at least `min_batch_s`; then `batches` batches are timed and the
median per-call time is reported, with the min and max batch as a range.
"""

import json
import statistics
import sys
import time

# (batches, seconds per batch) for the two kinds of workload, normal and --quick.
PROFILES = {
    False: {"batches": 5, "compute_s": 0.2, "memory_s": 0.5},
    True: {"batches": 3, "compute_s": 0.05, "memory_s": 0.1},
}


class Harness:
    def __init__(self, impl, argv=None):
        argv = sys.argv[1:] if argv is None else argv
        self.impl = impl
        self.quick = "--quick" in argv
        self.filter = None
        if "--filter" in argv:
            i = argv.index("--filter")
            self.filter = argv[i + 1] if i + 1 < len(argv) else None
        self.profile = PROFILES[self.quick]

    def wants(self, workload):
        return self.filter is None or self.filter in workload

    def time_per_call(self, call, batch_end=None, kind="compute"):
        """Median, min and max seconds per call of `call()`.

        `batch_end` (e.g. mx.nd.waitall) runs once at the end of each timed batch
        and its time is included, so asynchronous work is fully counted.
        """
        min_s = self.profile[kind + "_s"]

        def run(n):
            t0 = time.perf_counter()
            for _ in range(n):
                call()
            if batch_end is not None:
                batch_end()
            return time.perf_counter() - t0

        run(1)  # warm-up
        n = 1
        while True:
            t = run(n)
            if t >= min_s:
                break
            # aim a little past the target so that one more doubling is rarely needed
            n = max(n * 2, int(n * min_s * 1.2 / max(t, 1e-9)))
        per_call = sorted(run(n) / n for _ in range(self.profile["batches"]))
        return statistics.median(per_call), per_call[0], per_call[-1], n

    def _emit(self, workload, value, lo, hi, unit, higher, n, impl=None, **extra):
        rec = {
            "workload": workload,
            "impl": impl or self.impl,
            "value": value,
            "unit": unit,
            "higher_is_better": higher,
            "range": [lo, hi],
            "calls_per_batch": n,
            "batches": self.profile["batches"],
        }
        rec.update(extra)
        print(json.dumps(rec), flush=True)

    def report_us(self, workload, timing, impl=None, **extra):
        med, lo, hi, n = timing
        self._emit(workload, med * 1e6, lo * 1e6, hi * 1e6, "us", False, n, impl, **extra)

    def report_ms(self, workload, timing, impl=None, **extra):
        med, lo, hi, n = timing
        self._emit(workload, med * 1e3, lo * 1e3, hi * 1e3, "ms", False, n, impl, **extra)

    def report_us_per(self, workload, timing, per, impl=None, **extra):
        """Reports microseconds per unit of work when one call does `per` units."""
        med, lo, hi, n = timing
        self._emit(workload, med * 1e6 / per, lo * 1e6 / per, hi * 1e6 / per, "us", False, n,
                   impl, **extra)

    def report_rate(self, workload, timing, amount, unit, impl=None, **extra):
        """Reports amount/time (e.g. GFLOP/s, GB/s): the fastest batch is the max."""
        med, lo, hi, n = timing
        self._emit(workload, amount / med, amount / hi, amount / lo, unit, True, n, impl, **extra)

    def info(self, **fields):
        print(json.dumps({"info": fields, "impl": self.impl}), flush=True)


# Workload sizes, shared by all implementations.
FC_SEED = (16, 100, 64)  # batch, in_units, num_hidden
FC_LARGE = (256, 1024, 4096)
XAVIER_SHAPE = (4096, 4096)
MLP = (784, 256, 256, 10)  # layer sizes of the mlp_fwd_bwd workload
MLP_BATCH = 64
OPS_PER_CALL = 100  # recorded ops per call of the recorded_op workloads
NCTX = 4
PARAM_BYTES = 4096 * 4096 * 4  # one f32 copy, 64 MiB
BYTES_4CTX = NCTX * PARAM_BYTES  # written by set_data / zero_grad across 4 copies
FILE_ARRAYS = 32  # params_save / params_load: a dict of 32 float32 arrays of 2048x1024
FILE_SHAPE = (2048, 1024)
FILE_BYTES = FILE_ARRAYS * 2048 * 1024 * 4  # 256 MiB


def gflop(m, k, n):
    return 2.0 * m * n * k / 1e9

# train_epoch_digits: the defaults of `mxgluon train` on the embedded digits.
TRAIN_BATCH = 64
TRAIN_HIDDEN = (128, 64)
TRAIN_LR = 0.1
KV_TRAFFIC = 11 * PARAM_BYTES  # kv_update_4ctx: 4 grad reads, weight+momentum r/w, 3 copies


def load_digits_train():
    """The embedded digits' training split as (float32 (N, 64) in [0, 1], float32 labels (N,))."""
    import gzip
    import os

    import numpy as np

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "crates", "mxgluon", "data", "digits")

    def idx(name):
        with gzip.open(os.path.join(root, name), "rb") as f:
            raw = f.read()
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

    x = idx("train-images-idx3-ubyte.gz").reshape(-1, 64).astype(np.float32) / 255.0
    y = idx("train-labels-idx1-ubyte.gz").astype(np.float32)
    return x, y


def train_batches(x, y):
    """Fixed-order batches of TRAIN_BATCH rows (the last one may be shorter)."""
    return [(x[i:i + TRAIN_BATCH], y[i:i + TRAIN_BATCH]) for i in range(0, len(x), TRAIN_BATCH)]
