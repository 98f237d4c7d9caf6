"""tinyseg against PyTorch, as users run them: each engine in its own process with its
default settings, alternating, on identical float32 inputs.

    python benchmarks/run.py [--device cpu|cuda] [--rounds 5] [--repeats 10] [--only conv model ...]
    python benchmarks/run.py --tuned          # a second, labelled table: both engines tuned

Rows (``--rows``): ``ops`` time forward + backward of one op; ``layers`` every 3x3
convolution shape of the small preset at 4x1x256x256 (the training batch) and of the
paper preset's VGG blocks at 1x1x400x500, forward + backward with the fused ReLU;
``model`` H-ReNet (see model_bench.py) with the same weights in both engines: forward,
the SGD training step, inference of one image; ``epoch`` one epoch of 174 images
(JSRT's size) at 256x256, batch 4, Adam.

Protocol: a round starts one process per engine (tinyseg, then PyTorch; the order flips
every round), each times every row (median of ``--repeats`` after warm-up) and reports;
nothing in the environment is set, so each engine runs with its own defaults (PyTorch's
OpenMP pool as PyTorch ships it, tinyseg's Numba and BLAS threads as tinyseg sets them
up). A row's time is the median over rounds; its ratio tinyseg / PyTorch is the median
of the per-round ratios, with their range (below 1: tinyseg is faster). ``--tuned``
instead sets OMP_WAIT_POLICY=PASSIVE, OPENBLAS_THREAD_TIMEOUT and the thread counts for
both engines (``timing.set_threads``), and the table says so. Peak memory of the model
rows is measured in a fresh process per engine. Results go to
benchmarks/results/<device>-<date>[-tuned].json and .md. ``--tiny`` shrinks every op
and ``--size`` the model input, to check the script end to end (on the CUDA emulator,
say); where PyTorch has no CUDA, ``--device cuda`` times tinyseg alone.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import timing

ENGINES = ("tinyseg", "torch")
ROW_GROUPS = ("ops", "layers", "model", "epoch")

# (block, C_in, C_out, H, W) of every 3x3 convolution shape users train: the small preset
# at 256x256 (batch 4), the paper preset's VGG blocks at 400x500 (batch 1).
SMALL_LAYERS = [("conv1_1", 1, 8, 256, 256), ("conv1_2", 8, 8, 256, 256), ("conv2_1", 8, 16, 128, 128),
                ("conv2_2", 16, 16, 128, 128), ("conv3_1", 16, 32, 64, 64), ("conv3_2", 32, 32, 64, 64),
                ("conv4_1", 32, 64, 32, 32), ("conv4_2", 64, 64, 32, 32)]
PAPER_LAYERS = [("conv1_1", 1, 64, 400, 500), ("conv1_2", 64, 64, 400, 500), ("conv2_1", 64, 128, 200, 250),
                ("conv2_2", 128, 128, 200, 250), ("conv3_1", 128, 256, 100, 125), ("conv3_2", 256, 256, 100, 125),
                ("conv4_1", 256, 512, 50, 62), ("conv4_2", 512, 512, 50, 62)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--rounds", type=int, default=None,
                        help="processes per engine, alternating (default 5 on the CPU, 1 on the GPU)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs of each row per process")
    parser.add_argument("--rows", nargs="*", choices=ROW_GROUPS, default=None,
                        help="row groups (default: all on the CPU; ops and model on the GPU)")
    parser.add_argument("--tuned", action="store_true",
                        help="set OMP_WAIT_POLICY=PASSIVE, OPENBLAS_THREAD_TIMEOUT and --threads for both engines")
    parser.add_argument("--threads", type=int, default=2, help="thread count of both engines with --tuned")
    parser.add_argument("--preset", choices=("small", "paper"), default="small", help="H-ReNet preset for model rows")
    parser.add_argument("--batch-size", type=int, default=4, help="images per training step in model rows")
    parser.add_argument("--model-repeats", type=int, default=None, help="repeats of model rows (default --repeats)")
    parser.add_argument("--only", nargs="*", help="run only the rows whose name starts with one of these")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="model input (default: 256x256 for the small preset on the CPU, else the preset's)")
    parser.add_argument("--epoch-images", type=int, default=174, help="images in the epoch row")
    parser.add_argument("--tiny", action="store_true", help="op rows at a few hundred elements, not layer sizes")
    parser.add_argument("--peak-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="measure each model row's peak memory in a fresh process")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 5 if args.device == "cpu" else 1
    if args.rows is None:
        args.rows = list(ROW_GROUPS) if args.device == "cpu" else ["ops", "model"]
    if args.size is None and args.preset == "small" and args.device == "cpu" and not args.tiny:
        args.size = [256, 256]
    return args


def op_cases(np, rng, s=1):
    """(name, shapes description, FLOPs or None, tinyseg fn, torch fn, arrays, least bytes moved
    or None) per op; ``s`` divides every channel count and side (``--tiny``)."""
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
                      conv, conv, (randn(1, c, h, wd), w, b), least_bytes(c * h * wd, c * h * wd)))
    x1 = cases[-1][5][0]                 # the input of the last convolution row
    cases.append(("max_pool 2x2", "x".join(map(str, x1.shape)), None,
                  lambda F: lambda X: F.max_pool2d(X, 2), lambda tf: lambda X: tf.max_pool2d(X, 2), (x1,), None))
    gh, gw = max(1, 14 // s), max(1, 17 // s)
    cases.append(("conv_transpose k64 s32", f"1x3x{gh}x{gw} -> {32 * gh}x{32 * gw}",
                  3 * 2 * 3 * 3 * 64 * 64 * gh * gw, up, up,
                  (randn(1, 3, gh, gw), randn(3, 3, 64, 64, scale=0.05), randn(3)),
                  least_bytes(3 * gh * gw, 3 * 32 * gh * 32 * gw)))
    c_bn, h, wd = 512 // s, max(2, 25 // s), max(2, 31 // s)
    cases.append(("batch_norm (train)", f"2x{c_bn}x{h}x{wd}", None,
                  lambda F: bn(F, _ts_zeros, _ts_ones, c_bn), lambda tf: bn(tf, _th_zeros, _th_ones, c_bn),
                  (randn(2, c_bn, h, wd), randn(c_bn), randn(c_bn)), None))
    h, wd = 400 // s, 500 // s
    target = rng.integers(0, 3, (2, h, wd))
    cases.append(("cross_entropy", f"2x3x{h}x{wd}", None,
                  lambda F: lambda X: F.cross_entropy(X, _ts_tensor(target)),
                  lambda tf: lambda X: tf.cross_entropy(X, _th_tensor(target)), (randn(2, 3, h, wd),), None))
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
    nbytes = least_bytes(x.size, n * 2 * d * (h // 2) * (w // 2))
    return (f"renet sweep (2x2, d={d})", f"{n}x{c}x{h}x{w}", flops, params, x, nbytes)


def least_bytes(x_size, y_size, itemsize=4):
    """Bytes a forward + backward must move at the least: x, y, dy and dx, each once."""
    return itemsize * 2 * (x_size + y_size)


def wanted(args, name):
    return not args.only or any(name.startswith(o) for o in args.only)


def measure_machine(np):
    """This machine's float32 GEMM rate (numpy's BLAS, its default threads, 1024^3) and its
    copy bandwidth (64 MB into a reused buffer, read + write), for the floors of the table."""
    import time
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    c = np.empty_like(a)
    src = np.ones(2 ** 24, np.float32)
    dst = np.empty_like(src)
    gemm, copy = [], []
    for _ in range(5):
        start = time.perf_counter()
        np.matmul(a, a, out=c)
        gemm.append(time.perf_counter() - start)
        start = time.perf_counter()
        np.copyto(dst, src)
        copy.append(time.perf_counter() - start)
    return {"sgemm_gflops": 2 * 1024 ** 3 / min(gemm) / 1e9, "copy_gbps": 2 * src.nbytes / min(copy) / 1e9}


def floor_ms(machine, flops, nbytes):
    """Arithmetic at the measured GEMM rate plus ``nbytes`` moved at the measured bandwidth."""
    return 1e3 * (flops / (machine["sgemm_gflops"] * 1e9) + nbytes / (machine["copy_gbps"] * 1e9))


def worker(args):
    """Time every selected row for one engine in this process; print one JSON line."""
    if args.tuned:
        timing.set_threads(args.threads)
    import numpy as np

    engine, dev = args.worker, args.device
    if engine == "tinyseg":
        import tinyseg as ts
        import tinyseg.functional as F
        fn_of = {"tinyseg": F}
    import torch
    if engine == "torch":
        import torch.nn.functional as tf
        import tinyseg as ts          # the twin's weights come from the tinyseg model
        fn_of = {"torch": tf}
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        if args.tuned:
            torch.set_num_threads(args.threads)
    tdev = torch.device(dev)
    sync = None
    if dev == "cuda":
        if engine == "tinyseg":
            import cupy
            sync = cupy.cuda.Device().synchronize
        else:
            sync = torch.cuda.synchronize
    global _ts_zeros, _ts_ones, _th_zeros, _th_ones, _ts_tensor, _th_tensor
    _ts_zeros = lambda n: ts.tensor(np.zeros(n, np.float32), device=dev)   # noqa: E731
    _ts_ones = lambda n: ts.tensor(np.ones(n, np.float32), device=dev)     # noqa: E731
    _th_zeros = lambda n: torch.zeros(n, device=tdev)                      # noqa: E731
    _th_ones = lambda n: torch.ones(n, device=tdev)                        # noqa: E731
    _ts_tensor = lambda a: ts.tensor(a, device=dev)                        # noqa: E731
    _th_tensor = lambda a: torch.as_tensor(a, device=tdev)                 # noqa: E731
    shrink = 8 if args.tiny else 1
    rng = np.random.default_rng(0)

    def forward_backward(fn, arrays):
        if engine == "tinyseg":
            inputs = [ts.tensor(a, requires_grad=True, device=dev) for a in arrays]
        else:
            inputs = [torch.tensor(a, requires_grad=True, device=tdev) for a in arrays]
        cache = {}

        def run():
            y = fn(*inputs)
            if "gy" not in cache:
                cache["gy"] = (ts.tensor(np.ones(y.shape, np.float32), device=dev).data if engine == "tinyseg"
                               else torch.ones_like(y))
            y.backward(cache["gy"])
            for t in inputs:
                t.grad = None
        return run

    def time_row(fn, repeats, warmup=2):
        return timing.compare({engine: fn}, repeats, warmup=warmup, sync={engine: sync} if sync else None)[engine]

    rows = []

    def record(name, shape, flops, seconds, **extra):
        rows.append({"op": name, "shape": shape, "flops": flops, "seconds": seconds, **extra})
        print(f"  {engine:8s} {name:<44} {shape:<24} {timing.median_ms(seconds):9.2f} ms", file=sys.stderr, flush=True)

    if "ops" in args.rows:
        for name, shape, flops, ts_make, th_make, arrays, nbytes in op_cases(np, rng, shrink):
            if wanted(args, name):
                make = ts_make if engine == "tinyseg" else th_make
                record(name, shape, flops, time_row(forward_backward(make(fn_of[engine]), arrays), args.repeats),
                       nbytes=nbytes)
        name, shape, flops, params, x, nbytes = renet_case(np, rng, shrink)
        if wanted(args, name):
            if engine == "tinyseg":
                ts_params = {k: tuple(ts.tensor(a, requires_grad=True, device=dev) for a in v)
                             for k, v in params.items()}
                fn = lambda X: F.renet(X, ts_params)          # noqa: E731
            else:
                from torch_twin import TorchReNet
                d, n_in = params["h_fwd"][1].shape[1], params["h_fwd"][0].shape[1]
                fn = TorchReNet(n_in // 4, d).load_tinyseg(params).to(tdev)
            record(name, shape, flops, time_row(forward_backward(fn, (x,)), args.repeats), nbytes=nbytes)

    if "layers" in args.rows:
        for preset, batch, layers in (("small", 4, SMALL_LAYERS), ("paper", 1, PAPER_LAYERS)):
            for block, c_in, c_out, h, w in layers:
                c_in, c_out = max(1, c_in // shrink), max(1, c_out // shrink)
                h, w = max(4, h // shrink), max(4, w // shrink)
                name = f"layer {preset} {block} {c_in}->{c_out}"
                if not wanted(args, name):
                    continue
                x = rng.standard_normal((batch, c_in, h, w)).astype(np.float32)
                weight = (rng.standard_normal((c_out, c_in, 3, 3)) * (2 / (9 * c_in)) ** 0.5).astype(np.float32)
                bias = np.zeros(c_out, np.float32)
                if engine == "tinyseg":
                    fn = lambda X, W, B: F.conv2d(X, W, B, padding=1, relu=True)              # noqa: E731
                else:
                    fn = lambda X, W, B: tf.relu(tf.conv2d(X, W, B, padding=1))               # noqa: E731
                arrays = (x, weight, bias) if c_in > 1 else (x, weight, bias)
                record(name, f"{batch}x{c_in}x{h}x{w}", 3 * 2 * batch * c_in * c_out * 9 * h * w,
                       time_row(forward_backward(fn, arrays), max(3, args.repeats // 2)),
                       nbytes=least_bytes(batch * c_in * h * w, batch * c_out * h * w))

    if "model" in args.rows or "epoch" in args.rows:
        import model_bench
        model, twin, images, labels = model_bench.build(np, ts, torch, args.preset, args.batch_size, dev,
                                                        size=args.size, twin=engine == "torch")
        shape = f"{args.batch_size}x1x{images.shape[2]}x{images.shape[3]}"
    if "model" in args.rows and any(wanted(args, n) for n in ("model", "inference")):
        steps = model_bench.engine_steps(np, ts, torch, model, twin, images, labels, dev)
        for row_name, runs in steps.items():
            if not wanted(args, row_name) and not wanted(args, "model"):
                continue
            batch = 1 if row_name.startswith("inference") else args.batch_size
            seconds = time_row(runs[engine], args.model_repeats or args.repeats)
            record(f"{row_name} ({args.preset})", f"{batch}x1x{images.shape[2]}x{images.shape[3]}", None, seconds,
                   images=batch)
    if "epoch" in args.rows and wanted(args, "epoch"):
        epoch = model_bench.epoch_runner(np, ts, torch, model, twin, dev, args.epoch_images, args.batch_size,
                                         (images.shape[2], images.shape[3]), engine)
        record(f"epoch, {args.epoch_images} images, Adam ({args.preset})",
               f"{args.epoch_images}x1x{images.shape[2]}x{images.shape[3]}", None,
               time_row(epoch, 1, warmup=0), images=args.epoch_images)
    facts = timing.facts(dev)
    if dev == "cpu" and engine == "tinyseg":
        facts["machine"] = measure_machine(np)
    print(json.dumps({"engine": engine, "rows": rows, "facts": facts}))


def run_round(args, engine):
    """One worker process for ``engine``; returns its rows. A run started through
    benchmarks/emulated.py (the CUDA emulator) starts its workers through it too."""
    here = os.path.dirname(os.path.abspath(__file__))
    launcher = [os.path.join(here, "emulated.py")] if "cuda_emulator" in sys.modules else []
    argv = [sys.executable, *launcher, os.path.abspath(__file__), "--worker", engine] + _forwarded(args)
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _forwarded(args):
    argv = ["--device", args.device, "--repeats", str(args.repeats), "--rows", *args.rows,
            "--threads", str(args.threads), "--preset", args.preset, "--batch-size", str(args.batch_size),
            "--epoch-images", str(args.epoch_images)]
    argv += ["--tuned"] * args.tuned + ["--tiny"] * args.tiny
    if args.model_repeats:
        argv += ["--model-repeats", str(args.model_repeats)]
    if args.only:
        argv += ["--only", *args.only]
    if args.size:
        argv += ["--size", *map(str, args.size)]
    return argv


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    import torch
    dev = args.device
    engines = ENGINES if dev == "cpu" or torch.cuda.is_available() else ("tinyseg",)
    notes = [] if "torch" in engines else [f"PyTorch {torch.__version__} has no CUDA here: tinyseg timed alone"]
    for note in notes:
        print(note, flush=True)
    load_start = os.getloadavg()
    per_round = []
    for r in range(args.rounds):
        order = engines if r % 2 == 0 else engines[::-1]
        print(f"round {r + 1}/{args.rounds}: {' then '.join(order)}; load average {os.getloadavg()[0]:.2f}", flush=True)
        per_round.append({engine: run_round(args, engine) for engine in order})
    rows = _combine(per_round, engines)
    for row in rows:
        print(_format(row), flush=True)
    if args.peak_memory and "model" in args.rows:
        import model_bench
        for row in rows:
            if row["op"].startswith("model") or row["op"].startswith("inference"):
                name = row["op"].rsplit(" (", 1)[0]
                row["peak_mb"] = {e: model_bench.peak_memory_mb(e, name, args.preset, args.batch_size, dev,
                                                                args.threads if args.tuned else None, args.size)
                                  for e in engines}
    for row in rows:
        if "images" in row:
            row["images_per_s"] = {e: row["images"] / (row[f"{_key(e)}_ms"] / 1000) for e in engines
                                   if row.get(f"{_key(e)}_ms")}
    info = per_round[0][engines[0]]["facts"]
    info["load_average"] = load_start
    if "tinyseg" in engines:
        info["machine"] = per_round[0]["tinyseg"]["facts"].get("machine")
    payload = {**info, "protocol": "tuned" if args.tuned else "defaults", "rounds": args.rounds,
               "repeats": args.repeats, "preset": args.preset, "batch_size": args.batch_size, "tiny": args.tiny,
               "notes": notes, "rows": rows, "load_average_at_end": os.getloadavg()}
    md = _markdown(args, payload, rows, engines)
    stem = f"{dev}-{info['date']}" + ("-tuned" if args.tuned else "")
    paths = timing.write_results(args.out, stem, payload, "\n".join(md) + "\n")
    print("wrote", *paths)


def _key(engine):
    return "tinyseg" if engine == "tinyseg" else "torch"


def _combine(per_round, engines):
    """Rows with each engine's median over rounds, the per-round ratios and their range."""
    rows = []
    first = per_round[0][engines[0]]["rows"]
    for i, base in enumerate(first):
        row = {"op": base["op"], "shape": base["shape"]}
        if "images" in base:
            row["images"] = base["images"]
        per_engine = {e: [timing.median_ms(rnd[e]["rows"][i]["seconds"]) for rnd in per_round] for e in engines}
        for e in engines:
            row[f"{_key(e)}_ms"] = statistics.median(per_engine[e])
            row[f"{_key(e)}_ms_rounds"] = per_engine[e]
        row.setdefault("torch_ms", None)
        if "torch" in engines:
            ratios = [a / b for a, b in zip(per_engine["tinyseg"], per_engine["torch"])]
            row["ratio"], row["ratio_range"] = statistics.median(ratios), [min(ratios), max(ratios)]
        else:
            row["ratio"], row["ratio_range"] = None, None
        machine = per_round[0][engines[0]]["facts"].get("machine")
        if machine and base["flops"] and base.get("nbytes"):
            row["floor_ms"] = floor_ms(machine, base["flops"], base["nbytes"])
        row["tinyseg_gflops"] = round(base["flops"] / row["tinyseg_ms"] / 1e6, 1) if base["flops"] else None
        row["torch_gflops"] = (round(base["flops"] / row["torch_ms"] / 1e6, 1)
                               if base["flops"] and row["torch_ms"] else None)
        rows.append(row)
    return rows


def _markdown(args, payload, rows, engines):
    dev = args.device
    setting = timing.protocol(args.tuned, args.threads)
    md = [f"# tinyseg vs PyTorch, {dev} ({payload['device_name']}){' (tuned)' if args.tuned else ''}, "
          f"{payload['date']}", "", timing.describe(payload), "",
          f"Protocol: {setting}; {args.rounds} rounds alternating the order of the engines, median of "
          f"{args.repeats} timed runs after warm-up in each (layer rows: {max(3, args.repeats // 2)}; the epoch "
          f"row: one). Time: median over rounds; ratio tinyseg / PyTorch: median of the per-round ratios "
          f"[their range]. Load average {payload['load_average'][0]:.2f} at the start, "
          f"{payload['load_average_at_end'][0]:.2f} at the end. Regenerate: `python benchmarks/run.py"
          f"{' --tuned' if args.tuned else ''}`.", ""]
    md += [f"- {note}" for note in payload["notes"]] + [""] * bool(payload["notes"])
    machine = payload.get("machine")
    if machine:
        md += [f"Machine, measured in the tinyseg process: float32 GEMM {machine['sgemm_gflops']:.0f} GFLOP/s "
               f"(numpy's BLAS, 1024^3), copy bandwidth {machine['copy_gbps']:.1f} GB/s. Floor of a row with a FLOP "
               f"count: its FLOPs at that GEMM rate plus x, y, dy and dx moved once at that bandwidth (the "
               f"ReNet row counts its GEMMs' FLOPs only).", ""]
    md += ["| row | shape | tinyseg ms | PyTorch ms | ratio [range] | GFLOP/s tinyseg / PyTorch | floor ms |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f} [{r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}]"
        flops = "-" if not r["tinyseg_gflops"] else f"{r['tinyseg_gflops']:.0f} / {_number(r['torch_gflops'], 0)}"
        md.append(f"| {r['op']} | {r['shape']} | {r['tinyseg_ms']:.2f} | {_number(r['torch_ms'], 2)} | {ratio} | "
                  f"{flops} | {_number(r.get('floor_ms'), 2)} |")
    model_rows = [r for r in rows if "images_per_s" in r]
    if model_rows:
        md += ["", "| model row | images/s tinyseg | images/s PyTorch | peak MB tinyseg | peak MB PyTorch |",
               "|---|---|---|---|---|"]
        md += [f"| {r['op']} | {_pair(r['images_per_s'], 2, ' | ')} | {_pair(r.get('peak_mb', {}), 0, ' | ')} |"
               for r in model_rows]
    timed = [r for r in rows if r["ratio"] is not None]
    slower = sorted((r for r in timed if r["ratio"] > 1), key=lambda r: -r["ratio"])
    if slower:
        import why_slower
        md += ["", "## Where tinyseg is slower, and why", ""]
        md += [f"- **{r['op']}** ({r['ratio']:.2f}x): {why_slower.explain(dev, r['op'], r.get('shape'))}" for r in slower]
    if any(r.get("peak_mb", {}).get("tinyseg", 0) > r.get("peak_mb", {}).get("torch", float("inf"))
           for r in model_rows):
        import why_slower
        md += ["", f"Peak memory above PyTorch's in the model rows: {why_slower.memory(dev)}"]
    return md


def _number(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(values, digits, between=" vs "):
    """tinyseg's and PyTorch's value of a per-engine dict, "-" where one is missing."""
    return between.join(_number(values.get(engine), digits) for engine in ("tinyseg", "torch"))


def _format(row):
    return (f"{row['op']:<44} {row['shape']:<24} tinyseg {row['tinyseg_ms']:9.2f} ms   "
            f"torch {_number(row['torch_ms'], 2):>9} ms   ratio {_number(row['ratio'], 2):>5}")


if __name__ == "__main__":
    main()
