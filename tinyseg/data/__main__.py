"""Look at a dataset: ``python -m tinyseg.data [PATH] [--scr SCR] [--size H W] [--out FILE]``.

Loads it as training would (synthetic when no path is given), prints a
summary and writes a PNG montage of the first training images with their
label overlays.
"""
from __future__ import annotations

import argparse

import numpy as np

from .dataset import load_dataset
from .montage import save_montage


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tinyseg.data", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="JSRT or folder dataset (default: synthetic)")
    parser.add_argument("--scr", help="root of the SCR masks for a JSRT folder")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 160), metavar=("H", "W"))
    parser.add_argument("--count", type=int, default=8, help="images in the montage")
    parser.add_argument("--out", default="dataset_montage.png", help="PNG file to write")
    parser.add_argument("--keep-overexposed", action="store_true", help="keep images the exposure screen drops")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    screen = {"max_dark_fraction": None} if args.keep_overexposed else {}
    data = load_dataset(args.path, scr=args.scr, size=tuple(args.size), **screen)
    fractions = np.bincount(data.labels.ravel(), minlength=data.n_classes) / data.labels.size
    print(f"{data.source}: {len(data)} images of {data.size[0]}x{data.size[1]}, "
          f"train/val/test {len(data.train)}/{len(data.val)}/{len(data.test)}")
    shares = (f"{name} {share:.1%}" for name, share in zip(data.class_names, fractions))
    print("pixel shares: " + ", ".join(shares))
    if data.excluded:
        dark = (f"{name} ({share:.0%} dark)" for name, share in data.excluded.items())
        print(f"excluded as overexposed: {', '.join(dark)}")
    shown = data.train[: args.count]
    images = data.images[shown] + (data.mean_image if data.mean_image is not None else 0)
    zoom = max(1, 256 // max(data.size))
    print(f"montage: {save_montage(args.out, images, data.labels[shown], columns=4, zoom=zoom)}")


if __name__ == "__main__":
    import sys

    from ..app.cli import run_command   # one "error:" line and exit status 2 for user errors
    sys.exit(run_command(main))
