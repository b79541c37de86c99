"""MAML++'s per-step batch-norm weights (BNWB): each inner step's forward passes use that step's batch-norm parameters.

The model's own batch-norm parameters are step 0's; the steps after it have their own copies,
meta-learned by the outer optimizer (the inner loop never adapts them, as MAML++'s code with
`enable_inner_loop_optimizable_bn_params` false). A forward pass of inner step i (the support
pass of step i, the query pass after it) uses step i's parameters, as MAML++'s `num_step`;
passes after more steps than were trained keep the last trained step's. (Per-step running
statistics, BNRS, change nothing computed here or in MAML++'s code: batch norm always normalises
with the batch's statistics, `F.batch_norm(..., training=True)`.)
"""

from typing import List, NamedTuple, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf


def batch_norm_mask(model: keras.Model) -> list:
    """True for the trainable variables of the model's batch-norm layers (their offsets, scales)."""
    def layers(layer):
        yield layer
        for sub in getattr(layer, "layers", None) or []:
            yield from layers(sub)

    ids = {id(v) for layer in layers(model) if isinstance(layer, keras.layers.BatchNormalization)
           for v in layer.trainable_variables}
    return [id(v) in ids for v in model.trainable_variables]


class StepParams(NamedTuple):
    """The batch-norm parameters of inner steps 1..n-1, aligned with the weights."""
    values: List[Optional[tf.Tensor]]  # per weight: [n - 1, *its shape]; None: not per step

    def substitute(self, weights: Sequence, step: int) -> list:
        """`weights` with step `step`'s batch-norm parameters (step 0: the model's own)."""
        if step == 0:
            return list(weights)
        return [w if v is None else v[min(step, int(v.shape[0])) - 1]
                for w, v in zip(weights, self.values)]

    def learned(self) -> list:
        return [v for v in self.values if v is not None]

    def replace_learned(self, tensors: Sequence[tf.Tensor]) -> "StepParams":
        it = iter(tensors)
        return StepParams([None if v is None else next(it) for v in self.values])


def from_arrays(arrays: Sequence[Optional[np.ndarray]]) -> StepParams:
    return StepParams([None if a is None else tf.constant(a) for a in arrays])


class StepVariables(tf.Module):
    """Steps 1..n-1's batch-norm parameters as trainable (checkpointed) variables, each started
    at the model's own (MAML++ starts every step's alike)."""

    def __init__(self, weights: Sequence[tf.Variable], mask: Sequence[bool], inner_steps: int):
        super().__init__(name="step_params")
        self.mask = tuple(bool(m) for m in mask)
        extra = max(inner_steps, 1) - 1
        self.params = [tf.Variable(tf.repeat(tf.convert_to_tensor(w)[None], extra, axis=0),
                                   trainable=True, name="bn_step")
                       for w, m in zip(weights, self.mask) if m]

    def read(self) -> StepParams:
        it = iter(self.params)
        return StepParams([tf.convert_to_tensor(next(it)) if m else None for m in self.mask])

    def arrays(self) -> List[Optional[np.ndarray]]:
        """The parameters as numpy arrays aligned with the weights (None: not per step)."""
        return [None if v is None else v.numpy() for v in self.read().values]

    def arrays_learned(self) -> List[np.ndarray]:
        return [v.numpy() for v in self.params]
