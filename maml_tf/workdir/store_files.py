"""What a stored run holds and how a copy of it is put in place whole: built aside, swapped in, recovered after a kill, never over another run."""

import contextlib
import os
import shutil
from typing import Optional

from maml_tf.workdir import ckpt_index
from maml_tf.workdir.class_record import CLASSES_FILE
from maml_tf.workdir.rundir import read_json

SMALL_FILES = ("config.json", "validation.jsonl", "runinfo.json", CLASSES_FILE, "pretrain.json")
PRETRAINED_BEST = "best"  # a pretraining's validation-chosen model: best/checkpoints, best/best.json
ARCHIVE = "archive"  # an RL run's milestone checkpoints, outside the rotation (--test_iter reads them)
EVAL_PREFIX = "eval_"  # evaluation results (JSON + CSV), small and what the reports read
MODEL_SUFFIX = ".keras"
COMPLETE = ".complete"  # in a copy built aside: written last, so a kill before it leaves no doubt


def kept_file(name: str, models: bool = True) -> bool:
    """Whether a run directory's top-level file `name` belongs to its state (not a lock, a
    TensorBoard log or a stray file); `models`: its .keras files too."""
    return name in SMALL_FILES or name.startswith(EVAL_PREFIX) or \
        (models and name.endswith(MODEL_SUFFIX))


def swap_in(tmp: str, dest: str):
    """Puts the finished copy `tmp` in `dest`'s place; a kill at any moment leaves `dest`, or
    what `recover` puts back as it."""
    with open(os.path.join(tmp, COMPLETE), "w"):
        pass
    old = dest + ".old"
    if os.path.exists(dest):
        shutil.rmtree(old, ignore_errors=True)  # dest is whole: an .old beside it is spent
        os.replace(dest, old)
    os.replace(tmp, dest)
    os.remove(os.path.join(dest, COMPLETE))
    shutil.rmtree(old, ignore_errors=True)


def recover(dest: str):
    """After a copy killed between its renames, `dest` again: the new copy if it was finished,
    else the previous one."""
    tmp, old = dest + ".tmp", dest + ".old"
    if not os.path.exists(dest):
        if os.path.exists(os.path.join(tmp, COMPLETE)):
            os.replace(tmp, dest)
        elif os.path.isdir(old):
            os.replace(old, dest)
    if os.path.isdir(dest):  # whole: what a kill left beside it is spent
        shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(dest, COMPLETE))


def first_segment(run: str) -> Optional[tuple]:
    """(when, from which iteration) the run in `run` first trained, from runinfo.json; None if
    it has no record. A run continued anywhere keeps it; another run of the name has its own."""
    info = read_json(os.path.join(run, "runinfo.json")) or {}
    segments = info.get("segments")
    if isinstance(segments, list) and segments and isinstance(segments[0], dict):
        return segments[0].get("started"), segments[0].get("start_iteration")
    return None


def newest_readable(directory: str) -> Optional[str]:
    """The newest checkpoint of `directory` whose every tensor reads back (TensorFlow checks
    each one's checksum), or None: a file cut short must not be kept over a good copy."""
    import tensorflow as tf  # only when a checkpoint is copied: the store's CLI starts fast

    for prefix in reversed(ckpt_index.on_disk(directory)):
        try:
            reader = tf.train.load_checkpoint(prefix)
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
            return prefix
        except Exception:  # noqa: BLE001 (its reader raises several kinds for a file cut short)
            continue
    return None
