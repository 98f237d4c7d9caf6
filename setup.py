import glob
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class build_py_with_kernels(build_py):
    """Ship the repository's CUDA sources (``cuda/*.cu``, ``cuda/*.cuh``) inside the package,
    as ``tinyseg/cuda/``, where ``tinyseg.backend`` looks first."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return                     # an editable install reads the repository's cuda/ itself
        target = os.path.join(self.build_lib, "tinyseg", "cuda")
        self.mkpath(target)
        for pattern in ("*.cu", "*.cuh"):
            for source in sorted(glob.glob(os.path.join(HERE, "cuda", pattern))):
                self.copy_file(source, target)


setup(
    name="tinyseg",
    version="0.1.0",
    description="A compact, readable deep-learning engine (NumPy/CuPy) for medical image segmentation",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tinyseg", "tinyseg.*"]),
    cmdclass={"build_py": build_py_with_kernels},
    install_requires=["numpy>=1.24", "scipy>=1.10", "numba>=0.58", "pillow>=9.0", "threadpoolctl>=3.1",
                      # Numba's TBB threading layer (tinyseg/cpu_runtime.py); elsewhere the workqueue layer
                      "tbb>=2021.6; sys_platform == 'linux' and platform_machine == 'x86_64'"],
    extras_require={
        "gpu": ["cupy-cuda13x"],
        # setuptools builds the wheel of the packaging test (bdist_wheel is built in since 70.1)
        "test": ["pytest>=7", "hypothesis>=6", "setuptools>=70.1"],
        "bench": ["torch", "bm3d", "scikit-image"],
        # data-parallel training: mpi4py, and MPICH's wheel, which brings mpiexec
        "mpi": ["mpi4py", "mpich"],
    },
)
