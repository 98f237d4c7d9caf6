"""A wheel of tinyseg, installed into a fresh virtualenv, finds its CUDA sources."""
import glob
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.py", "MANIFEST.in", "README.md", "tinyseg", "cuda")
SHOW = """
import json, os, tinyseg, tinyseg.backend as backend
print(json.dumps({"package": tinyseg.__file__, "cuda_dir": backend.CUDA_SOURCE_DIR,
                  "kernels": sorted(os.listdir(backend.CUDA_SOURCE_DIR))}))
"""


def run(*command, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_ships_every_kernel_source(tmp_path):
    # Build from a copy, so that the checkout gets no build/ or .egg-info folders.
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if os.path.isdir(os.path.join(ROOT, name)) else shutil.copy2
        kwargs = {"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}
        copy(os.path.join(ROOT, name), source / name, **kwargs)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-q", "-w", str(tmp_path / "dist"), str(source), cwd=tmp_path)
    wheel, = glob.glob(str(tmp_path / "dist" / "tinyseg-*.whl"))

    # A bare virtualenv that sees this interpreter's packages (numpy, numba, ...) through a
    # .pth file; installed editable hooks in those folders are not run, so only the wheel's
    # tinyseg can be imported.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp_path)
    python = str(venv / "bin" / "python")
    venv_site = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=tmp_path).strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    with open(os.path.join(venv_site, "outer_packages.pth"), "w") as f:
        f.write("\n".join(sorted(p for p in ours if os.path.isdir(p))) + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q",
        wheel, cwd=tmp_path)

    shown = json.loads(run(python, "-c", SHOW, cwd=tmp_path).strip().splitlines()[-1])
    assert shown["package"].startswith(str(venv)), shown["package"]
    assert shown["cuda_dir"] == os.path.join(venv_site, "tinyseg", "cuda")
    expected = sorted(os.path.basename(p) for pattern in ("*.cu", "*.cuh")
                      for p in glob.glob(os.path.join(ROOT, "cuda", pattern)))
    assert expected and shown["kernels"] == expected
