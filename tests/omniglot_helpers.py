"""Omniglot test helpers: where the real zips are, a skip marker without them, and a small Config."""

import os

import pytest

from maml_tf.experiment.config import Config

DATA_DIR = os.environ.get("MAML_TF_DATA_DIR", "")
ZIP_DIR = os.path.join(DATA_DIR, "omniglot")
needs_data = pytest.mark.skipif(
    not os.path.isfile(os.path.join(ZIP_DIR, "images_background.zip")),
    reason="real Omniglot zips not found under $MAML_TF_DATA_DIR/omniglot")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def omniglot_config(cache_dir, **changes):
    base = dict(dataset="omniglot", ways=5, shots=1, queries=1, eval_shots=1, eval_queries=1,
                data_dir=DATA_DIR, cache_dir=cache_dir)
    return Config(**{**base, **changes})
