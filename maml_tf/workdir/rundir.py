"""The run directory's small files: atomic writes (temporary file + rename), tolerant reads, a writability check, and whether an evaluation file may be replaced."""

import json
import os
import re
import sys
import tempfile
from typing import Dict, List, Optional

from maml_tf.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp's files are private (0600), run files should not be


_SAID = set()


def warn(message: str, once: bool = False):
    """`warning: message` on stderr; `once`: not again in this process (a run directory is
    looked at by several checks of one command: main's, the loop's, under the lock)."""
    if once and message in _SAID:
        return
    _SAID.add(message)
    print(f"warning: {message}", file=sys.stderr, flush=True)


def write_atomic(path: str, text: str):
    """Writes `text` to `path` through a temporary file and a rename: a reader (or a run killed
    mid-write) sees the old content or the new one, never a torn file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, obj, **kwargs):
    write_atomic(path, json.dumps(obj, **kwargs))


def read_json(path: str, then: str = "ignored") -> Optional[dict]:
    """The JSON object in `path`; None if it is missing, or, with a warning ending in `then`
    (what the caller does about it), if it is empty or damaged."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError) as err:
        warn(f"{path} is unreadable ({err.__class__.__name__}); {then}", once=True)
        return None
    if not isinstance(value, dict):  # every file read here holds an object: a hand edit, a stray
        warn(f"{path} holds no JSON object; {then}", once=True)
        return None
    return value


def read_jsonl(path: str) -> List[dict]:
    """The rows of a .jsonl file; a torn last line (a write cut short) is dropped with a warning."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if number < len(lines):
                raise UserError(f"{path} line {number} is not JSON: the file is damaged "
                                "beyond a torn last line; move it away to continue") from None
            warn(f"dropped the torn last line of {path}")
    return rows


def write_jsonl(path: str, rows: List[dict]):
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def check_writable(directory: str, flag: str = "--logdir"):
    """UserError unless `directory` exists as a writable directory or could be created."""
    path = os.path.abspath(directory)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise UserError(f"{flag} {directory}: {path} is not a directory")
    try:  # a real write: permission bits do not bind root, a read-only filesystem does
        fd, probe = tempfile.mkstemp(prefix=".maml_tf_write_check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"{flag} {directory}: cannot write in {path} ({err.strerror})") from None


def append_jsonl(path: str, row: dict):
    """Adds a row by rewriting the whole (small) file atomically: a kill never leaves half a row."""
    write_jsonl(path, read_jsonl(path) + [row])


# `write_atomic`'s temporary files (mkstemp: "." + the file's name + "." + 8 random characters).
_TEMPORARY = re.compile(r"^\.[^/]+\.[A-Za-z0-9_]{8}$")


def remove_leftovers(directory: str) -> int:
    """Removes the temporary files of atomic writes that a killed process left in `directory`
    (call it holding the run's lock: no live writer's file is then removed); returns how many."""
    try:
        names = [n for n in os.listdir(directory) if _TEMPORARY.match(n)]
    except OSError:
        return 0
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    return len(names)


def check_replacing(stem: str, settings: Dict,
                    elsewhere: str = "evaluate into another folder with --eval_dir=DIR, or") -> str:
    """UserError if `stem`.json holds another evaluation (other queries, inner batches, or
    another run's, in a shared --eval_dir); else what it held, if anything ("" if nothing).
    `elsewhere` begins the way out the refusal names, before "move that file away"."""
    old = read_json(stem + ".json")
    if old is None:
        return ""  # none, or unreadable (said once): nothing of value to keep
    changed = [f"{k} {old[k]} -> {v}" for k, v in settings.items() if k in old and old[k] != v]
    if changed:
        raise UserError(f"{stem}.json holds another evaluation ({', '.join(changed)}): "
                        f"{elsewhere + ' ' if elsewhere else ''}move that file away")
    return f"it held {old.get('num_tasks')} tasks, steps {old.get('steps')}"
