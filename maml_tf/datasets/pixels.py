"""Any decoded image -> 8-bit pixels on white paper, and the square uint8 array a folder dataset trains on; shared by the dataset readers and by `classify`, so a user's images are prepared as the training images were."""

import numpy as np
from PIL import Image, ImageOps

# Alpha in the mode itself; a palette or grey image may instead name a transparent colour.
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit grey (I;16*, and I: Pillow's 32-bit integers, read as 16-bit levels) scaled to
    8-bit L: Pillow's own convert clips at 255, which turns grey ink (say 16384 of 65535) into
    paper. Floating-point grey in [0, 1] scaled by 255 (convert truncated it to black);
    ValueError for values outside those ranges, whose white level is unknown."""
    if not (image.mode.startswith("I;16") or image.mode in ("I", "F")):
        return image
    levels = np.asarray(image, dtype=np.float64)
    top = 1.0 if image.mode == "F" else 65535.0
    if not (np.isfinite(levels).all() and 0 <= levels.min() <= levels.max() <= top):
        kind = "floating-point" if image.mode == "F" else "integer"
        raise ValueError(f"{kind} pixels from {levels.min():g} to {levels.max():g}: save it with "
                         "8- or 16-bit pixels (or floats in [0, 1]), whose white level is known")
    levels = levels * 255.0 if image.mode == "F" else levels / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.round(levels), 0, 255).astype(np.uint8), "L")


def on_paper(image: Image.Image) -> Image.Image:
    """Transparent pixels composited on white paper: convert("L"/"RGB") drops the alpha and keeps
    their colour, often black, so a transparent background would become all ink."""
    if image.mode not in ALPHA_MODES and "transparency" not in image.info:
        return image
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")


def normalised(image: Image.Image) -> Image.Image:
    """Upright (as its EXIF orientation says: a camera stores a portrait photo lying on its
    side), 8-bit, on paper: what every reader of images starts from."""
    return on_paper(eight_bit(ImageOps.exif_transpose(image)))


def square(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """uint8 [size, size, channels]: `normalised`, then L or RGB, then a Lanczos resize."""
    image = normalised(image).convert("L" if channels == 1 else "RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.LANCZOS)
    return np.asarray(image).reshape(size, size, channels)
