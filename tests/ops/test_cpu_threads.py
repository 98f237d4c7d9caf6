"""The Numba kernels' OpenMP threads sleep between parallel loops unless the user says otherwise."""


def test_openmp_threads_sleep_unless_the_user_says_otherwise():
    import os
    import subprocess
    import sys
    code = "import os, tinyseg; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "ACTIVE"
