"""Data layer: JSRT + SCR readers, folder datasets, synthetic chest
radiographs, preprocessing, splits, augmentation and batching.

    from tinyseg.data import load_dataset, Augmentation
    data = load_dataset()                                # 240 synthetic phantoms
    data = load_dataset("JSRT/All247images", scr="SCR")  # the real thing
    for x, y in data.batches("train", batch_size=4, seed=epoch, augment=Augmentation()):
        ...                                              # x (B, 1, H, W) float32, y (B, H, W) int64

``python -m tinyseg.data [PATH]`` prints a summary of a dataset and writes a
montage of images with their label overlays.  Depends only on NumPy, SciPy
and Pillow.
"""
from .augment import (Augmentation, augment_pair, black_borders, burn_in_text, random_affine, random_blur,
                      random_crop, random_gamma, random_intensity)
from .batches import iterate_batches
from .classes import BACKGROUND, CLASS_COLORS, CLASS_NAMES, HEART, LUNGS
from .dataset import SegmentationDataset, load_dataset
from .errors import DatasetError, MissingFileError
from .folder import find_folder_pairs, is_folder_dataset, read_splits_csv
from .imagefile import read_binary_mask, read_grayscale, read_label_map
from .jsrt import (Radiograph, find_jsrt_images, read_jsrt_image, read_jsrt_raw,
                   write_jsrt_raw)
from .montage import overlay_labels, save_montage, to_gray_uint8
from .preprocess import (NORMALIZATIONS, dark_fraction, is_overexposed, mean_image, normalize_images,
                         normalize_intensity, resize_image, resize_labels)
from .scr import STRUCTURES, find_scr_masks, read_scr_labels
from .splits import Splits, random_split, split_sizes, two_fold_split
from .synthetic import make_shifted_images, make_synthetic_dataset, scanner_shift, synthesize_radiograph

__all__ = [
    "Augmentation", "augment_pair", "black_borders", "burn_in_text", "random_affine", "random_blur",
    "random_crop", "random_gamma", "random_intensity",
    "iterate_batches",
    "BACKGROUND", "CLASS_COLORS", "CLASS_NAMES", "HEART", "LUNGS",
    "SegmentationDataset", "load_dataset",
    "DatasetError", "MissingFileError",
    "find_folder_pairs", "is_folder_dataset", "read_splits_csv",
    "read_binary_mask", "read_grayscale", "read_label_map",
    "Radiograph", "find_jsrt_images", "read_jsrt_image", "read_jsrt_raw",
    "write_jsrt_raw",
    "overlay_labels", "save_montage", "to_gray_uint8",
    "NORMALIZATIONS", "dark_fraction", "is_overexposed", "mean_image", "normalize_images",
    "normalize_intensity", "resize_image", "resize_labels",
    "STRUCTURES", "find_scr_masks", "read_scr_labels",
    "Splits", "random_split", "split_sizes", "two_fold_split",
    "make_shifted_images", "make_synthetic_dataset", "scanner_shift", "synthesize_radiograph",
]
