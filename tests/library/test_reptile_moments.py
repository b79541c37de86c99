"""Reptile's inner Adam keeps its moments across tasks, as running the tasks one after another does."""

import numpy as np
import pytest
import tensorflow as tf

from maml_tf import metrics
from maml_tf.errors import UserError
from maml_tf.experiment import train
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import Experiment
from tests.library.test_algorithms import flat

LR, STEPS, BATCH = 0.02, 3, 2


def reptile_adam(meta_batch: int, iterations: int = 3, **changes) -> Experiment:
    # No batch norm: the biases before it get round-off gradients (exactly 0 in exact
    # arithmetic), which Adam's division turns into steps that no two programs reproduce.
    settings = dict(dataset="sinusoid", algorithm="reptile", inner_optimizer="adam", inner_lr=LR,
                    inner_steps=STEPS, inner_batch_size=BATCH, shots=5, queries=5,
                    meta_batch_size=meta_batch, meta_step=1.0, meta_step_final=0.0,
                    metatrain_iterations=iterations, norm="None", log=False)
    return Experiment(Config(**{**settings, **changes}).validate())


def sequential_reference(learner, phi, batches, epsilons, persistent=True, v=None, t=0):
    """The Reptile paper's training, written independently: the tasks of a meta-batch one after
    another, each from φ, with one Adam (β1 = 0) whose second moment and step count carry on
    from task to task (or restart for each task if not `persistent`), from (v, t) or zero.
    Returns (φ, v, t)."""
    phi = [tf.identity(p) for p in phi]
    v = [tf.zeros_like(p) for p in phi] if v is None else v
    for tasks, eps in zip(batches, epsilons):
        ends = []
        for x_all, y_all in zip(tasks.support_x, tasks.support_y):
            w = list(phi)
            if not persistent:
                v, t = [tf.zeros_like(p) for p in phi], 0
            for j in range(STEPS):
                idx = [(j * BATCH + i) % len(x_all) for i in range(BATCH)]
                with tf.GradientTape() as tape:
                    tape.watch(w)
                    loss = metrics.mse(learner(w, tf.gather(x_all, idx)), tf.gather(y_all, idx))
                g = tape.gradient(loss, w)
                t += 1
                v = [0.999 * b + 0.001 * a * a for b, a in zip(v, g)]
                w = [p - LR * np.sqrt(1 - 0.999 ** t) * a / (tf.sqrt(b) + 1e-8)
                     for p, a, b in zip(w, g, v)]
            ends.append(w)
        phi = [p + eps * (tf.add_n(list(ws)) / len(ends) - p) for p, ws in zip(phi, zip(*ends))]
    return phi, v, t


def train_and_reference(meta_batch: int, iterations: int = 3, persistent=True):
    exp = reptile_adam(meta_batch, iterations)
    phi0 = exp.learner.weights()
    rng = np.random.default_rng(7)
    batches = [exp.sampler.sample("train", meta_batch, 5, 5, rng) for _ in range(iterations)]
    step = exp.make_train_step(STEPS)
    for tasks in batches:
        step(tasks)
    epsilons = [1.0 - i / iterations for i in range(iterations)]
    ref = sequential_reference(exp.learner, phi0, batches, epsilons, persistent)
    return exp, phi0, ref


def test_one_task_per_batch_is_exactly_the_sequential_reptile():
    exp, phi0, (phi, v, t) = train_and_reference(meta_batch=1)
    # float32 round-off of small gradients makes Adam steps (~LR) differ by up to ~6e-6.
    np.testing.assert_allclose(flat(exp.learner.weights()), flat(phi), rtol=1e-4, atol=2e-5)
    assert np.abs(flat(phi) - flat(phi0)).max() > 0.5 * LR
    np.testing.assert_allclose(flat(exp.inner_moments.read().v), flat(v), rtol=1e-4, atol=1e-9)
    assert int(exp.inner_moments.step) == t == 3 * STEPS


def _distances(exp, step, phi0, seed):
    """From the moments of 120 sequential steps, one meta-batch of 4 tasks: the distance of
    (this library's parallel step, the sequential one in reverse task order, the sequential one
    with Adam restarted per task) to the sequential one, relative to the sequential update."""
    rng = np.random.default_rng(seed)
    warmup = [exp.sampler.sample("train", 4, 5, 5, rng) for _ in range(10)]
    phi, v, t = sequential_reference(exp.learner, phi0, warmup, [0.5] * 10)
    for var, value in zip(exp.learner.trainable_variables + exp.inner_moments.v, phi + v):
        var.assign(value)
    exp.inner_moments.step.assign(t)
    tasks = exp.sampler.sample("train", 4, 5, 5, rng)
    step(tasks)
    assert int(exp.inner_moments.step) == t + 4 * STEPS
    seq = sequential_reference(exp.learner, phi, [tasks], [1.0], True, v, t)[0]
    reverse = sequential_reference(exp.learner, phi, [type(tasks)(*[x[::-1] for x in tasks])],
                                   [1.0], True, v, t)[0]
    fresh = sequential_reference(exp.learner, phi, [tasks], [1.0], False, v, t)[0]
    moved = np.linalg.norm(flat(seq) - flat(phi))
    return [np.linalg.norm(flat(w) - flat(seq)) / moved
            for w in (exp.learner.weights(), reverse, fresh)]


def test_parallel_tasks_stay_close_to_the_sequential_reptile():
    """Tasks of a meta-batch run in parallel from the same moments, not one after another: their
    meta-update differs from the sequential one about as much as another task order does (the
    order is arbitrary; sinusoid tasks' gradient scales differ a hundredfold), and several times
    less than restarting Adam for every task (what this library did before)."""
    exp = reptile_adam(meta_batch=4, meta_step_final=1.0)  # ε = 1 at every step
    phi0, step = exp.learner.weights(), exp.make_train_step(STEPS)
    parallel, reverse, fresh = np.median([_distances(exp, step, phi0, s) for s in range(6)], 0)
    assert parallel < 2 * reverse and parallel < fresh / 5, (parallel, reverse, fresh)


def test_evaluation_starts_from_the_moments_and_leaves_them():
    exp, _, _ = train_and_reference(meta_batch=2, iterations=2)
    before = flat(exp.inner_moments.read().v)
    tasks = exp.sampler.sample("val", 3, 5, 5, np.random.default_rng(1))
    with_moments = exp.curve_fn(5, 5, LR, 4)(tasks)["loss"].numpy()
    np.testing.assert_array_equal(flat(exp.inner_moments.read().v), before)
    exp.inner_moments = None  # the same weights, Adam restarted for each task
    exp._curve_fns = {}
    fresh = exp.curve_fn(5, 5, LR, 4)(tasks)["loss"].numpy()
    np.testing.assert_allclose(with_moments[:, 0], fresh[:, 0], rtol=1e-6)
    assert np.abs(with_moments[:, 1:] - fresh[:, 1:]).min() > 1e-6


def test_moments_are_checkpointed_and_a_resumed_run_continues_them(tmp_path, monkeypatch):
    """4 iterations straight = killed after iteration 3 (checkpoint at 2), then resumed."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    config = reptile_adam(2, 4, checkpoint_interval=2, val_interval=0).config
    train.train_and_evaluate(config, str(straight))
    real = train.task_batches

    def killed_after_3(*args):
        batches = real(*args)
        for _ in range(3):
            yield next(batches)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "task_batches", killed_after_3)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(config, str(resumed))
    monkeypatch.setattr(train, "task_batches", real)
    train.train_and_evaluate(config, str(resumed))
    runs = []
    for run in (straight, resumed):
        exp = Experiment(config)
        assert train.Checkpointer(str(run), exp.state()).restore_latest() == 4
        runs.append((flat(exp.learner.weights()), flat(exp.inner_moments.read().v),
                     int(exp.inner_moments.step)))
    assert runs[0][2] == runs[1][2] == 4 * 2 * STEPS
    assert np.abs(runs[0][1]).max() > 0
    for a, b in zip(runs[0][:2], runs[1][:2]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)


def test_only_an_inner_adam_has_moments():
    for config in (reptile_adam(1).config.replace(inner_optimizer="sgd"),
                   Config(dataset="sinusoid", log=False)):
        exp = Experiment(config)
        assert exp.inner_moments is None and "inner_moments" not in exp.state()


def test_the_best_model_keeps_its_moments_and_one_kept_without_them_is_refused(tmp_path):
    """--test_best adapts from the moments of the best iteration, as --test_iter of that
    iteration does; a best checkpoint of an older maml_tf (model only) is refused, not
    evaluated from zero moments."""
    run = str(tmp_path / "run")
    config = reptile_adam(2, 4, checkpoint_interval=4, val_interval=4, val_tasks=2).config
    train.train_and_evaluate(config, run)
    newest, best = Experiment(config), Experiment(config)
    assert train.Checkpointer(run, newest.state()).restore_iteration(4) == 4
    assert train.Checkpointer(run, best.state()).restore_best() == 4
    moments = flat(newest.inner_moments.read().v)
    assert np.abs(moments).max() > 0
    np.testing.assert_array_equal(flat(best.inner_moments.read().v), moments)
    assert int(best.inner_moments.step) == int(newest.inner_moments.step) == 4 * 2 * STEPS
    old = str(tmp_path / "old")
    train.Checkpointer(old, {"model": newest.model}).save_best(4)
    with pytest.raises(UserError, match="lacks the inner_moments"):
        train.Checkpointer(old, best.state()).restore_best()
