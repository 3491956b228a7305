#!/usr/bin/env python3
"""Turns the JSON lines of the bench tools into bench/RESULTS.md (stdlib only).

Input lines (one per figure, from crates/mxgluon-bench and bench/peers/*.py):
  {"workload": ..., "impl": ..., "value": ..., "unit": ..., "higher_is_better": bool, ...}
Other lines understood:
  {"info": {...}, "impl": ...}               tool/version details
  {"status": "ok"|"failed"|"skipped", "impl": ..., "detail": ...}   written by bench/run.sh

Usage: report.py --out RESULTS.md --command "bench/run.sh ..." FILE.jsonl...
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

WORKLOADS = [
    ("fma_peak", "f32 FMA peak of this machine on all cores (reference for fc_large)"),
    ("fc_seed", "fully_connected forward 16x100->64 f32 + bias, time per call"),
    ("fc_large", "fully_connected forward 256x1024->4096 f32 + bias, 2*M*N*K / time"),
    ("xavier_init", "Xavier(uniform, avg, 3) init of a 4096x4096 f32 parameter"),
    ("set_data_4ctx", "set_data(src) on a 4096x4096 f32 parameter on cpu(0..3); 4 x 64 MiB copied"),
    ("zero_grad_4ctx", "zero_grad() on the same parameter; 4 x 64 MiB written"),
    ("mlp_fwd_bwd", "forward + softmax cross-entropy + backward, MLP 784->256->256->10 (ReLU), batch 64, f32"),
    ("recorded_op", "framework overhead per recorded op: y * 1.0001 on a (4,) f32 variable, chain of 100"),
    ("recorded_op_fwd_bwd", "the same chain recorded and back-propagated, per op"),
    ("params_save", "save a dict of 32 float32 arrays (256 MiB) to a .params file / torch.save; GB/s"),
    ("params_load", "load the same file into new arrays (nd.load / torch.load); GB/s"),
    ("train_epoch_digits", "one epoch of `mxgluon train`'s defaults on the digits (MLP 64-128-64-10, SGD momentum, batch 64), 1 context"),
    ("train_epoch_digits_2ctx", "the same epoch data-parallel on cpu(0), cpu(1) (ours: one thread per context)"),
    ("kv_update_4ctx", "reduce 4 gradients + SGD-momentum update + copy to 4 contexts, 4096x4096 f32; GB/s of 11 x 64 MiB traffic"),
    ("embedding_sparse_step_sgd", "Embedding 10,000,000x64 f32 with sparse (row_sparse) gradient: forward + backward + Trainer.step, lazy SGD, 1,000 distinct ids per step"),
    ("embedding_sparse_step_adam", "the same step with lazy Adam (MXNet: lazy_update; PyTorch: SparseAdam)"),
    ("embedding_dense_step_sgd", "the same table and batch with a dense gradient, SGD (the baseline)"),
    ("embedding_sparse_step_sgd_peak_mem", "peak memory of the sparse SGD step over the table's own size, % of the table"),
    ("embedding_sparse_step_adam_peak_mem", "the same for lazy Adam (dense m and v states: ~200% expected)"),
    ("resnet18_infer_b1", "resnet18_v1 inference, 1x3x224x224 f32, ms per forward"),
    ("resnet18_infer_b32", "resnet18_v1 inference, 32x3x224x224 f32, ms per forward"),
]
# Order of the columns / rows for implementations; others follow alphabetically.
IMPL_ORDER = ["ours", "ours-nofsync", "memcpy", "memset", "write", "write-fsync", "read",
              "mxnet", "mxnet-sync", "torch"]
IMPL_LABEL = {
    "ours": "ours (mxgluon)",
    "memcpy": "memcpy reference (plain Rust, 2 threads)",
    "memset": "memset reference (plain Rust, 2 threads)",
    "ours-nofsync": "ours without fsync (SaveOptions::durable(false))",
    "write": "plain write of the same bytes (no fsync)",
    "write-fsync": "plain write + fsync of the same bytes",
    "read": "plain read of the same bytes (pre-faulted buffer)",
    "mxnet": "MXNet 1.9.1",
    "mxnet-sync": "MXNet 1.9.1, wait_to_read per call",
    "torch": "PyTorch",
}
PEAK_GFLOPS = 535.0  # 2-core f32 AVX-512 FMA peak, perf-baselines.md §4 (measured on the Zen 5 VM)


def load(paths):
    figs, infos, status = {}, {}, {}
    for path in paths:
        try:
            f = open(path, encoding="utf-8")
        except OSError:
            continue
        with f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "workload" in rec and "value" in rec:
                    figs[(rec["workload"], rec["impl"])] = rec
                elif "info" in rec:
                    infos[rec.get("impl", "?")] = rec["info"]
                elif "status" in rec:
                    status[rec.get("impl", "?")] = rec
    return figs, infos, status


def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def advantage(ours, peer):
    """How many times better ours is than peer (>1: ours ahead), whatever the direction."""
    if ours is None or peer is None or not ours["value"] or not peer["value"]:
        return None
    if ours["higher_is_better"]:
        return ours["value"] / peer["value"]
    return peer["value"] / ours["value"]


def impl_key(name):
    return (IMPL_ORDER.index(name) if name in IMPL_ORDER else len(IMPL_ORDER), name)


def cmd_out(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info():
    model, cpus = "?", str(os.cpu_count())
    for line in cmd_out(["lscpu"]).splitlines():
        key, _, val = line.partition(":")
        if key.strip() == "Model name":
            model = val.strip()
        elif key.strip() == "CPU(s)":
            cpus = val.strip()
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return model, cpus, mem


def targets(figs):
    """(workload, target text, figure text, verdict) rows."""
    g = lambda w, i: figs.get((w, i))  # noqa: E731
    rows = []

    def verdict(ok):
        if ok is None:
            return "n/a (missing figure)"
        return "**met**" if ok else "**not met**"

    ours = g("fc_seed", "ours")
    rows.append(("fc_seed", "≤ 2 µs per call",
                 f"{fmt(ours['value'])} µs" if ours else "–",
                 verdict(ours["value"] <= 2.0 if ours else None)))

    ours = g("fc_large", "ours")
    measured = g("fma_peak", "ours")
    peak = measured["value"] if measured else PEAK_GFLOPS
    need = 0.85 * peak
    rows.append(("fc_large", f"≥ 85% of {peak:.0f} GFLOP/s ({'this machine' if measured else 'perf-baselines'}) = {need:.0f}",
                 f"{fmt(ours['value'])} GFLOP/s ({100 * ours['value'] / peak:.0f}% of peak)"
                 if ours else "–",
                 verdict(ours["value"] >= need if ours else None)))
    peers = [figs[k] for k in figs if k[0] == "fc_large" and k[1] in ("mxnet", "torch")]
    best = max(peers, key=lambda r: r["value"]) if peers else None
    rows.append(("fc_large", "ahead of the best peer",
                 f"best peer {best['impl']} {fmt(best['value'])} GFLOP/s; ours {advantage(ours, best):.2f}×"
                 if ours and best else "–",
                 verdict(ours["value"] > best["value"] if ours and best else None)))

    ours = g("xavier_init", "ours")
    for peer, need in (("mxnet", 20.0), ("torch", 5.0)):
        adv = advantage(ours, g("xavier_init", peer))
        rows.append(("xavier_init", f"≥ {need:.0f}× faster than {IMPL_LABEL[peer]}",
                     f"{adv:.1f}×" if adv is not None else "–",
                     verdict(adv >= need if adv is not None else None)))

    for w, ref in (("set_data_4ctx", "memcpy"), ("zero_grad_4ctx", "memset")):
        o, r = g(w, "ours"), g(w, ref)
        pct = 100 * o["value"] / r["value"] if o and r and r["value"] else None
        rows.append((w, f"≥ 70% of plain {ref} GB/s",
                     f"{pct:.0f}% ({fmt(o['value'])} / {fmt(r['value'])} GB/s)" if pct is not None else "–",
                     verdict(pct >= 70 if pct is not None else None)))
    ours = g("mlp_fwd_bwd", "ours")
    for peer, need in (("mxnet", 3.0), ("torch", 1.5)):
        adv = advantage(ours, g("mlp_fwd_bwd", peer))
        rows.append(("mlp_fwd_bwd", f"≥ {need:g}× faster than {IMPL_LABEL[peer]}",
                     f"{adv:.2f}×" if adv is not None else "–",
                     verdict(adv >= need if adv is not None else None)))
    ours = g("train_epoch_digits", "ours")
    for peer, need in (("mxnet", 3.0), ("torch", 1.5)):
        adv = advantage(ours, g("train_epoch_digits", peer))
        rows.append(("train_epoch_digits", f"≥ {need:g}× faster than {IMPL_LABEL[peer]}",
                     f"{adv:.2f}×" if adv is not None else "–",
                     verdict(adv >= need if adv is not None else None)))
    o, r = g("kv_update_4ctx", "ours"), g("kv_update_4ctx", "memcpy")
    pct = 100 * o["value"] / r["value"] if o and r and r["value"] else None
    rows.append(("kv_update_4ctx", "≥ 60% of memory bandwidth (2-thread memcpy, read + write bytes)",
                 f"{pct:.0f}% ({fmt(o['value'])} / {fmt(r['value'])} GB/s)" if pct is not None else "–",
                 verdict(pct >= 60 if pct is not None else None)))
    ours = g("recorded_op", "ours")
    rows.append(("recorded_op", "≤ 1 µs per recorded op",
                 f"{fmt(ours['value'])} µs" if ours else "–",
                 verdict(ours["value"] <= 1.0 if ours else None)))

    o, d = g("embedding_sparse_step_sgd", "ours"), g("embedding_dense_step_sgd", "ours")
    val = d["value"] / o["value"] if o and d and o["value"] else None
    rows.append(("embedding_sparse_step_sgd", "≥ 1000× faster than our dense-gradient step on the same table",
                 f"{val:.0f}×" if val is not None else "–", verdict(val >= 1000 if val is not None else None)))
    for w in ("embedding_sparse_step_sgd", "embedding_sparse_step_adam"):
        ours = g(w, "ours")
        for peer in ("mxnet", "torch"):
            adv = advantage(ours, g(w, peer))
            rows.append((w, f"faster than {IMPL_LABEL[peer]}",
                         f"{adv:.2f}×" if adv is not None else "–",
                         verdict(adv > 1.0 if adv is not None else None)))
    m = g("embedding_sparse_step_sgd_peak_mem", "ours")
    rows.append(("embedding_sparse_step_sgd_peak_mem", "peak memory within 10% of the table (lazy SGD)",
                 f"+{m['value']:.2f}%" if m else "–", verdict(m["value"] <= 10.0 if m else None)))
    for w in ("resnet18_infer_b1", "resnet18_infer_b32"):
        ours = g(w, "ours")
        adv = advantage(ours, g(w, "mxnet"))
        rows.append((w, "at least as fast as MXNet 1.9.1 (MKLDNN)",
                     f"{adv:.2f}×" if adv is not None else "–",
                     verdict(adv >= 1.0 if adv is not None else None)))
        adv = advantage(ours, g(w, "torch"))
        rows.append((w, "reported against PyTorch eager",
                     f"{adv:.2f}×" if adv is not None else "–", "reported"))

    # File I/O. A save with fsync is compared with a plain write with fsync, a save without it
    # with a plain write and with MXNet / PyTorch (neither syncs).
    def ratio_row(w, o_impl, r_impl, need, as_pct, label):
        o, r = g(w, o_impl), g(w, r_impl)
        val = o["value"] / r["value"] if o and r and r["value"] else None
        if val is None:
            fig = "–"
        elif as_pct:
            fig = f"{100 * val:.0f}% ({fmt(o['value'])} / {fmt(r['value'])} GB/s)"
        else:
            fig = f"{val:.2f}× ({fmt(o['value'])} / {fmt(r['value'])} GB/s)"
        rows.append((w, label, fig, verdict(val >= need if val is not None else None)))

    ratio_row("params_save", "ours", "write-fsync", 0.8, True, "ours (fsync) ≥ 80% of plain write + fsync")
    ratio_row("params_save", "ours-nofsync", "write", 0.8, True, "ours (no fsync) ≥ 80% of plain write")
    ratio_row("params_save", "ours-nofsync", "mxnet", 2.5, False, "ours (no fsync, like MXNet) ≥ 2.5× MXNet nd.save")
    ratio_row("params_save", "ours", "mxnet", 2.5, False, "ours (fsync) ≥ 2.5× MXNet nd.save (stricter: MXNet does not sync)")
    ratio_row("params_load", "ours", "read", 0.8, True, "ours ≥ 80% of plain read")
    ratio_row("params_load", "ours", "mxnet", 2.5, False, "ours ≥ 2.5× MXNet nd.load")
    return rows


def render(figs, infos, status, command, loads):
    out = []
    model, cpus, mem = machine_info()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append("# mxgluon benchmark results\n")
    out.append("Generated by `bench/report.py` from one run of `bench/run.sh`; see `bench/README.md` "
               "for what each workload measures and how the peers are configured.\n")
    out.append("## Machine and run\n")
    out.append(f"* CPU: {model}, {cpus} CPU(s) (lscpu); memory {mem}; {platform.system()} {platform.release()}")
    out.append(f"* Date: {now}")
    if loads:
        out.append(f"* Load average (1 min) before/after the run: {loads}. The machine is shared; "
                   "figures taken while other jobs run (load ≳ 0.5) are not trustworthy, "
                   "MXNet with 2 OpenMP threads suffers most.")
    ob = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    out.append(f"* OPENBLAS_* environment: {ob if ob else 'none set'}")
    out.append(f"* Command: `{command}`")
    for name in sorted(infos, key=impl_key):
        out.append(f"* {IMPL_LABEL.get(name, name)}: " +
                   ", ".join(f"{k}={json.dumps(v)}" for k, v in infos[name].items()))
    for name in sorted(status, key=impl_key):
        s = status[name]
        if s.get("status") != "ok":
            out.append(f"* **{IMPL_LABEL.get(name, name)}: {s.get('status')}** — {s.get('detail', '')}")
    out.append("")

    out.append("## Absolute figures\n")
    out.append("Median over the timed batches, with [slowest–fastest batch]. "
               "“Ours ahead by” is how many times better ours is than that row "
               "(time ratio or rate ratio; > 1 means ours is ahead).\n")
    out.append("| workload | implementation | median | [range] | unit | ours ahead by |")
    out.append("|---|---|---|---|---|---|")
    known = [w for w, _ in WORKLOADS]
    extra = sorted({w for w, _ in figs} - set(known))
    for w in known + extra:
        impls = sorted((i for (ww, i) in figs if ww == w), key=impl_key)
        if not impls:
            out.append(f"| {w} | – | no figures | | | |")
            continue
        ours = figs.get((w, "ours"))
        for i in impls:
            r = figs[(w, i)]
            lo, hi = (r.get("range") or [None, None])[:2]
            rng = f"[{fmt(lo)}–{fmt(hi)}]" if lo is not None else ""
            adv = advantage(ours, r) if i != "ours" else None
            unit = "µs" if r["unit"] == "us" else r["unit"]
            out.append(f"| {w} | {IMPL_LABEL.get(i, i)} | {fmt(r['value'])} | {rng} | {unit} | "
                       f"{fmt(adv) + '×' if adv is not None else ''} |")
    out.append("")

    out.append("## Targets (reported, not asserted)\n")
    out.append("| workload | target | figure | verdict |")
    out.append("|---|---|---|---|")
    for row in targets(figs):
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append("The fc_large peak is `fma_peak`, measured in the same run on this machine (register-resident "
               f"FMA chains on every core); without it, the {PEAK_GFLOPS:.0f} GFLOP/s of "
               "`shared/reference/perf-baselines.md` §4 (a Zen 5 VM) is used.\n")

    out.append("## Workloads\n")
    for w, desc in WORKLOADS:
        out.append(f"* `{w}`: {desc}")
    out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--loads", default="")
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args()
    figs, infos, status = load(a.inputs)
    md = render(figs, infos, status, a.command, a.loads)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(md)
    print(f"wrote {a.out} ({len(figs)} figures)", file=sys.stderr)


if __name__ == "__main__":
    main()
