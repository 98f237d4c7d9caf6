"""tinyseg: a compact deep-learning engine for medical image segmentation."""
from .autograd import no_grad
from .backend import cuda_available
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor, tensor, zeros
from . import functional

__version__ = "0.1.0"


# Heavier subpackages load on first use: ts.nn, ts.optim, ts.models, ... The application's
# metrics are also ts.metrics, as in the API contract.
_LAZY = {"nn": ".nn", "optim": ".optim", "models": ".models", "data": ".data", "denoise": ".denoise",
         "app": ".app", "metrics": ".app.metrics"}


def __getattr__(name):
    import importlib
    if name in _LAZY:
        return importlib.import_module(_LAZY[name], __name__)
    raise AttributeError(f"module 'tinyseg' has no attribute {name!r}")


__all__ = ["GradcheckError", "Tensor", "cuda_available", "functional", "gradcheck", "no_grad",
           "tensor", "zeros"]
