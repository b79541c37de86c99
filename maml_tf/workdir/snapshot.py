"""A run's portable state: its newest checkpoint (and best-validation model) with its small files,
kept in the project so the run continues, or is evaluated, on another machine.

    python -m maml_tf.workdir.snapshot save --store results/runs RUN_DIR [RUN_DIR ...]

A run that is training meanwhile is held (SIGSTOP) while it is copied, at a moment when its state
files are quiet, and goes on afterwards; one stopped already (the pause wrapper, a user) stays
stopped. A stored run lives at `<store>/<logdir name>/<run name>/`, mirroring `<logdir>/<run name>/`.
Training and evaluation (`Config.run_store`) copy it into a run directory that has no checkpoint.
"""

import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
from typing import List, Optional, Sequence

from maml_tf.errors import UserError
from maml_tf.workdir import ckpt_index, identity, procstat
from maml_tf.workdir.class_record import CLASSES_FILE
from maml_tf.workdir.rundir import read_json, read_jsonl
from maml_tf.workdir.runlock import live_holder
from maml_tf.workdir.selection import ModelSelection

SMALL_FILES = ("config.json", "validation.jsonl", "runinfo.json", CLASSES_FILE, "pretrain.json")
PRETRAINED_BEST = "best"  # a pretraining's validation-chosen model: best/checkpoints, best/best.json
EVAL_PREFIX = "eval_"  # evaluation results (JSON + CSV), small and what the reports read
MODEL_SUFFIX = ".keras"
QUIET_SECONDS = 30.0  # a checkpoint is written in well under this: files untouched this long are whole


def store_dir(store: str, workdir: str) -> str:
    """Where `workdir` (…/<logdir name>/<run name>) is kept inside `store`."""
    workdir = os.path.normpath(os.path.abspath(workdir))
    return os.path.join(store, os.path.basename(os.path.dirname(workdir)), os.path.basename(workdir))


def newest_checkpoint(directory: str) -> Optional[str]:
    """The newest checkpoint prefix in `directory` (by TensorFlow's index, else by the files:
    a damaged index must not make a run look empty, or a restore would copy over it), or None."""
    return ckpt_index.newest(directory)


def _copy_checkpoint(src_dir: str, dst_dir: str) -> Optional[str]:
    """Copies the newest checkpoint of `src_dir` (its files and a one-entry index) to `dst_dir`."""
    prefix = newest_checkpoint(src_dir)
    if prefix is None:
        return None
    files = [f for f in os.listdir(src_dir) if f.startswith(os.path.basename(prefix) + ".")]
    if not any(f.endswith(".index") for f in files):
        raise UserError(f"{prefix}: the checkpoint named by {src_dir}/checkpoint has no files")
    os.makedirs(dst_dir, exist_ok=True)
    for name in files:
        shutil.copy2(os.path.join(src_dir, name), os.path.join(dst_dir, name))
    name = os.path.basename(prefix)
    # CheckpointManager lists only checkpoints stamped after its last preserved time.
    stamp = os.path.getmtime(os.path.join(src_dir, name + ".index"))
    with open(os.path.join(dst_dir, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n'
                f"all_model_checkpoint_timestamps: {stamp}\nlast_preserved_timestamp: {stamp - 1}\n")
    return name


def _finished(workdir: str) -> bool:
    """True once the run reached its iteration target (runinfo.json against config.json) or
    stopped early by the patience rule (its validation.jsonl): training would not go on."""
    config = read_json(os.path.join(workdir, "config.json")) or {}
    done = (read_json(os.path.join(workdir, "runinfo.json")) or {}).get("iterations", 0)
    if not config:
        return False
    if done >= config.get("pretrain_iterations", 0) + config.get("metatrain_iterations", 0):
        return True
    history = read_jsonl(os.path.join(workdir, "validation.jsonl"))
    return ModelSelection(history, config.get("patience", 0)).exhausted(done)


def _last_write(workdir: str) -> float:
    """When any file that a save copies was last written (TensorBoard's and the lock's don't count)."""
    paths = [os.path.join(workdir, name) for name in os.listdir(workdir)
             if name in SMALL_FILES or name.startswith(EVAL_PREFIX) or name.endswith(MODEL_SUFFIX)]
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


@contextlib.contextmanager
def _held(workdir: str, quiet: float, tries: int = 10):
    """Holds the process training in `workdir` (SIGSTOP) at a moment when its state files have
    been quiet for `quiet` seconds, so that what is copied is one state; it goes on afterwards."""
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
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        for _ in range(100):  # the stop lands asynchronously
            if _stopped(pid):
                break
            time.sleep(0.01)
        if time.time() - _last_write(workdir) >= quiet:
            break
        os.kill(pid, signal.SIGCONT)  # caught writing: let it finish
        time.sleep(quiet)
    else:
        raise UserError(f"{workdir}: its training process {pid} never stopped writing for {quiet:g} s")
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def save(workdir: str, store: str, quiet: float = QUIET_SECONDS) -> str:
    """Replaces `store`'s copy of the run with its current state; returns the copy's path."""
    ckpt_dir = os.path.join(workdir, "checkpoints")
    if newest_checkpoint(ckpt_dir) is None:
        raise UserError(f"{workdir} has no checkpoint to keep")
    dest = store_dir(store, workdir)
    live, kept = _iteration(ckpt_dir), _iteration(os.path.join(dest, "checkpoints"))
    if kept > live:  # a stale machine's directory must not undo a newer machine's saved state
        raise UserError(f"{dest} holds a newer state of {os.path.basename(workdir)} (checkpoint "
                        f"{kept}, this directory's {live}): not replaced; remove this directory "
                        "to continue from the stored state, or move the stored one away")
    with _held(workdir, quiet):
        return _save(workdir, ckpt_dir, dest)


def _iteration(ckpt_dir: str) -> int:
    """The iteration of the newest checkpoint in `ckpt_dir` (ckpt-<iteration>), -1 if none."""
    newest = newest_checkpoint(ckpt_dir)
    return int(newest.rsplit("-", 1)[1]) if newest and newest.rsplit("-", 1)[1].isdigit() else -1


def _save(workdir: str, ckpt_dir: str, dest: str) -> str:
    """Copies the run's state to `dest` through a temporary folder swapped in whole."""
    tmp, old = dest + ".tmp", dest + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    finished = _finished(workdir)
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        # A finished run's .keras files are its shipped models; before that the checkpoint holds
        # the same weights, and the repository grows by less per stop without them.
        keep = name in SMALL_FILES or name.startswith(EVAL_PREFIX) or \
            (finished and name.endswith(MODEL_SUFFIX))
        if keep and os.path.isfile(path):
            shutil.copy2(path, os.path.join(tmp, name))
    _copy_checkpoint(ckpt_dir, os.path.join(tmp, "checkpoints"))
    _copy_checkpoint(os.path.join(ckpt_dir, "best"), os.path.join(tmp, "checkpoints", "best"))
    best = os.path.join(workdir, PRETRAINED_BEST)
    if _copy_checkpoint(os.path.join(best, "checkpoints"), os.path.join(tmp, PRETRAINED_BEST, "checkpoints")):
        shutil.copy2(os.path.join(best, "best.json"), os.path.join(tmp, PRETRAINED_BEST, "best.json"))
    # An interrupted save leaves the previous copy intact.
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(dest):
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def restore(store: Optional[str], workdir: str, settings: Optional[dict] = None,
            fields: Sequence[str] = (), action: str = "resume") -> Optional[str]:
    """Copies the stored run into `workdir` if the store has it and `workdir` has no checkpoint;
    returns the stored copy's path if it did. The copy's identity is checked first against
    `settings` in `fields` (identity.check): a refused start leaves nothing copied behind."""
    if not store:
        return None
    src = store_dir(store, workdir)
    if newest_checkpoint(os.path.join(src, "checkpoints")) is None:
        return None
    if newest_checkpoint(os.path.join(workdir, "checkpoints")) is not None:
        return None
    if settings is not None:
        identity.check(src, settings, fields, action)
    shutil.copytree(src, workdir, dirs_exist_ok=True)
    return src


def save_evaluations(workdir: str, store: str) -> str:
    """Keeps the evaluation files of a directory that has no checkpoints (a from-scratch
    baseline's: random weights, only its results) beside any the store holds already."""
    dest = store_dir(store, workdir)
    os.makedirs(dest, exist_ok=True)
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if (name in SMALL_FILES or name.startswith(EVAL_PREFIX)) and os.path.isfile(path):
            shutil.copy2(path, os.path.join(dest, name + ".tmp"))  # a copy cut short is no result
            os.replace(os.path.join(dest, name + ".tmp"), os.path.join(dest, name))
    return dest


def _evaluations_only(run: str) -> bool:
    return not os.path.exists(os.path.join(run, "checkpoints")) and \
        any(name.startswith(EVAL_PREFIX) for name in os.listdir(run))


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    keep = sub.add_parser("save", help="keep the runs' newest checkpoints and small files in the store")
    keep.add_argument("--store", required=True, help="e.g. results/runs")
    keep.add_argument("runs", nargs="+", help="run directories")
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a run held when this is stopped must go on
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
    failed = 0
    for run in args.runs:  # one run that cannot be kept leaves the others kept
        try:
            if not os.path.isdir(run):
                raise UserError(f"{run} is not a run directory (it does not exist)")
            if _evaluations_only(run):
                print(f"kept {run}'s evaluations in {save_evaluations(run, args.store)}")
                continue
            if newest_checkpoint(os.path.join(run, "checkpoints")) is None:
                print(f"skipped {run}: no checkpoint yet")  # a run that has just started
                continue
            print(f"kept {run} in {save(run, args.store)}")
        except (UserError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
