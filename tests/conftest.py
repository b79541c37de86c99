"""Shared pytest settings (the `slow` marker: run by default; `-m "not slow"` skips them; how pytest-xdist orders and hands out the tests) and the data fixtures several test folders use."""

import functools
import os
import zipfile

import pytest
from xdist.scheduler import LoadScopeScheduling

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


class ModuleFixtureScheduling(LoadScopeScheduling):
    """`--dist load`, except that a module with a module-scoped fixture is one unit of work.

    Under plain `load` both workers ran tests of such a module and each built its fixture: the
    mirrored run (45-55 s), the shipped models, the uninterrupted reference run, built twice on a
    2-core AMD EPYC (2026-12-07). pytest-xdist 3.8's `--dist loadgroup` would do it with marks, but
    it renames the marked items through an attribute that pytest 9.2 no longer reads.
    """

    def __init__(self, config, log=None):
        super().__init__(config, log)
        self.root = str(config.rootpath)

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return path if has_a_module_fixture(os.path.join(self.root, path)) else nodeid


@functools.lru_cache(maxsize=None)
def has_a_module_fixture(path: str) -> bool:
    with open(path, encoding="utf-8") as f:
        return 'scope="module"' in f.read()


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":  # an explicit --dist other than the default
        return None
    config.option.loadscopereorder = False  # keep LONG_FIRST's order
    return ModuleFixtureScheduling(config, log)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One Omniglot cache for the whole session: the full array is prepared once (about 5 s)."""
    return str(tmp_path_factory.mktemp("omniglot_cache"))


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
