"""Run tinyseg's GPU code paths and the kernels in cuda/ on the CPU, for tests on machines
without a GPU: ``install()`` makes ``fake_cupy`` tinyseg's CuPy. See runtime.h and
build.py for how kernels run, and fake_cupy.py for what the emulation cannot show."""
import sys

from . import fake_cupy
from .build import CXX


def available() -> bool:
    return CXX is not None


def install():
    """Route tinyseg's device "cuda" to the emulator in this process (before tinyseg compiles
    any kernel). Returns the stand-in module."""
    import tinyseg.backend as backend
    sys.modules["cupy"] = fake_cupy
    backend._cupy = fake_cupy
    return fake_cupy
