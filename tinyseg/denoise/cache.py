"""Denoising whole image sets once: results are cached on disk by content.

``cached_apply(fn, image, params, cache_dir)`` returns ``fn(image, **params)``,
computing it once: the result is stored as ``<cache_dir>/<key>.npy`` where the
key is a SHA-256 of the function's name, every parameter it runs with (the
given ones over its defaults, as JSON), ``VERSION`` and the image's dtype,
shape and bytes. Changing any of them gives a new key, so a stale result is
never returned: not after a changed default either, and ``VERSION`` is raised
whenever a denoiser's output changes for the same settings. Files are written
atomically, and an entry that is unreadable, of another shape or not finite is
recomputed rather than trusted.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os

import numpy as np

from ..data.atomic import atomic_write


VERSION = 2    # 2: Haar group transform and coefficient-domain aggregation; 128-atom ksvd_denoise


def settings(fn, params):
    """Every keyword ``fn`` runs with: ``params`` over the function's defaults."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):                # a builtin without a signature
        return dict(params)
    defaults = {name: p.default for name, p in signature.parameters.items() if p.default is not p.empty}
    return {**defaults, **params}


def cache_key(fn, image, params) -> str:
    image = np.ascontiguousarray(image)
    digest = hashlib.sha256()
    digest.update(f"{fn.__module__}.{fn.__qualname__} {VERSION}".encode())
    digest.update(json.dumps(settings(fn, params), sort_keys=True, default=str).encode())
    digest.update(f"{image.dtype.str}{image.shape}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def cached_apply(fn, image, params, cache_dir):
    """``fn(image, **params)``, read from ``cache_dir`` when it was computed before."""
    path = os.path.join(cache_dir, cache_key(fn, image, params) + ".npy")
    if os.path.isfile(path):
        try:
            stored = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            stored = None                          # unreadable entry: recompute and overwrite
        # a denoiser returns an image like its input: anything else is a damaged entry
        if stored is not None and stored.shape == image.shape and stored.dtype.kind == "f" \
                and np.isfinite(stored).all():
            return stored
    result = np.asarray(fn(image, **params))
    atomic_write(path, lambda f: np.save(f, result, allow_pickle=False))
    return result


def denoiser(method):
    """The function ``tinyseg.denoise.<method>_denoise``; a clear error when there is none."""
    from .. import denoise
    name = f"{method}_denoise"
    if not hasattr(denoise, name):
        raise RuntimeError(f"--denoise {method}: tinyseg.denoise has no {name}()")
    return getattr(denoise, name)


def denoise_images(raw_images, method, cache_dir, on_image=None):
    """Denoise each (H, W) image in [0, 1] once with ``method``, caching every result in
    ``cache_dir``; ``on_image(done)`` is called after each image (e.g. to draw progress)."""
    fn = denoiser(method)
    out = np.empty_like(raw_images)
    for i, image in enumerate(raw_images):
        out[i] = cached_apply(fn, np.clip(image, 0.0, 1.0), {}, cache_dir)
        if on_image is not None:
            on_image(i + 1)
    return out
