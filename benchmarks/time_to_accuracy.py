"""Time to accuracy: both engines train the same H-ReNet on the same synthetic data until
the validation Dice passes a target for lungs and heart.

    python benchmarks/time_to_accuracy.py [--target 0.9] [--max-epochs 30] [--threads 2]

Same initial weights (the tinyseg model's state dict loaded into the PyTorch
twin), same batches in the same order, the same Adam hyper-parameters. Only
training time counts toward the clock; the per-epoch validation is timed
separately. Writes benchmarks/results/time-to-accuracy-<device>-<date>.json/.md.
"""
from __future__ import annotations

import argparse
import os
import time

import timing


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = parser.parse_args()
    timing.set_threads(args.threads)

    import numpy as np
    import torch
    import torch.nn.functional as tf

    import tinyseg as ts
    import tinyseg.functional as F
    from tinyseg.data import load_dataset
    from tinyseg.app.metrics import dice
    from torch_twin import TorchHReNet

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

    results = {}
    for name, engine in (("tinyseg", ts_engine), ("torch", torch_engine)):
        step, predict = engine()
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
                  flush=True)
            if min(lungs, heart) >= args.target:
                reached = {"epochs": epoch + 1, "seconds": train_seconds}
                break
        results[name] = {"reached": reached, "history": history}

    payload = {**timing.facts(dev), "target": args.target, "settings": vars(args), "results": results}

    def cell(r):
        return f"{r['reached']['seconds']:.1f} s ({r['reached']['epochs']} epochs)" if r["reached"] else "not reached"
    md = [f"# Time to validation Dice >= {args.target} (lungs and heart), {dev}, {args.threads} threads, "
          f"{payload['date']}", "", timing.describe(payload), "", f"H-ReNet small, synthetic 128x160, Adam "
          f"lr {args.lr}, batch {args.batch_size}, same initial weights and batches.", "",
          "| engine | time to target |", "|---|---|"]
    md += [f"| {name} | {cell(r)} |" for name, r in results.items()]
    paths = timing.write_results(args.out, f"time-to-accuracy-{dev}-{payload['date']}", payload, "\n".join(md) + "\n")
    print("\n".join(md))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
