"""`MetaModel`: a meta-learned Keras model that adapts to a few labelled examples of a new task.

Vocabulary, once: a few-shot *task* gives a *support set* (a few labelled examples per class, e.g.
one image of each of 5 new characters) and a *query set* (the inputs to classify). `adapt` runs
the run's own inner loop (its step size, number of steps, batch-norm rule; Reptile's inner
optimizer) on the support set and returns a plain Keras model holding the adapted weights.
"""

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from maml_tf import algorithms, evaluation, inner_opt, layers
from maml_tf.datasets import own_images
from maml_tf.errors import UserError
from maml_tf.experiment.config import Config
from maml_tf.experiment.choices import adapt_settings, inner_loop
from maml_tf.experiment.variant_parts import make_learner
from maml_tf.inner_opt import AdamMoments
from maml_tf.inner_rates import LearnedRates
from maml_tf.per_step import StepParams
from maml_tf.types import Task


def problem_of(config: Config) -> str:
    """"classification", or "regression" for sinusoid runs (no sampler is built to ask)."""
    return "regression" if config.dataset == "sinusoid" else "classification"


def diverged(what: str) -> str:
    return f"the {what} are NaN or infinite: the adaptation diverged; use a smaller inner_lr or fewer steps"


class InputError(UserError, ValueError):
    """Inputs that do not fit the model (shape, labels, classes, non-finite or out-of-range
    values, an inverted Omniglot image, a bad step size or number of steps)."""


# Omniglot inputs are ink = 1 on paper = 0: the official drawings average 0.08 ink, none more
# than 0.22, so an image whose mean is above this is taken for an inverted one (paper = 1).
OMNIGLOT_MAX_INK = 0.6


class MetaModel:
    """A meta-learned model: `adapt(support_x, support_y)` -> keras.Model, or `predict` in one go.

    `support_x` / `query_x`: arrays [examples, *input_shape] (e.g. [5, 28, 28, 1] for 5-way 1-shot
    Omniglot); images scaled to [0, 1] as the training data (pixels / 255), Omniglot's with
    ink = 1 on paper = 0 (an image averaging more than OMNIGLOT_MAX_INK is refused as inverted);
    `steps` >= 0 and `inner_lr` finite and > 0 (None: the run's). `support_y`: integer class ids
    0..n-1, each at least once (regression: targets [examples, outputs]). A task of n <
    num_classes classes adapts and predicts over the head's first n outputs only: the head's slots
    are interchangeable across tasks, and a slot no support example names would otherwise take
    probability from the real classes.
    """

    def __init__(self, model: keras.Model, config: Config, moments: Optional[AdamMoments] = None,
                 iteration: Optional[int] = None, rates: Optional[LearnedRates] = None,
                 step_params: Optional[StepParams] = None):
        self.model, self.config, self.iteration = model, config, iteration
        self.learner = make_learner(config, model)  # ANIL: the head only
        self.moments = moments  # Reptile's inner Adam state every task starts from (else None)
        self.rates = rates  # learned step sizes (Meta-SGD, LSLR) used in place of inner_lr
        self.step_params = step_params  # MAML++'s per-step batch-norm parameters (BNWB)
        self.settings = adapt_settings(config)
        self.problem = problem_of(config)
        self.input_shape = tuple(model.input_shape[1:])
        self.num_classes = int(model.output_shape[-1])  # the head's width (regression: outputs)
        self._compiled = {}

    def adapt(self, support_x, support_y, steps: Optional[int] = None,
              inner_lr: Optional[float] = None) -> keras.Model:
        """A new Keras model with the weights adapted to the support set (the meta-model is unchanged).

        Its batch-norm layers normalise with the statistics of the batch they are given, as in
        training: call it on the whole query set at once (`model.predict(q, batch_size=len(q))`).
        """
        x, y, ways = self._check_support(support_x, support_y)
        self._check_adaptation(steps, inner_lr, self.rates)
        fast = [w.numpy() for w in self._fn("weights", self._shots(y), steps, inner_lr, ways)(x, y)]
        if not all(np.isfinite(w).all() for w in fast):
            raise InputError(diverged("adapted weights"))
        return self._keras_model(fast, ways)

    def predict(self, support_x, support_y, query_x, steps: Optional[int] = None,
                inner_lr: Optional[float] = None) -> np.ndarray:
        """Adapts to the support set and returns the query set's class probabilities
        [queries, n] over the support set's n classes (regression: outputs), with the run's
        batch-norm rule."""
        x, y, ways = self._check_support(support_x, support_y)
        q = self._check_inputs(query_x, "query_x")
        self._check_adaptation(steps, inner_lr, self.rates)
        out = self._fn("predict", self._shots(y), steps, inner_lr, ways)(x, y, q).numpy()
        if not np.isfinite(out).all():  # never a table of NaN probabilities
            raise InputError(diverged("predictions"))
        return out

    def graph_function(self, shots: float, steps: Optional[int] = None,
                       inner_lr: Optional[float] = None, ways: Optional[int] = None):
        """fn(support_x, support_y, query_x) -> probabilities over the first `ways` classes
        (None: all), the inner loop in TensorFlow ops (what the SavedModel export traces)."""
        def adapt_and_predict(x, y, q):
            fast = self.adapted_weights(x, y, shots, steps, inner_lr, ways)
            out = evaluation.predict(self.learner, fast, Task(x, y, q, None), self.settings.transductive)
            return tf.nn.softmax(out[..., :ways]) if self.problem == "classification" else out
        return adapt_and_predict

    def inner_loop(self, shots: float, inner_lr: float, ways: Optional[int] = None):
        """The run's own inner loop (its algorithm's loss and optimizer, as training and
        evaluation), its loss over the head's first `ways` outputs (None: all)."""
        loop = inner_loop(self.config, self.problem, shots, inner_lr, self.moments, self.rates,
                          self.step_params)
        if self.problem == "regression" or ways is None or ways == self.num_classes:
            return loop
        loss_fn = loop.loss_fn
        return loop._replace(loss_fn=lambda labels, logits: loss_fn(labels, logits[..., :ways]))

    def adapted_weights(self, x, y, shots: float, steps: Optional[int] = None,
                        inner_lr: Optional[float] = None, ways: Optional[int] = None):
        """The trainable weights after the inner loop on (x, y), as tensors (traceable)."""
        s = self.settings
        steps = s.steps if steps is None else int(steps)
        lr = s.inner_lr if inner_lr is None else float(inner_lr)
        loop = self.inner_loop(shots, lr, ways)
        x, y = self._batch_order(x, y)
        return algorithms.adapt_task(self.learner, loop, self.learner.weights(),
                                     Task(x, y, None, None), steps).weights

    def _batch_order(self, x, y):
        """Reptile's inner loop takes the support set in batches, in its order (the samplers
        shuffle theirs): a set given grouped by class would be adapted one class per batch
        (98.0% -> 58.7% on the shipped 5-way 5-shot model), so the classes are taken in turn
        (regression: a fixed shuffle)."""
        if not self.settings.batch_size:
            return x, y
        if self.problem == "classification":
            order = inner_opt.classes_in_turn(y)
        else:
            order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(x)[0]), seed=[0, 0])
        return tf.gather(x, order), tf.gather(y, order)

    def _fn(self, kind, shots, steps, inner_lr, ways):
        """One compiled function per (kind, K, steps, step size, ways); TensorFlow retraces per shape."""
        key = (kind, shots, steps, inner_lr, ways)
        if key not in self._compiled:
            if kind == "weights":
                fn = lambda x, y: self.adapted_weights(x, y, shots, steps, inner_lr, ways)  # noqa: E731
            else:
                fn = self.graph_function(shots, steps, inner_lr, ways)
            self._compiled[key] = tf.function(fn)
        return self._compiled[key]

    def _keras_model(self, trainable, ways: Optional[int] = None) -> keras.Model:
        """A copy of the network (batch norm: `layers.BatchStatsNorm`) holding `trainable`; for
        `ways` < the head's width, its output is the first `ways` logits."""
        def clone(layer):
            if isinstance(layer, keras.layers.BatchNormalization):
                return layers.BatchStatsNorm.from_config(layer.get_config())
            return layer.__class__.from_config(layer.get_config())

        copy = keras.models.clone_model(self.model, clone_function=clone, recursive=True)
        for var, value in zip(copy.trainable_variables, trainable):
            var.assign(value)
        for var, src in zip(copy.non_trainable_variables, self.model.non_trainable_variables):
            var.assign(src)
        if ways is None or ways == self.num_classes:
            return copy
        inputs = keras.Input(self.input_shape)
        return keras.Model(inputs, layers.FirstOutputs(ways)(copy(inputs)), name=f"{copy.name}_{ways}way")

    def _shots(self, y) -> float:
        """K, support examples per class: the loss is divided by it, as in training."""
        if self.problem == "regression":
            return float(len(y))
        return len(y) / len(np.unique(y))

    def _check_inputs(self, x, name):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape or not len(x):
            raise InputError(f"{name} has shape {x.shape}; the model takes [examples, "
                             f"{', '.join(map(str, self.input_shape))}] (at least one example)")
        if not np.all(np.isfinite(x)):
            raise InputError(f"{name} has NaN or infinite values")
        if self.config.dataset in ("omniglot", "miniimagenet") or own_images(self.config.dataset):
            self._check_image_values(x, name)
        return x

    def _check_image_values(self, x, name):
        """Images as the training data: [0, 1], and Omniglot's mostly paper (0)."""
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 1:
            raise InputError(f"{name} has values from {low:g} to {high:g}; the model takes images "
                             "scaled to [0, 1] (divide 0..255 pixels by 255)")
        if self.config.dataset == "omniglot":
            means = x.reshape(len(x), -1).mean(axis=1)
            worst = int(means.argmax())
            if means[worst] > OMNIGLOT_MAX_INK:
                raise InputError(f"{name}[{worst}] averages {means[worst]:.2f}: it looks inverted; an "
                                 "Omniglot model takes ink = 1 on paper = 0 (give 1 - x)")

    @staticmethod
    def _check_adaptation(steps, inner_lr, rates=None):
        """A step count and step size the inner loop can take (a NaN step size gives NaN)."""
        if inner_lr is not None and rates is not None:
            raise InputError("this model adapts with its learned step sizes: inner_lr cannot be set")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
                                  or steps < 0):
            raise InputError(f"steps must be a whole number >= 0 (0: no adaptation), got {steps!r}")
        if inner_lr is not None and not (isinstance(inner_lr, (int, float, np.number))
                                         and np.isfinite(inner_lr) and inner_lr > 0):
            raise InputError(f"inner_lr must be a finite step size > 0, got {inner_lr!r}")

    def _check_support(self, support_x, support_y):
        x = self._check_inputs(support_x, "support_x")
        if self.problem == "regression":
            y = np.asarray(support_y, dtype=np.float32)
            if y.shape == (len(x),) and self.num_classes == 1:
                y = y[:, None]
            if y.shape != (len(x), self.num_classes):
                raise InputError(f"support_y has shape {y.shape}: the model regresses {len(x)} "
                                 f"support inputs onto [{len(x)}, {self.num_classes}] targets")
            if not np.isfinite(y).all():
                raise InputError("support_y has NaN or infinite values")
            return x, y, None
        y = np.asarray(support_y)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"support_y must be {len(x)} integer class ids (one per support "
                             f"example, not one-hot), got {y.dtype} {y.shape}")
        if y.min() < 0 or y.max() >= self.num_classes:
            raise InputError(f"support_y has class ids {y.min()}..{y.max()} but the model's head "
                             f"has {self.num_classes} classes (ids 0..{self.num_classes - 1})")
        ways = int(y.max()) + 1
        if ways < 2:
            raise InputError("the support set has one class: a task tells at least 2 apart (with "
                             "one, every query would be that class with probability 1)")
        missing = sorted(set(range(ways)) - set(y.tolist()))
        if missing:
            raise InputError(f"support_y has no example of class ids {missing}: a task of n classes "
                             f"uses ids 0..n-1, each at least once")
        return x, y.astype(np.int32), ways
