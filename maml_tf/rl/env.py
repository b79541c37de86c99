"""The paper's 2D navigation tasks: a batched point mass that moves toward a goal, in TensorFlow."""

from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf

HORIZON = 100
MAX_SPEED = 0.1  # per axis and step, reached at action ±1
GOAL_RANGE = 0.5  # goals uniform in [-0.5, 0.5]^2
OBS_DIM = ACT_DIM = 2


def sample_goals(rng: np.random.Generator, count: int) -> np.ndarray:
    """[count, 2] float32 goals, uniform in the square."""
    return rng.uniform(-GOAL_RANGE, GOAL_RANGE, size=(count, 2)).astype(np.float32)


def displacement(action):
    """The move of an action: clipped to [-1, 1] per axis, times 0.1 (works on arrays and tensors).

    The paper's code wraps the point environment (velocity box ±0.1) in rllab's `normalize`,
    so its policy acts in [-1, 1] and its initial std of 1 explores up to the speed limit;
    with raw velocities that std would be 10x the limit and nearly every action clipped.
    """
    return MAX_SPEED * tf.clip_by_value(action, -1.0, 1.0)


def step(position, action, goal):
    """One move by displacement(action); reward = −distance to the goal after the move."""
    new = position + displacement(action)
    return new, -tf.norm(new - goal, axis=-1)


class Trajectories(NamedTuple):
    observations: tf.Tensor  # [tasks, paths, T, 2] position before each action (start: origin)
    actions: tf.Tensor  # [tasks, paths, T, 2] the sampled, unclipped actions
    rewards: tf.Tensor  # [tasks, paths, T]
    dists: tf.Tensor  # [tasks, paths, T, 4] the sampling policy's (mean, log_std)


def rollout(policy: Callable, goals, noise) -> Trajectories:
    """Runs every (task, path) from the origin for T = noise.shape[2] steps; a = mean + std · noise.

    `policy(obs [tasks, paths, 2]) -> [tasks, paths, 4]` (mean, log_std). The episode always
    lasts T steps: the paper also ends it within 0.01 of the goal, which changes a return by
    under 0.01 per remaining step, so it is left out to keep every batch rectangular.
    """
    noise = tf.convert_to_tensor(noise)
    tasks, paths, horizon = tf.shape(noise)[0], tf.shape(noise)[1], tf.shape(noise)[2]
    goal = tf.cast(goals, noise.dtype)[:, None, :]
    arrays = [tf.TensorArray(noise.dtype, size=horizon) for _ in range(4)]
    position = tf.zeros([tasks, paths, OBS_DIM], noise.dtype)
    for t in tf.range(horizon):
        dist = policy(position)
        action = dist[..., :ACT_DIM] + tf.exp(dist[..., ACT_DIM:]) * noise[:, :, t]
        new, reward = step(position, action, goal)
        arrays = [a.write(t, v) for a, v in zip(arrays, (position, action, reward, dist))]
        position = new
    # TensorArray stacks time first: [T, tasks, paths, ...] -> [tasks, paths, T, ...]
    obs, act, rew, dist = [a.stack() for a in arrays]
    return Trajectories(tf.transpose(obs, [1, 2, 0, 3]), tf.transpose(act, [1, 2, 0, 3]),
                        tf.transpose(rew, [1, 2, 0]), tf.transpose(dist, [1, 2, 0, 3]))
