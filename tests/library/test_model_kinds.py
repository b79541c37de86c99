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


class Normed(keras.Model):
    """Keras's guide style: call(x, training=None) that does not pass `training` on."""

    def __init__(self):
        super().__init__()
        self.dense, self.norm = keras.layers.Dense(3), keras.layers.BatchNormalization()

    def call(self, x, training=None):
        return self.norm(self.dense(x))


class Block(keras.layers.Layer):
    """A custom layer holding Keras layers (it has no `.layers`)."""

    def __init__(self):
        super().__init__()
        self.dense, self.norm = keras.layers.Dense(3), keras.layers.BatchNormalization()
        self.drop = keras.layers.Dropout(0.5, seed=1)

    def call(self, x, training=None):
        return self.drop(self.norm(self.dense(x), training=training), training=training)


def test_sublayers_called_without_training_run_as_keras_trains_them():
    """stateless_call runs call() directly: a batch norm reached without `training` ran on its
    moving statistics (inference) in the inner loop, silently."""
    model = Normed()
    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    model(x)
    learner = models.Learner(model)
    out = learner(learner.weights(), tf.constant(x)).numpy()
    np.testing.assert_allclose(out, model(x, training=True).numpy(), atol=1e-6)
    assert not np.allclose(out, model(x, training=False).numpy(), atol=1e-3)
    evaluating = models.Learner(model, training=False)
    np.testing.assert_allclose(evaluating(evaluating.weights(), tf.constant(x)).numpy(),
                               model(x, training=False).numpy(), atol=1e-6)


def test_layers_inside_a_custom_layer_are_seen():
    """Its batch norm's scale and offset were adapted in the inner loop (a top-level one's are
    not) and its Dropout drew the same masks for every task of a meta-batch."""
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(Block()(inputs)))
    learner = models.Learner(model)
    adapted = {v.path: m for v, m in zip(model.trainable_variables, learner.inner_mask)}
    assert [p for p, m in adapted.items() if not m] and all(
        "batch_normalization" in p for p, m in adapted.items() if not m), adapted
    assert any(learner.is_seed)


def test_a_regularised_model_is_refused_and_an_embedding_adapts():
    inputs = keras.Input((2,))
    penalised = keras.Model(inputs, keras.layers.Dense(1, kernel_regularizer="l2")(inputs))
    with pytest.raises(ValueError, match="have regularizers, which maml_tf does not add"):
        models.Learner(penalised)
    tokens = keras.Input((3,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 4)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(1)(pooled))
    ids = tf.constant(np.random.default_rng(1).integers(0, 10, size=(2, 4, 3)), tf.int32)
    batch = Task(ids, tf.ones((2, 4, 1)), ids, tf.zeros((2, 4, 1)))
    grads = meta_grads(model, batch)  # was: TypeError on the Embedding's IndexedSlices
    assert all(np.all(np.isfinite(g.numpy())) for g in grads) and np.any(grads[0].numpy())


def test_tasks_of_several_inputs_are_refused_by_the_meta_batch_in_one_line():
    """A dict of inputs failed deep inside with "'dict' object has no attribute 'shape'"."""
    a, b = keras.Input((1,), name="a"), keras.Input((1,), name="b")
    model = keras.Model({"a": a, "b": b}, keras.layers.Dense(1)(keras.layers.Concatenate()([a, b])))
    t = tasks()
    batch = Task({"a": t.support_x, "b": t.support_x}, t.support_y, {"a": t.query_x, "b": t.query_x},
                 t.query_y)
    with pytest.raises(ValueError, match="support_x is a dict of inputs: the meta-batch functions"):
        meta_grads(model, batch)
