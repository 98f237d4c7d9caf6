"""Gradients summed across ranks in a few contiguous buckets, each started as soon as
backward has produced all of its gradients."""
from __future__ import annotations

import numpy as np

from ...autograd import Edge
from ...backend import get_array_module
from .comm import DEFAULT_BUCKET_MB


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
