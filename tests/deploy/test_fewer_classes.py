"""An N-way model given a task of n < N classes adapts and predicts over its head's first n outputs, everywhere it is used."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import maml_tf
from maml_tf import algorithms, export, metrics
from maml_tf.deploy.meta import InputError
from test_export_and_classify import LOAD_WITHOUT_MAML_TF, toy_run

WAYS, SHOTS = 3, 2  # a task of 3 classes for the toy run's 4-way head


def task(seed=0):
    rng = np.random.default_rng(seed)
    x, q = rng.random((WAYS * SHOTS, 28, 28, 1), np.float32), rng.random((5, 28, 28, 1), np.float32)
    return x, np.repeat(np.arange(WAYS, dtype=np.int32), SHOTS), q


def reference(meta, x, y, q):
    """Adapt on the loss of the first WAYS logits, softmax over them (MAML's steps, written out)."""
    xent = metrics.make_xent_over_k(SHOTS)
    fast = algorithms.adapt(meta.learner, lambda t, logits: xent(t, logits[:, :WAYS]),
                            meta.learner.weights(), tf.constant(x), tf.constant(y),
                            meta.settings.inner_lr, meta.settings.steps, first_order=True)
    logits = meta.learner.apply(fast, meta.learner.state(), tf.constant(q))[0]
    return tf.nn.softmax(logits[:, :WAYS]).numpy()


@pytest.fixture(scope="module")
def meta(tmp_path_factory):
    return maml_tf.load(toy_run(tmp_path_factory.mktemp("run")))


def test_predict_and_adapt_use_only_the_tasks_classes(meta, tmp_path):
    assert meta.num_classes == 4
    x, y, q = task()
    probs = meta.predict(x, y, q)
    assert probs.shape == (5, WAYS)  # no probability on the head slot no support example names
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, reference(meta, x, y, q), rtol=1e-4, atol=1e-6)
    adapted = meta.adapt(x, y)
    assert adapted.output_shape == (None, WAYS)
    np.testing.assert_allclose(keras.ops.softmax(adapted(q)).numpy(), probs, rtol=1e-4, atol=1e-6)
    adapted.save(tmp_path / "adapted.keras")  # still a saveable Keras model
    again = keras.models.load_model(tmp_path / "adapted.keras")
    np.testing.assert_allclose(again.predict(q, verbose=0), adapted.predict(q, verbose=0), rtol=1e-5)


def test_a_class_id_without_examples_is_refused(meta):
    x, _, q = task()
    with pytest.raises(InputError, match=r"no example of class ids \[1\]"):
        meta.predict(x, np.array([0, 0, 2, 2, 3, 3]), q)


def test_savedmodel_for_fewer_ways(meta, tmp_path, capsys):
    run = toy_run(tmp_path / "run")
    export.main(["--run", run, "--out", str(tmp_path / "saved"), "--ways", str(WAYS)])
    assert f"for {WAYS}-way {SHOTS}-shot" in capsys.readouterr().out
    x, y, q = task()
    np.savez(tmp_path / "task.npz", x=x, y=y, q=q)
    (tmp_path / "serve.py").write_text(LOAD_WITHOUT_MAML_TF)
    proc = subprocess.run([sys.executable, str(tmp_path / "serve.py"), str(tmp_path / "saved"),
                           str(tmp_path / "task.npz"), str(tmp_path / "out.npy")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), meta.predict(x, y, q), rtol=1e-5, atol=1e-6)
    with pytest.raises(SystemExit):
        export.main(["--run", run, "--out", str(tmp_path / "saved5"), "--ways", "5"])
    assert "ways must be 2..4" in capsys.readouterr().err
