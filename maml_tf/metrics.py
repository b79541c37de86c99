"""Losses and metrics (Keras' order: fn(y_true, y_pred)) with the papers' scaling, and mean ± 95% CIs."""

from typing import Callable, Dict, Union

import keras
import numpy as np
import tensorflow as tf

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # loss(y_true, y_pred) -> scalar


def get_loss(loss: Union[str, LossFn]) -> LossFn:
    """A loss(y_true, y_pred) -> scalar: a callable (e.g. a `keras.losses` object) as it is, or
    the name of a Keras loss ("mse", "sparse_categorical_crossentropy", ...), averaged over the
    batch as Keras' Loss objects are (keras.losses.get alone gives per-example values)."""
    if isinstance(loss, str):
        fn = keras.losses.get(loss)
        if isinstance(fn, keras.losses.Loss):
            return fn
        return lambda y_true, y_pred: tf.reduce_mean(fn(y_true, y_pred))
    if not callable(loss):
        raise TypeError(f"a loss must be callable as loss(y_true, y_pred) or a Keras loss name, "
                        f"got {loss!r}")
    return loss


def _wide(predictions):
    """Half-precision outputs (a mixed_float16 model's) in float32, as Keras' losses take them:
    a float16 sum over a support set loses the digits an inner step needs."""
    predictions = tf.convert_to_tensor(predictions)
    return tf.cast(predictions, tf.float32) if predictions.dtype in (tf.float16, tf.bfloat16) \
        else predictions


def mse(targets, predictions):
    """Mean squared error, the original's regression loss."""
    predictions = _wide(predictions)
    return tf.reduce_mean(tf.square(predictions - tf.cast(targets, predictions.dtype)))


def make_xent_over_k(shots: int) -> LossFn:
    """Softmax cross-entropy summed over the examples and divided by K (`update_batch_size`).

    The original passes the per-example cross-entropy divided by K to `tf.gradients`, which
    sums it: so its `update_lr` is N times a step on the mean loss. Matching it keeps the
    paper's step sizes (e.g. 0.4 for 5-way 1-shot Omniglot) meaning the same thing here.
    """
    scale = 1.0 / float(shots)

    def xent_over_k(labels, logits):
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int32), logits=_wide(logits))
        return tf.reduce_sum(per_example) * tf.cast(scale, per_example.dtype)

    return xent_over_k


def summed_xent(labels, logits):
    """Softmax cross-entropy summed over the batch: the Reptile paper's inner loss
    (openai/supervised-reptile minimises the unreduced per-example loss, i.e. its sum), with
    the same meaning whatever the batch's K, in training and evaluation alike."""
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=_wide(logits))
    return tf.reduce_sum(per_example)


def accuracy(labels, logits):
    """Fraction of rows whose argmax over the class axis (the last one) equals the label."""
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(tf.equal(predicted, tf.cast(labels, tf.int32)),
                                  _wide(logits).dtype))


def make_metrics(problem: str) -> Dict[str, Callable]:
    """Extra per-task metrics beside the loss: accuracy for classification, none for regression."""
    return {"accuracy": accuracy} if problem == "classification" else {}


def mean_and_ci95(values) -> Dict[str, float]:
    """Mean, standard deviation and the 95% half-width 1.96·std/√n over the first axis, as the paper.

    Also the median and the count of non-finite values: one diverging task makes the mean
    infinite, and a report should say so rather than hide it.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    with np.errstate(invalid="ignore", over="ignore"):
        std = values.std(axis=0)
    return {"mean": values.mean(axis=0), "std": std, "ci95": 1.96 * std / np.sqrt(n),
            "median": np.median(values, axis=0),
            "nonfinite": np.sum(~np.isfinite(values), axis=0), "n": n}
