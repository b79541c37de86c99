"""Image files -> the model's input, prepared exactly as its training data; support/query folders -> arrays.

Omniglot (28x28x1): grey levels thresholded to the official PNGs' 1-bit paper/ink, then the
dataset's own `omniglot_data.resize` (the run's --omniglot_resize) and /255, so ink = 1.
MiniImageNet (84x84x3): RGB, resized to 84x84 with Lanczos as data/prepare_miniimagenet.py, /255.
A folder dataset's model (its input shape [S, S, C]): grey or RGB, Lanczos to S x S, /255, as
its training images (`datasets.pixels.square`).
Every mode first becomes 8-bit on white paper: transparent pixels are paper, 16-bit grey levels
are scaled (not clipped) to 8 bits.
"""

import os
import sys
from typing import List, Tuple

import numpy as np
from PIL import Image

from maml_tf.datasets import miniimagenet_io, omniglot_data, own_images
from maml_tf.datasets.folder_io import is_image
from maml_tf.datasets.pixels import normalised, square
from maml_tf.errors import UserError

IMAGE_DATASETS = ("omniglot", "miniimagenet", "folder", "tfds:NAME")


def takes_images(dataset: str) -> bool:
    return dataset in IMAGE_DATASETS or own_images(dataset)


def prepare(image: Image.Image, dataset: str, omniglot_resize: str = "original",
            shape=None) -> np.ndarray:
    """One decoded image -> float32 [28, 28, 1] (Omniglot), [84, 84, 3] (MiniImageNet) or
    `shape` (a folder's or TFDS dataset's model input, [S, S, C])."""
    if own_images(dataset):
        if shape is None:
            raise UserError(f"a {dataset} model's images are prepared at its input shape: pass "
                            "shape=meta.input_shape")
        if len(shape) != 3 or shape[0] != shape[1]:
            raise UserError(f"a folder model takes square images; its input shape is {shape}")
        return np.divide(square(image, int(shape[0]), int(shape[2])), 255.0, dtype=np.float32)
    if takes_images(dataset):
        image = normalised(image)
    if dataset == "omniglot":
        paper = np.asarray(image.convert("L")) >= 128  # True = light paper, as the official PNGs
        return (omniglot_data.resize(paper, omniglot_resize)[..., None] / np.float32(255)).astype(np.float32)
    if dataset == "miniimagenet":
        size = miniimagenet_io.IMAGE_SHAPE[:2]
        rgb = image.convert("RGB")
        if rgb.size != size:
            rgb = rgb.resize(size, resample=Image.LANCZOS)
        return np.divide(np.asarray(rgb), 255.0, dtype=np.float32)
    raise UserError(f"a {dataset} model does not take images (only {', '.join(IMAGE_DATASETS)} models do)")


def read(path: str, dataset: str, omniglot_resize: str = "original", shape=None) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            return prepare(image, dataset, omniglot_resize, shape)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def _files(directory: str, skipped: List[str], prefix: str = "") -> List[str]:
    """The image files of `directory`, sorted; hidden and non-image files' names (after
    `prefix`) are added to `skipped` instead (a stray notes.txt or .DS_Store is no reason to stop)."""
    files = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            continue
        if os.path.isfile(path) and is_image(path):  # as training reads a folder (a broken link: no)
            files.append(path)
        else:
            skipped.append(prefix + name)
    return files


def _say_skipped(directory: str, skipped: List[str], shown: int = 5):
    """One line on stderr naming the files of `directory` left out."""
    if not skipped:
        return
    names = ", ".join(skipped[:shown]) + (f" ... ({len(skipped)} in all)" if len(skipped) > shown else "")
    what = "file that is not an image" if len(skipped) == 1 else "files that are not images"
    print(f"skipped {len(skipped)} {what} in {directory}: {names}", file=sys.stderr, flush=True)


def _check_dir(directory: str, what: str):
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UserError(f"{what} folder {directory} is a file, not a folder: give the folder that holds "
                        + ("one sub-folder of images per class" if what == "support" else "the images"))
    if not os.path.isdir(directory):
        raise UserError(f"{what} folder {directory} does not exist")


def support_folder(directory: str, num_classes: int, dataset: str, omniglot_resize: str = "original",
                   shape=None) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """(images, class ids, class names): one sub-folder per class, named after it, ids in name
    order (`shape`: a folder model's input shape)."""
    _check_dir(directory, "support")
    classes = sorted(n for n in os.listdir(directory)
                     if not n.startswith(".") and os.path.isdir(os.path.join(directory, n)))
    if not classes:
        raise UserError(f"support folder {directory} has no class sub-folders (one per class, with its images)")
    if len(classes) > num_classes:
        raise UserError(f"support folder {directory} has {len(classes)} classes but the model's head "
                        f"has {num_classes}: give at most {num_classes} class folders")
    x, y, skipped = [], [], []
    for label, name in enumerate(classes):
        files = _files(os.path.join(directory, name), skipped, prefix=name + "/")
        if not files:
            raise UserError(f"class folder {os.path.join(directory, name)} has no images")
        x += [read(f, dataset, omniglot_resize, shape) for f in files]
        y += [label] * len(files)
    _say_skipped(directory, skipped)
    return np.stack(x), np.asarray(y, np.int32), classes


def query_folder(directory: str, dataset: str, omniglot_resize: str = "original", shape=None
                 ) -> Tuple[np.ndarray, List[str]]:
    """(images, file names) of the images to classify."""
    _check_dir(directory, "query")
    skipped = []
    files = _files(directory, skipped)
    _say_skipped(directory, skipped)
    if not files:
        raise UserError(f"query folder {directory} has no images")
    return (np.stack([read(f, dataset, omniglot_resize, shape) for f in files]),
            [os.path.basename(f) for f in files])
