"""Random anatomy for the synthetic chest radiographs.

All lengths are in normalised film units (the film is 1 x 1, y points down)
and ``s`` is the distance from the body midline.  Paired values are indexed
``[image left, image right]``, i.e. ``[patient's right, patient's left]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_RIBS = 10
N_VESSELS_PER_SIDE = 18


@dataclass
class Anatomy:
    """Every random choice behind one phantom; see :func:`sample_anatomy`."""

    # pose of the patient on the film
    rotation: float
    shift: np.ndarray          # (dx, dy)
    scale: float
    # torso and soft tissue
    body_half_width: float
    neck_half_width: float
    shoulder_y: float
    breasts: float             # density of the breast shadows, 0 for none
    breast_y: float
    # lungs, one value per side
    apex_y: np.ndarray
    base_y: np.ndarray         # level of the costophrenic angle
    apex_s: np.ndarray
    lateral_s: np.ndarray
    medial_s: np.ndarray
    lateral_roundness: np.ndarray  # 0 pointed apex, 1 round, boxy lung
    dome_height: np.ndarray
    dome_peak_s: np.ndarray
    dome_medial_drop: np.ndarray
    sulcus_sharpness: np.ndarray  # > 2: the dome plunges into an acute costophrenic angle
    wobble: np.ndarray         # (2, 3): amplitude, frequency, phase of the lateral border
    aortic_knob: float         # bulge of the mediastinum into the image-right lung
    # heart
    heart_center_s: float      # towards image right
    heart_half_width: float
    heart_half_height: float
    heart_tilt: float
    heart_egg: float
    heart_drop: float          # how far the heart ellipse reaches below the diaphragm
    heart_density: float
    abdomen_density: float     # liver / stomach under the domes; near heart_density the
                               # heart's lower edge almost vanishes, as on real films
    # bones and airways
    rib_density: float
    rib_first_y: float
    rib_last_y: float
    rib_side_shift: np.ndarray  # (2,) shift of the whole ladder per side
    rib_levels: np.ndarray     # (2, N_RIBS) rib heights at their peak, per side
    rib_peak_s: float
    rib_curvature: np.ndarray  # (medial, lateral) curvature of the posterior arcs
    rib_thickness: float
    rib_slope: float           # downward slope of the anterior ribs
    clavicle_medial_y: np.ndarray
    clavicle_rise: np.ndarray
    clavicle_bend: np.ndarray
    scapula_s: np.ndarray
    spine_half_width: float
    vertebra_period: float
    vertebra_phase: float
    carina_y: float
    # lung vessels: per branch side, start, angle, length, bend, strength
    vessels: np.ndarray
    hilum: np.ndarray          # (2, 2): (s, y) per side
    # stomach gas bubble under the image-right dome: (s, depth, half width, half height)
    bubble: np.ndarray | None
    # film and exposure
    exposure: float
    gamma: float
    contrast: float
    film_floor: float
    heel: float
    grain_sigma: float
    grain_amount: float
    mottle_amount: float

    def __post_init__(self):
        # float32 arrays keep every pixel computation in float32, which is
        # several times faster for sqrt/sin/exp than float64.
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                setattr(self, name, value.astype(np.float32))
            elif isinstance(value, np.floating):
                setattr(self, name, float(value))


# The film, each setting drawn uniformly from its range, last and in this order (the order
# fixes the random stream): exposure, gamma, contrast, base density, heel effect, grain, mottle.
# Wide on purpose: films from different scanners differ this much and more.
FILM_RANGES = {"exposure": (1.0, 2.6), "gamma": (0.7, 2.0), "contrast": (0.6, 0.95),
               "film_floor": (0.03, 0.1), "heel": (-0.08, 0.08), "grain_sigma": (0.6, 1.1),
               "grain_amount": (0.01, 0.025), "mottle_amount": (0.01, 0.04)}


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one plausible patient, pose and exposure."""
    u = rng.uniform

    def pair(low, high):
        return u(low, high, size=2)

    base_y = u(0.74, 0.82) + np.array([-1.0, 0.0]) * u(0.0, 0.04)   # right dome higher
    lateral_s = pair(0.35, 0.42)
    rib_first_y, rib_last_y = u(0.05, 0.09), u(0.66, 0.74)
    ladder = np.linspace(rib_first_y, rib_last_y, N_RIBS)
    rib_side_shift = np.array([0.0, u(-0.02, 0.02)])
    rib_levels = ladder + rib_side_shift[:, None] + rng.normal(0.0, 0.004, (2, N_RIBS))
    n_vessels = 2 * N_VESSELS_PER_SIDE
    vessels = np.stack([
        np.repeat([0.0, 1.0], N_VESSELS_PER_SIDE),        # side
        u(0.0, 0.12, n_vessels),                          # start distance from the hilum
        u(-1.3, 1.1, n_vessels),                          # angle (0 = lateral, < 0 = up)
        u(0.1, 0.32, n_vessels),                          # length
        u(-3.0, 3.0, n_vessels),                          # bend
        u(0.5, 1.0, n_vessels),                           # strength
    ], axis=1)
    heart_density = u(0.3, 0.45)
    bubble = None
    if rng.random() < 0.6:
        bubble = np.array([u(0.12, 0.24), u(0.04, 0.08), u(0.035, 0.06), u(0.025, 0.04)])
    return Anatomy(
        rotation=np.deg2rad(rng.normal(0.0, 2.0)),
        shift=rng.normal(0.0, 0.015, size=2),
        scale=u(0.93, 1.05),
        body_half_width=u(0.45, 0.53),
        neck_half_width=u(0.1, 0.14),
        shoulder_y=u(-0.12, -0.02),
        breasts=u(0.08, 0.2) if rng.random() < 0.5 else 0.0,
        breast_y=u(0.6, 0.7),
        apex_y=pair(0.07, 0.12),
        base_y=base_y,
        apex_s=pair(0.14, 0.19),
        lateral_s=lateral_s,
        medial_s=pair(0.045, 0.065),
        lateral_roundness=pair(0.0, 1.0),
        dome_height=pair(0.05, 0.1),
        dome_peak_s=lateral_s * u(0.4, 0.55, size=2),
        dome_medial_drop=pair(0.3, 0.7),
        sulcus_sharpness=pair(4.0, 7.0),
        wobble=np.stack([pair(0.0, 0.01), pair(1.0, 2.5), pair(0.0, 2 * np.pi)], axis=1),
        aortic_knob=u(0.0, 0.03),
        heart_center_s=u(0.04, 0.08),
        heart_half_width=u(0.16, 0.2),
        heart_half_height=u(0.13, 0.17),
        heart_tilt=np.deg2rad(u(20.0, 40.0)),
        heart_egg=u(0.1, 0.3),
        heart_drop=u(0.05, 0.2),
        heart_density=heart_density,
        abdomen_density=heart_density * u(0.5, 0.9),   # about the heart's edge, seen through it
        rib_density=u(0.08, 0.22),
        rib_first_y=rib_first_y,
        rib_last_y=rib_last_y,
        rib_side_shift=rib_side_shift,
        rib_levels=rib_levels,
        rib_peak_s=u(0.2, 0.27),
        rib_curvature=np.array([u(1.0, 2.0), u(2.5, 4.0)]),
        rib_thickness=u(0.017, 0.023),
        rib_slope=u(0.45, 0.75),
        clavicle_medial_y=pair(0.13, 0.18),
        clavicle_rise=pair(0.03, 0.07),
        clavicle_bend=pair(-0.015, 0.015),
        scapula_s=pair(0.27, 0.33),
        spine_half_width=u(0.035, 0.045),
        vertebra_period=u(0.045, 0.055),
        vertebra_phase=u(0.0, 1.0),
        carina_y=u(0.28, 0.34),
        vessels=vessels,
        hilum=np.stack([pair(0.09, 0.12), pair(0.38, 0.46)], axis=1),
        bubble=bubble,
        **{name: u(low, high) for name, (low, high) in FILM_RANGES.items()},
    )
