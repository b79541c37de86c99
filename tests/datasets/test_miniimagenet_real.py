"""The real miniImageNet beside the checkout (skipped without it): the Ravi & Larochelle split as the paper used it, and real tasks."""

import os

import numpy as np
import pytest

from maml_tf.datasets import miniimagenet as mi
from maml_tf.datasets import miniimagenet_io as io

DATA_DIR = os.environ.get("MAML_TF_DATA_DIR", "")
CACHE_DIR = os.environ.get("MAML_TF_CACHE_DIR") or None
pytestmark = pytest.mark.skipif(
    not os.path.isdir(os.path.join(DATA_DIR, "miniimagenet", "train")),
    reason="real miniImageNet not found under $MAML_TF_DATA_DIR/miniimagenet")


@pytest.fixture(scope="module")
def sampler():
    # First use decodes the 60,000 JPEGs (about 25 s on 2 cores); later ones read the uint8 cache.
    return mi.MiniImageNetSampler(DATA_DIR, ways=5, cache_dir=CACHE_DIR)


def test_splits_have_64_16_20_classes_of_600_images_84x84x3(sampler):
    for split, classes in (("train", 64), ("val", 16), ("test", 20)):
        data = sampler.split(split)
        assert len(data.classes) == classes, split
        assert data.counts.tolist() == [600] * classes, split
        assert data.images.shape == (600 * classes, 84, 84, 3) and data.images.dtype == np.uint8


def test_no_class_and_no_file_is_in_two_splits():
    files, classes = {}, {}
    for split in mi.SPLITS:
        groups = io.list_class_folders(os.path.join(DATA_DIR, "miniimagenet", split))
        classes[split] = set(groups)
        files[split] = {f for names in groups.values() for f in names}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not classes[a] & classes[b], (a, b)
        assert not files[a] & files[b], (a, b)
    assert sum(len(f) for f in files.values()) == 60000


def test_a_real_5way_task_batch(sampler):
    task = sampler.sample("test", 4, 1, 15, np.random.default_rng(0))
    assert task.support_x.shape == (4, 5, 84, 84, 3) and task.query_x.shape == (4, 75, 84, 84, 3)
    assert task.support_y.shape == (4, 5) and task.query_y.shape == (4, 75)
    assert task.query_x.dtype == np.float32 and 0.0 <= task.query_x.min() and task.query_x.max() <= 1.0
    # Real photos: every image varies, and the batch's pixel mean is near the data's (0.44).
    assert (task.query_x.reshape(300, -1).std(axis=1) > 0.01).all()
    assert 0.3 < task.query_x.mean() < 0.6
    assert sorted(task.query_y[0].tolist()) == sorted(list(range(5)) * 15)
