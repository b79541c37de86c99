"""MiniImageNet layouts 1-3 (pickle, processed folders, flat images with their CSV) checked against the split CSVs; used by `miniimagenet` and by the tfds builder."""

import hashlib
import os
from typing import Dict, Optional

from maml_tf.datasets import miniimagenet_io as io
from maml_tf.errors import UserError

GET_IMAGES = ("the miniImageNet images are not shipped with maml_tf: get the ImageNet images of the "
              "Ravi & Larochelle split (or a mini-imagenet-cache-<split>.pkl) and arrange them as "
              "data/README.md (section miniImageNet) describes")


def split_csv(root: str, csv_dir: str, split: str):
    """(path, rows) of the split CSV next to the images, else in `csv_dir`; or (None, None)."""
    for folder in (root, csv_dir):
        path = os.path.join(folder, f"{split}.csv")
        if os.path.isfile(path):
            return path, io.read_csv(path)
    return None, None


def _cache_name(split: str, source: str) -> str:
    return f"{split}-{hashlib.sha1(os.fsencode(os.path.abspath(source))).hexdigest()[:8]}"


def _from_files(groups: Dict[str, list], folder_of, source: str, cache_dir, split) -> io.SplitImages:
    classes = sorted(groups)
    paths = [os.path.join(folder_of(c), f) for c in classes for f in groups[c]]
    if not paths:
        raise UserError(f"{source} holds no images; {GET_IMAGES}")
    images = io.load_images_cached(paths, source, cache_dir, _cache_name(split, source))
    return io.from_groups(images, classes, [len(groups[c]) for c in classes])


def load_processed(split_dir, csv_path, rows, cache_dir, split) -> io.SplitImages:
    """Layout 2: <split>/<wnid>/<file>.jpg."""
    groups = io.list_class_folders(split_dir)
    if rows is not None:
        io.check_against_csv(groups, io.csv_groups(rows), split_dir, csv_path)
    return _from_files(groups, lambda c: os.path.join(split_dir, c), split_dir, cache_dir, split)


def load_raw(images_dir, csv_path, rows, cache_dir, split) -> io.SplitImages:
    """Layout 3: a flat folder of images named as in the split CSV."""
    expected = io.csv_groups(rows)
    present = set(os.listdir(images_dir))
    missing = [f for names in expected.values() for f in names if f not in present]
    if missing:
        raise UserError(f"{images_dir}: {len(missing)} of the {len(rows)} images listed in {csv_path} "
                        f"are missing, e.g. {missing[0]}; {GET_IMAGES}")
    return _from_files(expected, lambda c: images_dir, images_dir, cache_dir, split)


def load_from_root(root: str, split: str, cache_dir: Optional[str] = None,
                   csv_dir: Optional[str] = None) -> Optional[io.SplitImages]:
    """The split from the first of layouts 1-3 found in `root` (a pickle, the processed folders,
    the flat images with their CSV), or None if none is there."""
    csv_path, rows = split_csv(root, csv_dir or root, split)
    pkl = os.path.join(root, f"mini-imagenet-cache-{split}.pkl")
    if os.path.isfile(pkl):
        return counts_match(io.load_pickle(pkl), pkl, csv_path, rows)
    if os.path.isdir(os.path.join(root, split)):
        return load_processed(os.path.join(root, split), csv_path, rows, cache_dir, split)
    if rows is not None and os.path.isdir(os.path.join(root, "images")):
        return load_raw(os.path.join(root, "images"), csv_path, rows, cache_dir, split)
    return None


def counts_match(data: io.SplitImages, where: str, csv_path, rows) -> io.SplitImages:
    """Formats without file names are checked against the CSV by classes and image counts."""
    if rows is not None:
        found = {c: range(n) for c, n in zip(data.classes, data.counts)}
        io.check_against_csv(found, io.csv_groups(rows), where, csv_path, files=False)
    return data
