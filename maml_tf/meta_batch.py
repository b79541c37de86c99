"""One function over a meta-batch of tasks: `map_tasks` runs it, each task with its index, and the mean over tasks is the meta-step's."""

import os
from typing import Callable, Dict, List, Sequence

import tensorflow as tf

from maml_tf.inner_opt import Weights
from maml_tf.models import Learner
from maml_tf.types import Task

MetricFns = Dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]]


def task_metrics(prefix, loss, outputs, y, metric_fns: MetricFns) -> Dict[str, tf.Tensor]:
    """{prefix_loss: loss, prefix_<metric>: metric(y, outputs)...} of one task, each a scalar
    (a per-example metric such as Keras' `sparse_categorical_accuracy` is averaged)."""
    out = {f"{prefix}_loss": loss}
    for name, fn in metric_fns.items():
        out[f"{prefix}_{name}"] = tf.reduce_mean(fn(y, outputs))
    return out


def indexed_tasks(learner: Learner, tasks: Task):
    """(tasks, their indices in the meta-batch): map_fn's elements, so each task can fold in its
    index (under tf.distribute, a replica's tasks are numbered after the previous replicas').
    ValueError for tasks without the leading meta-batch axis (map_fn would take each example
    of one task for a task of its own)."""
    rank = learner.input_rank
    for name in ("support_x", "query_x"):
        if isinstance(getattr(tasks, name), (dict, list, tuple)):
            raise ValueError(f"{name} is a {type(getattr(tasks, name)).__name__} of inputs: the "
                             "meta-batch functions take a model of one input tensor (adapt() "
                             "takes one task of several)")
        shape = tf.TensorShape(getattr(tasks, name).shape)  # a tensor's or an array's
        if rank is not None and shape.rank is not None and shape.rank != rank + 1:
            raise ValueError(f"{name} has shape {tuple(shape)}: a batch of tasks is "
                             f"[meta_batch, examples, ...] ({rank + 1} axes for this model's "
                             f"{rank}-axis inputs); one task is a batch of 1")
    count = tf.shape(tasks.support_x)[0]
    replica = tf.distribute.get_replica_context()  # None in cross-replica context
    if replica is None or replica.num_replicas_in_sync == 1:
        return tasks, tf.range(count)
    # A replica's share of the meta-batch is contiguous (experiment.distribute.replica_tasks):
    # its tasks keep their indices in the whole batch, so no two replicas draw one stream.
    return tasks, tf.range(count) + tf.cast(replica.replica_id_in_sync_group, tf.int32) * count


def split_state(learner: Learner, start: Weights, mean_out: Weights, n: int):
    """The mean per-task outputs [:n] (meta-gradient) and the model's next state from the rest."""
    return mean_out[:n], learner.next_state(start, mean_out[n:])


def map_tasks(fn, tasks: Task, weights: Weights, names: Sequence[str]):
    """Applies fn(task) -> (per-weight tensors, {name: scalar}) to every task of a batch.

    A graph-mode loop (`tf.map_fn`), so the traced graph does not grow with the meta-batch.
    As many tasks run at once as TensorFlow has inter-op threads (one per core by default):
    more would not run sooner, only hold more activations (measured: results/performance.md).
    """
    signature = ([tf.TensorSpec(w.shape, w.dtype) for w in weights],
                 {name: tf.TensorSpec((), weights[0].dtype) for name in names})
    in_flight = tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count() or 2

    def typed(task):  # a user's loss or metric may return another float type than the weights
        grads, metrics = fn(task)
        return grads, {k: tf.cast(v, weights[0].dtype) for k, v in metrics.items()}

    return tf.map_fn(typed, tasks, fn_output_signature=signature, parallel_iterations=in_flight)


def mean_over_tasks(per_task_grads, per_task_metrics):
    """`map_tasks`' outputs averaged over the tasks (axis 0)."""
    grads = [tf.reduce_mean(g, axis=0) for g in per_task_grads]
    return grads, {k: tf.reduce_mean(v) for k, v in per_task_metrics.items()}


def metric_names(metric_fns: MetricFns) -> List[str]:
    """The names `task_metrics` gives, before (pre_) and after (post_) adaptation."""
    return [f"{p}_{m}" for p in ("pre", "post") for m in ["loss", *metric_fns]]
