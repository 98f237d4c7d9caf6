"""Draw the figures of the tour into docs/figures/ with Pillow and NumPy.

    python docs/make_figures.py              # every figure
    python docs/make_figures.py im2col       # only the named ones

Each figure is one function named like its PNG. Drawing happens at twice the
final size and is scaled down, which smooths lines and edges.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "figures")
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, for ``import tinyseg``

SCALE = 2
INK = (33, 37, 41)
GREY = (134, 142, 150)
LIGHT = (233, 236, 239)
RED = (201, 42, 42)
BLUE = (28, 126, 214)
ORANGE = (232, 89, 12)
GREEN = (47, 158, 68)
PURPLE = (132, 94, 247)
FILLS = {BLUE: (208, 235, 255), ORANGE: (255, 232, 204), GREEN: (211, 249, 216),
         PURPLE: (229, 219, 255), RED: (255, 227, 227), GREY: LIGHT}

FIGURES = {}


def figure(fn):
    FIGURES[fn.__name__] = fn
    return fn


# -- drawing helpers -----------------------------------------------------------------------------

def _font(size, bold=False, mono=False):
    names = {(False, False): "DejaVuSans.ttf", (True, False): "DejaVuSans-Bold.ttf",
             (False, True): "DejaVuSansMono.ttf", (True, True): "DejaVuSansMono-Bold.ttf"}
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu",
                   "/Library/Fonts", "C:/Windows/Fonts"):
        path = os.path.join(folder, names[bold, mono])
        if os.path.exists(path):
            return ImageFont.truetype(path, size * SCALE)
    try:
        return ImageFont.load_default(size=size * SCALE)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


class Canvas:
    """A white image addressed in final-size pixels; ``save`` downsamples the 2x drawing."""

    def __init__(self, width, height):
        self.size = (width, height)
        self.image = Image.new("RGB", (width * SCALE, height * SCALE), "white")
        self.draw = ImageDraw.Draw(self.image)

    @staticmethod
    def _s(*values):
        return [v * SCALE for v in values]

    def text(self, x, y, s, size=14, color=INK, anchor="mm", bold=False, mono=False):
        self.draw.text(self._s(x, y), s, fill=color, font=_font(size, bold, mono), anchor=anchor)

    def rect(self, x0, y0, x1, y1, fill=None, outline=INK, width=1.5, radius=0):
        box = self._s(x0, y0, x1, y1)
        w = max(1, round(width * SCALE))
        if radius:
            self.draw.rounded_rectangle(box, radius * SCALE, fill=fill, outline=outline, width=w)
        else:
            self.draw.rectangle(box, fill=fill, outline=outline, width=w)

    def circle(self, x, y, r, fill=None, outline=INK, width=1.5):
        self.draw.ellipse(self._s(x - r, y - r, x + r, y + r), fill=fill, outline=outline,
                          width=max(1, round(width * SCALE)))

    def line(self, points, color=INK, width=1.5):
        self.draw.line([v * SCALE for p in points for v in p], fill=color,
                       width=max(1, round(width * SCALE)), joint="curve")

    def arrow(self, x0, y0, x1, y1, color=INK, width=1.5, head=8):
        angle = math.atan2(y1 - y0, x1 - x0)
        base = (x1 - head * math.cos(angle), y1 - head * math.sin(angle))
        self.line([(x0, y0), base], color, width)
        left = (x1 - head * math.cos(angle - 0.4), y1 - head * math.sin(angle - 0.4))
        right = (x1 - head * math.cos(angle + 0.4), y1 - head * math.sin(angle + 0.4))
        self.draw.polygon([v * SCALE for p in ((x1, y1), left, right) for v in p], fill=color)

    def grid(self, x, y, values, cell, fills=None, size=13, fmt="{:g}", color=INK, bold=False):
        """A table of numbers with its top-left corner at (x, y); ``fills`` colours cells."""
        rows, cols = len(values), len(values[0])
        for r in range(rows):
            for c in range(cols):
                fill = fills[r][c] if fills is not None else None
                self.rect(x + c * cell, y + r * cell, x + (c + 1) * cell, y + (r + 1) * cell,
                          fill=fill, outline=GREY, width=1)
                v = values[r][c]
                if v is not None and v != "":
                    s = v if isinstance(v, str) else fmt.format(v)
                    self.text(x + (c + 0.5) * cell, y + (r + 0.5) * cell, s, size, color, bold=bold)
        self.rect(x, y, x + cols * cell, y + rows * cell, outline=INK, width=1.5)

    def save(self, name):
        os.makedirs(OUT, exist_ok=True)
        path = os.path.join(OUT, name + ".png")
        self.image.resize(self.size, Image.LANCZOS).save(path, optimize=True)
        print("wrote", os.path.relpath(path, os.path.dirname(HERE)))


class LogPlot:
    """A small log-log (or log-y) line chart inside a Canvas."""

    def __init__(self, canvas, box, xlim, ylim, xlog=True, ylog=True):
        self.c, self.box, self.xlim, self.ylim = canvas, box, xlim, ylim
        self.xlog, self.ylog = xlog, ylog

    def _map(self, v, lim, lo, hi, log):
        f = (lambda t: math.log10(t)) if log else (lambda t: t)
        return lo + (f(v) - f(lim[0])) / (f(lim[1]) - f(lim[0])) * (hi - lo)

    def xy(self, x, y):
        x0, y0, x1, y1 = self.box
        return self._map(x, self.xlim, x0, x1, self.xlog), self._map(y, self.ylim, y1, y0, self.ylog)

    def axes(self, xticks, yticks, xlabel, ylabel, xfmt=None, yfmt=None):
        c, (x0, y0, x1, y1) = self.c, self.box
        for t in yticks:
            _, py = self.xy(self.xlim[0], t)
            c.line([(x0, py), (x1, py)], LIGHT, 1)
            c.text(x0 - 6, py, yfmt(t) if yfmt else _power(t), 12, GREY, anchor="rm")
        for t in xticks:
            px, _ = self.xy(t, self.ylim[0])
            c.line([(px, y0), (px, y1)], LIGHT, 1)
            c.text(px, y1 + 8, xfmt(t) if xfmt else _power(t), 12, GREY, anchor="mt")
        c.rect(x0, y0, x1, y1, outline=GREY, width=1)
        c.text((x0 + x1) / 2, y1 + 30, xlabel, 13)
        label = Image.new("RGBA", (400 * SCALE, 24 * SCALE), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((200 * SCALE, 12 * SCALE), ylabel, fill=INK, font=_font(13),
                                   anchor="mm")
        label = label.rotate(90, expand=True)
        c.image.paste(label, (int((x0 - 62) * SCALE), int(((y0 + y1) / 2 - 200) * SCALE)), label)

    def series(self, xs, ys, color, width=2, dots=False):
        points = [self.xy(x, y) for x, y in zip(xs, ys)]
        self.c.line(points, color, width)
        if dots:
            for px, py in points:
                self.c.circle(px, py, 2.2, fill=color, outline=color, width=1)

    def legend(self, x, y, entries):
        for i, (label, color) in enumerate(entries):
            self.c.line([(x, y + 20 * i), (x + 24, y + 20 * i)], color, 3)
            self.c.text(x + 32, y + 20 * i, label, 12, anchor="lm")


def _power(t):
    e = round(math.log10(t))
    return "1" if e == 0 else f"1e{e}"


# -- chapter 1 -----------------------------------------------------------------------------------

@figure
def autograd_graph():
    """f = (x*y + x)^2 at x=3, y=-2: forward values in black, gradients in red, all from the engine."""
    import tinyseg as ts
    from tinyseg.autograd import _topological_order

    def leaf(value):
        return ts.tensor(np.float64(value), requires_grad=True)

    # forward values, and each intermediate's gradient by making it the leaf of the rest
    xt, yt = leaf(3), leaf(-2)
    u = xt * yt
    v = u + xt
    f = v ** 2
    steps = {type(fn).__name__: str(k) for k, fn in enumerate(_topological_order(f), 1)}
    f.backward()
    u_leaf, v_leaf, f_leaf = leaf(u.item()), leaf(v.item()), leaf(f.item())
    ((u_leaf + xt.item()) ** 2).backward()
    (v_leaf ** 2).backward()
    (f_leaf * 1.0).backward()
    values = {"x": xt, "y": yt, "u": u, "v": v, "f": f}
    grads = {"x": xt.grad, "y": yt.grad, "u": u_leaf.grad, "v": v_leaf.grad, "f": f_leaf.grad}

    def label(name):
        return f"{name} = {values[name].item():g}", f"grad {float(grads[name]):g}"

    c = Canvas(900, 320)
    places = {"x": (70, 80), "y": (70, 220), "u": (350, 190), "v": (600, 135), "f": (840, 135)}
    tensors = {name: xy + label(name) for name, xy in places.items()}
    ops = {"Mul": (215, 190, steps["Mul"]), "Add": (480, 135, steps["Add"]), "Pow": (720, 135, steps["Pow"])}
    edges = [("x", "Mul"), ("y", "Mul"), ("Mul", "u"), ("u", "Add"), ("x", "Add"), ("Add", "v"),
             ("v", "Pow"), ("Pow", "f")]
    half_w, half_h, r = 48, 24, 26

    def anchor(name, toward):
        x, y = (tensors[name][:2] if name in tensors else ops[name][:2])
        tx, ty = (tensors[toward][:2] if toward in tensors else ops[toward][:2])
        angle = math.atan2(ty - y, tx - x)
        if name in ops:
            return x + r * math.cos(angle), y + r * math.sin(angle)
        scale = min(half_w / max(abs(math.cos(angle)), 1e-9), half_h / max(abs(math.sin(angle)), 1e-9))
        return x + scale * math.cos(angle), y + scale * math.sin(angle)

    for a, b in edges:
        (x0, y0), (x1, y1) = anchor(a, b), anchor(b, a)
        c.arrow(x0, y0, x1, y1, GREY, 1.5)
    for name, (x, y, value, grad) in tensors.items():
        leaf = name in "xy"
        c.rect(x - half_w, y - half_h, x + half_w, y + half_h, fill=FILLS[BLUE] if leaf else LIGHT,
               outline=INK, radius=8)
        c.text(x, y, value, 15, bold=leaf)
        c.text(x, y + half_h + 13, grad, 13, RED)
    for name, (x, y, step) in ops.items():
        c.circle(x, y, r, fill="white")
        c.text(x, y, name, 13, bold=True)
        c.circle(x + 22, y - 22, 10, fill=RED, outline=RED)
        c.text(x + 22, y - 22, step, 11, "white", bold=True)
    c.text(20, 22, "forward: values flow left to right", 13, INK, anchor="lm")
    from_add = float(grads["v"])                   # dv/dx = 1
    from_mul = float(grads["u"]) * yt.item()       # du/dx = y
    c.text(20, 298, f"backward: steps 1, 2, 3 (red) run right to left; x gets {from_add:g} from Add "
           f"plus {from_mul:g} from Mul", 13, RED, anchor="lm")
    c.save("autograd_graph")


# -- chapter 2 -----------------------------------------------------------------------------------

@figure
def fd_error():
    """Finite-difference error against eps for the derivative of tanh at 0.5."""
    exact = 1 - np.tanh(0.5) ** 2
    epss = np.logspace(-13, -1, 73)

    def error(dtype, central):
        out = []
        for e in epss:
            x, h = dtype(0.5), dtype(e)
            d = (np.tanh(x + h) - np.tanh(x - h)) / (2 * h) if central else (np.tanh(x + h) - np.tanh(x)) / h
            out.append(max(abs(float(d) - exact), 1e-17))
        return out

    c = Canvas(720, 440)
    plot = LogPlot(c, (90, 50, 690, 370), (1e-13, 1e-1), (1e-14, 1e1))
    plot.axes([10.0 ** k for k in range(-13, 0, 2)], [10.0 ** k for k in range(-14, 2, 2)],
              "eps", "|numeric - exact|")
    plot.series(epss, error(np.float32, True), RED, dots=True)
    plot.series(epss, error(np.float64, False), ORANGE, dots=True)
    plot.series(epss, error(np.float64, True), BLUE, dots=True)
    gx, gy = plot.xy(1e-6, 1e-14)
    c.line([(gx, 50), (gx, gy)], GREY, 1)
    c.text(gx + 4, 60, "gradcheck default eps = 1e-6", 12, GREY, anchor="lm")
    plot.legend(110, 300, [("central, float64", BLUE), ("one-sided, float64", ORANGE),
                           ("central, float32", RED)])
    c.text(360, 24, "Error of the finite-difference derivative of tanh at 0.5", 15, bold=True)
    c.save("fd_error")


# -- chapter 3 -----------------------------------------------------------------------------------

@figure
def im2col():
    """A 4x4 image, 3x3 kernel, stride 1: four windows become the four columns of a 9x4 matrix."""
    c = Canvas(860, 400)
    cell = 40
    image = np.arange(16).reshape(4, 4)
    ix, iy = 40, 110
    fills = [[None] * 4 for _ in range(4)]
    c.grid(ix, iy, image.tolist(), cell, fills, size=14)
    c.rect(ix + 2, iy + 2, ix + 3 * cell - 2, iy + 3 * cell - 2, outline=BLUE, width=3)
    c.rect(ix + cell + 4, iy + cell + 4, ix + 4 * cell - 4, iy + 4 * cell - 4, outline=ORANGE, width=3)
    c.text(ix + 2 * cell, iy - 40, "input x (1, 1, 4, 4)", 14, bold=True)
    c.text(ix + 2 * cell - 6, iy - 18, "window (0,0)", 12, BLUE, anchor="rm")
    c.text(ix + 2 * cell + 6, iy - 18, "window (1,1)", 12, ORANGE, anchor="lm")

    from tinyseg.ops.cpu.im2col import im2col as gather

    columns = gather(image[None, None].astype(np.float64), 3, 3, 1, 0, 2, 2)   # (C*kh*kw, N, Ho*Wo)
    cols = columns[:, 0].astype(int)
    cx, cy = 390, 40
    colour = {0: FILLS[BLUE], 3: FILLS[ORANGE]}
    fills = [[colour.get(j) for j in range(4)] for _ in range(9)]
    c.grid(cx, cy, cols.tolist(), cell * 0.8, fills, size=13)
    for j, label in enumerate(["(0,0)", "(0,1)", "(1,0)", "(1,1)"]):
        c.text(cx + (j + 0.5) * cell * 0.8, cy + 9 * cell * 0.8 + 12, label, 11, GREY)
    for i in range(9):
        c.text(cx - 8, cy + (i + 0.5) * cell * 0.8, f"i={i // 3} j={i % 3}", 11, GREY, anchor="rm")
    c.text(cx + 1.6 * cell, cy + 9 * cell * 0.8 + 34,
           f"cols {tuple(columns.shape)}: one column per output pixel", 12, INK)
    c.arrow(ix + 4 * cell + 20, iy + 2 * cell, cx - 70, iy + 2 * cell, INK, 2)
    c.text((ix + 4 * cell + cx - 50) / 2, iy + 2 * cell - 14, "im2col", 13, bold=True)

    ex = 640
    c.text(ex + 90, 120, "Y = W @ cols", 16, bold=True, mono=True)
    c.text(ex + 90, 150, "(C_out, 9) @ (9, 4)", 13, GREY, mono=True)
    c.text(ex + 90, 172, "= (C_out, 4)", 13, GREY, mono=True)
    c.text(ex + 90, 210, "reshape to", 12, GREY)
    c.text(ex + 90, 230, "(1, C_out, 2, 2)", 13, GREY, mono=True)
    c.text(ex + 90, 280, "col2im (backward) adds", 12, INK)
    c.text(ex + 90, 298, "each column entry back", 12, INK)
    c.text(ex + 90, 316, "onto the pixel it came from", 12, INK)
    c.save("im2col")


@figure
def conv_transpose():
    """Stride-2 transposed convolution of a 2x2 input with a 3x3 kernel: a 5x5 output."""
    c = Canvas(820, 380)
    palette = [BLUE, ORANGE, GREEN, PURPLE]
    cell = 44
    ix, iy = 50, 140
    c.grid(ix, iy, [["a", "b"], ["c", "d"]], cell,
           [[FILLS[palette[0]], FILLS[palette[1]]], [FILLS[palette[2]], FILLS[palette[3]]]],
           size=16, bold=True)
    c.text(ix + cell, iy - 24, "input (2x2)", 14, bold=True)
    c.arrow(ix + 2 * cell + 25, iy + cell, 270, iy + cell, INK, 2)
    c.text((ix + 2 * cell + 285) / 2, iy + cell - 16, "stride 2", 12, GREY)

    ox, oy, oc = 290, 40, 56
    for r in range(5):
        for s in range(5):
            who = [k for k, (pr, pc) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)])
                   if 2 * pr <= r < 2 * pr + 3 and 2 * pc <= s < 2 * pc + 3]
            x0, y0 = ox + s * oc, oy + r * oc
            width = oc / len(who)
            for n, k in enumerate(who):
                c.rect(x0 + n * width, y0, x0 + (n + 1) * width, y0 + oc, fill=FILLS[palette[k]],
                       outline=None, width=0)
            c.rect(x0, y0, x0 + oc, y0 + oc, outline=GREY, width=1)
            c.text(x0 + oc / 2, y0 + oc / 2, "+".join("abcd"[k] for k in who), 12 if len(who) < 4 else 11)
    c.rect(ox, oy, ox + 5 * oc, oy + 5 * oc, outline=INK, width=1.5)
    import tinyseg as ts
    import tinyseg.functional as F

    out = F.conv_transpose2d(ts.tensor(np.ones((1, 1, 2, 2))), ts.tensor(np.ones((1, 1, 3, 3))), stride=2)
    side = out.shape[2]
    c.text(ox + 2.5 * oc, oy + 5 * oc + 20, f"output ({side}x{out.shape[3]}) = (2 - 1) * 2 + 3", 13)
    tx = 610
    for i, line in enumerate(["Each input pixel paints", "its value times the kernel",
                              "at stride 2; where two", "paintings overlap they add.",
                              "", "This is conv2d's input", "gradient, used as a layer."]):
        c.text(tx, 110 + 22 * i, line, 13, anchor="lm")
    c.save("conv_transpose")


@figure
def maxpool():
    """2x2 max pooling of a 4x4 map: forward keeps the winners, backward routes to them."""
    import tinyseg as ts
    import tinyseg.functional as F

    c = Canvas(700, 500)
    x = np.array([[1, 5, 2, 0], [3, 4, 8, 1], [0, 2, 1, 1], [6, 1, 3, 7]])
    dy = np.array([[10, 20], [30, 40]])
    xt = ts.tensor(x[None, None].astype(np.float64), requires_grad=True)
    pooled = F.max_pool2d(xt, 2)
    y = pooled.numpy()[0, 0].astype(int)
    argmax = pooled.creator.saved()["argmax"][0, 0]           # flat indices into the 4x4 plane
    win = {divmod(int(a), 4) for a in argmax.ravel()}
    pooled.backward(dy[None, None].astype(np.float64))
    g = xt.grad[0, 0].astype(int)
    cell = 40
    fills = [[FILLS[RED] if (r, s) in win else None for s in range(4)] for r in range(4)]

    def windows(x0, y0):
        c.line([(x0 + 2 * cell, y0), (x0 + 2 * cell, y0 + 4 * cell)], INK, 2.5)
        c.line([(x0, y0 + 2 * cell), (x0 + 4 * cell, y0 + 2 * cell)], INK, 2.5)

    lx, rx, top, bottom = 60, 470, 50, 300
    c.text(20, top + 2 * cell, "forward", 14, bold=True, anchor="lm")
    c.grid(lx + 60, top, x.tolist(), cell, fills, size=14)
    windows(lx + 60, top)
    c.arrow(lx + 60 + 4 * cell + 20, top + 2 * cell, rx + 40, top + 2 * cell, INK, 2)
    c.text((lx + 4 * cell + rx + 140) / 2, top + 2 * cell - 16, "max of each window", 12, GREY)
    c.grid(rx + 60, top + cell, y.tolist(), cell, [[FILLS[RED]] * 2] * 2, size=14)

    c.text(20, bottom + 2 * cell, "backward", 14, bold=True, anchor="lm")
    c.grid(rx + 60, bottom + cell, dy.tolist(), cell, [[FILLS[BLUE]] * 2] * 2, size=14)
    c.arrow(rx + 40, bottom + 2 * cell, lx + 60 + 4 * cell + 20, bottom + 2 * cell, INK, 2)
    c.text((lx + 4 * cell + rx + 140) / 2, bottom + 2 * cell - 16, "to the argmax", 12, GREY)
    gfill = [[FILLS[BLUE] if (r, s) in win else None for s in range(4)] for r in range(4)]
    c.grid(lx + 60, bottom, [[v if v else "0" for v in row] for row in g.tolist()], cell, gfill,
           size=14)
    windows(lx + 60, bottom)
    c.text(lx + 60 + 2 * cell, top - 20, "x", 14, bold=True)
    c.text(rx + 60 + cell, top + cell - 20, "y", 14, bold=True)
    c.text(rx + 60 + cell, bottom + cell - 20, "dL/dy", 14, bold=True)
    c.text(lx + 60 + 2 * cell, bottom - 20, "dL/dx", 14, bold=True)
    c.save("maxpool")


# -- chapter 4 -----------------------------------------------------------------------------------

@figure
def renet_sweep():
    """ReNet on a 3 x 4 grid of 2x2 patches: horizontal sweeps, then vertical sweeps."""
    c = Canvas(980, 380)
    hp, wp, cell = 3, 4, 50

    def grid(x0, y0, fill=None):
        for r in range(hp):
            for s in range(wp):
                c.rect(x0 + s * cell, y0 + r * cell, x0 + (s + 1) * cell, y0 + (r + 1) * cell,
                       fill=fill, outline=GREY, width=1)
        c.rect(x0, y0, x0 + wp * cell, y0 + hp * cell, outline=INK, width=1.5)

    # 1: the feature map cut into patches
    x0, y0 = 40, 90
    for r in range(2 * hp + 1):
        c.line([(x0, y0 + r * cell / 2), (x0 + wp * cell, y0 + r * cell / 2)], LIGHT, 1)
    for s in range(2 * wp + 1):
        c.line([(x0 + s * cell / 2, y0), (x0 + s * cell / 2, y0 + hp * cell)], LIGHT, 1)
    grid(x0, y0)
    c.rect(x0 + cell, y0 + cell, x0 + 2 * cell, y0 + 2 * cell, fill=FILLS[RED], outline=RED, width=2.5)
    c.text(x0 + wp * cell / 2, 40, "1. cut into 2x2 patches", 14, bold=True)
    c.text(x0 + wp * cell / 2, 62, "(N, C, H, W) -> grid H/2 x W/2", 12, GREY)
    c.text(x0 + wp * cell / 2, y0 + hp * cell + 28, "each patch -> a vector", 12, RED)
    c.text(x0 + wp * cell / 2, y0 + hp * cell + 46, "of C*2*2 values (C, ph, pw order)", 12, RED)

    # 2: horizontal sweeps
    x1 = 370
    grid(x1, y0, FILLS[BLUE])
    for r in range(hp):
        yy = y0 + (r + 0.35) * cell
        c.arrow(x1 + 8, yy, x1 + wp * cell - 8, yy, BLUE, 2, 8)
        yy = y0 + (r + 0.7) * cell
        c.arrow(x1 + wp * cell - 8, yy, x1 + 8, yy, ORANGE, 2, 8)
    c.text(x1 + wp * cell / 2, 40, "2. sweep every row", 14, bold=True)
    c.text(x1 + wp * cell / 2, 62, "h_fwd left to right, h_bwd right to left", 12, GREY)
    c.text(x1 + wp * cell / 2, y0 + hp * cell + 28, "N*H/2 sequences of W/2 steps", 12, INK)
    c.text(x1 + wp * cell / 2, y0 + hp * cell + 46, "output: [fwd, bwd] = 2d per patch", 12, INK)

    # 3: vertical sweeps over the horizontal features
    x2 = 700
    grid(x2, y0, FILLS[GREEN])
    for s in range(wp):
        xx = x2 + (s + 0.35) * cell
        c.arrow(xx, y0 + 8, xx, y0 + hp * cell - 8, GREEN, 2, 8)
        xx = x2 + (s + 0.7) * cell
        c.arrow(xx, y0 + hp * cell - 8, xx, y0 + 8, PURPLE, 2, 8)
    c.text(x2 + wp * cell / 2, 40, "3. sweep every column", 14, bold=True)
    c.text(x2 + wp * cell / 2, 62, "v_fwd down, v_bwd up", 12, GREY)
    c.text(x2 + wp * cell / 2, y0 + hp * cell + 28, "N*W/2 sequences of H/2 steps", 12, INK)
    c.text(x2 + wp * cell / 2, y0 + hp * cell + 46, "output (N, 2d, H/2, W/2)", 12, INK)
    c.arrow(x0 + wp * cell + 25, y0 + hp * cell / 2, x1 - 25, y0 + hp * cell / 2, INK, 2)
    c.arrow(x1 + wp * cell + 25, y0 + hp * cell / 2, x2 - 25, y0 + hp * cell / 2, INK, 2)
    c.text(490, 345, "After step 2 a cell knows its whole row; after step 3 it knows every row, "
           "so the whole image.", 13)
    c.save("renet_sweep")


def hrenet_walk(model, x):
    """Run an HReNet's layers one at a time, in the order of ``HReNet.forward``.

    Returns the logits and one row per step: (name, output shape, parameters
    of that step, multiply-adds of that step). No hooks: each layer is called
    by hand on the previous output, so every shape is one the model really
    produces, and the multiply-adds are counted from those shapes.
    """
    import math

    import tinyseg as ts
    import tinyseg.functional as F
    from tinyseg.models.hrenet import STRIDE

    def count(*modules):
        return sum(p.size for m in modules for p in m.parameters())

    def conv_macs(layer, out):  # every output value is one kernel-sized dot product
        return layer.weight.size // layer.weight.shape[0] * out.size

    def lstm_macs(lstm, steps, batch):  # per step and sequence: (4H, I + H) weights
        return steps * batch * (lstm.weight_ih.size + lstm.weight_hh.size)

    rows = [("input", x.shape, 0, 0)]
    with ts.no_grad():
        for block, names in enumerate(model.block_layers, start=1):
            for name in names:
                layer = getattr(model, name)
                x = F.relu(layer(x))
                rows.append((name, x.shape, count(layer), conv_macs(layer, x)))
            x = F.max_pool2d(x, 2)
            rows.append((f"pool{block}", x.shape, 0, 0))
        pool4 = x
        conv6 = F.relu(model.conv6(pool4))
        rows.append(("conv6", conv6.shape, count(model.conv6), conv_macs(model.conv6, conv6)))
        conv7 = F.relu(model.conv7(conv6))
        rows.append(("conv7", conv7.shape, count(model.conv7), conv_macs(model.conv7, conv7)))
        features = F.concat([model.bn_pool4(pool4), model.bn_conv7(conv7)], axis=1)
        rows.append(("concat(bn_pool4, bn_conv7)", features.shape,
                     count(model.bn_pool4, model.bn_conv7), 0))
        height, width = rows[0][1][2:]
        grid_h, grid_w = math.ceil(height / STRIDE), math.ceil(width / STRIDE)
        pad = ((0, 0), (0, 0), (0, 2 * grid_h - features.shape[2]), (0, 2 * grid_w - features.shape[3]))
        features = F.pad(features, pad)
        rows.append(("pad to whole 2x2 patches", features.shape, 0, 0))
        sweeps = model.renet(features)
        n, _, gh, gw = sweeps.shape
        macs = sum(lstm_macs(getattr(model.renet, k), gw, n * gh) for k in ("h_fwd", "h_bwd")) + \
            sum(lstm_macs(getattr(model.renet, k), gh, n * gw) for k in ("v_fwd", "v_bwd"))
        rows.append(("renet (2x2 patches)", sweeps.shape, count(model.renet), macs))
        scores = model.classifier(sweeps)
        rows.append(("classifier (1x1)", scores.shape, count(model.classifier),
                     conv_macs(model.classifier, scores)))
        logits = model.upsample(scores)
        rows.append(("upsample (64x64, stride 32)", logits.shape, count(model.upsample),
                     model.upsample.weight.size * scores.size // scores.shape[1]))
        logits = logits[:, :, :height, :width]
        rows.append(("crop", logits.shape, 0, 0))
    return logits, rows


def _paper_rows():
    """The walk on the paper preset at the paper's 400x500 (builds a 167M-parameter model)."""
    import tinyseg as ts
    from tinyseg.models import HReNet

    model = HReNet(preset="paper")
    model.eval()
    x = ts.tensor(np.random.default_rng(0).standard_normal((1, 1, 400, 500)), dtype=np.float32)
    _, rows = hrenet_walk(model, x)
    return rows


def _markdown_table(rows):
    lines = ["| step | output (N, C, H, W) | parameters | multiply-adds (millions) |",
             "| --- | --- | ---: | ---: |"]
    for name, shape, params, macs in rows:
        lines.append(f"| {name} | {tuple(shape)} | {f'{params:,}' if params else ''} | "
                     f"{f'{macs / 1e6:,.1f}' if macs else ''} |")
    params, macs = sum(r[2] for r in rows), sum(r[3] for r in rows)
    lines.append(f"| total | | {params:,} | {macs / 1e6:,.1f} |")
    return "\n".join(lines)


@figure
def hrenet_shapes():
    """H-ReNet (paper preset) on a 400x500 radiograph: every stage with its output shape."""
    rows = _paper_rows()
    print(_markdown_table(rows))
    shapes = {name: shape for name, shape, _, _ in rows}

    def dims(name):
        _, ch, h, w = shapes[name]
        return f"{ch} x {h} x {w}"

    c = Canvas(1000, 500)
    c.text(500, 24, "H-ReNet, paper preset, one 400 x 500 radiograph (shapes are C x H x W)", 15,
           bold=True)
    blocks = [("input", "image", GREY), ("pool1", "block 1: 2 conv + pool", BLUE),
              ("pool2", "block 2: 2 conv + pool", BLUE), ("pool3", "block 3: 3 conv + pool", BLUE),
              ("pool4", "block 4: 3 conv + pool", BLUE)]
    x0, y, bw, bh = 30, 70, 170, 70
    step = 190
    for k, (name, label, colour) in enumerate(blocks):
        x = x0 + k * step
        c.rect(x, y, x + bw, y + bh, fill=FILLS[colour], outline=colour, radius=6)
        c.text(x + bw / 2, y + bh / 2 - 9, label, 12, bold=True)
        c.text(x + bw / 2, y + bh / 2 + 11, dims(name), 12, mono=True)
        if k:
            c.arrow(x - step + bw + 2, y + bh / 2, x - 2, y + bh / 2, INK, 1.5, 7)
    # second row: conv6/conv7 branch and concat
    px = x0 + 4 * step + bw / 2
    r2 = 210
    c.rect(px - 400, r2, px - 230, r2 + 60, fill=FILLS[ORANGE], outline=ORANGE, radius=6)
    c.text(px - 315, r2 + 20, "conv6 7x7 + conv7 1x1", 12, bold=True)
    c.text(px - 315, r2 + 40, dims("conv7"), 12, mono=True)
    c.arrow(px, y + bh, px - 315, r2 - 2, INK, 1.5, 7)
    c.rect(px - 130, r2, px + 85, r2 + 60, fill=FILLS[GREEN], outline=GREEN, radius=6)
    c.text(px - 22, r2 + 20, "batch-norm + concat", 12, bold=True)
    c.text(px - 22, r2 + 40, dims("concat(bn_pool4, bn_conv7)"), 12, mono=True)
    c.arrow(px, y + bh, px, r2 - 2, INK, 1.5, 7)
    c.arrow(px - 230, r2 + 30, px - 132, r2 + 30, INK, 1.5, 7)
    # third row, right to left: pad, ReNet, classifier, upsample, crop
    r3 = 340
    tail = [("pad to whole 2x2 patches", "zero-pad", GREY),
            ("renet (2x2 patches)", "ReNet: 4 LSTM sweeps", PURPLE),
            ("classifier (1x1)", "classifier 1x1", GREEN),
            ("upsample (64x64, stride 32)", "transposed conv x32", ORANGE),
            ("crop", "crop: logits", RED)]
    for k, (name, label, colour) in enumerate(tail):
        x = x0 + (4 - k) * step
        c.rect(x, r3, x + bw, r3 + 70, fill=FILLS[colour], outline=colour, radius=6)
        c.text(x + bw / 2, r3 + 26, label, 12, bold=True)
        c.text(x + bw / 2, r3 + 46, dims(name), 12, mono=True)
        if k:
            c.arrow(x + step - 2, r3 + 35, x + bw + 2, r3 + 35, INK, 1.5, 7)
    c.arrow(px - 22, r2 + 62, px - 22, r3 - 2, INK, 1.5, 7)
    c.text(500, 445, "stride 16 after four pools; stride 32 after the 2x2 ReNet patches; "
           "the 416 x 512 upsampled map is cropped to the input size", 12, GREY)
    c.text(500, 470, "each ReNet output cell has seen the whole image: two LSTMs per axis, "
           "one per direction", 12, GREY)
    c.save("hrenet_shapes")


# -- chapter 5 -----------------------------------------------------------------------------------

@figure
def lstm_kernel():
    """Thread layout of cuda/lstm.cu: blocks over sequence groups and directions, threads over units."""
    c = Canvas(980, 430)
    c.text(250, 24, "grid: one block per group of sequences and direction", 14, bold=True)
    bx, by, bw, bh = 60, 70, 95, 60
    for d, label in enumerate(["forward", "reverse"]):
        c.text(bx - 12, by + d * (bh + 20) + bh / 2, f"y={d}", 12, GREY, anchor="rm")
        c.text(bx - 12, by + d * (bh + 20) + bh / 2 + 16, label, 11, GREY, anchor="rm")
        for g in range(4):
            x, y = bx + g * (bw + 12), by + d * (bh + 20)
            highlight = (d, g) == (0, 3)
            c.rect(x, y, x + bw, y + bh, fill=FILLS[PURPLE] if highlight else LIGHT,
                   outline=PURPLE if highlight else GREY, width=2 if highlight else 1, radius=4)
            c.text(x + bw / 2, y + 20, f"block x={g}", 12, bold=highlight)
            c.text(x + bw / 2, y + 40, f"seq {8 * g}-{8 * g + 7}", 11, GREY)
    c.text(250, by + 2 * (bh + 20) + 14, "sequences = rows (or columns) of the ReNet grid, times N", 12, GREY)
    c.text(250, by + 2 * (bh + 20) + 34, "group <= 8 sequences per block; both directions run at once", 12,
           GREY)

    # zoom into one block
    zx, zy = 520, 50
    c.text(zx + 215, 24, "inside a block: threads own hidden units", 14, bold=True)
    right = bx + 3 * (bw + 12) + bw
    c.line([(right, by), (zx, zy)], PURPLE, 1)
    c.line([(right, by + bh), (zx, zy + 350)], PURPLE, 1)
    c.rect(zx, zy, zx + 440, zy + 350, outline=PURPLE, width=2, radius=6)
    c.rect(zx + 20, zy + 20, zx + 420, zy + 70, fill=FILLS[ORANGE], outline=ORANGE, radius=4)
    c.text(zx + 220, zy + 36, "shared memory: h_prev [group][H]", 13, bold=True)
    c.text(zx + 220, zy + 56, "every thread reads all of it", 11, GREY)
    for k in range(8):
        x = zx + 20 + k * 50
        c.rect(x, zy + 100, x + 44, zy + 130, fill=FILLS[BLUE], outline=BLUE, width=1)
        c.text(x + 22, zy + 115, f"t{k}" if k < 7 else "...", 11)
        c.arrow(x + 22, zy + 72, x + 22, zy + 98, ORANGE, 1, 6)
    c.text(zx + 220, zy + 146, "thread x owns units j = x, x + blockDim.x, ...", 12)
    lines = ["for each of the group's sequences, thread x computes",
             "the four gate rows j, H+j, 2H+j, 3H+j:",
             "z = z_input[t] + h_prev W_hh^T  (its own columns of W_hh)",
             "i, f, g, o -> c = f c_prev + i g,  h = o tanh(c)",
             "so the cell update needs nothing from other threads.",
             "",
             "__syncthreads()   everyone has read the old h_prev",
             "copy h into h_prev",
             "__syncthreads()   then the next time step"]
    for k, line in enumerate(lines):
        mono = line.startswith(("z =", "i, f", "__sync", "copy"))
        c.text(zx + 24, zy + 180 + 19 * k, line, 11 if mono else 12, INK, anchor="lm", mono=mono)
    c.save("lstm_kernel")


# -- chapter 9 -----------------------------------------------------------------------------------

@figure
def lstm_unrolled():
    """An LSTM unrolled over three steps: h and c flow right, their gradients flow back left."""
    c = Canvas(1040, 400)
    cw, ch, gap, x0, y0 = 220, 150, 95, 95, 120
    c.text(520, 22, "forward (black): each step hands h_t and c_t to the next; "
           "backward (red): gradients return the same way", 13, bold=True)
    for k in range(3):
        x = x0 + k * (cw + gap)
        c.rect(x, y0, x + cw, y0 + ch, fill=LIGHT, outline=INK, radius=8)
        t = ["t-1", "t", "t+1"][k]
        c.text(x + cw / 2, y0 + 22, f"step {t}", 14, bold=True)
        c.text(x + cw / 2, y0 + 52, "i, f, g, o from x, h_prev", 11, mono=True)
        c.text(x + cw / 2, y0 + 78, "c = f c_prev + i g", 11, mono=True)
        c.text(x + cw / 2, y0 + 104, "h = o tanh(c)", 11, mono=True)
        # input from below, output to the loss above
        c.arrow(x + cw / 2, y0 + ch + 50, x + cw / 2, y0 + ch + 2, INK, 1.5)
        c.text(x + cw / 2, y0 + ch + 62, f"x_{t}", 13)
        c.arrow(x + cw / 2 - 20, y0 - 2, x + cw / 2 - 20, y0 - 48, INK, 1.5)
        c.text(x + cw / 2 - 20, y0 - 60, f"h_{t} -> loss", 12)
        c.arrow(x + cw / 2 + 20, y0 - 48, x + cw / 2 + 20, y0 - 2, RED, 1.5)
        c.text(x + cw / 2 + 24, y0 - 30, f"gh_{t}", 12, RED, anchor="lm")
        # recurrent links to the next step (or out of the picture)
        right, nxt = x + cw, x + cw + gap
        c.arrow(right + 2, y0 + 40, nxt - 2, y0 + 40, INK, 1.5)
        c.text((right + nxt) / 2, y0 + 30, f"h_{t}", 12)
        c.arrow(right + 2, y0 + 70, nxt - 2, y0 + 70, INK, 1.5)
        c.text((right + nxt) / 2, y0 + 60, f"c_{t}", 12)
        c.arrow(nxt - 2, y0 + 100, right + 2, y0 + 100, RED, 1.5)
        c.text((right + nxt) / 2, y0 + 112, "dh_next", 11, RED)
        c.arrow(nxt - 2, y0 + 130, right + 2, y0 + 130, RED, 1.5)
        c.text((right + nxt) / 2, y0 + 142, "dc_next = dc f", 11, RED)
    c.arrow(x0 - 60, y0 + 40, x0 - 2, y0 + 40, GREY, 1.5)
    c.arrow(x0 - 60, y0 + 70, x0 - 2, y0 + 70, GREY, 1.5)
    c.text(x0 - 90, y0 + 20, "h = c = 0", 11, GREY, anchor="lm")
    c.text(520, 385, "at step t: dh = gh_t + dh_next;  dc = dh o (1 - tanh^2 c) + dc_next;  "
           "dz from dc and dh;  dh_next = dz W_hh", 12, RED)
    c.save("lstm_unrolled")


# -- chapter 6 -----------------------------------------------------------------------------------

def _gray(array, lo=0.0, hi=1.0, scale=1):
    """A float image as an 8-bit grey PIL image, ``scale`` times larger (nearest neighbour)."""
    pixels = np.clip((np.asarray(array, dtype=np.float64) - lo) / (hi - lo), 0, 1)
    picture = Image.fromarray(np.round(pixels * 255).astype(np.uint8))
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return picture


def _paste(canvas, picture, x, y):
    """Paste a PIL image with its top-left corner at final-size pixel (x, y)."""
    big = picture.resize((picture.width * SCALE, picture.height * SCALE), Image.NEAREST)
    canvas.image.paste(big.convert("RGB"), (int(x * SCALE), int(y * SCALE)))


def _tiles(columns, patch, per_row, gap=1):
    """Dictionary columns (patch*patch, K) as a mosaic of patch x patch tiles, each stretched."""
    count = columns.shape[1]
    rows = math.ceil(count / per_row)
    mosaic = np.zeros((rows * (patch + gap) + gap, per_row * (patch + gap) + gap))
    for k in range(count):
        tile = columns[:, k].reshape(patch, patch)
        span = np.abs(tile).max() or 1.0
        r, c = divmod(k, per_row)
        mosaic[gap + r * (patch + gap):gap + r * (patch + gap) + patch,
               gap + c * (patch + gap):gap + c * (patch + gap) + patch] = 0.5 + 0.5 * tile / span
    return mosaic


def _noisy_radiograph(size=(256, 320), sigma=0.04):
    from tinyseg.data import synthesize_radiograph

    clean, _ = synthesize_radiograph(np.random.default_rng(7), size=size)
    noisy = clean + np.random.default_rng(8).normal(0, sigma, clean.shape)
    return clean.astype(np.float64), noisy, sigma


def _psnr(image, reference):
    return 10 * np.log10(1.0 / np.mean((np.asarray(image, dtype=np.float64) - reference) ** 2))


@figure
def denoise_before_after():
    """A synthetic radiograph, the same with noise, and the three K-SVD denoisers' results."""
    from tinyseg.denoise import adaptive_filter_denoise, collaborative_denoise, ksvd_denoise

    clean, noisy, sigma = _noisy_radiograph()
    panels = [("clean", clean), (f"noisy (sigma {sigma})", noisy),
              ("K-SVD (Elad & Aharon)", ksvd_denoise(noisy, sigma=sigma)),
              ("adaptive filters (paper)", adaptive_filter_denoise(noisy, sigma=sigma)),
              ("groups (collaborative)", collaborative_denoise(noisy, sigma=sigma))]
    h, w = clean.shape
    crop = (slice(60, 124), slice(40, 104))       # lung field and ribs, shown 3x
    c = Canvas(len(panels) * (w + 20) + 20, h + 3 * 64 + 110)
    for k, (title, image) in enumerate(panels):
        x = 20 + k * (w + 20)
        _paste(c, _gray(image), x, 40)
        c.text(x + w / 2, 22, title, 13, bold=True)
        if k:
            c.text(x + w / 2, h + 52, f"PSNR {_psnr(image, clean):.1f} dB", 12, GREY)
        _paste(c, _gray(image[crop], scale=3), x + (w - 192) / 2, h + 70)
        if k == 0:
            c.rect(crop[1].start + x, crop[0].start + 40, crop[1].stop + x, crop[0].stop + 40,
                   outline=RED, width=1.5)
    c.text(c.size[0] / 2, c.size[1] - 16, "bottom row: the red square, enlarged 3x", 12, GREY)
    c.save("denoise_before_after")


@figure
def ksvd_atoms():
    """The dictionary K-SVD learns from the noisy radiograph, and the SVD basis built from it."""
    from tinyseg.denoise import adaptive_basis, learn_dictionary, overcomplete_dct

    _, noisy, sigma = _noisy_radiograph()
    start = overcomplete_dct(8, 256)
    learned = learn_dictionary(noisy, sigma)
    basis = adaptive_basis(learned)
    panels = [("overcomplete DCT (the start)", _tiles(start, 8, 16)),
              ("after K-SVD on the noisy image", _tiles(learned, 8, 16)),
              ("SVD basis U: leading first, filters last", _tiles(basis, 8, 8))]
    scale = 2
    c = Canvas(3 * 310 + 30, 400)
    for k, (title, mosaic) in enumerate(panels):
        picture = _gray(mosaic, scale=scale if k < 2 else 4)
        x = 20 + k * 310 + (290 - picture.width) / 2
        _paste(c, picture, x, 50)
        c.text(20 + k * 310 + 145, 28, title, 13, bold=True)
    c.text(c.size[0] / 2, 375, "each tile is one 8x8 atom (grey = 0), the constant DC atom first; "
           "basis columns in order of decreasing singular value", 12, GREY)
    c.save("ksvd_atoms")


# -- chapter 7 -----------------------------------------------------------------------------------

TOUR_RUN = dict(epochs=20, n_synthetic=120, seed=0)   # a short synthetic run: CPU minutes


def _tour_run():
    """Train the small preset on synthetic radiographs into runs/tour (reused when complete)."""
    import json

    from tinyseg.app import TrainConfig, train

    out = os.path.join(os.path.dirname(HERE), "runs", "tour")
    stamp = os.path.join(out, "tour_run.json")
    if not (os.path.isfile(stamp) and json.load(open(stamp)) == TOUR_RUN):
        print("training the small preset on synthetic radiographs (a few CPU minutes) ...")
        train(TrainConfig(out=out, progress=False, **TOUR_RUN))
        with open(stamp, "w") as f:
            json.dump(TOUR_RUN, f)
    return out


@figure
def training_curves():
    """Loss and held-out Dice per epoch of the tour's synthetic training run."""
    import json

    out = _tour_run()
    history = json.load(open(os.path.join(out, "history.json")))
    epochs = [h["epoch"] for h in history]
    c = Canvas(900, 360)
    last = max(epochs)
    loss = LogPlot(c, (80, 50, 420, 290), (1, last), (0.05, 2.0), xlog=False, ylog=True)
    loss.axes(list(range(0, last + 1, 5))[1:] or [1], [0.1, 0.2, 0.5, 1.0], "epoch", "cross-entropy (log scale)",
              xfmt=str, yfmt=lambda t: f"{t:g}")
    loss.series(epochs, [h["train_loss"] for h in history], BLUE, dots=True)
    loss.series(epochs, [h["heldout_loss"] for h in history], ORANGE, dots=True)
    loss.legend(300, 70, [("train", BLUE), (history[-1]["heldout"], ORANGE)])
    c.text(250, 28, "loss", 14, bold=True)
    score = LogPlot(c, (540, 50, 880, 290), (1, last), (0.0, 1.0), xlog=False, ylog=False)
    score.axes(list(range(0, last + 1, 5))[1:] or [1], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "epoch",
               f"Dice on the {history[-1]['heldout']} split", xfmt=str, yfmt=lambda t: f"{t:.1f}")
    score.series(epochs, [h["dice"]["lungs"] for h in history], GREEN, dots=True)
    score.series(epochs, [h["dice"]["heart"] for h in history], RED, dots=True)
    score.legend(780, 240, [("lungs", GREEN), ("heart", RED)])
    c.text(710, 28, "Dice", 14, bold=True)
    c.save("training_curves")


@figure
def training_overlays():
    """Test radiographs of the tour run: ground truth and prediction laid over the image."""
    from tinyseg.data import load_dataset
    from tinyseg.app import Segmenter, dice
    from tinyseg.data import overlay_labels as overlay

    out = _tour_run()
    from tinyseg.app import TrainConfig, resolve_defaults
    config = resolve_defaults(TrainConfig(out=out, **TOUR_RUN))
    dataset = load_dataset(None, size=config.size, seed=config.seed, n_synthetic=config.n_synthetic,
                           val_fraction=config.val_fraction)
    segmenter = Segmenter.from_checkpoint(os.path.join(out, "last.npz"))
    picks = dataset.test[:4]
    h, w = dataset.size
    c = Canvas(3 * (w + 16) + 150, len(picks) * (h + 16) + 50)
    c.text(10, 22, "test Dice", 13, bold=True, anchor="lm")
    for col, title in enumerate(["image", "ground truth", "prediction"]):
        c.text(140 + col * (w + 16) + w / 2, 22, title, 13, bold=True)
    for row, index in enumerate(picks):
        raw = dataset.images[index] + dataset.mean_image
        truth = dataset.labels[index]
        predicted = segmenter.segment(raw)
        score = dice(predicted, truth, 3)
        y = 40 + row * (h + 16)
        c.text(10, y + h / 2 - 10, f"lungs {score[1]:.3f}", 12, GREEN, anchor="lm")
        c.text(10, y + h / 2 + 10, f"heart {score[2]:.3f}", 12, RED, anchor="lm")
        panels = [_gray(raw, raw.min(), raw.max()),
                  Image.fromarray(overlay(raw, truth)), Image.fromarray(overlay(raw, predicted))]
        for col, picture in enumerate(panels):
            _paste(c, picture, 140 + col * (w + 16), y)
    c.save("training_overlays")


def main(names):
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise SystemExit(f"unknown figure(s) {unknown}; known: {sorted(FIGURES)}")
    for name in names or FIGURES:
        FIGURES[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
