"""Timing helpers shared by the benchmarks: alternate engines, synchronise, take medians."""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import time


def set_threads(n):
    """Pin BLAS/OpenMP/Numba thread counts; call before numpy or torch is imported.

    Idle worker threads must also sleep rather than spin: the engines run
    alternately, and one engine's spinning pool (OpenMP in PyTorch, OpenBLAS
    under NumPy) would otherwise steal the cores the other one is timed on.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"   # the shortest spin OpenBLAS allows (2^4 cycles)


def compare(runs, repeats=20, warmup=3, sync=None):
    """Time each callable in ``runs`` (name -> fn) ``repeats`` times, alternating between them.

    Alternating spreads any drift of the machine (frequency, other load) evenly
    over the engines. ``sync`` (name -> fn) waits for a device to finish.
    Returns name -> list of seconds.
    """
    sync = sync or {}
    for name, fn in runs.items():
        for _ in range(warmup):
            fn()
        sync.get(name, lambda: None)()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            wait = sync.get(name, lambda: None)
            wait()
            start = time.perf_counter()
            fn()
            wait()
            times[name].append(time.perf_counter() - start)
    return times


def median_ms(seconds):
    return 1000 * statistics.median(seconds)


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return "unknown"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_results(directory, stem, payload, markdown):
    """Write ``<stem>.json`` and ``<stem>.md`` under ``directory``; return their paths."""
    os.makedirs(directory, exist_ok=True)
    json_path = os.path.join(directory, stem + ".json")
    md_path = os.path.join(directory, stem + ".md")
    with open(json_path, "w") as f:
        json.dump(payload, f, indent=2)
    with open(md_path, "w") as f:
        f.write(markdown)
    return json_path, md_path


def today():
    return datetime.date.today().isoformat()
