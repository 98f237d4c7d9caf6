"""A disk cache for per-image preprocessing that is slow and deterministic (denoising).

``cached_apply(fn, image, params, cache_dir)`` returns ``fn(image, **params)``,
computing it once: the result is stored as ``<cache_dir>/<key>.npy`` where the
key is a SHA-256 of the function's name, the parameters (as JSON) and the
image's dtype, shape and bytes. Changing any of them gives a new key, so a
stale result is never returned. Files are written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from .checkpoint import atomic_write


def cache_key(fn, image, params) -> str:
    image = np.ascontiguousarray(image)
    digest = hashlib.sha256()
    digest.update(f"{fn.__module__}.{fn.__qualname__}".encode())
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update(f"{image.dtype.str}{image.shape}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def cached_apply(fn, image, params, cache_dir):
    """``fn(image, **params)``, read from ``cache_dir`` when it was computed before."""
    path = os.path.join(cache_dir, cache_key(fn, image, params) + ".npy")
    if os.path.isfile(path):
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError):
            pass                                   # unreadable entry: recompute and overwrite
    result = np.asarray(fn(image, **params))
    atomic_write(path, lambda f: np.save(f, result, allow_pickle=False))
    return result
