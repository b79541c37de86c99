"""The checkpoints on disk and TensorFlow's `checkpoint` index file over them, rebuilt from the files when it is damaged.

TensorFlow trusts the index alone: garbage in it, a line cut in half or a deleted index makes
every checkpoint invisible, and a run then starts again from iteration 0 over its own history.
The `ckpt-N.index` files on disk are the truth; the index is only a list of them.
"""

import os
import re
from typing import List, Optional

from maml_tf.workdir.rundir import warn, write_atomic

INDEX = "checkpoint"
_FILE = re.compile(r"^(ckpt-(\d+))\.index$")
_STRING_KEYS = ("model_checkpoint_path", "all_model_checkpoint_paths")
_NUMBER_KEYS = ("all_model_checkpoint_timestamps", "last_preserved_timestamp")


def on_disk(directory: str) -> List[str]:
    """Prefixes (directory/ckpt-N) of the checkpoints whose .index file exists, oldest first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = sorted((int(m.group(2)), m.group(1)) for m in map(_FILE.match, names) if m)
    return [os.path.join(directory, name) for _, name in found]


def listed(directory: str) -> Optional[List[str]]:
    """Prefixes the index names (its newest last); None if the index is missing or unreadable."""
    try:
        with open(os.path.join(directory, INDEX), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    newest, paths = None, []
    for line in filter(str.strip, lines):
        key, sep, value = (part.strip() for part in line.partition(":"))
        if not sep:
            return None
        if key in _NUMBER_KEYS:
            try:
                float(value)
            except ValueError:
                return None
        elif key in _STRING_KEYS and len(value) > 2 and value[0] == value[-1] == '"':
            path = os.path.join(directory, os.path.basename(value[1:-1]))
            newest, paths = (path, paths) if key == _STRING_KEYS[0] else (newest, paths + [path])
        else:
            return None
    if newest is None:
        return None
    return [p for p in paths if p != newest] + [newest]


def newest(directory: str) -> Optional[str]:
    """The newest checkpoint on disk (an index left from before the newest was written must not
    hide it: training resumes from it), else the index's if its files exist."""
    found = on_disk(directory)
    if found:
        return found[-1]
    names = listed(directory)
    return names[-1] if names and os.path.isfile(names[-1] + ".index") else None


def repair(directory: str, write: bool = True) -> bool:
    """Rewrites the index from the checkpoint files on disk when it is unreadable or names
    other checkpoints than there are (with a warning); True if it did. `write` False: only
    the warning (a read-only run directory)."""
    found = on_disk(directory)
    names = listed(directory)
    if not found or names is not None and sorted(names) == sorted(found):
        return False
    state = "missing" if not os.path.exists(os.path.join(directory, INDEX)) else \
        "unreadable" if names is None else "out of date"
    action = "rebuilt it" if write else "reading them directly"
    warn(f"{os.path.join(directory, INDEX)} is {state}; {action} from the {len(found)} "
         f"checkpoints on disk ({', '.join(os.path.basename(p) for p in found)})")
    if not write:
        return False
    try:
        write_atomic(os.path.join(directory, INDEX), index_text(found))
    except OSError as err:  # a read-only run directory is still evaluated, from the files
        warn(f"cannot rewrite {os.path.join(directory, INDEX)} ({err.strerror}); reading the "
             "checkpoints directly")
        return False
    return True


def index_text(prefixes: List[str]) -> str:
    """TensorFlow's index text over `prefixes` (oldest first), stamped with their files' times
    (CheckpointManager lists only checkpoints stamped after its last preserved time)."""
    names = [os.path.basename(p) for p in prefixes]
    stamps = [os.path.getmtime(p + ".index") for p in prefixes]
    lines = [f'model_checkpoint_path: "{names[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{n}"' for n in names]
    lines += [f"all_model_checkpoint_timestamps: {s}" for s in stamps]
    lines.append(f"last_preserved_timestamp: {min(stamps) - 1}")
    return "\n".join(lines) + "\n"
