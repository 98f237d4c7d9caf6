"""Data-parallel throughput on this machine, and a model of scaling it to N GPUs.

    python benchmarks/distributed.py [--steps 8] [--batch 8] [--size 128 160]

Runs H-ReNet "small" training steps (synthetic radiographs, Adam, synchronised batch
norm, the same global batch everywhere) in three set-ups, each under mpiexec:

    1 rank, 1 thread          the baseline
    2 ranks, 1 thread each    data parallel: each rank computes half of every batch
    1 rank, 2 threads         the same cores used by the engine's threads instead

and reports images/s, the time per step spent waiting for the gradient all-reduce (what
backward did not hide), the time one blocking all-reduce of all gradients takes, and the
gradient volume. From the measured compute per step and the gradient bytes it models ring
all-reduce at NVLink and 100 Gb/s Ethernet bandwidths for N GPUs. Results go to
benchmarks/results/distributed-<device>-<date>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import timing  # noqa: E402

SETUPS = (("1 rank x 1 thread", 1, 1), ("2 ranks x 1 thread", 2, 1), ("1 rank x 2 threads", 1, 2))
# Link models (assumptions, not measurements): achievable all-reduce bus bandwidth and the
# per-message latency of one ring hop.
LINKS = {"NVLink (A100-class, ~240 GB/s bus bandwidth)": (240e9, 5e-6),
         "100 Gb/s Ethernet (~11 GB/s)": (11e9, 25e-6)}
GPU_COUNTS = (1, 2, 4, 8, 16, 32, 64)


def ring_allreduce_seconds(nbytes, ranks, bandwidth, latency):
    """Ring all-reduce: reduce-scatter then all-gather, 2 (N-1) steps each moving nbytes / N."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * latency


# -- one rank of one set-up -----------------------------------------------------------------

def worker(args):
    import numpy as np

    import tinyseg.functional as F
    from tinyseg import tensor
    from tinyseg.app import distributed
    from tinyseg.data import load_dataset
    from tinyseg.models import HReNet
    from tinyseg.optim import Adam

    comm = distributed.communicator(True)
    data = load_dataset(size=tuple(args.size), n_synthetic=args.batch * 2 + 8, seed=0)
    model = HReNet(n_classes=3, preset="small", seed=0)
    distributed.broadcast_weights(comm, model)
    distributed.synchronise_batchnorm(model, comm)
    reducer = distributed.GradientReducer(comm, model.parameters(), args.bucket_mb * 2 ** 20)
    optimizer = Adam(model.parameters(), lr=1e-3)
    comm.end_setup()
    waited = [0.0]
    wait = comm.wait

    def timed_wait(handle):
        t = time.perf_counter()
        wait(handle)
        waited[0] += time.perf_counter() - t
    comm.wait = timed_wait

    def step(seed):
        x, y = next(iter(data.batches("train", args.batch, seed=seed, shard=(comm.rank, comm.size))))
        weight = len(y) / args.batch
        loss = F.cross_entropy(model(tensor(x)), tensor(y))
        optimizer.zero_grad()
        reducer.start(loss)
        loss.backward(np.asarray(weight, dtype=np.float32))
        t = time.perf_counter()
        reducer.finish()
        finish = time.perf_counter() - t
        optimizer.step()
        return finish

    for seed in range(2):
        step(seed)
    comm.allgather(None)
    waited[0], times, finishes = 0.0, [], []
    for seed in range(args.steps):
        t = time.perf_counter()
        finishes.append(step(100 + seed))
        times.append(time.perf_counter() - t)
    exposed = waited[0] / args.steps
    flat = [bucket for bucket, _ in reducer.buckets]
    blocking = []
    for _ in range(5):                       # all gradients in one go, nothing to hide it
        comm.allgather(None)
        t = time.perf_counter()
        for bucket in flat:
            comm.allreduce(bucket)
        blocking.append(time.perf_counter() - t)
    facts = {"rank": comm.rank, "step_s": float(np.median(times)), "wait_s": exposed,
             "finish_s": float(np.median(finishes)), "allreduce_s": float(np.median(blocking)),
             "gradient_bytes": int(sum(b.nbytes for b in flat)), "buckets": len(flat),
             "parameters": int(sum(p.data.size for p in model.parameters()))}
    gathered = comm.allgather(facts)
    if comm.rank == 0:
        with open(args.worker, "w") as f:
            json.dump(gathered, f)


# -- the orchestration ---------------------------------------------------------------------------

def run_setup(args, ranks, threads, out):
    env = dict(os.environ)
    for var in timing.THREAD_VARIABLES:
        env[var] = str(threads)
    env.update(OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(timing.ROOT))
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    command = [mpiexec if os.path.isfile(mpiexec) else "mpiexec", "-n", str(ranks), sys.executable,
               os.path.abspath(__file__), "--worker", out, "--steps", str(args.steps), "--batch",
               str(args.batch), "--size", *map(str, args.size), "--bucket-mb", str(args.bucket_mb)]
    subprocess.run(command, env=env, check=True)
    with open(out) as f:
        return json.load(f)


def paper_gradient_bytes():
    """Gradient bytes of the "paper" preset, counted from its parameter shapes."""
    from tinyseg.models import HReNet
    model = HReNet(n_classes=3, preset="paper", seed=0)
    return int(sum(p.data.nbytes for p in model.parameters()))


def scaling_table(compute_s, batch_per_gpu, nbytes):
    """Rows (N, link, all-reduce ms, images/s without overlap, efficiency) under weak scaling."""
    rows = []
    for link, (bandwidth, latency) in LINKS.items():
        for n in GPU_COUNTS:
            reduce_s = ring_allreduce_seconds(nbytes, n, bandwidth, latency)
            step = compute_s + reduce_s                                # nothing hidden: the bound
            hidden = compute_s + max(0.0, reduce_s - 2 / 3 * compute_s)  # backward (~2/3) hides it
            rows.append({"gpus": n, "link": link, "allreduce_ms": reduce_s * 1e3,
                         "images_per_s": n * batch_per_gpu / step, "efficiency": compute_s / step,
                         "efficiency_overlapped": compute_s / hidden})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch", type=int, default=8, help="global batch")
    p.add_argument("--size", type=int, nargs=2, default=(128, 160))
    p.add_argument("--bucket-mb", type=float, default=0.25)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    timing.set_threads(1)
    info = timing.facts("cpu", packages=("numpy", "numba", "mpi4py", "mpich"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, ranks, threads in SETUPS:
            ranks_facts = run_setup(args, ranks, threads, os.path.join(tmp, f"{ranks}-{threads}.json"))
            slowest = max(ranks_facts, key=lambda r: r["step_s"])
            results[name] = {"ranks": ranks, "threads": threads, "per_rank": ranks_facts,
                             "images_per_s": args.batch / slowest["step_s"]}
    base = results[SETUPS[0][0]]["per_rank"][0]
    two = results[SETUPS[1][0]]["per_rank"]
    small_bytes, paper_bytes = base["gradient_bytes"], paper_gradient_bytes()
    compute_s = base["step_s"]                       # one rank, whole batch, no communication
    models = {"small (measured compute, this CPU, batch 8 per GPU)": scaling_table(compute_s, args.batch, small_bytes)}
    payload = {**info, "setups": results, "steps": args.steps, "global_batch": args.batch,
               "size": list(args.size), "bucket_mb": args.bucket_mb, "gradient_bytes": small_bytes,
               "paper_gradient_bytes": paper_bytes, "links": LINKS, "scaling": models}

    md = [f"# Data-parallel training, cpu, {info['date']}", "", timing.describe(info), "",
          f"H-ReNet small, {args.size[0]}x{args.size[1]} synthetic radiographs, global batch {args.batch}, "
          f"Adam, synchronised batch norm, buckets of {args.bucket_mb:g} MB; median of {args.steps} steps "
          "after 2 warm-up steps. Each set-up runs under mpiexec.", "",
          "| set-up | images/s | step (ms) | waiting for the all-reduce per step (ms) "
          "| blocking all-reduce of all gradients (ms) |",
          "|---|---|---|---|---|"]
    for name, r in results.items():
        slowest = max(r["per_rank"], key=lambda f: f["step_s"])
        md.append(f"| {name} | {r['images_per_s']:.1f} | {slowest['step_s'] * 1e3:.0f} | "
                  f"{slowest['wait_s'] * 1e3:.2f} | {slowest['allreduce_s'] * 1e3:.2f} |")
    speedup = results[SETUPS[1][0]]["images_per_s"] / results[SETUPS[0][0]]["images_per_s"]
    threads_speedup = results[SETUPS[2][0]]["images_per_s"] / results[SETUPS[0][0]]["images_per_s"]
    md += ["", f"Gradients: {base['parameters']:,} parameters, {small_bytes / 2 ** 20:.2f} MiB per step in "
           f"{two[0]['buckets']} buckets. Two ranks: {speedup:.2f}x the images/s of one; two threads in one "
           f"process: {threads_speedup:.2f}x. The wait per step is what backward did not hide: the "
           "transfer, plus the time the faster rank waits for the slower one. The blocking all-reduce "
           "reduces every bucket once more after the steps, with nothing to overlap."]
    if info["load_average"][0] > info["cpu_count"]:
        md += ["", f"The machine was shared: load average {info['load_average'][0]:.1f} on "
               f"{info['cpu_count']} cores. Threads of one process wait for each other at every "
               "parallel loop, so a descheduled thread stalls them all; separate ranks meet only at "
               "the all-reduces, a likely reason why they suffered less from the other load."]
    md += ["",
           "## Scaling model", "",
           "Weak scaling (the per-GPU batch fixed). Ring all-reduce of S bytes over N GPUs takes "
           "2 (N-1)/N * S / B + 2 (N-1) * a (bandwidth B, per-hop latency a); a step takes the compute "
           "time plus the all-reduce when nothing is hidden, and plus only what exceeds backward "
           "(~2/3 of the compute) when buckets overlap it. Link figures are assumptions: "
           + "; ".join(f"{k}: a = {v[1] * 1e6:g} us" for k, v in LINKS.items()) + ".", ""]
    for title, rows in models.items():
        md += [f"### {title}: compute {compute_s * 1e3:.0f} ms per step, {small_bytes / 2 ** 20:.2f} MiB", "",
               "| GPUs | link | all-reduce (ms) | images/s (nothing hidden) | efficiency | efficiency, overlapped |",
               "|---|---|---|---|---|---|"]
        md += [f"| {r['gpus']} | {r['link']} | {r['allreduce_ms']:.3f} | {r['images_per_s']:.0f} | "
               f"{r['efficiency']:.1%} | {r['efficiency_overlapped']:.1%} |" for r in rows]
        md.append("")
    md += [f"### The paper preset: {paper_bytes / 2 ** 20:.0f} MiB of gradients per step", "",
           "| GPUs | link | all-reduce (ms) | compute per step for 90% efficiency, nothing hidden (ms) |",
           "|---|---|---|---|"]
    for link, (bandwidth, latency) in LINKS.items():
        for n in GPU_COUNTS[1:]:
            reduce_s = ring_allreduce_seconds(paper_bytes, n, bandwidth, latency)
            md.append(f"| {n} | {link} | {reduce_s * 1e3:.1f} | {9 * reduce_s * 1e3:.0f} |")
    md.append("")
    paths = timing.write_results(os.path.join(timing.ROOT, "benchmarks", "results"),
                                 f"distributed-cpu-{info['date']}", payload, "\n".join(md))
    print("\n".join(md))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
