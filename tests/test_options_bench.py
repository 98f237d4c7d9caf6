"""benchmarks/options.py: its contour distance and a one-epoch run of two configurations."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import options  # noqa: E402


def square(top, left, size=10, shape=(40, 40)):
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + size, left:left + size] = True
    return mask


def test_contour_distance():
    a = square(10, 10)
    assert options.contour_distance(a, a) == 0.0
    shifted = options.contour_distance(square(10, 13), a)
    assert 1.0 < shifted < 3.0                  # the sides 3 apart, the top and bottom overlap
    assert options.contour_distance(square(10, 16), a) > shifted
    assert options.contour_distance(np.zeros_like(a), a) == np.hypot(40, 40)
    assert options.contour_distance(np.zeros_like(a), np.zeros_like(a)) == 0.0
    dice, distance, worst = options.scores(np.stack([a * 1, a * 2]), np.stack([a * 1, a * 2]))
    np.testing.assert_allclose(dice[1:], 1.0)
    np.testing.assert_allclose(distance[1:], 0.0)


def test_a_tiny_run_writes_both_files(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "options.py"), "--epochs", "1", "--n-train", "8",
                    "--n-test", "4", "--size", "48", "64", "--configs", "paper", "fcn8+bn equalize scanner-aug",
                    "--stem", "tiny", "--out", str(tmp_path)], check=True, cwd=ROOT, capture_output=True,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    results = json.loads((tmp_path / "tiny.json").read_text())["results"]
    assert [r["name"] for r in results] == ["paper", "fcn8+bn equalize scanner-aug"]
    for r in results:
        assert set(r) >= {"clean", "shifted", "train_seconds", "parameters"}
        assert 0 <= r["clean"]["dice_lungs"] <= 1
    assert "| fcn8+bn equalize scanner-aug |" in (tmp_path / "tiny.md").read_text()
