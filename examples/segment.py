"""Segment chest radiographs with a trained H-ReNet checkpoint.

    python examples/segment.py runs/jsrt/best.npz JPCLN001.IMG chest.png --out segmentations

For every image writes ``<name>_overlay.png`` (green lungs, red heart over the
radiograph) and ``<name>_labels.png`` (8-bit, pixel value = class: 0 background,
1 lungs, 2 heart), both at the image's own resolution. Reads JSRT ``.IMG``
files and PNG / JPEG / TIFF images.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from PIL import Image  # noqa: E402

from tinyseg.app import Segmenter, read_radiograph  # noqa: E402
from tinyseg.app.pictures import label_image  # noqa: E402
from tinyseg.backend import pick_device  # noqa: E402
from tinyseg.data import CLASS_NAMES, overlay_labels  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--out", default="segmentations", help="folder for the PNGs")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args(argv)

    segmenter = Segmenter.from_checkpoint(args.checkpoint, device=pick_device(args.device))
    os.makedirs(args.out, exist_ok=True)
    for path in args.images:
        image = read_radiograph(path)
        labels = segmenter.segment(image)
        stem = os.path.join(args.out, os.path.splitext(os.path.basename(path))[0])
        Image.fromarray(overlay_labels(image, labels)).save(f"{stem}_overlay.png")
        label_image(labels).save(f"{stem}_labels.png")
        fractions = ", ".join(f"{name} {(labels == k).mean():.1%}"
                              for k, name in enumerate(CLASS_NAMES) if k > 0)
        print(f"{path}: {fractions} -> {stem}_overlay.png, {stem}_labels.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
