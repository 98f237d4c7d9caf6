"""Score a trained checkpoint on a labelled dataset and write metrics.json.

    python examples/evaluate.py runs/jsrt/best.npz --data JSRT/All247images --scr SCR
    python examples/evaluate.py best.npz --data montgomery --split all --out eval_montgomery

The images are read at the checkpoint's size and preprocessed as in its training
(mean image, input scale, denoising). ``--split test`` scores the test split that
training made of the same data (same seed and validation share); ``--split all``
every image, for data the model never saw. metrics.json holds the mean Dice and
Jaccard per class, every image's Dice, Jaccard, mean contour distance and
Hausdorff distance (pixels, and millimetres where the pixel size is known), their
mean, standard deviation, range and worst images, at the network's resolution and
at each image's own (see tinyseg/app/evaluate.py and docs/07-training.md), and
overlays/<name>.png shows each image | ground truth | prediction.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinyseg.app.cli import run_command  # noqa: E402
from tinyseg.app.evaluate import evaluate_checkpoint, summary_lines  # noqa: E402
from tinyseg.backend import pick_device  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .npz checkpoint written by training (best.npz, last.npz)")
    parser.add_argument("--data", required=True, help="JSRT folder (with --scr) or a folder dataset "
                                                      "(images/ + masks/)")
    parser.add_argument("--scr", help="root of the SCR masks for a JSRT folder")
    parser.add_argument("--split", choices=["test", "all"], default="test")
    parser.add_argument("--out", help="folder for metrics.json and overlays/ "
                                      "(default: <checkpoint folder>/evaluate_<split>)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress while reading images")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), f"evaluate_{args.split}")
    target = os.path.join(out, "metrics.json")
    present = [p for p in (target, os.path.join(out, "overlays")) if os.path.exists(p)]
    if present and not args.overwrite:
        raise FileExistsError(f"{present[0]} already exists; pass --overwrite to replace the results "
                              "in it or choose another --out")
    metrics = evaluate_checkpoint(args.checkpoint, args.data, scr=args.scr, split=args.split,
                                  device=pick_device(args.device), progress=not args.quiet, out=out)
    print(f"{args.checkpoint} on the {args.split} split of {args.data}: {metrics['n_images']} images "
          f"at {metrics['size'][0]}x{metrics['size'][1]}" +
          (f", {len(metrics['excluded'])} excluded as overexposed" if metrics["excluded"] else ""))
    for line in summary_lines(metrics):
        print(line)
    print(f"per-image scores in {target}, image | truth | prediction in {os.path.join(out, 'overlays')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
