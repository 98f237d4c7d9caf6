"""H-ReNet's options measured on phantoms: each configuration trains on the same synthetic
split with the same budget, and is scored on the test phantoms as drawn and as another
scanner shows them.

    python benchmarks/options.py [--epochs 12] [--n-train 96] [--n-test 32] [--size 128 160]
                                 [--configs paper fcn8 ...] [--threads 2]

Configurations (``CONFIGS``): the paper's architecture at the "small" preset's widths,
+FCN-8s skips, +batch norm, both (and FCN-4s); then, on the best architecture, the
scanner-robustness settings: intensity normalisation ("percentile", "equalize") and the
scanner augmentation; last "wide" (twice the widths, with both options), run on request.
Every run: He init, Adam with a cosine schedule, batch 8, the same seeded batches; inputs
are normalised, minus the training mean image, divided by the training standard deviation
(the app's pipeline). Reported per test set: Dice of lungs and heart (mean over images),
the mean contour distance in pixels (symmetric, boundary pixels to the other boundary,
``scipy.ndimage.distance_transform_edt``) and the training wall time.
Writes benchmarks/results/options-<date>.json/.md, after every configuration.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import timing

WIDE = dict(widths=(16, 32, 64, 128), conv7_width=128, hidden_size=64)
CONFIGS = {
    "paper": dict(model={}),
    "fcn8": dict(model=dict(fcn_stride=8)),
    "bn": dict(model=dict(batch_norm=True)),
    "fcn8+bn": dict(model=dict(fcn_stride=8, batch_norm=True)),
    "fcn4+bn": dict(model=dict(fcn_stride=4, batch_norm=True)),
    "fcn8+bn percentile": dict(model=dict(fcn_stride=8, batch_norm=True), normalize="percentile"),
    "fcn8+bn equalize": dict(model=dict(fcn_stride=8, batch_norm=True), normalize="equalize"),
    "fcn8+bn scanner-aug": dict(model=dict(fcn_stride=8, batch_norm=True), augment="scanner"),
    "fcn8+bn percentile scanner-aug": dict(model=dict(fcn_stride=8, batch_norm=True), normalize="percentile",
                                           augment="scanner"),
    "fcn8+bn equalize scanner-aug": dict(model=dict(fcn_stride=8, batch_norm=True), normalize="equalize",
                                         augment="scanner"),
    # twice the widths (16-128, d = 64: 1.8 M parameters), FCN-8s and batch norm
    "wide fcn8+bn": dict(model=dict(WIDE, fcn_stride=8, batch_norm=True)),
    "wide fcn8+bn equalize": dict(model=dict(WIDE, fcn_stride=8, batch_norm=True), normalize="equalize"),
}
DEFAULT = [name for name in CONFIGS if not name.startswith("wide")]


def boundary(mask):
    from scipy import ndimage
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def contour_distance(pred, target):
    """Symmetric mean distance (pixels) between the boundaries of two masks; the image
    diagonal when one of them is empty and the other is not."""
    from scipy import ndimage
    import numpy as np
    a, b = boundary(pred), boundary(target)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float(math.hypot(*pred.shape))
    to_b = ndimage.distance_transform_edt(~b)
    to_a = ndimage.distance_transform_edt(~a)
    return float((to_b[a].sum() + to_a[b].sum()) / (a.sum() + b.sum()))


def scores(pred, labels, n_classes=3):
    """Per-class Dice and contour distance, each a mean over the images."""
    import numpy as np
    dice = np.zeros((len(pred), n_classes))
    distance = np.zeros((len(pred), n_classes))
    for i, (p, t) in enumerate(zip(pred, labels)):
        for c in range(1, n_classes):
            pc, tc = p == c, t == c
            total = pc.sum() + tc.sum()
            dice[i, c] = 2 * (pc & tc).sum() / total if total else 1.0
            distance[i, c] = contour_distance(pc, tc)
    return dice.mean(axis=0), distance.mean(axis=0), dice.min(axis=0)


def run(name, spec, data, args):
    import numpy as np

    import tinyseg as ts
    import tinyseg.functional as F
    from tinyseg.data import Augmentation, iterate_batches, normalize_images

    train_x, train_y, test_sets = data
    method = spec.get("normalize", "none")
    train_n = normalize_images(train_x, method)
    mean = train_n.mean(axis=0)
    scale = 1.0 / float((train_n - mean).std())
    inputs = (train_n - mean) * scale
    augment = Augmentation.scanner() if spec.get("augment") == "scanner" else Augmentation()

    preset = spec.get("preset", "small")
    model = ts.models.HReNet(preset=preset, init="he", seed=args.seed, **spec["model"])
    optimizer = ts.optim.Adam(model.parameters(), args.lr)
    n_params = sum(p.size for p in model.parameters())
    started = time.perf_counter()
    losses = []
    for epoch in range(args.epochs):
        optimizer.lr = 0.5 * args.lr * (1 + math.cos(math.pi * epoch / args.epochs))
        model.train()
        epoch_losses = []
        for x, y in iterate_batches(inputs, train_y, range(len(inputs)), args.batch_size,
                                    seed=args.seed * 1000 + epoch, augment=augment):
            loss = F.cross_entropy(model(ts.tensor(x)), ts.tensor(y))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_losses.append(loss.item())
        losses.append(float(np.mean(epoch_losses)))
        print(f"  {name}: epoch {epoch + 1}/{args.epochs} loss {losses[-1]:.4f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    train_seconds = time.perf_counter() - started

    model.eval()
    result = {"name": name, "preset": preset, "model_options": spec["model"], "normalize": method,
              "augment": spec.get("augment", "default"), "parameters": int(n_params),
              "train_seconds": round(train_seconds, 1), "train_loss": losses}
    for set_name, (images, labels) in test_sets.items():
        x = (normalize_images(images, method) - mean) * scale
        pred = []
        with ts.no_grad():
            for start in range(0, len(x), 8):
                pred.append(model(ts.tensor(x[start:start + 8, None].astype(np.float32))).numpy().argmax(axis=1))
        dice, distance, worst = scores(np.concatenate(pred), labels)
        result[set_name] = {"dice_lungs": round(float(dice[1]), 4), "dice_heart": round(float(dice[2]), 4),
                            "worst_dice_lungs": round(float(worst[1]), 4),
                            "worst_dice_heart": round(float(worst[2]), 4),
                            "contour_lungs": round(float(distance[1]), 3),
                            "contour_heart": round(float(distance[2]), 3)}
    return result


def markdown(info, args, results):
    lines = [f"# H-ReNet options on phantoms ({info['date']})", "",
             timing.describe(info), "",
             f"Command: `python benchmarks/options.py --epochs {args.epochs} --n-train {args.n_train} "
             f"--n-test {args.n_test} --size {args.size[0]} {args.size[1]} --threads {args.threads}"
             + (f" --configs {' '.join(repr(c) for c in args.configs)}" if args.configs != DEFAULT else "")
             + (f" --stem {args.stem}" if args.stem else "") + "`", "",
             f"Preset \"small\" (\"wide\": widths 16-128, d 64), {args.size[0]}x{args.size[1]} phantoms, "
             f"{args.n_train} training "
             f"images, {args.n_test} test images (the same {args.n_test} re-rendered as another scanner: "
             f"\"shifted\"), {args.epochs} epochs, Adam lr {args.lr} cosine, batch {args.batch_size}, He init, "
             "seed 0. Dice: mean over test images (worst image in brackets); contour: symmetric mean "
             "boundary distance in pixels (lower is better).", "",
             "| configuration | params | train s | lungs Dice | heart Dice | lungs contour | heart contour "
             "| shifted lungs Dice | shifted heart Dice | shifted lungs contour | shifted heart contour |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        c, s = r["clean"], r["shifted"]
        lines.append(f"| {r['name']} | {r['parameters']:,} | {r['train_seconds']:.0f} "
                     f"| {c['dice_lungs']:.4f} ({c['worst_dice_lungs']:.3f}) "
                     f"| {c['dice_heart']:.4f} ({c['worst_dice_heart']:.3f}) "
                     f"| {c['contour_lungs']:.2f} | {c['contour_heart']:.2f} "
                     f"| {s['dice_lungs']:.4f} ({s['worst_dice_lungs']:.3f}) "
                     f"| {s['dice_heart']:.4f} ({s['worst_dice_heart']:.3f}) "
                     f"| {s['contour_lungs']:.2f} | {s['contour_heart']:.2f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--n-train", type=int, default=96)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 160))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=DEFAULT,
                        help="default: all but the wide ones (run those with --configs ... --stem)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stem", default=None, help="results file name (default options-<date>)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = parser.parse_args()
    timing.set_threads(args.threads)

    from tinyseg.data import make_shifted_images, make_synthetic_dataset

    images, labels = make_synthetic_dataset(args.n_train + args.n_test, tuple(args.size), seed=args.seed)
    test_x, test_y = images[args.n_train:], labels[args.n_train:]
    test_sets = {"clean": (test_x, test_y), "shifted": make_shifted_images(test_x, test_y, seed=args.seed + 1)}
    data = (images[:args.n_train], labels[:args.n_train], test_sets)

    info = timing.facts("cpu", packages=("numpy", "numba", "scipy"))
    stem = args.stem or f"options-{info['date']}"
    results = []
    for name in args.configs:
        results.append(run(name, CONFIGS[name], data, args))
        payload = {"facts": info, "settings": {k: (list(v) if isinstance(v, tuple) else v)
                                               for k, v in vars(args).items()}, "results": results}
        paths = timing.write_results(args.out, stem, payload, markdown(info, args, results))
        r = results[-1]
        print(f"{name}: {r['train_seconds']:.0f} s, clean {r['clean']}, shifted {r['shifted']}", flush=True)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
