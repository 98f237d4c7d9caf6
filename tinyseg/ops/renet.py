"""The ReNet layer group: a horizontal then a vertical bidirectional LSTM sweep.

(N, C, H, W) is cut into non-overlapping ph x pw patches, each flattened in
(C, ph, pw) order to a vector of D = C*ph*pw, giving a grid of
Hp = H/ph rows by Wp = W/pw columns.

Horizontal sweep: each of the N*Hp grid rows is a sequence of Wp steps.
"h_fwd" reads it left to right, "h_bwd" right to left; their hidden states
are concatenated [fwd, bwd] into 2d features per patch.

Vertical sweep: each of the N*Wp columns of that map is a sequence of Hp
steps, "v_fwd" top to bottom and "v_bwd" bottom to top, again
concatenated, giving (N, 2d, Hp, Wp). Every output position has then seen
the whole image.

Each sweep is one two-direction ``LSTM`` op (``bidirectional_lstm``), on every device;
the rest is reshapes and transposes, so autograd differentiates the layer without a
hand-written backward.
"""
from __future__ import annotations

from .elementwise import reshape, transpose
from .lstm import bidirectional_lstm

DIRECTIONS = ("h_fwd", "h_bwd", "v_fwd", "v_bwd")


def renet(x, params, patch=(2, 2)):
    missing = [k for k in DIRECTIONS if k not in params]
    if missing:
        raise KeyError(f"renet: params lack {missing}; expected {DIRECTIONS}")
    n, c, h, w = x.shape
    ph, pw = patch
    if h % ph or w % pw:
        raise ValueError(f"renet: feature map {h}x{w} does not divide into {ph}x{pw} patches; "
                         "pad it first")
    hp, wp = h // ph, w // pw
    # (N, C, Hp, ph, Wp, pw) -> (Wp, N, Hp, C, ph, pw): rows of patches as sequences along the width
    patches = transpose(reshape(x, (n, c, hp, ph, wp, pw)), (4, 0, 2, 1, 3, 5))
    rows = reshape(patches, (wp, n * hp, c * ph * pw))
    horizontal = bidirectional_lstm(rows, params["h_fwd"], params["h_bwd"])          # (Wp, N*Hp, 2d)
    two_d = horizontal.shape[2]
    # (Wp, N, Hp, 2d) -> (Hp, N, Wp, 2d): columns as sequences along the height
    columns = reshape(transpose(reshape(horizontal, (wp, n, hp, two_d)), (2, 1, 0, 3)),
                      (hp, n * wp, two_d))
    vertical = bidirectional_lstm(columns, params["v_fwd"], params["v_bwd"])        # (Hp, N*Wp, 2d')
    out = reshape(vertical, (hp, n, wp, vertical.shape[2]))
    return transpose(out, (1, 3, 0, 2))                                 # (N, 2d', Hp, Wp)
