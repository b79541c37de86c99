"""MiniImageNet on synthetic images written in every real layout: loading, errors, tasks, training, gradients."""

import functools
import importlib.util
import os
import pickle
import shutil
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from maml_tf.datasets import miniimagenet as mi
from maml_tf.datasets import miniimagenet_io as mio
from maml_tf.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLIT_SIZES = {"train": 64, "val": 16, "test": 20}


@functools.lru_cache(maxsize=None)
def real_csv_rows(split):
    """The real split CSV rows if the shared data is beside the checkout, else rows of the same form."""
    for base in (os.environ.get("MAML_TF_DATA_DIR", ""), os.path.join(REPO, "..", "shared", "data"),
                 "/work/shared/data"):
        path = os.path.join(base, "miniimagenet", f"{split}.csv")
        if base and os.path.isfile(path):
            return mio.read_csv(path)
    offset = {"train": 1000000, "val": 2000000, "test": 3000000}[split]
    return [(f"n{offset + c:08d}{i:08d}.jpg", f"n{offset + c:08d}")
            for c in range(SPLIT_SIZES[split]) for i in range(1, 601)]


def subset(split, per_class):
    """The first `per_class` files of every class of the real CSV, in CSV order (as a user's
    partial copy would be listed)."""
    groups = {}
    for filename, label in real_csv_rows(split):
        if len(groups.setdefault(label, [])) < per_class:
            groups[label].append(filename)
    return [(f, label) for label, files in groups.items() for f in files]


def synthetic_image(name, size=(84, 84), label=None):
    """A smooth colour image (JPEG-friendly, like a photo) fixed by its file name; with a label,
    a colour pattern of the class plus noise of the image, so that classes can be told apart."""
    noise = np.random.default_rng(zlib.crc32(name.encode())).integers(0, 256, (3, 3, 3))
    if label is not None:
        base = np.random.default_rng(zlib.crc32(label.encode())).integers(0, 256, (3, 3, 3))
        noise = np.clip(base + (noise - 128) // 3, 0, 255)
    return Image.fromarray(noise.astype(np.uint8)).resize(size, Image.BICUBIC)


def write_csv(folder, split, rows):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{split}.csv"), "w") as f:
        f.write("filename,label\n" + "".join(f"{a},{b}\n" for a, b in rows))


def write_processed(data_dir, per_class, csvs=True):
    """Layout: <data_dir>/miniimagenet/{split}/<wnid>/<file>.jpg (+ the subset CSVs)."""
    root = os.path.join(data_dir, "miniimagenet")
    for split in mi.SPLITS:
        rows = subset(split, per_class)
        for filename, label in rows:
            os.makedirs(os.path.join(root, split, label), exist_ok=True)
            synthetic_image(filename, label=label).save(os.path.join(root, split, label, filename))
        if csvs:
            write_csv(root, split, rows)
    return root


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """64/16/20 classes x 2 images, processed layout with CSVs."""
    data_dir = str(tmp_path_factory.mktemp("small"))
    write_processed(data_dir, 2)
    return data_dir


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """64/16/20 classes x 20 images: enough for 5-shot tasks with 15 queries per class."""
    data_dir = str(tmp_path_factory.mktemp("full"))
    write_processed(data_dir, 20)
    return data_dir


def assert_same(a: mio.SplitImages, b: mio.SplitImages):
    assert a.classes == b.classes
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.starts, b.starts)
    assert a.images.dtype == b.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)


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


def test_loading_keeps_uint8_at_realistic_image_size(tmp_path):
    data_dir = str(tmp_path)
    root = os.path.join(data_dir, "miniimagenet", "val")
    rows = subset("val", 30)
    for filename, label in rows:
        os.makedirs(os.path.join(root, label), exist_ok=True)
        synthetic_image(filename).save(os.path.join(root, label, filename))
    write_csv(os.path.join(data_dir, "miniimagenet"), "val", rows)
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


README_1SHOT = ("--datasource=miniimagenet --metatrain_iterations=60000 --meta_batch_size=4 "
                "--update_batch_size=1 --update_lr=0.01 --num_updates=5 --num_classes=5 "
                "--logdir=logs/miniimagenet1shot/ --num_filters=32 --max_pool=True").split()


def parse_flags(argv):
    from maml_tf import main

    main.FLAGS.unparse_flags()
    main.FLAGS(["main"] + argv)
    return main.config_from_flags(main.FLAGS)


def test_original_readme_commands_map_to_the_paper_settings():
    one = parse_flags(README_1SHOT)
    assert (one.ways, one.shots, one.queries, one.eval_shots, one.eval_queries) == (5, 1, 15, 1, 1)
    assert (one.meta_batch_size, one.inner_steps, one.inner_lr, one.grad_clip) == (4, 5, 0.01, 10.0)
    assert (one.num_filters, one.max_pool, one.norm, one.first_order) == (32, True, "batch_norm", False)
    five = parse_flags([a.replace("update_batch_size=1", "update_batch_size=5").replace(
        "meta_batch_size=4", "meta_batch_size=2") for a in README_1SHOT] + ["--stop_grad=True"])
    assert (five.shots, five.queries, five.eval_queries, five.meta_batch_size) == (5, 15, 5, 2)
    assert five.first_order and five.grad_clip == 10.0
    from maml_tf import main

    main.FLAGS.unparse_flags()


def test_main_trains_and_evaluates_on_synthetic_images(full, tmp_path, capsys):
    """The README 1-shot command through main, shrunk to a few cheap iterations, then its evaluation."""
    import json

    from maml_tf import main

    shrink = ["--meta_batch_size=2", "--num_updates=1", "--metatrain_iterations=2", "--val_interval=2",
              "--num_val_tasks=2", "--print_interval=1", "--test_num_updates=3", "--log=False",
              f"--data_dir={full}", f"--cache_dir={tmp_path / 'cache'}", f"--logdir={tmp_path}"]
    argv = [a for a in README_1SHOT if not a.startswith("--logdir")] + shrink
    parse_flags(argv)
    main.main(["main"])
    out = capsys.readouterr().out
    assert "[metatrain] iter 2/2" in out and "[val] iter 2" in out
    parse_flags(argv + ["--train=False", "--test_set=True", "--num_test_tasks=8"])
    main.main(["main"])
    main.FLAGS.unparse_flags()
    (result_file,) = [p for p in tmp_path.rglob("eval_test_*.json")]
    result = json.loads(result_file.read_text())
    acc = np.asarray(result["metrics"]["accuracy"]["mean"])
    assert result["num_tasks"] == 8 and result["shots"] == 1 and acc.shape == (4,)
    assert np.isfinite(result["metrics"]["loss"]["mean"]).all()
    # the synthetic classes differ in colour: 3 test-time steps from one image per class must
    # lift query accuracy well above the 20% of an unadapted 5-way guess
    assert acc[0] < 0.45 and acc[-1] > acc[0] + 0.3, acc


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
def test_second_order_meta_gradient_through_max_pool_and_norm_matches_finite_differences(norm):
    """The miniImageNet block (conv, norm, ReLU, 2x2 max-pool, flatten, dense), tiny and in
    float64: the MAML meta-gradient along a random direction equals the central difference of the
    post-adaptation query loss; the first-order one does not."""
    import keras
    import tensorflow as tf

    from maml_tf import algorithms, metrics, models
    from maml_tf.types import Task

    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        model = models.conv_net((12, 12, 3), 3, filters=3, max_pool=True, norm=norm, blocks=2, seed=1)
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    learner = models.Learner(model)
    rng = np.random.default_rng(0)
    tasks = Task(rng.random((2, 3, 12, 12, 3)), np.tile(np.arange(3, dtype=np.int32), (2, 1)),
                 rng.random((2, 6, 12, 12, 3)), np.tile(np.arange(3, dtype=np.int32), (2, 2)))
    tasks = Task(*[tf.constant(a) for a in tasks])
    # Off the all-zero biases of the initialisation, where ReLU kinks make differences one-sided.
    theta = [w + 0.05 * tf.constant(rng.standard_normal(w.shape)) for w in learner.weights()]
    assert theta[0].dtype == tf.float64

    def meta(weights, first_order):
        return algorithms.maml_meta_grads(learner, metrics.make_xent_over_k(1), weights, tasks,
                                          0.5, 2, first_order)

    direction = [tf.constant(rng.standard_normal(w.shape)) for w in theta]
    eps = 1e-6
    plus = meta([w + eps * d for w, d in zip(theta, direction)], True)[1]["post_loss"]
    minus = meta([w - eps * d for w, d in zip(theta, direction)], True)[1]["post_loss"]
    numeric = float(plus - minus) / (2 * eps)

    def along(grads):
        return sum(float(tf.reduce_sum(g * d)) for g, d in zip(grads, direction))

    assert along(meta(theta, False)[0]) == pytest.approx(numeric, rel=1e-5)
    assert abs(along(meta(theta, True)[0]) - numeric) > 0.1 * abs(numeric)
