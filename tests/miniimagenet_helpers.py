"""MiniImageNet test helpers: synthetic images written in the real layouts, with the real split CSVs when present."""

import functools
import os
import zlib

import numpy as np
from PIL import Image

from maml_tf.datasets import miniimagenet as mi
from maml_tf.datasets import miniimagenet_io as mio

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLIT_SIZES = {"train": 64, "val": 16, "test": 20}


@functools.lru_cache(maxsize=None)
def real_csv_rows(split):
    """The real split CSV rows if the data directory `$MAML_TF_DATA_DIR` has them, else rows of the same form."""
    base = os.environ.get("MAML_TF_DATA_DIR", "")
    path = os.path.join(base, "miniimagenet", f"{split}.csv")
    if base and os.path.isfile(path):
        return mio.read_csv(path)
    offset = {"train": 1000000, "val": 2000000, "test": 3000000}[split]
    return [(f"n{offset + c:08d}{i:08d}.jpg", f"n{offset + c:08d}")
            for c in range(SPLIT_SIZES[split]) for i in range(1, 601)]


def subset(split, per_class):
    """The first `per_class` files of every class of the real CSV, in CSV order (as a user's
    partial copy would be listed)."""
    groups = {}
    for filename, label in real_csv_rows(split):
        if len(groups.setdefault(label, [])) < per_class:
            groups[label].append(filename)
    return [(f, label) for label, files in groups.items() for f in files]


def synthetic_image(name, size=(84, 84), label=None):
    """A smooth colour image (JPEG-friendly, like a photo) fixed by its file name; with a label,
    a colour pattern of the class plus noise of the image, so that classes can be told apart."""
    noise = np.random.default_rng(zlib.crc32(name.encode())).integers(0, 256, (3, 3, 3))
    if label is not None:
        base = np.random.default_rng(zlib.crc32(label.encode())).integers(0, 256, (3, 3, 3))
        noise = np.clip(base + (noise - 128) // 3, 0, 255)
    return Image.fromarray(noise.astype(np.uint8)).resize(size, Image.BICUBIC)


def write_csv(folder, split, rows):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{split}.csv"), "w") as f:
        f.write("filename,label\n" + "".join(f"{a},{b}\n" for a, b in rows))


def write_processed(data_dir, per_class, csvs=True):
    """Layout: <data_dir>/miniimagenet/{split}/<wnid>/<file>.jpg (+ the subset CSVs)."""
    root = os.path.join(data_dir, "miniimagenet")
    for split in mi.SPLITS:
        rows = subset(split, per_class)
        for filename, label in rows:
            os.makedirs(os.path.join(root, split, label), exist_ok=True)
            synthetic_image(filename, label=label).save(os.path.join(root, split, label, filename))
        if csvs:
            write_csv(root, split, rows)
    return root


def assert_same(a: mio.SplitImages, b: mio.SplitImages):
    assert a.classes == b.classes
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.starts, b.starts)
    assert a.images.dtype == b.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
