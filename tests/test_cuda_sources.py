"""Every kernel source in cuda/ compiles to PTX for sm_80 and sm_90 (skipped without nvcc).

On the GPU, CuPy compiles these files with NVRTC when a kernel is first used; nvcc's PTX
build checks the same device code on machines without a GPU, as CI does. The sources share
one header, cuda/common.cuh, and include nothing else: NVRTC is given cuda/ as its only
include path (``tinyseg.ops.gpu.INCLUDE``) and no system headers.
"""
import glob
import os
import shutil
import subprocess

import pytest

SOURCES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), os.pardir, "cuda", "*.cu")))
NVCC = shutil.which("nvcc")


def test_kernel_sources_exist_and_include_only_the_common_header():
    assert SOURCES, "no cuda/*.cu files found"
    for path in SOURCES + [os.path.join(os.path.dirname(SOURCES[0]), "common.cuh")]:
        with open(path, encoding="utf-8") as f:
            includes = [line.strip() for line in f if line.lstrip().startswith("#include")]
        expected = [] if path.endswith(".cuh") else ['#include "common.cuh"']
        assert includes == expected, f"{path}: includes {includes}, expected {expected}"


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", SOURCES, ids=os.path.basename)
def test_compiles_to_ptx(source, arch, tmp_path):
    result = subprocess.run([NVCC, "--ptx", "-std=c++14", f"-arch={arch}", "-o", str(tmp_path / "kernels.ptx"),
                             source], capture_output=True, text=True)
    assert result.returncode == 0, f"nvcc --ptx -arch={arch} failed on {source}:\n{result.stderr}"
