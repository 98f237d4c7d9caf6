"""tinyseg: a compact deep-learning engine for medical image segmentation."""
from .autograd import no_grad
from .backend import cuda_available
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor, tensor, zeros
from . import functional

__version__ = "0.1.0"


def __getattr__(name):  # heavier subpackages load on first use: ts.nn, ts.optim, ts.models, ...
    import importlib
    if name in ("nn", "optim", "models", "metrics", "data", "denoise", "train"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tinyseg' has no attribute {name!r}")


__all__ = ["GradcheckError", "Tensor", "cuda_available", "functional", "gradcheck", "no_grad",
           "tensor", "zeros"]
