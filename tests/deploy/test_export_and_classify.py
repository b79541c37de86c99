"""The SavedModel export (loaded where maml_tf is never imported) and the image command, on toy Omniglot models."""

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import maml_tf
from maml_tf import classify, export
from maml_tf.datasets import omniglot_data
from maml_tf.deploy import images
from maml_tf.deploy.loading import NetworkSpec
from maml_tf.workdir import model_file
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import build_model
from maml_tf.inner_opt import InnerMoments

TOY = dict(dataset="omniglot", ways=4, shots=2, eval_shots=2, num_filters=4, inner_lr=0.4,
           eval_inner_steps=3)


def toy_run(workdir, **changes):
    """A run directory (config.json + checkpoint) of an untrained toy network: what load reads."""
    config = Config(**{**TOY, **changes})
    model = build_model(config, NetworkSpec(config))
    state = {"model": model}
    if config.algorithm == "reptile":  # moments as training leaves them: positive, varied
        state["inner_moments"] = moments = InnerMoments(model.trainable_variables)
        for v in moments.v:
            v.assign(np.random.default_rng(1).random(v.shape, np.float32) * 1e-3)
        moments.step.assign(40)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json())
    Checkpointer(workdir, state).save(7)
    return str(workdir)


LOAD_WITHOUT_MAML_TF = """
import sys, numpy as np, tensorflow as tf
d = np.load(sys.argv[2])
serve = tf.saved_model.load(sys.argv[1]).signatures["adapt_and_predict"]
out = serve(support_x=tf.constant(d["x"]), support_y=tf.constant(d["y"]), query_x=tf.constant(d["q"]))
np.save(sys.argv[3], out["probabilities"].numpy())
assert not [m for m in sys.modules if m.startswith("maml_tf")], "maml_tf was imported"
"""


@pytest.mark.parametrize("algorithm", ["maml", "reptile"])
def test_savedmodel_adapts_and_predicts_as_the_library_without_maml_tf(tmp_path, algorithm, capsys):
    changes = dict(algorithm="reptile", inner_optimizer="adam", eval_inner_lr=0.01,
                   eval_inner_batch_size=3) if algorithm == "reptile" else {}
    run = toy_run(tmp_path / "run", **changes)
    export.main(["--run", run, "--out", str(tmp_path / "saved")])
    assert "for 4-way 2-shot" in capsys.readouterr().out
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 28, 28, 1), np.float32), np.repeat(np.arange(4, dtype=np.int32), 2)
    q = rng.random((5, 28, 28, 1), np.float32)
    np.savez(tmp_path / "task.npz", x=x, y=y, q=q)
    script = tmp_path / "serve.py"
    script.write_text(LOAD_WITHOUT_MAML_TF)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "saved"),
                           str(tmp_path / "task.npz"), str(tmp_path / "out.npy")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    # loading is clean: no "Importing a function ... with ops with unsaved custom gradients"
    assert "WARNING:absl" not in proc.stderr, proc.stderr[-2000:]
    meta = maml_tf.load(run)
    want = meta.predict(x, y, q)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, rtol=1e-5, atol=1e-6)
    # three inner steps moved the prediction away from the unadapted one
    assert np.abs(meta.predict(x, y, q, steps=0) - want).max() > 1e-3


@pytest.mark.parametrize("out, said", [
    ("{run}", "error: {run} exists and is not empty: give a new directory"),
    ("{run}/config.json", "error: --out {run}/config.json is a file: give a new directory"),
    ("/proc/no_such/x", "error: --out /proc/no_such/x: cannot write in /proc"),
])
def test_export_refuses_an_out_it_cannot_write_in_one_line(tmp_path, capsys, out, said):
    run = toy_run(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_:
        export.main(["--run", run, "--out", out.format(run=run)])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip().startswith(said.format(run=run))


def drawing(seed, size=105):
    """A white PNG with a black random stroke pattern, as an Omniglot drawing (mode "1")."""
    ink = np.zeros((size, size), bool)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        r, c = rng.integers(10, size - 30, 2)
        ink[r:r + 20, c:c + 6] = True
    return Image.fromarray(~ink)


def write_folders(root, classes=("alpha", "beta", "gamma"), shots=2):
    for k, name in enumerate(classes):
        os.makedirs(root / "support" / name)
        for i in range(shots):
            drawing(10 * k + i).save(root / "support" / name / f"{i}.png")
    os.makedirs(root / "query")
    for k in range(len(classes)):
        drawing(10 * k).convert("L").resize((60, 60)).save(root / "query" / f"q{k}.png")


def test_images_are_prepared_as_the_training_data():
    official = drawing(3)  # 105x105 1-bit, as the official PNGs
    want = omniglot_data.resize(np.asarray(official), "original") / 255.0
    np.testing.assert_array_equal(images.prepare(official, "omniglot")[..., 0], want.astype(np.float32))
    assert images.prepare(official, "omniglot").max() == 1.0  # ink = 1
    rgb = np.random.default_rng(0).integers(0, 256, (84, 84, 3), dtype=np.uint8)
    np.testing.assert_array_equal(images.prepare(Image.fromarray(rgb), "miniimagenet"),
                                  np.divide(rgb, 255.0, dtype=np.float32))
    assert images.prepare(Image.fromarray(rgb).resize((200, 150)), "miniimagenet").shape == (84, 84, 3)


def test_classify_command_writes_the_expected_csv(tmp_path, capsys):
    run = toy_run(tmp_path / "run")
    model = str(tmp_path / "model.keras")
    meta = maml_tf.load(run)
    model_file.save(model, meta.model, meta.config.to_json(), 7)
    write_folders(tmp_path)
    out = tmp_path / "pred.csv"
    classify.main(["--model", model, "--support", str(tmp_path / "support"),
                   "--query", str(tmp_path / "query"), "--out", str(out)])
    printed = capsys.readouterr().out
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert printed == out.read_text() and rows[0] == ["file", "predicted_class", "probability"]
    assert [r[0] for r in rows[1:]] == ["q0.png", "q1.png", "q2.png"]
    x, y, classes = images.support_folder(str(tmp_path / "support"), 4, "omniglot")
    q, _ = images.query_folder(str(tmp_path / "query"), "omniglot")
    assert classes == ["alpha", "beta", "gamma"] and list(y) == [0, 0, 1, 1, 2, 2]
    probs = meta.predict(x, y, q)  # over the 3 classes given, not the head's 4
    assert probs.shape == (3, 3)
    assert [r[1] for r in rows[1:]] == [classes[i] for i in probs.argmax(axis=1)]
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], probs.max(axis=1), atol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda root: write_folders(root, classes=("a", "b", "c", "d", "e")),
     "support folder {root}/support has 5 classes but the model's head has 4"),
    (lambda root: (write_folders(root), os.makedirs(root / "support" / "empty")),
     "class folder {root}/support/empty has no images"),
    (lambda root: (write_folders(root), (root / "query" / "broken.png").write_bytes(b"not a png")),
     "cannot read image {root}/query/broken.png"),
    (lambda root: (write_folders(root), os.makedirs(root / "query2")),
     None),
])
def test_bad_folders_give_one_clear_line(tmp_path, capsys, make, message):
    run = toy_run(tmp_path / "run")
    make(tmp_path)
    query = "query2" if message is None else "query"
    with pytest.raises(SystemExit) as exit_:
        classify.main(["--model", run, "--support", str(tmp_path / "support"),
                       "--query", str(tmp_path / query), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    expected = (message or "query folder {root}/query2 has no images").format(root=tmp_path)
    assert exit_.value.code == 1 and len(err) == 1 and err[0].startswith("error: " + expected), err
