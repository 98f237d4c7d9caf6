"""A training run killed with SIGKILL anywhere, inside a checkpoint write included, and then
resumed ends with the same checkpoints and metrics as a run that was never interrupted."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tinyseg.app import read_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--n-synthetic", "10", "--size", "32", "48", "--batch-size", "3", "--epochs", "3", "--quiet",
        "--lr", "5e-3"]

# Runs the training CLI; with KILL_AT_WRITE=k the process kills itself (SIGKILL) in the middle
# of its k-th atomic file write, after half of the temporary file is on disk.
DRIVER = r"""
import os, signal, sys
import tinyseg.app
from tinyseg.data.atomic import atomic_write
kill_at, count = int(os.environ.get("KILL_AT_WRITE", "0")), [0]
def dying_write(path, write):
    count[0] += 1
    if count[0] != kill_at:
        return atomic_write(path, write)
    def half_then_die(f):
        write(f)
        f.flush()
        f.truncate(f.tell() // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return atomic_write(path, half_then_die)
for module in ("tinyseg.app.checkpoint", "tinyseg.app.evaluate"):   # every writer of a run's files
    sys.modules[module].atomic_write = dying_write
from tinyseg.app import main
sys.exit(main(sys.argv[1:]))
"""


def run(out, *extra, kill_at=0, kill_after=None):
    env = dict(os.environ, KILL_AT_WRITE=str(kill_at), PYTHONPATH=ROOT)
    process = subprocess.Popen([sys.executable, "-c", DRIVER, *ARGS, "--out", str(out), *extra],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        time.sleep(kill_after)
        process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=300)
    return process.returncode, err


def finish(out):
    """Resume until the run completes (start over when it saved nothing to resume from)."""
    for _ in range(5):
        code, err = run(out, "--resume" if (out / "last.npz").exists() else "--overwrite")
        if code == 0:
            return
    raise AssertionError(f"the run did not finish: {err}")


def outcome(out):
    last, best = read_checkpoint(out / "last.npz"), read_checkpoint(out / "best.npz")
    metrics = json.loads((out / "metrics.json").read_text())
    return last, best, {k: metrics[k] for k in ("dice", "jaccard", "pixel_accuracy", "loss", "epochs")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    code, err = run(out)
    assert code == 0, err
    return outcome(out)


def assert_same(actual, expected):
    for a, b in zip(actual[:2], expected[:2]):
        assert a.metadata["epoch"] == b.metadata["epoch"]
        for name, value in b.model_state.items():
            np.testing.assert_array_equal(a.model_state[name], value, err_msg=name)
    assert actual[2] == expected[2]


@pytest.mark.parametrize("kill_at", [1, 2, 3, 5, 6])   # best, last (epoch 1), last (2), metrics, history
def test_killed_inside_a_checkpoint_write(tmp_path, uninterrupted, kill_at):
    out = tmp_path / "run"
    code, _ = run(out, kill_at=kill_at)
    assert code == -signal.SIGKILL
    assert list(out.glob(".*.tmp")), "the kill left a half-written temporary file"
    for name in ("last.npz", "best.npz"):
        if (out / name).exists():
            read_checkpoint(out / name)                 # whatever is there is whole
    finish(out)
    assert not list(out.glob(".*.tmp"))
    assert_same(outcome(out), uninterrupted)


@pytest.mark.parametrize("seconds", [2.5, 4.0])
def test_killed_at_a_random_moment(tmp_path, uninterrupted, seconds):
    out = tmp_path / "run"
    rng = np.random.default_rng(int(seconds * 10))
    run(out, kill_after=seconds * rng.uniform(0.8, 1.2))
    finish(out)
    assert_same(outcome(out), uninterrupted)
