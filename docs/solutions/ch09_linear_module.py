"""Chapter 9, exercise 4: a Linear module, a two-layer MLP, gradcheck through it, XOR.

    python docs/solutions/ch09_linear_module.py
"""
import numpy as np

import tinyseg as ts


class Linear(ts.nn.Module):
    """y = x W^T + b with W (out, in), as PyTorch's nn.Linear."""

    def __init__(self, n_in, n_out, rng):
        super().__init__()
        bound = 1 / np.sqrt(n_in)
        self.weight = ts.nn.Parameter(rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32))
        self.bias = ts.nn.Parameter(np.zeros(n_out, np.float32))

    def forward(self, x):
        return x @ self.weight.T + self.bias


class MLP(ts.nn.Module):
    def __init__(self, n_in, n_hidden, n_out, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.hidden = Linear(n_in, n_hidden, rng)
        self.out = Linear(n_hidden, n_out, rng)

    def forward(self, x):
        return self.out(self.hidden(x).tanh())


net = MLP(2, 8, 2)
assert [n for n, _ in net.named_parameters()] == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]

# gradcheck through the module: its parameters become float64 leaves of the check
net64 = MLP(2, 8, 2).astype(np.float64)
x = ts.tensor(np.random.default_rng(1).standard_normal((5, 2)), requires_grad=True)
assert ts.gradcheck(lambda x, *params: net64(x), [x] + net64.parameters())

# XOR: not linearly separable, so it needs the hidden layer
inputs = ts.tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32))
labels = np.array([0, 1, 1, 0])
optimizer = ts.optim.Adam(net.parameters(), lr=0.05)
for step in range(300):
    logits = net(inputs)
    loss = ts.functional.cross_entropy(logits.reshape(4, 2, 1), labels.reshape(4, 1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
assert (net(inputs).numpy().argmax(axis=1) == labels).all() and loss.item() < 0.05
print(f"XOR learned, loss {loss.item():.4f}")
