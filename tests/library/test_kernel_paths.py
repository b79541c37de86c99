"""The faster kernels (closed-form batch norm, patch-matmul convolution, the fold of one into the other) give the reference path's outputs and float64 meta-gradients."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf import kernels, layers, models
from maml_tf.bench import step as bench_step

pytestmark = pytest.mark.usefixtures("restore_floatx")


def _assert_same_meta_gradient(layer_cls, switch: str, shape, max_pool: bool, first_order: bool):
    """The float64 meta-gradient of a small conv net with `layer_cls.switch` off (the reference
    path) and on agree at 1e-9 relative."""
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    from maml_tf import algorithms, metrics

    model = models.conv_net(shape, 3, filters=4, blocks=2, seed=3, max_pool=max_pool)
    learner = models.Learner(model)
    sampler = bench_step.SyntheticImages(3, shape, classes=6, per_class=4)
    task = sampler.sample("train", 2, 1, 2, np.random.default_rng(5))
    task = task._replace(support_x=task.support_x.astype(np.float64),
                         query_x=task.query_x.astype(np.float64))
    grads = {}
    for on in (False, True):
        setattr(layer_cls, switch, on)
        try:
            fn = tf.function(lambda: algorithms.maml_meta_grads(
                learner, metrics.make_xent_over_k(1), learner.weights(), task, 0.4, 2,
                first_order=first_order)[0], autograph=False)
            grads[on] = np.concatenate([g.numpy().ravel() for g in fn()])
        finally:
            setattr(layer_cls, switch, True)
    ref = grads[False]
    assert np.abs(ref).max() > 0
    assert np.abs(grads[True] - ref).max() <= 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize("max_pool", [False, True])
@pytest.mark.parametrize("first_order", [False, True])
def test_closed_form_batch_norm_gives_the_autodiff_meta_gradient(max_pool, first_order):
    """kernels.batch_norm_train's hand-derived first and second derivatives against autodiff
    through the moments (BatchNorm.closed_form_gradients = False), float64, 1e-9 relative."""
    shape = (12, 12, 3) if max_pool else (8, 8, 1)
    _assert_same_meta_gradient(layers.BatchNorm, "closed_form_gradients", shape, max_pool,
                               first_order)


@pytest.mark.parametrize("first_order", [False, True])
def test_patch_matmul_convolution_gives_the_keras_meta_gradient(first_order):
    """layers.Conv2D's patches @ kernel on the one- and three-channel first layer (and the batch
    norm folded into it) against Keras' own convolution (Conv2D.patch_matmul = False): the
    float64 meta-gradient at 1e-9 relative, stride 2 as Omniglot's (odd and even input sizes)
    and stride 1 with max-pool as MiniImageNet's."""
    for shape, max_pool in (((8, 8, 1), False), ((7, 7, 1), False), ((8, 8, 1), True),
                            ((12, 12, 3), True)):
        _assert_same_meta_gradient(layers.Conv2D, "patch_matmul", shape, max_pool, first_order)


@pytest.mark.parametrize("first_order", [False, True])
def test_batch_norm_folded_into_the_patch_convolution_gives_the_same_meta_gradient(
        first_order, monkeypatch):
    """BatchNorm.fold_patch_conv on against off (the patch convolution, then the closed-form
    batch norm over its maps): the float64 meta-gradient at 1e-9 relative, and the fold runs."""
    calls = []
    folded = kernels.folded_batch_norm_train
    monkeypatch.setattr(kernels, "folded_batch_norm_train",
                        lambda *a: calls.append(1) or folded(*a))
    for shape, max_pool in (((8, 8, 1), False), ((7, 7, 1), False), ((12, 12, 3), True)):
        _assert_same_meta_gradient(layers.BatchNorm, "fold_patch_conv", shape, max_pool,
                                   first_order)
    assert calls


def test_folded_batch_norm_keeps_the_same_moving_statistics():
    """The fold's batch mean (bias included) and variance update the moving statistics as the
    unfolded batch norm's do (float64, 1e-9); its output is the unfolded output."""
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    model = models.conv_net((9, 9, 3), 3, filters=4, blocks=1, seed=2, max_pool=True)
    learner = models.Learner(model)
    weights = [w + 0.1 for w in learner.weights()]  # a non-zero conv bias
    x = tf.constant(np.random.default_rng(3).normal(size=(5, 9, 9, 3)) + 0.5)
    out = {}
    for on in (False, True):
        layers.BatchNorm.fold_patch_conv = on
        try:
            out[on] = learner.apply(weights, learner.state(), x)
        finally:
            layers.BatchNorm.fold_patch_conv = True
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=1e-9, atol=1e-12)
    for a, b in zip(out[True][1], out[False][1]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_patch_matmul_convolution_equals_keras_forward():
    """The patches @ kernel path gives Keras' outputs for 'same' and 'valid', strides 1-3."""
    for channels in (1, 3):
        x = tf.constant(np.random.default_rng(1).normal(size=(3, 9, 10, channels)), tf.float32)
        for padding, strides in itertools.product(("same", "valid"), (1, 2, 3)):
            layer = layers.Conv2D(5, 3, strides=strides, padding=padding)
            fast = layer(x)
            layers.Conv2D.patch_matmul = False
            try:
                ref = layer(x)
            finally:
                layers.Conv2D.patch_matmul = True
            assert fast.shape == ref.shape
            np.testing.assert_allclose(fast.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_closed_form_batch_norm_second_derivative_of_a_dense_batch_norm():
    """The second derivative of batch_norm_train alone, on a [N, C] input (fc nets), against
    autodiff through the moments: d/dx <u, d/dx <g, BN(x)>> for a random g, u (float64)."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(7, 3)) * 2 + 1)
    beta = tf.constant(rng.normal(size=(3,)))
    g = tf.constant(rng.normal(size=(7, 3)))
    u = tf.constant(rng.normal(size=(7, 3)))

    def reference(x):
        mu = tf.reduce_mean(x, 0, keepdims=True)
        var = tf.reduce_mean(tf.square(x - mu), 0, keepdims=True)
        return (x - mu) * tf.math.rsqrt(var + 1e-3) + beta

    out = {}
    for name, fn in (("ref", reference),
                     ("closed", lambda x: kernels.batch_norm_train(x, beta, 1e-3, [0]))):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = fn(x) ** 2  # g depends on x downstream, as in the inner loop
                s = tf.reduce_sum(g * y)
            dx = inner.gradient(s, x)
            t = tf.reduce_sum(u * dx)
        out[name] = (dx.numpy(), outer.gradient(t, x).numpy())
    for a, b in zip(out["ref"], out["closed"]):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
