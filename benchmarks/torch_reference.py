"""PyTorch counterparts of tinyseg layers, loaded from tinyseg weights (benchmarks and tests)."""
from __future__ import annotations

import torch
from torch import nn


class TorchReNet(nn.Module):
    """The ReNet layer group of ``tinyseg.ops.renet`` built from two bidirectional ``nn.LSTM``s.

    ``load_tinyseg`` takes the {"h_fwd", "h_bwd", "v_fwd", "v_bwd"} -> (w_ih, w_hh, b_ih, b_hh)
    arrays; the forward direction of each LSTM is "*_fwd", the reverse one "*_bwd".
    """

    def __init__(self, in_channels, hidden_size, patch=(2, 2)):
        super().__init__()
        self.patch = tuple(patch)
        self.horizontal = nn.LSTM(in_channels * self.patch[0] * self.patch[1], hidden_size,
                                  bidirectional=True)
        self.vertical = nn.LSTM(2 * hidden_size, hidden_size, bidirectional=True)

    @torch.no_grad()
    def load_tinyseg(self, params):
        for lstm, fwd, bwd in ((self.horizontal, "h_fwd", "h_bwd"), (self.vertical, "v_fwd", "v_bwd")):
            for suffix, name in (("", fwd), ("_reverse", bwd)):
                for key, array in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), params[name]):
                    getattr(lstm, f"{key}_l0{suffix}").copy_(torch.as_tensor(array))
        return self

    def forward(self, x):
        n, c, h, w = x.shape
        ph, pw = self.patch
        hp, wp = h // ph, w // pw
        rows = x.reshape(n, c, hp, ph, wp, pw).permute(4, 0, 2, 1, 3, 5).reshape(wp, n * hp, c * ph * pw)
        horizontal, _ = self.horizontal(rows)                                  # (Wp, N*Hp, 2d)
        cols = horizontal.reshape(wp, n, hp, -1).permute(2, 1, 0, 3).reshape(hp, n * wp, -1)
        vertical, _ = self.vertical(cols)                                      # (Hp, N*Wp, 2d)
        return vertical.reshape(hp, n, wp, -1).permute(1, 3, 0, 2)
