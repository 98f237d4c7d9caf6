"""What each rank runs in tests/test_distributed.py (under mpiexec): ``python mpi_driver.py MODE OUT [JSON]``.

    train   train() with the settings in JSON; every write of a file is logged per rank
    reduce  the bucketed gradient all-reduce against per-parameter sums, and split evaluation
    kill    train; rank 1 kills itself (SIGKILL) after the first epoch's checkpoint
    hang    train; rank 1 stops itself (SIGSTOP) after the first epoch's checkpoint
    fail    train through the CLI's error handling; the ranks in "fail_ranks" raise a ValueError
            after the first collectives of setup (in check_splits)
"""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

TINY_MODEL = dict(widths=(2, 3, 3, 4), convs_per_block=(1, 1, 1, 1), conv7_width=4, conv7_kernel=3,
                  hidden_size=3)


def settings(out, changes):
    base = dict(n_synthetic=14, size=(32, 48), epochs=2, batch_size=4, lr=5e-3, out=out, augment=True,
                model_options=TINY_MODEL, progress=False, bucket_mb=0.001, schedule="constant")
    return {**base, **changes}


def log_writes(out):
    """Record (rank, file) for every checkpoint and result file written."""
    import tinyseg.app.loop as loop
    from tinyseg.app import distributed
    log = os.path.join(out + "-writes", f"{distributed.launched_ranks()}-{os.getpid()}.jsonl")
    os.makedirs(os.path.dirname(log), exist_ok=True)

    def logged(name, fn):
        def write(*args, **kwargs):
            with open(log, "a") as f:
                f.write(json.dumps([distributed.current().rank, name, str(args[0])]) + "\n")
            return fn(*args, **kwargs)
        return write
    loop.save_checkpoint = logged("checkpoint", loop.save_checkpoint)
    loop.write_results = logged("results", loop.write_results)


def cheap_denoiser(out):
    """--denoise adaptive_filter becomes a 3x3 box filter that logs (rank, image digest)."""
    import hashlib
    import tinyseg.denoise as denoise
    from tinyseg.app import distributed

    def adaptive_filter_denoise(image):
        with open(os.path.join(out + "-writes", f"denoised-{os.getpid()}.jsonl"), "a") as f:
            f.write(json.dumps([distributed.current().rank, hashlib.sha1(image.tobytes()).hexdigest()]) + "\n")
        padded = np.pad(image, 1, mode="edge")
        return sum(padded[i:i + image.shape[0], j:j + image.shape[1]] for i in range(3) for j in range(3)) / 9
    denoise.adaptive_filter_denoise = adaptive_filter_denoise


def train(out, changes, on_epoch_end=None):
    from tinyseg.app import TrainConfig
    from tinyseg.app import train as run
    log_writes(out)
    cheap_denoiser(out)
    run(TrainConfig(**settings(out, changes)), on_epoch_end=on_epoch_end)


def stop_rank_one(sig):
    def on_epoch_end(epoch, record):
        from tinyseg.app import distributed
        if epoch == 1 and distributed.current().rank == 1:
            os.kill(os.getpid(), sig)
    return on_epoch_end


def reduce_check(out):
    """Two ranks with different data: bucketed sums equal per-parameter sums, buckets start
    during backward, and split evaluation equals evaluation on one rank."""
    import tinyseg.functional as F
    from tinyseg import tensor
    from tinyseg.app import distributed
    from tinyseg.app.evaluate import evaluate
    from tinyseg.models import HReNet
    comm = distributed.communicator(True)
    model = HReNet(n_classes=3, preset="small", seed=0, **TINY_MODEL)
    comm.end_setup()
    rng = np.random.default_rng(comm.rank)
    x = rng.standard_normal((2, 1, 32, 48)).astype(np.float32)
    y = rng.integers(0, 3, (2, 32, 48))

    def backward():
        model.zero_grad()
        loss = F.cross_entropy(model(tensor(x)), tensor(y))
        return loss
    loss = backward()
    loss.backward()
    expected = [comm.allreduce(p.grad.copy()) for p in model.parameters()]
    reducer = distributed.GradientReducer(comm, model.parameters(), bucket_bytes=2000)
    started = []
    start = reducer.comm.start_allreduce

    def counting(array, what):
        started.append(len(reducer.pending))
        return start(array, what)
    reducer.comm.start_allreduce = counting
    loss = backward()
    reducer.start(loss)
    loss.backward()
    reducer.finish()
    worst = max(float(np.abs(p.grad - e).max() / (np.abs(e).max() + 1e-30))
                for p, e in zip(model.parameters(), expected))
    images = rng.standard_normal((7, 32, 48)).astype(np.float32)
    images = comm.allgather(images)[0]
    labels = comm.allgather(rng.integers(0, 3, (7, 32, 48)))[0]
    whole = evaluate(model, images, labels, 1.0, "cpu", 3, batch_size=2)
    split = distributed.evaluate(comm, evaluate, model, images, labels, 1.0, "cpu", 3, batch_size=2)
    result = {"buckets": len(reducer.buckets), "params": len(model.parameters()), "worst": worst,
              "started_during_backward": sum(1 for pending in started if pending > 0),
              "same_predictions": bool(np.array_equal(whole["predictions"], split["predictions"])),
              "loss": [whole["loss"], split["loss"]], "dice": [whole["dice"].tolist(), split["dice"].tolist()]}
    with open(os.path.join(out, f"reduce-{comm.rank}.json"), "w") as f:
        json.dump(result, f)


def fail_in_setup(out, changes):
    import tinyseg.app.loop as loop
    from tinyseg.app import distributed
    from tinyseg.app.cli import run_command
    failing = changes.pop("fail_ranks")

    def check_splits(dataset, heldout):
        if distributed.current().rank in failing:
            raise ValueError(f"the splits of rank {distributed.current().rank} are wrong")
    loop.check_splits = check_splits
    sys.exit(run_command(lambda argv: train(out, changes), []))


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    changes = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    if mode == "train":
        train(out, changes)
    elif mode == "fail":
        fail_in_setup(out, changes)
    elif mode == "reduce":
        reduce_check(out)
    elif mode in ("kill", "hang"):
        train(out, changes, stop_rank_one(signal.SIGKILL if mode == "kill" else signal.SIGSTOP))
