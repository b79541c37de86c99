"""Restore-or-init and periodic saving of the meta-parameters, the outer optimizer and the iteration,
and the best-validation model kept beside them."""

import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from maml_tf.errors import UserError
from maml_tf.workdir import ckpt_index
from maml_tf.workdir.rundir import warn


# The state, besides the weights, that the inner loop adapts with (see Checkpointer's best model).
ADAPTATION_STATE = ("inner_rates", "step_params", "inner_moments")


class OldLayout(UserError):
    """A whole checkpoint that this code would misread (an earlier layout): refused, no fallback."""


class Checkpointer:
    """Wraps tf.train.CheckpointManager over `state` (e.g. {"model", "optimizer"}) and the
    iteration in `workdir/checkpoints`; never saves non-finite weights; skips unreadable ones."""

    def __init__(self, workdir: str, state: Dict, keep: int = 3, restore_from: Optional[str] = None,
                 repair: bool = True):
        self.directory = os.path.join(workdir, "checkpoints")
        if repair:  # before the managers read the index: a damaged one would hide every checkpoint
            for directory in (self.directory, os.path.join(self.directory, "best")):
                ckpt_index.repair(directory)
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        self.checkpoint = tf.train.Checkpoint(**state, iteration=self.iteration)
        self.checked = [obj for obj in state.values() if hasattr(obj, "checkpoint_problem")]
        self.variables = [v for obj in state.values() for v in _variables(obj)]
        self.model_variables = _variables(state.get("model"))
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=keep)
        # The model chosen by meta-validation (the paper's model selection), without the outer
        # optimizer. What the inner loop starts each task from is part of the model, kept with it:
        # learned inner step sizes (Meta-SGD, LSLR), per-step batch-norm parameters (MAML++'s
        # BNWB) and Reptile's inner Adam moments, which it carries from task to task.
        learned = {k: state[k] for k in ADAPTATION_STATE if k in state}
        self.best_needs = sorted(learned)
        self.best_checkpoint = tf.train.Checkpoint(model=state["model"], iteration=self.iteration,
                                                   **learned)
        self.best = tf.train.CheckpointManager(self.best_checkpoint, os.path.join(self.directory, "best"),
                                               max_to_keep=1)
        # A non-chief worker saves into a scratch `workdir` but resumes from the chief's run.
        self.source = self.manager
        if restore_from not in (None, workdir):
            self.source = tf.train.CheckpointManager(
                self.checkpoint, os.path.join(restore_from, "checkpoints"), max_to_keep=keep)
        self.newest = None  # (iteration, largest |weight|) of the newest checkpoint known good

    def start(self, resume: bool) -> int:
        """The iteration a run continues from: the newest readable checkpoint's, or 0 when not
        `resume`, which a directory holding checkpoints refuses: the earlier run's would stay
        "the newest" for evaluation and the next resume, and its best model the best."""
        if resume:
            return self.restore_latest()
        held = _paths(self.source) + _paths(self.best)
        if held:
            newest = max(int(p.rsplit("-", 1)[1]) for p in held)
            raise UserError(f"--resume=False: {os.path.dirname(self.directory)} holds a run's "
                            f"checkpoints (up to iteration {newest}), which starting over would mix "
                            "with the new run's: move or delete that directory first, or give "
                            "another --logdir or --run_name")
        return 0

    def restore_latest(self) -> int:
        """Restores the newest readable checkpoint if there is one (an unreadable newer one is
        skipped with a warning); returns the iteration to continue from."""
        self._restore_newest(self.source, required=False)
        return int(self.iteration.numpy())

    def restore_iteration(self, iteration: Optional[int]) -> int:
        """Restores the checkpoint of `iteration` (None or -1: the newest readable); UserError if absent."""
        if iteration is None or iteration < 0:
            self._restore_newest(self.manager, required=True)
            return int(self.iteration.numpy())
        path = next((p for p in _paths(self.manager) if p.endswith(f"ckpt-{iteration}")), None)
        if not path:
            self._missing(f"iteration {iteration}")
        self._restore(path)
        return int(self.iteration.numpy())

    def best_iteration(self) -> Optional[int]:
        """The iteration of the kept best-validation model, or None."""
        paths = _paths(self.best)
        return int(paths[-1].rsplit("-", 1)[1]) if paths else None

    def restore_best(self) -> int:
        """Restores the best-validation model; UserError if the run has none."""
        paths = _paths(self.best)
        if not paths:
            raise UserError(f"no best-validation checkpoint in {self.best.directory}: the run has "
                            "not meta-validated since it kept one (see --val_interval)")
        lacking = [k for k in self.best_needs if not _holds(paths[-1], k)]
        if lacking:  # kept before the inner Adam moments were: it would adapt from zero moments
            raise UserError(f"the best-validation checkpoint {paths[-1]} lacks the {', '.join(lacking)} "
                            "this run adapts with (kept by an older maml_tf): evaluate the newest "
                            "model instead (--test_best=False)")
        self._restore(paths[-1], self.best_checkpoint)
        return int(self.iteration.numpy())

    def save_best(self, iteration: int) -> str:
        """Keeps the model of `iteration` as the best-validation one (replacing the previous)."""
        self.iteration.assign(iteration)
        return self.best.save(checkpoint_number=iteration)

    def _restore_newest(self, manager, required: bool):
        paths = list(reversed(_paths(manager)))
        for i, path in enumerate(paths):
            try:
                return self._restore(path)
            except OldLayout:
                raise
            except UserError as err:
                fallback = (f"falling back to {os.path.basename(paths[i + 1])}" if i + 1 < len(paths)
                            else "no older checkpoint left")
                warn(f"{err}; {fallback}")
        if paths:
            raise UserError(f"no readable checkpoint in {manager.directory}")
        if required:
            self._missing("any iteration")

    def _missing(self, wanted: str):
        have = ", ".join(p.rsplit("-", 1)[-1] for p in _paths(self.manager)) or "none"
        hint = ("train first (or is it another run directory?)" if have == "none" else
                "choose one of those (main: --test_iter; load and export: the iteration)")
        raise UserError(f"no checkpoint for {wanted} in {self.directory} (have: {have}); {hint}")

    def _restore(self, path: str, checkpoint=None):
        try:
            # Optimizer slots are created lazily by Keras, so an evaluation-only restore
            # legitimately leaves them unmatched. A truncated file fails in many ways (OpError,
            # ValueError, IndexError...): any of them means this checkpoint cannot be read.
            (checkpoint or self.checkpoint).restore(path).expect_partial()
        except Exception as err:  # noqa: BLE001
            raise UserError(f"cannot read checkpoint {path}: {err.__class__.__name__}") from err
        self._check_layout(path)
        if checkpoint is None:
            self.newest = (int(self.iteration.numpy()), self.largest_weight())

    def _check_layout(self, path: str):
        """OldLayout if a state object (its `checkpoint_problem(keys)`) cannot use this file."""
        if not self.checked:
            return
        keys = list(tf.train.load_checkpoint(path).get_variable_to_shape_map())
        for obj in self.checked:
            problem = obj.checkpoint_problem(keys)
            if problem:
                raise OldLayout(f"checkpoint {path}: {problem}")

    def largest_weight(self) -> float:
        return max((float(np.max(np.abs(v.numpy()))) for v in self.model_variables if v.shape.num_elements()),
                   default=0.0)

    def save(self, iteration: int) -> str:
        """Saves the state as ckpt-`iteration`; UserError (and nothing written) if any of it is NaN/inf."""
        bad = [v.name for v in self.variables if not np.all(np.isfinite(v.numpy()))]
        if bad:
            raise UserError(f"the weights became NaN/inf by iteration {iteration} ({', '.join(bad[:3])}"
                            f"{'...' if len(bad) > 3 else ''}); not saved; {self.describe_newest()}")
        self.iteration.assign(iteration)
        path = self.manager.save(checkpoint_number=iteration)
        self.newest = (iteration, self.largest_weight())
        return path

    def describe_newest(self) -> str:
        """Which checkpoint a diverged run can go back to, truthfully."""
        if self.newest is None:
            return f"there is no checkpoint in {self.directory} yet"
        iteration, largest = self.newest
        text = f"the newest checkpoint, iteration {iteration}, holds finite weights (largest |w| {largest:.3g})"
        return text + (", which may be diverged too" if largest > 1e6 else "")


def _holds(path: str, key: str) -> bool:
    """Whether the checkpoint at `path` holds the object `key`; an unreadable one says so on restore."""
    try:
        return any(name.startswith(key + "/") for name, _ in tf.train.list_variables(path))
    except Exception:  # noqa: BLE001
        return True


def _paths(manager) -> list:
    """The manager's checkpoints and any others on disk (an index that could not be rebuilt),
    oldest first."""
    paths = set(manager.checkpoints) | set(ckpt_index.on_disk(manager.directory))
    return sorted(paths, key=lambda p: int(p.rsplit("-", 1)[1]))


def _variables(obj) -> list:
    """The tf.Variables of a Keras model or optimizer (or anything with .variables)."""
    if obj is None:
        return []
    found = getattr(obj, "variables", [])
    return list(found() if callable(found) else found)
