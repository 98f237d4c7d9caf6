"""Chapter 1, exercise 2: a recursive topological sort, and why the engine's is a loop.

    python docs/solutions/ch01_recursive_topo.py
"""
import sys

import numpy as np

import tinyseg as ts
from tinyseg.autograd import Edge, _topological_order


def recursive_order(root):
    """Post-order depth-first search: a function after every function that made its inputs,
    reversed so that consumers come first (as backward needs)."""
    order, visited = [], set()

    def visit(fn):
        if id(fn) in visited:
            return
        visited.add(id(fn))
        for edge in fn.inputs:
            if isinstance(edge, Edge):
                visit(edge.producer)
        order.append(fn)

    visit(root.creator)
    return order[::-1]


x = ts.tensor(np.float64(3.0), requires_grad=True)
y = ts.tensor(np.float64(-2.0), requires_grad=True)
f = (x * y + x) ** 2
assert [type(fn).__name__ for fn in recursive_order(f)] == ["Pow", "Add", "Mul"]
assert recursive_order(f) == _topological_order(f)

z = ts.tensor(np.float64(0.0), requires_grad=True)
chain = z
for _ in range(20_000):
    chain = chain + 1.0
try:
    recursive_order(chain)
    raise AssertionError(f"20 000 nested calls fit under the recursion limit {sys.getrecursionlimit()}")
except RecursionError:
    pass
assert len(_topological_order(chain)) == 20_000     # an explicit stack has no depth limit
chain.backward()
assert z.grad == 1.0
# Raising sys.setrecursionlimit only moves the wall: each Python frame also uses C stack,
# and a deep enough graph (an LSTM unrolled over a long sequence) then crashes the
# interpreter with a segmentation fault instead of raising an exception.
print("recursive sort: RecursionError at 20 000 ops; the engine's explicit stack: fine")
