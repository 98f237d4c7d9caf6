"""Time one forward + backward pass of the paper-size H-ReNet on one 400x500 image.

    python examples/paper_preset_pass.py [--height 400 --width 500 --device cpu --repeat 1]

Prints the parameter count, seconds for the forward and the backward pass,
and memory: the peak of NumPy allocations during the pass (tracemalloc, which
NumPy reports its buffers to) and the process's peak resident set size.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinyseg as ts  # noqa: E402
import tinyseg.functional as F  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=400)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    model = ts.models.HReNet(n_classes=3, preset=args.preset).to(args.device)
    n_params = sum(p.size for p in model.parameters())
    rng = np.random.default_rng(0)
    # Batch norm in training mode needs two values per channel; the 7x7 conv6 map has plenty.
    image = ts.tensor(rng.standard_normal((args.batch_size, 1, args.height, args.width)).astype(np.float32),
                      device=args.device)
    target = ts.tensor(rng.integers(0, 3, (args.batch_size, args.height, args.width)), device=args.device)
    print(f"H-ReNet preset {args.preset!r}: {n_params / 1e6:.1f} M parameters, "
          f"input {args.batch_size}x1x{args.height}x{args.width}, device {args.device}")

    for run in range(args.repeat):
        model.zero_grad()
        tracemalloc.start()
        start = time.perf_counter()
        logits = model(image)
        loss = F.cross_entropy(logits, target)
        forward = time.perf_counter() - start
        loss.backward()
        total = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert logits.shape == (args.batch_size, 3, args.height, args.width), logits.shape
        print(f"run {run + 1}: forward {forward:.2f} s, backward {total - forward:.2f} s, "
              f"total {total:.2f} s; peak array memory {peak / 2**30:.2f} GiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # kilobytes on Linux
    print(f"peak resident set size of the process: {rss:.2f} GiB")


if __name__ == "__main__":
    main()
