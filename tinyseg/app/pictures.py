"""PNG output drawn with Pillow alone: segmentation panels and training curves.

``comparison_panel`` puts image | ground truth | prediction side by
side; ``plot_curves`` draws line charts with axes, ticks and a legend.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.montage import gray_rgb, overlay_labels

SERIES_COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189)]


def label_image(labels):
    """(H, W) labels -> an 8-bit PNG-ready image whose pixel values are the class indices."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"labels must lie in [0, 255] to be stored as 8-bit, got [{labels.min()}, {labels.max()}]")
    return Image.fromarray(labels.astype(np.uint8), mode="L")


def comparison_panel(image, truth, prediction, titles=("image", "ground truth", "prediction")):
    """image | ground truth | prediction as one RGB PIL image with a caption row."""
    panels = [gray_rgb(image), overlay_labels(image, truth), overlay_labels(image, prediction)]
    height, width = panels[0].shape[:2]
    gap, caption = 4, 14
    canvas = Image.new("RGB", (3 * width + 2 * gap, height + caption), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, (panel, title) in enumerate(zip(panels, titles)):
        x = i * (width + gap)
        canvas.paste(Image.fromarray(panel), (x, caption))
        draw.text((x + 2, 1), title, fill=(0, 0, 0), font=font)
    return canvas


def nice_ticks(lo, hi, count=5):
    """About ``count`` round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start, stop = math.floor(lo / step), math.ceil(hi / step)
    return [round(k * step, 12) for k in range(start, stop + 1)]


def _format(value):
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.0e}"


def line_chart(draw, box, series, title, x_label="epoch", font=None):
    """Draw a line chart in ``box`` = (left, top, right, bottom).

    ``series`` maps a legend name to (xs, ys) or (xs, ys, rgb); non-finite points are skipped.
    """
    font = font or ImageFont.load_default()
    left, top, right, bottom = box
    plot = (left + 52, top + 22, right - 10, bottom - 34)        # room for tick labels and title
    colors = [entry[2] if len(entry) > 2 else SERIES_COLORS[k % len(SERIES_COLORS)]
              for k, entry in enumerate(series.values())]
    series = {name: entry[:2] for name, entry in series.items()}
    xs_all = [x for xs, _ in series.values() for x in xs]
    ys_all = [y for _, ys in series.values() for y in ys if math.isfinite(y)]
    x_ticks = nice_ticks(min(xs_all, default=0), max(xs_all, default=1), 6)
    y_ticks = nice_ticks(min(ys_all, default=0), max(ys_all, default=1), 5)
    (x0, x1), (y0, y1) = (x_ticks[0], x_ticks[-1]), (y_ticks[0], y_ticks[-1])

    def to_pixel(x, y):
        px = plot[0] + (x - x0) / ((x1 - x0) or 1) * (plot[2] - plot[0])
        py = plot[3] - (y - y0) / ((y1 - y0) or 1) * (plot[3] - plot[1])
        return px, py

    draw.text((left + 52, top + 4), title, fill=(0, 0, 0), font=font)
    for y in y_ticks:
        _, py = to_pixel(x0, y)
        draw.line([(plot[0], py), (plot[2], py)], fill=(225, 225, 225))
        draw.line([(plot[0] - 4, py), (plot[0], py)], fill=(0, 0, 0))
        draw.text((left + 4, py - 6), _format(y), fill=(0, 0, 0), font=font)
    for x in x_ticks:
        px, _ = to_pixel(x, y0)
        draw.line([(px, plot[3]), (px, plot[3] + 4)], fill=(0, 0, 0))
        draw.text((px - 6, plot[3] + 6), _format(x), fill=(0, 0, 0), font=font)
    draw.rectangle(plot, outline=(0, 0, 0))
    draw.text(((plot[0] + plot[2]) / 2 - 14, plot[3] + 20), x_label, fill=(0, 0, 0), font=font)

    for color, (xs, ys) in zip(colors, series.values()):
        points = [to_pixel(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for px, py in points if len(points) < 40 else []:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=color)
    # Legend in a framed white box at the right edge, vertically centred.
    legend_x, legend_y = plot[2] - 116, (plot[1] + plot[3]) / 2 - 7 * len(series)
    draw.rectangle([legend_x - 4, legend_y - 3, plot[2] - 6, legend_y + 14 * len(series) + 1],
                   fill=(255, 255, 255), outline=(160, 160, 160))
    for k, (color, name) in enumerate(zip(colors, series)):
        y = legend_y + 14 * k
        draw.line([(legend_x, y + 6), (legend_x + 18, y + 6)], fill=color, width=2)
        draw.text((legend_x + 22, y), name, fill=(0, 0, 0), font=font)


def plot_curves(path, charts, width=520, height=300):
    """Write one PNG with the charts stacked vertically.

    ``charts`` is a list of (title, {legend name: (xs, ys)}).
    """
    canvas = Image.new("RGB", (width, height * len(charts)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (title, series) in enumerate(charts):
        line_chart(draw, (0, i * height, width, (i + 1) * height), series, title)
    canvas.save(path)
    return path
