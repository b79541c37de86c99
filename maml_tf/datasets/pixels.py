"""Any decoded image -> 8-bit pixels on white paper, and the square uint8 array a folder dataset trains on; shared by the dataset readers and by `classify`, so a user's images are prepared as the training images were."""

import numpy as np
from PIL import Image

# Alpha in the mode itself; a palette or grey image may instead name a transparent colour.
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit grey (I;16*, and I as Pillow opens some 16-bit PNGs) scaled to 8-bit L: Pillow's
    own convert clips at 255, which turns grey ink (say 16384 of 65535) into paper."""
    if not (image.mode.startswith("I;16") or image.mode == "I"):
        return image
    levels = np.asarray(image, dtype=np.float64) / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.round(levels), 0, 255).astype(np.uint8), "L")


def on_paper(image: Image.Image) -> Image.Image:
    """Transparent pixels composited on white paper: convert("L"/"RGB") drops the alpha and keeps
    their colour, often black, so a transparent background would become all ink."""
    if image.mode not in ALPHA_MODES and "transparency" not in image.info:
        return image
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")


def square(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """uint8 [size, size, channels]: 8-bit on paper, then L or RGB, then a Lanczos resize."""
    image = on_paper(eight_bit(image)).convert("L" if channels == 1 else "RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.LANCZOS)
    return np.asarray(image).reshape(size, size, channels)
