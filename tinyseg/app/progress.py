"""A dependency-free progress bar on stderr.

On a terminal the bar redraws in place (``\\r``) at most ten times a second;
when stderr is a file or a pipe only the finished line of each bar is
written, so logs stay readable.
"""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """``bar = ProgressBar(total, "epoch 3/30")``; ``bar.update(done, images, loss=0.2)``; ``bar.close()``."""

    def __init__(self, total, prefix="", stream=None, width=24, enabled=True):
        self.total, self.prefix, self.width, self.enabled = max(int(total), 1), prefix, width, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = self.last_draw = time.perf_counter()
        self.done, self.images, self.values = 0, 0, {}

    def update(self, done, images=0, **values):
        """Record ``done`` steps of ``total`` and ``images`` processed so far; redraw if due."""
        self.done, self.images = done, images
        self.values.update(values)
        now = time.perf_counter()
        if self.enabled and self.interactive and (now - self.last_draw > 0.1 or done >= self.total):
            self.last_draw = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def line(self):
        filled = int(self.width * min(self.done / self.total, 1.0))
        elapsed = time.perf_counter() - self.start
        rate = self.images / elapsed if elapsed > 0 else 0.0
        values = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in self.values.items())
        return (f"{self.prefix} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{self.done}/{self.total} {values} {rate:.1f} img/s {elapsed:.0f}s")

    def close(self, **values):
        """Finish the line, optionally adding final values (e.g. validation scores)."""
        self.values.update(values)
        if self.enabled:
            self.stream.write(("\r" if self.interactive else "") + self.line() + "\n")
            self.stream.flush()
