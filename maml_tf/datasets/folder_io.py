"""A researcher's own image folder: the classes and files it holds and how they split (folder_images reads their pixels).

Two layouts: `ROOT/{train,val,test}/<class>/<image>` (the split is the folders'), or
`ROOT/<class>/<image>`, whose classes are split by `split_classes` (a fixed seed over the sorted
class names, the fractions of --folder_split). Hidden files and folders, broken links and files
Pillow does not read (by extension, else by content) are skipped; a zero-byte image is an error naming it.
"""

import os
import sys
import unicodedata
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image

from maml_tf.errors import UserError

SPLITS = ("train", "val", "test")
DEFAULT_SPLIT = "0.64,0.16,0.2"  # --folder_split's default: the fractions of miniImageNet's 64/16/20
SPLIT_SEED = 1  # fixed (as omniglot's): every --seed of one dataset meta-trains on the same classes
MAX_AUTO_SIZE = 84  # --image_size=0: the most common size, capped here
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


def is_image(path: str) -> bool:
    """Not hidden, and named as an image or (any other name: a scan without an extension) a
    file Pillow recognises; training and `classify` both read exactly these."""
    if os.path.basename(path).startswith("."):
        return False
    if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with Image.open(path):
            return True
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def _image_files(folder: str, skipped: List[str]) -> Tuple[str, ...]:
    files = []
    for entry in _scan(folder):
        if entry.is_dir():  # a class is one folder's own images; a sub-folder's are not read
            skipped.append(entry.path + os.sep)
            continue
        if not entry.is_file() or not is_image(entry.path):  # a broken link is no image either
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
    _check_split_names(root, top)
    skipped = [e.path for e in _scan(root) if not e.is_dir()]  # files beside the folders
    if any(d in SPLITS for d in top):
        classes, splits = _presplit(root, top, fractions, min_images, skipped)
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
        print(f"folder: skipped {len(skipped)} hidden or non-image files, broken links or sub-folders "
              f"in {root} ({shown}"
              f"{' ...' if len(skipped) > 3 else ''})", file=sys.stderr, flush=True)
    return Listing(root, tuple(classes), splits)


def _check_split_names(root: str, top: List[str]):
    """UserError for split folders named otherwise than train/val/test in case only (Train/,
    Val/, Test/): they would be read as three classes of no images (one class named Train is fine)."""
    near = [d for d in top if d not in SPLITS and d.lower() in SPLITS]
    if {d.lower() for d in near} | (set(top) & set(SPLITS)) == set(SPLITS) and near:
        raise UserError(f"{root} has folders {', '.join(near)}: split folders are named train/, "
                        "val/ and test/ (lower case); rename them, or give only class folders")


def _presplit(root: str, top: List[str], fractions: str, min_images: int, skipped: List[str]):
    """(classes, splits) of `root/{train,val,test}/<class>/`: the folders are the split."""
    presplit = [d for d in top if d in SPLITS]
    if fractions != DEFAULT_SPLIT:  # a split asked for and silently not made would mislead
        raise UserError(f"--folder_split={fractions} does not apply to {root}: its train/, val/ "
                        "and test/ folders are the split (leave --folder_split out)")
    missing, other = [s for s in SPLITS if s not in presplit], sorted(set(top) - set(SPLITS))
    if missing or other:
        wrong = " and ".join(([f"not {', '.join(missing)}"] if missing else [])
                             + ([f"also {', '.join(other)}"] if other else []))
        raise UserError(f"{root} has split folders ({', '.join(presplit)}) but {wrong}: give "
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
    # Names compared as a person reads them: "Cat" and "cat", or an accent composed or not.
    seen = [unicodedata.normalize("NFC", c.name.split("/", 1)[1]).casefold() for c in classes]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise UserError(f"class {twice[0]} is in more than one of {root}'s train/, val/ and "
                        f"test/ ({len(twice)} such classes): the splits must be disjoint")
    return classes, splits


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
