"""Run a script on the CPU emulation of CUDA (tests/cuda_emulator) instead of a GPU:

    python benchmarks/emulated.py SCRIPT [ARGS...]

CuPy becomes the emulator's stand-in before the script imports tinyseg, so its
``--device cuda`` runs the kernels of cuda/ compiled with g++. It checks that a
script works end to end where no GPU is; it says nothing about speed.
"""
import os
import runpy
import sys

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    script = os.path.abspath(sys.argv[1])
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(script)        # as ``python SCRIPT`` would have it
    sys.path.append(TESTS)
    import cuda_emulator
    if not cuda_emulator.available():
        sys.exit("the CUDA emulator needs g++")
    cuda_emulator.install()
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
