"""Keras builders for the paper's networks and the `Learner` that calls any Keras model statelessly."""

import contextlib
import inspect
import warnings
from typing import Callable, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from maml_tf.layers import BatchNorm, Conv2D, LayerNorm

# Keras' normalisation layers with weights; RMSNormalization is new in Keras 3.9.
NORM_LAYERS = tuple(getattr(keras.layers, name) for name in (
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "RMSNormalization")
    if hasattr(keras.layers, name))


def _all_layers(layer):
    """The layer and every layer nested inside it (functional, sequential or subclassed, and
    inside a custom Layer, which has no `.layers`: a batch norm or Dropout there counts too)."""
    if hasattr(layer, "_flatten_layers"):  # Keras 3: every tracked sublayer, recursively
        yield from layer._flatten_layers(include_self=True, recursive=True)
        return
    yield layer
    for sub in getattr(layer, "layers", None) or []:
        yield from _all_layers(sub)


def default_inner_mask(model: keras.Model) -> list:
    """True for the trainable variables the inner loop adapts.

    Normalisation offsets are left to the outer loop, as the original code does: its
    batch-norm/layer-norm variables live outside the `weights` dict its inner loop updates.
    """
    outer_only = {id(v) for layer in _all_layers(model) if isinstance(layer, NORM_LAYERS)
                  for v in layer.trainable_variables}
    return [id(v) not in outer_only for v in model.trainable_variables]


def _refuse_regularizers(model: keras.Model):
    """ValueError for a model with regularisation losses: the meta-learning losses are the
    loss function's alone, so a penalty would be silently left out of both loops."""
    named = sorted({layer.name for layer in _all_layers(model) if any(
        getattr(layer, a, None) is not None for a in
        ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
         "depthwise_regularizer", "pointwise_regularizer", "recurrent_regularizer",
         "beta_regularizer", "gamma_regularizer", "embeddings_regularizer"))})
    if named:
        raise ValueError(f"layer(s) {', '.join(named)} have regularizers, which maml_tf does not "
                         "add to the meta-learning losses: remove them, or add the penalty to "
                         "the loss function")


class Learner:
    """A built Keras model whose forward pass takes its trainable weights as tensors.

    The inner loop never assigns to a Keras variable (that would cut the gradient path);
    it calls `learner.apply(weights, state, x)`, i.e. `model.stateless_call` with explicit
    weights and non-trainable state (batch-norm moving statistics, the `SeedGenerator` state
    of Dropout / GaussianNoise / random augmentation layers), and gets the updated state back.
    `training=True` by default: batch norm then always uses the current batch's statistics,
    at meta-train and meta-test time alike, as the original code does (dropout is on too).
    """

    def __init__(self, model: keras.Model, inner_mask: Optional[Sequence[bool]] = None,
                 training: bool = True):
        if not model.built:
            raise ValueError("build the Keras model (give it an Input shape) before meta-learning it")
        self.model = model
        self.trainable_variables = list(model.trainable_variables)
        if not self.trainable_variables:
            raise ValueError("the model has no trainable weights: nothing to meta-learn")
        # A subclassed model's call() may take no `training` argument (then it has no
        # Dropout or batch norm to switch): it is passed only to one that takes it.
        params = inspect.signature(model.call).parameters
        self._training_arg = "training" in params or any(
            p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
        inputs = getattr(model, "inputs", None)  # a subclassed model has none to read
        self.input_rank = len(inputs[0].shape) if inputs else None  # with its batch axis
        mask = default_inner_mask(model) if inner_mask is None else list(inner_mask)
        if len(mask) != len(self.trainable_variables):
            raise ValueError(f"inner_mask has {len(mask)} entries for {len(self.trainable_variables)} variables")
        self.inner_mask = tuple(bool(m) for m in mask)
        self.training = training
        self.state_variables = list(model.non_trainable_variables)
        seeds = {id(g.state) for layer in _all_layers(model)
                 for g in getattr(layer, "_seed_generators", [])}
        self.is_seed = tuple(id(v) in seeds for v in self.state_variables)
        _warn_inexact_norms(model)
        _refuse_regularizers(model)

    def weights(self) -> list:
        """The current meta-parameters θ as tensors."""
        return [tf.convert_to_tensor(v) for v in self.trainable_variables]

    def state(self) -> list:
        """The model's current non-trainable state as tensors (moving statistics, seed states)."""
        return [tf.convert_to_tensor(v) for v in self.state_variables]

    def apply(self, weights, state, x):
        """(outputs, new state): one stateless forward pass; the state is not differentiated."""
        kwargs = {"training": self.training} if self._training_arg else {}
        with _training_context(self.model, self.training):
            outputs, new = self.model.stateless_call(list(weights), list(state), x, **kwargs)
        return outputs, [tf.stop_gradient(s) for s in new]

    def __call__(self, weights, x):
        """Outputs with the model's current state, its updates dropped (for callers that keep no
        state: a model without Dropout draws nothing, and batch statistics read no state)."""
        return self.apply(weights, self.state(), x)[0]

    def task_state(self, state, index):
        """`state` with every seed state replaced by an independent stream for task `index`, so
        tasks of one meta-batch draw different dropout masks; moving statistics unchanged."""
        return [_fold_seed(s, index) if seed else s for s, seed in zip(state, self.is_seed)]

    def averaged(self, state) -> list:
        """The entries of `state` that the meta-step averages over tasks (all but seed states)."""
        return [s for s, seed in zip(state, self.is_seed) if not seed]

    def next_state(self, start, mean_averaged):
        """The model's state after a meta-step from `start`: the tasks' mean final value of
        every `averaged` entry (moving statistics), and every seed state advanced by one (so the
        next meta-batch draws new masks)."""
        means = iter(mean_averaged)
        return [s + tf.constant([0, 1], s.dtype) if seed else tf.cast(next(means), s.dtype)
                for s, seed in zip(start, self.is_seed)]

    def assign_state(self, state):
        """Writes `state` into the model's non-trainable variables (outside any inner loop)."""
        for var, value in zip(self.state_variables, state):
            var.assign(tf.cast(value, var.dtype))


@contextlib.contextmanager
def _training_context(model: keras.Model, training: bool):
    """Keras's call context with `training` set, as `model(x, training=...)` sets it:
    `stateless_call` runs `call` directly, so a subclassed model's sublayers called without
    `training` (as Keras allows) would run as at inference (Dropout off, batch norm on its
    moving statistics) without it."""
    if not hasattr(model, "_get_call_context"):
        yield
        return
    context = model._get_call_context()
    before = context.get_value("training")
    context.set_value("training", training)
    try:
        yield
    finally:
        context.set_value("training", before)
        model._maybe_reset_call_context()


def _fold_seed(seed_state, index):
    """A fresh 2-element seed state from (seed_state, index): a hash, not an offset, so the
    per-call counter Keras adds to it can never run into another task's stream."""
    key = tf.random.experimental.stateless_fold_in(tf.cast(seed_state, tf.int64),
                                                   tf.cast(index, tf.int64))
    return tf.random.stateless_uniform((2,), key, minval=None, maxval=None,
                                       dtype=seed_state.dtype)


def _inexact_norm(layer) -> bool:
    """True for a stock Keras norm layer whose moments come from tf.nn.moments (see BatchNorm);
    RMS scaling takes no mean, so nothing is stopped there."""
    if type(layer) is keras.layers.LayerNormalization:
        return not getattr(layer, "rms_scaling", False)
    return type(layer) in (keras.layers.BatchNormalization, keras.layers.GroupNormalization)


def _warn_inexact_norms(model):
    """Stock Keras norm layers give a slightly wrong second-order meta-gradient (see BatchNorm)."""
    stock = sorted({type(layer).__name__ for layer in _all_layers(model) if _inexact_norm(layer)})
    if stock:
        warnings.warn(f"{', '.join(stock)} in this model: Keras computes its moments with a "
                      "stop_gradient (tf.nn.moments), so second-order MAML through it is "
                      "inexact; use maml_tf.layers.BatchNorm / LayerNorm instead (Keras' "
                      "GroupNormalization has no exact replacement here)", stacklevel=3)


def _normalization(norm: str) -> Callable[[], Optional[keras.layers.Layer]]:
    """Layer factory for the original's `--norm` values: an offset, no scale."""
    if norm == "batch_norm":
        return lambda: BatchNorm(center=True, scale=False, epsilon=1e-3)
    if norm == "layer_norm":
        return lambda: LayerNorm(center=True, scale=False, epsilon=1e-3)
    if norm in ("None", "none", None):
        return lambda: None
    raise ValueError(f"unknown norm {norm!r}: use batch_norm, layer_norm or None")


def layer_seeds(seed: int, count: int) -> List[int]:
    """`count` independent initialiser seeds drawn from `seed` (np.random.SeedSequence).

    `seed + i` would make layer i+1 of seed s layer i of seed s+1: a second seed would share
    most of its initial kernels with the first.
    """
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count) % (2 ** 31)]


def _dense_block(x, units, norm, seed):
    # The original's fc weights: truncated normal, stddev 0.01; biases zero.
    x = keras.layers.Dense(units, kernel_initializer=keras.initializers.TruncatedNormal(
        stddev=0.01, seed=seed))(x)
    layer = norm()
    if layer is not None:
        x = layer(x)
    return keras.layers.ReLU()(x)


def fc_net(input_dim: int, outputs: int, hidden: Sequence[int] = (40, 40),
           norm: str = "None", seed: int = 0) -> keras.Model:
    """The original's fully connected network (1-40-40-1 for sinusoid, 256-128-64-64 for Omniglot)."""
    make_norm = _normalization(norm)
    seeds = layer_seeds(seed, len(hidden) + 1)
    inputs = keras.Input((input_dim,))
    x = inputs
    for i, units in enumerate(hidden):
        x = _dense_block(x, units, make_norm, seeds[i])
    out = keras.layers.Dense(outputs, kernel_initializer=keras.initializers.TruncatedNormal(
        stddev=0.01, seed=seeds[-1]))(x)
    return keras.Model(inputs, out, name="fc_net")


def conv_net(input_shape: Sequence[int], outputs: int, filters: int = 64, max_pool: bool = False,
             norm: str = "batch_norm", blocks: int = 4, seed: int = 0) -> keras.Model:
    """4 x [3x3 conv, norm, ReLU] as the original: stride 2 (Omniglot) or 2x2 max-pool (MiniImageNet)."""
    make_norm = _normalization(norm)
    seeds = layer_seeds(seed, blocks + 1)
    inputs = keras.Input(tuple(input_shape))
    x = inputs
    for i in range(blocks):
        x = Conv2D(filters, 3, strides=1 if max_pool else 2, padding="same",
                   kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[i]))(x)
        layer = make_norm()
        if layer is not None:
            x = layer(x)
        x = keras.layers.ReLU()(x)
        if max_pool:
            x = keras.layers.MaxPooling2D(2, padding="valid")(x)
    if max_pool:
        # MiniImageNet: flatten (5x5x32 = 800 features), Glorot-initialised head.
        x = keras.layers.Flatten()(x)
        head_init = keras.initializers.GlorotUniform(seed=seeds[-1])
    else:
        # Omniglot: mean over space; the original draws this head from N(0, 1).
        x = keras.layers.GlobalAveragePooling2D()(x)
        head_init = keras.initializers.RandomNormal(stddev=1.0, seed=seeds[-1])
    out = keras.layers.Dense(outputs, kernel_initializer=head_init)(x)
    return keras.Model(inputs, out, name="conv_net")
