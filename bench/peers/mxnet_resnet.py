"""MXNet 1.9.1 peer: resnet18_v1 inference.

Workloads (ms per forward pass, float32, 3x224x224 input, random weights; nothing is
downloaded: the model zoo's resnet18_v1 is built with pretrained=False):
  resnet18_infer_b1    batch 1
  resnet18_infer_b32   batch 32 (batch 8 with --quick)
The network is hybridized with static_alloc/static_shape, the way MXNet's own
inference benchmarks run it, and each timed batch ends with nd.waitall().
Prints one JSON line per figure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as h  # noqa: E402


def main():
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision

    hx = h.Harness("mxnet")
    mx.random.seed(7)
    net = vision.resnet18_v1(pretrained=False)
    net.initialize(mx.init.Xavier(), ctx=mx.cpu(0))
    net.hybridize(static_alloc=True, static_shape=True)
    big = 8 if hx.quick else 32
    for workload, batch in (("resnet18_infer_b1", 1), ("resnet18_infer_b32", big)):
        if not hx.wants(workload):
            continue
        x = mx.nd.random.uniform(shape=(batch, 3, 224, 224))
        net(x).wait_to_read()  # builds the cached graph for this shape

        def call():
            net(x)

        hx.report_ms(workload, hx.time_per_call(call, batch_end=mx.nd.waitall), batch=batch)


if __name__ == "__main__":
    main()
