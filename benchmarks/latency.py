"""Inference latency of H-ReNet: batch 1, float32, the median of ``--repeats`` forward
passes under no_grad after ``--warmup`` ones, the device synchronised around each.

    python benchmarks/latency.py [--device cuda] [--preset paper] [--size 400 500] [--repeats 20]

Writes <out>/latency-<preset>-<device>-<date>.json and .md.
"""
from __future__ import annotations

import argparse
import os
import statistics

import timing


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--preset", choices=("small", "paper"), default="paper")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="input (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = parser.parse_args()
    timing.set_threads(args.threads)
    import numpy as np

    import model_bench
    import tinyseg as ts

    model, _, images, labels = model_bench.build(np, ts, None, args.preset, 1, args.device, size=args.size,
                                                 twin=False)
    forward = model_bench.engine_steps(np, ts, None, model, None, images, labels, args.device)
    sync = {}
    if args.device == "cuda":
        import cupy
        sync["tinyseg"] = cupy.cuda.Device().synchronize
    seconds = timing.compare(forward["inference, one image"], args.repeats, args.warmup, sync)["tinyseg"]

    info = timing.facts(args.device, packages=("numpy",))
    ms = sorted(1000 * s for s in seconds)
    size = "x".join(map(str, images.shape[2:]))
    payload = {**info, "preset": args.preset, "input": f"1x1x{size}", "dtype": "float32",
               "repeats": args.repeats, "warmup": args.warmup, "median_ms": statistics.median(ms),
               "min_ms": ms[0], "max_ms": ms[-1], "times_ms": ms}
    md = [f"# H-ReNet {args.preset} inference latency, {args.device} ({info['device_name']}), {info['date']}", "",
          timing.describe(info), "", f"Batch 1, 1x{size}, float32, no_grad: median **{payload['median_ms']:.2f} ms** "
          f"of {args.repeats} synchronised forward passes after {args.warmup} warm-up passes "
          f"(min {ms[0]:.2f} ms, max {ms[-1]:.2f} ms)."]
    paths = timing.write_results(args.out, f"latency-{args.preset}-{args.device}-{info['date']}", payload,
                                 "\n".join(md) + "\n")
    print(md[-1])
    print("wrote", *paths)


if __name__ == "__main__":
    main()
