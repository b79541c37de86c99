"""REINFORCE: discounted returns, rllab's fitted linear feature baseline, advantages, the surrogate loss."""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from maml_tf.rl.policy import log_prob


class PathBatch(NamedTuple):
    """One policy-gradient step's samples per task, flattened over paths and time."""

    observations: np.ndarray  # [tasks, paths * T, obs_dim]
    targets: np.ndarray  # [tasks, paths * T, act_dim + 1]: the action, then its advantage
    dists: np.ndarray  # [tasks, paths * T, 2 * act_dim]: the sampling policy's (mean, log_std)


def discounted_returns(rewards: np.ndarray, discount: float) -> np.ndarray:
    """R_t = sum_{k >= t} discount^(k - t) r_k along the last (time) axis."""
    out = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[:-1])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + discount * running
        out[..., t] = running
    return out


def baseline_features(observations: np.ndarray) -> np.ndarray:
    """rllab's LinearFeatureBaseline features: obs, obs², t, t², t³ (t = step / 100) and 1.

    observations: [..., T, obs_dim] -> [..., T, 2 * obs_dim + 4].
    """
    o = np.clip(observations, -10, 10).astype(np.float64)
    t = np.arange(o.shape[-2], dtype=np.float64)[:, None] / 100.0
    t = np.broadcast_to(t, o.shape[:-1] + (1,))
    return np.concatenate([o, o ** 2, t, t ** 2, t ** 3, np.ones_like(t)], axis=-1)


def fit_baseline(features: np.ndarray, returns: np.ndarray, reg: float = 1e-5) -> np.ndarray:
    """Per task, least squares with ridge `reg` (grown tenfold while singular, as rllab); returns the fit.

    features: [tasks, n, F]; returns: [tasks, n] -> predictions [tasks, n].
    """
    gram = np.einsum("tnf,tng->tfg", features, features)
    rhs = np.einsum("tnf,tn->tf", features, returns)
    eye = np.eye(features.shape[-1])
    for _ in range(5):
        coeffs = np.linalg.solve(gram + reg * eye, rhs[..., None])[..., 0]
        if np.all(np.isfinite(coeffs)):
            break
        reg *= 10
    return np.einsum("tnf,tf->tn", features, coeffs)


def advantages(observations: np.ndarray, rewards: np.ndarray, discount: float) -> np.ndarray:
    """Discounted return minus the task's fitted baseline, normalised per task (rllab's center_adv).

    observations: [tasks, paths, T, obs_dim]; rewards: [tasks, paths, T] -> [tasks, paths, T].
    """
    tasks = rewards.shape[0]
    returns = discounted_returns(rewards, discount).reshape(tasks, -1)
    feats = baseline_features(observations).reshape(tasks, returns.shape[1], -1)
    adv = returns - fit_baseline(feats, returns)
    adv = (adv - adv.mean(axis=1, keepdims=True)) / (adv.std(axis=1, keepdims=True) + 1e-8)
    return adv.reshape(rewards.shape)


def path_batch(traj, discount: float) -> PathBatch:
    """The Trajectories of a rollout as a PathBatch (NumPy, the rollout's float type)."""
    obs, act, rew, dist = (np.asarray(x) for x in traj)
    adv = advantages(obs, rew, discount).astype(obs.dtype)
    tasks = obs.shape[0]
    return PathBatch(obs.reshape(tasks, -1, obs.shape[-1]),
                     np.concatenate([act, adv[..., None]], axis=-1).reshape(tasks, -1, act.shape[-1] + 1),
                     dist.reshape(tasks, -1, dist.shape[-1]))


def surrogate_loss(targets, dists):
    """REINFORCE's loss −mean_t log π(a_t|s_t) · A_t: its gradient is the policy-gradient estimate.

    A loss(y_true, y_pred) for `algorithms.inner_step`, in Keras' order: y_true = (action,
    advantage), y_pred = the policy's (mean, log_std).
    """
    actions, adv = targets[..., :-1], targets[..., -1]
    return -tf.reduce_mean(log_prob(dists, actions) * adv)


def mean_return(rewards) -> float:
    """Undiscounted return averaged over tasks and paths (the paper's 'average return')."""
    return float(np.mean(np.sum(np.asarray(rewards), axis=-1)))
