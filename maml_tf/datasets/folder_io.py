"""A researcher's own image folder: its listing (classes, files, split) and its decoded uint8 cache.

Two layouts: `ROOT/{train,val,test}/<class>/<image>` (the split is the folders'), or
`ROOT/<class>/<image>`, whose classes are split by `split_classes` (a fixed seed over the sorted
class names, the fractions of --folder_split). Hidden files and folders and files without an
image extension Pillow reads are skipped; a zero-byte image is an error naming it.
"""

import collections
import contextlib
import glob
import hashlib
import json
import os
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from maml_tf.datasets import miniimagenet_io, pixels
from maml_tf.errors import UserError

SPLITS = ("train", "val", "test")
SPLIT_SEED = 1  # fixed (as omniglot's): every --seed of one dataset meta-trains on the same classes
MAX_AUTO_SIZE = 84  # --image_size=0: the most common size, capped here
PREP_VERSION = 1  # bump when `decode` changes: every cache is rebuilt
GREY_MODES = ("1", "L", "LA", "La", "I", "F")
IMAGE_EXTENSIONS = frozenset(e for e, f in Image.registered_extensions().items() if f in Image.OPEN)


class ClassFiles(NamedTuple):
    name: str  # the class folder's name (with its split folder in the split layout: "train/rose")
    files: Tuple[str, ...]  # absolute image paths, sorted


class Listing(NamedTuple):
    """What the file names tell: every class in order, and the split's classes (indices)."""

    root: str
    classes: Tuple[ClassFiles, ...]
    splits: Dict[str, np.ndarray]  # split -> indices into `classes`, in class order


def parse_split(text: str) -> Tuple[float, float, float]:
    """'0.64,0.16,0.2' -> the three fractions (any non-negative weights, normalised)."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or not sum(parts) > 0 or not all(np.isfinite(parts)):
        raise UserError(f"--folder_split={text} must be three non-negative fractions "
                        "train,val,test such as 0.64,0.16,0.2")
    if min(parts) == 0:
        empty = SPLITS[parts.index(0.0)]
        raise UserError(f"--folder_split={text} leaves the {empty} split empty")
    return tuple(p / sum(parts) for p in parts)


def split_classes(names: Sequence[str], fractions: str, where: str = "") -> Dict[str, np.ndarray]:
    """Indices (into the sorted `names`) of each split: a seeded permutation cut by the fractions."""
    n, (train, val, _) = len(names), parse_split(fractions)
    sizes = [int(round(train * n)), int(round(val * n))]
    sizes.append(n - sum(sizes))
    for split, size in zip(SPLITS, sizes):
        if size <= 0:
            raise UserError(f"--folder_split={fractions} of the {n} classes{where} leaves the {split} split "
                            f"empty ({'/'.join(map(str, sizes))} classes)")
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    cuts = np.cumsum(sizes)[:-1]
    return {s: np.sort(part) for s, part in zip(SPLITS, np.split(order, cuts))}


def _scan(folder: str) -> List[os.DirEntry]:
    try:
        return sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise UserError(f"cannot list {folder}: {err.strerror or err}") from None


def _visible_dirs(folder: str) -> List[str]:
    return [e.name for e in _scan(folder) if e.is_dir() and not e.name.startswith(".")]


def _image_files(folder: str, skipped: List[str]) -> Tuple[str, ...]:
    files = []
    for entry in _scan(folder):
        if not entry.is_file():
            continue
        if entry.name.startswith(".") or os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
            skipped.append(entry.path)
            continue
        if entry.stat().st_size == 0:
            raise UserError(f"{entry.path} is an empty (zero-byte) file: remove it or replace it")
        files.append(entry.path)
    return tuple(files)


_SAID = set()


def list_folder(root: str, fractions: str, min_images: int = 0) -> Listing:
    """The classes and their image files under `root`, split; UserError for a folder that is not
    one class per sub-folder. Classes with fewer than `min_images` images are left out first
    (--min_class_images: before the split, so every run of the folder splits the same classes)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UserError(f"--data_dir={root} is not a folder (--datasource=folder reads "
                        "DATA_DIR/<class>/<image> or DATA_DIR/{train,val,test}/<class>/<image>)")
    top = _visible_dirs(root)
    presplit = [d for d in top if d in SPLITS]
    skipped: List[str] = []
    if presplit:
        if len(presplit) < 3 or len(top) > 3:
            other = sorted(set(top) - set(SPLITS)) or sorted(set(SPLITS) - set(presplit))
            raise UserError(f"{root} has split folders ({', '.join(presplit)}) but "
                            f"{'not' if len(presplit) < 3 else 'also'} {', '.join(other)}: give "
                            "train/, val/ and test/ with class folders in each, or only class folders")
        classes, splits = [], {}
        for split in SPLITS:
            names = _visible_dirs(os.path.join(root, split))
            if not names:
                raise UserError(f"{os.path.join(root, split)} has no class sub-folders "
                                "(one folder of images per class)")
            found = [ClassFiles(f"{split}/{n}", _image_files(os.path.join(root, split, n), skipped))
                     for n in names]
            found = _enough(found, min_images, os.path.join(root, split))
            splits[split] = np.arange(len(classes), len(classes) + len(found))
            classes += found
        seen = [c.name.split("/", 1)[1] for c in classes]
        twice = sorted({n for n in seen if seen.count(n) > 1})
        if twice:
            raise UserError(f"class {twice[0]} is in more than one of {root}'s train/, val/ and "
                            f"test/ ({len(twice)} such classes): the splits must be disjoint")
    else:
        if not top:
            raise UserError(f"{root} has no class sub-folders: --datasource=folder reads "
                            "DATA_DIR/<class>/<image> or DATA_DIR/{train,val,test}/<class>/<image>")
        classes = _enough([ClassFiles(n, _image_files(os.path.join(root, n), skipped)) for n in top],
                          min_images, root)
        splits = split_classes([c.name for c in classes], fractions, f" in {root}")
    if skipped and (root, len(skipped)) not in _SAID:  # once per process, not per listing
        _SAID.add((root, len(skipped)))
        shown = ", ".join(os.path.relpath(p, root) for p in skipped[:3])
        print(f"folder: skipped {len(skipped)} hidden or non-image files in {root} ({shown}"
              f"{' ...' if len(skipped) > 3 else ''})", file=sys.stderr, flush=True)
    return Listing(root, tuple(classes), splits)


def _enough(classes: List[ClassFiles], min_images: int, where: str) -> List[ClassFiles]:
    """The classes with at least `min_images` images; one line naming those left out."""
    small = [c for c in classes if len(c.files) < min_images]
    if small and (where, min_images) not in _SAID:
        _SAID.add((where, min_images))
        shown = ", ".join(f"{os.path.basename(c.name)} ({len(c.files)})" for c in small[:3])
        print(f"folder: left out {len(small)} of {len(classes)} classes in {where} with fewer than "
              f"{min_images} images (--min_class_images): {shown}{' ...' if len(small) > 3 else ''}",
              file=sys.stderr, flush=True)
    return [c for c in classes if len(c.files) >= min_images]


def fingerprint(listing: Listing, *extra) -> str:
    """Changes whenever a file is added, removed, renamed, resized or rewritten (or `extra`)."""
    digest = hashlib.sha1(repr((PREP_VERSION,) + extra).encode())
    for cls in listing.classes:
        for path in cls.files:
            st = os.stat(path)
            digest.update(f"{os.path.relpath(path, listing.root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
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
            f"{hashlib.sha1(listing.root.encode()).hexdigest()[:8]}-{size}px{channels}c")
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
