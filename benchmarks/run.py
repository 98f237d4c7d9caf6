"""tinyseg against PyTorch, op by op, on identical float32 inputs in one run.

    python benchmarks/run.py [--device cpu|cuda] [--preset small|paper] [--threads 2] [--repeats 20]

Op rows time forward + backward of one op; model rows time H-ReNet (see
model_bench.py) with the same weights in both engines. Both engines run
alternately, median after warm-up, device-synchronised, and the table shows
the ratio tinyseg / PyTorch (below 1: tinyseg is faster). Results go to
benchmarks/results/<device>-<date>.json and .md.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both engines")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--preset", choices=("small", "paper"), default="small", help="H-ReNet preset for model rows")
    parser.add_argument("--batch-size", type=int, default=4, help="images per training step in model rows")
    parser.add_argument("--model-repeats", type=int, default=None, help="repeats of model rows (default --repeats)")
    parser.add_argument("--only", nargs="*", help="run only the rows whose name starts with one of these")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    return parser.parse_args()


def op_cases(np, rng):
    """(name, shapes description, FLOPs or None, tinyseg fn, torch fn) builders per op."""
    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    cases = []
    x, w, b = randn(1, 64, 100, 125), randn(64, 64, 3, 3, scale=0.05), randn(64)
    conv_flops = 3 * 2 * 64 * 64 * 9 * 100 * 125     # forward, d input, d weight GEMMs
    cases.append(("conv3x3 64->64", "1x64x100x125", conv_flops,
                  lambda F: lambda X, W, B: F.conv2d(X, W, B, padding=1),
                  lambda tf: lambda X, W, B: tf.conv2d(X, W, B, padding=1), (x, w, b)))
    x1 = randn(1, 64, 200, 250)
    cases.append(("conv3x3 64->64 (paper block 2 input)", "1x64x200x250", 3 * 2 * 64 * 64 * 9 * 200 * 250,
                  lambda F: lambda X, W, B: F.conv2d(X, W, B, padding=1),
                  lambda tf: lambda X, W, B: tf.conv2d(X, W, B, padding=1), (x1, w, b)))
    cases.append(("max_pool 2x2", "1x64x200x250", None,
                  lambda F: lambda X: F.max_pool2d(X, 2), lambda tf: lambda X: tf.max_pool2d(X, 2), (x1,)))
    xt, wt, bt = randn(1, 3, 14, 17), randn(3, 3, 64, 64, scale=0.05), randn(3)
    cases.append(("conv_transpose k64 s32", "1x3x14x17 -> 416x512", 3 * 2 * 3 * 3 * 64 * 64 * 14 * 17,
                  lambda F: lambda X, W, B: F.conv_transpose2d(X, W, B, stride=32, padding=16),
                  lambda tf: lambda X, W, B: tf.conv_transpose2d(X, W, B, stride=32, padding=16),
                  (xt, wt, bt)))
    xb, g, beta = randn(2, 512, 25, 31), randn(512), randn(512)
    cases.append(("batch_norm (train)", "2x512x25x31", None,
                  lambda F: lambda X, G, B: F.batch_norm(X, _ts_zeros(512), _ts_ones(512), G, B, True),
                  lambda tf: lambda X, G, B: tf.batch_norm(X, _th_zeros(512), _th_ones(512), G, B, True),
                  (xb, g, beta)))
    logits = randn(2, 3, 400, 500)
    target = rng.integers(0, 3, (2, 400, 500))
    cases.append(("cross_entropy", "2x3x400x500", None,
                  lambda F: lambda X: F.cross_entropy(X, _ts_tensor(target)),
                  lambda tf: lambda X: tf.cross_entropy(X, _th_tensor(target)), (logits,)))
    return cases


def renet_case(np, rng, n=2, c=256, h=24, w=30, d=128):
    params = {}
    for name in ("h_fwd", "h_bwd", "v_fwd", "v_bwd"):
        n_in = c * 4 if name[0] == "h" else 2 * d
        params[name] = tuple(rng.uniform(-0.1, 0.1, shape).astype(np.float32)
                             for shape in ((4 * d, n_in), (4 * d, d), (4 * d,), (4 * d,)))
    x = (rng.standard_normal((n, c, h, w)) * 0.5).astype(np.float32)
    steps = (w // 2) * (n * h // 2) * 2 + (h // 2) * (n * w // 2) * 2           # LSTM steps x sequences
    flops = 3 * 2 * 4 * d * (steps // 2 * (c * 4 + d) + steps // 2 * (2 * d + d))  # approx fwd+bwd GEMMs
    return ("renet sweep (2x2, d=128)", f"{n}x{c}x{h}x{w}", flops, params, x)


_ts_zeros = _ts_ones = _th_zeros = _th_ones = _ts_tensor = _th_tensor = None


def main():
    args = parse_args()
    timing.set_threads(args.threads)
    import numpy as np
    import torch
    import torch.nn.functional as tf

    import tinyseg as ts
    import tinyseg.functional as F
    import why_slower
    from torch_twin import TorchReNet

    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = args.device
    tdev = torch.device(dev)
    global _ts_zeros, _ts_ones, _th_zeros, _th_ones, _ts_tensor, _th_tensor
    _ts_zeros = lambda n: ts.tensor(np.zeros(n, np.float32), device=dev)   # noqa: E731
    _ts_ones = lambda n: ts.tensor(np.ones(n, np.float32), device=dev)     # noqa: E731
    _th_zeros = lambda n: torch.zeros(n, device=tdev)                      # noqa: E731
    _th_ones = lambda n: torch.ones(n, device=tdev)                        # noqa: E731
    _ts_tensor = lambda a: ts.tensor(a, device=dev)                        # noqa: E731
    _th_tensor = lambda a: torch.as_tensor(a, device=tdev)                 # noqa: E731

    sync = {"tinyseg": lambda: None, "torch": lambda: None}
    if dev == "cuda":
        import cupy
        sync = {"tinyseg": cupy.cuda.Device().synchronize, "torch": torch.cuda.synchronize}

    rng = np.random.default_rng(0)
    rows = []

    def forward_backward_pair(ts_fn, th_fn, arrays):
        ts_in = [ts.tensor(a, requires_grad=True, device=dev) for a in arrays]
        th_in = [torch.tensor(a, requires_grad=True, device=tdev) for a in arrays]
        gy_cache = {}

        def run_ts():
            y = ts_fn(*ts_in)
            if "ts" not in gy_cache:
                gy_cache["ts"] = ts.tensor(np.ones(y.shape, np.float32), device=dev).data
            y.backward(gy_cache["ts"])
            for t in ts_in:
                t.grad = None

        def run_th():
            y = th_fn(*th_in)
            if "th" not in gy_cache:
                gy_cache["th"] = torch.ones_like(y)
            y.backward(gy_cache["th"])
            for t in th_in:
                t.grad = None
        return {"tinyseg": run_ts, "torch": run_th}

    for name, shape, flops, ts_make, th_make, arrays in op_cases(np, rng):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        runs = forward_backward_pair(ts_make(F), th_make(tf), arrays)
        rows.append(_row(name, shape, flops, timing.compare(runs, args.repeats, sync=sync)))
        print(_format(rows[-1]), flush=True)

    name, shape, flops, params, x = renet_case(np, rng)
    if not args.only or any(name.startswith(o) for o in args.only):
        ts_params = {k: tuple(ts.tensor(a, requires_grad=True, device=dev) for a in v) for k, v in params.items()}
        th_model = TorchReNet(256, 128).load_tinyseg(params).to(tdev)
        runs = forward_backward_pair(lambda X: F.renet(X, ts_params), th_model, (x,))
        rows.append(_row(name, shape, flops, timing.compare(runs, args.repeats, sync=sync)))
        print(_format(rows[-1]), flush=True)

    if not args.only or any("model".startswith(o) or "inference".startswith(o) for o in args.only):
        import model_bench
        model, twin, images, labels = model_bench.build(np, ts, torch, args.preset, args.batch_size, dev)
        steps = model_bench.engine_steps(np, ts, torch, model, twin, images, labels, dev)
        for row_name, runs in steps.items():
            batch = 1 if row_name.startswith("inference") else args.batch_size
            times = timing.compare(runs, args.model_repeats or args.repeats, warmup=2, sync=sync)
            row = _row(f"{row_name} ({args.preset})", f"{batch}x1x{images.shape[2]}x{images.shape[3]}", None, times)
            row["images_per_s"] = {e: batch / (timing.median_ms(t) / 1000) for e, t in times.items()}
            row["peak_mb"] = {e: model_bench.peak_memory_mb(e, row_name, args.preset, args.batch_size, dev,
                                                            args.threads) for e in runs}
            rows.append(row)
            print(_format(row), f"  img/s {row['images_per_s']['tinyseg']:.1f} vs {row['images_per_s']['torch']:.1f}"
                  f"  peak MB {row['peak_mb']['tinyseg']:.0f} vs {row['peak_mb']['torch']:.0f}", flush=True)

    device_name = timing.cpu_name() if dev == "cpu" else torch.cuda.get_device_name()
    payload = {"device": dev, "device_name": device_name, "threads": args.threads, "date": timing.today(),
               "commit": timing.git_commit(), "versions": {"numpy": np.__version__, "torch": torch.__version__,
                                                           "python": sys.version.split()[0]},
               "repeats": args.repeats, "load_average": os.getloadavg(), "rows": rows}
    md = [f"# tinyseg vs PyTorch, {dev} ({device_name}), {args.threads} threads, {payload['date']}",
          "", f"commit `{payload['commit']}`, numpy {np.__version__}, torch {torch.__version__}; "
          f"forward+backward, median of {args.repeats} alternating runs after warm-up; "
          f"load average at the end {payload['load_average'][0]:.2f}.", "",
          "| op | shape | tinyseg ms | PyTorch ms | ratio | tinyseg GFLOP/s |", "|---|---|---|---|---|---|"]
    md += [f"| {r['op']} | {r['shape']} | {r['tinyseg_ms']:.2f} | {r['torch_ms']:.2f} | {r['ratio']:.2f} | "
           f"{r['tinyseg_gflops'] if r['tinyseg_gflops'] is not None else '-'} |" for r in rows]
    model_rows = [r for r in rows if "peak_mb" in r]
    if model_rows:
        md += ["", "| model row | images/s tinyseg | images/s PyTorch | peak MB tinyseg | peak MB PyTorch |",
               "|---|---|---|---|---|"]
        md += [f"| {r['op']} | {r['images_per_s']['tinyseg']:.2f} | {r['images_per_s']['torch']:.2f} | "
               f"{r['peak_mb']['tinyseg']:.0f} | {r['peak_mb']['torch']:.0f} |" for r in model_rows]
    slowest = max(rows, key=lambda r: r["ratio"]) if rows else None
    if slowest and slowest["ratio"] > 1:
        md += ["", f"Largest ratio: {slowest['op']} ({slowest['ratio']:.2f}x).", "",
               "## Where tinyseg is slower, and why", ""]
        md += [f"- **{r['op']}** ({r['ratio']:.2f}x): {why_slower.explain(dev, r['op'])}"
               for r in sorted(rows, key=lambda r: -r["ratio"]) if r["ratio"] > 1]
    if any(r["peak_mb"]["tinyseg"] > r["peak_mb"]["torch"] for r in model_rows):
        md += ["", f"Peak memory above PyTorch's in the model rows: {why_slower.MEMORY}"]
    payload["preset"], payload["batch_size"] = args.preset, args.batch_size
    paths = timing.write_results(args.out, f"{dev}-{payload['date']}", payload, "\n".join(md) + "\n")
    print("wrote", *paths)


def _row(name, shape, flops, times):
    ts_ms, th_ms = timing.median_ms(times["tinyseg"]), timing.median_ms(times["torch"])
    return {"op": name, "shape": shape, "tinyseg_ms": ts_ms, "torch_ms": th_ms, "ratio": ts_ms / th_ms,
            "tinyseg_gflops": round(flops / ts_ms / 1e6, 1) if flops else None}


def _format(row):
    return (f"{row['op']:<40} {row['shape']:<22} tinyseg {row['tinyseg_ms']:9.2f} ms   "
            f"torch {row['torch_ms']:9.2f} ms   ratio {row['ratio']:5.2f}")


if __name__ == "__main__":
    main()
