"""Shared pytest settings (the `slow` marker: run by default; `-m "not slow"` skips them) and the data fixtures several test folders use."""

import fcntl
import os
import zipfile

import pytest

from maml_tf.datasets import omniglot_data
from miniimagenet_helpers import write_processed
from omniglot_helpers import DATA_DIR, ZIP_DIR


# The files that hold the suite's longest tests (20-70 s each in `pytest --durations=40` on a
# 2-core AMD EPYC, 2026-12-06) run first, so pytest-xdist hands them out while both workers are
# busy instead of last, where one of them would run on alone while the other core idles.
LONG_FIRST = ("test_readme.py", "test_reptile.py", "test_transfer.py", "test_distribute.py",
              "test_faults.py", "test_omniglot_training.py", "test_training.py", "test_one_loop.py",
              "test_interrupts.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer checks (XLA compile, real-data training)")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))  # stable: files stay whole


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One Omniglot cache for the whole test run, prepared afresh from the zips by its first user
    (about 5 s alone, 14 s beside the other worker) and read by the others (0.4 s): pytest-xdist's
    workers share it, the first to take the lock preparing it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return str(tmp_path_factory.mktemp("omniglot_cache"))
    shared = tmp_path_factory.getbasetemp().parent / "omniglot_cache"  # this run's, not older runs'
    shared.mkdir(exist_ok=True)
    if os.path.isfile(os.path.join(ZIP_DIR, "images_background.zip")):
        with open(shared / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits, then reads the cache
            omniglot_data.load(DATA_DIR, str(shared))
    return str(shared)


@pytest.fixture(scope="session")
def data(cache_dir):
    """The real Omniglot, prepared."""
    return omniglot_data.load(DATA_DIR, cache_dir)


@pytest.fixture(scope="session")
def small_zips(tmp_path_factory):
    """A real subset in the official layout: characters 1-6 (background) and 965-968 (evaluation)."""
    if not os.path.isfile(os.path.join(ZIP_DIR, "images_background.zip")):
        pytest.skip("real Omniglot zips not found")
    root = tmp_path_factory.mktemp("small")
    os.makedirs(root / "omniglot")
    keep = {"images_background.zip": range(1, 7), "images_evaluation.zip": range(965, 969)}
    for name, ids in keep.items():
        with zipfile.ZipFile(os.path.join(ZIP_DIR, name)) as src, \
                zipfile.ZipFile(root / "omniglot" / name, "w") as dst:
            for info in src.infolist():
                if info.filename.endswith(".png") and int(info.filename.rsplit("/", 1)[1][:4]) in ids:
                    dst.writestr(info, src.read(info))
    return str(root)


@pytest.fixture(scope="session")
def small(tmp_path_factory):
    """Synthetic miniImageNet, 64/16/20 classes x 2 images, processed layout with CSVs."""
    data_dir = str(tmp_path_factory.mktemp("mini_small"))
    write_processed(data_dir, 2)
    return data_dir


@pytest.fixture(scope="session")
def full(tmp_path_factory):
    """Synthetic miniImageNet, 64/16/20 classes x 20 images: enough for 5-shot tasks with 15 queries per class."""
    data_dir = str(tmp_path_factory.mktemp("mini_full"))
    write_processed(data_dir, 20)
    return data_dir
