"""Learned inner step sizes: Meta-SGD's one per parameter, MAML++'s one per weight tensor and inner step (LSLR).

Either is a list of tensors beside the weights, meta-learned with them by the one outer optimizer
(the meta-gradient has an entry for each); only the inner-adapted weights have one.
"""

from typing import List, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf

# none: the fixed inner_lr; per_layer_step: MAML++'s LSLR; per_param: Meta-SGD.
GRANULARITIES = ("none", "per_layer_step", "per_param")


class LearnedRates(NamedTuple):
    """The step sizes of one inner loop, aligned with the weights."""
    values: List[Optional[tf.Tensor]]  # per weight: per_param shaped like it, per_layer_step
    #                                    [inner_steps]; None for a weight the inner loop keeps
    per_step: bool                     # True: per_layer_step (entry `step` for inner step `step`)

    def at(self, step: int) -> list:
        """Each weight's step size at inner step `step` (a Python int). LSLR has one rate per
        trained step; an evaluation taking more steps keeps the last trained step's rate."""
        if not self.per_step:
            return list(self.values)
        return [None if v is None else v[min(step, int(v.shape[0]) - 1)] for v in self.values]

    def learned(self) -> list:
        """The rate tensors themselves (the meta-gradient's extra entries), in weight order."""
        return [v for v in self.values if v is not None]

    def replace_learned(self, tensors: Sequence[tf.Tensor]) -> "LearnedRates":
        """The same layout holding `tensors` (e.g. a task's watched copies) in place of `learned()`."""
        it = iter(tensors)
        return self._replace(values=[None if v is None else next(it) for v in self.values])


def initial_values(weights: Sequence, mask: Sequence[bool], granularity: str, inner_lr: float,
                   inner_steps: int) -> List[Optional[np.ndarray]]:
    """The rates a run starts from: inner_lr everywhere (MAML++'s LSLR initialisation, the
    `init_learning_rate` of its LSLRGradientDescentLearningRule; learn2learn's MetaSGD's too)."""
    if granularity not in GRANULARITIES[1:]:
        raise ValueError(f"unknown granularity {granularity!r}: use one of {GRANULARITIES[1:]}")
    out = []
    for w, m in zip(weights, mask):
        dtype = w.dtype.as_numpy_dtype if hasattr(w.dtype, "as_numpy_dtype") else w.dtype
        shape = tuple(w.shape) if granularity == "per_param" else (max(inner_steps, 1),)
        out.append(np.full(shape, inner_lr, dtype) if m else None)
    return out


def from_arrays(arrays: Sequence[Optional[np.ndarray]], granularity: str) -> LearnedRates:
    """LearnedRates holding fixed arrays (a loaded model's)."""
    return LearnedRates([None if a is None else tf.constant(a) for a in arrays],
                        granularity == "per_layer_step")


class InnerRates(tf.Module):
    """The learned rates as trainable (checkpointed) variables, one per inner-adapted weight.

    A variable holds its rate times `unit`: the step size on a mean loss when the loss is `unit`
    times a mean (N for the summed cross-entropy over K), so that the outer Adam, whose step
    does not scale with the gradient, moves it by as much of its size as MAML++ or Meta-SGD
    move theirs (rates in the loss's own units would move N times faster, relatively)."""

    def __init__(self, weights: Sequence[tf.Variable], mask: Sequence[bool], granularity: str,
                 inner_lr: float, inner_steps: int, unit: float = 1.0):
        super().__init__(name="inner_rates")
        init = initial_values(weights, mask, granularity, inner_lr, inner_steps)
        self.granularity, self.unit = granularity, float(unit)
        self.mask = tuple(bool(m) for m in mask)
        self.rates = [tf.Variable(a * self.unit, trainable=True, name="inner_lr")
                      for a in init if a is not None]
        # Checkpointed beside the rates: a checkpoint without it holds rates in the loss's units.
        self.held_unit = tf.Variable(self.unit, trainable=False, name="unit")

    def checkpoint_problem(self, keys: Sequence[str]) -> Optional[str]:
        """Why a checkpoint holding the variables `keys` cannot restore these rates (None: it can)."""
        if any("held_unit" in k for k in keys) or not any("inner_rates" in k for k in keys):
            return None
        return ("its learned step sizes were written before maml_tf held them in a mean loss's "
                "units (commit 188179f) and would be read as 1/N of themselves; retrain the run, "
                "or use its model.keras, which holds the steps taken")

    def read(self) -> LearnedRates:
        """The current rates as tensors (inside a tf.function: reads of the variables)."""
        it = iter(self.rates)
        values = [tf.convert_to_tensor(next(it)) / self.unit if m else None for m in self.mask]
        return LearnedRates(values, self.granularity == "per_layer_step")

    def variable_grads(self, grads: Sequence[tf.Tensor]) -> list:
        """The meta-gradient of the variables from that of the rates `read` gives (chain rule)."""
        return [g / self.unit for g in grads]

    def arrays(self) -> List[Optional[np.ndarray]]:
        """The current rates as numpy arrays aligned with the weights (None: not adapted)."""
        return [None if v is None else v.numpy() for v in self.read().values]
