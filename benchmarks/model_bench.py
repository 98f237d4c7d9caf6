"""Whole-model rows of benchmarks/run.py: H-ReNet in tinyseg and its PyTorch twin, same weights.

Rows: forward (eval, no graph), forward + backward + SGD step (training mode,
batch ``--batch-size``), inference on one image, and one training epoch with Adam
(``epoch_runner``). Peak memory per engine is measured in a fresh subprocess (``--probe``)
so neither engine's allocator state leaks into the other's number, after a
warm-up step on a tiny input: on the host the growth of the peak resident set
during the step over the RSS before it,
on the GPU the CuPy pool / torch allocator peak over what the set-up held.
"""
from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys

import timing


def build(np, ts, torch, preset, batch, device, seed=0, size=None, twin=True):
    """The tinyseg model, its PyTorch twin (None with ``twin=False``), images and labels
    at ``size`` (default: the preset's input size)."""
    from tinyseg.models.hrenet import PRESETS

    model = ts.models.HReNet(preset=preset, seed=seed, init="he").to(device)
    if twin:
        from torch_twin import TorchHReNet
        twin = TorchHReNet.from_tinyseg(model, device=device)
    else:
        twin = None
    height, width = size or PRESETS[preset]["input_size"]
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, 1, height, width)).astype(np.float32)
    labels = rng.integers(0, 3, (batch, height, width))
    return model, twin, images, labels


def engine_steps(np, ts, torch, model, twin, images, labels, device):
    """name -> {"tinyseg": fn, "torch": fn} for the three model rows (no "torch" without a twin)."""
    import tinyseg.functional as F

    x_ts, y_ts = ts.tensor(images, device=device), ts.tensor(labels, device=device)
    one_ts = ts.tensor(images[:1], device=device)
    # A tiny learning rate keeps the weights (and so the work) the same across repeats.
    sgd_ts = ts.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9)

    def ts_forward(x):
        model.eval()
        with ts.no_grad():
            return model(x)

    def th_forward(x):
        twin.eval()
        with torch.no_grad():
            return twin(x)

    def ts_train():
        model.train()
        sgd_ts.zero_grad()
        F.cross_entropy(model(x_ts), y_ts).backward()
        sgd_ts.step()

    steps = {"model forward": {"tinyseg": lambda: ts_forward(x_ts)},
             "model forward+backward+SGD": {"tinyseg": ts_train},
             "inference, one image": {"tinyseg": lambda: ts_forward(one_ts)}}
    if twin is None:
        return steps
    import torch.nn.functional as tf
    tdev = torch.device(device)
    x_th, y_th = torch.as_tensor(images, device=tdev), torch.as_tensor(labels, device=tdev)
    one_th = torch.as_tensor(images[:1], device=tdev)
    sgd_th = torch.optim.SGD(twin.parameters(), lr=1e-9, momentum=0.9)

    def th_train():
        twin.train()
        sgd_th.zero_grad()
        tf.cross_entropy(twin(x_th), y_th).backward()
        sgd_th.step()

    steps["model forward"]["torch"] = lambda: th_forward(x_th)
    steps["model forward+backward+SGD"]["torch"] = th_train
    steps["inference, one image"]["torch"] = lambda: th_forward(one_th)
    return steps


def epoch_runner(np, ts, torch, model, twin, device, n_images, batch, size, engine, seed=0):
    """A function that trains ``engine``'s model (tinyseg's, or its twin) for one epoch of
    ``n_images`` random images of ``size`` in batches of ``batch`` with Adam, as users train."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, 1, *size)).astype(np.float32)
    labels = rng.integers(0, 3, (n_images, *size))
    starts = range(0, n_images, batch)
    if engine == "tinyseg":
        import tinyseg.functional as F
        opt = ts.optim.Adam(model.parameters(), lr=1e-9)

        def epoch():
            model.train()
            for i in starts:
                opt.zero_grad()
                F.cross_entropy(model(ts.tensor(images[i:i + batch], device=device)),
                                ts.tensor(labels[i:i + batch], device=device)).backward()
                opt.step()
        return epoch
    import torch.nn.functional as tf
    tdev = torch.device(device)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-9)

    def epoch():
        twin.train()
        for i in starts:
            opt.zero_grad()
            tf.cross_entropy(twin(torch.as_tensor(images[i:i + batch], device=tdev)),
                             torch.as_tensor(labels[i:i + batch], device=tdev)).backward()
            opt.step()
    return epoch


def peak_memory_mb(engine, row, preset, batch, device, threads=None, size=None):
    """Run one step of ``row`` for ``engine`` in a fresh process; return its peak memory in MB.
    ``threads``: the thread count of a tuned run (``timing.set_threads``); None leaves each
    engine's defaults."""
    cmd = [sys.executable, os.path.abspath(__file__), "--probe", engine, row, preset, str(batch), device,
           str(threads or "default"), "x".join(map(str, size or ()))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mb"]


def _probe(engine, row, preset, batch, device, threads, size=""):
    if threads != "default":
        timing.set_threads(int(threads))
    import numpy as np
    import torch

    import tinyseg as ts
    if threads != "default":
        torch.set_num_threads(int(threads))
    size = tuple(int(side) for side in size.split("x")) if size else None
    model, twin, images, labels = build(np, ts, torch, preset, int(batch), device, size=size)
    # Warm up on a 1x1x32x32 input: JIT compilation (Numba loads LLVM, tens of MB) and library
    # set-up belong to start-up, not to a step, and so small an input leaves the allocators
    # holding little that the measured step could reuse unseen.
    tiny = engine_steps(np, ts, torch, model, twin, images[:1, :, :32, :32], labels[:1, :32, :32], device)
    tiny[row][engine]()
    del tiny
    gc.collect()
    steps = engine_steps(np, ts, torch, model, twin, images, labels, device)
    # The twin only exists to be timed; free the other engine's weights before measuring.
    if device == "cuda":
        import cupy
        pool = cupy.get_default_memory_pool()
        if engine == "tinyseg":
            base = pool.used_bytes()
            steps[row][engine]()
            cupy.cuda.Device().synchronize()
            peak = pool.total_bytes() - base
        else:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            steps[row][engine]()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
    else:
        base = _reset_peak_rss()
        steps[row][engine]()
        peak = _status_bytes("VmHWM") - base
    print(json.dumps({"peak_mb": peak / 2 ** 20}))


def _status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss():
    """Reset the kernel's peak-RSS mark (Linux: write 5 to clear_refs); return the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_bytes("VmRSS")
    except OSError:   # not Linux: fall back to the lifetime peak, an upper bound of the step's growth
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--probe":
    _probe(*sys.argv[2:])
