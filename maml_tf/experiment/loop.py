"""The one training loop that every kind of run goes through (meta-training, supervised pretraining, RL).

A kind of run hands the loop its `Steps`: one iteration, what follows it (validation, model
selection) and its checkpoint. The loop owns what must hold for every kind alike: the run
directory's single writer (its lock), the identity check on resume, config.json written
atomically, SIGINT/SIGTERM finishing the iteration and saving, and the checkpoint cadence.
"""

import contextlib
import os
from typing import Callable, Dict, Optional, Protocol, Sequence

import tensorflow as tf

from maml_tf.errors import UserError
from maml_tf.experiment.progress import trim_events, trim_history
from maml_tf.workdir import identity, rundir, snapshot
from maml_tf.workdir.interrupts import Interrupts
from maml_tf.workdir.runlock import RunLock


def resume_point(ckpt, outdir: str, resume: bool, shown: str) -> int:
    """The iteration a run continues from (`Checkpointer.start`), said when it resumes, with the
    run's validation history and TensorBoard events cut back to it: the steps after it are redone
    and would otherwise be there twice."""
    start = ckpt.start(resume)
    if start:
        print(f"resuming {shown} from iteration {start}", flush=True)
    trim_history(os.path.join(outdir, "validation.jsonl"), start)
    trim_events(outdir, start)
    return start


class Steps(Protocol):
    """What a kind of run hands the loop."""

    def step(self, iteration: int) -> Dict[str, float]:
        """One training iteration; its metrics for the progress log."""

    def phase(self, iteration: int) -> str:
        """The progress line's tag ("metatrain", "pretrain")."""

    def after(self, iteration: int) -> bool:
        """Validation and model selection after the iteration; True to stop early (saved first)."""

    def save(self, iteration: int) -> str:
        """A checkpoint of `iteration` and the run's small files; returns where it went."""


@contextlib.contextmanager
def session(workdir: str, config, fields: Sequence[str], lock: bool = True,
            prepare: Optional[Callable[[], None]] = None):
    """The run directory held for training: writable, the same run, locked, with interrupts
    caught; yields the `Interrupts`. `prepare` runs under the lock before the identity is
    checked again and recorded (the run store's copy restored); `lock` False: a worker that
    writes elsewhere (multi_worker's non-chief)."""
    now = identity.as_dict(config)
    identity.check_before_start(workdir, now, fields)
    with Interrupts() as stop:
        os.makedirs(workdir, exist_ok=True)
        with RunLock(workdir) if lock else contextlib.nullcontext() as held:
            if held is not None:
                stop.on_abort.append(lambda: held.__exit__(None, None, None))
            try:
                if lock:  # the only writer now: a temporary file here is a killed one's
                    for folder in (workdir, os.path.join(workdir, "checkpoints")):
                        rundir.remove_leftovers(folder)
                if prepare is not None:
                    prepare()
                identity.check(workdir, now, fields, write=config.to_json())
            except OSError as err:  # a full disk or a read-only directory at the start
                raise UserError(f"cannot write the run in {workdir}: {err.strerror}") from None
            yield stop


def restore_stored(config, workdir: str, fields: Sequence[str]):
    """A run directory without a checkpoint starts from its copy in the run store, if any and if
    that copy holds this run (`session`'s `prepare` for meta-training and pretraining)."""
    stored = snapshot.restore(config.run_store, workdir, identity.as_dict(config), fields)
    if stored:
        print(f"continuing {workdir} from its stored state in {stored}", flush=True)


def run(steps: Steps, start: int, total: int, checkpoint_interval: int, print_interval: int,
        log, stop: Interrupts, where: Optional[str] = None) -> int:
    """Iterations start+1..total (or an early stop); returns the last one done. A signal
    finishes the iteration, saves and raises `Interrupted` saying what was kept."""
    iteration, stop.saved = start, start or None
    for iteration in range(start + 1, total + 1):
        if stop.signum:  # arrived before the first iteration: nothing new to save
            raise stop.stop(f"stopped before iteration {iteration}, nothing new to save; "
                            "run the same command to resume")
        log.add(iteration, steps.step(iteration))
        if iteration % print_interval == 0:
            log.flush(iteration, steps.phase(iteration))
        with _writing(iteration, where, stop, errors=(OSError,)):  # its TF errors are its own
            early = steps.after(iteration)
        if iteration % checkpoint_interval == 0 or iteration == total or stop.signum or early:
            with _writing(iteration, where, stop):
                saved = steps.save(iteration)
            stop.saved = iteration
        if stop.signum:
            raise stop.stop(f"stopped after iteration {iteration}/{total}, saved in "
                            f"{where or saved}; run the same command to resume")
        if early:
            break
    return iteration


@contextlib.contextmanager
def _writing(iteration: int, where: Optional[str], stop: Interrupts,
             errors: tuple = (OSError, tf.errors.OpError)):
    """A disk that fills or a run directory that becomes unwritable: one line saying so and
    what is kept (a checkpoint is written to a temporary name first: the last good one stays)."""
    try:
        yield
    except errors as err:
        reason = getattr(err, "strerror", None) or str(getattr(err, "message", err)).splitlines()[0]
        kept = (f"the newest checkpoint, iteration {stop.saved}, is intact" if stop.saved
                else "no checkpoint was written yet")
        raise UserError(f"cannot write the run at iteration {iteration} in {where}: {reason}; "
                        f"{kept}; free space or fix the directory, then run the same command "
                        "to resume") from None
