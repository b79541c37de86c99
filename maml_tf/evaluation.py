"""What a meta-learned initialisation gives on a task: query predictions, adaptation curves.

Pure functions over lists of weight tensors, as `algorithms` (whose inner steps they take);
evaluation only, so no meta-gradient is built.
"""

from typing import Dict, Optional, Sequence

import tensorflow as tf

from maml_tf.algorithms import InnerLoop, adaptation_step, check_steps
from maml_tf.meta_batch import MetricFns, Weights, indexed_tasks
from maml_tf.inner_opt import AdamMoments, initial_state
from maml_tf.inner_rates import LearnedRates
from maml_tf.per_step import StepParams
from maml_tf.metrics import get_loss
from maml_tf.models import Learner
from maml_tf.types import Task

# Non-transductive predictions of all query examples in one vectorised call (tf.vectorized_map:
# one convolution over Q x (support + 1) images, batch norm per group); False: a tf.map_fn
# loop, one small forward pass per query example (the reference; the same numbers).
VECTORIZED_NONTRANSDUCTIVE = True


def predict(learner: Learner, weights: Weights, task: Task, transductive: bool = True,
            state=None):
    """Query predictions: all query examples in one batch (transductive: batch norm shares their
    statistics, as MAML), or each in a batch with the support set only (its last row).
    `state`: the model state to predict with (default the model's); its updates are dropped."""
    state = learner.state() if state is None else state
    if transductive:
        return learner.apply(weights, state, task.query_x)[0]

    def one(x):
        return learner.apply(weights, state, tf.concat([task.support_x, x[None]], axis=0))[0][-1]

    if VECTORIZED_NONTRANSDUCTIVE:
        return tf.vectorized_map(one, task.query_x, fallback_to_while_loop=True, warn=False)
    out = learner(weights, task.query_x[:1])  # only for the output's shape and dtype
    return tf.map_fn(one, task.query_x, fn_output_signature=tf.TensorSpec(out.shape[1:], out.dtype))


def adaptation_curve(learner: Learner, loss_fn, weights: Weights, tasks: Task, inner_lr: float,
                     steps: int, metric_fns: Optional[MetricFns] = None, transductive: bool = True,
                     optimizer: Optional[str] = None, batch_size: int = 0,
                     moments: Optional[AdamMoments] = None,
                     record_steps: Optional[Sequence[int]] = None,
                     rates: Optional[LearnedRates] = None,
                     step_params: Optional[StepParams] = None) -> Dict[str, tf.Tensor]:
    """Query loss (and metrics) of every task before adaptation and after each of 1..steps steps.

    `record_steps`: only these steps (in 0..steps) are predicted and returned, in this order
    (None: all). The query forward passes are most of an evaluation's work (MiniImageNet: 75
    query images against 5 support images per step), so recording only the steps a result
    reports costs up to (steps + 1) / len(record_steps) times less.

    `optimizer` None: MAML's SGD steps on the whole support set (norm offsets fixed); "sgd" or
    "adam": Reptile's steps of every weight on support batches of `batch_size` (0: all), Adam
    starting from `moments` (read only: every task starts from the same). The model state is
    threaded through each task's steps (task i: seed stream i) and never written back.
    `rates`: MAML's steps with learned step sizes in place of inner_lr (Meta-SGD, LSLR);
    `step_params`: with MAML++'s per-step batch-norm weights.
    Returns {name: [meta_batch, len(record_steps) or steps + 1]}; used by evaluation, so no
    meta-gradient is built.
    """
    metric_fns, loss_fn, start = metric_fns or {}, get_loss(loss_fn), learner.state()
    names = ["loss", *metric_fns]
    check_steps(steps)
    record = list(range(steps + 1)) if record_steps is None else [int(s) for s in record_steps]
    if not record or min(record) < 0 or max(record) > steps:
        raise ValueError(f"record_steps must lie in 0..{steps}, got {record_steps}")
    last = max(record)

    loop = InnerLoop(loss_fn, inner_lr, optimizer, batch_size, moments, rates, step_params)

    def per_task(args):
        task, index = args
        state = initial_state(weights, moments, learner.task_state(start, index))
        at = {}
        for step in range(last + 1):
            if step in record:
                outputs = predict(learner, state.weights, task, transductive, state.model_state)
                at[step] = {"loss": loss_fn(task.query_y, outputs),
                            **{name: tf.reduce_mean(fn(task.query_y, outputs))  # per-example: averaged
                               for name, fn in metric_fns.items()}}
            if step < last:
                state, _, _ = adaptation_step(learner, loop, state, task, step)
        return {name: tf.stack([at[step][name] for step in record]) for name in names}

    signature = {name: tf.TensorSpec((len(record),), weights[0].dtype) for name in names}
    return tf.map_fn(per_task, indexed_tasks(learner, tasks), fn_output_signature=signature)
