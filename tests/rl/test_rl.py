"""RL: the navigation environment, the policy-gradient estimator, the meta-gradient through the inner
PG step against finite differences, TRPO's KL curvature, and a short meta-training run that learns."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from maml_tf.rl import env, evaluate, pg, policy, train, trpo
from maml_tf.rl.agent import Agent
from maml_tf.rl.config import RLConfig

TINY = dict(hidden=(8,), paths=3, horizon=6, meta_batch_size=2)


def test_step_clips_actions_and_rewards_negative_distance_after_the_move():
    pos = tf.constant([[0.0, 0.0], [0.2, -0.3]])
    # Actions in [-1, 1] move by 0.1 x action per axis (rllab's normalize); beyond, clipped.
    new, reward = env.step(pos, tf.constant([[5.0, -0.5], [-20.0, 1.0]]), tf.constant([0.3, 0.4]))
    np.testing.assert_allclose(new, [[0.1, -0.05], [0.1, -0.2]], atol=1e-7)
    np.testing.assert_allclose(reward, [-np.hypot(0.2, 0.45), -np.hypot(0.2, 0.6)], rtol=1e-6)


def test_rollout_lasts_the_horizon_starts_at_the_origin_and_follows_clipped_actions():
    rng = np.random.default_rng(0)
    goals = env.sample_goals(rng, 3)
    assert goals.shape == (3, 2) and np.all(np.abs(goals) <= env.GOAL_RANGE)
    noise = rng.standard_normal((3, 4, env.HORIZON, 2)).astype(np.float32)
    # A fixed Gaussian policy: mean (0.5, -0.2), std e^0 = 1 (some actions get clipped).
    const = tf.constant([0.5, -0.2, 0.0, 0.0])
    traj = env.rollout(lambda obs: tf.broadcast_to(const, obs.shape[:-1] + (4,)), goals, noise)
    obs, act, rew = (x.numpy() for x in traj[:3])
    assert obs.shape == (3, 4, env.HORIZON, 2) and rew.shape == (3, 4, env.HORIZON)
    np.testing.assert_allclose(obs[:, :, 0], 0.0)
    np.testing.assert_allclose(act, const[:2].numpy() + noise, atol=1e-6)
    moved = 0.1 * np.clip(act, -1, 1)
    np.testing.assert_allclose(obs[:, :, 1:], obs[:, :, :-1] + moved[:, :, :-1], atol=1e-5)
    final = obs[:, :, -1] + moved[:, :, -1]
    np.testing.assert_allclose(rew[:, :, -1], -np.linalg.norm(final - goals[:, None], axis=-1),
                               atol=1e-5)


def test_policy_gradient_estimate_is_unbiased_on_a_gaussian_bandit():
    # One step, a ~ N(mu, sigma^2), reward -(a - c)^2: J = -((mu - c)^2 + sigma^2), so
    # dJ/dmu = -2 (mu - c) = 1.2 and dJ/dlog(sigma) = -2 sigma^2 = -0.5.
    mu0, log_std0, c, n = 0.3, np.log(0.5), 0.9, 200_000
    a = mu0 + 0.5 * np.random.default_rng(3).standard_normal((n, 1))
    reward = -(a[:, 0] - c) ** 2
    mu, log_std = tf.Variable(mu0, dtype=tf.float64), tf.Variable(log_std0, dtype=tf.float64)
    with tf.GradientTape() as tape:
        dist = tf.stack([tf.fill([n], mu), tf.fill([n], log_std)], axis=-1)
        loss = pg.surrogate_loss(tf.constant(np.concatenate([a, reward[:, None]], axis=1)), dist)
    est = [-g.numpy() for g in tape.gradient(loss, [mu, log_std])]
    # Standard errors of the two per-sample estimates (score x reward).
    z = (a[:, 0] - mu0) / 0.5
    se = [np.std(z / 0.5 * reward) / np.sqrt(n), np.std((z ** 2 - 1) * reward) / np.sqrt(n)]
    for got, want, s in zip(est, [-2 * (mu0 - c), -2 * 0.25], se):
        assert abs(got - want) < 4 * s, (got, want, s)


def test_linear_baseline_fits_returns_that_are_linear_in_its_features():
    obs = np.random.default_rng(0).uniform(-1, 1, (2, 5, 7, 2))
    feats = pg.baseline_features(obs).reshape(2, 35, -1)
    coeffs = np.random.default_rng(1).standard_normal((2, feats.shape[-1]))
    returns = np.einsum("tnf,tf->tn", feats, coeffs)
    # Exact up to the ridge term (1e-5, as rllab) on nearly collinear time features.
    np.testing.assert_allclose(pg.fit_baseline(feats, returns), returns, atol=2e-3)


def fixed_meta_batch(config, agent, perturb=0.05):
    """Samples once (inner round, adapt, outer round), then moves θ away from the sampling point,
    so the ratio and the KL are not trivially 1 and 0: a deterministic objective of θ."""
    rng = np.random.default_rng(0)
    goals = env.sample_goals(rng, config.meta_batch_size)
    stacked = policy.tile_weights(agent.weights(), config.meta_batch_size)
    first = agent.sample(stacked, goals, rng)
    outer = agent.sample(agent.adapt(stacked, first.batch, config.inner_lr), goals, rng)
    theta = [w + perturb * tf.constant(rng.standard_normal(w.shape), w.dtype)
             for w in agent.weights()]
    return trpo.MetaBatch(first.batch, outer.batch), theta


def test_meta_gradient_through_the_inner_pg_step_matches_finite_differences():
    config = RLConfig(inner_lr=0.5, **TINY)
    agent = Agent(config, dtype="float64")
    batch, theta = fixed_meta_batch(config, agent)
    second = trpo.MetaObjective(agent.learner, config.inner_lr)
    first = trpo.MetaObjective(agent.learner, config.inner_lr, first_order=True)
    grad = policy.flat(second.loss_grad(theta, trpo.as_tensors(batch, tf.float64)))
    grad_fo = policy.flat(first.loss_grad(theta, trpo.as_tensors(batch, tf.float64)))
    flat_theta, eps = policy.flat(theta), 1e-6
    loss = lambda x: float(second.loss_and_kl(policy.unflat(x, theta), batch)[0])  # noqa: E731
    rng = np.random.default_rng(1)
    for _ in range(3):
        v = rng.standard_normal(flat_theta.shape)
        fd = (loss(flat_theta + eps * v) - loss(flat_theta - eps * v)) / (2 * eps)
        np.testing.assert_allclose(grad @ v, fd, rtol=1e-6, atol=1e-9)
    # The second-order term matters here: first-order MAML's gradient is far from it.
    assert np.linalg.norm(grad - grad_fo) > 0.05 * np.linalg.norm(grad)


def test_kl_hessian_vector_product_through_the_inner_step_matches_finite_differences():
    config = RLConfig(inner_lr=0.5, **TINY)
    agent = Agent(config, dtype="float64")
    batch, theta = fixed_meta_batch(config, agent)
    obj = trpo.MetaObjective(agent.learner, config.inner_lr)
    v = np.random.default_rng(2).standard_normal(policy.flat(theta).shape)
    hv = policy.flat(obj.kl_hvp(theta, trpo.as_tensors(batch, tf.float64),
                                policy.unflat(v, theta)))
    kl = lambda x: float(obj.loss_and_kl(policy.unflat(x, theta), batch)[1])  # noqa: E731
    x, eps = policy.flat(theta), 1e-4
    second_diff = (kl(x + eps * v) - 2 * kl(x) + kl(x - eps * v)) / eps ** 2
    np.testing.assert_allclose(v @ hv, second_diff, rtol=1e-4)


def test_conjugate_gradient_solves_a_positive_definite_system():
    m = np.random.default_rng(0).standard_normal((6, 6))
    h, b = m @ m.T + np.eye(6), np.arange(6.0)
    np.testing.assert_allclose(trpo.conjugate_gradient(lambda p: h @ p, b, 6), np.linalg.solve(h, b),
                               rtol=1e-6)
    with np.errstate(all="raise"):  # a zero gradient (one path per task): x = 0, no 0/0 warning
        assert not trpo.conjugate_gradient(lambda p: h @ p, np.zeros(6), 6).any()


def test_short_meta_training_makes_one_pg_step_improve_the_return_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "MILESTONE", 12)
    config = RLConfig(hidden=(32, 32), paths=10, horizon=20, meta_batch_size=10,
                      metatrain_iterations=12, val_interval=0, checkpoint_interval=12,
                      print_interval=12, eval_tasks=20, eval_inner_steps=1, log=False)
    init, _ = evaluate.evaluate_agent(Agent(config), 0)
    train.train(config, str(tmp_path))
    agent = Agent(config)
    assert train.checkpointer(str(tmp_path), agent).restore_latest() == 12
    assert os.path.exists(os.path.join(tmp_path, "archive", "ckpt-12.index"))  # a milestone
    trained, _ = evaluate.evaluate_agent(agent, 12)
    (pre0, post0), (pre, post) = init["return"]["mean"], trained["return"]["mean"]
    # Measured (horizon 20, 20 goals): at init one step changes the return by ~0 (-11.21 ->
    # -11.18); after 15 meta-iterations it gains 3.7 (-9.09 -> -5.37).
    assert post - pre > 1.5 and abs(post0 - pre0) < 0.5 and post > post0 + 2, (init, trained)
    train.train(config.replace(metatrain_iterations=13), str(tmp_path))
    with open(os.path.join(tmp_path, "runinfo.json")) as f:
        info = json.load(f)
    assert info["iterations"] == 13 and [s["start_iteration"] for s in info["segments"]] == [0, 12]
    assert [s["settings"]["metatrain_iterations"] for s in info["segments"]] == [12, 13]


def test_main_rejects_more_than_one_inner_step_for_rl_training():
    proc = subprocess.run([sys.executable, "-m", "maml_tf.main", "--datasource=2dnavigation",
                           "--num_updates=2", "--logdir=/nonexistent"], capture_output=True,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: RL meta-training takes exactly 1")
