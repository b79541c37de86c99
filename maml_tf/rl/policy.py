"""The Gaussian MLP policy (2 x 100 ReLU, learned state-independent log-std) and its distributions."""

import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from maml_tf.models import Learner, layer_seeds


class LogStd(keras.layers.Layer):
    """Appends a learned, state-independent log standard deviation to the mean: [.., 2 * dim]."""

    def __init__(self, dim: int, init_std: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.init_std = dim, init_std

    def build(self, input_shape):
        self.log_std = self.add_weight(shape=(self.dim,), name="log_std",
                                       initializer=keras.initializers.Constant(
                                           math.log(self.init_std)))

    def call(self, mean):
        return keras.ops.concatenate(
            [mean, keras.ops.broadcast_to(self.log_std, keras.ops.shape(mean))], axis=-1)


def policy_net(obs_dim: int = 2, act_dim: int = 2, hidden: Sequence[int] = (100, 100),
               seed: int = 0, dtype: str = "float32") -> keras.Model:
    """obs -> (mean, log_std): Glorot-initialised ReLU MLP with a linear mean head, std 1 at the start."""
    seeds = layer_seeds(seed, len(hidden) + 1)
    inputs = keras.Input((obs_dim,), dtype=dtype)
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", dtype=dtype,
                               kernel_initializer=keras.initializers.GlorotUniform(seeds[i]))(x)
    mean = keras.layers.Dense(act_dim, dtype=dtype, kernel_initializer=keras.initializers.GlorotUniform(
        seeds[-1]))(x)
    return keras.Model(inputs, LogStd(act_dim, dtype=dtype)(mean), name="gaussian_mlp_policy")


def log_prob(dist, actions):
    """log N(actions; mean, exp(log_std)^2), summed over the action axis; dist = [.., 2 * dim]."""
    dim = actions.shape[-1]
    mean, log_std = dist[..., :dim], dist[..., dim:]
    z = (actions - mean) * tf.exp(-log_std)
    return tf.reduce_sum(-0.5 * tf.square(z) - log_std - 0.5 * math.log(2 * math.pi), axis=-1)


def kl(old, new):
    """KL(old || new) of diagonal Gaussians, summed over the action axis."""
    dim = old.shape[-1] // 2
    m0, s0, m1, s1 = old[..., :dim], old[..., dim:], new[..., :dim], new[..., dim:]
    return tf.reduce_sum(s1 - s0 + (tf.exp(2 * s0) + tf.square(m0 - m1)) / (2 * tf.exp(2 * s1))
                         - 0.5, axis=-1)


def tile_weights(weights, tasks: int):
    """The same weights for every task: each tensor gets a leading [tasks] axis."""
    return [tf.tile(w[None], [tasks] + [1] * len(w.shape)) for w in weights]


def per_task_policy(learner: Learner, stacked):
    """`obs [tasks, n, obs_dim] -> dist [tasks, n, 2 * act_dim]`, task i acting with weights stacked[.][i]."""
    def policy(obs):
        return tf.vectorized_map(lambda args: learner(args[0], args[1]), (list(stacked), obs))

    return policy


def flat(tensors) -> np.ndarray:
    """The tensors as one float64 NumPy vector: TRPO's conjugate gradient runs on flat vectors."""
    return np.concatenate([np.reshape(np.asarray(t, np.float64), -1) for t in tensors])


def unflat(vector: np.ndarray, like) -> list:
    """The flat vector cut back into tensors shaped (and typed) like `like`."""
    out, i = [], 0
    for w in like:
        n = int(np.prod(w.shape))
        out.append(tf.constant(np.reshape(vector[i:i + n], w.shape), dtype=w.dtype))
        i += n
    return out
