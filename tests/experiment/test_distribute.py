"""The meta-batch split over replicas (tf.distribute) gives the single-device meta-gradients and parameters."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from maml_tf.errors import UserError
from maml_tf.experiment import distribute
from test_variant_training import SINE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
           PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

# Runs in its own process: 2 logical CPU devices must be made before TensorFlow starts. For each
# algorithm it prints the meta-gradient of one task batch and the parameters after 3 steps under
# `default` and `mirrored` (same seed, same tasks); then trains `default` for 4 iterations and
# `mirrored` for 2 + 2 (resumed) into argv[1]/{default,mirrored}, evaluates both; then the errors.
MIRRORED_SCRIPT = r"""
import json, os, sys
import tensorflow as tf
from maml_tf.experiment import distribute, evaluate, train
from maml_tf.experiment.experiment import Experiment, task_batches
from maml_tf.experiment.config import Config
from maml_tf.errors import UserError

distribute.strategy_for(Config(strategy="mirrored", num_cpu_devices=2))  # before anything else
BASE = dict(dataset="sinusoid", shots=5, queries=5, meta_batch_size=4, inner_lr=0.01, meta_lr=0.01,
            log=False, val_interval=0, print_interval=2, checkpoint_interval=2,
            metatrain_iterations=3)
CASES = {"maml": dict(inner_steps=2, norm="layer_norm"),  # its offsets: outer loop only
         "first_order_clipped": dict(inner_steps=2, first_order=True, norm="None", grad_clip=0.05),
         "reptile": dict(algorithm="reptile", inner_steps=3, meta_step=0.5, norm="None"),
         # its inner Adam's moments carried over tasks, all-reduced over the replicas
         "reptile_adam": dict(algorithm="reptile", inner_steps=3, meta_step=0.5, norm="None",
                              inner_optimizer="adam", inner_batch_size=2)}
VARIANT_TOY = dict(SETTINGS, metatrain_iterations=10, meta_batch_size=4, shots=5, queries=5,
                   checkpoint_interval=10, learned_inner_lr="per_layer_step", multi_step_loss=True,
                   first_order_iterations=5, anil=True)
out = {}
for name, case in CASES.items():
    for strategy in ("default", "mirrored"):
        exp = Experiment(Config(**BASE, **case, strategy=strategy))
        replica_fn, s = exp.replica_meta_grads(exp.config.inner_steps), exp.strategy

        @tf.function(input_signature=[exp.task_signature(5, 5)])
        def meta_gradient(tasks):
            return distribute.mean_over_replicas(s, s.run(lambda t: replica_fn(t)[:2], args=(tasks,)))

        batches = task_batches(exp.sampler, "train", 4, 5, 5, seed=0, start=0)
        grads, metrics = meta_gradient(next(batches))
        step = exp.make_train_step(exp.config.inner_steps)
        losses = [float(step(next(batches))["post_loss"]) for _ in range(3)]
        out[f"{name}/{strategy}"] = dict(
            replicas=s.num_replicas_in_sync, grads=[g.numpy().tolist() for g in grads],
            pre_loss=float(metrics["pre_loss"]), losses=losses,
            params=[v.numpy().tolist() for v in exp.learner.trainable_variables])
# A user model with Dropout: every task its own masks, the same under both strategies.
import keras
params = []
for strategy in ("default", "mirrored"):
    config = Config(**BASE, inner_steps=1, norm="None", strategy=strategy)
    with distribute.strategy_for(config).scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dropout(0.5, seed=5), keras.layers.Dense(1)])
    exp = Experiment(config, model=model)
    exp.make_train_step(1)(next(task_batches(exp.sampler, "train", 4, 5, 5, seed=0, start=0)))
    params.append([v.numpy() for v in exp.learner.trainable_variables])
out["dropout"] = max(float(abs(a - b).max()) for a, b in zip(*params))
config = Config(**BASE, **CASES["maml"]).replace(metatrain_iterations=4)
train.train_and_evaluate(config, os.path.join(sys.argv[1], "default"))
for iterations in (2, 4):
    train.train_and_evaluate(config.replace(strategy="mirrored", metatrain_iterations=iterations),
                             os.path.join(sys.argv[1], "mirrored"))
for s in ("default", "mirrored"):  # evaluation (on one device) of each run's checkpoint
    result = evaluate.evaluate_checkpoint(
        config.replace(strategy=s, eval_tasks=10, eval_inner_steps=2), os.path.join(sys.argv[1], s))
    out[f"eval/{s}"] = result["metrics"]["loss"]["mean"]
# MAML++'s parts and ANIL (test_variant_training's SINE toy): learned per-layer-step rates, the
# multi-step loss and the switch to second order, on one device and on the two replicas.
found = []
for s in ("default", "mirrored"):
    run = os.path.join(sys.argv[1], "variants", s)
    train.train_and_evaluate(Config(strategy=s, **VARIANT_TOY), run)
    reader = tf.train.load_checkpoint(os.path.join(run, "checkpoints"))
    found.append({k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
                  if k.startswith(("model/", "inner_rates/"))})
out["variants"] = dict(
    rates=any(k.startswith("inner_rates/") for k in found[0]), same_keys=found[0].keys() == found[1].keys(),
    largest_difference=max(float(abs(found[0][k] - found[1][k]).max()) for k in found[0]))
for name, bad in [("split_error", dict(meta_batch_size=5)),
                  ("jit_error", dict(jit_compile=True, meta_batch_size=4))]:
    try:
        Experiment(Config(strategy="mirrored", **bad))
    except UserError as err:
        out[name] = str(err)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mirrored")
    script = MIRRORED_SCRIPT.replace("SETTINGS", repr(SINE))
    proc = subprocess.run([sys.executable, "-c", script, str(workdir)], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):]), workdir, proc.stdout


def _close(a, b, atol):
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.array(y), np.array(x), rtol=1e-5, atol=atol)


@pytest.mark.parametrize("case", ["maml", "first_order_clipped", "reptile", "reptile_adam"])
def test_mirrored_over_two_cpus_gives_one_device_meta_gradient_and_parameters(mirrored, case):
    out = mirrored[0]
    single, split = out[f"{case}/default"], out[f"{case}/mirrored"]
    assert (single["replicas"], split["replicas"]) == (1, 2)
    assert sum(np.abs(g).sum() for g in map(np.array, single["grads"])) > 0
    _close(single["grads"], split["grads"], atol=1e-7)
    np.testing.assert_allclose(split["pre_loss"], single["pre_loss"], rtol=1e-6)
    np.testing.assert_allclose(split["losses"], single["losses"], rtol=1e-5)
    assert len(set(single["losses"])) == 3  # new tasks and new parameters at every step
    # Adam turns float round-off in near-zero gradient entries into up to ~2e-7 (steps of 1e-2).
    _close(single["params"], split["params"], atol=1e-6)


def test_a_dropout_model_gets_the_one_device_update_its_tasks_drawing_their_own_masks(mirrored):
    """Each replica numbers its tasks after the previous replicas' (they drew task 0's masks for
    global task n/2 before: 2.0e-3 apart after one Omniglot step, measured)."""
    assert mirrored[0]["dropout"] < 1e-6


def test_mirrored_replicas_learn_the_same_weights_and_rates_as_one_device(mirrored):
    """MAML's successors (from test_variant_training, where this ran its own subprocess): learned
    per-layer-step rates, multi-step loss, first then second order, ANIL: the replicas' weights
    and rates after 10 iterations are the one device's."""
    variants = mirrored[0]["variants"]
    assert variants["rates"] and variants["same_keys"]
    # The replicas' means of means in another order: float32 round-off (measured 7e-9).
    assert variants["largest_difference"] < 1e-6


def _checkpoint(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "CHECKPOINTABLE_OBJECT_GRAPH" not in k and "save_counter" not in k}


def _same_checkpoints(a, b):
    a, b = _checkpoint(a), _checkpoint(b)
    # The model's weights are stored once, under the optimizer that tracks them.
    assert sorted(a) == sorted(b) and any("_trainable_variables" in k for k in a)
    assert a["iteration/.ATTRIBUTES/VARIABLE_VALUE"] == b["iteration/.ATTRIBUTES/VARIABLE_VALUE"]
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_resumed_mirrored_run_matches_an_uninterrupted_single_device_run(mirrored):
    _, workdir, stdout = mirrored
    assert f"resuming {workdir / 'mirrored'} from iteration 2" in stdout
    assert "mirrored: 2 replicas, 2 tasks each" in stdout
    _same_checkpoints(str(workdir / "default" / "checkpoints" / "ckpt-4"),
                      str(workdir / "mirrored" / "checkpoints" / "ckpt-4"))
    out = mirrored[0]  # and the mirrored run's checkpoint evaluates as the default run's
    assert len(out["eval/default"]) == 3
    np.testing.assert_allclose(out["eval/mirrored"], out["eval/default"], rtol=1e-5)


def test_what_the_replicas_cannot_do_is_one_clear_error(mirrored, tmp_path):
    assert mirrored[0]["split_error"] == ("meta_batch_size=5 does not split evenly over 2 "
                                          "replicas; use a multiple of 2")
    assert mirrored[0]["jit_error"].startswith("jit_compile with several replicas needs GPUs")
    proc = subprocess.run([sys.executable, "-m", "maml_tf.main", f"--logdir={tmp_path}",
                           "--strategy=mirrored", "--meta_batch_size=5"], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == ("error: meta_batch_size=5 does not split "
                                                   "evenly over 2 replicas; use a multiple of 2")
    assert not list(tmp_path.iterdir())  # no run directory left behind


BAD_TF_CONFIGS = {
    "xx": "TF_CONFIG is not JSON",
    "[1]": "TF_CONFIG is a JSON list, not an object",
    '{"task": {"type": "worker", "index": 0}}': 'TF_CONFIG has no "cluster"',
    '{"cluster": {"worker": ["127.0.0.1:1"]}}': 'TF_CONFIG has no "task"',
    '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}':
        "TF_CONFIG's task index 3 does not name one of its cluster's 1 'worker' addresses",
    '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "chief", "index": 0}}':
        "TF_CONFIG's task type 'chief' is not a job of its cluster",
}


@pytest.mark.parametrize("tf_config", BAD_TF_CONFIGS)
def test_a_malformed_tf_config_is_one_clear_error(tf_config):
    with pytest.raises(UserError) as err:
        distribute.check_tf_config(tf_config)
    assert str(err.value).startswith(BAD_TF_CONFIGS[tf_config]) and "\n" not in str(err.value)
    good = {"cluster": {"worker": ["10.0.0.1:1", "10.0.0.2:1"]},
            "task": {"type": "worker", "index": 1}}
    distribute.check_tf_config(json.dumps(good))  # the README's form: accepted


def test_a_malformed_tf_config_stops_main_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "maml_tf.main", f"--logdir={tmp_path}",
                           "--strategy=multi_worker", "--metatrain_iterations=2"],
                          env=dict(ENV, TF_CONFIG="xx"), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: TF_CONFIG is not JSON")
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MW_FLAGS = ["--datasource=sinusoid", "--norm=None", "--update_batch_size=5", "--meta_batch_size=4",
            "--update_lr=0.01", "--meta_lr=0.01", "--checkpoint_interval=2", "--print_interval=1",
            "--val_interval=2", "--num_val_tasks=4", "--run_name=run"]


def _launch(logdir, iterations, env, strategy="default"):
    return subprocess.Popen([sys.executable, "-m", "maml_tf.main", f"--logdir={logdir}",
                             f"--metatrain_iterations={iterations}", f"--strategy={strategy}",
                             *MW_FLAGS], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(procs, timeout=240):
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    print(*outputs, sep="\n---\n")  # shown by pytest when a later assertion fails
    return outputs


def _worker_envs(scratch):
    """TF_CONFIG of a two-worker cluster on fresh loopback ports, one environment per worker."""
    ports = [_free_port(), _free_port()]
    return [dict(ENV, TMPDIR=str(scratch), TF_CONFIG=json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
         "task": {"type": "worker", "index": index}})) for index in range(2)]


def test_multi_worker_on_loopback_trains_resumes_and_matches_one_device(tmp_path):
    """Two worker processes (TF_CONFIG on 127.0.0.1): 2 iterations, then resumed to 4."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    _finish([_launch(tmp_path / "multi", 2, env, "multi_worker") for env in _worker_envs(scratch)])
    second = [_launch(tmp_path / "multi", 4, env, "multi_worker") for env in _worker_envs(scratch)]
    from maml_tf import main

    try:  # the one-device run: the same main and flags, in this process (the reference only)
        main.FLAGS.unparse_flags()
        main.FLAGS(["main", f"--logdir={tmp_path / 'single'}", "--metatrain_iterations=4",
                    "--strategy=default", *MW_FLAGS])
        main.main(["main"])
    finally:
        main.FLAGS.unparse_flags()
    outputs = _finish(second)
    run = tmp_path / "multi" / "run"
    assert all(f"resuming {run} from iteration 2" in out for out in outputs[:2])
    assert "multi_worker: 2 replicas, 2 tasks each\n" in outputs[0]
    assert "multi_worker: 2 replicas, 2 tasks each (not the chief: writes nothing)" in outputs[1]
    _same_checkpoints(str(tmp_path / "single" / "run" / "checkpoints" / "ckpt-4"),
                      str(run / "checkpoints" / "ckpt-4"))
    # Only the chief wrote: one validation row per validation, and no worker scratch is left.
    rows = [json.loads(line)["iteration"] for line in open(run / "validation.jsonl")]
    assert rows == [2, 4]
    assert not list(scratch.iterdir())


def test_a_tpu_strategy_without_a_tpu_is_one_error_line(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(UserError, match="--strategy=tpu: no TPU found .*set TPU_NAME"):
        distribute._create("tpu", 2)  # was: ValueError's traceback
