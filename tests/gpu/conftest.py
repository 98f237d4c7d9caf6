"""Setup of the GPU tests (each module skips itself without CuPy or a CUDA device).

TF32 policy: float32 GEMMs must run in full float32, or a 1e-4 comparison with the CPU
would measure TF32's 10-bit mantissa instead of our kernels. CuPy uses TF32 only when
CUPY_TF32 is set to a positive value when it first multiplies float32 matrices; we set
it to 0 and, where CuPy exposes it, also pin cuBLAS's float32 compute type to
"pedantic" (CUBLAS_COMPUTE_32F_PEDANTIC: no reduced-precision shortcuts). The
convolutions' GEMMs (``cupy.cublas.gemm``, cublasSgemm) use the handle's math mode,
which is full float32 unless TF32 is asked for, and NVIDIA_TF32_OVERRIDE=0 forbids it.

Poisoning: every buffer a kernel is to fill starts as NaN (integers: -1), so a kernel
that skips an element fails the comparison.
"""
import os
import sys

import numpy as np
import pytest

if os.environ.get("TINYSEG_CUDA_EMULATOR") == "1":
    # no GPU: run these tests against the CPU emulation of CuPy and cuda/ (tests/cuda_emulator)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import cuda_emulator
    cuda_emulator.install()

os.environ["CUPY_TF32"] = "0"
os.environ["NVIDIA_TF32_OVERRIDE"] = "0"   # cuBLAS/cuDNN: never substitute TF32


def _pin_float32_gemms():
    try:
        from cupy._core import _routines_linalg as linalg
    except Exception:  # no CuPy (the tests skip), or a CuPy without this module
        return
    pedantic = getattr(linalg, "COMPUTE_TYPE_PEDANTIC", None)
    if pedantic is not None:
        linalg.set_compute_type(np.float32, pedantic)


_pin_float32_gemms()


@pytest.fixture(autouse=True)
def poison_kernel_outputs(monkeypatch):
    from tinyseg.ops import gpu
    monkeypatch.setattr(gpu, "POISON", True)
