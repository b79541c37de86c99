"""The missing-data errors name the absolute folder looked in, --data_dir and MAML_TF_DATA_DIR."""

import os
import subprocess
import sys

import pytest

from maml_tf.datasets import miniimagenet
from maml_tf.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_omniglot_from_main_with_the_default_data_dir(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MAML_TF_DATA_DIR"}
    proc = subprocess.run([sys.executable, "-m", "maml_tf.main", "--datasource=omniglot",
                           f"--logdir={tmp_path}/logs"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=dict(env, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 1
    line, = proc.stderr.splitlines()
    assert line.startswith(f"error: no images_background.zip or images_evaluation.zip in {tmp_path}/data/omniglot ")
    assert "--data_dir" in line and "MAML_TF_DATA_DIR" in line


def test_miniimagenet_with_a_relative_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        miniimagenet.load_split("mydata", "val")
    message = str(err.value)
    assert f"split 'val' under {tmp_path}/mydata/miniimagenet " in message
    assert "--data_dir" in message and "MAML_TF_DATA_DIR" in message


@pytest.mark.parametrize("dataset", ["omniglot", "miniimagenet"])
def test_a_data_dir_that_is_a_file_is_said_to_be_one(tmp_path, dataset):
    from maml_tf.experiment.config import Config

    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(UserError, match=f"the data directory {tmp_path}/data is a file, not a directory"):
        Config(dataset=dataset, data_dir=str(tmp_path / "data")).validate()
