"""Sinusoid tasks: validation and test draw different tasks from the same evaluation seeds, each reproducibly."""

import numpy as np

from maml_tf.datasets.sinusoid import SinusoidSampler


def tasks(split, seed=1234, count=20):
    sampler = SinusoidSampler()
    return [sampler.sample(split, 1, 5, 10, np.random.default_rng([seed, i])) for i in range(count)]


def test_validation_never_sees_the_test_tasks_of_the_same_seeds():
    val, test = tasks("val"), tasks("test")
    for v, t in zip(val, test):
        assert not np.allclose(v.support_x, t.support_x)
    for again, first in zip(tasks("val"), val):  # reproducible
        np.testing.assert_array_equal(again.query_y, first.query_y)


def test_test_tasks_are_the_seeded_draws_the_committed_results_used():
    task = tasks("test", count=1)[0]
    rng = np.random.default_rng([1234, 0])
    amp, phase = rng.uniform(0.1, 5.0, (1, 1, 1)), rng.uniform(0.0, np.pi, (1, 1, 1))
    x = rng.uniform(-5.0, 5.0, (1, 15, 1))
    np.testing.assert_allclose(task.support_x, x[:, :5].astype(np.float32))
    np.testing.assert_allclose(task.query_y, (amp * np.sin(x - phase))[:, 5:].astype(np.float32), rtol=1e-6)
