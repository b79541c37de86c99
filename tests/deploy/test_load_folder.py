"""A --datasource=folder run loads (its run directory by the input shape its model.keras holds, never a guessed one) and classifies a user's images prepared exactly as its training images."""

import csv
import io
import os
import shutil

import numpy as np
import pytest

import maml_tf
from maml_tf import classify, datasets
from maml_tf.deploy import images
from maml_tf.errors import UserError
from maml_tf.experiment import train
from maml_tf.experiment.config import Config
from folder_helpers import class_image, write_tree


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A toy folder run (mixed 16-30 px RGB images: the most common, 20 px, is chosen)."""
    tmp = tmp_path_factory.mktemp("folder_run")
    root = write_tree(tmp / "data")
    config = Config(dataset="folder", data_dir=root, cache_dir=str(tmp / "cache"), ways=3, shots=1,
                    queries=1, eval_shots=1, eval_queries=1, num_filters=8, meta_batch_size=4,
                    inner_lr=0.4, eval_inner_lr=0.4, metatrain_iterations=20, val_interval=0,
                    checkpoint_interval=10, print_interval=10, log=False,
                    folder_split="0.5,0.25,0.25")
    train.train_and_evaluate(config, str(tmp / "run"))
    return config, str(tmp / "run"), root, tmp


def test_run_directory_loads_with_its_model_files_shape(folder_run):
    config, run, _, _ = folder_run
    from_dir, from_file = maml_tf.load(run), maml_tf.load(os.path.join(run, "model.keras"))
    assert from_dir.input_shape == from_file.input_shape == (20, 20, 3)
    for a, b in zip(from_dir.model.weights, from_file.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    older = maml_tf.load(run, iteration=10)  # an older checkpoint, built with the same shape
    assert older.iteration == 10 and older.input_shape == (20, 20, 3)


def test_run_directory_without_model_file_is_refused(folder_run, tmp_path):
    config, run, _, _ = folder_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    os.remove(copy / "model.keras")
    with pytest.raises(UserError, match="without its model.keras"):
        maml_tf.load(str(copy))


def test_user_images_are_prepared_as_the_training_images(folder_run):
    config, _, root, _ = folder_run
    sampler = datasets.get_sampler(config)
    for i in (0, 3):  # 20x20 (not resized) and 30x18 (resized by the one Lanczos path)
        path = os.path.join(root, "class00", f"{i}.png")
        got = images.read(path, "folder", shape=(20, 20, 3))
        np.testing.assert_array_equal(got, np.divide(sampler.images[i], 255.0, dtype=np.float32))
    with pytest.raises(UserError, match="prepared at its input shape: pass shape=meta.input_shape"):
        images.read(os.path.join(root, "class00", "0.png"), "folder")  # said "its input shape is None"


def test_classify_a_folder_model(folder_run, capsys):
    _, run, _, tmp = folder_run
    for c, name in enumerate(["c9", "c10", "c11"]):  # test-split classes, not trained on
        os.makedirs(tmp / "support" / name, exist_ok=True)
        class_image(9 + c, 0, (20, 20)).save(tmp / "support" / name / "s.png")
        os.makedirs(tmp / "query", exist_ok=True)
        class_image(9 + c, 1, (24, 24)).save(tmp / "query" / f"q{c}.png")
    out = tmp / "pred.csv"
    classify.main(["--model", run, "--support", str(tmp / "support"), "--query", str(tmp / "query"),
                   "--out", str(out), "--steps", "5"])
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["file", "predicted_class", "probability"]
    assert [r[0] for r in rows[1:]] == ["q0.png", "q1.png", "q2.png"]
    assert all(r[1] in ("c9", "c10", "c11") and 0 < float(r[2]) <= 1 for r in rows[1:])
    assert "wrote" in capsys.readouterr().err
