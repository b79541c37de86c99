"""A task size the data cannot give is refused where the run starts, from the splits' listings, before any image is decoded."""

import os
import shutil
import subprocess
import sys

import pytest

from maml_tf.datasets import check_task_sizes, miniimagenet_io, omniglot_data
from maml_tf.errors import UserError
from maml_tf.experiment import evaluate, train
from maml_tf.experiment.config import Config
from miniimagenet_helpers import write_processed
from omniglot_helpers import DATA_DIR, ROOT, needs_data


@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(miniimagenet_io, "decode_images", refuse)
    monkeypatch.setattr(omniglot_data, "_decode_png", refuse)


def mini(small, tmp_path, **changes):
    base = dict(dataset="miniimagenet", ways=5, shots=1, queries=1, eval_shots=1, eval_queries=1,
                num_filters=4, metatrain_iterations=1000, val_interval=500, data_dir=small,
                cache_dir=str(tmp_path / "cache"), log=False)
    return Config(**{**base, **changes})


def test_50way_miniimagenet_stops_at_the_start_on_its_val_split(small, tmp_path, no_decoding):
    with pytest.raises(UserError) as err:
        train.train_and_evaluate(mini(small, tmp_path, ways=50), str(tmp_path / "run"))
    assert str(err.value) == "miniimagenet val split has 16 classes (32 images); 50-way tasks need 50"
    assert not os.path.exists(tmp_path / "cache")


def test_too_few_images_per_class_for_shots_and_queries(small, tmp_path, no_decoding):
    with pytest.raises(UserError) as err:
        train.train_and_evaluate(mini(small, tmp_path, queries=2), str(tmp_path / "run"))
    assert str(err.value) == ("miniimagenet train split has 64 classes (128 images), 2 in its "
                              "smallest class; 1-shot tasks with 2 queries need 3 per class")


def test_evaluation_checks_the_split_it_reads(small, tmp_path, no_decoding):
    config = mini(small, tmp_path, ways=17, eval_split="test", eval_shots=1, eval_queries=1)
    with pytest.raises(UserError, match="^miniimagenet test split has 20 classes .* need 3 per class$"):
        evaluate.evaluate_checkpoint(config.replace(eval_queries=2), str(tmp_path / "run"))
    with pytest.raises(UserError, match="^miniimagenet val split has 16 classes .*17-way tasks need 17$"):
        evaluate.evaluate_checkpoint(config.replace(eval_split="val"), str(tmp_path / "run"))


def test_a_missing_val_split_is_found_at_the_start(tmp_path, no_decoding):
    write_processed(str(tmp_path / "data"), 2)
    shutil.rmtree(tmp_path / "data" / "miniimagenet" / "val")
    os.remove(tmp_path / "data" / "miniimagenet" / "val.csv")
    with pytest.raises(UserError, match="no miniImageNet images for split 'val'"):
        train.train_and_evaluate(mini(str(tmp_path / "data"), tmp_path), str(tmp_path / "run"))


def test_the_splits_training_reads():
    c = Config(dataset="miniimagenet", shots=5, queries=15, eval_shots=1, eval_queries=7,
               metatrain_iterations=1000, val_interval=500)
    assert train.tasks_read(c) == [("train", 5, 15), ("val", 5, 15)]
    assert train.tasks_read(c.replace(algorithm="reptile")) == [("train", 5, 15), ("val", 1, 7)]
    assert train.tasks_read(c.replace(val_interval=0)) == [("train", 5, 15)]
    assert train.tasks_read(c.replace(val_interval=2000)) == [("train", 5, 15)]


def test_sinusoid_has_no_limit():
    check_task_sizes(Config(ways=1000, shots=10**6), [("train", 10**6, 10**6)])


@needs_data
@pytest.mark.parametrize("split, ways, message", [
    ("alphabets", 94, "omniglot val split has 93 classes (1,860 images); 94-way tasks need 94"),
    ("within_alphabet", 30,
     "omniglot val split has 26 classes in its largest alphabet (1,860 images); 30-way tasks need 30"),
])
def test_omniglot_splits_from_the_zips_names(split, ways, message, no_decoding):
    config = Config(dataset="omniglot", omniglot_split=split, ways=ways, data_dir=DATA_DIR)
    check_task_sizes(config, [("train", 1, 1)])  # 871 characters, 55 in the largest alphabet
    with pytest.raises(UserError) as err:
        check_task_sizes(config, [("train", 1, 1), ("val", 1, 1)])
    assert str(err.value) == message


def test_main_says_it_in_one_line(small, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "maml_tf.main", "--datasource=miniimagenet", "--num_classes=50",
         "--update_batch_size=1", "--num_query=1",
         f"--data_dir={small}", f"--cache_dir={tmp_path}/cache", f"--logdir={tmp_path}/logs"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["error: miniimagenet val split has 16 classes (32 images); "
                                        "50-way tasks need 50"]
