"""The segmentation application on top of the engine: training H-ReNet, scoring it,
checkpoints, inference on new radiographs, progress bars and pictures.

    from tinyseg.app import TrainConfig, train, Segmenter
    metrics = train(TrainConfig(epochs=2, out="runs/try"))       # synthetic phantoms
    labels = Segmenter.from_checkpoint("runs/try/best.npz").segment(image)

``python -m tinyseg.app --help`` (or ``examples/train_jsrt.py``) is the command line.

    config.py      TrainConfig, the defaults for synthetic and real data, resume merging
    loop.py        train(): data, model, optimiser, epochs, divergence checks, checkpoints
    cli.py         argument parsing and main()
    errors.py      which errors a user can fix, and their one-line message
    evaluate.py    scoring a split or a checkpoint; metrics.json, history.json, curves, overlays
    metrics.py     Dice, Jaccard, pixel accuracy, contour distances (mean and Hausdorff)
    checkpoint.py  .npz checkpoints with JSON metadata
    inference.py   Segmenter: a checkpoint's model and preprocessing for new images
    progress.py    progress on stderr (a bar on a terminal, lines in a log) and the run-time estimate
    pictures.py    overlays, comparison panels and line charts as PNG
    distributed/   data-parallel training under mpiexec: MPI and NCCL communicators, bucketed
                   gradient all-reduce, synchronised batch norm, one rank writing
"""
from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .cli import main
from .config import TrainConfig, resolve_defaults
from .evaluate import evaluate, predict
from .inference import Segmenter, read_radiograph
from .errors import TrainingDiverged
from .loop import learning_rate, train
from .metrics import dice, jaccard, pixel_accuracy

__all__ = ["CheckpointError", "Segmenter", "TrainConfig", "TrainingDiverged", "dice", "evaluate",
           "jaccard", "learning_rate", "load_checkpoint", "main", "pixel_accuracy", "predict",
           "read_checkpoint", "read_radiograph", "resolve_defaults", "save_checkpoint", "train"]
