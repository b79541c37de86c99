"""The process training a run, held (SIGSTOP) while its state is copied and let go afterwards, even after the copying process was killed."""

import contextlib
import os
import signal
import time

from maml_tf.errors import UserError
from maml_tf.workdir import procstat
from maml_tf.workdir.runlock import live_holder
from maml_tf.workdir.rundir import read_json, warn, write_json
from maml_tf.workdir.store_files import kept_file

HELD_FILE = ".held"  # {"trainer": pid, "by": pid}: a hold whose holder may die before it lets go


def _last_write(workdir: str) -> float:
    """When any file that a save copies was last written (TensorBoard's and the lock's don't count)."""
    paths = [os.path.join(workdir, name) for name in os.listdir(workdir) if kept_file(name)]
    for root, _, files in os.walk(os.path.join(workdir, "checkpoints")):
        paths += [os.path.join(root, name) for name in files]
    newest = 0.0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: the holder is writing
            newest = max(newest, os.path.getmtime(path))
    return newest


def _stopped(pid: int, unknown: bool = True) -> bool:
    """Whether `pid` is stopped; `unknown` where /proc cannot tell (no /proc, or the process is gone)."""
    letter = procstat.state(pid)
    return letter in ("T", "t") if letter else unknown


def _signal(pid: int, signum: int) -> bool:
    """Sends `signum`; False if the process has ended meanwhile (a run that finished)."""
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


def release_abandoned(workdir: str):
    """Lets go a trainer that a killed save held: stopped, it would never train again."""
    path = os.path.join(workdir, HELD_FILE)
    record = read_json(path) if os.path.exists(path) else None
    if record is None:
        return
    by, trainer = record.get("by"), record.get("trainer")
    if isinstance(by, int) and procstat.state(by) and by != os.getpid():
        return  # its save is still at work
    if isinstance(trainer, int) and _stopped(trainer, unknown=False):
        _signal(trainer, signal.SIGCONT)
        warn(f"{workdir}: its training process {trainer} had been left stopped by a save that "
             "was killed; it goes on")
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


@contextlib.contextmanager
def held(workdir: str, quiet: float, tries: int = 10):
    """Holds the process training in `workdir` (SIGSTOP) at a moment when its state files have
    been quiet for `quiet` seconds, so that what is copied is one state; it goes on afterwards."""
    release_abandoned(workdir)
    pid = live_holder(workdir)
    if pid is None:
        yield
        return
    if _stopped(pid, unknown=False):  # held by someone else (pause wrapper, user): theirs to resume
        if time.time() - _last_write(workdir) < quiet:
            raise UserError(f"{workdir}: its training process {pid} was stopped by another process "
                            f"within {quiet:g} s of a write; not kept this time")
        yield
        return
    record = os.path.join(workdir, HELD_FILE)
    write_json(record, {"trainer": pid, "by": os.getpid()})
    try:
        _stop_quietly(workdir, pid, quiet, tries)
        yield
    finally:
        _signal(pid, signal.SIGCONT)
        with contextlib.suppress(FileNotFoundError):
            os.remove(record)


def _stop_quietly(workdir: str, pid: int, quiet: float, tries: int):
    """Stops `pid` at a moment its files have been quiet for `quiet` s (or it has ended)."""
    for _ in range(tries):
        if not _signal(pid, signal.SIGSTOP):
            return  # it finished: its files are final
        for _ in range(100):  # the stop lands asynchronously
            if _stopped(pid):
                break
            time.sleep(0.01)
        if time.time() - _last_write(workdir) >= quiet:
            return
        _signal(pid, signal.SIGCONT)  # caught writing: let it finish
        time.sleep(quiet)
    raise UserError(f"{workdir}: its training process {pid} never stopped writing for {quiet:g} s")
