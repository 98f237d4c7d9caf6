"""Helpers shared by the benchmarks: alternate engines, synchronise, take medians, and
record where and when a measurement was taken (``facts``) next to its results."""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
# Idle pools sleep: OpenMP passively, OpenBLAS after the shortest spin it allows (2^4 cycles).
IDLE_WAITS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}


def set_threads(n):
    """Pin BLAS/OpenMP/Numba thread counts; call before numpy or torch is imported.

    Idle worker threads must also sleep rather than spin: the engines run
    alternately, and one engine's spinning pool (OpenMP in PyTorch, OpenBLAS
    under NumPy) would otherwise steal the cores the other one is timed on.
    """
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)
    os.environ.update(IDLE_WAITS)


def protocol(tuned, threads):
    """How the engines ran, for a results file: with their defaults, or as ``set_threads``
    (and ``torch.set_num_threads``) tuned them."""
    if not tuned:
        return ("each engine with its **defaults** (the benchmark sets no environment variable; the "
                "machine's own BLAS settings, if any, are named above), one engine per process")
    settings = [f"{var}={threads}" for var in THREAD_VARIABLES] + [f"{k}={v}" for k, v in IDLE_WAITS.items()]
    return f"**tuned**: {', '.join(settings)} set for both engines, torch.set_num_threads({threads})"


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
    """The tinyseg commit being measured: $TINYSEG_COMMIT, else ``git rev-parse HEAD`` in a
    checkout (with "+changes" when tracked files differ from it, so a result never names a commit
    whose code it did not run), else tinyseg/_commit.txt (a copy of the tree without .git),
    else "unknown"."""
    if os.environ.get("TINYSEG_COMMIT"):
        return os.environ["TINYSEG_COMMIT"]
    if (ROOT / ".git").exists():
        try:
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
            changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "tinyseg", "benchmarks",
                                      "cuda", "examples"], cwd=ROOT, capture_output=True).returncode == 1
            return head + ("+changes" if changed else "")
        except (OSError, subprocess.CalledProcessError):
            pass
    stamp = ROOT / "tinyseg" / "_commit.txt"
    if stamp.is_file() and stamp.read_text().strip():
        return stamp.read_text().strip()
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


def gpu_facts():
    """Name, memory, compute capability, driver and CUDA runtime of CuPy's current device."""
    import cupy
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(cupy.cuda.Device().id)
    info = {"name": props["name"].decode(), "memory_gib": props.get("totalGlobalMem", 0) / 2 ** 30 or None,
            "compute_capability": f"{props['major']}.{props['minor']}" if "major" in props else None}
    for key, query in (("driver_cuda_version", "driverGetVersion"), ("cuda_runtime", "runtimeGetVersion")):
        try:
            version = getattr(runtime, query)()             # 13000 -> "13.0"
            info[key] = f"{version // 1000}.{version % 1000 // 10}"
        except Exception:                                    # not every CuPy build (or stand-in) has it
            info[key] = None
    return info


def versions(*distributions):
    """Installed version of each distribution (None where it is not installed)."""
    found = {"python": platform.python_version()}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def facts(device="cpu", packages=("numpy", "torch")):
    """Where and when a benchmark runs: date, commit, machine, thread settings, load, versions.

    Call it after ``set_threads``; every results file carries it (JSON) and ``describe(facts)``
    (Markdown)."""
    info = {"date": today(), "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "commit": git_commit(), "device": device,
            "device_name": gpu_facts()["name"] if device == "cuda" else cpu_name(),
            "cpu": cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "thread_settings": {var: os.environ.get(var) for var in THREAD_VARIABLES},
            "load_average": os.getloadavg(), "versions": versions(*packages),
            "blas_environment": {var: value for var, value in sorted(os.environ.items())
                                 if var.startswith(("OPENBLAS_", "MKL_", "GOTO"))},
            "blas": blas_kernels()}
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        info["numba_threads"] = numba.get_num_threads()
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:      # no parallel loop has run in this process yet
            info["numba_threading_layer"] = f"{numba.config.THREADING_LAYER} (chosen at the first parallel loop)"
    return info


def blas_kernels():
    """"library kernels" of each BLAS loaded in this process (threadpoolctl's view), e.g.
    "openblas Haswell": OpenBLAS picks its kernels by CPU at load time, unless the environment
    pins them (OPENBLAS_CORETYPE)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [f"{info.get('internal_api')} {info.get('architecture', '')}".strip() for info in threadpool_info()
            if info.get("user_api") == "blas"]


def describe(info):
    """One Markdown sentence of ``facts``: commit, device, cores and threads, platform, versions,
    the BLAS kernels and any BLAS setting inherited from the environment."""
    threads = info.get("numba_threads") or info["thread_settings"].get("OMP_NUM_THREADS") or "default"
    blas = ", ".join(info.get("blas") or []) or "none loaded"
    inherited = ", ".join(f"{k}={v}" for k, v in (info.get("blas_environment") or {}).items())
    return (f"Commit `{info['commit']}`; {info['device_name']}; {info['cpu_count']} CPU cores, {threads} threads; "
            f"{info['platform']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
            + (f"; Numba threading layer: {info['numba_threading_layer']}" if info.get("numba_threading_layer") else "")
            + f"; BLAS kernels: {blas}"
            + (f" (the machine's environment sets {inherited})" if inherited else "")
            + f"; load average {info['load_average'][0]:.2f} at the start.")


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
