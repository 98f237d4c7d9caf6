"""Launch detection and the three communicators (one process, MPI, NCCL) with their
deadline-bounded waits."""
from __future__ import annotations

import os
import sys
import time
import traceback
from typing import NamedTuple

import numpy as np

from ...backend import get_array_module
from ..errors import USER_ERRORS, one_line


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
        from ...backend import _cupy as cupy
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
            if not isinstance(err, (KeyboardInterrupt, *USER_ERRORS)):
                traceback.print_exc()
            self.abort(_describe(err))

    def agreed_error(self, err):
        """An error that every rank raises at the same point (such as a diverged loss)."""
        self.together = True
        return err


def _describe(error):
    return None if error is None else one_line(error)


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
