"""Keras builders for the paper's networks and the `Learner` that calls any Keras model statelessly."""

import warnings
from typing import Callable, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

NORM_LAYERS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


def _all_layers(layer):
    """The layer and every layer nested inside it (functional, sequential or subclassed)."""
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
        self.variables = list(model.trainable_variables)
        mask = default_inner_mask(model) if inner_mask is None else list(inner_mask)
        if len(mask) != len(self.variables):
            raise ValueError(f"inner_mask has {len(mask)} entries for {len(self.variables)} variables")
        self.inner_mask = tuple(bool(m) for m in mask)
        self.training = training
        self.state_variables = list(model.non_trainable_variables)
        seeds = {id(g.state) for layer in _all_layers(model)
                 for g in getattr(layer, "_seed_generators", [])}
        self.is_seed = tuple(id(v) in seeds for v in self.state_variables)
        _warn_inexact_norms(model)

    def weights(self) -> list:
        """The current meta-parameters θ as tensors."""
        return [tf.convert_to_tensor(v) for v in self.variables]

    def state(self) -> list:
        """The model's current non-trainable state as tensors (moving statistics, seed states)."""
        return [tf.convert_to_tensor(v) for v in self.state_variables]

    def apply(self, weights, state, x):
        """(outputs, new state): one stateless forward pass; the state is not differentiated."""
        outputs, new = self.model.stateless_call(list(weights), list(state), x,
                                                 training=self.training)
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


def _fold_seed(seed_state, index):
    """A fresh 2-element seed state from (seed_state, index): a hash, not an offset, so the
    per-call counter Keras adds to it can never run into another task's stream."""
    key = tf.random.experimental.stateless_fold_in(tf.cast(seed_state, tf.int64),
                                                   tf.cast(index, tf.int64))
    return tf.random.stateless_uniform((2,), key, minval=None, maxval=None,
                                       dtype=seed_state.dtype)


@keras.saving.register_keras_serializable(package="maml_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """Batch norm whose batch moments are differentiable twice, for the second-order meta-gradient.

    Keras' TensorFlow backend takes them from tf.nn.moments, which stops the gradient through
    the mean inside the variance: first derivatives stay exact, but differentiating the inner
    gradient again loses the mean's dependence on the input (found by a finite-difference test).
    """

    # The training-mode output through `batch_norm_train`'s hand-derived first and second
    # derivatives (the same mathematics in ~3x fewer passes over the activations than autodiff
    # of the composition); False: Keras' own call on the moments below (the reference path).
    closed_form_gradients = True

    def _moments(self, inputs, mask):
        if mask is not None:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        mean = keras.ops.mean(inputs, axis=axes, keepdims=True)
        variance = keras.ops.mean(keras.ops.square(inputs - mean), axis=axes)
        return keras.ops.squeeze(mean, axis=axes), variance

    def call(self, inputs, training=None, mask=None):
        fast = (self.closed_form_gradients and training and self.trainable and mask is None
                and not self.scale and self.center and not self.renorm
                and keras.backend.backend() == "tensorflow")
        if not fast:
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        # Moving statistics, as Keras keeps them (no gradient; pruned when nobody reads them,
        # as in Learner, whose predictions always use batch statistics).
        mean, variance = self._moments(tf.stop_gradient(x), None)
        self.moving_mean.assign(self.moving_mean * self.momentum
                                + tf.cast(mean, self.moving_mean.dtype) * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + tf.cast(variance, self.moving_variance.dtype)
                                    * (1.0 - self.momentum))
        out = batch_norm_train(x, tf.cast(self.beta, x.dtype), self.epsilon, self._reduction_axes)
        return tf.cast(out, self.compute_dtype)


def batch_norm_train(x, beta, epsilon: float, axes):
    """(x − μ)·r + β with the batch's μ, σ² over `axes` and r = (σ² + ε)^−½, differentiable twice.

    Both derivatives are closed forms, so the second-order meta-gradient through a batch norm
    costs ~20 passes over the activations instead of the ~60 of autodiff through its moments.
    With x̂ = (x − μ)·r, m(·) the mean over `axes` and P(w) = w − m(w) − x̂·m(w·x̂) (symmetric):
      VJP of y at g:                  ∂x = r·P(g),  ∂β = Σ g
      VJP of ∂x = r·P(g) at u:        ∂g = r·P(u)
                                      ∂x = −r²·(b·u + c·g − b·m(u) − c·m(g) + x̂·(m(u·P(g)) − 2bc)),
                                      b = m(g·x̂), c = m(u·x̂)
    (the x-derivative counts r's and x̂'s dependence on x; tests/test_speed_paths.py holds it to
    the autodiff reference at 1e-9 in float64). A third derivative is not provided.
    """
    mean_ = lambda t: tf.reduce_mean(t, axes, keepdims=True)

    @tf.custom_gradient
    def forward(x, beta):
        mu = mean_(x)
        r = tf.math.rsqrt(mean_(tf.math.squared_difference(x, mu)) + epsilon)
        y = x * r + (beta - mu * r)

        @tf.custom_gradient
        def backward(x, g):  # r·P(g), written without materialising x̂ = (x − μ)·r
            a = mean_(g)
            b = r * (mean_(g * x) - mu * a)  # m(g·x̂)
            dx = r * g - (r * r * b) * x + r * (r * b * mu - a)

            def backward_grad(u):
                ub = mean_(u)
                c = r * (mean_(u * x) - mu * ub)  # m(u·x̂)
                k = mean_(u * dx) / r - 2.0 * b * c  # m(u·P(g)) − 2bc
                rr = r * r
                grad_g = r * u - (rr * c) * x + r * (r * c * mu - ub)
                grad_x = ((-rr * b) * u + (-rr * c) * g + (-rr * r * k) * x
                          + rr * (b * ub + c * a + r * k * mu))
                return grad_x, grad_g

            return dx, backward_grad

        def grad(g):
            return backward(x, g), tf.reduce_sum(g, axes)

        return y, grad

    return forward(x, beta)


@keras.saving.register_keras_serializable(package="maml_tf")
class Conv2D(keras.layers.Conv2D):
    """Conv2D that runs a one-channel input (Omniglot's first layer) as patches @ kernel.

    oneDNN's and Eigen's convolutions degenerate on a one-channel input (a 9-long reduction):
    profiled on Omniglot 20-way 5-shot, the first layer's ops took ~9% of the second-order
    step for ~2% of its FLOPs. As image patches times a [9, filters] matrix, every pass of the
    first and second derivative is a MatMul (the same sums in another order). The patches'
    gradient (the image's) is never needed in meta-learning, which is what makes this cheap.
    """

    # False: Keras' own convolution for every input (the reference path).
    patch_matmul = True

    def convolution_op(self, inputs, kernel):
        if not (self.patch_matmul and inputs.shape[-1] == 1 and None not in inputs.shape[1:3]
                and self.data_format == "channels_last" and tuple(self.dilation_rate) == (1, 1)
                and self.groups == 1 and keras.backend.backend() == "tensorflow"):
            return super().convolution_op(inputs, kernel)
        columns, height, width = _patch_columns(inputs, self.kernel_size, self.strides,
                                                self.padding)
        out = tf.matmul(columns, tf.reshape(kernel, [-1, self.filters]), transpose_a=True)
        return tf.reshape(out, [-1, height, width, self.filters])


def _patch_columns(x, kernel_size, strides, padding: str):
    """([kh·kw, N·H'·W'] patches of a one-channel NHWC `x`, in the kernel's row order, H', W').

    Built from kh·kw strided slices of the padded image stacked on a new first axis (each a
    contiguous copy): measured ~4 ms per 100-image call for tf.image.extract_patches under load.
    Padding as TensorFlow's convolution: "same" puts the odd extra row/column at the end.
    """
    pads, sizes = [], []
    for size, k, stride in zip(x.shape[1:3], kernel_size, strides):
        if padding == "same":
            out = -(-size // stride)
            total = max((out - 1) * stride + k - size, 0)
            pads.append([total // 2, total - total // 2])
        else:
            out = -(-(size - k + 1) // stride)
            pads.append([0, 0])
        sizes.append(out)
    x = tf.pad(x[..., 0], [[0, 0], *pads])
    (kh, kw), (sh, sw), (oh, ow) = kernel_size, strides, sizes
    columns = [tf.reshape(x[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw], [-1])
               for i in range(kh) for j in range(kw)]
    return tf.stack(columns), oh, ow


@keras.saving.register_keras_serializable(package="maml_tf")
class LayerNorm(keras.layers.LayerNormalization):
    """Layer norm over the last axis with twice-differentiable moments (Keras' also come from
    tf.nn.moments; see BatchNorm). Other axes and RMS scaling fall back to Keras' own."""

    def call(self, inputs):
        if self.rms_scaling or list(self.axis) not in ([-1], [len(inputs.shape) - 1]):
            return super().call(inputs)
        mean = keras.ops.mean(inputs, axis=-1, keepdims=True)
        variance = keras.ops.mean(keras.ops.square(inputs - mean), axis=-1, keepdims=True)
        outputs = (inputs - mean) * keras.ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            outputs = outputs * keras.ops.cast(self.gamma, outputs.dtype)
        if self.beta is not None:
            outputs = outputs + keras.ops.cast(self.beta, outputs.dtype)
        return keras.ops.cast(outputs, self.compute_dtype)


def _warn_inexact_norms(model):
    """Stock Keras norm layers give a slightly wrong second-order meta-gradient (see BatchNorm)."""
    stock = sorted({type(layer).__name__ for layer in _all_layers(model)
                    if type(layer) in NORM_LAYERS})
    if stock:
        warnings.warn(f"{', '.join(stock)} in this model: Keras computes its moments with a "
                      "stop_gradient (tf.nn.moments), so second-order MAML through it is "
                      "inexact; use maml_tf.models.BatchNorm / LayerNorm instead (Keras' "
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


@keras.saving.register_keras_serializable(package="maml_tf")
class BatchStatsNorm(BatchNorm):
    """BatchNorm that normalises with the statistics of the batch it is given in every mode,
    `predict` included: the rule a meta-learned model was trained and evaluated with (as the
    original's), for a plain Keras model holding adapted weights (`maml_tf.load(...).adapt`)."""

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=True, mask=mask)
