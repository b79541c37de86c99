"""Omniglot preparation: pixels against the zips by hand, the original's resize, the cache, the tfds source, damaged zips."""

import io
import os
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from maml_tf.datasets import npz_cache, omniglot_data
from maml_tf.errors import UserError
from omniglot_helpers import ZIP_DIR, needs_data


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
    npz_cache.write(path, key, fresh._asdict(), "omniglot")
    assert all(np.array_equal(a, b) for a, b in zip(omniglot_data.read_cache(path, key), fresh))
    assert omniglot_data.read_cache(path, {**key, "prep_version": -1}) is None
    assert "stale cache" in capsys.readouterr().err
    with np.load(path) as saved:
        arrays = dict(saved)
    arrays["images"] = arrays["images"].copy()
    arrays["images"][0, 0, 0, 0] ^= 255  # one flipped pixel
    np.savez(path, **arrays)
    assert omniglot_data.read_cache(path, key) is None
    assert "corrupt cache" in capsys.readouterr().err
    with open(path, "r+b") as f:
        f.truncate(1000)
    assert omniglot_data.read_cache(path, key) is None
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


def test_damage_inside_a_zip_is_reported(small_zips, tmp_path):
    os.makedirs(tmp_path / "omniglot")
    for name in omniglot_data.ZIPS:
        shutil.copy(os.path.join(small_zips, "omniglot", name), tmp_path / "omniglot" / name)
    path = tmp_path / "omniglot" / "images_evaluation.zip"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3:len(raw) // 3 + 64] = bytes(64)  # zeros over some image data
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="images_evaluation.zip"):
        omniglot_data.load(str(tmp_path), str(tmp_path / "cache"))
