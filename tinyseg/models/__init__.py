"""Models built from tinyseg modules."""
from .hrenet import PRESETS, HReNet

__all__ = ["HReNet", "PRESETS"]
