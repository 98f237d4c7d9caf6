"""Everything a borrowed GPU machine should measure, in one command that brings its results back.

    python3 benchmarks/gpu_check.py --out DIR [--commit SHA] [--dry-run] [--budget STEP=SECONDS ...]

Steps, in this order, each a subprocess with its own time budget:

    env        env.json, nvidia-smi.txt: GPU, driver, CUDA runtime, library versions, commit
    tests      gpu-tests.xml (JUnit), gpu-tests.txt: tests/gpu and tests/test_cuda_sources.py
    kernels    kernels/: benchmarks/kernels.py, tinyseg's kernels against PyTorch/cuDNN
    run-small  run-small/: benchmarks/run.py --device cuda, op rows and the small preset's model rows
    run-paper  run-paper/: the paper preset's model rows, with peak memory
    latency    latency-*.json/.md: paper preset, 400x500, batch 1, float32 inference
    train      train/: examples/train_jsrt.py --device cuda, 2 epochs on synthetic data (no checkpoints kept)

Each step's console output goes to <step>.log in DIR (gpu-tests.txt for the
tests). A step that runs past its budget is interrupted (SIGINT, so Python
prints where it was and pytest still writes its report), then killed with its
whole process group; a crash or a hang loses nothing written before it, and the
next step runs. summary.md and steps.json are rewritten after every step: one
line per step with its status (ok, failed rc N, failed (no results), timed out,
skipped), wall time and key numbers. DIR must be new or empty. Nothing is
installed: subprocesses find tinyseg through PYTHONPATH (the repository root)
or an installed copy.

``--dry-run`` runs the same steps on the CPU emulation of CUDA (tests/cuda_emulator,
needs g++) at tiny sizes, to prove on a machine without a GPU that the command works
end to end and writes every file. kernels.py is only asked for ``--help`` there: it
compares every row with CUDA PyTorch at the paper's 400x500 and has no smaller size.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import timing

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Seconds per step. On an H200 the tests took 117 s and the paper preset's rows with their six
# peak-memory probes (a fresh process each) more than 90 s; together the steps fit in the
# 10 minutes one command may run on a borrowed GPU machine.
BUDGETS = {"env": 20, "tests": 150, "kernels": 90, "run-small": 60, "run-paper": 180, "latency": 30, "train": 45}
GRACE = 5          # seconds between SIGINT and SIGKILL for a step past its budget
KERNELS_SKIP = "emulator: kernels.py needs CUDA PyTorch; --help checked"
LOGS = {"tests": "gpu-tests.txt"}     # console output of a step; <step>.log for the others


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="results folder (new or empty)")
    parser.add_argument("--commit", help="tinyseg commit measured (default: git, else tinyseg/_commit.txt)")
    parser.add_argument("--dry-run", action="store_true", help="the CUDA emulator at tiny sizes, no GPU needed")
    parser.add_argument("--budget", action="append", default=[], metavar="STEP=SECONDS",
                        help=f"a step's time budget, 0 to skip it (defaults: "
                             f"{', '.join(f'{k}={v}' for k, v in BUDGETS.items())})")
    parser.add_argument("--total", type=float, default=570, help="seconds for all steps together")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments for the tests step, one string")
    parser.add_argument("--facts", type=Path, help=argparse.SUPPRESS)     # the env step's own entry point
    args = parser.parse_args(argv)
    args.budgets = dict(BUDGETS)
    for item in args.budget:
        step, _, seconds = item.partition("=")
        if step not in BUDGETS or not seconds:
            parser.error(f"--budget {item!r}: expected STEP=SECONDS with STEP one of {', '.join(BUDGETS)}")
        args.budgets[step] = float(seconds)
    return args


# ---------------------------------------------------------------- the steps

def steps(args):
    """(name, command, extra environment, skip note when it succeeds) per step, in order."""
    out, dry = args.out, args.dry_run

    def script(path, *arguments):
        runner = [sys.executable] + ([str(HERE / "emulated.py")] if dry else [])
        return runner + [str(path)] + [str(a) for a in arguments]

    def sizes(gpu, emulator):
        """A step's size arguments: a dry run's keep the emulator to seconds (argparse takes the
        last of repeated options, so these override the ones before them)."""
        return [str(a) for a in (emulator if dry else gpu)]

    tests = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu",
             "tests/test_cuda_sources.py", "--junitxml", str(out / "gpu-tests.xml")] + shlex.split(args.pytest_args)
    kernels = ([sys.executable, str(HERE / "kernels.py"), "--help"] if dry else
               script(HERE / "kernels.py", "--repeats", 10, "--warmup", 2, "--out", out / "kernels"))
    tiny = ["--tiny", "--size", 32, 32, "--repeats", 1, "--model-repeats", 1, "--batch-size", 2, "--no-peak-memory"]
    run_small = script(HERE / "run.py", "--device", "cuda", "--preset", "small", "--repeats", 10,
                       "--model-repeats", 5, "--no-peak-memory", "--out", out / "run-small", *sizes([], tiny))
    # The emulator cannot build the paper preset (167 M parameters) in seconds: the small one stands in.
    run_paper = script(HERE / "run.py", "--device", "cuda", "--only", "model", "--batch-size", 2, "--repeats", 3,
                       "--out", out / "run-paper", *sizes(["--preset", "paper"], ["--preset", "small"] + tiny))
    latency = script(HERE / "latency.py", "--device", "cuda", "--out", out,
                     *sizes(["--preset", "paper", "--size", 400, 500, "--repeats", 20, "--warmup", 3],
                            ["--preset", "small", "--size", 32, 32, "--repeats", 2, "--warmup", 1]))
    train = script(ROOT / "examples" / "train_jsrt.py", "--device", "cuda", "--epochs", 2, "--quiet",
                   "--out", out / "train", *sizes(["--n-synthetic", 96, "--batch-size", 8],
                                                  ["--n-synthetic", 12, "--size", 32, 32, "--batch-size", 4]))
    emulator = {"TINYSEG_CUDA_EMULATOR": "1"} if dry else {}
    return [("env", script(Path(__file__), "--out", out, "--facts", out / "env.json"), {}, None),
            ("tests", tests, emulator, None),
            ("kernels", kernels, {}, KERNELS_SKIP if dry else None),
            ("run-small", run_small, {}, None),
            ("run-paper", run_paper, {}, None),
            ("latency", latency, {}, None),
            ("train", train, {}, None)]


def run_step(command, env, seconds, log):
    """Run ``command`` in its own process group for at most ``seconds``; return (rc or None, wall s)."""
    start = time.monotonic()
    with open(log, "w") as f:
        f.write("$ " + shlex.join(command) + "\n")
        f.flush()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if process.poll() is None:              # past its budget, or this script was interrupted
                _stop(process)
    return rc, time.monotonic() - start


def _stop(process):
    for sig, wait in ((signal.SIGINT, GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


# ---------------------------------------------------------------- key numbers per step

def _load(path):
    return json.loads(Path(path).read_text())


def _newest(folder, pattern):
    found = sorted(Path(folder).glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no {pattern} in {folder}")
    return _load(found[-1])


def _env_numbers(out):
    env = _load(out / "env.json")
    gpu, v = env.get("gpu", {}), env["versions"]
    return (f"{gpu.get('name')}, driver {env.get('driver') or '-'}, CUDA runtime {gpu.get('cuda_runtime')}, "
            f"CuPy {env['cupy']}, torch {v.get('torch')} (CUDA {env['torch_cuda']}), numpy {v.get('numpy')}, "
            f"numba {v.get('numba')}, Python {v['python']}, commit {env['commit'][:12]}")


def _test_numbers(out):
    suite = ElementTree.parse(out / "gpu-tests.xml").getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    return f"{passed} passed, {n['failures']} failed, {n['errors']} errors, {n['skipped']} skipped"


def _ratio_numbers(rows):
    """Geometric mean of tinyseg / PyTorch over the rows that have both, and the count."""
    ratios = [r["ratio"] for r in rows if r.get("ratio")]
    if not ratios:
        return f"{len(rows)} rows, tinyseg only"
    return (f"{len(rows)} rows, tinyseg/PyTorch geometric mean {math.exp(sum(map(math.log, ratios)) / len(ratios)):.2f} "
            f"(range {min(ratios):.2f}-{max(ratios):.2f})")


def _kernel_numbers(out):
    result = _newest(out / "kernels", "kernels-*.json")
    model = [r for r in result["rows"] if r["op"].startswith("HReNet")]
    text = f"{_ratio_numbers(result['rows'])}; peak {result['peak_tflops_fp32_gemm']:.1f} TFLOP/s"
    return text + "".join(f"; {r['op']} {_model_ms(r)}" for r in model)


def _model_ms(row):
    text = f"tinyseg {row['tinyseg_ms']:.1f} ms"
    return text + (f" vs PyTorch {row['torch_ms']:.1f} ms" if row.get("torch_ms") else "")


def _run_numbers(folder):
    def numbers(out):
        result = _newest(out / folder, "cuda-*.json")
        model = [r for r in result["rows"] if "images_per_s" in r]
        text = _ratio_numbers(result["rows"])
        for r in model:
            text += f"; {r['op']} {_model_ms(r)}"
            if "peak_mb" in r:
                text += f", peak {r['peak_mb']['tinyseg']:.0f} MB"
        return text
    return numbers


def _latency_numbers(out):
    result = _newest(out, "latency-*.json")
    return f"{result['preset']} {result['input']}: median {result['median_ms']:.2f} ms of {result['repeats']}"


def _train_numbers(out):
    metrics = _load(out / "train" / "metrics.json")
    dice = ", ".join(f"{k} {v:.3f}" for k, v in metrics["dice"].items())
    return f"test Dice {dice} after {metrics['epochs']} epochs ({metrics['seconds']:.0f} s, {metrics['size']})"


NUMBERS = {"env": _env_numbers, "tests": _test_numbers, "kernels": _kernel_numbers,
           "run-small": _run_numbers("run-small"), "run-paper": _run_numbers("run-paper"),
           "latency": _latency_numbers, "train": _train_numbers}


# ---------------------------------------------------------------- summary

def write_summary(out, args, commit, records, total_seconds):
    (out / "steps.json").write_text(json.dumps({"commit": commit, "dry_run": args.dry_run, "steps": records},
                                               indent=2))
    lines = [f"# GPU check{' (dry run on the CUDA emulator)' if args.dry_run else ''}, {timing.today()}", "",
             f"Commit `{commit}`; {len(records)} steps in {total_seconds:.0f} s.", "",
             "| step | status | wall s | budget s | key numbers |", "|---|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['status']} | {r['seconds']:.1f} | {r['budget']:.0f} | {r['numbers']} |"
              for r in records]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    args = parse_args(argv)
    if args.facts:
        args.facts.write_text(json.dumps(environment(args.out), indent=2))
        return 0
    # Steps must be interruptible even when this script was started with SIGINT ignored (as `cmd &`
    # does): a handled signal is reset to its default in a child, an ignored one stays ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} is not empty; give a new folder", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    args.out = out
    commit = args.commit or timing.git_commit()
    env = dict(os.environ, TINYSEG_COMMIT=commit, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    start, records = time.monotonic(), []
    for name, command, extra, skip_note in steps(args):
        left = args.total - (time.monotonic() - start)
        budget = min(args.budgets[name], left - GRACE)
        log = LOGS.get(name, f"{name}.log")
        record = {"step": name, "budget": max(budget, 0), "command": shlex.join(command), "log": log}
        if budget <= 0 or left - GRACE < 5:
            reason = "budget 0" if args.budgets[name] <= 0 else "no time left of --total"
            record.update(status=f"skipped ({reason})", seconds=0.0, numbers="-")
        else:
            rc, record["seconds"] = run_step(command, {**env, **extra}, budget, out / log)
            for checkpoint in (out / "train").glob("*.npz") if name == "train" else ():
                checkpoint.unlink()                 # weights are not results, and too big to commit
            record["rc"] = rc
            record["status"] = ("timed out" if rc is None else f"failed rc {rc}" if rc else
                                f"skipped ({skip_note})" if skip_note else "ok")
            try:
                record["numbers"] = "-" if skip_note else NUMBERS[name](out)
            except Exception as err:        # a step that died early leaves no results to read
                record["numbers"] = f"no results ({type(err).__name__}: {err})"
                if record["status"] == "ok":
                    record["status"] = "failed (no results)"
        records.append(record)
        write_summary(out, args, commit, records, time.monotonic() - start)
        print(f"{name:10s} {record['status']:12s} {record['seconds']:6.1f} s  {record['numbers']}", flush=True)
    return 0 if all(r["status"] == "ok" or r["status"].startswith("skipped") for r in records) else 1


# ---------------------------------------------------------------- the env step

def environment(out):
    """Facts of this machine and its GPU as seen by CuPy and PyTorch, plus nvidia-smi's report."""
    info = timing.facts("cuda", packages=("numpy", "scipy", "numba", "pillow", "torch"))
    import cupy
    info["gpu"] = timing.gpu_facts()
    info["cupy"] = getattr(cupy, "__version__", "?") if cupy.__name__ == "cupy" else f"stand-in {cupy.__name__}"
    try:
        import torch
        info["torch_cuda"] = torch.version.cuda
        info["torch_sees_gpu"] = torch.cuda.is_available()
        info["cudnn"] = torch.backends.cudnn.version() if info["torch_sees_gpu"] else None
    except ImportError:
        info["torch_cuda"] = info["torch_sees_gpu"] = None
    try:
        report = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=10).stdout
        query = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")[0].strip()
        info["driver"] = query or None
    except (OSError, subprocess.TimeoutExpired) as err:
        report, info["driver"] = f"nvidia-smi not run: {err}\n", None
    (out / "nvidia-smi.txt").write_text(report)
    return info


if __name__ == "__main__":
    sys.exit(main())
