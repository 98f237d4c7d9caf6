"""Train H-ReNet on chest radiographs and write metrics, curves, overlays and checkpoints.

    python examples/train_jsrt.py                        # synthetic phantoms, "small" preset, CPU minutes
    python examples/train_jsrt.py --data JSRT/All247images --scr SCR --device cuda   # paper preset, 400 x 500
    python examples/train_jsrt.py --data JSRT/All247images --scr SCR   # on a CPU: small preset, 256 x 256
    python examples/train_jsrt.py --resume               # continue runs/jsrt after an interruption
    mpiexec -n 4 python examples/train_jsrt.py           # one model on 4 processes (pip install -e ".[mpi]")

Before training a line says what will run and about how long it will take.
``examples/evaluate.py`` scores a checkpoint on any labelled dataset. Every option
and default is described by ``--help``, in ``tinyseg/app/config.py`` and in
docs/07-training.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinyseg.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
