"""A run's identity: the settings its run directory was made with, checked before the directory is resumed or evaluated.

The record is config.json, else (missing or damaged) its copy beside the checkpoints, else the
last training segment's settings in runinfo.json. A directory holding checkpoints with none of
them is refused: continuing or evaluating it with whatever flags were given could silently mix
two runs.
"""

import json
import os
from typing import Optional, Sequence

from maml_tf.errors import UserError
from maml_tf.workdir import ckpt_index, runlock
from maml_tf.workdir.rundir import check_writable, read_json, warn, write_atomic

CONFIG_FILE = "config.json"


class Fields(tuple):
    """Identity fields, with why (`why[field]`) one that a user may expect to be free is not,
    and the command line's name (`flags[field]`) of one named otherwise there."""

    def __new__(cls, names, why=None, flags=None):
        fields = super().__new__(cls, names)
        fields.why, fields.flags = dict(why or {}), dict(flags or {})
        return fields


def _valid(settings, fields: Sequence[str]) -> bool:
    return isinstance(settings, dict) and any(k in settings for k in fields)


def saved_settings(workdir: str, fields: Sequence[str]) -> Optional[dict]:
    """The settings the run in `workdir` was made with, or None if it has no readable record."""
    path = os.path.join(workdir, CONFIG_FILE)
    instead = "ignored: its copy in checkpoints/ or runinfo.json is read instead"
    saved = read_json(path, then=instead)
    if saved is not None and not _valid(saved, fields):
        warn(f"{path} holds no run settings (a JSON {type(saved).__name__}); {instead}", once=True)
    if _valid(saved, fields):
        return saved
    copy = read_json(os.path.join(workdir, "checkpoints", CONFIG_FILE))
    if _valid(copy, fields):
        return copy
    info = read_json(os.path.join(workdir, "runinfo.json"))
    segments = info.get("segments") if isinstance(info, dict) else None
    last = segments[-1].get("settings") if isinstance(segments, list) and segments and \
        isinstance(segments[-1], dict) else None
    return last if _valid(last, fields) else None


def check(workdir: str, now: dict, fields: Sequence[str], action: str = "resume",
          write: Optional[str] = None):
    """UserError if `workdir` holds a run whose settings differ from `now` in `fields`, or
    checkpoints with no record of their settings; then (`write`) records `write` as config.json
    and as its copy in checkpoints/."""
    saved = saved_settings(workdir, fields)
    if saved is None and ckpt_index.on_disk(os.path.join(workdir, "checkpoints")):
        raise UserError(f"{workdir} has checkpoints but no readable {CONFIG_FILE} or runinfo.json "
                        f"settings, so which run they hold is unknown: put its {CONFIG_FILE} back "
                        f"or use another --logdir or --run_name")
    why, flags = getattr(fields, "why", {}), getattr(fields, "flags", {})
    diff = [f"{k}{f' (--{flags[k]})' if k in flags else ''} {saved[k]!r} -> {now.get(k)!r}"
            + (f": {why[k]}" if k in why else "")
            for k in fields if saved and k in saved and saved[k] != now.get(k)]
    if diff and action == "resume" and not ckpt_index.on_disk(os.path.join(workdir, "checkpoints")):
        # e.g. a loss that became NaN before the first checkpoint: nothing of that run is kept
        warn(f"{workdir} holds no checkpoint of the settings it was started with "
             f"({', '.join(diff)}): starting it afresh with these", once=True)
        diff = []
    if diff:
        hint = ("use another --logdir or --run_name" if action == "resume"
                else "evaluate it with the settings it was trained with")
        raise UserError(f"{workdir} holds a run with other settings ({', '.join(diff)}); {hint}")
    if write is not None:
        write_atomic(os.path.join(workdir, CONFIG_FILE), write)
        os.makedirs(os.path.join(workdir, "checkpoints"), exist_ok=True)
        write_atomic(os.path.join(workdir, "checkpoints", CONFIG_FILE), write)


def check_before_start(workdir: str, now: dict, fields: Sequence[str]):
    """The quick refusals before a run starts in `workdir` (each looked at again once its lock
    is held): a directory that cannot be written, another run's settings, a live process on it."""
    check_writable(workdir)
    check(workdir, now, fields)
    runlock.check_free(workdir)


def as_dict(config) -> dict:
    """A config (any dataclass with `to_json`) as the dict its config.json holds."""
    return json.loads(config.to_json())
