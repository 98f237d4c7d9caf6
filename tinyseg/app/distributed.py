"""Data-parallel training: one model on several processes, launched by ``mpiexec``.

    mpiexec -n 4 python examples/train_jsrt.py --data JSRT --scr SCR     # --distributed is implied

Every rank holds the whole model. Each step's global batch (``--batch-size``) is split
across the ranks; each rank runs forward and backward on its share, the gradients are
summed over the ranks with an all-reduce, and every rank takes the same optimizer step,
so the weights stay identical everywhere (docs/08-data-parallel.md tells why this equals
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
"""
from __future__ import annotations

import math
import os
import sys
import time
import traceback
from typing import NamedTuple

import numpy as np

from .. import functional as F
from ..autograd import Edge
from ..backend import as_numpy, get_array_module
from ..nn import BatchNorm2d
from ..ops.cpu import norm as cpu_norm
from ..ops.norm import BatchNorm2d as BatchNormFunction, update_running_stats
from ..tensor import tensor

BATCHNORM_MODES = ("sync", "per-rank")
DEFAULT_BUCKET_MB = 25.0          # DDP's default bucket size
DEFAULT_RANK_TIMEOUT = 600.0      # seconds a rank waits for the others before giving up
MPI_EXTRA = 'pip install -e ".[mpi]" (mpi4py and the mpich wheel, which brings mpiexec)'
# Environment variables through which launchers announce the number of processes and the rank.
LAUNCH_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
LAUNCH_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


class DistributedError(RuntimeError):
    """Distributed training cannot start or cannot go on (missing MPI, a lost rank)."""


def launched_ranks() -> int:
    """The number of processes an MPI launcher started (1 when not launched by one)."""
    for name in LAUNCH_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as err:
        if any(os.environ.get(name, "0") != "0" for name in LAUNCH_RANK_VARIABLES):
            raise SystemExit(2) from None          # the launcher's rank 0 says it, once
        raise DistributedError(f"--distributed needs mpi4py and an MPI library; install them with "
                               f"{MPI_EXTRA}, then launch with mpiexec -n N ({err})") from None
    return MPI


_current = None


def current():
    """The communicator of the run in progress in this process (a SingleProcess one if none)."""
    return _current if _current is not None else SingleProcess()


def is_root() -> bool:
    return current().rank == 0


def communicator(distributed=None, timeout=DEFAULT_RANK_TIMEOUT):
    """The communicator for a run: ``distributed`` True, False, or None (on when launched by
    mpiexec with more than one process). One MPI communicator serves a whole process."""
    global _current
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        timeout = DEFAULT_RANK_TIMEOUT          # check_settings reports it, once setup is agreed
    if distributed is None:
        distributed = launched_ranks() > 1
    if not distributed:
        return SingleProcess()
    if isinstance(_current, MPICommunicator):
        _current.timeout = timeout
        return _current
    _current = MPICommunicator(import_mpi(), timeout)
    return _current


# -- communicators ---------------------------------------------------------------------------

class SingleProcess:
    """One process: the collectives are identities, and errors travel as they are."""

    rank, size, local_rank = 0, 1, 0

    def run(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def use_device(self, device):
        pass

    def allreduce(self, array, what="all-reduce"):
        return array

    def start_allreduce(self, array, what="all-reduce"):
        return array

    def wait(self, handle):
        pass

    def progress(self, handles):
        pass

    def allgather(self, value, what="gather"):
        return [value]

    def on_root(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def agreed_error(self, err):
        return err

    def end_setup(self):
        pass


class MPICommunicator:
    """MPI over ``COMM_WORLD`` with NumPy buffers; see the module docstring for the fault rules."""

    def __init__(self, MPI, timeout=DEFAULT_RANK_TIMEOUT):
        self.MPI, self.comm, self.timeout = MPI, MPI.COMM_WORLD, timeout
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_rank = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank).Get_rank()
        self.setup = True             # until training starts: every collective first checks errors
        self.together = False         # the error in flight is known to every rank
        self.device_comm = None       # NCCL, once the run moves to a GPU

    # -- waiting with a deadline -------------------------------------------------------
    def _wait(self, request, what):
        """Poll ``request`` until it completes; past the deadline, stop the whole job.
        (A blocking MPI call would hold the interpreter, so no other thread could notice.)"""
        started = time.monotonic()
        while True:
            try:
                if request.Test():        # MPICH moves a transfer on only inside MPI calls
                    return
            except self.MPI.Exception as err:
                self.abort(f"{what} failed: {err.Get_error_string()}; another rank has probably died")
            waited = time.monotonic() - started
            if waited > self.timeout:
                self.abort(f"no answer from the other ranks for {self.timeout:g} s during {what}: a rank "
                           "died or hangs (--rank-timeout sets this limit)")
            # first only yield the core (a rank sharing it may be the one we wait for), then sleep
            time.sleep(0 if waited < 0.05 else min(waited / 50, 1e-3))

    def abort(self, message):
        """Print ``message`` as this rank's error line and end every process of the job."""
        print(f"error: rank {self.rank}: {message}", file=sys.stderr, flush=True)
        try:
            self.comm.Abort(2)
        finally:
            os._exit(2)

    # -- collectives -----------------------------------------------------------------
    def _setup_agreed(self):
        if self.setup:
            self._agree(None)

    def end_setup(self):
        """Training starts: from now on an error on one rank ends the job (see ``run``)."""
        if self.setup:
            self._agree(None)
            self.setup = False

    def _agree(self, error):
        """Every rank says whether its setup failed; all raise when one did. While setting up,
        each collective starts with this, so a rank that failed (and calls it from ``run``)
        meets the others there."""
        failures = self._objects(self.comm.allgather, (self.rank, _describe(error)), "setup")
        failed = [(rank, message) for rank, message in failures if message is not None]
        if failed:
            rank, message = failed[0]
            self.together = True
            raise (error if error is not None and rank == self.rank
                   else DistributedError(f"rank {rank}: {message}"))

    def _objects(self, collective, value, what):
        """A collective on Python objects, entered only once every rank has arrived."""
        self._wait(self.comm.Ibarrier(), what)
        return collective(value)

    def allgather(self, value, what="gather"):
        self._setup_agreed()
        return self._objects(self.comm.allgather, value, what)

    def allreduce(self, array, what="all-reduce"):
        """Sum ``array`` over the ranks in place (and return it)."""
        self.wait(self.start_allreduce(array, what))
        return array

    def start_allreduce(self, array, what="all-reduce"):
        """Start summing ``array`` in place; ``wait(handle)`` completes it."""
        self._setup_agreed()
        if get_array_module(array) is not np:
            return self._device().start_allreduce(array, what)
        return (self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM), what)

    def progress(self, handles):
        """Let started reductions advance (MPI moves them on only inside its calls)."""
        for handle in handles:
            if not isinstance(handle, DeviceWait):
                handle[0].Test()

    def wait(self, handle):
        if isinstance(handle, DeviceWait):
            self._device().wait(handle)
        else:
            self._wait(*handle)

    def _device(self):
        if self.device_comm is None:
            raise DistributedError("GPU arrays reached the communicator before use_device('cuda')")
        return self.device_comm

    def use_device(self, device):
        """Give this rank its own GPU (by its place on the machine) and connect the GPUs."""
        self._setup_agreed()
        if device != "cuda" or self.device_comm is not None:
            return
        from ..backend import _cupy as cupy
        cupy.cuda.Device(self.local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        self.device_comm = NCCLCommunicator(self, cupy)

    def on_root(self, fn, *args, **kwargs):
        """``fn(*args)`` on rank 0 alone (writing files); its result, or its error, reaches
        every rank."""
        self._setup_agreed()
        result, error = None, None
        if self.rank == 0:
            try:
                result = fn(*args, **kwargs)
            except Exception as err:       # every rank stops with it, rank 0 reports it
                error = err
        outcome = self._objects(lambda v: self.comm.bcast(v, root=0),
                                (result, _describe(error)) if self.rank == 0 else None, "waiting for rank 0")
        if error is not None:
            self.together = True
            raise error
        if outcome[1] is not None:
            self.together = True
            raise DistributedError(f"rank 0: {outcome[1]}")
        return outcome[0]

    # -- a whole run -------------------------------------------------------------------
    def run(self, fn, *args, **kwargs):
        """Run ``fn`` on this rank with the fault rules of the module docstring."""
        global _current
        _current, self.setup, self.together = self, True, False
        try:
            return fn(*args, **kwargs)
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as err:
            if self.setup and not self.together:   # the others meet it at their next collective
                try:
                    self._agree(err)
                except BaseException as first:
                    err = first
            if self.together:             # every rank stops here: rank 0 tells the user
                if self.rank == 0:
                    raise err
                raise SystemExit(2) from None
            if isinstance(err, KeyboardInterrupt):
                self.abort("interrupted; files already written (checkpoints included) are complete")
            if not isinstance(err, (OSError, ValueError, RuntimeError, MemoryError)):
                traceback.print_exc()
            self.abort(_describe(err))

    def agreed_error(self, err):
        """An error that every rank raises at the same point (such as a diverged loss)."""
        self.together = True
        return err


def _describe(error):
    if error is None:
        return None
    text = str(error) or type(error).__name__
    return text.splitlines()[0]


class DeviceWait(NamedTuple):
    """A started NCCL reduction: the event recorded after it on the stream."""
    event: object
    what: str


class NCCLCommunicator:
    """Sums of CuPy arrays between GPUs with NCCL, on the current stream; MPI carries the
    NCCL id. Waiting polls the stream's completion with the same deadline as MPI."""

    DTYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}

    def __init__(self, mpi, cupy, nccl=None):
        self.mpi, self.cupy = mpi, cupy
        self.nccl = nccl if nccl is not None else cupy.cuda.nccl
        unique_id = self.nccl.get_unique_id() if mpi.rank == 0 else None
        unique_id = mpi._objects(lambda v: mpi.comm.bcast(v, root=0), unique_id, "connecting the GPUs")
        self.comm = self.nccl.NcclCommunicator(mpi.size, unique_id, mpi.rank)

    def start_allreduce(self, array, what="all-reduce"):
        stream = self.cupy.cuda.get_current_stream()
        self.comm.allReduce(device_pointer(array), device_pointer(array), array.size,
                            getattr(self.nccl, self.DTYPES[array.dtype.name]), self.nccl.NCCL_SUM, stream.ptr)
        event = self.cupy.cuda.Event(disable_timing=True)
        event.record(stream)
        return DeviceWait(event, what)

    def wait(self, handle):
        event, what = handle
        deadline = time.monotonic() + self.mpi.timeout
        while not event.done:
            if time.monotonic() > deadline:
                self.comm.abort()
                self.mpi.abort(f"no answer from the other GPUs for {self.mpi.timeout:g} s during {what}: "
                               "a rank died or hangs (--rank-timeout sets this limit)")
            time.sleep(1e-4)


def device_pointer(array):
    """The address of a device array's first element."""
    return array.data.ptr


# -- gradients in buckets --------------------------------------------------------------------

class GradientReducer:
    """Sums the gradients of ``params`` over the ranks in a few contiguous buckets.

    Buckets hold parameters in reverse order (the order in which backward completes
    them) up to ``bucket_bytes`` each. While backward runs, each parameter's gradient is
    copied into its bucket as soon as it is complete (it has received one contribution
    per use in the graph); a bucket's all-reduce starts once it is full and every bucket
    before it has started (all ranks must start them in the same order). ``finish()``
    starts what is left, waits, and leaves each ``p.grad`` a view into its bucket.
    """

    def __init__(self, comm, params, bucket_bytes=DEFAULT_BUCKET_MB * 2 ** 20):
        self.comm, self.params = comm, list(params)
        self.buckets = []                        # [(flat array, [(param, offset)])]
        groups = {}                              # (device, dtype) -> [[members, bytes], ...]
        for p in reversed(self.params):
            buckets = groups.setdefault((p.device, p.dtype.str), [[[], 0]])
            if buckets[-1][0] and buckets[-1][1] + p.data.nbytes > bucket_bytes:
                buckets.append([[], 0])          # full: start the next (a large parameter fills one alone)
            buckets[-1][0].append(p)
            buckets[-1][1] += p.data.nbytes
        for buckets in groups.values():
            for members, _ in buckets:
                xp = get_array_module(members[0].data)
                flat = xp.zeros(sum(p.data.size for p in members), dtype=members[0].dtype)
                offsets = np.cumsum([0] + [p.data.size for p in members])
                self.buckets.append((flat, list(zip(members, offsets[:-1].tolist()))))
        self.where = {id(p): (b, offset) for b, (_, members) in enumerate(self.buckets)
                      for p, offset in members}
        self.pending, self.missing, self.handles = {}, [], []
        for p in self.params:
            p._accumulate = self._hook(p)

    def _hook(self, p):
        accumulate = type(p)._accumulate.__get__(p)

        def hook(grad):
            accumulate(grad)
            uses = self.pending.get(id(p))
            if uses is None:
                return
            if uses > 1:
                self.pending[id(p)] = uses - 1
                return
            del self.pending[id(p)]
            self._place(p)
        return hook

    def start(self, loss):
        """Before ``loss.backward()``: count every parameter's uses in the graph of ``loss``
        (``loss`` None: this rank computed nothing and contributes zeros)."""
        uses = _leaf_uses(loss) if loss is not None else {}
        self.pending = {id(p): uses[id(p)] for p in self.params if uses.get(id(p))}
        self.missing = [sum(1 for p, _ in members if id(p) in self.pending) for _, members in self.buckets]
        self.handles = []
        for flat, members in self.buckets:
            flat[...] = 0
        self._launch_ready()

    def _place(self, p):
        b, offset = self.where[id(p)]
        flat = self.buckets[b][0]
        flat[offset:offset + p.data.size] = p.grad.reshape(-1)
        self.missing[b] -= 1
        self._launch_ready()
        self.comm.progress(self.handles)

    def _launch_ready(self):
        while len(self.handles) < len(self.buckets) and self.missing[len(self.handles)] == 0:
            b = len(self.handles)
            self.handles.append(self.comm.start_allreduce(self.buckets[b][0], f"the all-reduce of bucket {b}"))

    def finish(self):
        """After backward: reduce the buckets not yet started, wait for all, set ``p.grad``."""
        for b, (flat, members) in enumerate(self.buckets):
            if len(self.handles) == b:          # gradients that never arrived count as zero
                for p, offset in members:
                    if id(p) in self.pending and p.grad is not None:
                        flat[offset:offset + p.data.size] = p.grad.reshape(-1)
                self.missing[b] = 0
                self._launch_ready()
        self.pending = {}
        for handle in self.handles:
            self.comm.wait(handle)
        for flat, members in self.buckets:
            for p, offset in members:
                p.grad = flat[offset:offset + p.data.size].reshape(p.shape)

    def detach(self):
        """Remove the hooks."""
        for p in self.params:
            p.__dict__.pop("_accumulate", None)


def _leaf_uses(root):
    """How many inputs of the functions behind ``root`` are each leaf tensor (by id)."""
    uses, seen, stack = {}, set(), [root.creator] if root.creator is not None else []
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        for item in fn.inputs:
            if isinstance(item, Edge):
                stack.append(item.producer)
            elif item.requires_grad:
                uses[id(item)] = uses.get(id(item), 0) + 1
    return uses


# -- synchronised batch norm -------------------------------------------------------------------

class SyncBatchNormFunction(BatchNormFunction):
    """Batch norm whose statistics are those of the global batch.

    Forward sums each channel (then its squared deviations) over the ranks: two
    all-reduces of C values. Backward sums sum(gy) and sum(gy * x_hat) the same way,
    since every input moved the shared mean and variance; the weight and bias gradients
    stay local (the gradient all-reduce sums them). A rank whose batch does not count
    (``counted`` False: a placeholder where the global batch had no image left for it)
    adds nothing to the statistics and gets a zero input gradient.
    """

    def __init__(self, comm, counted, momentum=0.1, eps=1e-5):
        super().__init__(True, momentum, eps)
        self.comm, self.counted = comm, counted

    def _stats(self, x, xp):
        n, c, p = x.shape
        head = xp.zeros(c + 1, dtype=np.float64)
        if self.counted:
            head[:c] = x.sum(axis=(0, 2), dtype=np.float64)
            head[c] = n * p
        self.comm.allreduce(head, "synchronised batch norm")
        self.total = float(head[c])
        mean = head[:c] / self.total
        squares = xp.zeros(c, dtype=np.float64)
        if self.counted:
            squares[...] = ((x - mean[None, :, None].astype(x.dtype)).astype(np.float64) ** 2).sum(axis=(0, 2))
        var = self.comm.allreduce(squares, "synchronised batch norm") / self.total
        return mean, var

    def forward_cpu(self, x, running_mean, running_var, weight, bias):
        self.check(x, running_mean, running_var, weight, bias)
        n, c, h, w = x.shape
        dtype = np.result_type(x, weight, bias)
        x = np.ascontiguousarray(x, dtype).reshape(n, c, h * w)
        mean, var = self._stats(x, np)
        update_running_stats(running_mean, running_var, mean, var, self.total, self.momentum)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        weight = weight.astype(np.float64)
        y = np.empty(x.shape, dtype)
        cpu_norm.normalize(x, mean, inv_std, weight, bias.astype(np.float64), y)
        self.save(x=x, mean=mean, inv_std=inv_std, weight=weight)
        return y.reshape(n, c, h, w)

    def forward_gpu(self, x, running_mean, running_var, weight, bias):
        from ..ops import gpu
        self.check(x, running_mean, running_var, weight, bias)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        x = gpu.contiguous(x).reshape(n, c, h * w)
        mean, var = self._stats(x, xp)
        update_running_stats(running_mean, running_var, mean, var, self.total, self.momentum)
        mean, inv_std = gpu.contiguous(mean, x.dtype), gpu.contiguous(1.0 / xp.sqrt(var + self.eps), x.dtype)
        weight, bias = gpu.contiguous(weight, x.dtype), gpu.contiguous(bias, x.dtype)
        y = gpu.norm.batch_norm_apply(x, mean, inv_std, weight, bias)
        self.save(x=x, mean=mean, inv_std=inv_std, weight=weight)
        return y.reshape(n, c, h, w)

    def _global_sums(self, sum_gy, sum_gy_xhat, xp):
        both = xp.concatenate([sum_gy, sum_gy_xhat]).astype(np.float64)
        self.comm.allreduce(both, "synchronised batch norm")
        c = len(sum_gy)
        return both[:c], both[c:]

    def backward_cpu(self, gy):
        x, mean, inv_std, weight = self.x, self.mean, self.inv_std, self.weight
        n, c, p = x.shape
        gy = np.ascontiguousarray(gy, x.dtype).reshape(n, c, p)
        sum_gy, sum_gy_xhat = np.zeros(c), np.zeros(c)
        cpu_norm.backward_sums(gy, x, mean, inv_std, sum_gy, sum_gy_xhat)
        all_gy, all_gy_xhat = self._global_sums(sum_gy, sum_gy_xhat, np)
        gx = np.empty(x.shape, x.dtype)
        if self.counted:
            cpu_norm.backward_input(gy, x, mean, inv_std, weight * inv_std, all_gy / self.total,
                                    all_gy_xhat / self.total, gx)
        else:
            gx[...] = 0
        return self.gradients(gx, sum_gy, sum_gy_xhat)

    def backward_gpu(self, gy):
        from ..ops import gpu
        xp = get_array_module(gy)
        n, c, p = self.x.shape
        gy = gpu.contiguous(gy, self.x.dtype).reshape(self.x.shape)
        sum_gy, sum_gy_xhat = gpu.norm.batch_norm_backward_sums(gy, self.x, self.mean, self.inv_std)
        all_gy, all_gy_xhat = self._global_sums(sum_gy, sum_gy_xhat, xp)
        if self.counted:   # the kernel divides the sums by this rank's n * p
            share = n * p / self.total
            gx = gpu.norm.batch_norm_backward_input(
                gy, self.x, self.mean, self.inv_std, self.weight * self.inv_std,
                (all_gy * share).astype(self.x.dtype), (all_gy_xhat * share).astype(self.x.dtype), True)
        else:
            gx = xp.zeros(self.x.shape, self.x.dtype)
        return self.gradients(gx, sum_gy, sum_gy_xhat)


class SyncBatchNorm2d(BatchNorm2d):
    """A ``BatchNorm2d`` whose training statistics span every rank (same parameters, buffers
    and state-dict names; ``synchronise_batchnorm`` turns existing layers into these)."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        return SyncBatchNormFunction(self.comm, self.counted, self.momentum, self.eps)(
            x, self.running_mean, self.running_var, self.weight, self.bias)


def synchronise_batchnorm(model, comm):
    """Turn every BatchNorm2d of ``model`` into a SyncBatchNorm2d in place (the module keeps
    its place, so parameter order, names and checkpoints are unchanged); returns them."""
    layers = [m for _, m in model.named_modules() if type(m) is BatchNorm2d]
    for layer in layers:
        layer.__class__ = SyncBatchNorm2d
        object.__setattr__(layer, "comm", comm)
        object.__setattr__(layer, "counted", True)
    return layers


# -- the pieces of a distributed run -----------------------------------------------------------

def check_settings(comm, config):
    """The settings of distributed training, each with its own message."""
    if config.batch_size < comm.size:
        raise ValueError(f"--batch-size {config.batch_size} is the global batch, shared by the {comm.size} "
                         f"ranks: it must be at least {comm.size}; raise --batch-size or launch fewer ranks")
    for flag, value in (("--bucket-mb", config.bucket_mb), ("--rank-timeout", config.rank_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                or not math.isfinite(value):
            raise ValueError(f"{flag} must be a positive number, got {value!r}")


def check_same_everywhere(comm, value, what):
    """Refuse a run whose ranks disagree on ``value`` (e.g. they read different data)."""
    values = comm.allgather(value, what)
    for rank, other in enumerate(values):
        if other != values[0]:
            raise comm.agreed_error(DistributedError(
                f"rank {rank} has other {what} than rank 0 ({other} vs {values[0]}); every rank "
                "must see the same files"))


def broadcast_weights(comm, model):
    """Rank 0's parameters and buffers on every rank (they agree already when built from the
    same seed; this makes it so whatever the initialiser does)."""
    if comm.size == 1:
        return
    for t in model.parameters() + [b for _, b in model.named_buffers()]:
        xp = get_array_module(t.data)
        buffer = t.data.copy() if comm.rank == 0 else xp.zeros_like(t.data)
        t.data[...] = comm.allreduce(buffer, "sharing the weights")


def average_buffers(comm, model):
    """Per-rank batch norm: the running statistics become the mean over the ranks."""
    for _, b in model.named_buffers():
        b.data[...] = comm.allreduce(b.data.copy(), "averaging batch-norm statistics") / comm.size


def denoise_share(comm, raw_images, method, cache_dir):
    """Each rank denoises every size-th image (rank, rank + size, ...) into the shared cache;
    afterwards every image's result is there for every rank to read."""
    if comm.size == 1:
        return
    from ..denoise.cache import denoise_images
    denoise_images(raw_images[comm.rank::comm.size], method, cache_dir)
    comm.allgather(None, "denoising")


def batch_share(comm, n_items, batch_size):
    """The slice of ``n_items`` this rank scores: whole batches, contiguous, in rank order."""
    batches = math.ceil(n_items / batch_size)
    first, last = comm.rank * batches // comm.size, (comm.rank + 1) * batches // comm.size
    return slice(first * batch_size, min(last * batch_size, n_items))


def evaluate(comm, evaluate_all, model, images, labels, input_scale, device, n_classes, batch_size=8):
    """``evaluate_all`` (``tinyseg.app.evaluate.evaluate``) with the images shared out over the
    ranks and the predictions gathered: the same scores as one process."""
    from .evaluate import score_predictions
    if comm.size == 1:
        return evaluate_all(model, images, labels, input_scale, device, n_classes, batch_size)
    share = batch_share(comm, len(images), batch_size)
    label_type = np.min_scalar_type(n_classes)          # a byte per pixel to send
    predictions, loss_sum = np.zeros((0,) + labels.shape[1:], label_type), 0.0
    if share.stop > share.start:
        local = evaluate_all(model, images[share], labels[share], input_scale, device, n_classes, batch_size)
        predictions, loss_sum = local["predictions"].astype(label_type), local["loss"] * (share.stop - share.start)
    parts = comm.allgather((loss_sum, predictions), "gathering the scores")
    predictions = np.concatenate([p for _, p in parts]).astype(np.int64)
    return score_predictions(predictions, labels, n_classes, sum(s for s, _ in parts) / len(images))


class DataParallel:
    """What one rank of a distributed run adds to the model: synchronised batch norm (or
    per-rank statistics) and the bucketed gradient reducer."""

    def __init__(self, comm, model, batchnorm="sync", bucket_mb=DEFAULT_BUCKET_MB):
        if batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"--batchnorm must be one of {BATCHNORM_MODES}, got {batchnorm!r}")
        self.comm, self.model, self.batchnorm = comm, model, batchnorm
        broadcast_weights(comm, model)
        self.sync_layers = synchronise_batchnorm(model, comm) if batchnorm == "sync" else []
        self.reducer = GradientReducer(comm, model.parameters(), bucket_mb * 2 ** 20)

    def train_one_epoch(self, optimizer, dataset, config, input_scale, device, seed, augment, bar,
                        on_step=None):
        """``loop.train_one_epoch`` over this rank's share of every global batch.

        Each rank weighs its mean loss by its share of the batch (n_rank / n_batch), so the
        summed gradients are those of the whole batch's mean loss. A rank left without an
        image (the last batch of an epoch can be smaller than the number of ranks) runs a
        zero placeholder that counts for nothing, to keep the collectives in step.
        """
        from .loop import TrainingDiverged, _all_finite
        comm, model = self.comm, self.model
        comm.end_setup()
        model.train()
        losses, seen, n_train = [], 0, len(dataset.train)
        batches = dataset.batches("train", config.batch_size, seed=seed, augment=augment,
                                  shard=(comm.rank, comm.size))
        for step, (x, y) in enumerate(batches):
            n_batch = min(config.batch_size, n_train - step * config.batch_size)
            weight = len(y) / n_batch
            computes = len(y) > 0 or self.sync_layers
            if len(y) == 0:
                x, y = np.zeros((1,) + x.shape[1:], x.dtype), np.zeros((1,) + y.shape[1:], y.dtype)
            for layer in self.sync_layers:
                object.__setattr__(layer, "counted", weight > 0)
            loss = None
            if computes:
                logits = model(tensor(x * input_scale, device=device))
                loss = F.cross_entropy(logits, tensor(y, device=device))
            local = np.array([loss.item() * weight if weight > 0 else 0.0])
            value = float(comm.allreduce(local, "summing the loss")[0])
            if not math.isfinite(value):
                raise comm.agreed_error(TrainingDiverged(f"loss became {value} at batch {step + 1}"))
            optimizer.zero_grad()
            self.reducer.start(loss)
            if loss is not None:
                loss.backward(np.asarray(weight, dtype=loss.dtype) if device == "cpu"
                              else get_array_module(loss.data).asarray(weight, dtype=loss.dtype))
            self.reducer.finish()
            optimizer.step()
            losses.append(value)
            seen += n_batch
            bar.update(step + 1, seen, loss=float(np.mean(losses)))
            if on_step is not None:
                on_step(step + 1)
        if self.batchnorm == "per-rank":
            average_buffers(comm, model)
        if not _all_finite(model):
            raise comm.agreed_error(TrainingDiverged("weights became NaN or infinite by the end of the epoch"))
        return float(np.mean(losses))


def add_arguments(parser):
    """The command-line options of distributed training."""
    group = parser.add_argument_group("distributed training (launch with mpiexec -n N)")
    group.add_argument("--distributed", action="store_true", default=None,
                       help="train on the processes mpiexec started (implied when it started more than one)")
    group.add_argument("--batchnorm", choices=BATCHNORM_MODES,
                       help="batch-norm statistics over the global batch (sync, default) or each rank's share "
                            "(per-rank, as PyTorch DDP)")
    group.add_argument("--bucket-mb", type=float, default=DEFAULT_BUCKET_MB,
                       help="size of the gradient buckets reduced together")
    group.add_argument("--rank-timeout", type=float, default=DEFAULT_RANK_TIMEOUT,
                       help="seconds a rank waits for the others before the run is stopped")
