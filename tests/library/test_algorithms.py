"""Properties of the MAML engine: exact meta-gradients, first order, adapt, any Keras model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf import algorithms, metrics, models
from maml_tf.types import Task

INNER_LR, STEPS = 0.3, 2


def unseen_model(dtype="float64"):
    """A two-branch functional model the engine has never seen; softplus keeps it smooth for
    finite differences (ReLU kinks would make them meaningless)."""
    inp = keras.Input((2,), dtype=dtype)
    a = keras.layers.Dense(6, activation="softplus", dtype=dtype)(inp)
    b = keras.layers.Dense(3, activation="tanh", dtype=dtype)(inp)
    h = keras.layers.Concatenate(dtype=dtype)([a, b])
    return keras.Model(inp, keras.layers.Dense(1, dtype=dtype)(h))


def regression_tasks(num_tasks=3, n_support=5, n_query=7, seed=0):
    rng = np.random.default_rng(seed)
    return Task(*[tf.constant(rng.normal(size=(num_tasks, n, d)))
                  for n, d in ((n_support, 2), (n_support, 1), (n_query, 2), (n_query, 1))])


def flat(tensors):
    return np.concatenate([np.asarray(t).ravel() for t in tensors])


def query_objective(learner, weights, tasks):
    """Mean over tasks of the query loss after adaptation, computed task by task in eager mode."""
    losses = []
    for t in range(tasks.support_x.shape[0]):
        fast = algorithms.adapt(learner, metrics.mse, weights, tasks.support_x[t],
                                tasks.support_y[t], INNER_LR, STEPS)
        losses.append(metrics.mse(learner(fast, tasks.query_x[t]), tasks.query_y[t]))
    return float(tf.reduce_mean(losses))


def central_differences(fn, weights, eps=1e-6):
    grads = []
    for i, w in enumerate(weights):
        base, g = w.numpy().ravel(), np.zeros(w.shape.num_elements())
        for j in range(base.size):
            shifted = []
            for sign in (1, -1):
                p = base.copy()
                p[j] += sign * eps
                ws = list(weights)
                ws[i] = tf.constant(p.reshape(w.shape))
                shifted.append(fn(ws))
            g[j] = (shifted[0] - shifted[1]) / (2 * eps)
        grads.append(g)
    return np.concatenate(grads)


@pytest.fixture(scope="module")
def setup():
    learner = models.Learner(unseen_model())
    weights, tasks = learner.weights(), regression_tasks()
    fd = central_differences(lambda w: query_objective(learner, w, tasks), weights)
    return learner, weights, tasks, fd


def meta_grads(learner, weights, tasks, first_order):
    grads, *_ = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, STEPS,
                                          first_order=first_order)
    return flat(grads)


def test_second_order_meta_gradient_matches_finite_differences(setup):
    learner, weights, tasks, fd = setup
    exact = meta_grads(learner, weights, tasks, first_order=False)
    assert np.max(np.abs(exact - fd)) / np.max(np.abs(fd)) < 1e-6


def test_second_order_inside_tf_function_is_the_same(setup):
    learner, weights, tasks, _ = setup
    compiled = tf.function(lambda t: algorithms.maml_meta_grads(
        learner, metrics.mse, learner.weights(), t, INNER_LR, STEPS)[0])
    np.testing.assert_allclose(flat(compiled(tasks)), meta_grads(learner, weights, tasks, False),
                               rtol=1e-10, atol=1e-12)


def test_first_order_differs_and_equals_gradient_at_adapted_weights(setup):
    learner, weights, tasks, fd = setup
    first = meta_grads(learner, weights, tasks, first_order=True)
    assert np.max(np.abs(first - fd)) / np.max(np.abs(fd)) > 1e-2
    # Hand-built reference: the query-loss gradient w.r.t. the adapted weights themselves.
    per_task = []
    for t in range(tasks.support_x.shape[0]):
        fast = algorithms.adapt(learner, metrics.mse, weights, tasks.support_x[t],
                                tasks.support_y[t], INNER_LR, STEPS)
        with tf.GradientTape() as tape:
            tape.watch(fast)
            loss = metrics.mse(learner(fast, tasks.query_x[t]), tasks.query_y[t])
        per_task.append(flat(tape.gradient(loss, fast)))
    np.testing.assert_allclose(first, np.mean(per_task, axis=0), rtol=1e-10, atol=1e-12)


def test_adapt_zero_steps_is_identity_and_variables_never_change(setup):
    learner, weights, tasks, _ = setup
    before = [v.numpy().copy() for v in learner.trainable_variables]
    same = algorithms.adapt(learner, metrics.mse, weights, tasks.support_x[0], tasks.support_y[0],
                            INNER_LR, 0)
    assert all(a is b for a, b in zip(same, weights))
    fast = algorithms.adapt(learner, metrics.mse, weights, tasks.support_x[0], tasks.support_y[0],
                            INNER_LR, 3)
    assert not np.allclose(flat(fast), flat(weights))
    meta_grads(learner, weights, tasks, first_order=False)
    for b, v in zip(before, learner.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())


def test_negative_steps_are_refused_not_taken_as_none(setup):
    learner, weights, tasks, _ = setup
    for call in (lambda: algorithms.adapt(learner, metrics.mse, weights, tasks.support_x[0],
                                          tasks.support_y[0], INNER_LR, -1),
                 lambda: algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, -1),
                 lambda: algorithms.reptile_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, 1.5)):
        with pytest.raises(ValueError, match="non-negative int"):
            call()


def test_a_per_example_metric_is_averaged_per_task(setup):
    learner, weights, tasks, _ = setup
    per_example = {"abs": lambda y, p: tf.abs(y - p)[:, 0]}  # [examples], not a scalar
    result = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, STEPS,
                                        metric_fns=per_example)
    assert result.metrics["post_abs"].shape == ()
    expected = []
    for t in range(tasks.support_x.shape[0]):
        fast = algorithms.adapt(learner, metrics.mse, weights, tasks.support_x[t], tasks.support_y[t],
                                INNER_LR, STEPS)
        expected.append(np.abs(learner(fast, tasks.query_x[t]) - tasks.query_y[t]).mean())
    expected = np.mean(expected)
    np.testing.assert_allclose(float(result.metrics["post_abs"]), expected, rtol=1e-10)


def test_batch_norm_offsets_are_outer_loop_only():
    model = models.conv_net((8, 8, 1), outputs=3, filters=4, seed=1)
    learner = models.Learner(model)
    names = [v.path for v, m in zip(learner.trainable_variables, learner.inner_mask) if not m]
    assert len(names) == 4 and all("batch_norm" in n and n.endswith("beta") for n in names)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 8, 8, 1)).astype("float32"), np.arange(6, dtype="int32") % 3
    loss = metrics.make_xent_over_k(2)
    fast = algorithms.adapt(learner, loss, learner.weights(), x, y, 0.5, 2)
    for v, w, f, m in zip(learner.trainable_variables, learner.weights(), fast, learner.inner_mask):
        if not m:
            np.testing.assert_array_equal(w.numpy(), f.numpy())
        elif "conv" in v.path and v.path.endswith("bias"):
            # A bias right before a batch norm cancels in it: its gradient is zero (exactly on
            # the first layer, where the norm folds into the convolution; to rounding elsewhere).
            np.testing.assert_allclose(w.numpy(), f.numpy(), atol=1e-5)
        else:
            assert not np.array_equal(w.numpy(), f.numpy())
    # ...yet the meta-gradient does reach them (they are learned by the outer loop).
    tasks = Task(*[tf.constant(a[None]) for a in (x, y, x, y)])
    grads, *_ = algorithms.maml_meta_grads(learner, loss, learner.weights(), tasks, 0.5, 1)
    assert all(np.abs(g.numpy()).max() > 0 for g, m in zip(grads, learner.inner_mask) if not m)


def test_batch_norm_uses_batch_statistics_at_every_call():
    learner = models.Learner(models.fc_net(3, 2, hidden=(8,), norm="batch_norm", seed=1))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    # Dense then batch-statistics BN: a constant shift of every input cancels out exactly;
    # the moving statistics (inference mode) would not cancel it.
    shifted = x + np.array([3.0, -2.0, 1.0], dtype="float32")
    np.testing.assert_allclose(learner(learner.weights(), x), learner(learner.weights(), shifted),
                               rtol=1e-4, atol=1e-5)


def test_reptile_meta_gradient_is_theta_minus_adapted_weights(setup):
    learner, weights, tasks, _ = setup
    one = Task(*[t[:1] for t in tasks])
    grads, *_ = algorithms.reptile_meta_grads(learner, metrics.mse, weights, one, INNER_LR, 3)
    fast = algorithms.adapt(learner, metrics.mse, weights, one.support_x[0], one.support_y[0],
                            INNER_LR, 3, first_order=True)
    np.testing.assert_allclose(flat(grads), flat(weights) - flat(fast), rtol=1e-10, atol=1e-14)
    # One inner step: the Reptile direction is alpha times the support-loss gradient.
    grads1, *_ = algorithms.reptile_meta_grads(learner, metrics.mse, weights, one, INNER_LR, 1)
    with tf.GradientTape() as tape:
        tape.watch(weights)
        loss = metrics.mse(learner(weights, one.support_x[0]), one.support_y[0])
    np.testing.assert_allclose(flat(grads1), INNER_LR * flat(tape.gradient(loss, weights)),
                               rtol=1e-10, atol=1e-14)


def test_classification_loss_is_summed_over_examples_and_divided_by_k():
    logits = tf.constant(np.random.default_rng(0).normal(size=(10, 5)))
    labels = tf.constant(np.arange(10) % 5)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    np.testing.assert_allclose(metrics.make_xent_over_k(2)(labels, logits),
                               tf.reduce_sum(per_example) / 2)


def test_accuracy_reduces_over_the_class_axis_on_non_square_predictions():
    logits = tf.constant([[0.0, 1.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0, 0.0],
                          [0.0, 0.0, 0.0, 0.0, 3.0]])
    assert float(metrics.accuracy(tf.constant([1, 0, 3]), logits)) == pytest.approx(2 / 3)


def test_mean_and_ci95():
    stats = metrics.mean_and_ci95(np.array([[1.0, 2.0], [3.0, 2.0]]))
    np.testing.assert_allclose(stats["mean"], [2.0, 2.0])
    np.testing.assert_allclose(stats["ci95"], [1.96 * 1.0 / np.sqrt(2), 0.0])
    diverged = metrics.mean_and_ci95(np.array([1.0, 2.0, np.inf]))
    assert diverged["mean"] == np.inf and diverged["median"] == 2.0 and diverged["nonfinite"] == 1


def test_stock_keras_batch_norm_is_flagged_and_ours_is_not():
    inp = keras.Input((4,))
    stock = keras.Model(inp, keras.layers.BatchNormalization()(keras.layers.Dense(3)(inp)))
    with pytest.warns(UserWarning, match="BatchNormalization in this model"):
        models.Learner(stock)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.Learner(models.conv_net((8, 8, 1), 3, filters=4))
