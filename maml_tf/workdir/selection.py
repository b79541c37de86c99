"""Model selection by meta-validation, as the paper's author chose checkpoints: the best score so far and the patience rule."""

import math
from numbers import Real
from typing import Dict, List, Optional

from maml_tf.errors import UserError


def score(row: Dict) -> float:
    """What a validation row is judged by: accuracy after the last inner step (classification),
    else minus the loss there; higher is better."""
    return row["accuracy"][-1] if "accuracy" in row else -row["loss"][-1]


class ModelSelection:
    """The best meta-validation score of a run and where it was reached, across resumes."""

    def __init__(self, rows: List[Dict], patience: int = 0):
        self.patience = patience
        self.best_iteration: Optional[int] = None
        self.best_score = -math.inf
        for row in rows:
            if not _scored(row):  # a damaged validation.jsonl, read back
                raise UserError(f"validation.jsonl's row of iteration {row.get('iteration')} has no "
                                "score (a non-empty \"accuracy\" or \"loss\" list): the file is "
                                "damaged; move it away to continue")
            self.offer(row)

    def offer(self, row: Dict) -> bool:
        """Takes a new validation row; True if it beats every earlier one."""
        value = score(row)
        if not value > self.best_score:  # ties and NaN do not count as progress
            return False
        self.best_iteration, self.best_score = row["iteration"], value
        return True

    def exhausted(self, iteration: int) -> bool:
        """True once `patience` iterations have passed since the best validation score."""
        return bool(self.patience) and self.best_iteration is not None \
            and iteration - self.best_iteration >= self.patience


def _scored(row: Dict) -> bool:
    scores = row.get("accuracy", row.get("loss"))
    return isinstance(scores, list) and bool(scores) and isinstance(scores[-1], Real)
