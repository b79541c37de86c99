"""Reptile: the outer SGD step with annealed ε, its meta-gradient, and no second derivatives."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf import algorithms, evaluation, metrics, models
from maml_tf.errors import UserError
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import Experiment
from maml_tf.models import Learner
from omniglot_helpers import DATA_DIR, needs_data
from tests.library.test_algorithms import flat, regression_tasks, unseen_model

ALPHA = 0.05


def sinusoid_reptile(**changes) -> Experiment:
    config = Config(dataset="sinusoid", algorithm="reptile", meta_batch_size=1, shots=5, queries=5,
                    inner_lr=ALPHA, inner_steps=3, log=False, **changes).validate()
    return Experiment(config)


def sgd_adapted(learner, weights, x, y, steps, lr):
    """W: `steps` plain SGD steps on every weight, written independently of the library."""
    w = [tf.identity(t) for t in weights]
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(w)
            loss = metrics.mse(learner(w, x), y)
        w = [a - lr * g for a, g in zip(w, tape.gradient(loss, w))]
    return w


def test_outer_step_moves_phi_by_annealed_epsilon_towards_w():
    """ε = 1 → 0 over 4 iterations: step i sets φ ← φ + ε_i (W_i − φ) with ε_i = 1 − i/4, so the
    first step (ε = 1, one task) lands on W exactly."""
    exp = sinusoid_reptile(meta_step=1.0, meta_step_final=0.0, metatrain_iterations=4)
    step = exp.make_train_step(3)
    rng = np.random.default_rng(0)
    for i in range(3):
        tasks = exp.sampler.sample("train", 1, 5, 5, rng)
        phi = exp.learner.weights()
        w = sgd_adapted(exp.learner, phi, tasks.support_x[0], tasks.support_y[0], 3, ALPHA)
        step(tasks)
        eps = 1.0 - i / 4
        expected = [p + eps * (a - p) for p, a in zip(phi, w)]
        np.testing.assert_allclose(flat(exp.learner.weights()), flat(expected), rtol=1e-5, atol=1e-6)
    assert float(exp.optimizer.learning_rate) == pytest.approx(0.25)


def test_one_sgd_step_meta_gradient_is_alpha_times_support_gradient():
    """k = 1: θ − W = α ∇L_support(θ), so the outer step is ε·α·∇L_support(φ)."""
    learner = Learner(unseen_model())
    tasks = regression_tasks(num_tasks=1)
    theta = learner.weights()
    grads, *_ = algorithms.reptile_meta_grads(learner, metrics.mse, theta, tasks, ALPHA, 1)
    with tf.GradientTape() as tape:
        tape.watch(theta)
        loss = metrics.mse(learner(theta, tasks.support_x[0]), tasks.support_y[0])
    np.testing.assert_allclose(flat(grads), ALPHA * flat(tape.gradient(loss, theta)), rtol=1e-10)


def test_reptile_is_not_first_order_maml_for_two_steps():
    """Support = query, k = 2: Reptile/α = g1 + g2 (gi = ∇L at the i-th iterate), first-order
    MAML with one inner step = g2 (Reptile paper, section 5): they differ by g1 = ∇L(θ), and
    first-order MAML with the same 2 inner steps (g3) differs from Reptile too."""
    learner = Learner(unseen_model())
    t = regression_tasks(num_tasks=1)
    tasks = t._replace(query_x=t.support_x, query_y=t.support_y)
    theta = learner.weights()
    reptile, *_ = algorithms.reptile_meta_grads(learner, metrics.mse, theta, tasks, ALPHA, 2)
    fomaml = {k: flat(algorithms.maml_meta_grads(learner, metrics.mse, theta, tasks, ALPHA, k,
                                                 first_order=True)[0]) for k in (1, 2)}
    with tf.GradientTape() as tape:
        tape.watch(theta)
        loss = metrics.mse(learner(theta, tasks.support_x[0]), tasks.support_y[0])
    g1 = flat(tape.gradient(loss, theta))
    np.testing.assert_allclose(flat(reptile) / ALPHA - fomaml[1], g1, rtol=1e-8, atol=1e-12)
    same_k = np.linalg.norm(flat(reptile) / ALPHA - fomaml[2])
    assert same_k > 0.5 * np.linalg.norm(fomaml[2])


def _second_order_nodes(exp: Experiment, steps: int) -> int:
    """Nodes of the traced train step (and its loop bodies) that differentiate a gradient:
    TensorFlow names them gradient_tape/gradient_tape/..."""
    graph_def = exp.make_train_step(steps).get_concrete_function().graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    names = [n.name for n in nodes]
    assert any("gradient_tape/" in name for name in names)  # the inner gradients are there
    return sum("gradient_tape/gradient_tape/" in name for name in names)


def test_reptile_builds_no_second_order_gradient():
    maml = Experiment(Config(dataset="sinusoid", meta_batch_size=2, inner_steps=2, log=False))
    assert _second_order_nodes(maml, 2) > 0  # the check sees second order where it exists
    for optimizer in ("sgd", "adam"):
        assert _second_order_nodes(sinusoid_reptile(inner_optimizer=optimizer,
                                                    inner_batch_size=2), 2) == 0


def test_inner_adam_with_minibatches_matches_a_hand_written_adam():
    """Adam β1 = 0 (TF1 constants), state fresh per task, batches of 2 from 5 examples in turn."""
    learner = Learner(unseen_model())
    task = regression_tasks(num_tasks=1)
    one = type(task)(*[x[0] for x in task])
    w = [v.numpy() for v in learner.weights()]
    v = [np.zeros_like(a) for a in w]
    for step, idx in enumerate(([0, 1], [2, 3], [4, 0])):
        ws = [tf.constant(a) for a in w]
        with tf.GradientTape() as tape:
            tape.watch(ws)
            loss = metrics.mse(learner(ws, tf.gather(one.support_x, idx)),
                               tf.gather(one.support_y, idx))
        g = [x.numpy() for x in tape.gradient(loss, ws)]
        v = [0.999 * b + 0.001 * x * x for b, x in zip(v, g)]
        lr_t = 0.01 * np.sqrt(1 - 0.999 ** (step + 1))
        w = [a - lr_t * x / (np.sqrt(b) + 1e-8) for a, x, b in zip(w, g, v)]
    end, _ = algorithms.reptile_adapt(learner, metrics.mse, learner.weights(), one, 0.01, 3,
                                      "adam", 2)
    np.testing.assert_allclose(flat(end.weights), flat(w), rtol=1e-9)


def test_reptile_settings_are_checked():
    with pytest.raises(UserError, match="Reptile settings"):
        Config(dataset="sinusoid", inner_optimizer="adam").validate()
    with pytest.raises(UserError, match="meta_step"):
        Config(dataset="sinusoid", algorithm="reptile", meta_step=0.0).validate()
    with pytest.raises(UserError, match="inner_optimizer"):
        Config(dataset="sinusoid", algorithm="reptile", inner_optimizer="rmsprop").validate()
    assert isinstance(sinusoid_reptile().optimizer, keras.optimizers.SGD)


def _curves(norm: str, transductive: bool):
    learner = Learner(models.fc_net(2, 1, (8, 8), norm, seed=3))
    tasks = regression_tasks(num_tasks=2)
    tasks = type(tasks)(*[tf.cast(x, tf.float32) for x in tasks])
    return evaluation.adaptation_curve(learner, metrics.mse, learner.weights(), tasks, 0.1, 3,
                                       transductive=transductive, optimizer="adam",
                                       batch_size=2)["loss"].numpy()


def test_transductive_prediction_matters_only_with_batch_norm():
    np.testing.assert_allclose(_curves("None", True), _curves("None", False), rtol=1e-5)
    assert np.abs(_curves("batch_norm", True) - _curves("batch_norm", False)).min() > 1e-4


def test_evaluation_curve_ends_at_reptile_adapted_weights():
    """The Reptile evaluation curve's last point is the query loss of reptile_adapt's W."""
    learner = Learner(unseen_model())
    tasks = regression_tasks(num_tasks=1)
    curve = evaluation.adaptation_curve(learner, metrics.mse, learner.weights(), tasks, 0.01, 4,
                                        optimizer="adam", batch_size=2)["loss"].numpy()
    one = type(tasks)(*[x[0] for x in tasks])
    end, _ = algorithms.reptile_adapt(learner, metrics.mse, learner.weights(), one, 0.01, 4,
                                      "adam", 2)
    assert curve[0, -1] == pytest.approx(float(metrics.mse(learner(end.weights, one.query_x),
                                                           one.query_y)), rel=1e-9)
    assert curve[0, -1] != pytest.approx(curve[0, 0], rel=1e-3)  # the steps moved W


@needs_data
def test_short_reptile_run_on_omniglot_beats_chance(cache_dir):
    """The paper's 5-way settings (train shots 10, inner batch 10, 5 Adam steps, meta-batch 5,
    ε 1 → 0) for 200 iterations; 5-way 1-shot evaluation with 5 Adam steps, both modes.
    48 filters, not 64 (a third less training time): the last accuracy over seeds 0/1/2 was
    0.608/0.596/0.588 transductive and 0.564/0.524/0.508 not (64 filters: 0.60/0.60/0.61 and
    0.55/0.56/0.54; 32 filters fell to 0.43 at seed 2); before adapting 0.16-0.28."""
    from maml_tf.experiment import evaluate, train

    config = Config(dataset="omniglot", ways=5, shots=10, queries=1, algorithm="reptile",
                    inner_optimizer="adam", inner_lr=1e-3, inner_steps=5, inner_batch_size=10,
                    eval_inner_batch_size=5, meta_batch_size=5, metatrain_iterations=200,
                    num_filters=48, log=False, data_dir=DATA_DIR, cache_dir=cache_dir).validate()
    exp = Experiment(config)
    step = exp.make_train_step(config.inner_steps)
    batches = train.task_batches(exp.sampler, "train", 5, 10, 1, config.seed, 0)
    for _ in range(config.metatrain_iterations):
        step(next(batches))
    for transductive in (True, False):
        exp.config, exp._curve_fns = config.replace(transductive=transductive), {}
        acc = evaluate.evaluate_learner(exp, "val", 50, 1, 1, 1e-3, 5, 1234)["accuracy"]["mean"]
        assert acc[0] < 0.3 and acc[-1] > 0.45, (transductive, acc)


def test_reptile_validates_with_the_evaluation_shots(tmp_path, monkeypatch):
    """Train shots (10) are a training-time setting: meta-validation uses the evaluation K (5)."""
    from maml_tf.experiment import evaluate, train

    seen = []
    real = evaluate.evaluate_learner
    monkeypatch.setattr(evaluate, "evaluate_learner",
                        lambda exp, split, n, shots, queries, lr, *a, **k: seen.append((shots, lr))
                        or real(exp, split, n, shots, queries, lr, *a, **k))
    config = Config(dataset="sinusoid", algorithm="reptile", shots=10, eval_shots=5,
                    inner_lr=0.01, eval_inner_lr=0.02, meta_batch_size=2, inner_steps=2,
                    metatrain_iterations=2, val_interval=2, val_tasks=4, eval_inner_steps=2,
                    checkpoint_interval=2, log=False)
    row = train.train_and_evaluate(config, str(tmp_path / "run"))
    # validation records step 0, the training steps (2) and the last (2): 0 and 2
    assert seen == [(5, 0.02)] and row["steps"] == [0, 2] and len(row["loss"]) == 2
