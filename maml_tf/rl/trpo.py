"""TRPO on the MAML meta-objective: surrogate, KL and its Hessian-vector products through the inner PG step.

The inner step is `algorithms.inner_step` with the REINFORCE loss on the trajectories sampled
with θ; the outer objective is TRPO's importance-weighted surrogate on the trajectories sampled
with each task's adapted policy θ'_i(θ). Gradients and KL curvature are taken with respect to θ
*through* θ'_i (second order), or with the inner gradient held constant when `first_order`.
"""

from typing import Dict, NamedTuple, Union

import numpy as np
import tensorflow as tf

from maml_tf.algorithms import inner_step
from maml_tf.models import Learner
from maml_tf.rl.pg import PathBatch, surrogate_loss
from maml_tf.rl.policy import flat, kl, log_prob, unflat


class MetaBatch(NamedTuple):
    inner: Union[PathBatch, tuple]  # sampled with θ, for the inner step (empty tuple: no step)
    outer: PathBatch  # sampled with the adapted policies θ'_i: the meta-objective's data


class MetaObjective:
    """Compiled pieces TRPO needs, each a function of the meta-parameters θ (a list of tensors)."""

    def __init__(self, learner: Learner, inner_lr: float, first_order: bool = False):
        self.learner, self.inner_lr, self.first_order = learner, inner_lr, first_order
        self.loss_and_kl = tf.function(self._loss_and_kl)
        self.loss_grad = tf.function(self._loss_grad)
        self.kl_hvp = tf.function(self._kl_hvp)

    def _task_terms(self, theta, task: MetaBatch):
        """(TRPO surrogate loss, mean KL(sampling policy || adapted policy)) of one task."""
        fast = theta
        if task.inner:  # an empty tuple: the pretrained baseline, no inner step
            fast, *_ = inner_step(self.learner, surrogate_loss, theta, task.inner.observations,
                                    task.inner.targets, self.inner_lr, self.first_order)
        dist = self.learner(fast, task.outer.observations)
        actions, adv = task.outer.targets[..., :-1], task.outer.targets[..., -1]
        ratio = tf.exp(log_prob(dist, actions) - log_prob(task.outer.dists, actions))
        return -tf.reduce_mean(ratio * adv), tf.reduce_mean(kl(task.outer.dists, dist))

    def _map(self, weights, batch, per_task, signature):
        return tf.map_fn(per_task, as_tensors(batch, weights[0].dtype),
                         fn_output_signature=signature)

    def _loss_and_kl(self, weights, batch: MetaBatch):
        scalar = tf.TensorSpec((), weights[0].dtype)
        loss, div = self._map(weights, batch, lambda task: self._task_terms(weights, task),
                              (scalar, scalar))
        return tf.reduce_mean(loss), tf.reduce_mean(div)

    def _loss_grad(self, weights, batch: MetaBatch):
        def per_task(task):
            theta = [tf.identity(w) for w in weights]  # this task's own copy, for its tape
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(theta)
                loss, _ = self._task_terms(theta, task)
            return tape.gradient(loss, theta, unconnected_gradients=tf.UnconnectedGradients.ZERO)

        grads = self._map(weights, batch, per_task, _specs(weights))
        return [tf.reduce_mean(g, axis=0) for g in grads]

    def _kl_hvp(self, weights, batch: MetaBatch, vector):
        """∇²_θ KL · vector, the KL's curvature through the inner step (TRPO's metric)."""
        def per_task(task):
            theta = [tf.identity(w) for w in weights]
            with tf.GradientTape(watch_accessed_variables=False) as outer:
                outer.watch(theta)
                with tf.GradientTape(watch_accessed_variables=False) as inner:
                    inner.watch(theta)
                    _, div = self._task_terms(theta, task)
                grads = inner.gradient(div, theta,
                                       unconnected_gradients=tf.UnconnectedGradients.ZERO)
                dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vector)])
            return outer.gradient(dot, theta, unconnected_gradients=tf.UnconnectedGradients.ZERO)

        hvps = self._map(weights, batch, per_task, _specs(weights))
        return [tf.reduce_mean(h, axis=0) for h in hvps]


def _specs(weights):
    return [tf.TensorSpec(w.shape, w.dtype) for w in weights]


def as_tensors(batch: MetaBatch, dtype) -> MetaBatch:
    """The batch as tensors of the policy's float type."""
    # No inner data is an empty tuple, not None: tf.map_fn maps an empty structure to itself.
    cast = lambda b: () if not b else PathBatch(*[tf.cast(x, dtype) for x in b])  # noqa: E731
    return MetaBatch(cast(batch.inner), cast(batch.outer))


def conjugate_gradient(hvp, b: np.ndarray, iters: int, tol: float = 1e-10) -> np.ndarray:
    """Approximately solves H x = b with `iters` conjugate-gradient steps (H given as a product)."""
    x, r = np.zeros_like(b), b.copy()
    p, rr = r.copy(), r @ r
    for _ in range(iters if rr >= tol else 0):  # b = 0 (a zero gradient): x = 0, no 0/0
        hp = hvp(p)
        alpha = rr / (p @ hp)
        x, r = x + alpha * p, r - alpha * hp
        rr_new = r @ r
        if rr_new < tol:
            break
        p, rr = r + (rr_new / rr) * p, rr_new
    return x


def trpo_step(objective: MetaObjective, weights, batch: MetaBatch, max_kl: float, cg_iters: int,
              damping: float = 1e-5, backtrack: float = 0.8, max_backtracks: int = 15):
    """One TRPO update of θ as rllab's ConjugateGradientOptimizer: returns (new weights, info).

    Natural-gradient direction by CG, scaled to the KL limit, then backtracking until the
    surrogate improves within the limit; if no step does, θ is kept.
    """
    batch = as_tensors(batch, weights[0].dtype)
    loss0, _ = objective.loss_and_kl(weights, batch)
    g = flat(objective.loss_grad(weights, batch))
    hvp = lambda v: flat(objective.kl_hvp(weights, batch, unflat(v, weights))) + damping * v  # noqa
    direction = conjugate_gradient(hvp, g, cg_iters)
    shs = max(float(direction @ hvp(direction)), 1e-12)
    full_step = np.sqrt(2 * max_kl / shs) * direction
    theta = flat(weights)
    info: Dict[str, float] = {"surrogate_before": float(loss0), "grad_norm": float(np.linalg.norm(g))}
    for n in range(max_backtracks):
        candidate = unflat(theta - backtrack ** n * full_step, weights)
        loss, div = objective.loss_and_kl(candidate, batch)
        if float(loss) < float(loss0) and float(div) <= max_kl:
            info.update(surrogate_after=float(loss), kl=float(div), backtracks=n, accepted=1.0)
            return candidate, info
    info.update(surrogate_after=float(loss0), kl=0.0, backtracks=max_backtracks, accepted=0.0)
    return list(weights), info
