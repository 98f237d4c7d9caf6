"""The GPU path of data-parallel training: NCCLCommunicator, the bucketed reducer on CuPy
buffers and synchronised batch norm's GPU forward and backward.

Two ranks run as two threads of this process, each with its own copy of a small model and
half of the batch. They talk through stand-ins for NCCL and for the MPI that carries the
NCCL id (real NCCL needs one GPU per rank); the communicator code above them is the real
one. On a real GPU, real NCCL also runs on one rank. The gradients must equal those of one
model on the whole batch.
"""
import ctypes
import threading
import types

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
import tinyseg as ts  # noqa: E402

if not ts.cuda_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import tinyseg.functional as F  # noqa: E402
from tinyseg import nn  # noqa: E402
from tinyseg.app import distributed  # noqa: E402
from tinyseg.backend import as_numpy  # noqa: E402

RANKS = 2
CTYPES = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}


class World:
    """What the two thread-ranks share: a barrier and a blackboard."""

    def __init__(self):
        self.barrier, self.board = threading.Barrier(RANKS, timeout=60), [None] * RANKS

    def exchange(self, rank, value):
        self.board[rank] = value
        self.barrier.wait()
        values = list(self.board)
        self.barrier.wait()
        return values


class StandInNCCL:
    """cupy.cuda.nccl's interface over host-addressable buffers (the emulator's device arrays)."""

    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = np.dtype(np.float32), np.dtype(np.float64), "sum"

    def __init__(self, world):
        self.world = world

    @staticmethod
    def get_unique_id():
        return (7,) * 128

    def NcclCommunicator(self, size, unique_id, rank):
        assert size == RANKS and unique_id == self.get_unique_id()
        world = self.world

        class Comm:
            def allReduce(self, send, recv, count, dtype, op, stream):
                assert send == recv and op == "sum"
                array = np.ctypeslib.as_array((CTYPES[dtype] * count).from_address(send))
                total = sum(part.copy() for part in world.exchange(rank, array))
                world.barrier.wait()
                array[...] = total

            def abort(self):
                pass
        return Comm()


class StandInMPI:
    """The little of MPICommunicator that NCCLCommunicator uses, for one thread-rank."""

    timeout = 60.0

    def __init__(self, world, rank):
        self.world, self.rank, self.size, self.comm = world, rank, RANKS, self

    def bcast(self, value, root=0):
        return self.world.exchange(self.rank, value)[root]

    def _objects(self, collective, value, what):
        return collective(value)


class StandInEvent:
    done = True

    def __init__(self, **kwargs):
        pass

    def record(self, stream):
        pass


STAND_IN_CUPY = types.SimpleNamespace(cuda=types.SimpleNamespace(
    get_current_stream=lambda: types.SimpleNamespace(ptr=0), Event=StandInEvent))


def rank_communicator(nccl_comm):
    """An MPICommunicator routing device arrays to ``nccl_comm`` (its MPI side unused)."""
    comm = object.__new__(distributed.MPICommunicator)
    comm.rank, comm.size, comm.setup, comm.timeout = nccl_comm.mpi.rank, nccl_comm.mpi.size, False, 60.0
    comm.device_comm = nccl_comm
    return comm


def model_copy():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 3, 3, padding=1, rng=rng))
    return model.to("cuda")


def serialise_emulated_kernels(monkeypatch):
    """The emulator runs one kernel at a time (its runtime has global state): a lock keeps
    the two thread-ranks from launching at once."""
    from cuda_emulator import build
    lock, call = threading.Lock(), build.Kernel.__call__

    def locked(self, *args, **kwargs):
        with lock:
            return call(self, *args, **kwargs)
    monkeypatch.setattr(build.Kernel, "__call__", locked)


def step(model, x, y, weight=1.0, reducer=None):
    loss = F.cross_entropy(model(ts.tensor(x, device="cuda")), ts.tensor(y, device="cuda"))
    model.zero_grad()
    if reducer is not None:
        reducer.start(loss)
    loss.backward(cupy.asarray(np.float32(weight)))
    if reducer is not None:
        reducer.finish()
    return [as_numpy(p.grad) for p in model.parameters()]


def test_two_gpu_ranks_with_stand_in_nccl_equal_one_model_on_the_whole_batch(monkeypatch):
    if not hasattr(cupy.ndarray, "ctypes"):
        pytest.skip("the NCCL stand-in reads buffers through host addresses (the emulator's arrays)")
    monkeypatch.setattr(distributed.comm, "device_pointer", lambda array: array.ctypes.data)
    serialise_emulated_kernels(monkeypatch)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, (4, 8, 8))
    whole = model_copy()
    expected = step(whole, x, y)
    world, results, errors = World(), [None] * RANKS, []

    def rank(r):
        try:
            nccl = distributed.NCCLCommunicator(StandInMPI(world, r), STAND_IN_CUPY, StandInNCCL(world))
            comm = rank_communicator(nccl)
            model = model_copy()
            distributed.synchronise_batchnorm(model, comm)
            reducer = distributed.GradientReducer(comm, model.parameters(), bucket_bytes=200)
            share = slice(2 * r, 2 * r + 2)
            results[r] = (step(model, x[share], y[share], 0.5, reducer), len(reducer.buckets),
                          as_numpy(model[1].running_mean.data))
        except BaseException as err:   # the main thread reports it
            errors.append(err)
            world.barrier.abort()
    threads = [threading.Thread(target=rank, args=(r,)) for r in range(RANKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for grads, buckets, running_mean in results:
        assert buckets > 1
        for got, want in zip(grads, expected):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(running_mean, as_numpy(whole[1].running_mean.data), rtol=1e-5, atol=1e-7)


def real_nccl():
    try:
        from cupy.cuda import nccl
        nccl.get_unique_id()
        return True
    except Exception:   # the emulator (no cupy.cuda.nccl), or a CuPy built without NCCL
        return False


# Only where CuPy has NCCL (the emulated suite must run without skips).
if real_nccl():
    def test_real_nccl_on_one_rank():
        class OneRank:
            rank, size, timeout = 0, 1, 60.0
            comm = types.SimpleNamespace(bcast=lambda value, root=0: value)

            def _objects(self, collective, value, what):
                return collective(value)
        comm = rank_communicator(distributed.NCCLCommunicator(OneRank(), cupy))
        values = cupy.arange(10, dtype=cupy.float32)
        comm.allreduce(values)
        np.testing.assert_array_equal(as_numpy(values), np.arange(10, dtype=np.float32))
