"""tinyseg against PyTorch, op by op, on identical float32 inputs in one run.

    python benchmarks/run.py [--device cpu|cuda] [--preset small|paper] [--threads 2] [--repeats 20]

Op rows time forward + backward of one op; model rows time H-ReNet (see
model_bench.py) with the same weights in both engines. Both engines run
alternately, median after warm-up, device-synchronised, and the table shows
the ratio tinyseg / PyTorch (below 1: tinyseg is faster). Results go to
benchmarks/results/<device>-<date>.json and .md. ``--tiny`` shrinks every op
and ``--size`` the model input, to check the script end to end (on the CUDA
emulator, say); where PyTorch has no CUDA, ``--device cuda`` times tinyseg alone.
"""
from __future__ import annotations

import argparse
import os

import timing


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both engines")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--preset", choices=("small", "paper"), default="small", help="H-ReNet preset for model rows")
    parser.add_argument("--batch-size", type=int, default=4, help="images per training step in model rows")
    parser.add_argument("--model-repeats", type=int, default=None, help="repeats of model rows (default --repeats)")
    parser.add_argument("--only", nargs="*", help="run only the rows whose name starts with one of these")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="model input (default: the preset's)")
    parser.add_argument("--tiny", action="store_true", help="op rows at a few hundred elements, not layer sizes")
    parser.add_argument("--peak-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="measure each model row's peak memory in a fresh process")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    return parser.parse_args()


def op_cases(np, rng, s=1):
    """(name, shapes description, FLOPs or None, tinyseg fn, torch fn) builders per op;
    ``s`` divides every channel count and side (``--tiny``)."""
    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def conv(F):
        return lambda X, W, B: F.conv2d(X, W, B, padding=1)

    def up(F):
        return lambda X, W, B: F.conv_transpose2d(X, W, B, stride=32, padding=16)

    def bn(F, zeros, ones, c):
        return lambda X, G, B: F.batch_norm(X, zeros(c), ones(c), G, B, True)

    cases = []
    c, w, b = 64 // s, randn(64 // s, 64 // s, 3, 3, scale=0.05), randn(64 // s)
    for h, wd, note in ((100 // s, 125 // s, ""), (200 // s, 250 // s, " (paper block 2 input)")):
        cases.append((f"conv3x3 {c}->{c}{note}", f"1x{c}x{h}x{wd}", 3 * 2 * c * c * 9 * h * wd,
                      conv, conv, (randn(1, c, h, wd), w, b)))
    x1 = cases[-1][-1][0]
    cases.append(("max_pool 2x2", "x".join(map(str, x1.shape)), None,
                  lambda F: lambda X: F.max_pool2d(X, 2), lambda tf: lambda X: tf.max_pool2d(X, 2), (x1,)))
    gh, gw = max(1, 14 // s), max(1, 17 // s)
    cases.append(("conv_transpose k64 s32", f"1x3x{gh}x{gw} -> {32 * gh}x{32 * gw}",
                  3 * 2 * 3 * 3 * 64 * 64 * gh * gw, up, up,
                  (randn(1, 3, gh, gw), randn(3, 3, 64, 64, scale=0.05), randn(3))))
    c_bn, h, wd = 512 // s, max(2, 25 // s), max(2, 31 // s)
    cases.append(("batch_norm (train)", f"2x{c_bn}x{h}x{wd}", None,
                  lambda F: bn(F, _ts_zeros, _ts_ones, c_bn), lambda tf: bn(tf, _th_zeros, _th_ones, c_bn),
                  (randn(2, c_bn, h, wd), randn(c_bn), randn(c_bn))))
    h, wd = 400 // s, 500 // s
    target = rng.integers(0, 3, (2, h, wd))
    cases.append(("cross_entropy", f"2x3x{h}x{wd}", None,
                  lambda F: lambda X: F.cross_entropy(X, _ts_tensor(target)),
                  lambda tf: lambda X: tf.cross_entropy(X, _th_tensor(target)), (randn(2, 3, h, wd),)))
    return cases


def renet_case(np, rng, s=1):
    n, c, h, w, d = 2, 256 // s, max(2, 24 // s // 2 * 2), max(2, 30 // s // 2 * 2), 128 // s
    params = {}
    for name in ("h_fwd", "h_bwd", "v_fwd", "v_bwd"):
        n_in = c * 4 if name[0] == "h" else 2 * d
        params[name] = tuple(rng.uniform(-0.1, 0.1, shape).astype(np.float32)
                             for shape in ((4 * d, n_in), (4 * d, d), (4 * d,), (4 * d,)))
    x = (rng.standard_normal((n, c, h, w)) * 0.5).astype(np.float32)
    steps = (w // 2) * (n * h // 2) * 2 + (h // 2) * (n * w // 2) * 2           # LSTM steps x sequences
    flops = 3 * 2 * 4 * d * (steps // 2 * (c * 4 + d) + steps // 2 * (2 * d + d))  # approx fwd+bwd GEMMs
    return (f"renet sweep (2x2, d={d})", f"{n}x{c}x{h}x{w}", flops, params, x)


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
    with_torch = dev == "cpu" or torch.cuda.is_available()
    notes = [] if with_torch else [f"PyTorch {torch.__version__} has no CUDA here: tinyseg timed alone"]
    for note in notes:
        print(note, flush=True)
    global _ts_zeros, _ts_ones, _th_zeros, _th_ones, _ts_tensor, _th_tensor
    _ts_zeros = lambda n: ts.tensor(np.zeros(n, np.float32), device=dev)   # noqa: E731
    _ts_ones = lambda n: ts.tensor(np.ones(n, np.float32), device=dev)     # noqa: E731
    _th_zeros = lambda n: torch.zeros(n, device=tdev)                      # noqa: E731
    _th_ones = lambda n: torch.ones(n, device=tdev)                        # noqa: E731
    _ts_tensor = lambda a: ts.tensor(a, device=dev)                        # noqa: E731
    _th_tensor = lambda a: torch.as_tensor(a, device=tdev)                 # noqa: E731

    sync = {}
    if dev == "cuda":
        import cupy
        sync = {"tinyseg": cupy.cuda.Device().synchronize, "torch": torch.cuda.synchronize}
    shrink = 8 if args.tiny else 1

    rng = np.random.default_rng(0)
    rows = []

    def forward_backward_pair(ts_fn, th_fn, arrays):
        ts_in = [ts.tensor(a, requires_grad=True, device=dev) for a in arrays]
        th_in = [torch.tensor(a, requires_grad=True, device=tdev) for a in arrays] if with_torch else []
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
        return {"tinyseg": run_ts, "torch": run_th} if with_torch else {"tinyseg": run_ts}

    for name, shape, flops, ts_make, th_make, arrays in op_cases(np, rng, shrink):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        runs = forward_backward_pair(ts_make(F), th_make(tf), arrays)
        rows.append(_row(name, shape, flops, timing.compare(runs, args.repeats, sync=sync)))
        print(_format(rows[-1]), flush=True)

    name, shape, flops, params, x = renet_case(np, rng, shrink)
    if not args.only or any(name.startswith(o) for o in args.only):
        ts_params = {k: tuple(ts.tensor(a, requires_grad=True, device=dev) for a in v) for k, v in params.items()}
        d, n_in = params["h_fwd"][1].shape[1], params["h_fwd"][0].shape[1]
        th_model = TorchReNet(n_in // 4, d).load_tinyseg(params).to(tdev) if with_torch else None
        runs = forward_backward_pair(lambda X: F.renet(X, ts_params), th_model, (x,))
        rows.append(_row(name, shape, flops, timing.compare(runs, args.repeats, sync=sync)))
        print(_format(rows[-1]), flush=True)

    if not args.only or any("model".startswith(o) or "inference".startswith(o) for o in args.only):
        import model_bench
        model, twin, images, labels = model_bench.build(np, ts, torch, args.preset, args.batch_size, dev,
                                                        size=args.size, twin=with_torch)
        steps = model_bench.engine_steps(np, ts, torch, model, twin, images, labels, dev)
        for row_name, runs in steps.items():
            batch = 1 if row_name.startswith("inference") else args.batch_size
            times = timing.compare(runs, args.model_repeats or args.repeats, warmup=2, sync=sync)
            row = _row(f"{row_name} ({args.preset})", f"{batch}x1x{images.shape[2]}x{images.shape[3]}", None, times)
            row["images_per_s"] = {e: batch / (timing.median_ms(t) / 1000) for e, t in times.items()}
            if args.peak_memory:
                row["peak_mb"] = {e: model_bench.peak_memory_mb(e, row_name, args.preset, args.batch_size, dev,
                                                                args.threads, args.size) for e in runs}
            rows.append(row)
            print(_format(row), " ".join(f"{key} {_pair(row[key], 1)}" for key in ("images_per_s", "peak_mb")
                                         if key in row), flush=True)

    info = timing.facts(dev)
    payload = {**info, "threads": args.threads, "repeats": args.repeats, "preset": args.preset,
               "batch_size": args.batch_size, "tiny": args.tiny, "notes": notes, "rows": rows}
    payload["load_average_at_end"] = os.getloadavg()
    timed = [r for r in rows if r["ratio"] is not None]
    md = [f"# tinyseg vs PyTorch, {dev} ({info['device_name']}), {args.threads} threads, {info['date']}",
          "", timing.describe(info), "", f"Forward+backward, median of {args.repeats} alternating runs after "
          f"warm-up; load average at the end {payload['load_average_at_end'][0]:.2f}.", ""]
    md += [f"- {note}" for note in notes] + [""] * bool(notes)
    md += ["| op | shape | tinyseg ms | PyTorch ms | ratio | tinyseg GFLOP/s |", "|---|---|---|---|---|---|"]
    md += [f"| {r['op']} | {r['shape']} | {r['tinyseg_ms']:.2f} | {_number(r['torch_ms'], 2)} | "
           f"{_number(r['ratio'], 2)} | {_number(r['tinyseg_gflops'], 1)} |" for r in rows]
    model_rows = [r for r in rows if "images_per_s" in r]
    if model_rows:
        md += ["", "| model row | images/s tinyseg | images/s PyTorch | peak MB tinyseg | peak MB PyTorch |",
               "|---|---|---|---|---|"]
        md += [f"| {r['op']} | {_pair(r['images_per_s'], 2, ' | ')} | {_pair(r.get('peak_mb', {}), 0, ' | ')} |"
               for r in model_rows]
    slowest = max(timed, key=lambda r: r["ratio"]) if timed else None
    if slowest and slowest["ratio"] > 1:
        md += ["", f"Largest ratio: {slowest['op']} ({slowest['ratio']:.2f}x).", "",
               "## Where tinyseg is slower, and why", ""]
        md += [f"- **{r['op']}** ({r['ratio']:.2f}x): {why_slower.explain(dev, r['op'])}"
               for r in sorted(timed, key=lambda r: -r["ratio"]) if r["ratio"] > 1]
    if any(r.get("peak_mb", {}).get("tinyseg", 0) > r.get("peak_mb", {}).get("torch", float("inf"))
           for r in model_rows):
        md += ["", f"Peak memory above PyTorch's in the model rows: {why_slower.MEMORY}"]
    paths = timing.write_results(args.out, f"{dev}-{info['date']}", payload, "\n".join(md) + "\n")
    print("wrote", *paths)


def _row(name, shape, flops, times):
    ts_ms = timing.median_ms(times["tinyseg"])
    th_ms = timing.median_ms(times["torch"]) if "torch" in times else None
    return {"op": name, "shape": shape, "tinyseg_ms": ts_ms, "torch_ms": th_ms,
            "ratio": ts_ms / th_ms if th_ms else None,
            "tinyseg_gflops": round(flops / ts_ms / 1e6, 1) if flops else None}


def _number(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(values, digits, between=" vs "):
    """tinyseg's and PyTorch's value of a per-engine dict, "-" where one is missing."""
    return between.join(_number(values.get(engine), digits) for engine in ("tinyseg", "torch"))


def _format(row):
    return (f"{row['op']:<40} {row['shape']:<22} tinyseg {row['tinyseg_ms']:9.2f} ms   "
            f"torch {_number(row['torch_ms'], 2):>9} ms   ratio {_number(row['ratio'], 2):>5}")


if __name__ == "__main__":
    main()
