"""Registry of task distributions: `get_sampler(config)` returns the dataset's TaskSampler."""

import importlib
import os
from typing import Iterable, NamedTuple, Optional, Protocol, Tuple

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
}


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
    module = importlib.import_module(DATASETS[config.dataset])
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


def example_bytes(config) -> int:
    """Bytes of one example in a sampled batch, from the dataset's shapes (no data read): its
    float32 input and its float32 target or int32 label."""
    if config.dataset == "sinusoid":
        return 4 * ((3 if config.oracle else 1) + 1)  # x (the oracle: x, A, phi) and y
    from maml_tf.datasets import miniimagenet_io, omniglot_data

    shape = (omniglot_data.SIZE,) * 2 if config.dataset == "omniglot" else miniimagenet_io.IMAGE_SHAPE
    return 4 * (int(np.prod(shape)) + 1)


def machine_memory() -> Optional[int]:
    """This machine's physical memory in bytes (None: unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX name on this system
        pass
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def batch_sizes(config) -> Iterable[Tuple[str, str, int]]:
    """(what, flag, examples) of the largest batches a run samples at once."""
    per_task = config.ways if config.dataset != "sinusoid" else 1  # sinusoid: K per task
    if config.metatrain_iterations:
        yield "meta-batch", "--meta_batch_size", config.meta_batch_size * per_task * (
            config.shots + config.queries)
    examples = max(config.shots + config.queries, config.eval_shots + config.eval_queries)
    yield ("evaluation batch", "--update_batch_size or --num_query",
           config.eval_batch_size * per_task * examples)
    if config.baseline == "pretrained":
        yield "pretraining batch", "--pretrain_batch_size", config.pretrain_batch_size


def check_task_memory(config, memory: Optional[int] = None):
    """UserError when one batch of tasks alone (a lower bound of what a step needs: the network's
    activations come on top) is larger than the machine's memory, before it is allocated."""
    memory = memory or machine_memory()
    if not memory:
        return
    size = example_bytes(config)
    for what, flag, examples in batch_sizes(config):
        if examples * size > memory:
            raise UserError(f"a {what} of {examples:,} examples needs at least "
                            f"{examples * size / 2**30:,.1f} GiB at {size:,} bytes each, more than "
                            f"this machine's {memory / 2**30:.1f} GiB of memory: lower {flag}")


def get_sampler(config) -> TaskSampler:
    """The TaskSampler for `config.dataset`; raises UserError for an unknown name."""
    if config.dataset not in DATASETS:
        raise UserError(f"unknown datasource {config.dataset!r}: choose one of "
                        f"{', '.join(sorted(DATASETS))}")
    return importlib.import_module(DATASETS[config.dataset]).make_sampler(config)
