"""Sinusoid regression tasks y = A·sin(x − φ), the paper's first experiment (no files needed)."""

import numpy as np

from maml_tf.types import Task

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, np.pi)
INPUT_RANGE = (-5.0, 5.0)
VAL_STREAM = 0x5A1  # mixed into a validation task's seed: not the test task of the same seed


class SinusoidSampler:
    """Draws A ~ U[0.1, 5], φ ~ U[0, π] per task and x ~ U[-5, 5] per point.

    All splits come from the same distribution, as in the paper; the validation split's tasks
    are drawn from a stream of their own, so that model selection (the evaluation seeds of val
    and test are the same) never sees the test tasks. With `oracle=True` each input is
    (x, A, φ): the oracle baseline that is told the task.
    """

    problem = "regression"
    output_dim = 1

    def __init__(self, oracle: bool = False):
        self.oracle = oracle
        self.input_shape = (3,) if oracle else (1,)

    def sample(self, split, meta_batch_size, shots, queries, rng) -> Task:
        if split == "val":
            rng = np.random.default_rng([VAL_STREAM, *rng.integers(2 ** 32, size=2)])
        amp = rng.uniform(*AMPLITUDE, size=(meta_batch_size, 1, 1))
        phase = rng.uniform(*PHASE, size=(meta_batch_size, 1, 1))
        x = rng.uniform(*INPUT_RANGE, size=(meta_batch_size, shots + queries, 1))
        y = amp * np.sin(x - phase)
        if self.oracle:
            x = np.concatenate([x, np.broadcast_to(amp, x.shape), np.broadcast_to(phase, x.shape)], -1)
        x, y = x.astype(np.float32), y.astype(np.float32)
        return Task(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])

    def curve(self, amp, phase, x):
        """The true function of a task, for plots."""
        return amp * np.sin(x - phase)


def make_sampler(config) -> SinusoidSampler:
    return SinusoidSampler(oracle=config.oracle)
