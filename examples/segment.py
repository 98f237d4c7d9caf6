"""Segment chest radiographs with a trained H-ReNet checkpoint.

    python examples/segment.py runs/jsrt/best.npz JPCLN001.IMG chest.png --out segmentations

For every image writes ``<name>_overlay.png`` (green lungs, red heart over the
radiograph) and ``<name>_labels.png`` (8-bit, pixel value = class: 0 background,
1 lungs, 2 heart), both at the image's own resolution. Reads JSRT ``.IMG``
files and PNG / JPEG / TIFF images. Two inputs never share an output: images with
the same name from different folders (or with different extensions) are named
after their paths, and files already in ``--out`` are kept unless ``--overwrite``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinyseg.app import Segmenter  # noqa: E402
from tinyseg.app.inference import check_plausible_radiograph  # noqa: E402
from tinyseg.app.cli import run_command  # noqa: E402
from tinyseg.app.pictures import label_image  # noqa: E402
from tinyseg.backend import pick_device  # noqa: E402
from tinyseg.data import CLASS_NAMES, overlay_labels  # noqa: E402
from tinyseg.data.atomic import atomic_write  # noqa: E402
from PIL import Image  # noqa: E402

SUFFIXES = ("_overlay.png", "_labels.png")


def output_stems(paths):
    """One output name per input: the file name without extension, or, where two inputs
    share it, the path with its extension (a/chest.png -> a_chest_png)."""
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    full = [os.path.normpath(p).strip(os.sep).replace(os.sep, "_").replace(".", "_") for p in paths]
    stems = [name if names.count(name) == 1 else path for name, path in zip(names, full)]
    for i, stem in enumerate(stems):
        if stems.index(stem) != i:
            raise ValueError(f"{paths[stems.index(stem)]} and {paths[i]} would be written to the same "
                             "files; give each image once")
    return stems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--out", default="segmentations", help="folder for the PNGs")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--overwrite", action="store_true", help="replace PNGs already in --out")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    stems = [os.path.join(args.out, stem) for stem in output_stems(args.images)]
    taken = [stem + suffix for stem in stems for suffix in SUFFIXES if os.path.exists(stem + suffix)]
    if taken and not args.overwrite:
        raise FileExistsError(f"{taken[0]} already exists ({len(taken)} output files do); pass "
                              "--overwrite to replace them or choose another --out")
    segmenter = Segmenter.from_checkpoint(args.checkpoint, device=pick_device(args.device))
    for path, stem in zip(args.images, stems):
        image = segmenter.read(path)
        check_plausible_radiograph(image.shape, path)
        labels = segmenter.segment(image)
        for suffix, picture in zip(SUFFIXES, (Image.fromarray(overlay_labels(image, labels)),
                                              label_image(labels))):
            atomic_write(stem + suffix, lambda f, picture=picture: picture.save(f, format="PNG"))
        fractions = ", ".join(f"{name} {(labels == k).mean():.1%}"
                              for k, name in enumerate(CLASS_NAMES) if k > 0)
        print(f"{path}: {fractions} -> {stem}{SUFFIXES[0]}, {stem}{SUFFIXES[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
