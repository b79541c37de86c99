"""N-way K-shot tasks from a researcher's own images: --datasource=folder --data_dir=ROOT.

ROOT is `ROOT/<class>/<image>` (classes split train/val/test by --folder_split with a fixed
seed over the sorted class names; the fractions are in the run's config.json, so an evaluation
or a resume uses the same classes) or `ROOT/{train,val,test}/<class>/<image>`. Images of any
format and size are resized to --image_size (0: their most common size, at most 84), read as
grey or RGB by --channels (0: grey if every image is grey), decoded once into a uint8 .npy in
--cache_dir that is read by memory map, and scaled to [0, 1] per task batch only.

The network is the paper's conv net, chosen by the images unless --max_pool or --num_filters is
given (`paper_network`): for RGB images of 64 px or more its MiniImageNet net (max-pool, 32
filters), else its Omniglot net (stride 2, 64 filters). --max_pool needs 16 px or more.
"""

from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from maml_tf.datasets import SplitSize
from maml_tf.datasets import folder_images, folder_io as io
from maml_tf.datasets.miniimagenet import split_tasks
from maml_tf.datasets.miniimagenet_io import SplitImages
from maml_tf.errors import UserError
from maml_tf.types import Task

SPLITS = io.SPLITS
CHANNELS = (0, 1, 3)


def check_config(config):
    """The checks that need no data (Config.validate calls it, before TensorFlow loads)."""
    io.parse_split(config.folder_split)
    check_image_format(config)
    if config.min_class_images < 0:
        raise UserError(f"--min_class_images must be >= 0, got {config.min_class_images}")


def check_image_format(config):
    """--image_size and --channels in range (a folder's or a TFDS dataset's images)."""
    if config.image_size < 0:
        raise UserError(f"--image_size must be >= 0 (0: the images' most common size, at most "
                        f"{io.MAX_AUTO_SIZE}), got {config.image_size}")
    if config.channels not in CHANNELS:
        raise UserError(f"--channels must be 1 (grey), 3 (RGB) or 0 (what the images are), "
                        f"got {config.channels}")
    if config.max_pool and config.conv and 0 < config.image_size < 16:
        raise UserError(f"--max_pool halves the image 4 times: it needs --image_size >= 16, got "
                        f"{config.image_size} (use strided convolutions: --max_pool=False)")


def needed(config, split: str) -> int:
    """Images per class the tasks of `split` need (the largest of training's and evaluation's)."""
    train = config.shots + config.queries
    evaluation = config.eval_shots + config.eval_queries
    return train if split == "train" else max(train, evaluation) if split == "val" else evaluation


def check_classes(listing: io.Listing, split: str, need: int):
    """UserError naming the split's smallest class if it has fewer than `need` images."""
    members = [listing.classes[i] for i in listing.splits[split]]
    small = min(members, key=lambda c: len(c.files))
    if len(small.files) < need:
        raise UserError(f"class {small.name} ({split} split) has {len(small.files)} images, fewer "
                        f"than the {need} (support + query) a task needs: add images, leave such "
                        f"classes out with --min_class_images={need}, or lower "
                        f"--update_batch_size/--num_query"
                        + ("; is --data_dir the folder of class folders (ROOT/<class>/<image>)?"
                           if not small.files else ""))


def split_size(config, split: str) -> Optional[SplitSize]:
    """The split's classes and images from the file names; UserError naming a class too small
    for the configured tasks, or a folder that is not one class per sub-folder."""
    listing = io.list_folder(config.data_dir, config.folder_split, config.min_class_images)
    counts = [len(listing.classes[i].files) for i in listing.splits[split]]
    if len(counts) >= config.ways:
        check_classes(listing, split, needed(config, split))
    return SplitSize(len(counts), sum(counts), min(counts))


class ClassImagesSampler:
    """Draws N-way tasks from one split of uint8 images stored class after class (a memory map
    when cached): a folder's, or a TFDS dataset's."""

    problem = "classification"

    def __init__(self, images: np.ndarray, names: Sequence[str], counts: Sequence[int],
                 splits: Dict[str, np.ndarray], ways: int, dataset: str = "folder"):
        self.images, self.output_dim, self.dataset = images, ways, dataset
        self.input_shape = tuple(images.shape[1:])
        counts = np.asarray(counts, np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self._splits: Dict[str, SplitImages] = {
            s: SplitImages(images, tuple(names[i] for i in idx), starts[idx], counts[idx])
            for s, idx in splits.items()}

    def split(self, name: str) -> SplitImages:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}")
        return self._splits[name]

    def sample(self, split, meta_batch_size, shots, queries, rng) -> Task:
        return split_tasks(self.dataset, split, self.split(split), meta_batch_size, self.output_dim,
                           shots, queries, rng)


def image_format(config, listing: io.Listing) -> Tuple[int, int]:
    """(side, channels) the images are read at: the config's, or (0) what the images are."""
    size, channels = config.image_size, config.channels
    if not size or not channels:
        common, grey = folder_images.probe_cached(listing, config.cache_dir)
        size, channels = size or common, channels or (1 if grey else 3)
    if config.max_pool and config.conv and size < 16:
        raise UserError(f"the images are {size} px: --max_pool halves them 4 times and needs 16 "
                        "or more (give --image_size, or use --max_pool=False)")
    return size, channels


# The paper's two conv nets, chosen by the images when no network flag is given: 2x2 max-pool
# and 32 filters (its MiniImageNet net) for RGB images of this side or more, else stride 2 and
# 64 filters (its Omniglot net).
LARGE_RGB_SIDE = 64


def paper_network(side: int, channels: int) -> Tuple[bool, int]:
    """(max_pool, num_filters) of the paper's network for images of `side` px and `channels`."""
    return (True, 32) if channels == 3 and side >= LARGE_RGB_SIDE else (False, 64)


def network_for(config) -> Tuple[bool, int]:
    """The paper's network for this folder's images, at the size and channels they are read."""
    return paper_network(*image_format(config, io.list_folder(
        config.data_dir, config.folder_split, config.min_class_images)))


class Loaded(NamedTuple):
    listing: io.Listing
    images: np.ndarray


def load(config) -> Loaded:
    """The listing and the decoded images of `config.data_dir` (cached in config.cache_dir)."""
    listing = io.list_folder(config.data_dir, config.folder_split, config.min_class_images)
    size, channels = image_format(config, listing)
    return Loaded(listing, folder_images.load_cached(listing, size, channels, config.cache_dir))


def make_sampler(config) -> ClassImagesSampler:
    check_config(config)
    listing, images = load(config)
    return ClassImagesSampler(images, [c.name for c in listing.classes],
                              [len(c.files) for c in listing.classes], listing.splits, config.ways)
