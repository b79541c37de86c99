"""Images of every mode are prepared as the training data, and MetaModel refuses inputs and step sizes that would silently give a wrong answer."""

import numpy as np
import pytest
from PIL import Image

from maml_tf.deploy import images
from maml_tf.deploy.loading import NetworkSpec
from maml_tf.deploy.meta import InputError, MetaModel
from maml_tf.errors import UserError
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import build_model

SIZE = 105  # the official Omniglot drawings' size
SINE = Config(dataset="sinusoid", shots=10, eval_shots=10, norm="None", inner_lr=0.01)


def strokes():
    """[105, 105] bool, True = ink: a few bars, as a drawing."""
    ink = np.zeros((SIZE, SIZE), bool)
    ink[20:80, 30:38] = ink[50:58, 10:90] = True
    return ink


def on_white():
    """The drawing as the official PNGs: 1-bit, white paper, black ink."""
    return Image.fromarray(~strokes())


def transparent(mode):
    """Black ink on a transparent background whose hidden colour is black too (as many
    editors save it): dropping the alpha makes the whole image ink."""
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., 3] = np.where(strokes(), 255, 0)
    image = Image.fromarray(rgba, "RGBA")
    if mode == "P":  # a palette whose index 0 (black) is transparent, index 1 opaque black
        image = Image.fromarray(np.where(strokes(), 1, 0).astype(np.uint8), "P")
        image.putpalette([0, 0, 0, 0, 0, 0])
        image.info["transparency"] = 0
        return image
    return image if mode == "RGBA" else image.convert(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "P"])
def test_a_transparent_background_is_paper_not_ink(tmp_path, mode):
    path = str(tmp_path / "drawing.png")
    if mode == "PA":  # no PNG holds it: as decoded
        got = images.prepare(transparent(mode), "omniglot")
    else:
        transparent(mode).save(path)
        got = images.read(path, "omniglot")
    want = images.prepare(on_white(), "omniglot")
    assert got.mean() < 0.2  # was 1.0: all ink
    np.testing.assert_array_equal(got, want)


def test_a_transparent_miniimagenet_image_is_on_white(tmp_path):
    path = str(tmp_path / "photo.png")
    transparent("RGBA").save(path)
    got = images.read(path, "miniimagenet")
    want = images.prepare(on_white().convert("RGB"), "miniimagenet")
    np.testing.assert_array_equal(got, want)
    assert got.max() == 1.0


def grey_levels():
    """White paper (1.0) and grey ink (a quarter of full scale), as grey levels in [0, 1]."""
    return np.where(strokes(), 0.25, 1.0)


@pytest.mark.parametrize("dataset", ["omniglot", "miniimagenet"])
def test_a_16_bit_png_is_scaled_not_clipped(tmp_path, dataset):
    path = str(tmp_path / "drawing16.png")
    Image.fromarray(np.round(grey_levels() * 65535).astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")  # 16-bit grey, as Pillow opens it
    eight = Image.fromarray(np.round(grey_levels() * 255).astype(np.uint8), "L")
    got, want = images.read(path, dataset), images.prepare(eight, dataset)
    np.testing.assert_array_equal(got, want)
    if dataset == "omniglot":
        assert got.max() == 1.0  # the grey ink is there (clipped, it became blank paper)


def test_a_32_bit_integer_image_is_read_as_16_bit():
    image = Image.fromarray(np.round(grey_levels() * 65535).astype(np.int32), "I")
    eight = Image.fromarray(np.round(grey_levels() * 255).astype(np.uint8), "L")
    np.testing.assert_array_equal(images.prepare(image, "omniglot"), images.prepare(eight, "omniglot"))


def meta_model(dataset):
    """An untrained toy network of `dataset`'s shapes (the checks run before any computation)."""
    extra = dict(max_pool=True) if dataset == "miniimagenet" else {}
    config = Config(dataset=dataset, ways=3, shots=1, eval_shots=1, num_filters=4, inner_lr=0.4,
                    eval_inner_steps=1, **extra)
    return MetaModel(build_model(config, NetworkSpec(config)), config)


@pytest.fixture(scope="module")
def omniglot():
    return meta_model("omniglot")


def task():
    """A 3-way 1-shot Omniglot task as images.prepare gives it: ink = 1 on paper = 0."""
    x = np.zeros((3, 28, 28, 1), np.float32)
    for k in range(3):
        x[k, 5:20, 4 + 7 * k:8 + 7 * k] = 1.0
    return x, np.arange(3, dtype=np.int32), x[::-1].copy()


def test_a_proper_task_is_accepted(omniglot):
    x, y, q = task()
    probs = omniglot.predict(x, y, q, steps=0)
    assert probs.shape == (3, 3) and np.all(np.isfinite(probs))
    assert np.all(np.isfinite(omniglot.predict(x, y, q, steps=2, inner_lr=0.1)))


@pytest.mark.parametrize("targets, said", [
    (lambda y: np.concatenate([y, y], 1), r"support_y has shape \(10, 2\): the model regresses 10 support inputs onto \[10, 1\]"),
    (lambda y: np.concatenate([y, y]).ravel(), r"support_y has shape \(20,\)"),
    (lambda y: y[:5], r"support_y has shape \(5, 1\)"),
    (lambda y: np.where(np.arange(10)[:, None] == 3, np.nan, y), "support_y has NaN or infinite values"),
])
def test_regression_targets_of_another_shape_or_not_finite_are_refused(targets, said):
    meta = MetaModel(build_model(SINE, NetworkSpec(SINE)), SINE)
    x = np.linspace(-5, 5, 10, dtype=np.float32)[:, None]
    y = np.sin(x)
    meta.predict(x, y.ravel(), x)  # [K] targets of a 1-output model are [K, 1]
    for call in (lambda: meta.predict(x, targets(y), x), lambda: meta.adapt(x, targets(y))):
        with pytest.raises(InputError, match=said):
            call()


def test_adapted_weights_that_diverged_are_refused(omniglot):
    x, y, _ = task()
    with pytest.raises(InputError, match="the adapted weights are NaN or infinite: the adaptation diverged"):
        omniglot.adapt(x, y, steps=2, inner_lr=1e30)


def test_a_support_set_of_one_class_is_refused(omniglot):
    x, y, q = task()
    with pytest.raises(InputError, match="the support set has one class"):
        omniglot.predict(x[:1], y[:1], q)


def test_a_diverging_adaptation_is_an_error_not_nan_probabilities(omniglot):
    x, y, q = task()
    with pytest.raises(InputError, match="the predictions are NaN or infinite: the adaptation diverged"):
        omniglot.predict(x, y, q, steps=2, inner_lr=1e30)


@pytest.mark.parametrize("change, message", [
    (lambda x, q: (x * 255, q), "support_x has values from 0 to 255; the model takes images scaled to [0, 1]"),
    (lambda x, q: (x, q * 255), "query_x has values from 0 to 255"),
    (lambda x, q: (x - 0.5, q), "support_x has values from -0.5 to 0.5"),
    (lambda x, q: (1 - x, q), "support_x[0] averages 0.92: it looks inverted; an Omniglot model takes ink = 1 on paper = 0"),
    (lambda x, q: (x, np.concatenate([q[:2], 1 - q[2:]])), "query_x[2] averages 0.92: it looks inverted"),
])
def test_values_outside_the_training_data_are_refused(omniglot, change, message):
    x, y, q = task()
    x, q = change(x, q)
    with pytest.raises(InputError) as err:
        omniglot.predict(x, y, q)
    assert str(err.value).startswith(message), str(err.value)
    if not message.startswith("query_x"):
        with pytest.raises(InputError, match=message.split(";")[0].replace("[", r"\[").replace("]", r"\]")):
            omniglot.adapt(x, y)


def test_miniimagenet_pixels_must_be_scaled():
    meta = meta_model("miniimagenet")
    x = np.full((3, 84, 84, 3), 200.0, np.float32)
    with pytest.raises(InputError, match=r"support_x has values from 200 to 200; the model takes images scaled to \[0, 1\]"):
        meta.predict(x, np.arange(3), x / 255)
    meta.predict(x / 255, np.arange(3), 1 - x / 255, steps=0)  # a light photo is no inverted drawing


@pytest.mark.parametrize("kwargs, message", [
    (dict(inner_lr=float("nan")), "inner_lr must be a finite step size > 0, got nan"),
    (dict(inner_lr=float("inf")), "inner_lr must be a finite step size > 0, got inf"),
    (dict(inner_lr=0.0), "inner_lr must be a finite step size > 0, got 0.0"),
    (dict(inner_lr=-0.1), "inner_lr must be a finite step size > 0, got -0.1"),
    (dict(inner_lr="0.1"), "inner_lr must be a finite step size > 0, got '0.1'"),
    (dict(steps=-1), "steps must be a whole number >= 0 (0: no adaptation), got -1"),
    (dict(steps=1.5), "steps must be a whole number >= 0 (0: no adaptation), got 1.5"),
])
def test_bad_step_sizes_and_step_counts_are_refused(omniglot, kwargs, message):
    x, y, q = task()
    for call in (lambda: omniglot.predict(x, y, q, **kwargs), lambda: omniglot.adapt(x, y, **kwargs)):
        with pytest.raises(InputError) as err:
            call()
        assert str(err.value) == message and isinstance(err.value, UserError)


def test_floating_point_grey_in_0_1_is_scaled_and_out_of_range_pixels_are_refused():
    """Pillow's convert truncated floats in [0, 1] to black; 32-bit values beyond 16 bits were clipped."""
    eight = Image.fromarray(np.round(grey_levels() * 255).astype(np.uint8), "L")
    floats = Image.fromarray(grey_levels().astype(np.float32), "F")
    np.testing.assert_array_equal(images.prepare(floats, "omniglot"), images.prepare(eight, "omniglot"))
    for image in (Image.fromarray((grey_levels() * 255).astype(np.float32), "F"),
                  Image.fromarray(np.full((8, 8), 70000, np.int32), "I")):
        with pytest.raises(ValueError, match="pixels from .* save it with 8- or 16-bit pixels"):
            images.prepare(image, "omniglot")


def test_a_photo_is_read_upright_as_its_exif_orientation_says(tmp_path):
    """A camera stores a portrait photo lying on its side and says so in EXIF (orientation 6:
    turn it 90 degrees clockwise); it was learned and classified lying on its side."""
    stored = np.full((40, 40, 3), 255, np.uint8)
    stored[:, :10] = 0  # a dark band on the stored image's left: the photo's top
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    path = str(tmp_path / "portrait.png")
    image.save(path, exif=exif)
    got = images.read(path, "miniimagenet")  # [84, 84, 3] in [0, 1]
    assert got[:10].mean() < 0.1 and got[-20:].mean() > 0.9 and got[:, :10].mean() > 0.5
