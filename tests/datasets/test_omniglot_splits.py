"""Omniglot splits (random, alphabets, within an alphabet) and task sampling: shapes, labels, rotations."""

import numpy as np
import pytest

from maml_tf.datasets import omniglot
from maml_tf.errors import UserError
from omniglot_helpers import needs_data, omniglot_config


def test_random_split_sizes_disjoint_and_fixed():
    splits = omniglot.random_split()
    assert [len(s) for s in splits] == [1100, 100, 423]
    every = np.concatenate(splits)
    assert len(np.unique(every)) == 1623 and every.min() == 0 and every.max() == 1622
    np.testing.assert_array_equal(splits.test, omniglot.random_split().test)  # seeded, not global
    # the very split the committed runs used (random_split refuses a NumPy that draws another)
    assert omniglot.split_fingerprint(splits) == omniglot.RANDOM_SPLIT_SHA256
    assert list(splits.test[:5]) == [1104, 1014, 1029, 1169, 122]


def test_a_numpy_that_draws_another_split_is_refused(monkeypatch):
    monkeypatch.setattr(omniglot, "RANDOM_SPLIT_SHA256", "0" * 64)
    with pytest.raises(UserError, match="draws another Omniglot character split from seed 1"):
        omniglot.random_split()


@needs_data
def test_alphabet_split_follows_background_and_evaluation(data):
    splits = omniglot.alphabet_split(data.alphabet, data.background)
    assert data.background.sum() == 964 and len(np.unique(data.alphabet)) == 50
    np.testing.assert_array_equal(np.sort(np.concatenate([splits.train, splits.val])),
                                  np.flatnonzero(data.background))
    np.testing.assert_array_equal(splits.test, np.flatnonzero(~data.background))
    alphabets = [set(data.alphabet[s]) for s in splits]
    assert [len(a) for a in alphabets] == [26, 4, 20]
    assert not (alphabets[0] & alphabets[1]) and not (alphabets[0] & alphabets[2])


def _synthetic_sampler(ways, n_chars=30):
    """Character c's images are all c + 1 with one ink pixel at the top-left corner (value 255):
    the class of an example is readable at any rotation, and the corner gives the rotation."""
    images = np.broadcast_to(np.arange(1, n_chars + 1, dtype=np.uint8)[:, None, None, None],
                             (n_chars, 20, 28, 28)).copy()
    images[:, :, 0, 0] = 255
    pools = {s: [np.arange(n_chars)] for s in ("train", "val", "test")}
    return omniglot.OmniglotSampler(images, pools, ways)


def test_task_shapes_and_labels_are_consistent():
    ways, shots, queries, batch = 3, 2, 4, 50  # ways != queries so an axis mix-up fails
    task = _synthetic_sampler(ways).sample("train", batch, shots, queries, np.random.default_rng(0))
    assert task.support_x.shape == (batch, ways * shots, 28, 28, 1)
    assert task.query_x.shape == (batch, ways * queries, 28, 28, 1)
    assert task.support_y.shape == (batch, ways * shots) and task.query_y.shape == (batch, ways * queries)
    assert task.support_x.dtype == np.float32 and task.support_y.dtype == np.int32
    char = lambda x: np.round(np.median(x[..., 0], axis=(-2, -1)) * 255).astype(int)  # noqa: E731
    for b in range(batch):
        s_char, q_char = char(task.support_x[b]), char(task.query_x[b])
        for label in range(ways):
            ids = set(s_char[task.support_y[b] == label]) | set(q_char[task.query_y[b] == label])
            assert len(ids) == 1  # one character per label, in support and query alike
        assert len(set(s_char)) == ways and np.bincount(task.query_y[b]).tolist() == [queries] * ways
    # Labels are shuffled per task: label 0 is not tied to a character.
    label0 = {char(task.support_x[b][task.support_y[b] == 0])[0] for b in range(batch)}
    assert len(label0) > 10


def test_rotations_are_random_per_class_and_shared_within_a_class():
    task = _synthetic_sampler(5).sample("test", 200, 2, 3, np.random.default_rng(1))
    x = np.concatenate([task.support_x, task.query_x], 1)[..., 0]
    y = np.concatenate([task.support_y, task.query_y], 1)
    corners = np.stack([x[..., 0, 0], x[..., 0, -1], x[..., -1, -1], x[..., -1, 0]], -1) == 1.0
    assert np.all(corners.sum(-1) == 1)
    rotation = corners.argmax(-1)  # 0: upright; 1, 2, 3: the corner moved by a quarter turn each
    for b in range(len(y)):
        for label in range(5):
            assert len(set(rotation[b][y[b] == label])) == 1
    assert np.allclose(np.bincount(rotation.ravel(), minlength=4) / rotation.size, 0.25, atol=0.05)


@needs_data
def test_sampler_on_real_data_uses_the_split_and_ink_is_one(cache_dir):
    sampler = omniglot.make_sampler(omniglot_config(cache_dir, ways=20))
    task = sampler.sample("test", 4, 5, 3, np.random.default_rng(0))
    assert task.query_x.shape == (4, 60, 28, 28, 1) and task.support_y.max() == 19
    assert 0.03 < task.support_x.mean() < 0.2  # mostly paper (0) with some ink (1)
    assert set(np.unique(task.support_x)) == {0.0, 1.0}


@needs_data
def test_within_alphabet_tasks_stay_in_one_alphabet(data, cache_dir):
    sampler = omniglot.make_sampler(omniglot_config(cache_dir, ways=20, omniglot_split="within_alphabet"))
    for split in ("train", "val", "test"):
        classes = sampler._classes(split, 40, np.random.default_rng(0))
        alphabets = data.alphabet[classes]
        assert np.all(alphabets == alphabets[:, :1]) and len(np.unique(alphabets[:, 0])) > 1
        assert all(len(set(row)) == 20 for row in classes)
    assert not set(data.alphabet[data.background]) & set(data.alphabet[classes.ravel()])  # test split
