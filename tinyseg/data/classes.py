"""The classes of the segmentation, defined once: index, name and overlay colour."""
BACKGROUND, LUNGS, HEART = 0, 1, 2
CLASS_NAMES = ("background", "lungs", "heart")
# RGB of each foreground class in overlays and charts, as in the paper's Fig. 3: lungs green,
# heart red; background stays uncoloured.
CLASS_COLORS = {LUNGS: (0, 200, 0), HEART: (230, 0, 0)}
