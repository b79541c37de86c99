"""Registry of task distributions: `get_sampler(config)` returns the dataset's TaskSampler."""

import importlib
import sys
from typing import Dict, Iterable, List, NamedTuple, Optional, Protocol, Tuple

import numpy as np

from maml_tf.errors import UserError
from maml_tf.types import Task

# Where the data directory comes from (maml_tf.main), for the errors that find no data in it.
DATA_DIR_SOURCES = "the data directory is --data_dir, else $MAML_TF_DATA_DIR, else ./data"

# name -> module defining `make_sampler(config) -> TaskSampler`; imported on first use so a
# run on one dataset never loads another's dependencies.
DATASETS = {
    "sinusoid": "maml_tf.datasets.sinusoid",
    "omniglot": "maml_tf.datasets.omniglot",
    "miniimagenet": "maml_tf.datasets.miniimagenet",
    "folder": "maml_tf.datasets.folder",  # a researcher's own ROOT/<class>/<image> (--data_dir)
}
TFDS_PREFIX = "tfds:"  # tfds:NAME, any image-classification dataset of tensorflow-datasets
TFDS_MODULE = "maml_tf.datasets.tfds_images"


def module_name(dataset: str) -> str:
    """The module of `dataset` (a DATASETS name or tfds:NAME); UserError for an unknown one."""
    if dataset.startswith(TFDS_PREFIX) and len(dataset) > len(TFDS_PREFIX):
        return TFDS_MODULE
    if dataset not in DATASETS:
        raise UserError(f"unknown datasource {dataset!r}: choose one of "
                        f"{', '.join(sorted(DATASETS))}, tfds:NAME (a tensorflow-datasets image "
                        "dataset) or 2dnavigation (RL)")
    return DATASETS[dataset]


def choose_network(config):
    """`config` with the paper's network for its images (a folder's, a TFDS dataset's: their
    size and channels choose, `datasets.folder.paper_network`), and one line saying which."""
    max_pool, filters = importlib.import_module(module_name(config.dataset)).network_for(config)
    print(f"{config.dataset}: the paper's {'MiniImageNet' if max_pool else 'Omniglot'} network "
          f"for these images ({'2x2 max-pool, ' if max_pool else 'stride 2, '}{filters} filters; "
          "--max_pool/--num_filters choose another)", file=sys.stderr, flush=True)
    return config.replace(max_pool=max_pool, num_filters=filters)


def own_images(dataset: str) -> bool:
    """A user's images (a folder, a TFDS dataset): the input shape is chosen from the images."""
    return dataset == "folder" or dataset.startswith(TFDS_PREFIX)


def class_names_by_split(config, sampler) -> Optional[Dict[str, list]]:
    """Each split's class names, and the shape the images are read at ("input_shape"), when they
    come from the user's images (a folder's classes or image sizes may change between two
    commands of one run); None for the paper's data, whose classes and images are fixed."""
    if not own_images(config.dataset):
        return None
    record = {split: list(sampler.split(split).classes) for split in ("train", "val", "test")}
    return {**record, "input_shape": list(sampler.input_shape)}


class TaskSampler(Protocol):
    """What every dataset provides to the training loop and the evaluation."""

    problem: str  # "classification" or "regression"
    input_shape: Tuple[int, ...]  # one example, without the batch axis
    output_dim: int  # classes (ways) or regression outputs

    def sample(self, split: str, meta_batch_size: int, shots: int, queries: int,
               rng: np.random.Generator) -> Task:
        """A batch of tasks as NumPy arrays with a leading [meta_batch_size] axis.

        `split` is "train", "val" or "test"; shots and queries count examples per class
        (per task for regression).
        """


class SplitSize(NamedTuple):
    """What one split offers a task, read from its listing (file names, not images)."""

    classes: int  # classes one task may draw from
    images: int  # images of the split in all
    fewest: int  # images of its smallest class
    note: str = ""  # what `classes` counts, when not the whole split (" in its largest alphabet")


def check_task_sizes(config, tasks: Iterable[Tuple[str, int, int]]):
    """UserError unless every (split, shots, queries) of `tasks` can give `config.ways` classes
    of shots + queries images each: one line naming the split and its counts.

    A dataset module tells a split's size by `split_size(config, split)` from its listing, so
    this runs before anything is decoded; None (or no such function) means it cannot know
    before loading, and its sampler checks then."""
    module = importlib.import_module(module_name(config.dataset))
    if not hasattr(module, "split_size"):  # sinusoid: tasks of any size
        return
    for split, shots, queries in tasks:
        size = module.split_size(config, split)
        if size is None:
            continue
        counts = f"{size.classes} classes{size.note} ({size.images:,} images)"
        if config.ways > size.classes:
            raise UserError(f"{config.dataset} {split} split has {counts}; {config.ways}-way tasks "
                            f"need {config.ways}")
        if shots + queries > size.fewest:
            raise UserError(f"{config.dataset} {split} split has {counts}, {size.fewest} in its "
                            f"smallest class; {shots}-shot tasks with {queries} queries need "
                            f"{shots + queries} per class")


def get_sampler(config) -> TaskSampler:
    """The TaskSampler for `config.dataset`; raises UserError for an unknown name."""
    return importlib.import_module(module_name(config.dataset)).make_sampler(config)
