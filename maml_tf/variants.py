"""MAML's successors as pure parts: ANIL's head-only inner loop, MAML++'s multi-step loss weights and schedules (their meta-gradient is `algorithms.maml_meta_grads`, with learned step sizes from inner_rates and per-step batch norm from per_step).

Sources: ANIL, Raghu, Raghu, Bengio, Vinyals (ICLR 2020); Meta-SGD, Li, Zhou, Chen, Li (2017);
MAML++, Antoniou, Edwards, Storkey, "How to train your MAML" (ICLR 2019) and its code,
github.com/AntreasAntoniou/HowToTrainYourMAMLPytorch (few_shot_learning_system.py), whose
schedules count epochs of 500 iterations (`total_iter_per_epoch`).
"""

import math
from typing import NamedTuple

import keras
import tensorflow as tf

ITERATIONS_PER_EPOCH = 500  # MAML++'s total_iter_per_epoch: its schedules step once per epoch


def head_mask(model: keras.Model) -> list:
    """ANIL's inner mask: True only for the head's weights (the model's last layer with weights,
    looking inside a nested model such as the fully connected image network)."""
    layer = model
    while getattr(layer, "layers", None):
        with_weights = [sub for sub in layer.layers if sub.trainable_variables]
        if not with_weights:
            break
        layer = with_weights[-1]
    head = {id(v) for v in layer.trainable_variables}
    if layer is model or not head:
        raise ValueError("ANIL needs a model whose last layer with weights is its head")
    return [id(v) in head for v in model.trainable_variables]


class Phase(NamedTuple):
    """Which of MAML++'s scheduled parts a meta-update uses: a meta-step is compiled per phase."""
    first_order: bool
    multi_step_loss: bool


def phase(iterations_done: int, first_order: bool, first_order_iterations: int,
          msl_anneal_iterations: int) -> Phase:
    """The phase after `iterations_done` meta-updates: first order while fewer than
    `first_order_iterations` (derivative-order annealing; or always, `first_order`), the
    multi-step loss while MAML++ keeps it (`msl_anneal_iterations` 0: never)."""
    return Phase(first_order or iterations_done < first_order_iterations,
                 bool(msl_anneal_iterations) and msl_epoch_active(iterations_done,
                                                                  msl_anneal_iterations))


class PhasedStep:
    """A compiled meta-step per phase, the one of `phase_now()` taken at each call (as a
    tf.function is called: `step(tasks)`, `get_concrete_function`, its tracing count)."""

    def __init__(self, phase_now, build):
        self._phase_now, self._build, self._compiled = phase_now, build, {}

    def current(self):
        phase = self._phase_now()
        if phase not in self._compiled:
            self._compiled[phase] = self._build(phase)
        return self._compiled[phase]

    def __call__(self, tasks):
        return self.current()(tasks)

    def get_concrete_function(self, *args):
        return self.current().get_concrete_function(*args)

    def experimental_get_tracing_count(self) -> int:
        return sum(f.experimental_get_tracing_count() for f in self._compiled.values())


def msl_epoch_active(iterations_done: int, anneal_iterations: int) -> bool:
    """Whether MAML++ still optimises the multi-step loss (`epoch < multi_step_loss_num_epochs`)."""
    return iterations_done // ITERATIONS_PER_EPOCH < anneal_iterations / ITERATIONS_PER_EPOCH


def msl_weights(iterations_done, steps: int, anneal_iterations: int, dtype=tf.float32):
    """MAML++'s per-step loss importance vector [steps] after `iterations_done` meta-updates
    (`get_per_step_loss_importance_vector`): 1/steps each at first; per epoch the non-final weights
    fall by 1/steps/num_epochs (to at least 0.03/steps) and the final one rises by as much as they
    fall together (to at most 1 - (steps-1)·0.03/steps); from epoch num_epochs on, the final step's
    loss alone (their `epoch < multi_step_loss_num_epochs` test)."""
    epoch = tf.floor(tf.cast(iterations_done, dtype) / ITERATIONS_PER_EPOCH)
    num_epochs = anneal_iterations / ITERATIONS_PER_EPOCH
    decay, least = 1.0 / steps / num_epochs, 0.03 / steps
    early = tf.maximum(1.0 / steps - epoch * decay, least)
    last = tf.minimum(1.0 / steps + epoch * (steps - 1) * decay, 1.0 - (steps - 1) * least)
    annealed = tf.concat([tf.fill([steps - 1], early), tf.reshape(last, [1])], axis=0)
    return tf.where(epoch < num_epochs, annealed, tf.one_hot(steps - 1, steps, dtype=dtype))


@keras.saving.register_keras_serializable(package="maml_tf")
class EpochCosine(keras.optimizers.schedules.LearningRateSchedule):
    """MAML++'s meta learning rate: torch's CosineAnnealingLR(T_max=total_epochs, eta_min) stepped
    with the epoch index, min + (initial - min)(1 + cos(pi·epoch/epochs))/2, epoch = step // 500."""

    def __init__(self, initial: float, minimum: float, iterations: int):
        self.initial, self.minimum, self.iterations = float(initial), float(minimum), int(iterations)

    def __call__(self, step):
        epoch = tf.floor(tf.cast(step, tf.float32) / ITERATIONS_PER_EPOCH)
        epochs = max(self.iterations, 1) / ITERATIONS_PER_EPOCH
        cosine = (1.0 + tf.cos(math.pi * epoch / epochs)) / 2.0
        return self.minimum + (self.initial - self.minimum) * cosine

    def get_config(self):
        return {"initial": self.initial, "minimum": self.minimum, "iterations": self.iterations}
