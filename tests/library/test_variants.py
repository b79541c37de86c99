"""MAML's successors in the library: exact meta-gradients with learned step sizes (their own
gradient included), the multi-step loss and ANIL's mask; MAML++'s schedules as its code computes them."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf import algorithms, inner_rates, layers, metrics, models, per_step, variants
from test_algorithms import central_differences, flat, regression_tasks, unseen_model

INNER_LR, STEPS = 0.3, 2


def objective(learner, weights, rates, tasks, step_weights=None, step_params=None):
    """Mean over tasks of the (step-weighted) query loss after adaptation, task by task,
    each step with its learned rates: the reference the exact meta-gradient must match."""
    losses = []
    for t in range(tasks.support_x.shape[0]):
        fast, terms = list(weights), []
        for step in range(STEPS):
            lr = INNER_LR if rates is None else rates.at(step)
            if step_params is not None:  # step i's batch-norm offsets, kept in its query pass
                fast = [w if p is None else (p[step - 1] if step else w)
                        for w, p in zip(fast, step_params.values)]
            fast, *_ = algorithms.inner_step(learner, metrics.mse, fast, tasks.support_x[t],
                                             tasks.support_y[t], lr)
            query = metrics.mse(tasks.query_y[t], learner(fast, tasks.query_x[t]))
            if step_weights is not None:
                terms.append(step_weights[step] * query)
        losses.append(tf.add_n(terms) if step_weights is not None else query)
    return tf.reduce_mean(losses)


@pytest.fixture(scope="module")
def setup():
    learner = models.Learner(unseen_model())
    return learner, learner.weights(), regression_tasks()


def random_rates(learner, granularity, seed=0):
    """Rates away from their uniform start, so a wrong index or shape would show."""
    rng = np.random.default_rng(seed)
    init = inner_rates.initial_values(learner.weights(), learner.inner_mask, granularity,
                                      INNER_LR, STEPS)
    return [None if a is None else a * rng.uniform(0.5, 1.5, a.shape) for a in init]


@pytest.mark.parametrize("granularity, msl", [("per_param", False), ("per_layer_step", False),
                                              ("none", True), ("per_layer_step", True)])
def test_meta_gradient_with_learned_rates_and_multi_step_loss_matches_finite_differences(
        setup, granularity, msl):
    learner, weights, tasks = setup
    arrays = random_rates(learner, granularity) if granularity != "none" else None
    rates = inner_rates.from_arrays(arrays, granularity) if arrays else None
    step_weights = tf.constant([0.3, 0.7], tf.float64) if msl else None
    learned = rates.learned() if rates else []

    @tf.function  # traced once: the finite differences call it twice per parameter
    def fn(params):
        own = rates.replace_learned(params[len(weights):]) if rates else None
        return objective(learner, params[:len(weights)], own, tasks, step_weights)

    fd = central_differences(lambda p: float(fn(p)), list(weights) + learned)
    result = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, STEPS,
                                              rates=rates, step_weights=step_weights)
    exact = flat(result.grads)
    assert len(result.grads) == len(weights) + len(learned)
    assert np.max(np.abs(exact - fd)) / np.max(np.abs(fd)) < 1e-6
    if learned:  # the rates' own gradient is there, not zero
        assert np.abs(flat(result.grads[len(weights):])).max() > 1e-3


def batch_norm_model():
    """Dense -> batch norm (an offset, no scale, as the paper's networks) -> softplus -> Dense."""
    inp = keras.Input((2,), dtype="float64")
    h = keras.layers.Dense(6, dtype="float64")(inp)
    h = layers.BatchNorm(center=True, scale=False, epsilon=1e-3, dtype="float64")(h)
    h = keras.layers.Activation("softplus", dtype="float64")(h)
    return keras.Model(inp, keras.layers.Dense(1, dtype="float64")(h))


@pytest.mark.parametrize("msl", [False, True])
def test_per_step_batch_norm_offsets_meta_gradient_matches_finite_differences(msl):
    model = batch_norm_model()
    learner, tasks = models.Learner(model), regression_tasks()
    weights, mask = learner.weights(), per_step.batch_norm_mask(model)
    assert sum(mask) == 1 and not any(m and i for m, i in zip(mask, learner.inner_mask))
    rng = np.random.default_rng(3)
    params = per_step.from_arrays([rng.normal(size=(STEPS - 1,) + tuple(w.shape)) if m else None
                                   for w, m in zip(weights, mask)])
    rates = inner_rates.from_arrays(random_rates(learner, "per_layer_step"), "per_layer_step")
    step_weights = tf.constant([0.3, 0.7], tf.float64) if msl else None
    extra = rates.learned() + params.learned()

    @tf.function
    def fn(p):
        own_rates = rates.replace_learned(p[len(weights):len(weights) + len(rates.learned())])
        own_params = params.replace_learned(p[len(weights) + len(rates.learned()):])
        return objective(learner, p[:len(weights)], own_rates, tasks, step_weights, own_params)

    fd = central_differences(lambda p: float(fn(p)), list(weights) + extra)
    result = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, STEPS,
                                              rates=rates, step_weights=step_weights,
                                              step_params=params)
    exact = flat(result.grads)
    assert np.max(np.abs(exact - fd)) / np.max(np.abs(fd)) < 1e-6
    assert np.abs(flat(result.grads[-1:])).max() > 1e-3  # step 1's offsets get their gradient


@pytest.mark.parametrize("granularity", ["none", "per_param"])
def test_anil_meta_gradient_matches_finite_differences(granularity):
    model = unseen_model()
    learner, tasks = models.Learner(model, inner_mask=variants.head_mask(model)), regression_tasks()
    assert sum(learner.inner_mask) == 2
    weights = learner.weights()
    rates = (inner_rates.from_arrays(random_rates(learner, granularity), granularity)
             if granularity != "none" else None)
    learned = rates.learned() if rates else []

    @tf.function
    def fn(p):
        own = rates.replace_learned(p[len(weights):]) if rates else None
        return objective(learner, p[:len(weights)], own, tasks)

    fd = central_differences(lambda p: float(fn(p)), list(weights) + learned)
    result = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, STEPS,
                                              rates=rates)
    exact = flat(result.grads)
    assert np.max(np.abs(exact - fd)) / np.max(np.abs(fd)) < 1e-6
    body = flat([g for g, m in zip(result.grads, learner.inner_mask) if not m])
    assert np.abs(body).max() > 1e-3  # the body is learned through the head's adaptation


def test_the_annealed_multi_step_loss_is_maml(setup):
    """Once MAML++'s annealing ends, its weights are the last step's alone: MAML's meta-gradient."""
    learner, weights, tasks = setup
    last = variants.msl_weights(10 ** 6, STEPS, 5000, tf.float64)
    ours = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, STEPS,
                                      step_weights=last)
    maml = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, STEPS)
    np.testing.assert_allclose(flat(ours.grads), flat(maml.grads), rtol=1e-12, atol=1e-15)
    assert {k: float(v) for k, v in ours.metrics.items()} == {k: float(v) for k, v in maml.metrics.items()}


def test_uniform_learned_rates_equal_the_fixed_step_size(setup):
    learner, weights, tasks = setup
    for granularity in ("per_param", "per_layer_step"):
        init = inner_rates.initial_values(weights, learner.inner_mask, granularity, INNER_LR, STEPS)
        rates = inner_rates.from_arrays(init, granularity)
        ours = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR,
                                                STEPS, rates=rates)
        maml = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, STEPS)
        np.testing.assert_allclose(flat(ours.grads[:len(weights)]), flat(maml.grads), rtol=1e-12,
                                   atol=1e-15)


def test_first_order_learned_rates_still_get_their_gradient(setup):
    learner, weights, tasks = setup
    rates = inner_rates.from_arrays(random_rates(learner, "per_param"), "per_param")
    result = algorithms.maml_meta_grads(learner, metrics.mse, weights, tasks, INNER_LR, STEPS,
                                              first_order=True, rates=rates)
    assert np.abs(flat(result.grads[len(weights):])).max() > 1e-3


def test_anil_adapts_the_head_only_and_the_body_still_gets_a_meta_gradient():
    model = models.conv_net((8, 8, 1), outputs=3, filters=4, seed=1)
    learner = models.Learner(model, inner_mask=variants.head_mask(model))
    assert sum(learner.inner_mask) == 2 and learner.inner_mask[-2:] == (True, True)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 8, 8, 1)).astype("float32"), np.arange(6, dtype="int32") % 3
    loss = metrics.make_xent_over_k(2)
    fast = algorithms.adapt(learner, loss, learner.weights(), x, y, 0.5, 2)
    for w, f, m in zip(learner.weights(), fast, learner.inner_mask):
        assert np.array_equal(w.numpy(), f.numpy()) != m
    tasks = algorithms.Task(*[tf.constant(a[None]) for a in (x, y, x, y)])
    grads = algorithms.maml_meta_grads(learner, loss, learner.weights(), tasks, 0.5, 1).grads
    kernels = [g for g, v, m in zip(grads, model.trainable_variables, learner.inner_mask)
               if not m and v.path.endswith("kernel")]
    assert len(kernels) == 4 and all(np.abs(g.numpy()).max() > 0 for g in kernels)


def test_anil_head_of_the_fully_connected_image_network_is_its_last_dense_layer():
    inner = models.fc_net(16, 5, (8, 4))
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, inner(keras.layers.Flatten()(inputs)))
    mask = variants.head_mask(model)
    assert mask == [False] * (len(mask) - 2) + [True, True]
    assert [tuple(v.shape) for v, m in zip(model.trainable_variables, mask) if m] == [(4, 5), (5,)]


def maml_plus_plus_importance(epoch, steps, num_epochs):
    """Their get_per_step_loss_importance_vector, transcribed (few_shot_learning_system.py)."""
    loss_weights = np.ones(steps) * (1.0 / steps)
    decay_rate = 1.0 / steps / num_epochs
    min_value = 0.03 / steps
    for i in range(len(loss_weights) - 1):
        loss_weights[i] = np.maximum(loss_weights[i] - (epoch * decay_rate), min_value)
    loss_weights[-1] = np.minimum(loss_weights[-1] + (epoch * (steps - 1) * decay_rate),
                                  1.0 - ((steps - 1) * min_value))
    return loss_weights


@pytest.mark.parametrize("steps, num_epochs", [(5, 10), (5, 15), (3, 2), (1, 10)])
def test_multi_step_loss_weights_are_maml_plus_plus_ones(steps, num_epochs):
    for done in (0, 1, 499, 500, 1234, 4999, 5000, 7499, 7500, 20000):
        epoch = done // 500  # their int(current_iter / total_iter_per_epoch)
        ours = variants.msl_weights(done, steps, num_epochs * 500, tf.float64).numpy()
        if epoch < num_epochs:  # their use_multi_step_loss_optimization branch
            np.testing.assert_allclose(ours, maml_plus_plus_importance(epoch, steps, num_epochs),
                                       rtol=1e-12)
        else:  # the final step's loss alone
            np.testing.assert_array_equal(ours, np.eye(steps)[-1])
        assert variants.msl_epoch_active(done, num_epochs * 500) == (epoch < num_epochs)


def test_cosine_meta_lr_is_torchs_closed_form_per_epoch():
    schedule = variants.EpochCosine(1e-3, 1e-5, 50000)  # MAML++: 100 epochs of 500
    for step in (0, 499, 500, 12345, 25000, 49999):
        epoch = step // 500
        torch_lr = 1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * epoch / 100)) / 2
        assert float(schedule(step)) == pytest.approx(torch_lr, rel=1e-6, abs=1e-10)  # float32
    assert variants.EpochCosine.from_config(schedule.get_config()).iterations == 50000


def test_learned_rates_move_under_adam_as_maml_plus_plus_ones_do():
    """20-way: the loss is 20 times a mean cross-entropy, so MAML++'s rate 0.1 is 0.005 here.
    Adam moves a variable by about its learning rate whatever the gradient's size: held in a
    mean loss's units (0.1), one step of 1e-3 changes the rate by 1%, as in MAML++ (by 20% if
    the variable held 0.005 itself)."""
    weight = tf.Variable(tf.ones((3,)))
    rates = inner_rates.InnerRates([weight], [True], "per_layer_step", 0.005, 1, unit=20)
    np.testing.assert_allclose(rates.read().values[0].numpy(), [0.005])
    np.testing.assert_allclose(rates.rates[0].numpy(), [0.1])
    grad_of_rate = tf.constant([2.0])
    (grad,) = rates.variable_grads([grad_of_rate])
    np.testing.assert_allclose(grad.numpy(), [0.1])  # d/dv = d/drate * drate/dv = 2 / 20
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.apply_gradients([(grad, rates.rates[0])])
    moved = 1 - rates.read().values[0].numpy()[0] / 0.005
    assert moved == pytest.approx(0.01, rel=1e-3)
