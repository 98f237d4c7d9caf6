"""Chapter 10, exercise 2: the graph keeps no computed tensor, checked with tracemalloc.

    python docs/solutions/ch10_memory_of_a_graph.py

relu(conv2d(x)): the convolution's output is an input of ReLU, which saves only its own
output, so once the expression is evaluated nothing refers to the convolution's output and
NumPy frees it: one feature map stays. The fused op keeps its output as the mask: one map.
Holding the convolution's output in a variable keeps it alive: two maps.
"""
import tracemalloc

import numpy as np

import tinyseg as ts
import tinyseg.functional as F

rng = np.random.default_rng(0)
x = ts.tensor(rng.standard_normal((1, 16, 64, 80)), dtype=np.float32, requires_grad=True)
w = ts.tensor(rng.standard_normal((16, 16, 3, 3)) * 0.1, dtype=np.float32, requires_grad=True)
one_map = x.data.nbytes                                   # 16 -> 16 channels: the output's size too


def held_after(build):
    build()                                               # warm up
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    kept = build()
    held = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    del kept
    return held / one_map


separate = held_after(lambda: F.relu(F.conv2d(x, w, padding=1)))
fused = held_after(lambda: F.conv2d(x, w, padding=1, relu=True))


def keeping_the_conv_output():
    z = F.conv2d(x, w, padding=1)
    return z, F.relu(z)


kept = held_after(keeping_the_conv_output)
print(f"feature maps held: relu(conv) {separate:.2f}, fused {fused:.2f}, conv output kept {kept:.2f}")
assert separate < 1.2 and fused < 1.2 and kept > 1.8
