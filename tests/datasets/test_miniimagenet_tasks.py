"""MiniImageNet tasks: shapes, shuffled labels, 15 queries per class, distinct images of the labelled class."""

import numpy as np
import pytest

from maml_tf.datasets import miniimagenet as mi
from maml_tf.errors import UserError


def test_tasks_shapes_labels_and_fifteen_queries(full):
    sampler = mi.MiniImageNetSampler(full, ways=5)
    rng = np.random.default_rng(0)
    task = sampler.sample("train", 4, 1, 15, rng)
    assert task.support_x.shape == (4, 5, 84, 84, 3) and task.query_x.shape == (4, 75, 84, 84, 3)
    assert task.support_x.dtype == task.query_x.dtype == np.float32
    assert task.support_y.dtype == np.int32 and 0 <= task.query_x.min() and task.query_x.max() <= 1
    for t in range(4):
        assert np.bincount(task.query_y[t], minlength=5).tolist() == [15] * 5
        assert np.bincount(task.support_y[t], minlength=5).tolist() == [1] * 5
    # every image is a stored image of the one class its label names, and none repeats in a task
    data = sampler.split("train")
    flat = data.images.reshape(len(data.images), -1)
    lookup = {row.tobytes(): i for i, row in enumerate(flat)}
    owner = np.repeat(np.arange(len(data.classes)), data.counts)
    first_class = []
    for t in range(4):
        x = np.concatenate([task.support_x[t], task.query_x[t]])
        y = np.concatenate([task.support_y[t], task.query_y[t]])
        rows = [lookup[np.rint(img * 255).astype(np.uint8).tobytes()] for img in x]
        assert len(set(rows)) == len(rows)
        classes_of_label = {lab: set(owner[[r for r, l in zip(rows, y) if l == lab]]) for lab in range(5)}
        assert all(len(c) == 1 for c in classes_of_label.values())
        first_class.append(classes_of_label[0].pop())
    many = sampler.sample("val", 2, 5, 15, rng)
    assert many.support_x.shape == (2, 25, 84, 84, 3) and many.query_x.shape == (2, 75, 84, 84, 3)
    assert len(set(first_class)) > 1  # label 0 is a different class from task to task
    with pytest.raises(UserError, match="fewer than the 5 \\+ 16"):
        sampler.sample("test", 1, 5, 16, rng)


def test_a_support_set_is_shuffled_and_the_tasks_drawn_are_unchanged(full):
    """Support sets came class-major, so Reptile's inner batches (taken in turn) each held one
    class; the shuffle must not move the task stream (the fixed validation and test tasks)."""
    sampler = mi.MiniImageNetSampler(full, ways=5)
    task = sampler.sample("train", 3, 5, 1, np.random.default_rng(4))
    class_major = np.repeat(np.arange(5), 5)
    assert all(sorted(y) == class_major.tolist() for y in task.support_y)
    assert not any(np.array_equal(y[:5], class_major[:5]) for y in task.support_y)  # mixed batches
    before = mi.gather_tasks(sampler.split("train"), 3, 5, 6, np.random.default_rng(4))[:, :, :5]
    for t in range(3):  # the same images, each with its class's label, only in another order
        for c in range(5):
            ours = {np.rint(img * 255).astype(np.uint8).tobytes() for img in task.support_x[t][task.support_y[t] == c]}
            assert ours == {img.tobytes() for img in before[t, c]}
    rng, fresh = np.random.default_rng(4), np.random.default_rng(4)
    sampler.sample("train", 3, 5, 1, rng)
    mi.gather_tasks(sampler.split("train"), 3, 5, 6, fresh)
    assert rng.bit_generator.state == fresh.bit_generator.state  # the next task is as before
