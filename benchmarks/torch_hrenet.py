"""H-ReNet in PyTorch, with the same parameter names as ``tinyseg.models.HReNet``.

``TorchHReNet.from_tinyseg(model)`` builds the twin of a tinyseg model and
loads its state dict key by key (the LSTM weights map onto the two
bidirectional ``nn.LSTM``s of ``TorchReNet``). ``check_same(...)`` compares
outputs and every parameter gradient of the two engines.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as tf
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import TorchReNet  # noqa: E402

STRIDE = 32
_RENET_KEYS = {"h_fwd": ("horizontal", ""), "h_bwd": ("horizontal", "_reverse"),
               "v_fwd": ("vertical", ""), "v_bwd": ("vertical", "_reverse")}
_LSTM_NAMES = {"weight_ih": "weight_ih_l0", "weight_hh": "weight_hh_l0",
               "bias_ih": "bias_ih_l0", "bias_hh": "bias_hh_l0"}


def torch_key(name):
    """The PyTorch twin's name for a tinyseg parameter or buffer name."""
    if not name.startswith("renet."):
        return name
    _, direction, pname = name.split(".")
    lstm, suffix = _RENET_KEYS[direction]
    return f"renet.{lstm}.{_LSTM_NAMES[pname]}{suffix}"


class TorchHReNet(nn.Module):
    def __init__(self, config, n_classes=3, in_channels=1):
        super().__init__()
        self.block_layers = []
        channels = in_channels
        for block, (width, n_convs) in enumerate(zip(config["widths"], config["convs_per_block"]), start=1):
            names = []
            for i in range(1, n_convs + 1):
                setattr(self, f"conv{block}_{i}", nn.Conv2d(channels, width, 3, padding=1))
                names.append(f"conv{block}_{i}")
                channels = width
            self.block_layers.append(names)
        k7, w7 = config["conv7_kernel"], config["conv7_width"]
        self.conv6 = nn.Conv2d(channels, w7, k7, padding=k7 // 2)
        self.conv7 = nn.Conv2d(w7, w7, 1)
        self.bn_pool4 = nn.BatchNorm2d(channels)
        self.bn_conv7 = nn.BatchNorm2d(w7)
        d = config["hidden_size"]
        self.renet = TorchReNet(channels + w7, d)
        self.classifier = nn.Conv2d(2 * d, n_classes, 1)
        self.upsample = nn.ConvTranspose2d(n_classes, n_classes, 2 * STRIDE, stride=STRIDE, padding=STRIDE // 2)

    @classmethod
    def from_tinyseg(cls, model, dtype=torch.float32, device="cpu"):
        twin = cls(model.config, model.n_classes, model.in_channels).to(dtype=dtype)
        twin.load_tinyseg_state(model.state_dict())
        return twin.to(device)

    @torch.no_grad()
    def load_tinyseg_state(self, state):
        """Copy a tinyseg HReNet state dict; every key on both sides must be used."""
        own = self.state_dict()
        used = set()
        for key, array in state.items():
            target = torch_key(key)
            if target not in own:
                raise KeyError(f"tinyseg key {key} has no PyTorch counterpart {target}")
            own[target].copy_(torch.as_tensor(np.asarray(array)))
            used.add(target)
        unused = [k for k in own if k not in used and not k.endswith("num_batches_tracked")]
        if unused:
            raise KeyError(f"PyTorch parameters left unset: {unused}")

    def forward(self, x):
        height, width = x.shape[2:]
        for names in self.block_layers:
            for name in names:
                x = tf.relu(getattr(self, name)(x))
            x = tf.max_pool2d(x, 2)
        conv7 = tf.relu(self.conv7(tf.relu(self.conv6(x))))
        features = torch.cat([self.bn_pool4(x), self.bn_conv7(conv7)], dim=1)
        grid_h, grid_w = math.ceil(height / STRIDE), math.ceil(width / STRIDE)
        features = tf.pad(features, (0, 2 * grid_w - features.shape[3], 0, 2 * grid_h - features.shape[2]))
        logits = self.upsample(self.classifier(self.renet(features)))
        return logits[:, :, :height, :width]


def tinyseg_twin_gradients(model, twin, images, labels):
    """Run one forward+backward of cross-entropy in both engines; return their outputs and grads."""
    import tinyseg as ts
    import tinyseg.functional as F

    model.zero_grad()
    out = model(ts.tensor(images))
    F.cross_entropy(out, ts.tensor(labels)).backward()
    ours = {"logits": out.numpy()}
    ours.update({name: p.grad for name, p in model.named_parameters()})

    twin.zero_grad()
    t_out = twin(torch.as_tensor(images))
    tf.cross_entropy(t_out, torch.as_tensor(labels)).backward()
    theirs = {"logits": t_out.detach().cpu().numpy()}
    named = dict(twin.named_parameters())
    for name, _ in model.named_parameters():
        theirs[name] = named[torch_key(name)].grad.detach().cpu().numpy()
    return ours, theirs
