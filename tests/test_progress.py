"""Progress on a terminal and in a log, and the run's time estimate."""
import io
import re

from tinyseg.app.progress import LINE_EVERY_S, ProgressBar, RunEstimate, format_duration


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_log_gets_plain_lines_every_tenth_and_every_minute():
    log, clock = io.StringIO(), Clock()
    bar = ProgressBar(100, "epoch 1/3", stream=log, clock=clock)
    for step in range(1, 101):
        clock.now += 2.0                       # 2 s a step: a tenth is 20 s, more than the minimum gap
        bar.update(step, step * 4, loss=0.5)
    bar.close(val_lungs=0.9)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10                   # steps 10, 20, ..., 90 and the finished line
    assert lines[0].startswith("epoch 1/3 [") and " 10/100 " in lines[0] and "left)" in lines[0]
    assert " 100/100 " in lines[-1] and "val_lungs 0.9000" in lines[-1] and "left" not in lines[-1]

    slow, clock = io.StringIO(), Clock()       # 7 minutes a step: a line every step that takes > 1 min
    bar = ProgressBar(1000, "epoch 1/1", stream=slow, clock=clock)
    for step in range(1, 4):
        clock.now += 7 * LINE_EVERY_S
        bar.update(step, step)
    assert len(slow.getvalue().splitlines()) == 3

    fast, clock = io.StringIO(), Clock()       # a quick epoch: only its finished line
    bar = ProgressBar(50, "epoch 1/1", stream=fast, clock=clock)
    for step in range(1, 51):
        clock.now += 0.05
        bar.update(step, step)
    bar.close()
    assert len(fast.getvalue().splitlines()) == 1


def test_terminal_redraws_in_place_and_notes_go_above():
    tty, clock = Terminal(), Clock()
    bar = ProgressBar(4, "epoch 1/1", stream=tty, clock=clock)
    clock.now = 1.0
    bar.update(1, 4)
    bar.note("estimate: about 2 min in all")
    clock.now = 2.0
    bar.update(2, 8)
    bar.close()
    text = tty.getvalue()
    assert text.count("\n") == 2 and text.startswith("\repoch 1/1 [")
    assert "\restimate: about 2 min in all" in text
    assert text.rstrip("\n").rsplit("\r", 1)[1].startswith("epoch 1/1 [") and " 2/4 " in text


def test_disabled_bar_writes_nothing():
    log = io.StringIO()
    bar = ProgressBar(3, "x", stream=log, enabled=False)
    bar.update(3, 3)
    bar.note("estimate")
    bar.close()
    assert log.getvalue() == ""


def test_format_duration():
    assert [format_duration(s) for s in (42, 99, 600, 5940, 6000, 90 * 3600)] == [
        "42 s", "99 s", "10 min", "99 min", "1.7 h", "90.0 h"]


def run_estimate(step_seconds, steps=44, epochs=150, long_s=RunEstimate.LONG_RUN_S, first=10.0):
    clock = Clock()
    estimate = RunEstimate("preset small at 256x256 on cpu", steps, epochs, 4, 22, 51,
                           "--preset small --size 256 256 or a GPU (--device cuda)", long_s=long_s, clock=clock)
    log = io.StringIO()
    on_step = estimate.timer(ProgressBar(steps, "epoch 1/1", stream=log, clock=clock))
    lines = []
    for step in range(1, steps + 1):
        clock.now += first if step == 1 else step_seconds
        before = log.getvalue()
        on_step(step)
        lines.append(log.getvalue()[len(before):].rstrip("\n") or None)
    return estimate, lines


ESTIMATE = re.compile(r"^estimate: (?P<plan>.+); about (?P<total>[\d.]+ (s|min|h)) in all "
                      r"\((?P<step>[\d.]+) s per batch of 4, timed on (?P<n>\d+) batch(es)?\)(?P<warning>.*)$")


def test_estimate_times_steps_after_the_first_and_extrapolates():
    estimate, lines = run_estimate(1.0)
    said = [(i, line) for i, line in enumerate(lines, 1) if line]
    assert len(said) == 1 and said[0][0] == 1 + RunEstimate.TIMED_STEPS   # the first step is warm-up
    match = ESTIMATE.match(said[0][1])
    assert match and match["plan"] == "preset small at 256x256 on cpu" and match["step"] == "1.00"
    # 150 epochs x (44 steps + 22 scored images x 1/3 of a step's 4) + 51 test images: 1.9 h
    expected = 150 * (44 + 22 / 12) + 51 / 12
    assert match["total"] == format_duration(expected) and match["warning"] == ""
    # after the first epoch: measured, the warm-up of its first step left out
    line = estimate.measured(train_s=10 + 43, scoring_s=2.0, epochs_left=149)
    assert line.startswith("measured: an epoch takes 46 s (44 s training, 2 s scoring); about ")
    assert format_duration(149 * 46 + 2 * 51 / 22) in line and "149 more epochs" in line


def test_long_run_says_so_and_names_the_faster_alternative():
    estimate, lines = run_estimate(50.0, first=50.0)
    line = next(line for line in lines if line)
    assert "timed on 1 batch)" in line                                # 50 s: past the timing budget
    assert "more than 3.0 h here: faster is --preset small --size 256 256 or a GPU" in line
    assert "faster is" in estimate.measured(44 * 50, 60, 149)
    assert "faster" not in run_estimate(1.0)[0].measured(44, 2, 149)


def test_estimate_of_a_one_step_epoch_uses_that_step():
    estimate, lines = run_estimate(0.0, steps=1, epochs=2, first=3.0)
    assert lines[0] and "3.00 s per batch" in lines[0] and "timed on 1 batch)" in lines[0]
