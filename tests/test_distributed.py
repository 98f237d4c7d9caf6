"""Data-parallel training (tinyseg.app.distributed) on 2 CPU ranks under mpiexec.

Each test launches ``mpiexec -n 2 python tests/mpi_driver.py MODE ...`` and compares what
the ranks wrote with a single-process run. They skip where mpi4py or mpiexec is missing
(``pip install -e ".[mpi]"`` brings both).
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from tinyseg.app import TrainConfig, main, read_checkpoint, train
from tinyseg.app import distributed

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mpi_driver  # noqa: E402


def find_mpiexec():
    beside_python = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside_python if os.path.isfile(beside_python) else shutil.which("mpiexec")


try:
    import mpi4py  # noqa: F401
    MPIEXEC = find_mpiexec()
except ImportError:
    MPIEXEC = None
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="needs mpi4py and mpiexec (pip install -e \".[mpi]\")")

# one thread per rank: two ranks share the two cores of a CI machine
ENV = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def mpirun(args, ranks=2, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCH_SIZE_VARIABLES}
    env.update(ENV, PYTHONPATH=os.path.dirname(HERE))
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def drive(mode, out, ranks=2, timeout=120, **changes):
    return mpirun([os.path.join(HERE, "mpi_driver.py"), mode, str(out), json.dumps(changes)], ranks, timeout)


def single_process(out, **changes):
    train(TrainConfig(**mpi_driver.settings(str(out), changes)))


def writes(out):
    return [tuple(json.loads(line)) for path in glob.glob(f"{out}-writes/*.jsonl") for line in open(path)]


def assert_same_run(a, b, rtol=1e-5, atol=2e-6):
    """Same loss curve, final weights, optimizer state and scores, to float32 tolerance."""
    history_a, history_b = (json.load(open(os.path.join(o, "history.json"))) for o in (a, b))
    assert len(history_a) == len(history_b)
    for key in ("train_loss", "heldout_loss"):
        np.testing.assert_allclose([h[key] for h in history_a], [h[key] for h in history_b], rtol=rtol)
    last_a, last_b = read_checkpoint(os.path.join(a, "last.npz")), read_checkpoint(os.path.join(b, "last.npz"))
    for name in last_a.model_state:
        np.testing.assert_allclose(last_a.model_state[name], last_b.model_state[name], rtol=rtol, atol=atol,
                                   err_msg=name)
    metrics_a, metrics_b = (json.load(open(os.path.join(o, "metrics.json"))) for o in (a, b))
    for key in ("dice", "jaccard"):
        for name in metrics_a[key]:
            assert metrics_a[key][name] == pytest.approx(metrics_b[key][name], abs=1e-6), (key, name)
    assert metrics_a["pixel_accuracy"] == pytest.approx(metrics_b["pixel_accuracy"], abs=1e-6)
    assert metrics_a["loss"] == pytest.approx(metrics_b["loss"], rel=rtol)


@needs_mpi
def test_two_ranks_train_the_model_of_one_process_and_only_rank_0_writes(tmp_path):
    # 14 synthetic images: 10 train in batches of 4, 4, 2; a global batch of 3 leaves rank 0
    # one image and rank 1 two, and the last batch (1 image) a rank without any
    for batch_size in (4, 3):
        one, two = tmp_path / f"one-{batch_size}", tmp_path / f"two-{batch_size}"
        single_process(one, batch_size=batch_size)
        result = drive("train", two, batch_size=batch_size)
        assert result.returncode == 0, result.stderr[-3000:]
        assert_same_run(one, two)
        logged = writes(two)
        assert {rank for rank, _, _ in logged} == {0}
        paths = [os.path.basename(path) for _, name, path in logged if name == "checkpoint"]
        assert paths.count("last.npz") == 2 and [name for _, name, _ in logged].count("results") == 1


@needs_mpi
def test_resume_on_two_ranks_and_on_another_number_of_ranks(tmp_path):
    straight, resumed, other = tmp_path / "straight", tmp_path / "resumed", tmp_path / "other"
    assert drive("train", straight, epochs=3).returncode == 0
    assert drive("train", resumed, epochs=2).returncode == 0
    shutil.copytree(resumed, other)
    result = drive("train", resumed, epochs=3, resume=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(straight, resumed, rtol=0, atol=0)            # the same collectives: bit for bit
    train(TrainConfig(out=str(other), epochs=3, resume=True, progress=False))   # one process: global batch kept
    assert_same_run(straight, other)


@needs_mpi
def test_bucketed_all_reduce_equals_per_parameter_sums_and_evaluation_splits(tmp_path):
    result = drive("reduce", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        facts = json.load(open(tmp_path / f"reduce-{rank}.json"))
        assert 1 < facts["buckets"] < facts["params"]
        assert facts["worst"] < 1e-6
        assert facts["started_during_backward"] >= 1              # overlap: not all at the end
        assert facts["same_predictions"]
        assert facts["loss"][0] == pytest.approx(facts["loss"][1], rel=1e-6)
        np.testing.assert_allclose(*facts["dice"], atol=1e-12)


@needs_mpi
def test_per_rank_batchnorm_keeps_the_ranks_identical(tmp_path):
    # a global batch of 3: the epoch's last batch (1 image) leaves rank 0 without one
    result = drive("train", tmp_path / "run", epochs=1, batchnorm="per-rank", batch_size=3)
    assert result.returncode == 0, result.stderr[-3000:]
    state = read_checkpoint(tmp_path / "run" / "last.npz")
    assert state.metadata["config"]["batchnorm"] == "per-rank"
    assert all(np.isfinite(v).all() for v in state.model_state.values())


@needs_mpi
def test_a_killed_rank_ends_the_run_and_the_last_checkpoint_stays(tmp_path):
    started = time.monotonic()
    result = drive("kill", tmp_path / "run", epochs=4, timeout=90)
    assert time.monotonic() - started < 90
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Killed" in output or "rank" in output, output[-2000:]
    checkpoint = read_checkpoint(tmp_path / "run" / "last.npz")
    assert checkpoint.metadata["epoch"] >= 1


@needs_mpi
def test_a_hanging_rank_stops_the_others_with_a_message(tmp_path):
    started = time.monotonic()
    result = drive("hang", tmp_path / "run", epochs=4, rank_timeout=3, timeout=90)
    assert time.monotonic() - started < 60
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rank 0: no answer from the other ranks for 3 s" in errors[0], result.stderr
    assert read_checkpoint(tmp_path / "run" / "last.npz").metadata["epoch"] == 1


@needs_mpi
def test_errors_every_rank_meets_are_reported_once(tmp_path):
    args = ["-m", "tinyseg.app", "--n-synthetic", "8", "--size", "32", "48", "--epochs", "1", "--quiet",
            "--out", str(tmp_path / "run")]
    for extra, message in ((["--batch-size", "1"], "--batch-size 1 is the global batch, shared by the 2 ranks"),
                           (["--lr", "-1"], "--lr must be"),
                           (["--rank-timeout", "0"], "--rank-timeout must be a positive number")):
        result = mpirun(args + extra)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("error:") == 1 and message in result.stderr, result.stderr


@needs_mpi
@pytest.mark.parametrize("failing, message", [([0, 1], "error: the splits of rank 0 are wrong"),
                                              ([1], "error: rank 1: the splits of rank 1 are wrong")])
def test_a_setup_error_after_the_first_collectives_is_reported_once(tmp_path, failing, message):
    result = drive("fail", tmp_path / "run", fail_ranks=failing, timeout=60)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count("error:") == 1 and message in result.stderr, result.stderr


@needs_mpi
def test_denoising_is_shared_out(tmp_path):
    out = tmp_path / "run"
    result = drive("train", out, epochs=1, denoise="adaptive_filter", n_synthetic=8,
                   cache_dir=str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(os.listdir(tmp_path / "cache")) == 8
    denoised = [json.loads(line) for path in glob.glob(f"{out}-writes/denoised-*.jsonl") for line in open(path)]
    assert len(denoised) == 8 and len({digest for _, digest in denoised}) == 8       # each image once
    assert sorted(rank for rank, _ in denoised) == [0] * 4 + [1] * 4                 # half on each rank


def test_distributed_without_mpi4py_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(distributed.comm, "_current", None)
    code = main(["--distributed", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert 'pip install -e ".[mpi]"' in err


def test_without_mpi4py_only_the_launchers_rank_0_reports(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("PMI_RANK", "1")
    with pytest.raises(SystemExit):
        distributed.import_mpi()
    monkeypatch.setenv("PMI_RANK", "0")
    with pytest.raises(distributed.DistributedError, match="mpi4py"):
        distributed.import_mpi()


def test_launch_detection(monkeypatch):
    for name in distributed.LAUNCH_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_ranks() == 1
    assert isinstance(distributed.communicator(None), distributed.SingleProcess)
    monkeypatch.setenv("PMI_SIZE", "4")
    assert distributed.launched_ranks() == 4


def test_batches_shard_every_batch(tmp_path):
    from tinyseg.data import Augmentation, load_dataset
    data = load_dataset(size=(32, 32), n_synthetic=14)
    whole = list(data.batches("train", batch_size=3, seed=5, augment=Augmentation()))
    parts = [list(data.batches("train", batch_size=3, seed=5, augment=Augmentation(), shard=(r, 2)))
             for r in range(2)]
    for k, (x, y) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([parts[0][k][0], parts[1][k][0]]), x)
        np.testing.assert_array_equal(np.concatenate([parts[0][k][1], parts[1][k][1]]), y)
