"""A user's own Keras model through the runner: dropout seeds on resume, stock BN after training, clipping, Reptile's loss scale, the README example."""

import keras
import numpy as np
import tensorflow as tf

from maml_tf.bench.step import SyntheticImages
from maml_tf.experiment import distribute
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import Experiment
from maml_tf.experiment.train import train_and_evaluate
from omniglot_helpers import needs_data, omniglot_config

SINE = dict(dataset="sinusoid", shots=5, queries=5, meta_batch_size=2, inner_lr=0.01,
            val_interval=0, checkpoint_interval=2, print_interval=1, log=False)


def dropout_mlp():
    inputs = keras.Input((1,))
    x = keras.layers.Dense(16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
    x = keras.layers.Dropout(0.3, seed=5)(x)
    return keras.Model(inputs, keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(2))(x))


def test_resumed_dropout_run_equals_an_uninterrupted_one(tmp_path):
    config = Config(**SINE, metatrain_iterations=4)
    whole = dropout_mlp()
    train_and_evaluate(config, str(tmp_path / "whole"), model=whole)
    train_and_evaluate(config.replace(metatrain_iterations=2), str(tmp_path / "cut"), model=dropout_mlp())
    resumed = dropout_mlp()
    train_and_evaluate(config, str(tmp_path / "cut"), model=resumed)
    for a, b in zip(whole.weights, resumed.weights):  # weights and seed states
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    seed = [v for v in whole.non_trainable_variables if "seed" in v.path][0]
    assert seed.numpy()[1] == 4  # advanced once per meta-iteration


def test_stock_batch_norm_predict_after_training_matches_a_hand_computation(tmp_path):
    inputs = keras.Input((1,))
    h = keras.layers.Dense(8, name="dense")(inputs)
    out = keras.layers.Dense(1, name="head")(keras.layers.BatchNormalization(name="bn")(h))
    model = keras.Model(inputs, out)
    train_and_evaluate(Config(**SINE, metatrain_iterations=3), str(tmp_path), model=model)
    bn = model.get_layer("bn")
    mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    assert np.abs(mean).max() > 1e-4 and np.abs(var - 1).max() > 1e-4  # trained, not the init
    x = np.linspace(-5, 5, 7, dtype="float32")[:, None]
    kernel, bias = (v.numpy() for v in model.get_layer("dense").weights)
    z = (x @ kernel + bias - mean) / np.sqrt(var + bn.epsilon) * bn.gamma.numpy() + bn.beta.numpy()
    head_k, head_b = (v.numpy() for v in model.get_layer("head").weights)
    np.testing.assert_allclose(model.predict(x, verbose=0), z @ head_k + head_b, rtol=1e-5, atol=1e-5)


def test_loading_a_run_of_a_user_model_gives_that_model_trained_never_a_fresh_paper_net(tmp_path):
    import os

    import pytest

    import maml_tf
    from maml_tf.errors import UserError

    model = dropout_mlp()
    train_and_evaluate(Config(**SINE, metatrain_iterations=4), str(tmp_path), model=model)
    loaded = maml_tf.load(str(tmp_path))
    assert loaded.model.count_params() == model.count_params()  # not the paper's 40-40 MLP
    for a, b in zip(loaded.model.trainable_weights, model.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    os.remove(tmp_path / "model.keras")  # then its settings rebuild the paper's network
    with pytest.raises(UserError, match="hold another network than its settings build"):
        maml_tf.load(str(tmp_path))


def _sine_net(*layers, dtype="float32"):
    inputs = keras.Input((1,), dtype=dtype)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def test_a_model_whose_output_the_loss_would_broadcast_or_mix_is_refused(tmp_path):
    import pytest

    from maml_tf.errors import UserError

    two = keras.Input((1,))
    cases = {
        "to float32 [2, 1, 1]": _sine_net(keras.layers.Dense(1), keras.layers.Reshape((1, 1))),
        "to 2 outputs": keras.Model(two, [keras.layers.Dense(1)(two), keras.layers.Dense(1)(two)]),
        "to float64 [2, 1]": _sine_net(keras.layers.Dense(1, dtype="float64"), dtype="float64"),
        "has no trainable weights": _sine_net(keras.layers.Lambda(lambda t: 2 * t)),
    }
    for said, model in cases.items():
        with pytest.raises(UserError, match=said.replace("[", r"\[")):
            train_and_evaluate(Config(**SINE, metatrain_iterations=1), str(tmp_path / said), model=model)


def test_grad_clip_brings_a_gradient_above_the_bound_to_the_bound():
    var = tf.Variable([0.0, 0.0, 0.0])
    distribute.apply_mean(keras.optimizers.SGD(1.0), [tf.constant([5.0, -0.3, -7.0])], [var], 1.0)
    np.testing.assert_allclose(var.numpy(), [-1.0, 0.3, 1.0])


def test_reptile_training_and_evaluation_steps_share_one_scale():
    """K_train = 4, K_eval = 1: the same batch gives the same inner gradient in both phases
    (Reptile's summed loss); MAML's loss over K scales it by K_train / K_eval = 4."""
    sampler = SyntheticImages(3, (6, 6, 1), classes=6, per_class=6)
    task = sampler.sample("train", 1, 4, 1, np.random.default_rng(0))
    x, y = task.support_x[0], task.support_y[0]

    def grads(algorithm, shots):
        exp = Experiment(Config(dataset="omniglot", algorithm=algorithm, ways=3, shots=4,
                                eval_shots=1, num_filters=4), sampler=sampler)
        loss = exp.loss_fn if shots is None else exp.loss(shots)
        with tf.GradientTape() as tape:
            value = loss(y, exp.learner(exp.learner.trainable_variables, x))
        return np.concatenate([g.numpy().ravel() for g in tape.gradient(value, exp.learner.trainable_variables)])

    np.testing.assert_allclose(grads("reptile", None), grads("reptile", 1), rtol=1e-6)
    np.testing.assert_allclose(grads("maml", 1), 4 * grads("maml", None), rtol=1e-5)


def readme_model():
    """The README's example network: a user-written conv net with Dropout."""
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for _ in range(3):
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Dropout(0.2)(keras.layers.Flatten()(x))
    return keras.Model(inputs, keras.layers.Dense(5)(x))


@needs_data
def test_readme_example_meta_learns_a_user_model_with_dropout(tmp_path):
    model = readme_model()
    before = [v.numpy().copy() for v in model.trainable_variables]
    config = omniglot_config(str(tmp_path / "cache"), inner_lr=0.4, eval_inner_lr=0.4,
                             meta_batch_size=2, metatrain_iterations=2, val_interval=2,
                             val_tasks=4, eval_batch_size=4, log=False)
    last = train_and_evaluate(config, str(tmp_path / "run"), model=model)
    assert last["iteration"] == 2 and np.isfinite(last["accuracy"]).all()
    assert all(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
    assert (tmp_path / "run" / "checkpoints").is_dir()
