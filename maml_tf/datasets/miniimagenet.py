"""MiniImageNet N-way K-shot tasks (Ravi & Larochelle split) from any of four on-disk formats, kept as uint8.

Where the images are looked for, per split, in this order (see data/README.md, "miniImageNet"):
each of the roots `<data_dir>/miniimagenet`, `<data_dir>/miniimagenet/miniImagenet` and
`<data_dir>/miniImagenet` (the original code's `data/miniImagenet`), and inside a root:
  1. `mini-imagenet-cache-<split>.pkl` (the widely shared pickled caches);
  2. `<split>/<wnid>/<file>.jpg`, 84x84 (the original code's processed layout);
  3. `images/<file>.jpg` named as in `<split>.csv`, already 84x84 (otherwise
     `data/prepare_miniimagenet.py` resizes them into layout 2);
  4. a tensorflow-datasets `mini_imagenet` prepared with that root as its data_dir.
The split CSVs (`<split>.csv`, rows `filename,label`) are read from the root holding the
images, else from `<data_dir>/miniimagenet`; when present, the images must match them exactly.
"""

import hashlib
import os
from typing import Dict, Optional

import numpy as np

from maml_tf.datasets import DATA_DIR_SOURCES, SplitSize
from maml_tf.datasets import miniimagenet_files as files
from maml_tf.datasets import miniimagenet_io as io
from maml_tf.errors import UserError
from maml_tf.types import Task

SPLITS = ("train", "val", "test")
GET_IMAGES = files.GET_IMAGES


def roots(data_dir: str):
    return [os.path.join(data_dir, "miniimagenet"), os.path.join(data_dir, "miniimagenet", "miniImagenet"),
            os.path.join(data_dir, "miniImagenet")]


def load_tfds(root: str, split: str) -> io.SplitImages:
    """Layout 4: a prepared tensorflow-datasets `mini_imagenet` under `root`."""
    from maml_tf.datasets import miniimagenet_tfds

    return miniimagenet_tfds.load_split(root, split)


def load_from_root(root: str, split: str, cache_dir: Optional[str] = None,
                   csv_dir: Optional[str] = None, tfds: bool = True) -> Optional[io.SplitImages]:
    """The split from the first layout found in `root` (module docstring), or None if none is there."""
    data = files.load_from_root(root, split, cache_dir, csv_dir)
    if data is None and tfds and os.path.isdir(os.path.join(root, "mini_imagenet")):
        csv_path, rows = files.split_csv(root, csv_dir or root, split)
        return files.counts_match(load_tfds(root, split), os.path.join(root, "mini_imagenet"),
                                  csv_path, rows)
    return data


def load_split(data_dir: str, split: str, cache_dir: Optional[str] = None) -> io.SplitImages:
    """The images of one split, from the first root and layout found; UserError if none."""
    for root in roots(data_dir):
        data = load_from_root(root, split, cache_dir, csv_dir=roots(data_dir)[0]) \
            if os.path.isdir(root) else None
        if data is not None:
            return data
    raise missing_split(data_dir, split)


def missing_split(data_dir: str, split: str) -> UserError:
    """The error for a split found in none of the roots and layouts."""
    return UserError(f"no miniImageNet images for split '{split}' under "
                     f"{os.path.abspath(os.path.join(data_dir, 'miniimagenet'))} ({DATA_DIR_SOURCES}; "
                     f"looked for mini-imagenet-cache-{split}.pkl, {split}/<wnid>/*.jpg, "
                     f"images/*.jpg with {split}.csv, a prepared tfds mini_imagenet); {GET_IMAGES}")


def listed_counts(root: str, split: str, csv_dir: str):
    """(found, {class: images} or None) of the layout `load_from_root` reads in `root`, from
    file names or the split CSV (which every layout must match); None where only a pickle or a
    tfds dataset without a CSV could tell."""
    csv_path, rows = files.split_csv(root, csv_dir, split)
    from_csv = {c: len(f) for c, f in io.csv_groups(rows).items()} if rows is not None else None
    pkl = os.path.isfile(os.path.join(root, f"mini-imagenet-cache-{split}.pkl"))
    if not pkl and os.path.isdir(os.path.join(root, split)):
        return True, {c: len(f) for c, f in io.list_class_folders(os.path.join(root, split)).items()}
    raw = rows is not None and os.path.isdir(os.path.join(root, "images"))
    found = pkl or raw or os.path.isdir(os.path.join(root, "mini_imagenet"))
    return found, from_csv if found else None


def split_size(config, split: str) -> Optional[SplitSize]:
    """The split's classes and images from its listing, without decoding (None: not known
    before loading); the missing-data error if no root holds the split."""
    for root in roots(config.data_dir):
        found, counts = listed_counts(root, split, roots(config.data_dir)[0]) \
            if os.path.isdir(root) else (False, None)
        if found:
            return None if counts is None else SplitSize(
                len(counts), sum(counts.values()), min(counts.values(), default=0))
    raise missing_split(config.data_dir, split)


def gather_tasks(data: io.SplitImages, meta_batch_size: int, ways: int, per_class: int,
                 rng: np.random.Generator) -> np.ndarray:
    """uint8 [meta_batch, ways, per_class, 84, 84, 3]: distinct classes in random order (so labels
    are shuffled per task), distinct images per class, by one vectorised gather."""
    num_classes = len(data.classes)
    cls = rng.random((meta_batch_size, num_classes)).argsort(axis=1)[:, :ways]  # [B, W]
    counts = data.counts[cls]
    keys = rng.random((meta_batch_size, ways, int(counts.max())))
    keys[np.arange(keys.shape[-1]) >= counts[..., None]] = 2.0  # padding sorts last
    offsets = keys.argsort(axis=-1)[..., :per_class]  # [B, W, per_class]
    return data.images[data.starts[cls][..., None] + offsets]


class MiniImageNetSampler:
    """Loads each split on first use (uint8, about 1.3 GB for all three) and draws tasks from it."""

    problem = "classification"
    input_shape = io.IMAGE_SHAPE

    def __init__(self, data_dir: str, ways: int, cache_dir: Optional[str] = None):
        self.data_dir, self.cache_dir = data_dir, cache_dir
        self.output_dim = ways
        self._splits: Dict[str, io.SplitImages] = {}

    def split(self, name: str) -> io.SplitImages:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}")
        if name not in self._splits:
            data = load_split(self.data_dir, name, self.cache_dir)
            for other, loaded in self._splits.items():
                shared = set(data.classes) & set(loaded.classes)
                if shared:
                    raise UserError(f"miniImageNet classes {io._names(shared)} are in both the "
                                    f"{other} and the {name} split: the splits must be disjoint")
            self._splits[name] = data
        return self._splits[name]

    def sample(self, split, meta_batch_size, shots, queries, rng) -> Task:
        return split_tasks("miniImageNet", split, self.split(split), meta_batch_size,
                           self.output_dim, shots, queries, rng)


def split_tasks(dataset: str, split: str, data, meta_batch_size: int, ways: int, shots: int,
                queries: int, rng) -> Task:
    """A meta-batch of tasks from one split's uint8 images (miniImageNet's, a folder's)."""
    check_task_fits(dataset, split, data, ways, shots, queries)
    x = gather_tasks(data, meta_batch_size, ways, shots + queries, rng)
    x = np.divide(x, 255.0, dtype=np.float32)  # only this batch is ever float
    labels = np.broadcast_to(np.arange(ways, dtype=np.int32)[None, :, None],
                             x.shape[:3])  # [B, W, per_class]

    def part(a, lo, hi):  # [B, W, P, ...] -> [B, W * (hi - lo), ...], class-major
        a = a[:, :, lo:hi]
        return np.ascontiguousarray(a.reshape((a.shape[0], -1) + a.shape[3:]))

    order = support_order(rng, meta_batch_size, ways * shots)[..., None]  # [B, W * K, 1]
    support_x = np.take_along_axis(part(x, 0, shots), order.reshape(order.shape + (1,) * 2), axis=1)
    return Task(support_x, np.take_along_axis(part(labels, 0, shots), order[..., 0], axis=1),
                part(x, shots, shots + queries), part(labels, shots, shots + queries))


def support_order(rng: np.random.Generator, meta_batch_size: int, size: int) -> np.ndarray:
    """int [meta_batch, size]: each support set's random order, as every sampler gives it (Reptile
    takes its inner batches in turn: class-major, each held one class). Drawn from a stream keyed
    by `rng`'s state, which it leaves as it is: the tasks drawn, and so the fixed validation and
    test tasks, are those of the versions before (the order changes a MAML step by round-off only)."""
    key = hashlib.sha256(repr(rng.bit_generator.state).encode()).digest()
    local = np.random.default_rng(int.from_bytes(key[:8], "little"))
    return np.stack([local.permutation(size) for _ in range(meta_batch_size)])


def make_sampler(config) -> MiniImageNetSampler:
    return MiniImageNetSampler(config.data_dir, config.ways, config.cache_dir)


def check_task_fits(dataset: str, split: str, data, ways: int, shots: int, queries: int):
    """UserError unless the split's classes and images per class can make the task."""
    if ways > len(data.classes):
        raise UserError(f"the {dataset} {split} split has {len(data.classes)} classes, "
                        f"fewer than --num_classes={ways}")
    if shots + queries > data.counts.min():
        small = int(data.counts.argmin())
        raise UserError(f"{dataset} class {data.classes[small]} ({split} split) has "
                        f"{data.counts[small]} images, fewer than the {shots} + {queries} "
                        "(support + query) a task needs")
