"""Chapter 9, exercise 3: the paper's momentum SGD (lr 1e-4) against Adam, from the same start.

    python docs/solutions/ch09_sgd_vs_adam.py

Why the paper's rule barely moves: SGD's step is lr * gradient. Here the gradients at the
start are about 0.1 per weight (RMS; in a 16-layer model, far smaller in the early layers),
so with momentum 0.9 the steady-state step is 10 * 1e-4 * 0.1 = 1e-4: 40 steps move a
weight by a few thousandths, against weights of size ~0.3. Adam divides by the gradient's
running RMS, so each weight moves by about lr per step whatever the size of its gradient.
SGD at lr 1e-1 learns (on this shallow model even faster than Adam): the rule is fine, the
paper's step size is what is small. Its 440 epochs of 200 images, 88 000 steps, make up for
the tiny steps by sheer number; on a CPU budget of minutes, Adam.
"""
import numpy as np

import tinyseg as ts
import tinyseg.functional as F


class TinySegmenter(ts.nn.Module):
    """chapter 9's conv -> batch norm -> ReLU -> 1x1 classifier."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.conv = ts.nn.Conv2d(1, 4, 3, padding=1, bias=False, rng=rng)
        self.bn = ts.nn.BatchNorm2d(4)
        self.head = ts.nn.Conv2d(4, 2, 1, rng=rng)

    def forward(self, x):
        return self.head(F.relu(self.bn(self.conv(x))))


def batches(steps, n=8, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        images = rng.normal(0, 0.3, (n, 1, 16, 16))
        labels = np.zeros((n, 16, 16), np.int64)
        for k in range(n):
            r, c = rng.integers(0, 10, 2)
            images[k, 0, r:r + 6, c:c + 6] += 1.0
            labels[k, r:r + 6, c:c + 6] = 1
        yield ts.tensor(images, dtype=np.float32), labels


def curve(make_optimizer, steps=40):
    net = TinySegmenter()                                  # the same initial weights every time
    optimizer = make_optimizer(net.parameters())
    losses, grad_size = [], None
    for images, labels in batches(steps):                  # the same batches every time
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        if grad_size is None:
            grad_size = np.sqrt(np.mean(np.concatenate([p.grad.ravel() ** 2 for p in net.parameters()])))
        optimizer.step()
        losses.append(loss.item())
    return np.array(losses), grad_size


runs = {"SGD lr 1e-4 (paper)": lambda p: ts.optim.SGD(p, lr=1e-4, momentum=0.9),
        "SGD lr 1e-1": lambda p: ts.optim.SGD(p, lr=1e-1, momentum=0.9),
        "Adam lr 1e-2": lambda p: ts.optim.Adam(p, lr=1e-2)}
results = {name: curve(make) for name, make in runs.items()}
for name, (losses, grad_size) in results.items():
    print(f"{name:20s} loss " + " ".join(f"{v:.3f}" for v in losses[::8]) + f"  -> {losses[-5:].mean():.3f}"
          f"   (RMS gradient at the start {grad_size:.1e})")

paper, fast_sgd, adam = (results[name][0] for name in runs)
start = paper[:5].mean()
assert abs(paper[-5:].mean() - start) < 0.05 * start         # barely moves
assert adam[-5:].mean() < 0.6 * start                         # learns
assert fast_sgd[-5:].mean() < paper[-5:].mean()               # a large enough SGD step learns too
