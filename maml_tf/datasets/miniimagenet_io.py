"""Readers for the miniImageNet formats (split CSVs, JPEG folders, pickled caches) into uint8 arrays."""

import contextlib
import csv
import hashlib
import glob
import os
import pickle
import time
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from maml_tf.errors import UserError

IMAGE_SHAPE = (84, 84, 3)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class SplitImages(NamedTuple):
    """One split in memory, images grouped by class (classes sorted by name)."""

    images: np.ndarray  # [N, 84, 84, 3] uint8; rows starts[c] .. starts[c]+counts[c]-1 are class c
    classes: Tuple[str, ...]  # [C] class names (ImageNet wnids)
    starts: np.ndarray  # [C] int64
    counts: np.ndarray  # [C] int64


def from_groups(images: np.ndarray, classes: Sequence[str], counts: Sequence[int]) -> SplitImages:
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return SplitImages(images, tuple(classes), starts, counts)


def read_csv(path: str) -> List[Tuple[str, str]]:
    """(filename, class) rows of a Ravi & Larochelle split CSV (header `filename,label`)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != ["filename", "label"]:
        raise UserError(f"{path} is not a miniImageNet split CSV (expected the header 'filename,label')")
    body = [r for r in rows[1:] if r]
    bad = [i + 2 for i, r in enumerate(body) if len(r) != 2 or not r[0] or not r[1]]
    if bad:
        raise UserError(f"{path}: line {bad[0]} is not 'filename,label'")
    return [(r[0].strip(), r[1].strip()) for r in body]


def csv_groups(rows) -> dict:
    """{class: sorted filenames} from CSV rows."""
    groups = {}
    for filename, label in rows:
        groups.setdefault(label, []).append(filename)
    return {k: sorted(v) for k, v in groups.items()}


def _names(items, limit=3) -> str:
    items = sorted(items)
    shown = ", ".join(items[:limit])
    return shown + (f" ... ({len(items)} in all)" if len(items) > limit else "")


def check_against_csv(found: dict, expected: dict, where: str, csv_path: str, files: bool = True):
    """Raises one clear UserError if the classes (and, if `files`, the file names or else the
    image counts) found in `where` differ from the split CSV."""
    missing = set(expected) - set(found)
    if missing:
        raise UserError(f"{where}: {len(missing)} classes of {csv_path} are missing: {_names(missing)}")
    extra = set(found) - set(expected)
    if extra:
        raise UserError(f"{where}: classes not in {csv_path}: {_names(extra)} (CSV/folder mismatch)")
    for name in sorted(expected):
        if not files:
            if len(found[name]) != len(expected[name]):
                raise UserError(f"{where}: class {name} has {len(found[name])} images but "
                                f"{csv_path} lists {len(expected[name])}")
            continue
        got = {os.path.splitext(f)[0] for f in found[name]}
        want = {os.path.splitext(f)[0] for f in expected[name]}
        if want - got:
            raise UserError(f"{where}/{name}: {len(want - got)} images listed in {csv_path} are "
                            f"missing, e.g. {_names(want - got, 1)} (CSV/folder mismatch)")
        if got - want:
            raise UserError(f"{where}/{name}: {len(got - want)} images are not listed in "
                            f"{csv_path}, e.g. {_names(got - want, 1)} (CSV/folder mismatch)")


def list_class_folders(split_dir: str) -> dict:
    """{class folder name: sorted image file names} of a processed split folder."""
    groups = {}
    for name in sorted(os.listdir(split_dir)):
        path = os.path.join(split_dir, name)
        if os.path.isdir(path):
            groups[name] = sorted(f for f in os.listdir(path)
                                  if f.lower().endswith(IMAGE_EXTENSIONS))
    return groups


def _fingerprint(paths: Sequence[str], source: str) -> str:
    """Changes whenever a file is added, removed, renamed, resized or rewritten."""
    digest = hashlib.sha1()
    for path in paths:
        st = os.stat(path)
        # Relative to the source, so "../data" and "/abs/data" share one cache instead of evicting each other.
        name = os.path.relpath(path, source)
        digest.update(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def decode_images(paths: Sequence[str], source: str) -> np.ndarray:
    """[N, 84, 84, 3] uint8, decoded straight into one preallocated array."""
    from PIL import Image

    out = np.empty((len(paths),) + IMAGE_SHAPE, dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                if im.size != IMAGE_SHAPE[:2]:
                    raise UserError(f"{path} is {im.size[0]}x{im.size[1]}, not 84x84: resize the "
                                    "images with python data/prepare_miniimagenet.py")
                out[i] = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read {path} ({source}): {err}") from None
    return out


def temp_path(path: str, pid: int) -> str:
    """Where process `pid` writes `path` before renaming it: a dot file, outside the stale-cache glob.

    Two runs started together (one per core) decode the same split; neither may delete the other's
    half-written cache as stale.
    """
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{pid}.tmp.npy")


def _writer_alive(tmp: str) -> bool:
    """Whether the process that names `tmp` (see `temp_path`) still runs: a killed run's file is junk."""
    try:
        os.kill(int(os.path.basename(tmp).split(".")[-3]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass  # someone else's process: alive
    return True


def load_images_cached(paths: Sequence[str], source: str, cache_dir: Optional[str],
                       cache_name: str) -> np.ndarray:
    """decode_images, through a .npy cache keyed by the files' fingerprint (stale caches are replaced)."""
    if not cache_dir:
        return decode_images(paths, source)
    folder = os.path.join(cache_dir, "miniimagenet")
    path = os.path.join(folder, f"{cache_name}-{_fingerprint(paths, source)}.npy")
    if os.path.exists(path):
        try:
            images = np.load(path, mmap_mode="r")  # pages read as tasks touch them, shared by runs
            if images.shape == (len(paths),) + IMAGE_SHAPE and images.dtype == np.uint8:
                return images
        except (OSError, ValueError):
            pass  # a truncated or foreign file: decode again and overwrite it
    t0 = time.time()
    images = decode_images(paths, source)
    print(f"miniimagenet: decoded {len(paths)} images of {source} in {time.time() - t0:.1f} s",
          flush=True)
    try:
        os.makedirs(folder, exist_ok=True)
        junk = [t for t in glob.glob(os.path.join(folder, f".{cache_name}-*.tmp.npy")) if not _writer_alive(t)]
        for stale in glob.glob(os.path.join(folder, f"{cache_name}-*.npy")) + junk:
            with contextlib.suppress(FileNotFoundError):  # another run may clean up beside us
                os.remove(stale)
        tmp = temp_path(path, os.getpid())
        np.save(tmp, images)
        os.replace(tmp, path)
    except OSError as err:  # an unwritable cache only costs decoding time next run
        print(f"miniimagenet: not caching decoded images in {folder}: {err}", flush=True)
    return images


def load_pickle(path: str) -> SplitImages:
    """A `mini-imagenet-cache-<split>.pkl` dict {image_data: uint8 [N,84,84,3], class_dict: name -> rows}."""
    try:
        with open(path, "rb") as f:
            # latin1: caches written by Python 2 hold byte strings; it changes nothing for Python 3 ones.
            cache = pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not isinstance(cache, dict) or not {"image_data", "class_dict"} <= set(cache):
        raise UserError(f"{path} is not a miniImageNet cache (expected a dict with image_data and class_dict)")
    data = cache["image_data"]
    if not isinstance(data, np.ndarray) or data.ndim != 4 or data.shape[1:] != IMAGE_SHAPE:
        shape = getattr(data, "shape", type(data).__name__)
        raise UserError(f"{path}: image_data is {shape}, not [N, 84, 84, 3] (wrong image size)")
    if data.dtype != np.uint8:
        raise UserError(f"{path}: image_data is {data.dtype}, not uint8")
    classes = sorted(cache["class_dict"])
    rows = [np.asarray(cache["class_dict"][c], dtype=np.int64) for c in classes]
    order = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    if order.size and (order.min() < 0 or order.max() >= len(data)):
        raise UserError(f"{path}: class_dict points past the {len(data)} images of image_data")
    # The shared caches store each class as one ascending run, so usually no copy is made.
    images = data if np.array_equal(order, np.arange(len(data))) else data[order]
    return from_groups(images, classes, [len(r) for r in rows])
