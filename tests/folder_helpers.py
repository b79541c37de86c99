"""A researcher's own image folder, made up: classes of coloured stripes, images of mixed sizes."""

import os

import numpy as np
from PIL import Image

SIZES = [(20, 20), (24, 24), (20, 20), (30, 18), (20, 20), (16, 16)]  # mixed; 20 the most common


def class_image(c: int, i: int, size) -> Image.Image:
    """Class c: its own colour and stripe direction; image i: its own noise and size."""
    rng = np.random.default_rng([c, i])
    w, h = size
    base = np.array([(c * 67) % 256, (c * 131 + 50) % 256, (c * 29 + 100) % 256], np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = np.sin((xx if c % 2 else yy) * (1 + c % 3)) * 60
    pixels = base + stripes[..., None] + rng.normal(0, 10, (h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def write_tree(root, classes=12, per_class=6, split=None):
    """ROOT/<class>/<i>.png (or ROOT/<split>/<class>/ for the classes `split` names)."""
    for c in range(classes):
        where = os.path.join(root, split[c], f"class{c:02d}") if split else os.path.join(root, f"class{c:02d}")
        os.makedirs(where, exist_ok=True)
        for i in range(per_class):
            class_image(c, i, SIZES[i % len(SIZES)]).save(os.path.join(where, f"{i}.png"))
    return str(root)
