"""The speed options leave the meta-gradient unchanged (float64), and the benchmark's own pieces."""

import itertools
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf import kernels, layers, models
from maml_tf.bench import step as bench_step
from maml_tf.experiment import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A small float64 copy of the Omniglot network and two 3-way 1-shot tasks; printed as text by
# the subprocess below so both processes compare the same numbers.
META_GRAD_SCRIPT = """
import numpy as np, keras, tensorflow as tf
from maml_tf import algorithms, metrics, models
from maml_tf.bench import step as bench_step
keras.config.set_floatx("float64")
keras.config.set_dtype_policy("float64")  # another test may have pinned the policy to float32
model = models.conv_net((8, 8, 1), 3, filters=4, blocks=2, seed=3)
learner = models.Learner(model)
sampler = bench_step.SyntheticImages(3, (8, 8, 1), classes=6, per_class=4)
task = sampler.sample("train", 2, 1, 2, np.random.default_rng(5))
task = task._replace(support_x=task.support_x.astype(np.float64), query_x=task.query_x.astype(np.float64))
def meta_grads(first_order):
    return algorithms.maml_meta_grads(learner, metrics.make_xent_over_k(1), learner.weights(),
                                      task, 0.4, 2, first_order=first_order)[0]
"""


def _grads(first_order: bool, jit_compile: bool):
    scope = {}
    exec(META_GRAD_SCRIPT, scope)
    fn = tf.function(lambda: scope["meta_grads"](first_order), jit_compile=jit_compile,
                     autograph=False)
    return [g.numpy() for g in fn()]


@pytest.fixture(autouse=True)
def _restore_floatx():
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


@pytest.mark.slow  # XLA compiles for ~10-40 s on this CPU; the flag is off by default
@pytest.mark.parametrize("first_order", [False, True])
def test_jit_compile_gives_the_plain_meta_gradient(first_order):
    plain, xla = _grads(first_order, False), _grads(first_order, True)
    assert sum(np.abs(g).sum() for g in plain) > 0
    for a, b in zip(plain, xla):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


# Each speed setting, flipped to the value this process does not use, in a fresh process.
OTHER_SETTING = {
    "kernels": ("TF_ENABLE_ONEDNN_OPTS",
                lambda: "1" if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") == "0" else "0"),
    "threads": ("TF_NUM_INTRAOP_THREADS",
                lambda: "2" if os.environ.get("TF_NUM_INTRAOP_THREADS") == "1" else "1"),
}


@pytest.mark.parametrize("setting", sorted(OTHER_SETTING))
def test_kernels_and_thread_counts_give_the_same_meta_gradient(setting):
    """The product defaults to Eigen kernels for small convolutions (TF_ENABLE_ONEDNN_OPTS=0)
    and one thread per op (TF_NUM_INTRAOP_THREADS=1): the same exact second order either way."""
    here = np.concatenate([g.ravel() for g in _grads(False, False)])
    code = META_GRAD_SCRIPT + (
        "\nimport sys\ng = tf.function(lambda: meta_grads(False), autograph=False)()"
        "\nsys.stdout.write(' '.join(repr(float(v)) for t in g for v in t.numpy().ravel()))")
    name, other = OTHER_SETTING[setting]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env[name] = other()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    there = np.array([float(v) for v in out.split()])
    np.testing.assert_allclose(there, here, rtol=1e-9, atol=1e-12)


def test_one_thread_per_op_unless_told_otherwise():
    config = bench_step.make_config("omniglot_5w1s_q1_o2", {})
    assert runtime.environment(config)["TF_NUM_INTRAOP_THREADS"] == "1"
    assert "TF_NUM_INTRAOP_THREADS" not in runtime.environment(config.replace(intra_op_threads=0))


def test_auto_kernels_follow_the_measured_split():
    omniglot = bench_step.make_config("omniglot_5w1s_q1_o2", {})
    mini = bench_step.make_config("miniimagenet_5w1s_o2", {})
    assert not runtime.use_onednn(omniglot) and runtime.use_onednn(mini)
    assert runtime.use_onednn(bench_step.make_config("omniglot_20w1s_q1_o2", {}))
    assert runtime.use_onednn(bench_step.make_config("omniglot_5w1s_q15_o2", {}))
    assert runtime.use_onednn(omniglot.replace(onednn="on"))
    assert not runtime.use_onednn(mini.replace(onednn="off"))


def test_synthetic_sampler_draws_distinct_classes_and_images():
    sampler = bench_step.SyntheticImages(5, (6, 6, 1), classes=12, per_class=5)
    task = sampler.sample("train", 3, 1, 2, np.random.default_rng(0))
    assert task.support_x.shape == (3, 5, 6, 6, 1) and task.query_x.shape == (3, 10, 6, 6, 1)
    np.testing.assert_array_equal(task.query_y[0], np.repeat(np.arange(5), 2))
    for t in range(3):
        images = np.concatenate([task.support_x[t], task.query_x[t]]).reshape(15, -1)
        assert len({row.tobytes() for row in images}) == 15  # no image drawn twice
        # the support image of class c comes from the same pool class as its query images
        for c in range(5):
            pool = np.where((sampler.images == task.support_x[t, c]).all(axis=(2, 3, 4)))[0]
            q = task.query_x[t, 2 * c]
            assert (sampler.images[pool[0]] == q).all(axis=(1, 2, 3)).any()


@pytest.mark.parametrize("first_order, peers_gflop", [(False, 10.03), (True, 5.03)])
def test_analytic_flops_match_the_peers_count(first_order, peers_gflop):
    """peers/summary.md: 10.03 / 5.03 GFLOP for 5w1s_q1; our head reads 64 (not 256) features."""
    config = bench_step.make_config("omniglot_5w1s_q1_o2", {"first_order": first_order})
    model = models.conv_net((28, 28, 1), 5)
    flops = bench_step.analytic_flops(model, config, support=5, query=5)
    assert flops / 1e9 == pytest.approx(peers_gflop, rel=0.005)


@pytest.mark.parametrize("bench, peers_gflop", [
    ("miniimagenet_5w1s_o2", 89.90), ("miniimagenet_5w1s_o1", 60.75),
    ("miniimagenet_5w5s_o2", 133.63), ("miniimagenet_5w5s_o1", 60.75),
    ("omniglot_20w5s_q5_o2", 401.24), ("omniglot_20w5s_q5_o1", 151.14)])
def test_new_benches_match_the_peers_configurations(bench, peers_gflop):
    """peers/summary.md (2026-12-01): the same work per meta-iteration as mini_5w1s / mini_5w5s /
    20w5s_q5 (our Omniglot head reads 64 features, not 256: 0.15% fewer FLOPs there)."""
    b = bench_step.BENCHES[bench]
    config = bench_step.make_config(bench, {})
    model = models.conv_net(b.image_shape, config.ways, config.num_filters, config.max_pool)
    flops = bench_step.analytic_flops(model, config, config.ways * config.shots,
                                      config.ways * config.queries)
    assert flops / 1e9 == pytest.approx(peers_gflop, rel=0.002)
    assert b.peer_config in ("mini_5w1s", "mini_5w5s", "20w5s_q5")


def _assert_same_meta_gradient(layer_cls, switch: str, shape, max_pool: bool, first_order: bool):
    """The float64 meta-gradient of a small conv net with `layer_cls.switch` off (the reference
    path) and on agree at 1e-9 relative."""
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    from maml_tf import algorithms, metrics

    model = models.conv_net(shape, 3, filters=4, blocks=2, seed=3, max_pool=max_pool)
    learner = models.Learner(model)
    sampler = bench_step.SyntheticImages(3, shape, classes=6, per_class=4)
    task = sampler.sample("train", 2, 1, 2, np.random.default_rng(5))
    task = task._replace(support_x=task.support_x.astype(np.float64),
                         query_x=task.query_x.astype(np.float64))
    grads = {}
    for on in (False, True):
        setattr(layer_cls, switch, on)
        try:
            fn = tf.function(lambda: algorithms.maml_meta_grads(
                learner, metrics.make_xent_over_k(1), learner.weights(), task, 0.4, 2,
                first_order=first_order)[0], autograph=False)
            grads[on] = np.concatenate([g.numpy().ravel() for g in fn()])
        finally:
            setattr(layer_cls, switch, True)
    ref = grads[False]
    assert np.abs(ref).max() > 0
    assert np.abs(grads[True] - ref).max() <= 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize("max_pool", [False, True])
@pytest.mark.parametrize("first_order", [False, True])
def test_closed_form_batch_norm_gives_the_autodiff_meta_gradient(max_pool, first_order):
    """kernels.batch_norm_train's hand-derived first and second derivatives against autodiff
    through the moments (BatchNorm.closed_form_gradients = False), float64, 1e-9 relative."""
    shape = (12, 12, 3) if max_pool else (8, 8, 1)
    _assert_same_meta_gradient(layers.BatchNorm, "closed_form_gradients", shape, max_pool,
                               first_order)


@pytest.mark.parametrize("first_order", [False, True])
def test_patch_matmul_convolution_gives_the_keras_meta_gradient(first_order):
    """layers.Conv2D's patches @ kernel on the one- and three-channel first layer (and the batch
    norm folded into it) against Keras' own convolution (Conv2D.patch_matmul = False): the
    float64 meta-gradient at 1e-9 relative, stride 2 as Omniglot's (odd and even input sizes)
    and stride 1 with max-pool as MiniImageNet's."""
    for shape, max_pool in (((8, 8, 1), False), ((7, 7, 1), False), ((8, 8, 1), True),
                            ((12, 12, 3), True)):
        _assert_same_meta_gradient(layers.Conv2D, "patch_matmul", shape, max_pool, first_order)


@pytest.mark.parametrize("first_order", [False, True])
def test_batch_norm_folded_into_the_patch_convolution_gives_the_same_meta_gradient(
        first_order, monkeypatch):
    """BatchNorm.fold_patch_conv on against off (the patch convolution, then the closed-form
    batch norm over its maps): the float64 meta-gradient at 1e-9 relative, and the fold runs."""
    calls = []
    folded = kernels.folded_batch_norm_train
    monkeypatch.setattr(kernels, "folded_batch_norm_train",
                        lambda *a: calls.append(1) or folded(*a))
    for shape, max_pool in (((8, 8, 1), False), ((7, 7, 1), False), ((12, 12, 3), True)):
        _assert_same_meta_gradient(layers.BatchNorm, "fold_patch_conv", shape, max_pool,
                                   first_order)
    assert calls


def test_folded_batch_norm_keeps_the_same_moving_statistics():
    """The fold's batch mean (bias included) and variance update the moving statistics as the
    unfolded batch norm's do (float64, 1e-9); its output is the unfolded output."""
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    model = models.conv_net((9, 9, 3), 3, filters=4, blocks=1, seed=2, max_pool=True)
    learner = models.Learner(model)
    weights = [w + 0.1 for w in learner.weights()]  # a non-zero conv bias
    x = tf.constant(np.random.default_rng(3).normal(size=(5, 9, 9, 3)) + 0.5)
    out = {}
    for on in (False, True):
        layers.BatchNorm.fold_patch_conv = on
        try:
            out[on] = learner.apply(weights, learner.state(), x)
        finally:
            layers.BatchNorm.fold_patch_conv = True
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=1e-9, atol=1e-12)
    for a, b in zip(out[True][1], out[False][1]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_patch_matmul_convolution_equals_keras_forward():
    """The patches @ kernel path gives Keras' outputs for 'same' and 'valid', strides 1-3."""
    for channels in (1, 3):
        x = tf.constant(np.random.default_rng(1).normal(size=(3, 9, 10, channels)), tf.float32)
        for padding, strides in itertools.product(("same", "valid"), (1, 2, 3)):
            layer = layers.Conv2D(5, 3, strides=strides, padding=padding)
            fast = layer(x)
            layers.Conv2D.patch_matmul = False
            try:
                ref = layer(x)
            finally:
                layers.Conv2D.patch_matmul = True
            assert fast.shape == ref.shape
            np.testing.assert_allclose(fast.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_closed_form_batch_norm_second_derivative_of_a_dense_batch_norm():
    """The second derivative of batch_norm_train alone, on a [N, C] input (fc nets), against
    autodiff through the moments: d/dx <u, d/dx <g, BN(x)>> for a random g, u (float64)."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(7, 3)) * 2 + 1)
    beta = tf.constant(rng.normal(size=(3,)))
    g = tf.constant(rng.normal(size=(7, 3)))
    u = tf.constant(rng.normal(size=(7, 3)))

    def reference(x):
        mu = tf.reduce_mean(x, 0, keepdims=True)
        var = tf.reduce_mean(tf.square(x - mu), 0, keepdims=True)
        return (x - mu) * tf.math.rsqrt(var + 1e-3) + beta

    out = {}
    for name, fn in (("ref", reference),
                     ("closed", lambda x: kernels.batch_norm_train(x, beta, 1e-3, [0]))):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = fn(x) ** 2  # g depends on x downstream, as in the inner loop
                s = tf.reduce_sum(g * y)
            dx = inner.gradient(s, x)
            t = tf.reduce_sum(u * dx)
        out[name] = (dx.numpy(), outer.gradient(t, x).numpy())
    for a, b in zip(out["ref"], out["closed"]):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("transductive", [True, False])
def test_evaluation_paths_give_the_reference_curve(transductive):
    """adaptation_curve's cheaper paths against the reference, float64: record_steps returns
    the full curve's columns; vectorised non-transductive predictions equal the map_fn loop."""
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    from maml_tf import evaluation, metrics

    model = models.conv_net((8, 8, 1), 3, filters=4, blocks=2, seed=3)
    learner = models.Learner(model)
    sampler = bench_step.SyntheticImages(3, (8, 8, 1), classes=6, per_class=5)
    task = sampler.sample("test", 2, 1, 2, np.random.default_rng(7))
    task = task._replace(support_x=task.support_x.astype(np.float64),
                         query_x=task.query_x.astype(np.float64))

    def curve(vectorized, record_steps=None, optimizer=None):
        evaluation.VECTORIZED_NONTRANSDUCTIVE = vectorized
        try:
            fn = tf.function(lambda: evaluation.adaptation_curve(
                learner, metrics.make_xent_over_k(1), learner.weights(), task, 0.3, 3,
                metrics.make_metrics("classification"), transductive=transductive,
                optimizer=optimizer, record_steps=record_steps), autograph=False)
            return {k: v.numpy() for k, v in fn().items()}
        finally:
            evaluation.VECTORIZED_NONTRANSDUCTIVE = True

    for optimizer in (None, "adam"):
        ref = curve(False, optimizer=optimizer)
        assert ref["loss"].shape == (2, 4)
        for name, values in curve(True, optimizer=optimizer).items():
            np.testing.assert_allclose(values, ref[name], rtol=1e-9, atol=1e-12)
        for name, values in curve(True, [0, 3], optimizer).items():
            np.testing.assert_allclose(values, ref[name][:, [0, 3]], rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError):
        curve(True, [4])
