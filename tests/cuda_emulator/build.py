"""Compile a CUDA source from cuda/ with g++ against runtime.h and call its kernels from
Python, with the argument checks a GPU would not make.

Steps for one source text:
1. ``g++ -E`` expands its macros, so every ``extern "C" __global__`` kernel, also those
   stamped out by a macro, can be read off with its parameter list.
2. ``extern __shared__ T name[];`` (dynamic shared memory, which has no host spelling)
   becomes a pointer into the emulator's shared buffer.
3. One wrapper per kernel, ``emu_launch_<name>(launch, params...)``, binds the arguments
   and hands the call to ``emu_launch``. The library is built once per source text and
   cached under the system's temporary folder.

A launch checks what CUDA takes on trust: every pointer argument is an emulated device
array of exactly the element type the kernel declares, every scalar a NumPy scalar of
exactly the declared C type (CuPy passes a Python int as a 64-bit integer, which an
``int`` parameter would misread), arrays are C-contiguous, and the argument count matches.
It also refuses what a GPU refuses: more threads per block than the kernel can launch
with (1024, or its ``__launch_bounds__``), and more dynamic shared memory than the
kernel's ``max_dynamic_shared_size_bytes`` (48 KiB unless raised, as CuPy's RawKernel
raises it, up to the device's opt-in limit ``DEVICE["sharedMemPerBlockOptin"]``).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
CXX = shutil.which("g++")

# With TINYSEG_EMULATOR_ASAN=1 the kernels are built with AddressSanitizer, which reports
# any read or write outside the arrays a kernel was given (NumPy's buffers come from
# malloc). The process must then run with libasan preloaded (``asan_environment``).
FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-Wno-unknown-pragmas")
if os.environ.get("TINYSEG_EMULATOR_ASAN") == "1":
    FLAGS += ("-fsanitize=address", "-fno-omit-frame-pointer", "-g")

KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\(\s*(\d+)[^)]*\)\s*)?'
                    r'(\w+)\s*\(([^)]*)\)')
DYNAMIC_SHARED = re.compile(r"extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;")

# C scalar type -> (ctypes type, NumPy dtype a launch must pass)
SCALARS = {
    "int": (ctypes.c_int, numpy.int32),
    "unsigned": (ctypes.c_uint, numpy.uint32),
    "unsigned int": (ctypes.c_uint, numpy.uint32),
    "long long": (ctypes.c_longlong, numpy.int64),
    "float": (ctypes.c_float, numpy.float32),
    "double": (ctypes.c_double, numpy.float64),
}
POINTEES = {"float": numpy.float32, "double": numpy.float64, "int": numpy.int32,
            "long long": numpy.int64, "unsigned char": numpy.uint8, "bool": numpy.bool_}


@functools.lru_cache(maxsize=None)
def asan_environment():
    """Environment variables that run a Python process with the kernels under AddressSanitizer,
    or None where g++ has no libasan."""
    if CXX is None:
        return None
    library = subprocess.run([CXX, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(library) or not os.path.exists(library):
        return None
    return {"TINYSEG_EMULATOR_ASAN": "1", "LD_PRELOAD": library, "ASAN_OPTIONS": "detect_leaks=0"}


# The properties of the emulated device that tinyseg reads (cupy.cuda.runtime.getDeviceProperties),
# with the limits of a recent data-centre GPU.
DEVICE = {"name": b"CUDA emulator (CPU)", "multiProcessorCount": 4, "maxThreadsPerBlock": 1024,
          "warpSize": 32, "regsPerBlock": 65536, "sharedMemPerBlock": 48 * 1024,
          "sharedMemPerBlockOptin": 227 * 1024}
REGISTERS = 32   # registers per thread a kernel reports: the emulator allocates none
_SHARED_LIMITS = {}   # (library path, kernel) -> max_dynamic_shared_size_bytes, as the driver keeps it


class EmuLaunch(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3),
                ("shared_bytes", ctypes.c_ulonglong), ("barriers", ctypes.c_int)]


class CompileError(RuntimeError):
    pass


class Parameter:
    def __init__(self, text):
        words = text.replace("*", " * ").split()
        self.name = words[-1]
        type_words = [w for w in words[:-1] if w not in ("const", "__restrict__", "__restrict")]
        self.pointer = "*" in type_words
        self.base = " ".join(w for w in type_words if w != "*")
        table = POINTEES if self.pointer else SCALARS
        if self.base not in table:
            raise CompileError(f"the emulator does not know the parameter type of {text.strip()!r}")
        self.ctype = ctypes.c_void_p if self.pointer else SCALARS[self.base][0]
        self.dtype = numpy.dtype(POINTEES[self.base] if self.pointer else SCALARS[self.base][1])

    def convert(self, value, kernel, device_array):
        where = f"{kernel}: parameter {self.name}"
        if self.pointer:
            if not isinstance(value, device_array):
                raise TypeError(f"{where} takes a device array, got {type(value).__name__}")
            if value.dtype != self.dtype:
                raise TypeError(f"{where} is {self.base}*, got an array of {value.dtype}")
            if not value.flags.c_contiguous:   # a kernel indexes its arrays as dense
                raise TypeError(f"{where} got a non-contiguous array (strides {value.strides})")
            return value.ctypes.data
        if not isinstance(value, numpy.generic) or value.dtype != self.dtype:
            got = value.dtype if isinstance(value, numpy.generic) else type(value).__name__
            raise TypeError(f"{where} is {self.base}: pass numpy.{self.dtype} (got {got})")
        return value.item()


class Kernel:
    """One kernel of a compiled source, called as CuPy's RawModule functions are:
    ``kernel(grid, block, args, shared_mem=0)``, with RawKernel's attributes."""

    def __init__(self, library, name, parameters, barriers, device_array, launch_bound=None):
        self.name, self.parameters, self.barriers = name, parameters, barriers
        self._device_array = device_array
        self._key = (library._name, name)
        self._max_threads = min(DEVICE["maxThreadsPerBlock"], launch_bound or DEVICE["maxThreadsPerBlock"])
        self._function = getattr(library, f"emu_launch_{name}")
        self._function.argtypes = [ctypes.POINTER(EmuLaunch)] + [p.ctype for p in parameters]
        self._function.restype = ctypes.c_int
        self._last_error = library.emu_last_error
        self._last_error.restype = ctypes.c_char_p

    @property
    def max_threads_per_block(self):
        return self._max_threads

    @property
    def num_regs(self):
        return REGISTERS

    @property
    def max_dynamic_shared_size_bytes(self):
        return _SHARED_LIMITS.get(self._key, DEVICE["sharedMemPerBlock"])

    @max_dynamic_shared_size_bytes.setter
    def max_dynamic_shared_size_bytes(self, size):
        if not 0 <= size <= DEVICE["sharedMemPerBlockOptin"]:
            raise RuntimeError(f"{self.name}: CUDA_ERROR_INVALID_VALUE: {size} bytes of dynamic shared memory "
                               f"is past the device's opt-in limit {DEVICE['sharedMemPerBlockOptin']}")
        _SHARED_LIMITS[self._key] = int(size)

    @property
    def attributes(self):
        return {"max_threads_per_block": self.max_threads_per_block, "shared_size_bytes": 0,
                "const_size_bytes": 0, "local_size_bytes": 0, "num_regs": self.num_regs, "ptx_version": -1,
                "binary_version": -1, "cache_mode_ca": 0,
                "max_dynamic_shared_size_bytes": self.max_dynamic_shared_size_bytes,
                "preferred_shared_memory_carveout": -1}

    def __call__(self, grid, block, args, shared_mem=0):
        if len(args) != len(self.parameters):
            raise TypeError(f"{self.name} takes {len(self.parameters)} arguments, got {len(args)}")
        grid, block = _dim3(grid, "grid"), _dim3(block, "block")
        if block[0] * block[1] * block[2] > self._max_threads:
            raise ValueError(f"{self.name}: {block} is more than the {self._max_threads} threads per block "
                             "it can launch with")
        if shared_mem > self.max_dynamic_shared_size_bytes:
            raise ValueError(f"{self.name}: {shared_mem} bytes of dynamic shared memory, more than its "
                             f"max_dynamic_shared_size_bytes ({self.max_dynamic_shared_size_bytes})")
        values = [p.convert(a, self.name, self._device_array) for p, a in zip(self.parameters, args)]
        launch = EmuLaunch((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), int(shared_mem),
                           int(self.barriers))
        if self._function(ctypes.byref(launch), *values) != 0:
            raise RuntimeError(f"{self.name}: {self._last_error().decode()}")


def _dim3(value, what):
    value = tuple(int(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))
    if not 1 <= len(value) <= 3 or min(value) < 1:
        raise ValueError(f"launch {what} must be 1 to 3 positive sizes, got {value}")
    return value + (1,) * (3 - len(value))


def _run(command, what):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise CompileError(f"{what} failed:\n{result.stderr}")
    return result.stdout


def _wrapper(name, params):
    """``emu_launch_<name>``: the kernel's parameters, bound into a call that emu_launch runs
    once per thread."""
    declared = ", ".join(f"{'const ' if p.pointer else ''}{p.base}{'*' if p.pointer else ''} {p.name}"
                         for p in params)
    passed = ", ".join(f"({p.base}*){p.name}" if p.pointer else p.name for p in params)
    return (f'extern "C" int emu_launch_{name}(const EmuLaunch* launch, {declared})\n'
            f"{{ return emu_launch(launch, [&] {{ {name}({passed}); }}); }}\n")


def compile_source(code, options=(), filename="kernel.cu"):
    """Build ``code`` (a .cu file's text); returns {kernel name: (library, parameters, barriers,
    launch bound or None)}.
    ``filename`` is the name compiler errors and sanitizer reports give the source."""
    if CXX is None:
        raise CompileError("the CUDA emulator needs g++ on PATH")
    runtime_path = os.path.join(HERE, "runtime.h")
    with open(runtime_path, encoding="utf-8") as f:
        runtime = f.read()
    with open(__file__, encoding="utf-8") as f:          # the wrappers are generated here
        generator = f.read()
    includes = [option for option in options if option.startswith("-I")]   # as NVRTC takes them
    folder = os.path.join(tempfile.gettempdir(), f"tinyseg-cuda-emulator-{os.getuid()}")
    os.makedirs(folder, exist_ok=True)
    # per-process names for the intermediate files: parallel builds never share a half-written file
    source_path, cpp_path, partial = (os.path.join(folder, f"{os.getpid()}.{id(code)}{ext}")
                                      for ext in (".cu", ".cpp", ".so.partial"))
    try:
        with open(source_path, "w", encoding="utf-8") as f:
            f.write(code)
        expanded = _run([CXX, "-E", "-P", "-x", "c++", *includes, source_path], "g++ -E")
        # the key covers the included headers through the expanded text
        key = hashlib.sha256("\0".join((code, expanded, filename, runtime, generator, *FLAGS, *options))
                             .encode()).hexdigest()[:24]
        library_path = os.path.join(folder, f"{key}.so")
        kernels = {name: [Parameter(p) for p in params.split(",") if p.strip()]
                   for _, name, params in KERNEL.findall(expanded)}
        bounds = {name: int(bound) for bound, name, _ in KERNEL.findall(expanded) if bound}
        if not kernels:
            raise CompileError('no extern "C" __global__ kernels found')
        if not os.path.exists(library_path):
            body = DYNAMIC_SHARED.sub(r"\1* \2 = reinterpret_cast<\1*>(emu_dynamic_shared());", code)
            with open(cpp_path, "w", encoding="utf-8") as f:
                f.write(f'#include "{runtime_path}"\n#line 1 "{filename}"\n{body}\n')
                f.writelines(_wrapper(name, params) for name, params in kernels.items())
            _run([CXX, *FLAGS, *includes, "-o", partial, cpp_path], "g++")
            os.replace(partial, library_path)      # atomic: no process loads half a library
    finally:
        for path in (source_path, cpp_path, partial):
            if os.path.exists(path):
                os.remove(path)
    barriers = "__syncthreads" in code
    library = ctypes.CDLL(library_path)
    return {name: (library, params, barriers, bounds.get(name)) for name, params in kernels.items()}
