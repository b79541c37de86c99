"""MiniImageNet reading: every on-disk layout to the same uint8 arrays, the prepare script, the cache, and errors that name what is wrong."""

import importlib.util
import os
import pickle
import shutil
import subprocess
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from maml_tf.datasets import miniimagenet as mi
from maml_tf.datasets import miniimagenet_io as io
from maml_tf.errors import UserError
from miniimagenet_helpers import REPO, SPLIT_SIZES, assert_same, subset, synthetic_image, write_csv


def write_val_images(data_dir, per_class):
    """The processed layout's val folder (synthetic JPEGs, per_class of each class) and its CSV."""
    root = data_dir / "miniimagenet" / "val"
    rows = subset("val", per_class)
    for filename, label in rows:
        os.makedirs(root / label, exist_ok=True)
        synthetic_image(filename).save(root / label / filename)
    write_csv(str(data_dir / "miniimagenet"), "val", rows)
    return root, rows

def test_processed_layout_matches_csvs_and_splits_are_disjoint(small):
    loaded = {s: mi.load_split(small, s) for s in mi.SPLITS}
    for split, data in loaded.items():
        rows = subset(split, 2)
        assert list(data.classes) == sorted({label for _, label in rows})
        assert len(data.classes) == SPLIT_SIZES[split] and data.images.shape == (len(rows), 84, 84, 3)
        # row r of class c is the image file of that class, in sorted file-name order
        c = 3
        name = sorted(f for f, label in rows if label == data.classes[c])[1]
        expected = np.asarray(Image.open(os.path.join(small, "miniimagenet", split, data.classes[c], name)))
        np.testing.assert_array_equal(data.images[data.starts[c] + 1], expected)
    names = [set(d.classes) for d in loaded.values()]
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])


def test_raw_pickle_and_tfds_layouts_load_to_the_same_arrays(small, tmp_path):
    reference = {s: mi.load_split(small, s) for s in mi.SPLITS}
    raw = tmp_path / "raw" / "miniimagenet"
    os.makedirs(raw / "images")
    for split in mi.SPLITS:
        for filename, label in subset(split, 2):
            shutil.copy(os.path.join(small, "miniimagenet", split, label, filename), raw / "images")
        shutil.copy(os.path.join(small, "miniimagenet", f"{split}.csv"), raw)
    pkl = tmp_path / "pkl" / "miniimagenet"
    os.makedirs(pkl)
    for split, ref in reference.items():
        # classes interleaved in the array (not one run each), as a cache may store them
        rows = np.arange(len(ref.images)).reshape(-1, len(ref.classes)).T.reshape(-1)
        data = np.empty_like(ref.images)
        data[rows] = ref.images
        class_dict = {c: list(rows[s:s + n]) for c, s, n in zip(ref.classes, ref.starts, ref.counts)}
        with open(pkl / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump({"image_data": data, "class_dict": class_dict}, f)

    import tensorflow_datasets as tfds
    from maml_tf.datasets import miniimagenet_tfds  # registers mini_imagenet

    tfds_root = str(tmp_path / "tfds" / "miniimagenet")
    config = tfds.download.DownloadConfig(manual_dir=os.path.join(small, "miniimagenet"))
    ds = tfds.load("mini_imagenet", split="validation", data_dir=tfds_root,
                   download_and_prepare_kwargs={"download_config": config})
    assert ds.element_spec["image"].shape == (84, 84, 3)
    assert isinstance(tfds.builder("mini_imagenet", data_dir=tfds_root), miniimagenet_tfds.MiniImagenet)
    for split, ref in reference.items():
        assert_same(mi.load_split(str(tmp_path / "raw"), split), ref)
        assert_same(mi.load_split(str(tmp_path / "pkl"), split), ref)
        assert_same(mi.load_split(str(tmp_path / "tfds"), split), ref)


def test_prepare_script_resizes_with_lanczos_into_the_processed_layout(tmp_path):
    spec = importlib.util.spec_from_file_location("prep", os.path.join(REPO, "data", "prepare_miniimagenet.py"))
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    images, csvs = tmp_path / "images", tmp_path / "csv"
    os.makedirs(images)
    raw = {}
    for split in mi.SPLITS:
        rows = subset(split, 2)[:10]  # 5 classes
        write_csv(str(csvs), split, rows)
        for i, (filename, _) in enumerate(rows):
            raw[filename] = synthetic_image(filename, (84, 84) if i == 0 else (120, 97))
            raw[filename].save(images / filename, quality=95)
    out = tmp_path / "data" / "miniimagenet"
    assert prep.prepare(str(images), str(csvs), str(out), log=lambda *_: None) == len(raw)
    data = mi.load_split(str(tmp_path / "data"), "train")
    assert len(data.classes) == 5 and data.counts.tolist() == [2] * 5
    for filename, label in subset("train", 2)[:10]:
        written = os.path.join(out, "train", label, filename)
        got = np.asarray(Image.open(written), dtype=np.float64)
        if raw[filename].size == (84, 84):  # copied as is, no second compression
            assert open(written, "rb").read() == open(images / filename, "rb").read()
        else:
            want = np.asarray(raw[filename].resize((84, 84), Image.LANCZOS), dtype=np.float64)
            assert got.shape == (84, 84, 3) and np.abs(got - want).mean() < 4  # JPEG error only


def test_errors_name_what_is_wrong(small, tmp_path):
    only_csvs = tmp_path / "csvonly"
    write_csv(str(only_csvs / "miniimagenet"), "train", subset("train", 2))
    with pytest.raises(UserError, match="not shipped"):
        mi.load_split(str(only_csvs), "train")

    def broken(name):
        copy = tmp_path / name
        shutil.copytree(small, copy)
        return copy, copy / "miniimagenet" / "val"

    copy, val = broken("missing")
    gone = sorted(os.listdir(val))[0]
    shutil.rmtree(val / gone)
    with pytest.raises(UserError, match=f"missing: {gone}"):
        mi.load_split(str(copy), "val")

    copy, val = broken("extra")
    cls = sorted(os.listdir(val))[0]
    synthetic_image("x").save(val / cls / "n0000000000000000.jpg")
    with pytest.raises(UserError, match="not listed in .*n0000000000000000"):
        mi.load_split(str(copy), "val")

    copy, val = broken("size")
    first = sorted(os.listdir(val / cls))[0]
    synthetic_image("x", (80, 84)).save(val / cls / first)
    with pytest.raises(UserError, match=f"{first} is 80x84, not 84x84"):
        mi.load_split(str(copy), "val")

    bad = tmp_path / "badpkl" / "miniimagenet"
    os.makedirs(bad)
    with open(bad / "mini-imagenet-cache-test.pkl", "wb") as f:
        pickle.dump({"image_data": np.zeros((2, 32, 32, 3), np.uint8), "class_dict": {"a": [0, 1]}}, f)
    with pytest.raises(UserError, match=r"\(2, 32, 32, 3\), not \[N, 84, 84, 3\]"):
        mi.load_split(str(tmp_path / "badpkl"), "test")

    overlap = tmp_path / "overlap"
    shutil.copytree(small, overlap, ignore=shutil.ignore_patterns("*.csv"))
    train_cls = sorted(os.listdir(overlap / "miniimagenet" / "train"))[0]
    shutil.copytree(overlap / "miniimagenet" / "train" / train_cls, overlap / "miniimagenet" / "val" / train_cls)
    sampler = mi.MiniImageNetSampler(str(overlap), 5)
    sampler.split("train")
    with pytest.raises(UserError, match=f"{train_cls}.* both the train and the val split"):
        sampler.split("val")


def test_loading_keeps_uint8_at_realistic_image_size(tmp_path):
    data_dir = str(tmp_path)
    root, rows = write_val_images(tmp_path, 30)
    tracemalloc.start()
    data = mi.load_split(data_dir, "val", cache_dir=str(tmp_path / "cache"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    expected = len(rows) * 84 * 84 * 3  # 480 images, 10.2 MB; the real set is 60000 (1.27 GB)
    assert data.images.dtype == np.uint8 and data.images.nbytes == expected
    assert peak < 1.3 * expected, f"peak {peak} bytes to hold {expected}"
    # the decoded-array cache serves the same array, and is replaced once a file changes
    cached = mi.load_split(data_dir, "val", cache_dir=str(tmp_path / "cache"))
    np.testing.assert_array_equal(cached.images, data.images)
    label, filename = rows[0][1], rows[0][0]
    synthetic_image("other").save(os.path.join(root, label, filename))
    fresh = mi.load_split(data_dir, "val", cache_dir=str(tmp_path / "cache"))
    assert not np.array_equal(fresh.images[0], data.images[0])
    assert len(os.listdir(tmp_path / "cache" / "miniimagenet")) == 1


def test_one_cache_serves_every_spelling_of_the_data_directory(tmp_path, capsys, monkeypatch):
    root, rows = write_val_images(tmp_path / "data", 2)
    cache = str(tmp_path / "cache")
    first = mi.load_split(str(tmp_path / "data"), "val", cache_dir=cache)
    assert "decoded" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path / "data" / "miniimagenet")
    # relative, and with a "..": the same files, so the same cache file, read rather than decoded again
    again = mi.load_split(os.path.join("..", "..", "data"), "val", cache_dir=cache)
    assert "decoded" not in capsys.readouterr().out
    np.testing.assert_array_equal(again.images, first.images)
    assert len(os.listdir(os.path.join(cache, "miniimagenet"))) == 1


def test_a_live_runs_half_written_cache_is_kept_and_a_killed_runs_is_removed(tmp_path):
    # Two runs started together (one per core) decode the same split and write its cache side by side.
    root, rows = write_val_images(tmp_path / "data", 2)
    cache, folder = str(tmp_path / "cache"), tmp_path / "cache" / "miniimagenet"
    mi.load_split(str(tmp_path / "data"), "val", cache_dir=cache)
    (old,) = os.listdir(folder)
    other = io.temp_path(str(folder / (old.rsplit("-", 1)[0] + "-ffff.npy")), os.getppid())
    np.save(other, np.zeros(1, np.uint8))  # another live run (our parent), halfway through its write
    gone = subprocess.Popen(["true"])
    gone.wait()  # a run killed in the middle of its write left this one behind
    killed = io.temp_path(str(folder / (old.rsplit("-", 1)[0] + "-eeee.npy")), gone.pid)
    np.save(killed, np.zeros(1, np.uint8))
    synthetic_image("other").save(root / rows[0][1] / rows[0][0])  # the old cache is stale now
    data = mi.load_split(str(tmp_path / "data"), "val", cache_dir=cache)
    cached = [f for f in os.listdir(folder) if not f.startswith(".")]
    assert os.path.exists(other) and not os.path.exists(killed) and len(cached) == 1 and cached[0] != old
    np.testing.assert_array_equal(np.load(folder / cached[0]), data.images)
