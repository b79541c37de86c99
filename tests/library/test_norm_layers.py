"""Norm layers and half precision in a user's model: the Keras norms maml_tf warns about give an
inexact second-order meta-gradient, maml_tf's LayerNorm is exact over any axes, every Keras norm
layer's weights are left to the outer loop alike, and a mixed_float16 model meta-learns."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf import algorithms, layers, metrics, models
from maml_tf.types import Task

F64 = "float64"


def model_with(norm):
    """[batch, 3, 2] -> Dense -> norm -> Dense: softplus and tanh keep it smooth for differences."""
    inputs = keras.Input((3, 2), dtype=F64)
    hidden = norm()(keras.layers.Dense(4, activation="softplus", dtype=F64)(inputs))
    hidden = keras.layers.Flatten(dtype=F64)(keras.layers.Dense(2, activation="tanh", dtype=F64)(hidden))
    return keras.Model(inputs, keras.layers.Dense(1, dtype=F64)(hidden))


def learner_of(norm):
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner = models.Learner(model_with(norm))
    return learner, [str(w.message) for w in caught if "meta-gradient" in str(w.message)
                     or "in this model" in str(w.message)]


def directional_error(learner):
    """|<meta-gradient, d> - central difference| / |central difference| along a random d."""
    rng = np.random.default_rng(1)
    tasks = Task(*[tf.constant(rng.normal(size=(2, 5, *shape))) for shape in ((3, 2), (1,)) * 2])
    theta = [w + 0.1 * tf.constant(rng.standard_normal(w.shape)) for w in learner.weights()]
    direction = [tf.constant(rng.standard_normal(w.shape)) for w in theta]

    def meta(weights):
        return algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, 0.3, 2)

    eps = 1e-5
    plus, minus = (float(meta([w + s * eps * d for w, d in zip(theta, direction)])[1]["post_loss"])
                   for s in (1, -1))
    numeric = (plus - minus) / (2 * eps)
    exact = sum(float(tf.reduce_sum(g * d)) for g, d in zip(meta(theta)[0], direction))
    return abs(exact - numeric) / abs(numeric)


@pytest.mark.parametrize("norm", [
    lambda: keras.layers.LayerNormalization(dtype=F64),
    lambda: keras.layers.GroupNormalization(groups=2, dtype=F64),
], ids=["LayerNormalization", "GroupNormalization"])
def test_the_stock_norms_warned_about_are_inexact(norm):
    learner, warned = learner_of(norm)
    assert warned and directional_error(learner) > 1e-5


@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_maml_tf_layer_norm_is_exact_over_any_axes_and_equals_keras_forward(axis):
    learner, warned = learner_of(lambda: layers.LayerNorm(axis=axis, dtype=F64))
    assert not warned and directional_error(learner) < 1e-7
    x = np.random.default_rng(2).normal(size=(5, 3, 4))
    ours, theirs = layers.LayerNorm(axis=axis, dtype=F64), keras.layers.LayerNormalization(axis=axis, dtype=F64)
    ours.build(x.shape), theirs.build(x.shape)
    for a, b in zip(ours.weights, theirs.weights):
        value = np.random.default_rng(3).normal(size=a.shape)
        a.assign(value), b.assign(value)
    np.testing.assert_allclose(ours(x), theirs(x), atol=1e-12)


def test_every_keras_norm_layer_is_outer_loop_only_and_rms_norm_is_not_warned_about():
    if not hasattr(keras.layers, "RMSNormalization"):
        pytest.skip("Keras before 3.9 has no RMSNormalization")
    learner, warned = learner_of(lambda: keras.layers.RMSNormalization(dtype=F64))
    scale = [m for v, m in zip(learner.trainable_variables, learner.inner_mask)
             if "rms_normalization" in v.path]
    assert scale == [False] and not warned and directional_error(learner) < 1e-7


def test_a_mixed_float16_model_meta_learns_with_float32_losses():
    """Half-precision logits: the losses are taken in float32 (as Keras' are) and the meta-step
    runs, its meta-gradient within float16's precision of the float32 model's."""
    rng = np.random.default_rng(0)
    x, y = rng.random((2, 6, 8, 8, 1)).astype("float32"), np.tile(np.arange(3, dtype="int32"), (2, 2))
    tasks = Task(*[tf.constant(a) for a in (x, y, x, y)])
    policy = keras.config.dtype_policy()
    grads = []
    for name in ("mixed_float16", "float32"):
        keras.config.set_dtype_policy(name)
        try:
            learner = models.Learner(models.conv_net((8, 8, 1), 3, filters=4, seed=1))
        finally:
            keras.config.set_dtype_policy(policy)
        result = algorithms.maml_meta_grads(learner, metrics.make_xent_over_k(2), learner.weights(),
                                            tasks, 0.4, 1, metric_fns=metrics.make_metrics("classification"))
        assert all(v.dtype == tf.float32 for v in result.metrics.values())
        grads.append(np.concatenate([g.numpy().ravel() for g in result.grads]))
    assert np.abs(grads[0] - grads[1]).max() < 2e-2 * np.abs(grads[1]).max()
