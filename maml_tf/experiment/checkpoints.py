"""Restore-or-init and periodic saving of the meta-parameters, the outer optimizer and the iteration,
and the best-validation model kept beside them."""

import os
from typing import Dict, Optional

import tensorflow as tf

from maml_tf.errors import UserError


class Checkpointer:
    """Wraps tf.train.CheckpointManager over `state` (e.g. {"model", "optimizer"}) and the
    iteration in `workdir/checkpoints`."""

    def __init__(self, workdir: str, state: Dict, keep: int = 3, restore_from: Optional[str] = None):
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        self.checkpoint = tf.train.Checkpoint(**state, iteration=self.iteration)
        self.directory = os.path.join(workdir, "checkpoints")
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=keep)
        # The model chosen by meta-validation (the paper's model selection): weights only.
        self.best_checkpoint = tf.train.Checkpoint(model=state["model"], iteration=self.iteration)
        self.best = tf.train.CheckpointManager(self.best_checkpoint, os.path.join(self.directory, "best"),
                                               max_to_keep=1)
        # A non-chief worker saves into a scratch `workdir` but resumes from the chief's run.
        self.source = self.manager
        if restore_from not in (None, workdir):
            self.source = tf.train.CheckpointManager(
                self.checkpoint, os.path.join(restore_from, "checkpoints"), max_to_keep=keep)

    def restore_latest(self) -> int:
        """Restores the newest checkpoint if there is one; returns the iteration to continue from."""
        if self.source.latest_checkpoint:
            self._restore(self.source.latest_checkpoint)
        return int(self.iteration.numpy())

    def restore_iteration(self, iteration: Optional[int]) -> int:
        """Restores the checkpoint of `iteration` (None or -1: the newest); UserError if absent."""
        if iteration is None or iteration < 0:
            path = self.manager.latest_checkpoint
        else:
            path = next((p for p in self.manager.checkpoints
                         if p.endswith(f"ckpt-{iteration}")), None)
        if not path:
            have = ", ".join(p.rsplit("-", 1)[-1] for p in self.manager.checkpoints) or "none"
            wanted = "any iteration" if iteration is None or iteration < 0 else f"iteration {iteration}"
            raise UserError(f"no checkpoint for {wanted} in {self.directory} (have: {have}); "
                            "train first or check --logdir/--test_iter")
        self._restore(path)
        return int(self.iteration.numpy())

    def best_iteration(self) -> Optional[int]:
        """The iteration of the kept best-validation model, or None."""
        path = self.best.latest_checkpoint
        return int(path.rsplit("-", 1)[1]) if path else None

    def restore_best(self) -> int:
        """Restores the best-validation model; UserError if the run has none."""
        if not self.best.latest_checkpoint:
            raise UserError(f"no best-validation checkpoint in {self.best.directory}: the run has "
                            "not meta-validated since it kept one (see --val_interval)")
        self._restore(self.best.latest_checkpoint, self.best_checkpoint)
        return int(self.iteration.numpy())

    def save_best(self, iteration: int) -> str:
        """Keeps the model of `iteration` as the best-validation one (replacing the previous)."""
        self.iteration.assign(iteration)
        return self.best.save(checkpoint_number=iteration)

    def _restore(self, path: str, checkpoint=None):
        try:
            # Optimizer slots are created lazily by Keras, so an evaluation-only restore
            # legitimately leaves them unmatched.
            (checkpoint or self.checkpoint).restore(path).expect_partial()
        except (tf.errors.OpError, ValueError) as err:
            raise UserError(f"cannot read checkpoint {path}: {err.__class__.__name__}") from err

    def save(self, iteration: int) -> str:
        self.iteration.assign(iteration)
        return self.manager.save(checkpoint_number=iteration)
