"""Chapter 4, exercise 2: the parameter count of a ReNet layer group from the gate equations.

    python docs/solutions/ch04_count_renet.py
"""
import tinyseg as ts


def lstm_params(n_in, hidden):
    return 4 * hidden * (n_in + hidden) + 2 * 4 * hidden      # W_ih, W_hh, b_ih, b_hh


def renet_params(channels, hidden, patch=(2, 2)):
    horizontal = lstm_params(channels * patch[0] * patch[1], hidden)   # a flattened patch in
    vertical = lstm_params(2 * hidden, hidden)                         # [fwd, bwd] states in
    return 2 * horizontal + 2 * vertical


layer = ts.nn.ReNet(in_channels=5, hidden_size=6)
assert sum(p.size for p in layer.parameters()) == renet_params(5, 6)
assert renet_params(4608, 256) == 39_854_080          # chapter 4's table, "renet (2x2 patches)"
share = 2 * 4 * 256 * 4608 * 4 / renet_params(4608, 256)
assert share > 0.94                                   # nearly all of it: the two W_ih of the row sweeps
print(f"paper ReNet group: {renet_params(4608, 256):,} parameters, {share:.0%} in the row sweeps' W_ih")
