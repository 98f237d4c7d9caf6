"""tinyseg's GPU kernels against PyTorch/cuDNN on H-ReNet's layer shapes at 400 x 500.

    python benchmarks/kernels.py [--batch 1] [--repeats 50] [--warmup 5] [--only conv renet ...]

Rows (forward + backward unless marked): every distinct convolution of the "paper"
preset (VGG-16 blocks 1-4, conv6 7x7, conv7 1x1, the classifier; with the fused ReLU the
model uses), the largest of them forward only, and conv1_2 and conv6 at batch 16 (their
columns, 7.4 GB and 49x the input whole, are built in chunks within
``COLUMN_BUDGET_BYTES``); the four max-pools; batch norm on pool4 and conv7 (training
mode) and at the "small" preset's few channels (several blocks per channel); the ReNet
layer group (tinyseg's fused LSTM kernels against two bidirectional cuDNN ``nn.LSTM``s,
``torch_twin.TorchReNet``) and one bidirectional LSTM sweep, also at a hidden size whose
backward needs more than 48 KiB of shared memory per block; the 64x64 stride-32
transposed-convolution upsampler; cross-entropy over the image (its targets checked on
the device); and, when ``tinyseg.models.HReNet`` exists, whole-model inference (forward
only) and one training step (forward, loss and backward).

Each time is the median of ``--repeats`` runs after ``--warmup`` runs, the two engines
alternating, with the device synchronised before and after every run. TF32 is off in
both engines (CuPy: CUPY_TF32=0, set before CuPy loads; torch: allow_tf32 = False), so
both do float32 arithmetic. Achieved TFLOP/s (GEMM-bound rows: forward, input- and
weight-gradient GEMMs) and GB/s (memory-bound rows: each input read and each output
written once, the least traffic any implementation needs) are set against the device's
measured peaks: a float32 8192^3 ``cupy.matmul`` and a 1 GiB device-to-device copy.

Writes benchmarks/results/kernels-<device>-<date>.json and .md (device name, date, commit),
rewritten after every row, so that a run stopped part way keeps what it measured.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys

os.environ["CUPY_TF32"] = "0"   # CuPy reads it when it first multiplies float32 matrices
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402

HEIGHT, WIDTH = 400, 500
# (name, C_in, C_out, kernel, padding, input height, input width) of each distinct convolution
CONVS = [("conv1_1", 1, 64, 3, 1, 400, 500), ("conv1_2", 64, 64, 3, 1, 400, 500),
         ("conv2_1", 64, 128, 3, 1, 200, 250), ("conv2_2", 128, 128, 3, 1, 200, 250),
         ("conv3_1", 128, 256, 3, 1, 100, 125), ("conv3_2", 256, 256, 3, 1, 100, 125),
         ("conv4_1", 256, 512, 3, 1, 50, 62), ("conv4_2", 512, 512, 3, 1, 50, 62),
         ("conv6 7x7", 512, 4096, 7, 3, 25, 31), ("conv7 1x1", 4096, 4096, 1, 0, 25, 31),
         ("classifier 1x1", 512, 3, 1, 0, 13, 16)]
POOLS = [(64, 400, 500), (128, 200, 250), (256, 100, 125), (512, 50, 62)]
HIDDEN = 256                 # ReNet units per direction ("paper" preset)
RENET_IN = (512 + 4096, 26, 32)   # bn(pool4) ++ bn(conv7), padded to whole 2x2 patches
FORWARD_ONLY = ("conv1_2", "conv4_2", "conv6 7x7", "conv7 1x1")   # convolutions also timed forward only
BIG_BATCH = 16                     # conv1_2 and conv6 at this batch: columns built in chunks
# batch norm of the "small" preset (8-64 channels): (channels, height, width) at batch 16
SMALL_BATCH_NORM = [(8, 128, 160), (64, 8, 10)]
# one bidirectional LSTM sweep: (steps, sequences, inputs, hidden); the second needs 5 * 3000 * 4 B
# (> 48 KiB) of shared memory per sequence in backward
LSTM_SWEEPS = [(16, 13, 4 * (512 + 4096), HIDDEN), (8, 8, 64, 3000)]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="run only rows whose name starts with one of these")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    return parser.parse_args()


def cases(np, rng, n):
    """(name, shape, FLOPs or None, bytes or None, tinyseg fn, torch fn, input arrays) per row.

    The fns take (functional module, inputs) and return the output to back-propagate."""
    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def conv_row(name, batch, c_in, c_out, k, p, h, w, what="fwd+bwd"):
        relu = not name.startswith("classifier")             # the model fuses a ReLU into the others
        passes = 3 if what == "fwd+bwd" else 1
        flops = passes * 2 * batch * c_out * c_in * k * k * h * w   # stride 1, "same" padding
        suffix = "" if batch == n else f" (batch {batch})"
        return (f"conv {name}{suffix}" + ("" if what == "fwd+bwd" else " fwd"), f"{batch}x{c_in}x{h}x{w} -> {c_out}",
                flops, None,
                lambda F, x, wt, b, p=p: F.conv2d(x, wt, b, padding=p, relu=relu),
                lambda F, x, wt, b, p=p: _relu_if(F, F.conv2d(x, wt, b, padding=p), relu),
                (randn(batch, c_in, h, w), randn(c_out, c_in, k, k, scale=(2 / (c_in * k * k)) ** 0.5),
                 randn(c_out, scale=0.1)), what)

    rows = [conv_row(conv[0], n, *conv[1:]) for conv in CONVS]
    rows += [conv_row(conv[0], n, *conv[1:], what="forward") for conv in CONVS if conv[0] in FORWARD_ONLY]
    rows += [conv_row(conv[0], BIG_BATCH, *conv[1:]) for conv in CONVS if conv[0] in ("conv1_2", "conv6 7x7")]
    for c, h, w in POOLS:
        size, pooled = n * c * h * w * 4, n * c * (h // 2) * (w // 2) * 4
        rows.append((f"max_pool 2x2 {c}ch", f"{n}x{c}x{h}x{w}", None, 2 * size + 4 * pooled,
                     lambda F, x: F.max_pool2d(x, 2), lambda F, x: F.max_pool2d(x, 2), (randn(n, c, h, w),)))
    for c in (512, 4096):
        size = n * c * 25 * 31 * 4
        rows.append((f"batch_norm {c}ch (train)", f"{n}x{c}x25x31", None, 5 * size,
                     lambda F, x, g, b, c=c: F.batch_norm(x, _zeros(c), _ones(c), g, b, training=True),
                     lambda F, x, g, b, c=c: F.batch_norm(x, _th_zeros(c), _th_ones(c), g, b, training=True),
                     (randn(n, c, 25, 31), randn(c), randn(c))))
    for c, h, w in SMALL_BATCH_NORM:
        size = BIG_BATCH * c * h * w * 4
        rows.append((f"batch_norm {c}ch small (train)", f"{BIG_BATCH}x{c}x{h}x{w}", None, 5 * size,
                     lambda F, x, g, b, c=c: F.batch_norm(x, _zeros(c), _ones(c), g, b, training=True),
                     lambda F, x, g, b, c=c: F.batch_norm(x, _th_zeros(c), _th_ones(c), g, b, training=True),
                     (randn(BIG_BATCH, c, h, w), randn(c), randn(c))))
    grid = (HEIGHT + 31) // 32, (WIDTH + 31) // 32
    up_flops = 3 * 2 * n * 3 * (3 * 64 * 64) * grid[0] * grid[1]
    rows.append(("conv_transpose 64x64 s32", f"{n}x3x{grid[0]}x{grid[1]} -> {32 * grid[0]}x{32 * grid[1]}",
                 up_flops, None,
                 lambda F, x, wt, b: F.conv_transpose2d(x, wt, b, stride=32, padding=16),
                 lambda F, x, wt, b: F.conv_transpose2d(x, wt, b, stride=32, padding=16),
                 (randn(n, 3, *grid), randn(3, 3, 64, 64, scale=0.02), randn(3))))
    pixels = n * HEIGHT * WIDTH
    rows.append(("cross_entropy", f"{n}x3x{HEIGHT}x{WIDTH}", None, pixels * (3 * 4 * 3 + 8 * 2),
                 lambda F, z: F.cross_entropy(z, _target), lambda F, z: F.cross_entropy(z, _th_target),
                 (randn(n, 3, HEIGHT, WIDTH),)))
    return rows


def _relu_if(F, y, relu):
    return F.relu(y) if relu else y


def lstm_flops(steps, batch, n_in, hidden):
    """Forward + backward GEMM FLOPs of one bidirectional LSTM sweep, 3x the forward's."""
    return 3 * 2 * (2 * steps * batch * 4 * hidden * (n_in + hidden))


def renet_flops(n, c, h, w, d):
    """Forward + backward GEMM FLOPs of the ReNet group, 3x the forward's."""
    hp, wp = h // 2, w // 2
    horizontal = 2 * (n * hp * wp) * 2 * 4 * d * (4 * c + d)     # two directions, every patch
    vertical = 2 * (n * hp * wp) * 2 * 4 * d * (2 * d + d)
    return 3 * (horizontal + vertical)


_zeros = _ones = _th_zeros = _th_ones = _target = _th_target = None


def device_peaks(cupy, repeats=20):
    """Measured float32 GEMM FLOP/s and device-copy bytes/s (read + write), CUDA-event timed."""
    def median_seconds(fn):
        fn()
        start, end, times = cupy.cuda.Event(), cupy.cuda.Event(), []
        for _ in range(repeats):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, end) / 1000)
        return statistics.median(times)

    n = 8192
    a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    out = cupy.empty((n, n), dtype=cupy.float32)
    flops = 2 * n ** 3 / median_seconds(lambda: cupy.matmul(a, b, out=out))
    src = cupy.ones(2 ** 28, dtype=cupy.float32)            # 1 GiB
    dst = cupy.empty_like(src)
    bandwidth = 2 * src.nbytes / median_seconds(lambda: cupy.copyto(dst, src))
    return flops, bandwidth


def main():
    args = parse_args()
    import cupy
    import numpy as np
    import torch
    import torch.nn.functional as tf

    import tinyseg as ts
    import tinyseg.functional as F
    from tinyseg.ops.lstm import bidirectional_lstm
    from torch_twin import TorchReNet

    if not ts.cuda_available() or not torch.cuda.is_available():
        sys.exit("benchmarks/kernels.py needs a CUDA device, CuPy and a CUDA build of PyTorch")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    tdev = torch.device("cuda")
    n = args.batch
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (n, HEIGHT, WIDTH))
    global _zeros, _ones, _th_zeros, _th_ones, _target, _th_target
    _zeros = lambda c: ts.tensor(np.zeros(c, np.float32), device="cuda")    # noqa: E731
    _ones = lambda c: ts.tensor(np.ones(c, np.float32), device="cuda")      # noqa: E731
    _th_zeros = lambda c: torch.zeros(c, device=tdev)                       # noqa: E731
    _th_ones = lambda c: torch.ones(c, device=tdev)                         # noqa: E731
    _target, _th_target = ts.tensor(labels, device="cuda"), torch.as_tensor(labels, device=tdev)
    sync = {"tinyseg": cupy.cuda.Device().synchronize, "torch": torch.cuda.synchronize}

    device_name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    peak_flops, peak_bandwidth = device_peaks(cupy)
    cupy.get_default_memory_pool().free_all_blocks()
    print(f"{device_name}: measured peaks {peak_flops / 1e12:.1f} TFLOP/s (float32 GEMM), "
          f"{peak_bandwidth / 1e9:.0f} GB/s (device copy)", flush=True)

    def wanted(name):
        return not args.only or any(name.startswith(o) for o in args.only)

    def time_pair(ts_fn, th_fn, arrays, ts_params=(), th_params=(), what="fwd+bwd"):
        """Forward + backward (upstream gradient of ones) of both engines, or forward alone
        without a graph when ``what`` is "forward"; ``*_params`` are further leaves whose
        gradients are cleared after each run, like the inputs'."""
        backward = what == "fwd+bwd"
        ts_in = [ts.tensor(a, requires_grad=backward, device="cuda") for a in arrays]
        th_in = [torch.tensor(a, requires_grad=backward, device=tdev) for a in arrays]

        def run_ts():
            if not backward:
                with ts.no_grad():
                    ts_fn(F, *ts_in)
                return
            y = ts_fn(F, *ts_in)
            y.backward(cupy.ones(y.shape, dtype=y.dtype))
            for t in ts_in + list(ts_params):
                t.grad = None

        def run_th():
            if not backward:
                with torch.no_grad():
                    th_fn(tf, *th_in)
                return
            y = th_fn(tf, *th_in)
            y.backward(torch.ones_like(y))
            for t in th_in + list(th_params):
                t.grad = None
        return timing.compare({"tinyseg": run_ts, "torch": run_th}, args.repeats, args.warmup, sync)

    rows = []
    stem = f"kernels-{_slug(device_name)}-{timing.today()}"
    payload = {"device": device_name, "date": timing.today(), "commit": timing.git_commit(), "batch": n,
               "input": [HEIGHT, WIDTH], "repeats": args.repeats, "warmup": args.warmup, "tf32": False,
               "peak_tflops_fp32_gemm": peak_flops / 1e12, "peak_gbs_device_copy": peak_bandwidth / 1e9,
               "versions": {"cupy": cupy.__version__, "torch": torch.__version__, "numpy": np.__version__,
                            "cudnn": torch.backends.cudnn.version(), "python": sys.version.split()[0]},
               "rows": rows}

    def record(name, shape, flops, nbytes, times, what="fwd+bwd"):
        row = {"op": name, "shape": shape, "pass": what}
        for engine in ("tinyseg", "torch"):
            seconds = statistics.median(times[engine]) if engine in times else None
            row[f"{engine}_ms"] = 1000 * seconds if seconds else None
            row[f"{engine}_tflops"] = flops / seconds / 1e12 if flops and seconds else None
            row[f"{engine}_gbs"] = nbytes / seconds / 1e9 if nbytes and seconds else None
        row["ratio"] = row["tinyseg_ms"] / row["torch_ms"] if row["torch_ms"] else None
        row["flops"], row["bytes"] = flops, nbytes
        rows.append(row)
        print(_format(row, peak_flops, peak_bandwidth), flush=True)
        # rewritten after every row: a run stopped part way keeps the rows it measured
        timing.write_results(args.out, stem, payload, markdown(payload))
        cupy.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()

    for name, shape, flops, nbytes, ts_fn, th_fn, arrays, *what in cases(np, rng, n):
        what = what[0] if what else "fwd+bwd"
        if wanted(name):
            record(name, shape, flops, nbytes, time_pair(ts_fn, th_fn, arrays, what=what), what)

    for steps, batch, n_in, hidden in LSTM_SWEEPS:
        name = f"lstm sweep (d={hidden})"
        if not wanted(name):
            continue
        weights = [rng.uniform(-0.05, 0.05, shape).astype(np.float32) for _ in range(2) for shape in
                   ((4 * hidden, n_in), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,))]
        ts_weights = [ts.tensor(a, requires_grad=True, device="cuda") for a in weights]
        torch_lstm = torch.nn.LSTM(n_in, hidden, bidirectional=True).to(tdev)
        with torch.no_grad():
            for k, suffix in enumerate(("_l0", "_l0_reverse")):
                for j, key in enumerate(("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
                    getattr(torch_lstm, key + suffix).copy_(torch.as_tensor(weights[4 * k + j]))
        x = (rng.standard_normal((steps, batch, n_in)) * 0.5).astype(np.float32)
        times = time_pair(lambda F_, X: bidirectional_lstm(X, ts_weights[:4], ts_weights[4:]),
                          lambda tf_, X: torch_lstm(X)[0], (x,), ts_weights, list(torch_lstm.parameters()))
        record(name, f"{steps}x{batch}x{n_in}", lstm_flops(steps, batch, n_in, hidden), None, times)
        del ts_weights, torch_lstm

    c, h, w = RENET_IN
    if wanted("renet"):
        params = {}
        for direction in ("h_fwd", "h_bwd", "v_fwd", "v_bwd"):
            n_in = 4 * c if direction[0] == "h" else 2 * HIDDEN
            params[direction] = tuple(rng.uniform(-0.05, 0.05, shape).astype(np.float32) for shape in
                                      ((4 * HIDDEN, n_in), (4 * HIDDEN, HIDDEN), (4 * HIDDEN,), (4 * HIDDEN,)))
        ts_params = {k: tuple(ts.tensor(a, requires_grad=True, device="cuda") for a in v) for k, v in params.items()}
        torch_renet = TorchReNet(c, HIDDEN).load_tinyseg(params).to(tdev)
        x = (rng.standard_normal((n, c, h, w)) * 0.5).astype(np.float32)
        times = time_pair(lambda F_, X: F.renet(X, ts_params), lambda tf_, X: torch_renet(X), (x,),
                          [t for v in ts_params.values() for t in v], list(torch_renet.parameters()))
        record(f"renet sweep (d={HIDDEN})", f"{n}x{c}x{h}x{w}", renet_flops(n, c, h, w, HIDDEN), None, times)
        del ts_params, torch_renet

    model_row(np, ts, torch, n, wanted, record, sync, args)

    paths = timing.write_results(args.out, stem, payload, markdown(payload))
    print("wrote", *paths)


def model_row(np, ts, torch, n, wanted, record, sync, args):
    """Whole-model inference and one training step (forward, cross-entropy, backward) of the
    "paper" preset, if the model (and its torch twin) exist."""
    if not wanted("model"):
        return
    try:
        from tinyseg.models import HReNet
    except ImportError:
        print("tinyseg.models.HReNet not found: no model row")
        return
    import tinyseg.functional as F
    model = HReNet(preset="paper", init="he", seed=0).to("cuda").eval()
    x = np.random.default_rng(1).standard_normal((n, 1, HEIGHT, WIDTH)).astype(np.float32)
    labels = np.random.default_rng(2).integers(0, 3, (n, HEIGHT, WIDTH))
    x_ts, target_ts = ts.tensor(x, device="cuda"), ts.tensor(labels, device="cuda")

    def infer_ts():
        with ts.no_grad():
            model(x_ts)

    def train_ts():
        model.zero_grad()
        F.cross_entropy(model(x_ts), target_ts).backward()
    inference, training = {"tinyseg": infer_ts}, {"tinyseg": train_ts}
    try:
        from torch_twin import TorchHReNet
        twin = TorchHReNet.from_tinyseg(model, device="cuda").eval()
        x_th, target_th = torch.as_tensor(x, device="cuda"), torch.as_tensor(labels, device="cuda")

        def infer_th():
            with torch.no_grad():
                twin(x_th)

        def train_th():
            twin.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(twin(x_th), target_th).backward()
        inference["torch"], training["torch"] = infer_th, train_th
    except ImportError:
        print("benchmarks/torch_twin.py not found: the model rows have no torch column")
        twin = None
    times = timing.compare(inference, args.repeats, args.warmup, sync)
    record("HReNet paper inference", f"{n}x1x{HEIGHT}x{WIDTH}", None, None, times, what="forward")
    model.train()
    if twin is not None:
        twin.train()
    times = timing.compare(training, args.repeats, args.warmup, sync)
    record("HReNet paper train step", f"{n}x1x{HEIGHT}x{WIDTH}", None, None, times)


def _slug(name):
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def _format(row, peak_flops, peak_bandwidth):
    text = f"{row['op']:<28} {row['shape']:<28} tinyseg {row['tinyseg_ms']:9.3f} ms"
    if row["torch_ms"] is not None:
        text += f"  torch {row['torch_ms']:9.3f} ms  ratio {row['ratio']:6.2f}"
    if row["tinyseg_tflops"] is not None:
        text += f"  {row['tinyseg_tflops']:6.2f} TFLOP/s ({row['tinyseg_tflops'] * 1e12 / peak_flops:5.1%} of peak)"
    if row["tinyseg_gbs"] is not None:
        text += f"  {row['tinyseg_gbs']:7.1f} GB/s ({row['tinyseg_gbs'] * 1e9 / peak_bandwidth:5.1%} of peak)"
    return text


def markdown(payload):
    def number(v, digits):
        return "-" if v is None else f"{v:.{digits}f}"

    lines = [f"# tinyseg GPU kernels vs PyTorch/cuDNN, {payload['device']}, {payload['date']}", "",
             f"commit `{payload['commit']}`; batch {payload['batch']}, H-ReNet \"paper\" shapes at "
             f"{HEIGHT}x{WIDTH}; median of {payload['repeats']} alternating, device-synchronised runs after "
             f"{payload['warmup']} warm-up runs; float32, TF32 off in both engines. Versions: "
             + ", ".join(f"{k} {v}" for k, v in payload["versions"].items()) + ".", "",
             f"Measured peaks: **{payload['peak_tflops_fp32_gemm']:.1f} TFLOP/s** (float32 GEMM, cupy.matmul "
             f"8192^3), **{payload['peak_gbs_device_copy']:.0f} GB/s** (1 GiB device copy, read + write).", "",
             "| op | shape | pass | tinyseg ms | PyTorch ms | ratio | tinyseg TFLOP/s | PyTorch TFLOP/s "
             "| tinyseg GB/s | PyTorch GB/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in payload["rows"]:
        lines.append(f"| {r['op']} | {r['shape']} | {r['pass']} | {r['tinyseg_ms']:.3f} | {number(r['torch_ms'], 3)} | "
                     f"{number(r['ratio'], 2)} | {number(r['tinyseg_tflops'], 2)} | {number(r['torch_tflops'], 2)} | "
                     f"{number(r['tinyseg_gbs'], 1)} | {number(r['torch_gbs'], 1)} |")
    lines += ["", "ratio = tinyseg / PyTorch (below 1: tinyseg is faster). GB/s counts the least traffic "
              "the op needs (inputs read once, outputs written once), so it is comparable between engines."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
