"""The policy with its compiled sampling and adaptation: what training and evaluation share."""

from typing import List, NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from maml_tf.algorithms import inner_step
from maml_tf.models import Learner
from maml_tf.rl import env, pg, policy
from maml_tf.rl.config import RLConfig


class Round(NamedTuple):
    """One sampling round: every task's paths under its current policy."""

    trajectories: env.Trajectories  # NumPy arrays, leading [tasks, paths] axes
    batch: pg.PathBatch  # the same samples with advantages, for a policy-gradient step


class Agent:
    """Policy network + `sample` (batched rollouts, one policy per task) + `adapt` (one PG step per task)."""

    def __init__(self, config: RLConfig, dtype: str = "float32"):
        self.config, self.dtype = config, dtype
        self.model = policy.policy_net(env.OBS_DIM, env.ACT_DIM, config.hidden, config.seed, dtype)
        self.learner = Learner(self.model)
        self._sample = tf.function(self._sample_fn)
        self._adapt = tf.function(self._adapt_fn)

    def weights(self) -> List[tf.Tensor]:
        return self.learner.weights()

    def _sample_fn(self, stacked, goals, noise):
        return env.rollout(policy.per_task_policy(self.learner, stacked), goals, noise)

    def _adapt_fn(self, stacked, observations, targets, lr):
        def per_task(args):
            weights, obs, y = args
            fast, *_ = inner_step(self.learner, pg.surrogate_loss, weights, obs, y, lr,
                                    first_order=True)  # no meta-gradient is taken through this
            return fast

        specs = [tf.TensorSpec(w.shape[1:], w.dtype) for w in stacked]
        return tf.map_fn(per_task, (list(stacked), observations, targets), fn_output_signature=specs)

    def sample(self, stacked, goals: np.ndarray, rng: np.random.Generator) -> Round:
        """config.paths trajectories per goal, task i acting with stacked[.][i]."""
        c = self.config
        noise = rng.standard_normal((len(goals), c.paths, c.horizon, env.ACT_DIM)).astype(self.dtype)
        traj = env.Trajectories(*[x.numpy() for x in self._sample(stacked, goals.astype(self.dtype),
                                                                   noise)])
        return Round(traj, pg.path_batch(traj, c.discount))

    def adapt(self, stacked, batch: pg.PathBatch, lr: float) -> List[tf.Tensor]:
        """One policy-gradient step of size lr for every task, from its own weights."""
        return self._adapt(list(stacked), tf.constant(batch.observations),
                           tf.constant(batch.targets), tf.constant(lr, self.dtype))

    def mean_path(self, stacked, goals: np.ndarray) -> np.ndarray:
        """[tasks, T + 1, 2] positions when every task's policy takes its mean action (no noise)."""
        noise = np.zeros((len(goals), 1, self.config.horizon, env.ACT_DIM), self.dtype)
        traj = self._sample(stacked, goals.astype(self.dtype), noise)
        obs, act = traj.observations.numpy()[:, 0], traj.actions.numpy()[:, 0]
        last = obs[:, -1:] + env.displacement(act[:, -1:]).numpy()
        return np.concatenate([obs, last], axis=1)

    def adaptation_curve(self, weights, goals: np.ndarray, lrs: Sequence[float],
                         rng: np.random.Generator, keep_paths: int = 0):
        """[tasks, len(lrs) + 1] average returns before and after each PG step, and the
        noise-free paths of the first `keep_paths` goals at each step ([steps + 1, keep, T + 1, 2])."""
        stacked = policy.tile_weights(weights, len(goals))
        rounds, paths = [], []
        for step in range(len(lrs) + 1):
            rounds.append(self.sample(stacked, goals, rng))
            if keep_paths:
                paths.append(self.mean_path([w[:keep_paths] for w in stacked], goals[:keep_paths]))
            if step < len(lrs):
                stacked = self.adapt(stacked, rounds[-1].batch, lrs[step])
        returns = np.stack([r.trajectories.rewards.sum(-1).mean(-1) for r in rounds], axis=1)
        return returns, (np.stack(paths) if keep_paths else None)
