"""Omniglot through the runner: bad input as one error line from main, the paper's networks, and a short real run that learns."""

import os
import subprocess
import sys

import numpy as np
import pytest

from maml_tf.experiment.config import Config
from omniglot_helpers import ROOT, ZIP_DIR, needs_data, omniglot_config


def _main(*args, **env):
    command = [sys.executable, "-m", "maml_tf.main", "--datasource=omniglot",
               "--metatrain_iterations=1", *args]
    full_env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120)


def _one_error_line(result) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return errors[0]


def test_missing_zips_say_where_to_get_them(tmp_path):
    line = _one_error_line(_main(f"--data_dir={tmp_path}", f"--cache_dir={tmp_path}/cache",
                                 f"--logdir={tmp_path}/logs"))
    assert "images_background.zip" in line and str(tmp_path) in line
    assert "github.com/brendenlake/omniglot" in line and "tfds" in line


@needs_data
def test_truncated_zip_is_reported(tmp_path):
    os.makedirs(tmp_path / "omniglot")
    with open(os.path.join(ZIP_DIR, "images_background.zip"), "rb") as f:
        (tmp_path / "omniglot" / "images_background.zip").write_bytes(f.read(3_000_000))
    os.symlink(os.path.join(ZIP_DIR, "images_evaluation.zip"),
               tmp_path / "omniglot" / "images_evaluation.zip")
    line = _one_error_line(_main(f"--data_dir={tmp_path}", f"--cache_dir={tmp_path}/cache",
                                 f"--logdir={tmp_path}/logs"))
    assert "images_background.zip is not a readable zip" in line and "truncated" in line


@pytest.mark.parametrize("flags, expected", [
    (["--num_classes=101"], "--num_classes=101 is larger than the omniglot val split (100"),
    (["--update_batch_size=11"], "omniglot has 20 drawings per character"),
    (["--update_batch_size=5", "--num_query=16", "--train=False"],  # evaluation's own sizes only
     "evaluation tasks need 5 support + 16 query: lower --update_batch_size or --num_query"),
])
def test_task_too_big_for_the_data(tmp_path, flags, expected):
    # These are refused before any data is read, so no data directory is needed.
    line = _one_error_line(_main(*flags, f"--data_dir={tmp_path}", f"--logdir={tmp_path}/logs"))
    assert expected in line


@needs_data
def test_short_meta_training_learns_5way_1shot(cache_dir, tmp_path):
    from maml_tf.experiment import recorded, train

    # 32 filters, not the paper's 64 (about half the training time): after step 3 the accuracy
    # was 0.598/0.562/0.554 at seeds 0/1/2 (64 filters: 0.588 at seed 0), before it 0.21-0.22.
    config = omniglot_config(cache_dir, meta_batch_size=8, inner_lr=0.4, eval_inner_lr=0.4,
                     metatrain_iterations=300, val_interval=300, val_tasks=100, num_filters=32,
                     eval_inner_steps=3, checkpoint_interval=300, print_interval=100, log=False)
    result = train.train_and_evaluate(config, str(tmp_path / "run"))
    # Read by step value (validation records only some steps), after the evaluation's last
    # step: after step 1 the accuracy sits at the bound (0.44-0.52 over seeds and kernel paths,
    # 64 filters).
    steps = recorded.steps_of(result, len(result["accuracy"]))
    pre, post = recorded.at_step(result["accuracy"], steps, 0), recorded.at_step(result["accuracy"], steps, 3)
    assert post > 0.45 and post > pre + 0.15, result["accuracy"]


class _Images:
    problem, input_shape, output_dim = "classification", (28, 28, 1), 5


def test_networks_are_the_originals():
    from maml_tf import models
    from maml_tf.experiment.experiment import build_model

    fc = build_model(Config(dataset="omniglot", conv=False), _Images)
    kernels = [v for v in fc.trainable_variables if v.path.endswith("kernel")]
    assert [tuple(v.shape) for v in kernels] == [(784, 256), (256, 128), (128, 64), (64, 64), (64, 5)]
    # tf.truncated_normal(stddev=0.01) as the original: std 0.0088 after truncation at 2 sigma.
    assert all(0.0080 < np.std(v.numpy()) < 0.0096 for v in kernels)
    offsets = [v for v in fc.trainable_variables if "batch_norm" in v.path]
    assert len(offsets) == 4 and all("beta" in v.path for v in offsets)  # offset, no scale
    assert sum(models.Learner(fc).inner_mask) == 10  # norm offsets are outer-loop only
    conv = build_model(Config(dataset="omniglot"), _Images)
    kernels = [v for v in conv.trainable_variables if v.path.endswith("kernel")]
    assert [tuple(v.shape) for v in kernels] == [(3, 3, 1, 64)] + [(3, 3, 64, 64)] * 3 + [(64, 5)]
    assert 0.8 < np.std(kernels[-1].numpy()) < 1.2  # the original's N(0, 1) head
    assert conv(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 5)
