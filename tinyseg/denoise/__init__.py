"""K-SVD denoising: Numba batch OMP, K-SVD dictionary learning, and the
H-ReNet paper's adaptive-filter denoiser.

    omp(D, X, n_nonzero=None, tol=None)         sparse codes (n_atoms, n_signals)
    ksvd(X, n_atoms, n_nonzero, n_iter, ...)    dictionary, error history
    ksvd_denoise(img, sigma=None, ...)          Elad & Aharon (2006)
    adaptive_filter_denoise(img, sigma=None, ...)  SVD filters of the dictionary
    collaborative_denoise(img, sigma=None, ...) groups of similar patches, 3-D filtered
    estimate_sigma(img)                         Donoho's MAD noise estimate
"""
from .denoise import (adaptive_basis, adaptive_filter_denoise, collaborative_denoise, ksvd_denoise,
                      learn_dictionary)
from .ksvd import ksvd, overcomplete_dct
from .omp import omp
from .sigma import estimate_sigma

__all__ = ["omp", "ksvd", "ksvd_denoise", "adaptive_filter_denoise", "collaborative_denoise",
           "estimate_sigma", "adaptive_basis", "learn_dictionary", "overcomplete_dct"]
