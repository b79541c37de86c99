"""The speed options (XLA, kernels, thread counts, the cheaper evaluation paths) leave the meta-gradient unchanged (float64), and the benchmark's own pieces; the faster layers are checked in test_kernel_paths."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf import models
from maml_tf.bench import step as bench_step
from maml_tf.experiment import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.usefixtures("restore_floatx")

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


@pytest.mark.slow  # XLA compiles for ~10-40 s on this CPU; the flag is off by default
@pytest.mark.parametrize("first_order", [False, True])
def test_jit_compile_gives_the_plain_meta_gradient(first_order):
    plain, xla = _grads(first_order, False), _grads(first_order, True)
    assert sum(np.abs(g).sum() for g in plain) > 0
    for a, b in zip(plain, xla):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


# Each speed setting, flipped to the value this process does not use, in one fresh process.
OTHER_SETTING = {
    "TF_ENABLE_ONEDNN_OPTS": lambda: "1" if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") == "0" else "0",
    "TF_NUM_INTRAOP_THREADS": lambda: "2" if os.environ.get("TF_NUM_INTRAOP_THREADS") == "1" else "1",
}


def test_kernels_and_thread_counts_give_the_same_meta_gradient():
    """The product defaults to Eigen kernels for small convolutions (TF_ENABLE_ONEDNN_OPTS=0)
    and one thread per op (TF_NUM_INTRAOP_THREADS=1): the same exact second order with the
    other kernels and thread count (both flipped in one process: a TensorFlow start each costs
    about 7 s here, and two changes that cancel to 1e-9 are not a risk worth 7 s)."""
    here = np.concatenate([g.ravel() for g in _grads(False, False)])
    code = META_GRAD_SCRIPT + (
        "\nimport sys\ng = tf.function(lambda: meta_grads(False), autograph=False)()"
        "\nsys.stdout.write(' '.join(repr(float(v)) for t in g for v in t.numpy().ravel()))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update({name: other() for name, other in OTHER_SETTING.items()})
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


@pytest.mark.parametrize("variant", [{"anil": True}, {"multi_step_loss": True}])
def test_variants_whose_passes_the_count_does_not_model_get_no_flop_count(variant):
    """A GFLOP/s from plain MAML's count over ANIL's step read 540, above any GEMM here."""
    config = bench_step.make_config("omniglot_5w1s_q1_o2", variant)
    assert bench_step.analytic_flops(models.conv_net((28, 28, 1), 5), config, 5, 5) is None


@pytest.mark.parametrize("flags, said", [
    (["--benches", "omniglot_5w1s_q1_o2,nosuch"], "--benches: no configuration nosuch"),
    (["--iters", "0"], "--iters must be at least 1, got 0"),
    (["--set", "eval_dir=x", "--iters", "0"], "--iters must be at least 1"),  # an Optional[str] setting
    (["--set", "meta_batch_size=x"], "--set meta_batch_size=x: meta_batch_size takes a int"),
    (["--compare", "onednn=on,bogus=1"], "--compare bogus=1: not KEY=VALUE of a training setting"),
    (["--peers", "/nonexistent"], "--peers /nonexistent: no peers folder"),
    (["--report", "/nonexistent.jsonl"], "--report: [Errno 2] No such file"),
])
def test_the_benchmark_refuses_bad_input_in_one_line_before_timing_anything(flags, said, capsys):
    from maml_tf.bench import benchmark

    with pytest.raises(SystemExit) as exit_:
        benchmark.main(flags)
    assert str(exit_.value).startswith(f"error: {said}") and capsys.readouterr().out == ""


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
