"""The PyTorch twins of tinyseg's ReNet and H-ReNet, used by the benchmarks and the parity tests.

Parameter names follow tinyseg's, so a tinyseg state dict loads key by key:
``renet_key`` maps a tinyseg ReNet key ("h_bwd.weight_ih") onto the bidirectional
``nn.LSTM`` that holds it ("horizontal.weight_ih_l0_reverse"), ``torch_key`` does the
same for a whole H-ReNet ("renet.h_bwd.weight_ih" -> "renet.horizontal.weight_ih_l0_reverse").
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as tf
from torch import nn

STRIDE = 32                                        # H-ReNet's output stride
DIRECTIONS = ("h_fwd", "h_bwd", "v_fwd", "v_bwd")  # tinyseg's ReNet parameter groups
LSTM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def renet_key(key):
    """tinyseg ReNet key 'h_bwd.weight_ih' -> TorchReNet key 'horizontal.weight_ih_l0_reverse'."""
    direction, name = key.split(".")
    sweep = "horizontal" if direction.startswith("h") else "vertical"
    return f"{sweep}.{name}_l0" + ("_reverse" if direction.endswith("bwd") else "")


def torch_key(name):
    """The PyTorch H-ReNet twin's name for a tinyseg HReNet parameter or buffer name."""
    if not name.startswith("renet."):
        return name
    return "renet." + renet_key(name[len("renet."):])


class TorchReNet(nn.Module):
    """ReNet as DESIGN.md defines it, from two bidirectional ``nn.LSTM``s.

    Patches come from ``unfold`` (each flattened in (C, ph, pw) order); the horizontal
    LSTM runs over each row of patches, the vertical one over each column of its output.
    The forward direction of each LSTM is tinyseg's "*_fwd", the reverse one "*_bwd".
    """

    def __init__(self, in_channels, hidden_size, patch=(2, 2)):
        super().__init__()
        self.patch = tuple(patch)
        self.horizontal = nn.LSTM(in_channels * self.patch[0] * self.patch[1], hidden_size,
                                  bidirectional=True)
        self.vertical = nn.LSTM(2 * hidden_size, hidden_size, bidirectional=True)

    def lstm_param(self, direction, index):
        """The parameter holding ``direction``'s index-th array of (w_ih, w_hh, b_ih, b_hh)."""
        return self.get_parameter(renet_key(f"{direction}.{LSTM_NAMES[index]}"))

    @torch.no_grad()
    def load_tinyseg(self, params):
        """Copy {"h_fwd", "h_bwd", "v_fwd", "v_bwd"} -> (w_ih, w_hh, b_ih, b_hh) arrays."""
        for direction in DIRECTIONS:
            for index, array in enumerate(params[direction]):
                self.lstm_param(direction, index).copy_(torch.as_tensor(np.asarray(array)))
        return self

    def forward(self, x):
        n, _, height, width = x.shape
        hp, wp = height // self.patch[0], width // self.patch[1]
        patches = tf.unfold(x, self.patch, stride=self.patch).view(n, -1, hp, wp)   # (N, D, Hp, Wp)
        rows = patches.permute(3, 0, 2, 1).reshape(wp, n * hp, -1)                   # steps along W
        horizontal = self.horizontal(rows)[0].view(wp, n, hp, -1)                    # [fwd, bwd]
        columns = horizontal.permute(2, 1, 0, 3).reshape(hp, n * wp, -1)             # steps along H
        vertical = self.vertical(columns)[0].view(hp, n, wp, -1)
        return vertical.permute(1, 3, 0, 2)                                          # (N, 2d, Hp, Wp)


class TorchHReNet(nn.Module):
    """H-ReNet with the parameter names of ``tinyseg.models.HReNet`` (built from its config),
    including its options ``fcn_stride`` (FCN skips) and ``batch_norm``."""

    def __init__(self, config, n_classes=3, in_channels=1):
        super().__init__()
        batch_norm = bool(config.get("batch_norm", False))
        self.fcn_stride = int(config.get("fcn_stride", STRIDE))
        self.block_layers, pool_channels = [], []
        channels = in_channels
        for block, (width, n_convs) in enumerate(zip(config["widths"], config["convs_per_block"]), start=1):
            names = []
            for i in range(1, n_convs + 1):
                setattr(self, f"conv{block}_{i}", nn.Conv2d(channels, width, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    setattr(self, f"bn{block}_{i}", nn.BatchNorm2d(width))
                names.append(f"{block}_{i}")
                channels = width
            self.block_layers.append(names)
            pool_channels.append(channels)
        k7, w7 = config["conv7_kernel"], config["conv7_width"]
        self.conv6 = nn.Conv2d(channels, w7, k7, padding=k7 // 2, bias=not batch_norm)
        if batch_norm:
            self.bn6 = nn.BatchNorm2d(w7)
        self.conv7 = nn.Conv2d(w7, w7, 1)
        self.bn_pool4 = nn.BatchNorm2d(channels)
        self.bn_conv7 = nn.BatchNorm2d(w7)
        d = config["hidden_size"]
        self.renet = TorchReNet(channels + w7, d)
        self.classifier = nn.Conv2d(2 * d, n_classes, 1)
        self.skips = [(stride, 4 - k) for k, stride in enumerate((16, 8, 4)) if stride >= self.fcn_stride]
        for stride, block in self.skips:
            setattr(self, f"upscore{2 * stride}", nn.ConvTranspose2d(n_classes, n_classes, 4, stride=2, padding=1))
            setattr(self, f"score_pool{block}", nn.Conv2d(pool_channels[block - 1], n_classes, 1))
        s = self.fcn_stride
        self.upsample = nn.ConvTranspose2d(n_classes, n_classes, 2 * s, stride=s, padding=s // 2)

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

    def _conv_relu(self, name, x):
        x = getattr(self, f"conv{name}")(x)
        bn = getattr(self, f"bn{name}", None)
        return tf.relu(bn(x) if bn is not None else x)

    def forward(self, x):
        height, width = x.shape[2:]
        pools = []
        for names in self.block_layers:
            for name in names:
                x = self._conv_relu(name, x)
            x = tf.max_pool2d(x, 2)
            pools.append(x)
        conv7 = tf.relu(self.conv7(self._conv_relu("6", x)))
        features = torch.cat([self.bn_pool4(x), self.bn_conv7(conv7)], dim=1)
        grid_h, grid_w = math.ceil(height / STRIDE), math.ceil(width / STRIDE)
        features = tf.pad(features, (0, 2 * grid_w - features.shape[3], 0, 2 * grid_h - features.shape[2]))
        scores = self.classifier(self.renet(features))
        for stride, block in self.skips:
            scores = getattr(self, f"upscore{2 * stride}")(scores)
            pool_scores = getattr(self, f"score_pool{block}")(pools[block - 1])
            pool_scores = tf.pad(pool_scores, (0, scores.shape[3] - pool_scores.shape[3],
                                               0, scores.shape[2] - pool_scores.shape[2]))
            scores = scores + pool_scores
        logits = self.upsample(scores)
        return logits[:, :, :height, :width]


def tinyseg_twin_gradients(model, twin, images, labels):
    """One forward+backward of cross-entropy in both engines: their outputs and gradients."""
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
