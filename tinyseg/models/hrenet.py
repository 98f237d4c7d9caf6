"""H-ReNet: VGG-16 convolution blocks 1-4, a ReNet layer group and transposed-convolution upsampling.

The model of Jiang et al. (2017), Sect. 3.3 and Fig. 2, for chest radiographs
(background / lungs / heart):

    image (N, 1, H, W)
      -> VGG-16 blocks 1-4: 3x3 convolutions (padding 1) + ReLU, each block
         closed by a 2x2 max-pool                                   -> pool4, stride 16
      -> "conv7" branch on pool4: VGG's fc6 / fc7 as convolutions (FCN style),
         conv6 (7x7, padding 3) + ReLU, conv7 (1x1) + ReLU         -> conv7, stride 16
      -> batch-normalise pool4 and conv7 separately, concatenate on channels
      -> zero-pad bottom/right so the map covers the whole image in 2x2 patches
      -> ReNet layer group: 2x2 patches, horizontal then vertical
         bidirectional LSTMs with d units per direction            -> (N, 2d), stride 32
      -> classifier: 1x1 convolution to n_classes
      -> upsample: one transposed convolution, kernel 64, stride 32, padding 16,
         n_classes filters, then crop to exactly H x W               -> logits (N, n_classes, H, W)

Choices where the paper is silent or ambiguous
----------------------------------------------
* conv7 branch. The paper concatenates "pool 4 and conv7" but drops conv5, so
  fc6/fc7 (which FCN runs on pool5) run on pool4 here. conv6 keeps VGG's 7x7
  receptive field (padding 3 keeps the map size); both use ReLU. FCN's dropout
  after fc6/fc7 is left out: batch normalisation follows immediately, and the
  datasets here are small enough that augmentation is the better regulariser.
* Widths. "paper": VGG-16's 64, 128, 256, 512 with 2, 2, 3, 3 convolutions and
  VGG's 4096-wide fc6/fc7. The paper does not give d; we use d = 256, so that the
  ReNet output (2d = 512) is as wide as pool4.
* Where the padding goes. Four floor-mode pools give floor(H/16) rows at pool4
  (400x500 -> 25x31), and the 2x2 ReNet patches need an even count. We pad the
  concatenated, batch-normalised map with zeros (the per-channel mean after
  normalisation) at the bottom and right up to 2*ceil(H/32) x 2*ceil(W/32):
  then the ReNet grid has ceil(H/32) x ceil(W/32) cells, the upsampled map
  32*ceil(H/32) x 32*ceil(W/32) is never smaller than the input, and cropping
  its top-left H x W corner restores the input size. Padding the feature map
  rather than the image costs nothing extra; the only information lost is the
  <= 15 bottom/right pixel rows the floor-mode pools skip, which are still in
  the receptive field of their neighbours. The crop keeps alignment: ReNet cell
  i covers input pixels 32i .. 32i+31, and the transposed convolution centres
  its kernel on 32i+16.
* Upsampling. One 64x64 transposed convolution with stride 32 (FCN-32s): with
  kernel 2*stride and padding stride/2 every output pixel is a blend of the 2x2
  nearest cells, and the output is exactly 32 times the grid. It starts as
  bilinear interpolation (FCN's practice, both inits) and is trained. A stack of
  x2 upsamplers with n_classes filters each would compose to one linear map of
  the same kind, so it would add parameters but no expressiveness.
* Initialisation, ``init="paper"`` (Sect. 4.2): every convolution N(0, 0.1^2),
  ReNet weights and biases U(-0.4, 0.4), biases of convolutions zero. Table 1
  prints N(0, 0.01) (a variance, so sigma 0.1, consistent) and U(-0.04, 0.04)
  (inconsistent with the text's [-0.4; 0.4]); we follow the text and make both
  configurable (``conv_std``, ``renet_bound``). ``init="he"``: He-normal
  convolutions and PyTorch's LSTM default U(-1/sqrt(d), 1/sqrt(d)).
  The paper's init trains with Adam; its slow start comes from the optimiser
  (docs/07-training.md). Training from scratch defaults to He init with Adam
  (``tinyseg.app``), and "paper" stays the constructor's default so that the
  model is the paper's unless asked otherwise.

Options (constructor keywords; off in "paper" and "small", on in "cpu")
-----------------------------------------------------------------------
* ``fcn_stride`` (32, 16, 8 or 4): FCN skip connections for sharper boundaries.
  32 is the paper's single x32 upsampling. Below 32, the ReNet's class scores are
  upsampled x2 at a time (``upscore32``, ``upscore16``, ``upscore8``: 4x4
  transposed convolutions, stride 2, bilinear init) and added to class scores
  read off the VGG pools by 1x1 convolutions (``score_pool4`` at stride 16,
  ``score_pool3`` at 8, ``score_pool2`` at 4, zero-initialised as in FCN, so an
  untrained model only interpolates the ReNet's scores) until the map has stride
  ``fcn_stride``; ``upsample`` then enlarges it by ``fcn_stride`` (kernel
  2 * fcn_stride). fcn_stride=8 is FCN-8s (pool3 and pool4). A pool map of
  floor(H/s) rows is zero-padded at the bottom/right to the 2^k * ceil(H/32)
  rows of the upsampled scores, exactly as the ReNet input is.
* ``batch_norm``: a BatchNorm2d (``bn{b}_{i}``, ``bn6``) between every VGG
  convolution and conv6 and their ReLU; those convolutions then have no bias.
  Lets wide-ish models train fast from scratch with Adam.

``describe()["config"]`` leaves an option out only where it is off and the preset
does not set it, so a checkpoint of the paper's architecture describes it as before.

Parameter names follow VGG and PyTorch (``conv1_1.weight``, ``bn_pool4.running_mean``,
``renet.h_fwd.weight_ih``, ...), so a PyTorch module with the same attribute
names loads the state dict key by key.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import nn
from ..nn import init as initializers

PRESETS = {
    # VGG-16 widths; the paper resizes JSRT films to 400 x 500. 167 M parameters, 103 M of
    # them in conv6: a GPU model.
    "paper": dict(widths=(64, 128, 256, 512), convs_per_block=(2, 2, 3, 3), conv7_width=4096,
                  conv7_kernel=7, hidden_size=256, input_size=(400, 500)),
    # Same topology, narrow, two convolutions per block: trains on a CPU in minutes.
    "small": dict(widths=(8, 16, 32, 64), convs_per_block=(2, 2, 2, 2), conv7_width=64,
                  conv7_kernel=7, hidden_size=32, input_size=(128, 160)),
    # For real radiographs on a CPU: the small widths with batch norm after every
    # convolution and FCN-8s skips for sharp boundaries, at a finer input size. Twice
    # the widths (16-128) learn less per second of CPU (benchmarks/results/options-*).
    "cpu": dict(widths=(8, 16, 32, 64), convs_per_block=(2, 2, 2, 2), conv7_width=64,
                conv7_kernel=7, hidden_size=32, input_size=(256, 256), fcn_stride=8, batch_norm=True),
}
STRIDE = 32          # four 2x2 pools, then 2x2 ReNet patches
INITS = ("paper", "he")
FCN_STRIDES = (32, 16, 8, 4)
# Architecture options every preset accepts, with the values that give the paper's model.
OPTIONS = dict(fcn_stride=32, batch_norm=False)


def bilinear_kernel(channels, size):
    """Weights (channels, channels, size, size) of a transposed convolution that
    interpolates each channel bilinearly on its own (FCN's upsampling init)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - np.abs(np.arange(size) - center) / factor
    weights = np.zeros((channels, channels, size, size))
    weights[range(channels), range(channels)] = np.outer(ramp, ramp)
    return weights


class HReNet(nn.Module):
    """H-ReNet for semantic segmentation; see the module docstring for the architecture.

    Args:
        n_classes: output channels (3: background, lungs, heart).
        preset: "paper", "small" or "cpu" (see ``PRESETS``); keyword overrides
            ``widths``, ``convs_per_block``, ``conv7_width``, ``conv7_kernel``,
            ``hidden_size`` (and the options below) replace single entries (tests build
            tiny models so).
        in_channels: 1 for radiographs.
        init: "paper" (Gaussian convolutions, uniform ReNet) or "he".
        seed: seeds the initialisation; the same seed gives the same weights.
        conv_std, renet_bound: the "paper" init's sigma and bound.
        fcn_stride: 32 (the paper), 16, 8 (FCN-8s) or 4; see "Options" above.
        batch_norm: batch normalisation after every VGG convolution and conv6.

    ``forward(x)`` maps (N, in_channels, H, W) to logits (N, n_classes, H, W) for
    any H, W >= 16.
    """

    def __init__(self, n_classes=3, preset="paper", in_channels=1, init="paper", seed=0,
                 conv_std=0.1, renet_bound=0.4, **overrides):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown HReNet preset {preset!r}; expected one of {tuple(PRESETS)}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
        unknown = set(overrides) - set(PRESETS[preset]) - set(OPTIONS)
        if unknown:
            raise TypeError(f"HReNet got unexpected arguments {sorted(unknown)}")
        config = {**OPTIONS, **PRESETS[preset], **overrides}
        fcn_stride, batch_norm = int(config["fcn_stride"]), bool(config["batch_norm"])
        if fcn_stride not in FCN_STRIDES:
            raise ValueError(f"fcn_stride must be one of {FCN_STRIDES}, got {config['fcn_stride']!r}")
        config.update(fcn_stride=fcn_stride, batch_norm=batch_norm)
        widths, convs = tuple(config["widths"]), tuple(config["convs_per_block"])
        if len(widths) != 4 or len(convs) != 4:
            raise ValueError(f"HReNet needs four VGG blocks, got widths {widths}, convs {convs}")
        self.preset, self.n_classes, self.in_channels, self.init = preset, n_classes, in_channels, init
        self.config = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in config.items()}
        rng = np.random.default_rng(seed)

        # VGG-16 blocks 1-4: conv{b}_{i}, 3x3, padding 1.
        # With batch_norm each is followed by bn{b}_{i} and has no bias.
        self.block_layers, pool_channels = [], []
        channels = in_channels
        for block, (width, n_convs) in enumerate(zip(widths, convs), start=1):
            names = []
            for i in range(1, n_convs + 1):
                setattr(self, f"conv{block}_{i}", nn.Conv2d(channels, width, 3, padding=1,
                                                            bias=not batch_norm, rng=rng))
                if batch_norm:
                    setattr(self, f"bn{block}_{i}", nn.BatchNorm2d(width))
                names.append(f"conv{block}_{i}")
                channels = width
            self.block_layers.append(names)
            pool_channels.append(channels)
        k7, w7 = config["conv7_kernel"], config["conv7_width"]
        self.conv6 = nn.Conv2d(channels, w7, k7, padding=k7 // 2, bias=not batch_norm, rng=rng)
        if batch_norm:
            self.bn6 = nn.BatchNorm2d(w7)
        self.conv7 = nn.Conv2d(w7, w7, 1, rng=rng)
        self.bn_pool4 = nn.BatchNorm2d(channels)
        self.bn_conv7 = nn.BatchNorm2d(w7)
        d = config["hidden_size"]
        self.renet = nn.ReNet(channels + w7, d, patch=(2, 2), rng=rng,
                              init_bound=renet_bound if init == "paper" else None)
        self.classifier = nn.Conv2d(2 * d, n_classes, 1, rng=rng)
        # FCN skips, coarse to fine: (stride of the scores they add to, pool block).
        self.skips = [(stride, 4 - k) for k, stride in enumerate((16, 8, 4)) if stride >= fcn_stride]
        for stride, block in self.skips:
            setattr(self, f"upscore{2 * stride}", nn.ConvTranspose2d(n_classes, n_classes, 4, stride=2,
                                                                     padding=1, rng=rng))
            setattr(self, f"score_pool{block}", nn.Conv2d(pool_channels[block - 1], n_classes, 1, rng=rng))
        self.fcn_stride = fcn_stride
        self.upsample = nn.ConvTranspose2d(n_classes, n_classes, 2 * fcn_stride, stride=fcn_stride,
                                           padding=fcn_stride // 2, rng=rng)
        self._initialise(rng, conv_std)

    def _initialise(self, rng, conv_std):
        """He-normal convolutions come from ``nn.Conv2d``; "paper" redraws them N(0, std^2)."""
        if self.init == "paper":
            for name, module in self.named_modules():
                if isinstance(module, nn.Conv2d):
                    initializers.normal_(module.weight, conv_std, rng)
        upsamplers = [self.upsample] + [getattr(self, f"upscore{2 * s}") for s, _ in self.skips]
        for up in upsamplers:
            initializers._fill(up.weight, bilinear_kernel(self.n_classes, up.weight.shape[2]))
            initializers.zeros_(up.bias)
        for _, block in self.skips:        # FCN: the skips start silent and learn what to add
            initializers.zeros_(getattr(self, f"score_pool{block}").weight)

    def conv_blocks(self, x):
        """Blocks 1-4 with their pools: (N, C, H, W) -> [pool1, ..., pool4], pool4 (N, 512, H/16, W/16)."""
        pools = []
        for names in self.block_layers:
            for name in names:
                x = self._conv_relu(getattr(self, name), getattr(self, "bn" + name[4:], None), x)
            x = F.max_pool2d(x, 2)
            pools.append(x)
        return pools

    @staticmethod
    def _conv_relu(conv, bn, x):
        if bn is None:
            return conv(x, relu=True)                     # convolution + ReLU, fused
        return F.relu(bn(conv(x)))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"HReNet expects input (N, {self.in_channels}, H, W), got {x.shape}")
        height, width = x.shape[2:]
        if min(height, width) < 16:
            raise ValueError(f"HReNet needs images of at least 16x16 (four 2x2 pools), got {height}x{width}")
        pools = self.conv_blocks(x)
        pool4 = pools[3]
        conv7 = self.conv7(self._conv_relu(self.conv6, getattr(self, "bn6", None), pool4), relu=True)
        features = F.concat([self.bn_pool4(pool4), self.bn_conv7(conv7)], axis=1)
        grid_h, grid_w = math.ceil(height / STRIDE), math.ceil(width / STRIDE)
        pad_h, pad_w = 2 * grid_h - features.shape[2], 2 * grid_w - features.shape[3]
        if pad_h or pad_w:
            features = F.pad(features, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
        scores = self.classifier(self.renet(features))                  # (N, C, grid_h, grid_w)
        for stride, block in self.skips:                                # FCN skips: x2, add a pool's scores
            scores = getattr(self, f"upscore{2 * stride}")(scores)      # (N, C, 32/stride grid_h, ...)
            pool_scores = getattr(self, f"score_pool{block}")(pools[block - 1])
            pad_h, pad_w = scores.shape[2] - pool_scores.shape[2], scores.shape[3] - pool_scores.shape[3]
            if pad_h or pad_w:
                pool_scores = F.pad(pool_scores, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
            scores = scores + pool_scores
        logits = self.upsample(scores)                                  # (N, C, 32 grid_h, 32 grid_w)
        if logits.shape[2:] != (height, width):
            logits = logits[:, :, :height, :width]
        return logits

    def describe(self):
        """JSON-friendly facts that identify this architecture (stored in checkpoints)."""
        return {"model": type(self).__name__, "preset": self.preset, "n_classes": self.n_classes,
                "in_channels": self.in_channels, "init": self.init,
                "config": {k: list(v) if isinstance(v, tuple) else v for k, v in self.config.items()
                           if not (k in OPTIONS and k not in PRESETS[self.preset] and v == OPTIONS[k])}}

    def extra_repr(self):
        options = "".join(f", {k}={self.config[k]!r}" for k in OPTIONS if self.config[k] != OPTIONS[k])
        return f"n_classes={self.n_classes}, preset={self.preset!r}, init={self.init!r}{options}"
