"""What defines a training run: ``TrainConfig``, the defaults for synthetic and real data,
and the merging of a resumed run's stored settings.

Why the defaults are what they are (and the measurements behind them) is told in
docs/07-training.md; in short: Adam with He init, because the paper's momentum SGD at
lr 1e-4 needs hundreds of GPU epochs, augmentation on real data, where it is the
regulariser that matters, and on real data a model and input size that depend on the
device (``REAL_DATA_DEVICE_DEFAULTS``), since the paper's takes days on a CPU.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

from ..backend import pick_device
from ..data.preprocess import NORMALIZATIONS
from ..models import PRESETS


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run. ``None`` means "not given": a resumed run takes the
    interrupted run's value, otherwise the default for synthetic or real data applies
    (``resolve_defaults``)."""

    data: str | None = None            # JSRT folder or folder dataset; None: synthetic
    scr: str | None = None             # SCR masks root for JSRT
    preset: str | None = None
    size: tuple | None = None          # (H, W) images are resized to; default: the preset's size
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None      # SGD only
    optimizer: str | None = None       # "sgd" | "adam"
    schedule: str | None = None        # "cosine" | "constant"
    weight_decay: float | None = None
    init: str | None = None            # "he" | "paper"
    augment: bool | None = None
    scanner_augment: bool | None = None   # also other scanners' looks: gamma, blur, borders, text
    normalize: str | None = None       # intensity normalisation: "none" | "percentile" | "equalize"
    denoise: str | None = None         # "none" or one of DENOISERS
    seed: int | None = None
    n_synthetic: int | None = None     # size of the synthetic set
    val_fraction: float | None = None  # share of the training part held out for validation
    keep_overexposed: bool | None = None  # keep images the exposure screen would drop
    model_options: dict | None = None  # HReNet overrides (widths, hidden_size, ...)
    device: str = "auto"               # "auto" | "cpu" | "cuda"
    out: str = os.path.join("runs", "jsrt")
    resume: bool = False
    overwrite: bool = False            # start a fresh run in an --out that holds one, replacing it
    cache_dir: str | None = None       # denoising cache; default <out>/../denoise_cache
    progress: bool = True
    # data-parallel training (tinyseg.app.distributed); batch_size stays the global batch
    distributed: bool | None = None    # None: on when mpiexec started more than one process
    batchnorm: str | None = None       # "sync" (statistics of the global batch) | "per-rank"
    bucket_mb: float = 25.0            # size of the gradient buckets reduced together
    rank_timeout: float = 600.0        # seconds a rank waits for the others before stopping the run


DENOISERS = ("ksvd", "adaptive_filter", "collaborative")   # tinyseg.denoise.<name>_denoise
COMMON_DEFAULTS = dict(momentum=0.9, denoise="none", seed=0, n_synthetic=240, val_fraction=0.1,
                       keep_overexposed=False, scanner_augment=False, normalize="equalize",
                       model_options={}, batchnorm="sync")
SYNTHETIC_DEFAULTS = dict(preset="small", epochs=40, batch_size=8, lr=4e-3, optimizer="adam",
                          schedule="cosine", weight_decay=0.0, init="he", augment=False)
REAL_DATA_DEFAULTS = dict(epochs=150, batch_size=4, lr=1e-3, optimizer="adam",
                          schedule="cosine", weight_decay=1e-4, init="he", augment=True)
# The model for real data on each device: on a CPU one that trains in under an hour on two
# cores, on a GPU the paper's at its input size (size None: the preset's own). The size and
# model options here apply only with this preset; --preset names another model at its size.
REAL_DATA_DEVICE_DEFAULTS = {
    "cpu": dict(preset="cpu", size=(256, 256)),
    "cuda": dict(preset="paper", size=None),
}
# Fields that define the computation; a resumed run must not change them.
RUN_DEFINING = ("data", "scr", "preset", "size", "batch_size", "lr", "momentum", "optimizer",
                "schedule", "weight_decay", "init", "augment", "denoise", "seed", "n_synthetic",
                "val_fraction", "keep_overexposed", "scanner_augment", "normalize", "model_options",
                "batchnorm")
# What a run stored before a setting existed did: a resumed older run keeps doing that.
BEFORE_THE_SETTING = {"keep_overexposed": False, "scanner_augment": False, "normalize": "none",
                      "batchnorm": "sync"}
# What a resumed run may change: train longer, or continue a diverged run at a lower rate.
RESUME_MAY_CHANGE = ("epochs", "lr")


def resolve_defaults(config: TrainConfig, device: str | None = None) -> TrainConfig:
    """Fill every ``None`` with the default for synthetic or real data and check the values.
    Real data takes its model from ``REAL_DATA_DEVICE_DEFAULTS`` for ``device`` (default:
    the device ``config.device`` picks)."""
    if config.data is None:
        defaults = {**COMMON_DEFAULTS, **SYNTHETIC_DEFAULTS}
    else:
        for_device = dict(REAL_DATA_DEVICE_DEFAULTS[device or pick_device(config.device)])
        if config.preset not in (None, for_device["preset"]):    # another model: its own size
            for_device = {}
        defaults = {**COMMON_DEFAULTS, **REAL_DATA_DEFAULTS,
                    **{k: v for k, v in for_device.items() if v is not None}}
    config = dataclasses.replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})
    config.model_options = dict(config.model_options)
    if config.size is None:
        config.size = PRESETS[config.preset]["input_size"]
    config.size = tuple(int(v) for v in config.size)
    if config.cache_dir is None:
        config.cache_dir = default_cache_dir(config.out)
    for name, allowed in (("optimizer", ("sgd", "adam")), ("schedule", ("cosine", "constant")),
                          ("device", ("auto", "cpu", "cuda")), ("denoise", ("none",) + DENOISERS),
                          ("preset", tuple(PRESETS)), ("batchnorm", ("sync", "per-rank")),
                          ("normalize", NORMALIZATIONS)):
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
    check_numbers(config)
    return config


MIN_SIZE, MAX_SIZE = 16, 8192     # H-ReNet needs 16 pixels; beyond 8192 no radiograph is scanned


def check_numbers(config):
    """Each numeric setting checked on its own, with a message naming its flag."""
    def number(flag, value, low, high=math.inf, integer=False, low_open=False):
        kind = "a whole number" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (integer and not float(value).is_integer()) or not math.isfinite(value):
            raise ValueError(f"{flag} must be {kind}, got {value!r}")
        if value < low or (low_open and value == low) or value > high:
            side = f"> {low:g}" if low_open else f">= {low:g}"
            limit = f" and <= {high:g}" if high != math.inf else ""
            raise ValueError(f"{flag} must be {side}{limit}, got {value!r}")
    number("--epochs", config.epochs, 1, integer=True)
    number("--batch-size", config.batch_size, 1, integer=True)
    number("--lr", config.lr, 0, 10, low_open=True)
    number("--momentum", config.momentum, 0, 0.999999)
    number("--weight-decay", config.weight_decay, 0, 1)
    number("--seed", config.seed, 0, 2 ** 32 - 1, integer=True)
    number("--n-synthetic", config.n_synthetic, 3, 100_000, integer=True)
    number("--val-fraction", config.val_fraction, 0, 0.9)
    for side in config.size:
        number("--size", side, MIN_SIZE, MAX_SIZE, integer=True)


def faster_alternative(config, device):
    """What to change when a run of ``config`` takes too long on ``device``."""
    cpu = REAL_DATA_DEVICE_DEFAULTS["cpu"]
    options = []
    if device == "cpu":
        h, w = cpu["size"]
        if config.preset != cpu["preset"] or config.size[0] * config.size[1] > h * w:
            options.append(f"--preset {cpu['preset']} --size {h} {w}")
        options.append("a GPU (--device cuda)")
    elif config.preset != "small":
        options.append("--preset small")
    return " or ".join(options + ["fewer --epochs"])


def default_cache_dir(out):
    """The denoising cache next to the run folder, ``<out>/../denoise_cache``, shared by runs."""
    return os.path.join(os.path.dirname(os.path.abspath(out)), "denoise_cache")


def config_record(config):
    """The run-defining settings (and epochs) as JSON values, as stored in checkpoints."""
    record = dataclasses.asdict(config)
    return json.loads(json.dumps({k: record[k] for k in RUN_DEFINING + ("epochs",)}))


def adopt_stored_settings(config, stored):
    """For ``--resume``: settings not given take the interrupted run's values; a setting given
    with a different value is an error, except those of ``RESUME_MAY_CHANGE`` (``epochs`` to
    train longer, ``lr`` to continue a diverged run from its last good checkpoint)."""
    given = config_record(config)
    stored = {**{k: v for k, v in BEFORE_THE_SETTING.items() if stored and k not in stored}, **stored}
    changed = [f"{k}: interrupted run {stored.get(k)!r}, now {given[k]!r}" for k in RUN_DEFINING
               if k not in RESUME_MAY_CHANGE and given[k] is not None and k in stored
               and stored[k] != given[k]]
    if changed:
        raise ValueError("--resume must keep the settings of the interrupted run; these differ: "
                         + "; ".join(changed))
    taken = {k: stored[k] for k in RUN_DEFINING + ("epochs",) if given[k] is None and k in stored}
    return dataclasses.replace(config, **taken)
