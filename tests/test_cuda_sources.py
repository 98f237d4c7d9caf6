"""Every kernel source in cuda/ compiles to PTX for sm_80 and sm_90 (skipped without nvcc).

On the GPU, CuPy compiles these files with NVRTC when a kernel is first used; nvcc's PTX
build checks the same device code on machines without a GPU, as CI does. NVRTC adds no
include paths, so the sources must be self-contained.
"""
import glob
import os
import shutil
import subprocess

import pytest

SOURCES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), os.pardir, "cuda", "*.cu")))
NVCC = shutil.which("nvcc")


def test_kernel_sources_exist_and_include_nothing():
    assert SOURCES, "no cuda/*.cu files found"
    for path in SOURCES:
        with open(path, encoding="utf-8") as f:
            assert "#include" not in f.read(), f"{path}: NVRTC compiles it without include paths"


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", SOURCES, ids=os.path.basename)
def test_compiles_to_ptx(source, arch, tmp_path):
    result = subprocess.run([NVCC, "--ptx", "-std=c++14", f"-arch={arch}", "-o", str(tmp_path / "kernels.ptx"),
                             source], capture_output=True, text=True)
    assert result.returncode == 0, f"nvcc --ptx -arch={arch} failed on {source}:\n{result.stderr}"
