"""The training command line: ``python -m tinyseg.app`` or ``examples/train_jsrt.py``.

With no arguments it trains the "small" preset on synthetic chest radiographs;
``--data`` points at JSRT (with ``--scr`` masks) or a folder dataset. ``--out``
receives metrics.json, history.json, curves.png, overlays/*.png, last.npz and
best.npz (see ``tinyseg.app.loop.train``).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from ..models import PRESETS
from . import distributed
from .config import DENOISERS, TrainConfig
from .errors import USER_ERRORS, one_line
from .loop import train

USAGE_ERROR = 2     # the exit status of every error the user can fix


def run_command(main, argv=None):
    """Run a command's ``main(argv)`` so that an error the user can fix (a bad path, file,
    setting or checkpoint, a diverged run, no GPU, a full disk, Ctrl-C) ends as one line,
    ``error: <message>``, with exit status 2; ``--debug`` shows the traceback instead.
    Errors of the program itself (a bug) still end in a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--debug" in argv:
        return main([a for a in argv if a != "--debug"])
    try:
        return main(argv)
    except (KeyboardInterrupt, *USER_ERRORS) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
    return USAGE_ERROR


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Train H-ReNet on chest radiographs (synthetic phantoms unless --data is given).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", help="JSRT folder (with --scr) or a folder dataset (images/ + masks/); "
                                  "default: synthetic radiographs")
    p.add_argument("--scr", help="root of the SCR masks for a JSRT folder")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="default: small (synthetic); with --data, small at 256 x 256 on a CPU and "
                        "paper at 400 x 500 on a GPU (tinyseg.app.config.REAL_DATA_DEVICE_DEFAULTS)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="default: the preset's input size, or the device's with --data")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float, help="for --optimizer sgd (default 0.9)")
    p.add_argument("--optimizer", choices=["sgd", "adam"])
    p.add_argument("--schedule", choices=["cosine", "constant"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--init", choices=["he", "paper"])
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="default: on for --data, off for synthetic")
    p.add_argument("--scanner-augment", action="store_true", default=None,
                   help="augment with other scanners' looks too (gamma, blur, black borders, burned-in text, "
                        "crops): for films from other hospitals")
    p.add_argument("--normalize", choices=("none", "percentile", "equalize"),
                   help="intensity normalisation of every image before training and inference "
                        "(default equalize: the same grey scale whatever the scanner)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--denoise", choices=("none",) + DENOISERS,
                   help="denoise every image once before training with tinyseg.denoise's <name>_denoise, "
                        "cached on disk (default none; ksvd is the paper's K-SVD step)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--out", default=os.path.join("runs", "jsrt"))
    p.add_argument("--resume", action="store_true",
                   help="continue from <out>/last.npz with the interrupted run's settings "
                        "(--epochs to train longer and --lr to continue at another rate may change)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a fresh run in an --out that holds one, replacing its files")
    p.add_argument("--n-synthetic", type=int, help="size of the synthetic set (default 240)")
    p.add_argument("--val-fraction", type=float,
                   help="share of the training part held out for validation, default 0.1 "
                        "(0: evaluate on the test split every epoch)")
    p.add_argument("--keep-overexposed", action="store_true", default=None,
                   help="keep the images the exposure screen drops (those are listed when it does)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or time estimates")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    distributed.add_arguments(p)
    args = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    return TrainConfig(**values, progress=not args.quiet)


def main(argv=None):
    return run_command(_train_command, argv)


def _train_command(argv):
    config = parse_args(argv)
    metrics = train(config)
    if not distributed.is_root():
        return 0
    summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics["dice"].items())
    print(f"test Dice: {summary}; pixel accuracy {metrics['pixel_accuracy']:.4f} "
          f"({metrics['n_images']} images, {metrics['seconds']:.0f} s); results in {config.out} "
          "(per-image scores and contour distances in metrics.json)")
    return 0
