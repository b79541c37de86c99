"""The pixels of a listed image folder: the common size and mode of its images (probed once) and every image as one uint8 array, both cached beside a fingerprint of the files."""

import collections
import contextlib
import glob
import hashlib
import json
import os
import sys
import time
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from maml_tf.datasets import miniimagenet_io, pixels
from maml_tf.datasets.folder_io import MAX_AUTO_SIZE, Listing
from maml_tf.errors import UserError

PREP_VERSION = 2  # bump when `decode` changes: every cache is rebuilt (2: EXIF orientation, floats)
GREY_MODES = ("1", "L", "LA", "La", "I", "F")


def fingerprint(listing: Listing, *extra) -> str:
    """Changes whenever a file is added, removed, renamed, resized or rewritten (or `extra`)."""
    digest = hashlib.sha1(repr((PREP_VERSION,) + extra).encode())
    for cls in listing.classes:
        for path in cls.files:
            st = os.stat(path)
            line = f"{os.path.relpath(path, listing.root)}\t{st.st_size}\t{st.st_mtime_ns}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))  # names need not be UTF-8
    return digest.hexdigest()[:16]


def _open(path: str) -> Image.Image:
    try:
        return Image.open(path)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def probe(paths: Sequence[str]) -> Tuple[int, bool]:
    """(the most common image side, capped at MAX_AUTO_SIZE; whether every image is grey), from
    the files' headers; one line when the modes are mixed (all are then read as RGB)."""
    sizes, modes = collections.Counter(), collections.Counter()
    for path in paths:
        with _open(path) as im:
            sizes[min(im.size)] += 1
            modes["grey" if im.mode in GREY_MODES or im.mode.startswith("I;16") else im.mode] += 1
    if not sizes:
        raise UserError("no images in the class folders: --datasource=folder reads "
                        "DATA_DIR/<class>/<image> or DATA_DIR/{train,val,test}/<class>/<image>")
    grey = set(modes) == {"grey"}
    if len(modes) > 1:
        counts = ", ".join(f"{m} ({n})" for m, n in sorted(modes.items()))
        print(f"folder: images of mixed modes {counts}: all read as RGB", file=sys.stderr, flush=True)
    return min(sizes.most_common(1)[0][0], MAX_AUTO_SIZE), grey


def probe_cached(listing: Listing, cache_dir: Optional[str]) -> Tuple[int, bool]:
    """`probe` of every image, remembered in cache_dir beside the arrays (keyed as they are)."""
    paths = [p for cls in listing.classes for p in cls.files]
    if not cache_dir:
        return probe(paths)
    path = os.path.join(cache_dir, "folder", f"probe-{fingerprint(listing, 'probe', listing.root)}.json")
    with contextlib.suppress(OSError, ValueError, TypeError):
        with open(path) as f:
            size, grey = json.load(f)
        return int(size), bool(grey)
    size, grey = probe(paths)
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump([size, grey], f)
        os.replace(tmp, path)
    return size, grey


def decode_one(path: str, size: int, channels: int) -> np.ndarray:
    """One image -> uint8 [size, size, channels] (`pixels.square`, as `classify` prepares them)."""
    try:
        with _open(path) as im:
            im.load()
            return pixels.square(im, size, channels)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def load_cached(listing: Listing, size: int, channels: int, cache_dir: Optional[str]) -> np.ndarray:
    """uint8 [images, size, size, channels] of every class in order: the cache's memory map when
    it is fresh, else decoded once into it (a temp file renamed into place); in memory without
    a cache_dir."""
    paths = [p for cls in listing.classes for p in cls.files]
    shape = (len(paths), size, size, channels)
    if not cache_dir:
        return np.stack([decode_one(p, size, channels) for p in paths]) if paths else np.zeros(shape, np.uint8)
    folder = os.path.join(cache_dir, "folder")
    stem = (f"{os.path.basename(listing.root) or 'root'}-"
            f"{hashlib.sha1(os.fsencode(listing.root)).hexdigest()[:8]}-{size}px{channels}c")
    path = os.path.join(folder, f"{stem}-{fingerprint(listing, size, channels)}.npy")
    with contextlib.suppress(OSError, ValueError):
        images = np.load(path, mmap_mode="r")
        if images.shape == shape and images.dtype == np.uint8:
            return images
    os.makedirs(folder, exist_ok=True)
    t0, tmp = time.time(), miniimagenet_io.temp_path(path, os.getpid())
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    try:
        for i, p in enumerate(paths):  # straight to disk: a dataset larger than memory decodes too
            out[i] = decode_one(p, size, channels)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    for stale in glob.glob(os.path.join(folder, f"{glob.escape(stem)}-*.npy")):
        if stale != path:
            with contextlib.suppress(FileNotFoundError):
                os.remove(stale)
    print(f"folder: decoded {len(paths):,} images of {listing.root} in {time.time() - t0:.1f} s "
          f"(cached in {path})", file=sys.stderr, flush=True)
    return np.load(path, mmap_mode="r")
