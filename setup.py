from setuptools import find_packages, setup

setup(
    name="tinyseg",
    version="0.1.0",
    description="A compact, readable deep-learning engine (NumPy/CuPy) for medical image segmentation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tinyseg", "tinyseg.*"]),
    install_requires=["numpy>=1.24", "scipy>=1.10", "numba>=0.58", "pillow>=9.0"],
    extras_require={
        "gpu": ["cupy-cuda13x"],
        "test": ["pytest>=7", "hypothesis>=6"],
        "bench": ["torch"],
    },
)
