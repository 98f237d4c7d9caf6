"""Train H-ReNet on chest radiographs and write metrics, curves, overlays and checkpoints.

    python examples/train_jsrt.py                        # synthetic phantoms, "small" preset, CPU minutes
    python examples/train_jsrt.py --data JSRT/All247images --scr SCR --device cuda
    python examples/train_jsrt.py --resume               # continue runs/jsrt after an interruption
    mpiexec -n 4 python examples/train_jsrt.py           # one model on 4 processes (pip install -e ".[mpi]")

Every option and default is described by ``--help``, in ``tinyseg/app/config.py``
and in docs/07-training.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinyseg.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
