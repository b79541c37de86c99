"""What a killed or refused run leaves behind: temporary files are cleared, a run whose data is missing makes no directory."""

import os

import pytest

from maml_tf.errors import UserError
from maml_tf.experiment import train
from maml_tf.experiment.config import Config
from test_rundir import TOY


def test_a_killed_writes_temporary_files_are_removed_on_resume(tmp_path):
    config = Config(**TOY)
    train.train_and_evaluate(config, str(tmp_path))
    left = [tmp_path / ".runinfo.json.a1b2c3d4", tmp_path / ".config.json.zz_9yx8w",
            tmp_path / "checkpoints" / ".checkpoint.k3j4h5g6"]
    for path in left:
        path.write_text("{half")
    train.train_and_evaluate(config.replace(metatrain_iterations=30), str(tmp_path))
    assert not [p for p in left if p.exists()]
    assert (tmp_path / "runinfo.json").exists()


def test_a_run_whose_data_is_missing_leaves_no_directory(tmp_path):
    workdir = tmp_path / "logs" / "run"
    config = Config(dataset="miniimagenet", ways=5, shots=1, queries=1, num_filters=4,
                    data_dir=str(tmp_path / "no_data"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(UserError, match="no_data"):
        train.train_and_evaluate(config, str(workdir))
    assert not os.path.exists(workdir)
