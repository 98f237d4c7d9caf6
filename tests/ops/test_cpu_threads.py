"""tinyseg leaves OpenMP (PyTorch's runtime) alone and runs its Numba kernels on the workqueue
layer, unless the user chose a threading layer."""
import os
import subprocess
import sys

CODE = """
import os, numpy as np, numba, tinyseg as ts, tinyseg.functional as F
F.conv2d(ts.tensor(np.ones((1, 1, 8, 8))), ts.tensor(np.ones((2, 1, 3, 3))), padding=1)
print(numba.threading_layer(), os.environ.get("OMP_WAIT_POLICY"), os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
"""


def run(env_changes):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "NUMBA_THREADING_LAYER")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_kernels_run_on_the_workqueue_layer_and_no_environment_variable_is_set():
    assert run({}) == ["workqueue", "None", "None"]


def test_a_threading_layer_the_user_chose_wins():
    assert run({"NUMBA_THREADING_LAYER": "omp"})[0] == "omp"
