"""Attenuation map and label masks of one synthetic chest.

Each structure is a closed-form function of the pixel coordinates, evaluated
on the whole grid at once.  Region boundaries are written as *margins*:
approximate signed distances in film units, positive inside.  The label masks
are ``margin > 0`` and the drawn structures fade in over about one pixel
around the same zero level, so the ground truth follows the visible edges.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .anatomy import N_RIBS, Anatomy

LUNG_AIR = 0.75
CLAVICLE_DENSITY = 0.3
SPINE_DENSITY = 0.25
VESSEL_DENSITY = 0.12


def draw_phantom(a: Anatomy, height: int, width: int):
    """Return ``(attenuation, lung_mask, heart_mask)`` at ``height x width``."""
    x, y = _anatomical_grid(a, height, width)
    edge = 1.0 / min(height, width)
    side = (x >= 0.5).astype(np.intp)            # 0 image left, 1 image right
    right = side.astype(np.float32)
    s = np.abs(x - 0.5)

    diaphragm = _diaphragm(a, x, s)
    lung_margin, lung_depth = _lungs(a, s, y, right, diaphragm)
    heart_margin, heart_depth = _heart(a, x, y, diaphragm)
    lung_soft = _soft(lung_margin, edge)
    heart_soft = _soft(heart_margin, edge)

    attenuation = _soft_tissue(a, y, s, right, edge)
    lateral_s = _per_side(a.lateral_s, right)
    abdomen = _soft(y - diaphragm, 3 * edge) * _smoothstep((lateral_s + 0.03 - s) / 0.06)
    attenuation += a.abdomen_density * abdomen
    attenuation -= LUNG_AIR * lung_soft * lung_depth
    attenuation += a.heart_density * heart_soft * heart_depth
    attenuation += _mediastinum(a, s, y, right)
    attenuation += SPINE_DENSITY * _spine(a, x, y)
    attenuation += a.rib_density * _ribs(a, s, y, side, lateral_s)
    attenuation += CLAVICLE_DENSITY * _clavicles(a, s, y, right, lateral_s)
    vessels = _vessels(a, height, width)
    attenuation += VESSEL_DENSITY * vessels * lung_soft * (1 - 0.5 * heart_soft)
    attenuation -= _stomach_bubble(a, x, y, diaphragm, edge)

    heart = heart_margin > 0
    lungs = (lung_margin > 0) & ~heart
    return attenuation, lungs, heart


def _anatomical_grid(a: Anatomy, height: int, width: int):
    """Film coordinates of the pixel centres, seen from the posed patient."""
    py = ((np.arange(height, dtype=np.float32) + 0.5) / height - 0.5)[:, None]
    px = ((np.arange(width, dtype=np.float32) + 0.5) / width - 0.5)[None, :]
    cos, sin = math.cos(a.rotation), math.sin(a.rotation)
    px, py = (px - a.shift[0]) / a.scale, (py - a.shift[1]) / a.scale
    return cos * px + sin * py + 0.5, -sin * px + cos * py + 0.5


def _to_pixels(a: Anatomy, x, y, height: int, width: int):
    """Inverse of :func:`_anatomical_grid`: film coordinates to (row, col)."""
    cos, sin = math.cos(a.rotation), math.sin(a.rotation)
    dx, dy = x - 0.5, y - 0.5
    px = (cos * dx - sin * dy) * a.scale + a.shift[0] + 0.5
    py = (sin * dx + cos * dy) * a.scale + a.shift[1] + 0.5
    return py * height - 0.5, px * width - 0.5


def _per_side(pair, right):
    """Per-pixel value of a ``[image left, image right]`` parameter pair."""
    pair = np.asarray(pair, dtype=np.float32)
    return pair[0] + (pair[1] - pair[0]) * right


def _smoothstep(z):
    z = np.clip(z, 0.0, 1.0)
    return z * z * (3.0 - 2.0 * z)


def _soft(margin, width):
    """0 outside, 1 inside, a smooth ramp of ``width`` centred on the boundary."""
    return _smoothstep(0.5 + margin / width)


def _dome(a: Anatomy, s, k):
    """Height of the diaphragm under lung ``k``: highest at ``dome_peak_s``,
    flatter and level at the midline, and laterally plunging as ``q^p``
    (``p = sulcus_sharpness``) into the costophrenic angle: its slope there,
    ``p * dome_height / (lateral_s - dome_peak_s)``, makes the angle acute."""
    peak, lateral = a.dome_peak_s[k], a.lateral_s[k]
    medial = a.dome_medial_drop[k] * (1 - (s / peak) ** 2)
    lateral_q = np.minimum(np.maximum(s - peak, 0.0) / (lateral - peak), 1.2)
    drop = np.where(s > peak, lateral_q ** a.sulcus_sharpness[k], medial * medial)
    return a.base_y[k] - a.dome_height[k] * (1.0 - drop)


def _diaphragm(a: Anatomy, x, s):
    """One diaphragm line across the chest, the two domes blended at the midline."""
    blend = _smoothstep((x - 0.5) / 0.16 + 0.5)
    return (1 - blend) * _dome(a, s, 0) + blend * _dome(a, s, 1)


def _lungs(a: Anatomy, s, y, right, diaphragm):
    """Margin of both lung fields and the relative air depth inside them."""
    table = np.stack([a.apex_y, a.base_y, a.apex_s, a.lateral_s, a.medial_s, a.lateral_roundness,
                      *a.wobble.T, a.hilum[:, 1], np.array([0.0, a.aortic_knob], np.float32)])
    (apex_y, base_y, apex_s, lateral_s, medial_s, roundness,
     amplitude, frequency, phase, hilum_y, knob) = _per_side(table.T[:, :, None, None], right)
    t = np.clip((y - apex_y) / (base_y - apex_y), 0.0, 1.0)

    wobble = amplitude * np.sin(2 * np.pi * frequency * t + phase) * 4 * t * (1 - t)
    below = (1 - t) ** 2
    rounding = roundness * np.sqrt(1 - below * below) + (1 - roundness) * np.sqrt(1 - below)
    lateral = apex_s + (lateral_s - apex_s) * rounding + wobble

    medial_s = medial_s + knob * _bump((y - 0.3) / 0.05) + 0.012 * _bump((y - hilum_y) / 0.06)
    tm = np.clip(t / 0.3, 0.0, 1.0)
    medial = apex_s - (apex_s - medial_s) * np.sqrt(1 - (1 - tm) ** 2)

    margin = np.minimum(np.minimum(lateral - s, s - medial), np.minimum(diaphragm - y, y - apex_y))
    across = np.clip((s - medial) / np.maximum(lateral - medial, 1e-3), 0.0, 1.0)
    depth = np.sqrt(np.sqrt(4 * across * (1 - across))) * (0.7 + 0.3 * t)
    depth *= 0.6 + 0.4 * _smoothstep((diaphragm - y) / 0.06)
    return margin, depth


def _bump(z):
    """A smooth compact bump: 1 at z = 0, 0 for |z| >= 1."""
    return _smoothstep(1 - np.abs(z))


def _heart(a: Anatomy, x, y, diaphragm):
    """Margin and thickness of the heart: a tilted egg resting on the diaphragm."""
    cx = 0.5 + a.heart_center_s
    floor = 0.5 * (_dome(a, a.heart_center_s, 1) + _dome(a, 0.0, 1))
    cy = floor - a.heart_half_height * (1 - a.heart_drop)
    dx, dy = x - cx, y - cy
    cos, sin = math.cos(a.heart_tilt), math.sin(a.heart_tilt)
    along, across = cos * dx + sin * dy, -sin * dx + cos * dy
    apex_side = (along > 0).astype(np.float32)
    half_along = a.heart_half_width * (1 - 0.5 * a.heart_egg + 1.5 * a.heart_egg * apex_side)
    r2 = (along / half_along) ** 2 + (across / a.heart_half_height) ** 2
    r = np.sqrt(r2)
    margin = np.minimum((1 - r) * a.heart_half_height, diaphragm - y)
    depth = 0.6 + 0.4 * np.sqrt(np.clip(1 - r2, 0.0, 1.0))
    return margin, depth


def _soft_tissue(a: Anatomy, y, s, right, edge):
    """Torso under a neck and rounded shoulders, with scapulae and breasts."""
    shoulders = np.sqrt(_smoothstep((y - a.shoulder_y) / 0.3))
    half_width = a.neck_half_width + (a.body_half_width - a.neck_half_width) * shoulders
    z = s / half_width
    thickness = np.sqrt(np.clip(1 - z * z, 0.0, 1.0))
    tissue = thickness * _soft((1 - z) * half_width, 2 * edge)

    scapula_edge = _per_side(a.scapula_s, right) + 0.15 * (y - 0.1)
    scapula = _soft(s - scapula_edge, 2 * edge) * _bump((y - 0.27) / 0.2)
    tissue += 0.07 * scapula
    if a.breasts:
        centre_y = a.breast_y - 0.1
        r2 = ((s - 0.28) / 0.2) ** 2 + ((y - centre_y) / 0.1) ** 2
        upper_fade = _smoothstep((y - centre_y + 0.1) / 0.12)
        tissue += a.breasts * np.sqrt(np.clip(1 - r2, 0.0, 1.0)) * upper_fade
    return tissue


def _mediastinum(a: Anatomy, s, y, right):
    """Great vessels and aortic knob above the heart, minus the air of the trachea."""
    vessels = 0.15 * _bump(s / 0.08) * _smoothstep((0.62 - y) / 0.2)
    knob = 0.12 * right * _bump(np.hypot((s - 0.06) / 0.04, (y - 0.3) / 0.05))
    trachea = 0.22 * _bump(s / 0.022) * _smoothstep((a.carina_y - y) / 0.04)
    return vessels + knob - trachea


def _spine(a: Anatomy, x, y):
    """Vertebral column: bright bodies with darker discs and brighter pedicles."""
    z = (x - 0.5) / a.spine_half_width
    body = np.sqrt(np.clip(1 - z * z, 0.0, 1.0))
    pedicles = _bump((np.abs(z) - 0.8) / 0.25)
    wave = np.cos(np.pi * (y / a.vertebra_period - a.vertebra_phase)) ** 2
    discs = 1 - 0.35 * wave ** 4
    return (body + 0.4 * pedicles) * discs


def _ribs(a: Anatomy, s, y, side, lateral_s):
    """Posterior rib arcs from the spine and fainter anterior ribs sloping medially.

    Rib ``k`` of a side is the curve ``y = level[k] + shape(s)``; subtracting
    the shape leaves a ladder of evenly spaced horizontal bands, so each pixel
    finds its nearest rib by rounding instead of looping over the ribs.
    """
    peak = a.rib_peak_s
    curvature = np.where(s < peak, a.rib_curvature[0], a.rib_curvature[1])
    cage = lateral_s + 0.025
    right = side.astype(np.float32)
    posterior = _nearest_band(a, y - curvature * (s - peak) ** 2, side, right)
    posterior *= _smoothstep((s - 0.03) / 0.03) * _smoothstep((cage - s) / 0.02)

    lateral_drop = a.rib_curvature[1] * (cage - peak) ** 2
    anterior = _nearest_band(a, y - lateral_drop - a.rib_slope * (cage - s), side, right, 0.8)
    anterior *= 0.7 * _smoothstep((s - 0.12) / 0.06) * _smoothstep((cage - s) / 0.02)
    return posterior + anterior


def _nearest_band(a: Anatomy, level, side, right, thinning=1.0):
    """Profile of the rib of each pixel's side whose level is nearest ``level``."""
    spacing = (a.rib_last_y - a.rib_first_y) / (N_RIBS - 1)
    ladder = (level - a.rib_side_shift[1] * right - a.rib_first_y) / spacing
    index = np.clip(np.rint(ladder), 0, N_RIBS - 1).astype(np.intp)
    offset = level - a.rib_levels.ravel()[side * N_RIBS + index]
    thickness = a.rib_thickness * thinning * (0.85 + 0.3 / (N_RIBS - 1) * index.astype(np.float32))
    return _band(offset / thickness)


def _band(z):
    """Cross-section of a tube of bone: a dense cortex around a lighter core."""
    inside = np.clip(1 - z * z, 0.0, 1.0)
    return np.sqrt(inside) * (0.6 + 0.4 * z * z)


def _clavicles(a: Anatomy, s, y, right, lateral_s):
    """Clavicles: bands rising from the sternum out towards the shoulders."""
    start, end = 0.02, lateral_s + 0.02
    q = (s - start) / (end - start)
    centre = _per_side(a.clavicle_medial_y, right) - _per_side(a.clavicle_rise, right) * q
    centre = centre + _per_side(a.clavicle_bend, right) * np.sin(np.pi * np.clip(q, 0, 1))
    band = _band((y - centre) / 0.016)
    return band * _smoothstep(q / 0.08) * _smoothstep((1 - q) / 0.1)


def _vessels(a: Anatomy, height: int, width: int):
    """Lung markings fanning out of each hilum, splatted as points and blurred."""
    side, start, angle, length, bend, strength = (a.vessels[:, i, None] for i in range(6))
    sigma = max(0.6, 0.004 * min(height, width))
    n_samples = max(24, int(np.ceil(0.35 * max(height, width) / sigma)))
    r = np.linspace(0.0, 1.0, n_samples, dtype=np.float32)[None, :]
    along = start + r * length
    across = bend * (r * length) ** 2
    cos, sin = np.cos(angle), np.sin(angle)
    k = side[:, 0].astype(np.intp)
    s = a.hilum[k, 0, None] + cos * along - sin * across
    y = a.hilum[k, 1, None] + sin * along + cos * across
    x = 0.5 + np.where(side > 0, s, -s)
    # Each point stands for the stretch of vessel up to the next one, so the
    # blurred line peaks near ``weight`` whatever the sampling density.
    step_pixels = length * max(height, width) / (n_samples - 1)
    weight = strength * (1 - r) ** 1.5 * step_pixels * np.sqrt(2 * np.pi) * sigma
    rows, cols = _to_pixels(a, x.ravel(), y.ravel(), height, width)
    image = _splat(rows, cols, np.broadcast_to(weight, x.shape).ravel(), height, width)
    return ndimage.gaussian_filter(image.astype(np.float32), sigma)


def _splat(rows, cols, weights, height: int, width: int):
    """Add weighted points into an image with bilinear weights."""
    r0, c0 = np.floor(rows).astype(np.intp), np.floor(cols).astype(np.intp)
    fr, fc = rows - r0, cols - c0
    image = np.zeros(height * width)
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                      (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        ok = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        image += np.bincount(rr[ok] * width + cc[ok], weights[ok] * w[ok], height * width)
    return image.reshape(height, width)


def _stomach_bubble(a: Anatomy, x, y, diaphragm, edge):
    """Air under the image-right dome, with a flat air-fluid level; 0 if absent."""
    if a.bubble is None:
        return 0.0
    offset_s, depth, half_width, half_height = a.bubble
    cx = 0.5 + offset_s
    cy = _dome(a, offset_s, 1) + depth
    r = np.sqrt(((x - cx) / half_width) ** 2 + ((y - cy) / half_height) ** 2)
    margin = np.minimum((1 - r) * half_height, cy + 0.3 * half_height - y)
    margin = np.minimum(margin, y - diaphragm - 0.01)
    return 0.3 * _soft(margin, 2 * edge)
