"""Whether a run's batches of tasks fit in this machine's memory, from the datasets' shapes, before any is allocated."""

import os
from typing import Iterable, Optional, Tuple

import numpy as np

from maml_tf.datasets import miniimagenet_io, omniglot_data, own_images
from maml_tf.errors import UserError


def example_bytes(config) -> int:
    """Bytes of one example in a sampled batch, from the dataset's shapes (no data read): its
    float32 input and its float32 target or int32 label."""
    if config.dataset == "sinusoid":
        return 4 * ((3 if config.oracle else 1) + 1)  # x (the oracle: x, A, phi) and y
    if own_images(config.dataset):  # a folder's or TFDS's: auto size at most 84, channels 3
        side = config.image_size or 84
        shape = (side, side, config.channels or 3)
    elif config.dataset == "omniglot":
        shape = (omniglot_data.SIZE,) * 2
    else:
        shape = miniimagenet_io.IMAGE_SHAPE
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
        yield "meta-batch", "--meta_batch_size, --update_batch_size or --num_query", \
            config.meta_batch_size * per_task * (config.shots + config.queries)
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
