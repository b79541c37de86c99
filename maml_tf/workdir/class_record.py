"""The class names of each split a run was trained on, and the shape its images were read at (classes.json), so that a data folder whose classes changed, and would now split differently, or whose images now read at another size, is never resumed or evaluated as if it were the same."""

import json
import os
from typing import Dict, Optional

from maml_tf.errors import UserError
from maml_tf.workdir import ckpt_index
from maml_tf.workdir.rundir import read_json, write_atomic

CLASSES_FILE = "classes.json"
Classes = Dict[str, list]  # split -> its class names; SHAPE -> [height, width, channels]
SHAPE = "input_shape"  # a record written before it has none: not checked


def record(workdir: str, classes: Optional[Classes]):
    """Writes `classes` (None: a data set whose classes are fixed, nothing to keep)."""
    if classes is not None:
        write_atomic(os.path.join(workdir, CLASSES_FILE), json.dumps(classes, indent=1))


def check_before_restore(workdir: str, classes: Optional[Classes]):
    """The record checked if `workdir` holds checkpoints: images of another shape would not fit
    them, and the restore's own error would blame the checkpoints."""
    if ckpt_index.on_disk(os.path.join(workdir, "checkpoints")):
        check(workdir, classes)


def check(workdir: str, classes: Optional[Classes], action: str = "resume"):
    """UserError if the run recorded other classes than `classes`, or another image shape (a
    run from before this record, or with none, is not checked)."""
    saved = read_json(os.path.join(workdir, CLASSES_FILE))
    if classes is None or not _valid(saved):
        return  # a damaged record cannot be checked: training writes it again
    new_run = "train a new run (another --logdir or --run_name)"
    if saved.get(SHAPE, classes.get(SHAPE)) != classes.get(SHAPE):
        size = lambda s: "x".join(map(str, s))  # noqa: E731
        raise UserError(f"{workdir} was trained on images read at {size(saved[SHAPE])}, the data "
                        f"now reads at {size(classes[SHAPE])} (--image_size/--channels 0 follow "
                        f"the images): put the data back as it was"
                        + (f", or {new_run} with --image_size and --channels given"
                           if action == "resume" else ""))
    then, now = _names(saved), _names(classes)
    if then != now:
        hint = new_run if action == "resume" else "evaluate it on the data it was trained on"
        raise UserError(f"{workdir} was trained on other classes than the data holds now "
                        f"({changes(then, now)}), so its splits would differ: put the data back "
                        f"as it was (its {CLASSES_FILE} lists each split's classes), or {hint}")


def _names(record: Classes) -> Classes:
    return {split: names for split, names in record.items() if split != SHAPE}


def _valid(saved) -> bool:
    return isinstance(saved, dict) and all(
        isinstance(names, list) and all(isinstance(n, int if split == SHAPE else str) for n in names)
        for split, names in saved.items())


def changes(then: Classes, now: Classes) -> str:
    """'added: a, b; removed: c; in another split: d' (at most 3 names each)."""
    split_then = {name: split for split, names in then.items() for name in names}
    split_now = {name: split for split, names in now.items() for name in names}
    found = {"added": sorted(set(split_now) - set(split_then)),
             "removed": sorted(set(split_then) - set(split_now)),
             "in another split": sorted(n for n in set(split_now) & set(split_then)
                                        if split_now[n] != split_then[n])}
    return "; ".join(f"{what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                     for what, names in found.items() if names) or "the same classes in another order"
