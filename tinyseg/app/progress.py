"""Progress on stderr: a dependency-free progress bar and the run's time estimate.

On a terminal the bar redraws in place (``\\r``) at most ten times a second.
When stderr is a file or a pipe (a log, ``nohup``, a batch job) it writes
plain lines instead: one when another ``LINE_EVERY_FRACTION`` of the work is
done (but not more often than every ``MIN_LINE_GAP_S``), at least one every
``LINE_EVERY_S`` while work goes on, and the finished line, so a log shows
that a long epoch is alive without filling up.
"""
from __future__ import annotations

import sys
import time

import numpy as np

LINE_EVERY_FRACTION = 0.1
MIN_LINE_GAP_S = 10.0
LINE_EVERY_S = 60.0


def format_duration(seconds):
    """``42 s``, ``36 min``, ``3.5 h``: a duration as people say it."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 100 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressBar:
    """``bar = ProgressBar(total, "epoch 3/30")``; ``bar.update(done, images, loss=0.2)``; ``bar.close()``."""

    def __init__(self, total, prefix="", stream=None, width=24, enabled=True, clock=time.perf_counter):
        self.total, self.prefix, self.width, self.enabled = max(int(total), 1), prefix, width, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.start = self.last_draw = clock()
        self.done, self.images, self.values, self.drawn_at, self.drawn_length = 0, 0, {}, 0, 0

    def update(self, done, images=0, **values):
        """Record ``done`` steps of ``total`` and ``images`` processed so far; redraw if due."""
        self.done, self.images = done, images
        self.values.update(values)
        if not self.enabled or done >= self.total and not self.interactive:   # close() ends a log
            return
        now = self.clock()
        since = now - self.last_draw
        if self.interactive:
            due = since > 0.1 or done >= self.total
        else:
            due = since >= LINE_EVERY_S or (since >= MIN_LINE_GAP_S and
                                             (done - self.drawn_at) / self.total >= LINE_EVERY_FRACTION)
        if due:
            self.last_draw, self.drawn_at = now, done
            self._draw()

    def _draw(self):
        line = self.line()
        if self.interactive:
            self.stream.write("\r" + line.ljust(self.drawn_length))
            self.drawn_length = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text):
        """Write a line of text without breaking the bar: above it on a terminal."""
        if not self.enabled:
            return
        if self.interactive and self.drawn_length:
            self.stream.write("\r" + text.ljust(self.drawn_length) + "\n")
            self.drawn_length = 0
            self._draw()
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def line(self):
        filled = int(self.width * min(self.done / self.total, 1.0))
        elapsed = self.clock() - self.start
        rate = self.images / elapsed if elapsed > 0 else 0.0
        values = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in self.values.items())
        left = ""
        if 0 < self.done < self.total:
            left = f" ({format_duration(elapsed / self.done * (self.total - self.done))} left)"
        return (f"{self.prefix} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{self.done}/{self.total} {values} {rate:.1f} img/s {elapsed:.0f}s{left}")

    def close(self, **values):
        """Finish the line, optionally adding final values (e.g. validation scores)."""
        self.values.update(values)
        if self.enabled:
            start = "\r" if self.interactive else ""
            self.stream.write(start + self.line().ljust(self.drawn_length) + "\n")
            self.stream.flush()


class RunEstimate:
    """How long a training run will take, said once after its first timed steps and again
    after its first epoch. The first step is not timed when others follow (it pays for
    compilation and warm-up); scoring an image is taken to cost ``SCORING_SHARE`` of
    training on it (a forward pass without the backward) until an epoch has measured it.

    ``advice`` names what would be faster; it is added when the run takes over ``long_s``.
    """

    TIMED_STEPS = 3
    TIMING_BUDGET_S = 30.0
    SCORING_SHARE = 1 / 3
    LONG_RUN_S = 3 * 3600.0

    def __init__(self, plan, steps_per_epoch, epochs, batch_size, heldout_images, test_images,
                 advice, long_s=LONG_RUN_S, clock=time.perf_counter):
        self.plan, self.steps_per_epoch, self.epochs = plan, steps_per_epoch, epochs
        self.batch_size, self.heldout_images, self.test_images = batch_size, heldout_images, test_images
        self.advice, self.long_s = advice, long_s
        self.clock, self.times, self.said, self.warm_up_s = clock, [clock()], False, 0.0

    def timer(self, bar):
        """Start timing; returns ``on_step(step)`` for the first epoch, which writes the
        estimate above ``bar`` once it is ready."""
        self.times = [self.clock()]

        def on_step(step):
            line = self.step(step)
            if line:
                bar.note(line)
        return on_step

    def step(self, step):
        """Call after training step ``step`` (1-based) of the first epoch; returns the estimate
        line once enough steps are timed (else None)."""
        self.times.append(self.clock())
        durations = np.diff(self.times)
        timed = durations[1:] if len(durations) > 1 else durations
        enough = len(durations) > 1 and (len(timed) >= self.TIMED_STEPS
                                         or timed.sum() >= self.TIMING_BUDGET_S)
        if self.said or not (enough or step >= self.steps_per_epoch):
            return None
        self.said = True
        per_step = float(timed.mean())
        self.warm_up_s = max(float(durations[0]) - per_step, 0.0) if len(durations) > 1 else 0.0
        per_scored_image = self.SCORING_SHARE * per_step / self.batch_size
        total = (self.epochs * (self.steps_per_epoch * per_step + self.heldout_images * per_scored_image)
                 + self.test_images * per_scored_image)
        return (f"estimate: {self.plan}; about {format_duration(total)} in all "
                f"({per_step:.2f} s per batch of {self.batch_size}, timed on {len(timed)} "
                f"batch{'es' if len(timed) > 1 else ''})" + self._warning(total))

    def measured(self, train_s, scoring_s, epochs_left):
        """The line after the first epoch: its measured time (less the first step's warm-up,
        which later epochs do not pay) and the time to go."""
        train_s = max(train_s - self.warm_up_s, 0.0)
        test_s = scoring_s * self.test_images / max(self.heldout_images, 1)
        to_go = epochs_left * (train_s + scoring_s) + test_s
        return (f"measured: an epoch takes {format_duration(train_s + scoring_s)} "
                f"({format_duration(train_s)} training, {format_duration(scoring_s)} scoring); "
                f"about {format_duration(to_go)} to go for {epochs_left} more epoch"
                f"{'s' if epochs_left != 1 else ''} and the test split" + self._warning(to_go))

    def _warning(self, seconds):
        if seconds <= self.long_s:
            return ""
        return f"; that is more than {format_duration(self.long_s)} here: faster is {self.advice}"
