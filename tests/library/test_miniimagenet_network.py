"""The miniImageNet block's second-order meta-gradient (conv, norm, ReLU, max-pool, dense) against finite differences."""

import numpy as np
import pytest


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
def test_second_order_meta_gradient_through_max_pool_and_norm_matches_finite_differences(norm):
    """The miniImageNet block (conv, norm, ReLU, 2x2 max-pool, flatten, dense), tiny and in
    float64: the MAML meta-gradient along a random direction equals the central difference of the
    post-adaptation query loss; the first-order one does not."""
    import keras
    import tensorflow as tf

    from maml_tf import algorithms, metrics, models
    from maml_tf.types import Task

    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        model = models.conv_net((12, 12, 3), 3, filters=3, max_pool=True, norm=norm, blocks=2, seed=1)
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    learner = models.Learner(model)
    rng = np.random.default_rng(0)
    tasks = Task(rng.random((2, 3, 12, 12, 3)), np.tile(np.arange(3, dtype=np.int32), (2, 1)),
                 rng.random((2, 6, 12, 12, 3)), np.tile(np.arange(3, dtype=np.int32), (2, 2)))
    tasks = Task(*[tf.constant(a) for a in tasks])
    # Off the all-zero biases of the initialisation, where ReLU kinks make differences one-sided.
    theta = [w + 0.05 * tf.constant(rng.standard_normal(w.shape)) for w in learner.weights()]
    assert theta[0].dtype == tf.float64

    def meta(weights, first_order):
        return algorithms.maml_meta_grads(learner, metrics.make_xent_over_k(1), weights, tasks,
                                          0.5, 2, first_order)

    direction = [tf.constant(rng.standard_normal(w.shape)) for w in theta]
    eps = 1e-7  # small enough to straddle no ReLU or max-pool kink at this point (1e-6 did for seed 1)
    plus = meta([w + eps * d for w, d in zip(theta, direction)], True)[1]["post_loss"]
    minus = meta([w - eps * d for w, d in zip(theta, direction)], True)[1]["post_loss"]
    numeric = float(plus - minus) / (2 * eps)

    def along(grads):
        return sum(float(tf.reduce_sum(g * d)) for g, d in zip(grads, direction))

    assert along(meta(theta, False)[0]) == pytest.approx(numeric, rel=1e-5)
    assert abs(along(meta(theta, True)[0]) - numeric) > 0.1 * abs(numeric)
