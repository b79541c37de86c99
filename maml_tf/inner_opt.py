"""Reptile's first-order inner optimisers (SGD, Adam) and the Adam moments it keeps across tasks.

The Reptile paper's code (openai/supervised-reptile) resets only the trainable weights for each
task: the inner Adam's second moments and step count carry on over every task of training, and
evaluation starts from them. Fresh moments per task would make each task's first Adam step a
sign step of size lr on every weight (β1 = 0), which measurably hurts (results/reptile.md).
"""

from typing import List, NamedTuple, Optional, Sequence

import tensorflow as tf

from maml_tf.types import Task

Weights = List[tf.Tensor]

# Written by hand, not keras.optimizers.Adam(beta_1=0).stateless_apply: Keras 3.15's TensorFlow
# backend refuses it ("stateless_apply is not supported with the TensorFlow backend (as it is
# incompatible with tf.distribute)", tried inside the meta-step's tf.map_fn), and the carried
# moments need the state as tensors anyway. Keras' Adam update is the same formula.
# Inner Adam as the Reptile paper (beta1 = 0) with TF1's AdamOptimizer constants. With beta1 = 0
# the first moment is the current gradient, so only the second moment has a memory to keep.
ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.0, 0.999, 1e-8


class AdamMoments(NamedTuple):
    """The inner Adam's state carried from task to task."""
    v: Weights       # second moments, one per weight, shaped like it
    step: tf.Tensor  # Adam steps taken so far over all tasks (scalar, the weights' dtype)


class InnerState(NamedTuple):
    """First-order inner optimisation of every weight; Adam's moments (unused by SGD)."""
    weights: Weights
    m: Weights
    v: Weights
    step: tf.Tensor  # Adam steps taken so far (Python int or scalar tensor)
    model_state: Optional[Weights] = None  # the model's non-trainable state (None: the model's own)


def support_batch(task: Task, step: int, batch_size: int):
    """The support examples of inner step `step`: consecutive `batch_size` examples, wrapping
    around. The samplers shuffle each support set, so one pass is an epoch in a random order."""
    n = task.support_x.shape[0]
    if not batch_size or batch_size == n:
        return task.support_x, task.support_y
    idx = [(step * batch_size + j) % n for j in range(batch_size)]
    return tf.gather(task.support_x, idx), tf.gather(task.support_y, idx)


def classes_in_turn(labels) -> tf.Tensor:
    """Indices that take the classes in turn (each class's first example, then each one's second,
    ...): a support set given grouped by class, as a user's folders give it, then has every
    class in each batch of `support_batch` instead of one class per batch."""
    labels = tf.cast(labels, tf.int32)
    classes = tf.reduce_max(labels) + 1
    member = tf.one_hot(labels, classes, dtype=tf.int32)
    rank = tf.reduce_sum(tf.cumsum(member, axis=0) * member, axis=1) - 1  # within its class
    return tf.argsort(rank * classes + labels, stable=True)


def initial_state(weights: Weights, moments: Optional[AdamMoments] = None,
                  model_state: Optional[Weights] = None) -> InnerState:
    """A task's starting state: its weights, Adam's carried moments (zero if none) and the
    model's non-trainable state."""
    zeros = [tf.zeros_like(w) for w in weights]
    if moments is None:
        return InnerState(list(weights), zeros, list(zeros), 0, model_state)
    return InnerState(list(weights), zeros, list(moments.v), moments.step, model_state)


def inner_gradient(learner, loss_fn, weights: Weights, x, y, model_state, mask=None):
    """(the gradient of the loss on (x, y) w.r.t. the weights `mask` marks (None: all), the loss,
    the outputs, the model state after the pass): every inner step's one gradient. It is taken
    with a fresh tape; an outer tape recording records it too, which is what makes MAML's
    meta-gradient second order."""
    adapted = list(weights) if mask is None else [w for w, m in zip(weights, mask) if m]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(adapted)
        outputs, model_state = learner.apply(weights, model_state, x)
        loss = loss_fn(y, outputs)
    grads = tape.gradient(loss, adapted, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    # An Embedding's gradient comes as IndexedSlices, which the steps cannot scale: made dense.
    grads = [tf.convert_to_tensor(g) for g in grads]
    return grads, loss, outputs, model_state


def first_order_step(learner, loss_fn, state: InnerState, x, y, lr: float, optimizer: str = "sgd"):
    """One SGD or Adam step of every weight on (x, y); returns (state, loss, outputs) before it.

    The gradient is a constant (stop_gradient), so no second derivative can be taken through it.
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown inner optimizer {optimizer!r}")
    model_state = learner.state() if state.model_state is None else state.model_state
    grads, loss, outputs, model_state = inner_gradient(learner, loss_fn, state.weights, x, y,
                                                       model_state)
    grads = [tf.stop_gradient(g) for g in grads]
    m, v, t = state.m, state.v, state.step + 1
    if optimizer == "adam":
        lr_t = lr * (1 - ADAM_BETA2 ** t) ** 0.5 / (1 - ADAM_BETA1 ** t)
        m = [ADAM_BETA1 * a + (1 - ADAM_BETA1) * g for a, g in zip(m, grads)]
        v = [ADAM_BETA2 * b + (1 - ADAM_BETA2) * g * g for b, g in zip(v, grads)]
        new = [w - lr_t * a / (tf.sqrt(b) + ADAM_EPSILON) for w, a, b in zip(state.weights, m, v)]
    else:
        new = [w - lr * g for w, g in zip(state.weights, grads)]
    return InnerState(new, m, v, t, model_state), loss, outputs


def moment_increments(start: AdamMoments, end_v: Sequence[tf.Tensor], steps: int) -> Weights:
    """What `steps` Adam steps from `start` added to the second moments: v_end − β2^steps·v_start
    (linear in v_end: given the tasks' mean v_end, it is their mean increment)."""
    decay = ADAM_BETA2 ** steps
    return [b - decay * a for a, b in zip(start.v, end_v)]


def carried(moments: AdamMoments, mean_increments: Sequence[tf.Tensor], steps: int,
            num_tasks: int) -> AdamMoments:
    """The moments after `num_tasks` tasks of `steps` Adam steps each, from the tasks' mean increment.

    Run one after another (as the paper's code), task k's increment would decay over the later
    tasks' steps: v = β2^(sK)·v + Σ_k β2^(s(K−k))·Δ_k. The tasks run in parallel from the same
    moments, in no particular order, so each Δ_k is given the mean weight: exact for one task,
    and the same expectation as the sequential order for several.
    """
    per_task = ADAM_BETA2 ** steps
    total = ADAM_BETA2 ** (steps * num_tasks)
    weight = (1 - total) / (1 - per_task) if per_task < 1 else float(num_tasks)
    v = [total * a + weight * d for a, d in zip(moments.v, mean_increments)]
    return AdamMoments(v, moments.step + steps * num_tasks)


class InnerMoments(tf.Module):
    """The carried moments as (checkpointed) variables; created in the strategy's scope, they
    hold the same value on every replica."""

    def __init__(self, weights: Sequence[tf.Variable]):
        super().__init__(name="inner_moments")
        # Written in cross-replica context (the train step) from the replicas' mean: keep the first.
        kw = dict(trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.v = [tf.Variable(tf.zeros(w.shape, w.dtype), name="v", **kw) for w in weights]
        self.step = tf.Variable(0, dtype=tf.int64, name="step", **kw)

    def read(self) -> AdamMoments:
        return AdamMoments([tf.convert_to_tensor(b) for b in self.v],
                           tf.cast(self.step, self.v[0].dtype))
