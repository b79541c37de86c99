"""Learner takes any built Keras model: a subclassed one whose call() has no `training` argument
gives the meta-gradient the same functional network does; a model with nothing to learn, or tasks
without their meta-batch axis, are refused with a message saying so."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf import algorithms, metrics, models
from maml_tf.types import Task


class Plain(keras.Model):
    """The usual subclassing style: call(self, x), no `training`."""

    def __init__(self):
        super().__init__()
        self.hidden, self.head = keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1)

    def call(self, x):
        return self.head(self.hidden(x))


def tasks(count=2, examples=4):
    rng = np.random.default_rng(0)
    return Task(*[tf.constant(rng.normal(size=(count, examples, 1)), tf.float32) for _ in range(4)])


def meta_grads(model, batch):
    grads, *_ = algorithms.maml_meta_grads(models.Learner(model), metrics.mse,
                                           models.Learner(model).weights(), batch, 0.1, 1)
    return grads


def test_a_subclassed_model_without_a_training_argument_gives_the_functional_meta_gradient():
    sub = Plain()
    sub(np.zeros((1, 1), np.float32))
    inputs = keras.Input((1,))
    functional = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(5, activation="tanh")(inputs)))
    for a, b in zip(functional.weights, sub.weights):
        a.assign(b)
    for a, b in zip(meta_grads(sub, tasks()), meta_grads(functional, tasks())):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_a_model_without_trainable_weights_is_refused():
    inputs = keras.Input((1,))
    with pytest.raises(ValueError, match="the model has no trainable weights"):
        models.Learner(keras.Model(inputs, keras.layers.Lambda(lambda t: 2 * t)(inputs)))


def test_one_task_without_the_meta_batch_axis_is_refused_not_split_into_tasks():
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    one = Task(*[t[0] for t in tasks()])  # [examples, 1]: each example would be a task
    with pytest.raises(ValueError, match=r"support_x has shape \(4, 1\): a batch of tasks is \[meta_batch"):
        meta_grads(model, one)
    assert len(meta_grads(model, Task(*[t[:1] for t in tasks()]))) == 2  # a batch of one is fine
