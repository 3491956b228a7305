"""PyTorch peer: the bench/ workloads with torch on CPU, 2 threads.

Prints one JSON line per figure.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import harness as h  # noqa: E402


def main():
    hx = h.Harness("torch")
    torch.set_num_threads(2)
    torch.manual_seed(42)
    hx.info(version=torch.__version__, threads=torch.get_num_threads(),
            mkl=torch.backends.mkl.is_available(), mkldnn=torch.backends.mkldnn.is_available())

    with torch.no_grad():
        for name, (m, k, n) in (("fc_seed", h.FC_SEED), ("fc_large", h.FC_LARGE)):
            if not hx.wants(name):
                continue
            x = torch.rand(m, k) * 2 - 1
            w = (torch.rand(n, k) * 2 - 1) * 0.1
            b = (torch.rand(n) * 2 - 1) * 0.1

            def fc():
                return F.linear(x, w, b)

            t = hx.time_per_call(fc)
            if name == "fc_seed":
                hx.report_us(name, t, mode="F.linear under no_grad")
            else:
                hx.report_rate(name, t, h.gflop(m, k, n), "GFLOP/s", mode="F.linear under no_grad")

        if hx.wants("xavier_init"):
            t = torch.empty(*h.XAVIER_SHAPE)
            torch.nn.init.xavier_uniform_(t)
            hx.report_ms("xavier_init",
                         hx.time_per_call(lambda: torch.nn.init.xavier_uniform_(t), kind="memory"),
                         mode="torch.nn.init.xavier_uniform_ on an existing tensor")

        if hx.wants("set_data_4ctx") or hx.wants("zero_grad_4ctx"):
            src = torch.rand(*h.XAVIER_SHAPE)
            ts = [torch.zeros(*h.XAVIER_SHAPE) for _ in range(h.NCTX)]  # zeros: pre-faulted

            def copy_all():
                for t in ts:
                    t.copy_(src)

            def zero_all():
                for t in ts:
                    t.zero_()

            if hx.wants("set_data_4ctx"):
                hx.report_rate("set_data_4ctx", hx.time_per_call(copy_all, kind="memory"),
                               h.BYTES_4CTX / 1e9, "GB/s", mode="t.copy_(src) x4")
            if hx.wants("zero_grad_4ctx"):
                hx.report_rate("zero_grad_4ctx", hx.time_per_call(zero_all, kind="memory"),
                               h.BYTES_4CTX / 1e9, "GB/s", mode="t.zero_() x4")

    if hx.wants("mlp_fwd_bwd"):
        d0, d1, d2, d3 = h.MLP
        net = torch.nn.Sequential(torch.nn.Linear(d0, d1), torch.nn.ReLU(),
                                  torch.nn.Linear(d1, d2), torch.nn.ReLU(),
                                  torch.nn.Linear(d2, d3))
        x = torch.rand(h.MLP_BATCH, d0)
        label = torch.tensor([(i * 7) % 10 for i in range(h.MLP_BATCH)])
        lossf = torch.nn.CrossEntropyLoss(reduction="none")

        def step():
            net.zero_grad()
            loss = lossf(net(x), label)
            loss.backward(torch.ones_like(loss))

        hx.report_us("mlp_fwd_bwd", hx.time_per_call(step),
                     mode="eager nn.Sequential + CrossEntropyLoss(reduction=none), zero_grad + backward")

    if hx.wants("recorded_op"):
        x = torch.ones(4, requires_grad=True)

        def chain():
            y = x
            for _ in range(h.OPS_PER_CALL):
                y = y * 1.0001
            return y

        def fwd():
            chain()

        def fwd_bwd():
            x.grad = None
            chain().sum().backward()

        hx.report_us_per("recorded_op", hx.time_per_call(fwd), h.OPS_PER_CALL,
                         mode="per op: y * 1.0001 on a (4,) tensor with requires_grad")
        hx.report_us_per("recorded_op_fwd_bwd", hx.time_per_call(fwd_bwd), h.OPS_PER_CALL,
                         mode="per op: the chain, then backward")

    if hx.wants("params_save") or hx.wants("params_load"):
        d = tempfile.mkdtemp(prefix="mxgluon-bench-torch-")
        try:
            arrs = {"layer%d.weight" % i: torch.rand(*h.FILE_SHAPE) * 2 - 1 for i in range(h.FILE_ARRAYS)}
            path = os.path.join(d, "bench.pt")
            if hx.wants("params_save"):
                hx.report_rate("params_save", hx.time_per_call(lambda: torch.save(arrs, path), kind="memory"),
                               h.FILE_BYTES / 1e9, "GB/s", mode="torch.save(dict, path) (no fsync)")
            if hx.wants("params_load"):
                torch.save(arrs, path)

                def load():
                    loaded = torch.load(path)
                    assert len(loaded) == h.FILE_ARRAYS

                hx.report_rate("params_load", hx.time_per_call(load, kind="memory"),
                               h.FILE_BYTES / 1e9, "GB/s", mode="torch.load(path)")
        finally:
            shutil.rmtree(d, ignore_errors=True)

    if hx.wants("train_epoch_digits"):
        x, y = h.load_digits_train()
        layers = []
        fan_in = x.shape[1]
        for units in h.TRAIN_HIDDEN:
            layers += [torch.nn.Linear(fan_in, units), torch.nn.ReLU()]
            fan_in = units
        layers.append(torch.nn.Linear(fan_in, 10))
        net = torch.nn.Sequential(*layers)
        opt = torch.optim.SGD(net.parameters(), lr=h.TRAIN_LR, momentum=0.9)
        lossf = torch.nn.CrossEntropyLoss()
        batches = [(torch.from_numpy(xb.copy()), torch.from_numpy(yb.copy()).long())
                   for xb, yb in h.train_batches(x, y)]

        def epoch():
            for xb, yb in batches:
                opt.zero_grad()
                loss = lossf(net(xb), yb)
                loss.backward()
                opt.step()

        hx.report_ms("train_epoch_digits", hx.time_per_call(epoch),
                     mode="nn.Sequential eager, CrossEntropyLoss (mean), optim.SGD momentum 0.9, "
                          "zero_grad + backward + step per batch")

    if hx.wants("kv_update_4ctx"):
        # No multi-device CPU store in PyTorch: the same work by hand (sum of 4 gradients,
        # SGD with momentum on the first copy, copy to the 3 others).
        ws = [torch.full(h.XAVIER_SHAPE, 0.5) for _ in range(h.NCTX)]
        gs = [torch.full(h.XAVIER_SHAPE, 1e-3) for _ in range(h.NCTX)]
        w0 = torch.nn.Parameter(ws[0])
        w0.grad = torch.empty(h.XAVIER_SHAPE)
        opt = torch.optim.SGD([w0], lr=0.01, momentum=0.9)

        def kv_step():
            with torch.no_grad():
                torch.add(gs[0], gs[1], out=w0.grad)
                w0.grad.add_(gs[2]).add_(gs[3])
                opt.step()
                for w in ws[1:]:
                    w.copy_(w0)

        hx.report_rate("kv_update_4ctx", hx.time_per_call(kv_step, kind="memory"),
                       h.KV_TRAFFIC / 1e9, "GB/s",
                       mode="by hand: add 4 grads into .grad, optim.SGD(momentum 0.9).step(), 3 copy_")


if __name__ == "__main__":
    main()
