"""Omniglot: preparation against the zips, cache, tfds path, splits, tasks, errors, and a short real run."""

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from maml_tf.config import Config
from maml_tf.datasets import omniglot, omniglot_data

DATA_DIR = os.environ.get("MAML_TF_DATA_DIR", "")
ZIP_DIR = os.path.join(DATA_DIR, "omniglot")
needs_data = pytest.mark.skipif(
    not os.path.isfile(os.path.join(ZIP_DIR, "images_background.zip")),
    reason="real Omniglot zips not found under $MAML_TF_DATA_DIR/omniglot")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One cache for the whole session: the full array is prepared once (about 5 s)."""
    return str(tmp_path_factory.mktemp("omniglot_cache"))


@pytest.fixture(scope="session")
def data(cache_dir):
    return omniglot_data.load(DATA_DIR, cache_dir)


def _config(cache_dir, **changes):
    base = dict(dataset="omniglot", ways=5, shots=1, queries=1, eval_shots=1, eval_queries=1,
                data_dir=DATA_DIR, cache_dir=cache_dir)
    return Config(**{**base, **changes})


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


# ----------------------------------------------------------------------------- splits


def test_random_split_sizes_disjoint_and_fixed():
    splits = omniglot.random_split()
    assert [len(s) for s in splits] == [1100, 100, 423]
    every = np.concatenate(splits)
    assert len(np.unique(every)) == 1623 and every.min() == 0 and every.max() == 1622
    np.testing.assert_array_equal(splits.test, omniglot.random_split().test)  # seeded, not global


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


# ----------------------------------------------------------------------------- tasks


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
    sampler = omniglot.make_sampler(_config(cache_dir, ways=20))
    task = sampler.sample("test", 4, 5, 3, np.random.default_rng(0))
    assert task.query_x.shape == (4, 60, 28, 28, 1) and task.support_y.max() == 19
    assert 0.03 < task.support_x.mean() < 0.2  # mostly paper (0) with some ink (1)
    assert set(np.unique(task.support_x)) == {0.0, 1.0}


# ----------------------------------------------------------------------------- preparation


@needs_data
def test_prepared_pixels_match_the_zip_by_hand(data):
    with zipfile.ZipFile(os.path.join(ZIP_DIR, "images_background.zip")) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/0001_01.png"))
        paper = np.asarray(Image.open(io.BytesIO(archive.read(name))))  # True = white paper
    assert paper.shape == (105, 105) and paper.mean() > 0.8
    # Nearest neighbour at pixel centres: output pixel i reads source pixel floor((i + 0.5) * 105 / 28).
    rows = [3, 10, 14, 20]
    src = [int((i + 0.5) * 105 / 28) for i in rows]
    assert src == [13, 39, 54, 76]
    hand = np.array([[0 if paper[r, c] else 255 for c in src] for r in src])
    matches = [j for j in range(20) if np.array_equal(data.images[0, j][np.ix_(rows, rows)], hand)]
    assert matches, "no prepared drawing of character 0001 has the hand-computed pixels"
    whole = np.where(paper[np.ix_(*[[int((i + 0.5) * 105 / 28) for i in range(28)]] * 2)], 0, 255)
    assert any(np.array_equal(data.images[0, j], whole) for j in matches)
    assert (hand == 255).any()  # the check covers ink pixels too


def test_original_resize_is_what_pillow_does_to_a_1_bit_image():
    paper = np.random.default_rng(0).random((105, 105)) > 0.1
    as_original = np.asarray(Image.fromarray(paper).resize((28, 28), Image.LANCZOS))
    nearest = np.asarray(Image.fromarray(paper).resize((28, 28), Image.NEAREST))
    np.testing.assert_array_equal(as_original, nearest)  # the trap: LANCZOS is ignored for mode 1
    np.testing.assert_array_equal(omniglot_data.resize(paper), np.where(nearest, 0, 255))
    lanczos = omniglot_data.resize(paper, "lanczos")
    assert len(np.unique(lanczos)) > 10  # grey levels: a real filter
    assert abs(lanczos.mean() - omniglot_data.resize(paper).mean()) < 10  # same ink amount


def test_cache_is_reused_and_a_stale_or_corrupt_one_rebuilt(small_zips, tmp_path, capsys):
    load = lambda: omniglot_data.assemble(omniglot_data.read_zips(small_zips + "/omniglot"),  # noqa: E731
                                          "original")
    key = omniglot_data.cache_key("files", small_zips + "/omniglot", "original")
    path = str(tmp_path / "c.npz")
    fresh = load()
    omniglot_data._write_cache(path, key, fresh)
    assert all(np.array_equal(a, b) for a, b in zip(omniglot_data._read_cache(path, key), fresh))
    assert omniglot_data._read_cache(path, {**key, "prep_version": -1}) is None
    assert "stale cache" in capsys.readouterr().err
    with np.load(path) as saved:
        arrays = dict(saved)
    arrays["images"] = arrays["images"].copy()
    arrays["images"][0, 0, 0, 0] ^= 255  # one flipped pixel
    np.savez(path, **arrays)
    assert omniglot_data._read_cache(path, key) is None
    assert "corrupt cache" in capsys.readouterr().err
    with open(path, "r+b") as f:
        f.truncate(1000)
    assert omniglot_data._read_cache(path, key) is None
    assert "unreadable cache" in capsys.readouterr().err


def test_tfds_source_gives_the_same_array(small_zips, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    characters = omniglot_data.read_zips(small_zips + "/omniglot")
    names = sorted({a for a, _, _ in characters.values()})
    examples = {True: [], False: []}
    for char_id, (alphabet, background, drawings) in characters.items():
        for paper in drawings:  # tfds stores 3-channel 0/255 images, labels = global id - 1
            image = np.repeat(np.where(paper, 255, 0).astype(np.uint8)[..., None], 3, -1)
            examples[background].append((image, names.index(alphabet), char_id - 1))
    for rows in examples.values():  # tfds does not keep the drawer order
        np.random.default_rng(0).shuffle(rows)

    def as_dataset(self, split, **kwargs):
        rows = examples[str(split) == "train"]
        return tf.data.Dataset.from_tensor_slices({
            "image": np.stack([r[0] for r in rows]), "alphabet": np.array([r[1] for r in rows]),
            "alphabet_char_id": np.zeros(len(rows), np.int64), "label": np.array([r[2] for r in rows])})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        from_tfds = omniglot_data.assemble(omniglot_data.read_tfds(), "original")
    from_zips = omniglot_data.assemble(characters, "original")
    assert from_tfds.images.shape == (10, 20, 28, 28)
    for a, b in zip(from_tfds, from_zips):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- bad input


def _main(*args, **env):
    command = [sys.executable, "-m", "maml_tf.main", "--datasource=omniglot",
               "--metatrain_iterations=1", *args]
    full_env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120)


def _one_error_line(result) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return errors[0]


def test_missing_zips_say_where_to_get_them(tmp_path):
    line = _one_error_line(_main(f"--data_dir={tmp_path}", f"--cache_dir={tmp_path}/cache",
                                 f"--logdir={tmp_path}/logs"))
    assert "images_background.zip" in line and str(tmp_path) in line
    assert "github.com/brendenlake/omniglot" in line and "tfds" in line


@needs_data
def test_truncated_zip_is_reported(tmp_path):
    os.makedirs(tmp_path / "omniglot")
    with open(os.path.join(ZIP_DIR, "images_background.zip"), "rb") as f:
        (tmp_path / "omniglot" / "images_background.zip").write_bytes(f.read(3_000_000))
    os.symlink(os.path.join(ZIP_DIR, "images_evaluation.zip"),
               tmp_path / "omniglot" / "images_evaluation.zip")
    line = _one_error_line(_main(f"--data_dir={tmp_path}", f"--cache_dir={tmp_path}/cache",
                                 f"--logdir={tmp_path}/logs"))
    assert "images_background.zip is not a readable zip" in line and "truncated" in line


def test_damage_inside_a_zip_is_reported(small_zips, tmp_path):
    import shutil

    from maml_tf.errors import UserError

    os.makedirs(tmp_path / "omniglot")
    for name in omniglot_data.ZIPS:
        shutil.copy(os.path.join(small_zips, "omniglot", name), tmp_path / "omniglot" / name)
    path = tmp_path / "omniglot" / "images_evaluation.zip"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3:len(raw) // 3 + 64] = bytes(64)  # zeros over some image data
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="images_evaluation.zip"):
        omniglot_data.load(str(tmp_path), str(tmp_path / "cache"))


@pytest.mark.parametrize("flags, expected", [
    (["--num_classes=101"], "--num_classes=101 is larger than the omniglot val split (100"),
    (["--update_batch_size=11"], "omniglot has 20 drawings per character"),
])
def test_task_too_big_for_the_data(tmp_path, flags, expected):
    # These are refused before any data is read, so no data directory is needed.
    line = _one_error_line(_main(*flags, f"--data_dir={tmp_path}", f"--logdir={tmp_path}/logs"))
    assert expected in line


# ----------------------------------------------------------------------------- learning


@needs_data
def test_short_meta_training_learns_5way_1shot(cache_dir, tmp_path):
    from maml_tf import train

    config = _config(cache_dir, meta_batch_size=8, inner_lr=0.4, eval_inner_lr=0.4,
                     metatrain_iterations=300, val_interval=300, val_tasks=100,
                     eval_inner_steps=3, checkpoint_interval=300, print_interval=100, log=False)
    result = train.train_and_evaluate(config, str(tmp_path / "run"))
    pre, post = result["accuracy"][0], result["accuracy"][1]
    assert post > 0.45 and post > pre + 0.15, result["accuracy"]


# ----------------------------------------------------------------------------- networks


class _Images:
    problem, input_shape, output_dim = "classification", (28, 28, 1), 5


def test_networks_are_the_originals():
    from maml_tf import models

    fc = models.build_model(Config(dataset="omniglot", conv=False), _Images)
    kernels = [v for v in fc.trainable_variables if v.path.endswith("kernel")]
    assert [tuple(v.shape) for v in kernels] == [(784, 256), (256, 128), (128, 64), (64, 64), (64, 5)]
    # tf.truncated_normal(stddev=0.01) as the original: std 0.0088 after truncation at 2 sigma.
    assert all(0.0080 < np.std(v.numpy()) < 0.0096 for v in kernels)
    offsets = [v for v in fc.trainable_variables if "batch_norm" in v.path]
    assert len(offsets) == 4 and all("beta" in v.path for v in offsets)  # offset, no scale
    assert sum(models.Learner(fc).inner_mask) == 10  # norm offsets are outer-loop only
    conv = models.build_model(Config(dataset="omniglot"), _Images)
    kernels = [v for v in conv.trainable_variables if v.path.endswith("kernel")]
    assert [tuple(v.shape) for v in kernels] == [(3, 3, 1, 64)] + [(3, 3, 64, 64)] * 3 + [(64, 5)]
    assert 0.8 < np.std(kernels[-1].numpy()) < 1.2  # the original's N(0, 1) head
    assert conv(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 5)


@needs_data
def test_within_alphabet_tasks_stay_in_one_alphabet(data, cache_dir):
    sampler = omniglot.make_sampler(_config(cache_dir, ways=20, omniglot_split="within_alphabet"))
    for split in ("train", "val", "test"):
        classes = sampler._classes(split, 40, np.random.default_rng(0))
        alphabets = data.alphabet[classes]
        assert np.all(alphabets == alphabets[:, :1]) and len(np.unique(alphabets[:, 0])) > 1
        assert all(len(set(row)) == 20 for row in classes)
    assert not set(data.alphabet[data.background]) & set(data.alphabet[classes.ravel()])  # test split


def test_report_marks_short_runs_and_missing_ones(tmp_path):
    import json

    from maml_tf import omniglot_report

    run = tmp_path / "logs" / omniglot_report.SETTINGS[0][1]
    os.makedirs(run)
    acc = {"mean": [0.2, 0.9, 0.95, 0.96], "std": [0.1] * 4, "ci95": [0.01] * 4}
    for iteration in (1000, 3000):
        (run / f"eval_test_shots1_lr0.4_iter{iteration}.json").write_text(json.dumps(
            {"iteration": iteration, "num_tasks": 600, "metrics": {"accuracy": acc}}))
    (run / "validation.jsonl").write_text(json.dumps({"iteration": 500, "accuracy": [0.2, 0.8]}) + "\n")
    rows = omniglot_report.collect([str(tmp_path / "logs")])
    text = omniglot_report.markdown(rows, "python -m maml_tf.main ...")
    assert "| 5-way 1-shot | 98.7 ± 0.4 | 96.0 ± 1.0 | 3 | 600 | 3,000 |" in text
    assert "**cut short** at 3,000 of 60,000 iterations" in text
    assert text.count("not run yet") == 6  # three rows, in two columns each
    omniglot_report.plot(rows, str(tmp_path / "val.png"))
    assert os.path.getsize(tmp_path / "val.png") > 1000
