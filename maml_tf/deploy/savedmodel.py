"""A MetaModel as a TensorFlow SavedModel whose serving signature adapts and predicts in one graph.

`adapt_and_predict(support_x, support_y, query_x) -> {"probabilities": [queries, classes]}` runs
the inner loop inside the exported graph, so the SavedModel needs neither maml_tf nor Keras:
`tf.saved_model.load(dir).signatures["adapt_and_predict"]`, or TensorFlow Serving as it is.
The support set has a fixed size, ways x shots (the loss divides by K as in training); `ways`
may be fewer than the model's head has, and the signature then adapts and predicts over the
head's first `ways` outputs only.
"""

import contextlib
import os

import tensorflow as tf

from maml_tf import layers
from maml_tf.deploy.meta import MetaModel
from maml_tf.errors import UserError

SIGNATURE = "adapt_and_predict"


class _Exported(tf.Module):
    """The network's variables, the inner Adam moments and the traced signature."""

    def __init__(self, meta: MetaModel, shots: int, steps, inner_lr, ways: int):
        super().__init__(name="maml_tf_model")
        self.variables_ = [v.value for v in meta.model.variables]  # the tf.Variables Keras wraps
        fn = meta.graph_function(float(shots), steps, inner_lr, ways)
        n_support = ways * shots
        label = (tf.TensorSpec([n_support], tf.int32, "support_y") if meta.problem == "classification"
                 else tf.TensorSpec([n_support, meta.num_classes], tf.float32, "support_y"))
        spec = [tf.TensorSpec([n_support, *meta.input_shape], tf.float32, "support_x"), label,
                tf.TensorSpec([None, *meta.input_shape], tf.float32, "query_x")]
        key = "probabilities" if meta.problem == "classification" else "outputs"
        self.adapt_and_predict = tf.function(
            lambda support_x, support_y, query_x: {key: fn(support_x, support_y, query_x)},
            input_signature=spec)


def export(meta: MetaModel, directory: str, shots: int, steps=None, inner_lr=None,
           ways=None) -> str:
    """Writes the SavedModel of `meta` for `ways` (default: the head's width) x `shots` support
    examples into `directory`."""
    if shots <= 0:
        raise UserError(f"shots must be positive, got {shots}")
    ways = meta.num_classes if ways is None or meta.problem == "regression" else int(ways)
    if meta.problem == "classification" and not 2 <= ways <= meta.num_classes:
        raise UserError(f"ways must be 2..{meta.num_classes} (the model's head), got {ways}")
    meta._check_adaptation(steps, inner_lr, meta.rates)  # learned step sizes: no inner_lr
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise UserError(f"{directory} exists and is not empty: give a new directory")
    with autodiff_batch_norm():
        module = _Exported(meta, shots, steps, inner_lr, ways)
        try:
            tf.saved_model.save(module, directory, signatures={SIGNATURE: module.adapt_and_predict})
        except (OSError, tf.errors.OpError) as err:
            reason = getattr(err, "strerror", None) or str(getattr(err, "message", err)).splitlines()[0]
            raise UserError(f"cannot write the SavedModel in {directory}: {reason}") from None
    return directory


@contextlib.contextmanager
def autodiff_batch_norm():
    """Traces batch norm's reference path (TensorFlow's own gradients) instead of the closed-form
    `tf.custom_gradient` kernels: a SavedModel cannot hold those nested custom gradients, and
    loading one would warn once per function that a gradient may fail. The serving graph takes
    first-order inner steps only, where the two paths agree to round-off."""
    saved = layers.BatchNorm.closed_form_gradients
    layers.BatchNorm.closed_form_gradients = False
    try:
        yield
    finally:
        layers.BatchNorm.closed_form_gradients = saved


def size_on_disk(directory: str) -> int:
    """Bytes of every file under `directory`."""
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(directory) for name in names)
