"""Omniglot N-way K-shot tasks as the original: 1100/100/423 seeded character split, random 90° rotations.

The prepared array (see `omniglot_data`) stays in memory as uint8; a task batch is a few
vectorised NumPy gathers, so sampling costs a small fraction of a meta-step.
"""

import hashlib
import os
from typing import Dict, List, NamedTuple, Optional

import numpy as np

from maml_tf.datasets import SplitSize, omniglot_data
from maml_tf.datasets.omniglot_data import DRAWINGS, NUM_CHARACTERS, SIZE
from maml_tf.errors import UserError
from maml_tf.types import Task

SPLIT_SEED = 1  # the original seeds its character shuffle with random.seed(1)
SPLIT_SIZES = {"train": 1100, "val": 100, "test": 423}  # 1,200 for training in all, as the paper
SPLITS = ("random", "alphabets", "within_alphabet")
VAL_ALPHABETS = 4  # authors' split: background alphabets held out for meta-validation
# sha256 of the random split's three index arrays (int64, train/val/test) from SPLIT_SEED, as
# NumPy 2.4 draws it. NumPy does not promise a seeded Generator the same stream in every version
# (NEP 19) and a run records no split, so the split is pinned: a NumPy that drew another one
# would test a stored run on some of its training characters, and is refused instead.
RANDOM_SPLIT_SHA256 = "24b7da10b179df7225e6cb47e4d2e13c1d352795f61ea866e977cc6b8bff99c8"


class Splits(NamedTuple):
    """Character indices (into the prepared array) of each split, disjoint."""

    train: np.ndarray  # [n_train] int
    val: np.ndarray  # [n_val] int
    test: np.ndarray  # [n_test] int


def random_split(seed: int = SPLIT_SEED) -> Splits:
    """The original's split: all 1,623 characters shuffled, then 1,100 / 100 / 423."""
    order = np.random.default_rng(seed).permutation(NUM_CHARACTERS)
    n_train, n_val = SPLIT_SIZES["train"], SPLIT_SIZES["val"]
    splits = Splits(order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:])
    if seed == SPLIT_SEED and split_fingerprint(splits) != RANDOM_SPLIT_SHA256:
        raise UserError(f"NumPy {np.__version__} draws another Omniglot character split from seed "
                        f"{seed} than the one maml_tf pins (NumPy 2.4's): a stored run evaluated "
                        "on it would meet some of its training characters; use a NumPy that "
                        "draws the pinned split (tests/datasets/test_omniglot_splits.py)")
    return splits


def split_fingerprint(splits: Splits) -> str:
    """sha256 of the split's index arrays, in order."""
    return hashlib.sha256(b"".join(np.asarray(s, np.int64).tobytes() for s in splits)).hexdigest()


def alphabet_split(alphabet: np.ndarray, background: np.ndarray, seed: int = SPLIT_SEED) -> Splits:
    """The authors' split: train on the 30 background alphabets, test on the 20 evaluation ones.

    `VAL_ALPHABETS` whole background alphabets, chosen with a seeded RNG, are held out for
    meta-validation, so validation is on unseen alphabets too.
    """
    background_alphabets = np.unique(alphabet[background])
    held_out = np.random.default_rng(seed).choice(background_alphabets, VAL_ALPHABETS, replace=False)
    val = background & np.isin(alphabet, held_out)
    return Splits(np.flatnonzero(background & ~val), np.flatnonzero(val), np.flatnonzero(~background))


class OmniglotSampler:
    """Draws N-way tasks from one split; every class of a task gets its own random rotation.

    `groups[split]` lists the class pools a task may draw from: one pool (the whole split),
    or one per alphabet when tasks stay within an alphabet.
    """

    problem = "classification"
    input_shape = (SIZE, SIZE, 1)

    def __init__(self, images: np.ndarray, groups: Dict[str, List[np.ndarray]], ways: int):
        self.images = images  # [characters, 20, 28, 28] uint8, ink = 255
        self.groups = {split: [g for g in pools if len(g) >= ways] for split, pools in groups.items()}
        self.output_dim = ways

    def _classes(self, split: str, meta_batch_size: int, rng) -> np.ndarray:
        """[meta_batch, ways] distinct characters per task, in random order (so labels are random)."""
        pools = self.groups[split]
        pool_of_task = rng.integers(len(pools), size=meta_batch_size)
        classes = np.empty((meta_batch_size, self.output_dim), np.int64)
        for p in np.unique(pool_of_task):
            tasks = np.flatnonzero(pool_of_task == p)
            keys = rng.random((len(tasks), len(pools[p])))
            classes[tasks] = pools[p][np.argsort(keys, axis=1)[:, :self.output_dim]]
        return classes

    def sample(self, split, meta_batch_size, shots, queries, rng) -> Task:
        ways, per_class = self.output_dim, shots + queries
        classes = self._classes(split, meta_batch_size, rng)
        drawings = np.argsort(rng.random((meta_batch_size, ways, DRAWINGS)), axis=2)[..., :per_class]
        images = self.images[classes[..., None], drawings]  # [meta_batch, ways, per_class, 28, 28]
        rotations = rng.integers(4, size=(meta_batch_size, ways))  # per class, as the original
        for k in (1, 2, 3):
            turn = rotations == k
            images[turn] = np.rot90(images[turn], k, axes=(2, 3))
        labels = np.broadcast_to(np.arange(ways, dtype=np.int32)[None, :, None],
                                 (meta_batch_size, ways, per_class))
        support = _flatten_shuffled(images[:, :, :shots], labels[:, :, :shots], rng)
        query = _flatten_shuffled(images[:, :, shots:], labels[:, :, shots:], rng)
        return Task(*support, *query)


def _flatten_shuffled(images, labels, rng):
    """[B, ways, n, 28, 28] uint8 -> ([B, ways*n, 28, 28, 1] float32 in [0, 1], [B, ways*n] int32),
    examples in a random order per task."""
    batch = images.shape[0]
    images = images.reshape(batch, -1, SIZE, SIZE)
    labels = labels.reshape(batch, -1)
    order = np.argsort(rng.random(labels.shape), axis=1)
    images = np.take_along_axis(images, order[..., None, None], axis=1)
    x = images[..., None].astype(np.float32) * np.float32(1.0 / 255.0)
    return x, np.take_along_axis(labels, order, axis=1).astype(np.int32)


def check_task_size(config):
    """UserError when a task needs more drawings per character than the 20 Omniglot has."""
    sizes = [(config.shots, config.queries, "training")] if config.train else []  # free at evaluation
    for shots, queries, what in sizes + [(config.eval_shots, config.eval_queries, "evaluation")]:
        if shots + queries > DRAWINGS:
            raise UserError(f"omniglot has {DRAWINGS} drawings per character but {what} tasks need "
                            f"{shots} support + {queries} query: lower --update_batch_size or "
                            f"--num_query so that they sum to at most {DRAWINGS}")


def check_ways(groups: Dict[str, List[np.ndarray]], ways: int, split_name: str):
    """UserError when a split has fewer characters (or a largest alphabet) than --num_classes."""
    for split, pools in groups.items():
        largest = max(len(p) for p in pools)
        if ways > largest:
            what = "the largest alphabet of the" if len(pools) > 1 else "the"
            raise UserError(f"--num_classes={ways} is larger than {what} omniglot {split} split "
                            f"({largest} characters, --omniglot_split={split_name})")


def make_groups(data, split_name: str) -> Dict[str, List[np.ndarray]]:
    """Class pools per split for the chosen split rule."""
    if split_name == "random":
        splits = random_split()
    else:
        splits = alphabet_split(data.alphabet, data.background)
    if split_name == "within_alphabet":
        return {s: omniglot_data.alphabet_groups(data.alphabet, getattr(splits, s))
                for s in Splits._fields}
    return {s: [getattr(splits, s)] for s in Splits._fields}


def check_config(config):
    """The checks that need no data (called by `Config.validate`, so before TensorFlow loads)."""
    if config.omniglot_split not in SPLITS:
        raise UserError(f"unknown omniglot split {config.omniglot_split!r}: use one of {', '.join(SPLITS)}")
    check_task_size(config)
    if config.omniglot_split == "random":
        check_ways({s: [np.empty(n)] for s, n in SPLIT_SIZES.items()}, config.ways, "random")
    if config.data_source == "files":
        omniglot_data.check_files(os.path.join(config.data_dir, "omniglot"))


def split_size(config, split: str) -> Optional[SplitSize]:
    """The characters a task of `split` draws from and their drawings, without decoding: the
    random split's sizes are fixed, the others' come from the zips' file names (tfds: None,
    `make_sampler` checks once loaded). Rotations do not add classes: a task's classes are
    distinct characters, each turned by its own random multiple of 90 degrees."""
    if config.omniglot_split == "random":
        n = SPLIT_SIZES[split]
        return SplitSize(n, n * DRAWINGS, DRAWINGS)
    if config.data_source != "files":
        return None
    found = omniglot_data.listing(os.path.abspath(os.path.join(config.data_dir, "omniglot")))
    pools = make_groups(found, config.omniglot_split)[split]
    members = np.concatenate(pools)
    note = " in its largest alphabet" if len(pools) > 1 else ""
    return SplitSize(max(len(p) for p in pools), int(found.drawings[members].sum()),
                     int(found.drawings[members].min(initial=DRAWINGS)), note)


def make_sampler(config) -> OmniglotSampler:
    split_name = config.omniglot_split
    check_config(config)
    data = omniglot_data.load(config.data_dir, config.cache_dir, config.data_source,
                              config.omniglot_resize)
    groups = make_groups(data, split_name)
    check_ways(groups, config.ways, split_name)
    return OmniglotSampler(data.images, groups, config.ways)
