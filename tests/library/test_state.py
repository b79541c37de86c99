"""Any Keras model: dropout masks and moving statistics threaded through the loops, independent seeds, Keras losses."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf import algorithms, evaluation, metrics, models
from maml_tf.types import Task


def dropout_model(width=16):
    """x -> Dropout(x) -> identity Dense: the output shows the mask (0 or 2 per unit)."""
    inp = keras.Input((width,))
    x = keras.layers.Dropout(0.5, seed=7)(inp)
    out = keras.layers.Dense(width, use_bias=False, kernel_initializer="identity")(x)
    return keras.Model(inp, out)


def mask(learner, weights, state, width=16):
    outputs, state = learner.apply(weights, state, tf.ones((1, width)))
    return tuple(outputs.numpy().ravel() > 0), state


def test_dropout_masks_differ_across_inner_steps_tasks_and_meta_steps():
    learner = models.Learner(dropout_model())
    w, start = learner.weights(), learner.state()
    first, after = mask(learner, w, learner.task_state(start, 0))
    second, _ = mask(learner, w, after)  # the next inner step, state threaded
    other_task, _ = mask(learner, w, learner.task_state(start, 1))
    next_iter = learner.next_state(start, learner.averaged(start))
    later, _ = mask(learner, w, learner.task_state(next_iter, 0))
    assert len({first, second, other_task, later}) == 4
    assert mask(learner, w, learner.task_state(start, 0))[0] == first  # seeded: reproducible


def test_identical_tasks_get_different_masks_in_the_meta_gradient():
    learner = models.Learner(dropout_model(4))
    rng = np.random.default_rng(0)
    one = [rng.normal(size=(1, 6, 4)).astype("float32") for _ in range(4)]
    tasks = Task(*[tf.constant(np.concatenate([a, a])) for a in one])  # task 1 == task 0
    result = algorithms.maml_meta_grads(learner, "mse", learner.weights(), tasks, 0.1, 2)
    per_task = [algorithms.maml_meta_grads(learner, "mse", learner.weights(),
                                           Task(*[t[i:i + 1] for t in tasks]), 0.1, 2).grads[0]
                for i in (0, 1)]
    # Task 0 alone draws the masks it draws in the batch; task 1 alone would draw task 0's.
    np.testing.assert_allclose(per_task[0], per_task[1])
    assert not np.allclose(result.grads[0], per_task[0])
    seed = [s for s, is_seed in zip(result.state, learner.is_seed) if is_seed][0]
    np.testing.assert_array_equal(seed.numpy(), learner.state()[0].numpy() + [0, 1])


def bn_model():
    inp = keras.Input((3,))
    h = keras.layers.Dense(4, name="dense")(inp)
    out = keras.layers.Dense(2)(keras.layers.BatchNormalization(name="bn")(h))
    return keras.Model(inp, out)


def test_stock_batch_norm_moving_statistics_are_the_tasks_mean_update():
    with pytest.warns(UserWarning, match="BatchNormalization"):
        learner = models.Learner(bn_model())
    rng = np.random.default_rng(1)
    tasks = Task(*[tf.constant(rng.normal(size=s).astype("float32"))
                   for s in ((3, 5, 3), (3, 5, 2), (3, 7, 3), (3, 7, 2))])
    result = algorithms.maml_meta_grads(learner, "mse", learner.weights(), tasks, 0.1, 0)
    kernel, bias = [v.numpy() for v in learner.model.get_layer("dense").trainable_variables]
    h = tasks.query_x.numpy() @ kernel + bias  # no inner step: one forward pass per task
    mean = (0.01 * h.mean(axis=1)).mean(axis=0)  # from zeros, momentum 0.99
    var = (0.99 + 0.01 * h.var(axis=1)).mean(axis=0)  # from ones
    bn = learner.model.get_layer("bn")
    got = {id(v): s.numpy() for v, s in zip(learner.state_variables, result.state)}
    np.testing.assert_allclose(got[id(bn.moving_mean)], mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[id(bn.moving_variance)], var, rtol=1e-5)


def test_non_transductive_prediction_is_a_per_query_batch_with_the_support_set():
    learner = models.Learner(models.fc_net(3, 2, hidden=(8,), norm="batch_norm", seed=2))
    rng = np.random.default_rng(2)
    task = Task(*[tf.constant(rng.normal(size=s).astype("float32"))
                  for s in ((4, 3), (4, 2), (5, 3), (5, 2))])
    w = learner.weights()
    got = evaluation.predict(learner, w, task, transductive=False).numpy()
    for i in range(5):
        batch = np.concatenate([task.support_x.numpy(), task.query_x.numpy()[i:i + 1]])
        np.testing.assert_allclose(got[i], learner(w, batch).numpy()[-1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, evaluation.predict(learner, w, task).numpy(), atol=1e-3)


@pytest.mark.parametrize("builder", [lambda s: models.conv_net((8, 8, 1), 3, 4, seed=s),
                                     lambda s: models.fc_net(3, 2, (8, 8, 8), seed=s)])
def test_two_seeds_share_no_kernel(builder):
    kernels = [[v.numpy() for v in builder(s).trainable_variables if "kernel" in v.path]
               for s in (0, 1)]
    for a in kernels[0]:
        assert not any(a.shape == b.shape and np.allclose(a, b) for b in kernels[1])
    again = [v.numpy() for v in builder(0).trainable_variables if "kernel" in v.path]
    assert all(np.array_equal(a, b) for a, b in zip(kernels[0], again))


def test_keras_loss_object_gives_the_builtin_meta_gradient():
    learner = models.Learner(models.fc_net(4, 3, hidden=(8,), seed=3))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 4)).astype("float32")
    y = np.tile(np.arange(3, dtype="int32"), (2, 2))
    tasks = Task(*[tf.constant(a) for a in (x[:, :3], y[:, :3], x[:, 3:], y[:, 3:])])

    def grads(loss, lr):
        return algorithms.maml_meta_grads(learner, loss, learner.weights(), tasks, lr, 2).grads

    builtin = grads(metrics.make_xent_over_k(1), 0.4)
    summed = grads(keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum"), 0.4)
    # Keras' default mean over the 3 examples is the built-in (K = 1: summed) divided by 3.
    mean = grads(keras.losses.SparseCategoricalCrossentropy(from_logits=True), 0.4 * 3)
    for b, s, m in zip(builtin, summed, mean):
        np.testing.assert_allclose(s, b, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(3 * m.numpy(), b, rtol=1e-4, atol=1e-6)
    y_true, y_pred = tf.constant([[1.0], [2.0]]), tf.constant([[0.0], [4.0]])
    assert float(metrics.get_loss("mse")(y_true, y_pred)) == pytest.approx(2.5)
