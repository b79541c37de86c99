"""A --datasource=folder run is never loaded with a guessed input shape (which would load only the weights that fit)."""

import os

import pytest

import maml_tf
from maml_tf.errors import UserError
from maml_tf.experiment.config import Config


def test_a_folder_run_directory_is_refused_not_guessed(tmp_path):
    config = Config(dataset="folder", ways=3, shots=1, queries=1, num_filters=4)
    (tmp_path / "config.json").write_text(config.to_json())
    os.makedirs(tmp_path / "checkpoints")
    with pytest.raises(UserError, match="load its model.keras"):
        maml_tf.load(str(tmp_path))
