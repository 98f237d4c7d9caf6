"""benchmarks/gpu_check.py --dry-run runs every step on the CUDA emulator and writes every result file."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("env", "tests", "kernels", "run-small", "run-paper", "latency", "train")


@pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA emulator needs g++")
def test_dry_run_writes_every_result_file(tmp_path):
    pytest.importorskip("torch")          # the benchmarks compare with PyTorch
    out = tmp_path / "gpu-check"
    budgets = ["--budget", "tests=120", "--budget", "run-small=60", "--budget", "run-paper=40",
               "--budget", "latency=30", "--budget", "train=40"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out),
                           "--commit", "0123abc", *budgets], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr

    expected = ["env.json", "nvidia-smi.txt", "gpu-tests.xml", "gpu-tests.txt", "kernels.log", "run-small.log",
                "run-paper.log", "latency.log", "train.log", "train/metrics.json", "summary.md", "steps.json"]
    for name in expected:
        assert (out / name).is_file(), name
    for pattern in ("run-small/cuda-*.json", "run-small/cuda-*.md", "run-paper/cuda-*.json", "latency-*.json",
                    "latency-*.md"):
        assert list(out.glob(pattern)), pattern
    assert not list(out.glob("train/*.npz"))

    assert json.loads((out / "env.json").read_text())["commit"] == "0123abc"
    summary = (out / "summary.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in summary.splitlines() if line.startswith("| ")}
    for step in STEPS:
        assert step in rows, summary
    statuses = {r["step"]: r["status"] for r in json.loads((out / "steps.json").read_text())["steps"]}
    assert statuses["kernels"].startswith("skipped (emulator")
    assert all(statuses[s] == "ok" for s in STEPS if s != "kernels"), statuses


def test_refuses_a_folder_that_holds_results(tmp_path):
    (tmp_path / "summary.md").write_text("earlier results\n")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not empty" in done.stderr
    assert (tmp_path / "summary.md").read_text() == "earlier results\n"


def test_a_step_past_its_budget_is_stopped_with_its_children(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check
    monkeypatch.setattr(gpu_check, "GRACE", 1)
    # ignores SIGINT, as a hung step might, and leaves a grandchild running
    stubborn = ("import signal, subprocess, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "print(subprocess.Popen(['sleep', '60']).pid, flush=True); time.sleep(60)")
    log = tmp_path / "step.log"
    rc, seconds = gpu_check.run_step([sys.executable, "-c", stubborn], None, 1, log)
    assert rc is None and seconds < 15
    grandchild = int(log.read_text().splitlines()[-1])
    status = Path(f"/proc/{grandchild}/status")
    deadline = time.monotonic() + 10          # SIGKILL is delivered, not instant: give it time
    while status.exists() and "zombie" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not status.exists() or "zombie" in status.read_text()
