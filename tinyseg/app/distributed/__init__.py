"""Data-parallel training: one model on several processes, launched by ``mpiexec``.

    mpiexec -n 4 python examples/train_jsrt.py --data JSRT --scr SCR     # --distributed is implied

Every rank holds the whole model. Each step's global batch (``--batch-size``) is split
across the ranks; each rank runs forward and backward on its share, the gradients are
summed over the ranks with an all-reduce, and every rank takes the same optimizer step,
so the weights stay identical everywhere (docs/11-data-parallel.md tells why this equals
training on the whole batch in one process).

Three communicators share one small interface:

    SingleProcess      size 1: every collective is the identity (the ordinary run)
    MPICommunicator    mpi4py on NumPy buffers (CPU)
    NCCLCommunicator   NCCL (cupy.cuda.nccl) on CuPy buffers, one GPU per rank chosen from
                       the rank's place on its machine; the NCCL id travels over MPI, which
                       also carries the few Python objects (errors, scores, metrics)

``GradientReducer`` packs the gradients into a few contiguous buckets and starts each
bucket's all-reduce (non-blocking) as soon as backward has produced all of its
gradients, so communication overlaps the rest of backward; the optimizer step waits.

Batch norm is synchronised by default (``--batchnorm sync``): the batch mean and variance
are those of the global batch, so N ranks compute what one process computes on the whole
batch. ``--batchnorm per-rank`` normalises each rank's share on its own (PyTorch DDP's
default; no communication in forward) and averages the running statistics every epoch.

Faults. Every blocking wait polls with a deadline (``--rank-timeout``): a rank that died
or hangs makes the others stop with a message naming the operation instead of waiting
forever. An error raised on one rank only ends the whole job (``MPI_Abort``) after that
rank printed it; an error every rank meets (a bad setting, a diverged loss) is printed
once, by rank 0. Only rank 0 writes files, and checkpoints are written atomically, so the
last one stays intact whatever happens.

    comm.py        launch detection, the communicators, their deadline-bounded waits
    buckets.py     GradientReducer: bucketed all-reduce overlapping backward
    batchnorm.py   synchronised batch norm
    training.py    what the training loop calls: shares, evaluation, DataParallel, flags
"""
from .batchnorm import SyncBatchNorm2d, SyncBatchNormFunction, synchronise_batchnorm
from .buckets import GradientReducer
from .comm import (BATCHNORM_MODES, DEFAULT_BUCKET_MB, DEFAULT_RANK_TIMEOUT, LAUNCH_RANK_VARIABLES,
                   LAUNCH_SIZE_VARIABLES, MPI_EXTRA, DistributedError, MPICommunicator, NCCLCommunicator,
                   SingleProcess, communicator, current, device_pointer, import_mpi, is_root, launched_ranks)
from .training import (DataParallel, add_arguments, average_buffers, batch_share, broadcast_weights,
                       check_same_everywhere, check_settings, denoise_share, evaluate)
