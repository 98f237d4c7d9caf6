"""Chapter 10, exercise 3: arithmetic intensity of every convolution of the paper preset.

    python docs/solutions/ch10_roofline.py

Bytes counted once each, float32: input, weights, im2col's columns (written, then read by
the GEMM), output. At batch 1, layers on large maps with few channels move much per
multiply-add: conv1_1 (one input channel, so 9 multiply-adds per output value) is far below
a ridge of 10 FLOP/byte, memory-bound. conv6 and conv7 are dominated by their weights,
which a batch reuses: at batch 8 their intensity grows two- to fourfold (not eightfold: the
columns grow with the batch), while the activation-dominated early layers do not change.
"""
from tinyseg.models import PRESETS


def layers(preset="paper", size=(400, 500)):
    """(name, C_in, C_out, k, H, W) of every convolution, H x W its output size."""
    config = PRESETS[preset]
    (h, w), c_in, out = size, 1, []
    for block, (width, convs) in enumerate(zip(config["widths"], config["convs_per_block"]), 1):
        for j in range(convs):
            out.append((f"conv{block}_{j + 1}", c_in, width, 3, h, w))
            c_in = width
        h, w = h // 2, w // 2
    out.append(("conv6", c_in, config["conv7_width"], config["conv7_kernel"], h, w))
    out.append(("conv7", config["conv7_width"], config["conv7_width"], 1, h, w))
    return out


def intensity(c_in, c_out, k, h, w, batch=1):
    flops = 2 * batch * c_out * h * w * c_in * k * k
    moved = 4 * (batch * c_in * h * w + c_out * c_in * k * k + batch * c_in * k * k * h * w
                 + batch * c_out * h * w)
    return flops / moved


rows = sorted((intensity(*shape), name, intensity(*shape, batch=8)) for name, *shape in layers())
for at_1, name, at_8 in rows:
    print(f"{name:8s} {at_1:7.1f} FLOP/byte at batch 1, {at_8:7.1f} at batch 8"
          + ("   memory-bound at a ridge of 10" if at_1 < 10 else ""))
memory_bound = [name for at_1, name, _ in rows if at_1 < 10]
assert memory_bound == ["conv1_1"]
by_name = {name: (at_1, at_8) for at_1, name, at_8 in rows}
assert by_name["conv6"][1] > 3 * by_name["conv6"][0]               # weights amortised over the batch
assert abs(by_name["conv1_2"][1] / by_name["conv1_2"][0] - 1) < 0.01   # activations scale with it
assert round(by_name["conv6"][0]) == 317                             # chapter 10's estimate
