"""Time to accuracy: both engines train the same H-ReNet on the same synthetic data until
the validation Dice passes a target for lungs and heart.

    python benchmarks/time_to_accuracy.py [--target 0.9] [--max-epochs 30] [--rounds 5] [--tuned]

Same initial weights (the tinyseg model's state dict loaded into the PyTorch
twin), same batches in the same order, the same Adam hyper-parameters. Only
training time counts toward the clock; the per-epoch validation is timed
separately. As benchmarks/run.py: each engine trains in its own process with its
default settings (nothing in the environment is set; ``--tuned`` sets the thread
variables of ``timing.set_threads`` for both and says so), the order of the engines
flips every round, and the table shows the median over rounds and the range.

Round r trains with seed ``--seed + r`` (synthetic data, initial weights and batch order),
the same for both engines. The two engines' weights drift apart in the last bits from
the first Adam step on, so from the same seed they can reach the target an epoch apart;
one seed would report that draw as a speed ratio. The table therefore gives each round's
epochs and seconds, the ratio of the times to target, and the ratio of the training time
per epoch, which compares the engines' speed alone.
Writes benchmarks/results/time-to-accuracy-<device>-<date>[-tuned].json/.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import timing


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2, help="thread count of both engines with --tuned")
    parser.add_argument("--tuned", action="store_true", help="set timing.set_threads(--threads) for both engines")
    parser.add_argument("--rounds", type=int, default=5,
                        help="processes per engine, alternating; round r uses seed --seed + r")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first round")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--worker", choices=("tinyseg", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return train(args)
    forwarded = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                 if k not in ("worker", "tuned", "rounds", "out", "seed")] + ["--tuned"] * args.tuned
    load_start = os.getloadavg()
    rounds = []
    for r in range(args.rounds):
        order = ("tinyseg", "torch") if r % 2 == 0 else ("torch", "tinyseg")
        seed = args.seed + r
        print(f"round {r + 1}/{args.rounds}, seed {seed}: {' then '.join(order)}; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        results = {}
        for engine in order:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", engine, *forwarded,
                                  f"--seed={seed}"], stdout=subprocess.PIPE, text=True, check=True).stdout
            results[engine] = json.loads(out.strip().splitlines()[-1])
        rounds.append(results)
    report(args, rounds, load_start)


def train(args):
    """Train one engine (``args.worker``) to the target in this process; print its result as JSON."""
    if args.tuned:
        timing.set_threads(args.threads)

    import numpy as np
    import torch
    import torch.nn.functional as tf

    import tinyseg as ts
    import tinyseg.functional as F
    from tinyseg.data import load_dataset
    from tinyseg.app.metrics import dice
    from torch_twin import TorchHReNet

    if args.tuned:
        torch.set_num_threads(args.threads)
    dev, tdev = args.device, torch.device(args.device)
    data = load_dataset(None, size=(128, 160), seed=args.seed)
    scale = 1.0 / float(data.images[data.train].std())
    model = ts.models.HReNet(preset="small", init="he", seed=args.seed).to(dev)
    twin = TorchHReNet.from_tinyseg(model, device=dev)

    def ts_engine():
        opt = ts.optim.Adam(model.parameters(), lr=args.lr)

        def step(x, y):
            model.train()
            opt.zero_grad()
            loss = F.cross_entropy(model(ts.tensor(x, device=dev)), ts.tensor(y, device=dev))
            loss.backward()
            opt.step()

        def predict(x):
            model.eval()
            with ts.no_grad():
                return model(ts.tensor(x, device=dev)).numpy().argmax(axis=1)
        return step, predict

    def torch_engine():
        opt = torch.optim.Adam(twin.parameters(), lr=args.lr)

        def step(x, y):
            twin.train()
            opt.zero_grad()
            tf.cross_entropy(twin(torch.as_tensor(x, device=tdev)), torch.as_tensor(y, device=tdev)).backward()
            opt.step()

        def predict(x):
            twin.eval()
            with torch.no_grad():
                return twin(torch.as_tensor(x, device=tdev)).argmax(dim=1).cpu().numpy()
        return step, predict

    name = args.worker
    step, predict = (ts_engine if name == "tinyseg" else torch_engine)()
    train_seconds, history, reached = 0.0, [], None
    for epoch in range(args.max_epochs):
        start = time.perf_counter()
        for x, y in data.batches("train", args.batch_size, seed=args.seed + epoch):
            step((x * scale).astype(np.float32), y)
        train_seconds += time.perf_counter() - start
        val = data.images[data.val][:, None] * scale
        pred = np.concatenate([predict(val[i:i + 8].astype(np.float32)) for i in range(0, len(val), 8)])
        lungs, heart = dice(pred, data.labels[data.val], 3)[1:]
        history.append({"epoch": epoch + 1, "train_seconds": train_seconds, "lungs": float(lungs),
                        "heart": float(heart)})
        print(f"{name:8s} epoch {epoch + 1:3d}  {train_seconds:7.1f} s  Dice lungs {lungs:.3f} heart {heart:.3f}",
              file=sys.stderr, flush=True)
        if min(lungs, heart) >= args.target:
            reached = {"epochs": epoch + 1, "seconds": train_seconds}
            break
    print(json.dumps({"reached": reached, "history": history, "facts": timing.facts(dev)}))


def report(args, rounds, load_start):
    dev = args.device
    engines = ("tinyseg", "torch")
    results = {e: [r[e] for r in rounds] for e in engines}
    payload = {**rounds[0]["tinyseg"]["facts"], "target": args.target, "settings": vars(args),
               "protocol": "tuned" if args.tuned else "defaults", "results": results,
               "load_average_at_end": os.getloadavg()}
    payload["load_average"] = load_start
    seconds = {e: [r["reached"]["seconds"] if r["reached"] else None for r in results[e]] for e in engines}
    epochs = {e: [r["reached"]["epochs"] if r["reached"] else None for r in results[e]] for e in engines}

    def cell(e):
        done = [s for s in seconds[e] if s is not None]
        if len(done) < len(seconds[e]):
            return f"not reached in {len(seconds[e]) - len(done)} of {len(seconds[e])} rounds"
        return (f"{statistics.median(done):.1f} s [{min(done):.1f}-{max(done):.1f}] "
                f"({'/'.join(str(n) for n in epochs[e])} epochs)")
    ratios = [a / b for a, b in zip(seconds["tinyseg"], seconds["torch"]) if a is not None and b is not None]
    payload["ratio"] = statistics.median(ratios) if ratios else None
    payload["ratio_range"] = [min(ratios), max(ratios)] if ratios else None
    # training seconds per epoch over every epoch each run trained: the engines' speed alone
    per_epoch = {e: [r["history"][-1]["train_seconds"] / len(r["history"]) for r in results[e]] for e in engines}
    epoch_ratios = [a / b for a, b in zip(per_epoch["tinyseg"], per_epoch["torch"])]
    payload["per_epoch_ratio"] = statistics.median(epoch_ratios)
    payload["per_epoch_ratio_range"] = [min(epoch_ratios), max(epoch_ratios)]
    setting = timing.protocol(args.tuned, args.threads)
    md = [f"# Time to validation Dice >= {args.target} (lungs and heart), {dev}, {payload['date']}"
          f"{' (tuned)' if args.tuned else ''}", "", timing.describe(payload), "",
          f"H-ReNet small, synthetic 128x160, Adam lr {args.lr}, batch {args.batch_size}, same initial weights and "
          f"batches within a round. Protocol: {setting}; {args.rounds} rounds alternating the order of the engines, "
          f"round r with seed {args.seed} + r; time: median over rounds [range]. Load average {load_start[0]:.2f} "
          f"at the start, {payload['load_average_at_end'][0]:.2f} at the end. Regenerate: "
          f"`python benchmarks/time_to_accuracy.py{' --tuned' if args.tuned else ''}`.", "",
          "| engine | time to target |", "|---|---|"]
    md += [f"| {'PyTorch' if e == 'torch' else e} | {cell(e)} |" for e in engines]
    md += ["", "| seed | tinyseg: epochs, s | PyTorch: epochs, s | ratio, time to target | ratio, time per epoch |",
           "|---|---|---|---|---|"]
    for r in range(len(rounds)):
        runs = [f"{epochs[e][r]}, {seconds[e][r]:.1f}" if seconds[e][r] is not None else "not reached"
                for e in engines]
        to_target = (f"{seconds['tinyseg'][r] / seconds['torch'][r]:.2f}"
                     if None not in (seconds["tinyseg"][r], seconds["torch"][r]) else "-")
        md.append(f"| {args.seed + r} | {runs[0]} | {runs[1]} | {to_target} | {epoch_ratios[r]:.2f} |")
    if ratios:
        md += ["", f"Ratio tinyseg / PyTorch, time to target: {payload['ratio']:.2f} (median of the per-round "
                   f"ratios, range {min(ratios):.2f}-{max(ratios):.2f}); training time per epoch: "
                   f"{payload['per_epoch_ratio']:.2f} (range {min(epoch_ratios):.2f}-{max(epoch_ratios):.2f}). "
                   f"The first epoch includes each engine's first-call costs (Numba loading its compiled "
                   f"kernels, PyTorch its own)."]
    stem = f"time-to-accuracy-{dev}-{payload['date']}" + ("-tuned" if args.tuned else "")
    paths = timing.write_results(args.out, stem, payload, "\n".join(md) + "\n")
    print("\n".join(md))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
