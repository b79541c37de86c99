"""Normalisation layers in a user's model: the Keras ones that maml_tf warns about really give an
inexact second-order meta-gradient, maml_tf's LayerNorm is exact over any axes, and every Keras
norm layer's weights are left to the outer loop alike."""

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
