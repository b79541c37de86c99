"""A run's portable state: its newest checkpoint (and best-validation model) with its small files,
kept in the project so the run continues, or is evaluated, on another machine.

    python -m maml_tf.workdir.snapshot save --store results/runs RUN_DIR [RUN_DIR ...]

A run that is training meanwhile is held (SIGSTOP) while it is copied, at a moment when its state
files are quiet, and goes on afterwards; one stopped already (the pause wrapper, a user) stays
stopped. A stored run lives at `<store>/<logdir name>/<run name>/`, mirroring `<logdir>/<run name>/`.
Training and evaluation (`Config.run_store`) copy it into a run directory that has no checkpoint.
"""

import os
import shutil
import signal
import sys
from typing import List, Optional, Sequence

from maml_tf.errors import OneLineParser, UserError
from maml_tf.workdir import ckpt_index, identity
from maml_tf.workdir.hold import held
from maml_tf.workdir.rundir import read_json, read_jsonl
from maml_tf.workdir.selection import ModelSelection
from maml_tf.workdir.store_files import (ARCHIVE, COMPLETE, EVAL_PREFIX, PRETRAINED_BEST, SMALL_FILES,
                                         first_segment, kept_file, newest_readable, recover,
                                         swap_in)

__all__ = ["SMALL_FILES", "EVAL_PREFIX", "save", "restore", "save_evaluations", "store_dir"]
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
    """Copies the newest readable checkpoint of `src_dir` (its files and a one-entry index) to
    `dst_dir`; UserError if it has checkpoints and none reads back."""
    if newest_checkpoint(src_dir) is None:
        return None
    prefix = newest_readable(src_dir)
    if prefix is None:
        raise UserError(f"no checkpoint in {src_dir} reads back whole (files cut short or "
                        "damaged): nothing of it kept")
    files = [f for f in os.listdir(src_dir) if f.startswith(os.path.basename(prefix) + ".")]
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


def save(workdir: str, store: str, quiet: float = QUIET_SECONDS) -> str:
    """Replaces `store`'s copy of the run with its current state; returns the copy's path."""
    ckpt_dir, dest = os.path.join(workdir, "checkpoints"), store_dir(store, workdir)
    recover(dest)
    if newest_checkpoint(ckpt_dir) is None:
        raise UserError(f"{workdir} has no checkpoint to keep")
    if read_json(os.path.join(workdir, "config.json")) is None:
        raise UserError(f"{workdir} has no readable config.json, so it is no whole run: not kept")
    ours, theirs = first_segment(workdir), first_segment(dest)
    if ours and theirs and ours != theirs:  # the same name, trained from another start
        raise UserError(f"{dest} holds another run of the name {os.path.basename(workdir)} (first "
                        f"trained {theirs[0]}, this one {ours[0]}): not replaced; move one away")
    _refuse_older(_iteration(ckpt_dir), dest, workdir)
    with held(workdir, quiet):
        return _save(workdir, ckpt_dir, dest)


def _refuse_older(live: int, dest: str, workdir: str):
    """UserError if the store holds a later checkpoint of the run than `live` (a stale machine's
    directory must not undo a newer machine's saved state)."""
    kept = _iteration(os.path.join(dest, "checkpoints"))
    if kept > live:
        raise UserError(f"{dest} holds a newer state of {os.path.basename(workdir)} (checkpoint "
                        f"{kept}, this directory's {live}): not replaced; remove this directory "
                        "to continue from the stored state, or move the stored one away")


def _iteration(ckpt_dir: str) -> int:
    """The iteration of the newest checkpoint in `ckpt_dir` (ckpt-<iteration>), -1 if none."""
    return _number(newest_checkpoint(ckpt_dir))


def _number(prefix: Optional[str]) -> int:
    tail = prefix.rsplit("-", 1)[1] if prefix else ""
    return int(tail) if tail.isdigit() else -1


def _save(workdir: str, ckpt_dir: str, dest: str) -> str:
    """Copies the run's state to `dest` through a temporary folder swapped in whole."""
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    # A finished run's .keras files are its shipped models; before that the checkpoint holds
    # the same weights, and the repository grows by less per stop without them.
    finished = _finished(workdir)
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if kept_file(name, models=finished) and os.path.isfile(path):
            shutil.copy2(path, os.path.join(tmp, name))
    copied = _copy_checkpoint(ckpt_dir, os.path.join(tmp, "checkpoints"))
    try:
        if copied is None:  # emptied meanwhile (a restore under way): keep what the store has
            raise UserError(f"{workdir} has no checkpoint to keep")
        _refuse_older(_number(copied), dest, workdir)
    except UserError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _copy_checkpoint(os.path.join(ckpt_dir, "best"), os.path.join(tmp, "checkpoints", "best"))
    best = os.path.join(workdir, PRETRAINED_BEST)
    if _copy_checkpoint(os.path.join(best, "checkpoints"), os.path.join(tmp, PRETRAINED_BEST, "checkpoints")):
        shutil.copy2(os.path.join(best, "best.json"), os.path.join(tmp, PRETRAINED_BEST, "best.json"))
    if os.path.isdir(os.path.join(workdir, ARCHIVE)):
        shutil.copytree(os.path.join(workdir, ARCHIVE), os.path.join(tmp, ARCHIVE))
    swap_in(tmp, dest)  # a save killed before this leaves the previous copy as it was
    return dest


def restore(store: Optional[str], workdir: str, settings: Optional[dict] = None,
            fields: Sequence[str] = (), action: str = "resume") -> Optional[str]:
    """Copies the stored run into `workdir` if the store has it and `workdir` has no checkpoint;
    returns the stored copy's path if it did. The copy's identity is checked first against
    `settings` in `fields` (identity.check): a refused start leaves nothing copied behind. A
    `workdir` older than the stored copy is refused (a stale machine's)."""
    if not store:
        return None
    src = store_dir(store, workdir)
    recover(src)
    if newest_checkpoint(os.path.join(src, "checkpoints")) is None:
        return None
    here, stored = (_iteration(os.path.join(d, "checkpoints")) for d in (workdir, src))
    if here >= 0:
        if stored > here:
            raise UserError(f"the run store holds a newer state of this run ({src}, checkpoint "
                            f"{stored}) than {workdir} "
                            f"(checkpoint {here}): move this directory away to continue from "
                            "the stored state, or move the stored copy away to go on from this one")
        return None
    if settings is not None:
        identity.check(src, settings, fields, action)
    _copy_into(src, workdir)
    return src


def _copy_into(src: str, workdir: str):
    """The stored state (its files only: no lock or stray file) into `workdir`, staged beside
    it first and its checkpoints moved in last: a copy killed midway has no checkpoint, so
    the next start copies it again."""
    staging = os.path.join(workdir, ".restoring")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    names = [n for n in os.listdir(src) if kept_file(n) and os.path.isfile(os.path.join(src, n))]
    for name in names:
        shutil.copy2(os.path.join(src, name), os.path.join(staging, name))
    folders = [d for d in (PRETRAINED_BEST, ARCHIVE, "checkpoints") if os.path.isdir(os.path.join(src, d))]
    for folder in folders:
        shutil.copytree(os.path.join(src, folder), os.path.join(staging, folder),
                        ignore=shutil.ignore_patterns(COMPLETE))
    for name in names + folders:  # "checkpoints" last
        target = os.path.join(workdir, name)
        if os.path.isdir(target):
            shutil.rmtree(target)  # holds no checkpoint (checked): its config.json copy at most
        os.replace(os.path.join(staging, name), target)
    shutil.rmtree(staging, ignore_errors=True)


def save_evaluations(workdir: str, store: str) -> str:
    """Keeps the evaluation files of a directory that has no checkpoints (a from-scratch
    baseline's: random weights, only its results) beside any the store holds already."""
    dest = store_dir(store, workdir)
    os.makedirs(dest, exist_ok=True)
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if kept_file(name, models=False) and os.path.isfile(path):
            shutil.copy2(path, os.path.join(dest, name + ".tmp"))  # a copy cut short is no result
            os.replace(os.path.join(dest, name + ".tmp"), os.path.join(dest, name))
    return dest


def _evaluations_only(run: str) -> bool:
    return not os.path.exists(os.path.join(run, "checkpoints")) and \
        any(name.startswith(EVAL_PREFIX) for name in os.listdir(run))


def main(argv: List[str]) -> int:
    from maml_tf import quiet  # noqa: F401  (before TensorFlow loads, to read checkpoints back)

    parser = OneLineParser(description=__doc__.split("\n\n")[0])
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
