"""Pure functions over lists of weight tensors: adapt, and the MAML and Reptile meta-gradients.

Every algorithm returns a `MetaResult`: a meta-gradient (one tensor per trainable variable,
averaged over the tasks of the meta-batch) that a single outer optimizer applies, its metrics,
the model's non-trainable state for after the step and the algorithm's own carried state, so
the training loop never branches on the algorithm. Losses and metrics are called as Keras'
are, fn(y_true, y_pred). Nothing here reads flags or touches a Keras variable.

Non-trainable state (batch-norm moving statistics, dropout's seed state) is threaded through
every call of a task's inner loop: each task starts from the model's state with its own seed
stream (`Learner.task_state`), and after the meta-step the model keeps the tasks' mean final
moving statistics and seed states advanced by one (`Learner.next_state`).
"""

from typing import Callable, Dict, NamedTuple, Optional, Sequence

import tensorflow as tf

from maml_tf.inner_opt import (AdamMoments, InnerState, carried, first_order_step,
                               initial_state, inner_gradient, moment_increments, support_batch)
from maml_tf.inner_rates import LearnedRates
from maml_tf.meta_batch import (MetricFns, Weights, indexed_tasks, map_tasks, mean_over_tasks,
                                metric_names, split_state, task_metrics)
from maml_tf.per_step import StepParams
from maml_tf.metrics import get_loss
from maml_tf.models import Learner
from maml_tf.types import Task


class MetaResult(NamedTuple):
    """What every algorithm's meta-step returns."""
    grads: Weights                  # meta-gradient, one per trainable variable (mean over tasks)
    metrics: Dict[str, tf.Tensor]   # scalars, means over tasks
    state: Weights                  # the model's non-trainable state for after the step
    carry: Weights                  # the algorithm's carried state (Reptile + Adam: v..., step); else []


def check_steps(steps, name: str = "steps") -> int:
    """`steps` as a count of inner steps; ValueError for a negative or non-integer one (range()
    would take -1 for no step at all and return the unadapted weights)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"{name} must be a non-negative int (a number of inner steps), got {steps!r}")
    return steps


def inner_step(learner: Learner, loss_fn, weights: Weights, x, y, inner_lr,
               first_order: bool = False, mask: Optional[Sequence[bool]] = None, state=None):
    """One SGD step on (x, y): returns (new weights, loss before the step, outputs before it,
    the model state after the forward pass; `state` None: the model's, updates dropped).
    `inner_lr`: one step size, or a list with each weight's (learned rates, `LearnedRates.at`).

    The gradient is `inner_opt.inner_gradient`'s, the one every inner step takes (kept on an
    outer tape that is recording: the meta-gradient is then second order).
    """
    mask = learner.inner_mask if mask is None else mask
    state = learner.state() if state is None else state
    grads, loss, outputs, state = inner_gradient(learner, loss_fn, weights, x, y, state, mask)
    grads = iter(grads)
    new = []
    per_weight = isinstance(inner_lr, (list, tuple))
    for i, (w, m) in enumerate(zip(weights, mask)):
        if not m:
            new.append(w)
            continue
        g, lr = next(grads), inner_lr[i] if per_weight else inner_lr
        # First-order MAML: the inner gradient is a constant, so d(theta')/d(theta) = I.
        new.append(w - lr * (tf.stop_gradient(g) if first_order else g))
    return new, loss, outputs, state


class InnerLoop(NamedTuple):
    """How a task is adapted: the inner loss, step size, optimizer and batches of a run."""
    loss_fn: Callable                 # loss(y_true, y_pred) on the support set
    inner_lr: float
    optimizer: Optional[str] = None   # None: MAML's SGD of the inner-masked weights on the whole
    #                                   support set; "sgd" / "adam": Reptile's, of every weight
    batch_size: int = 0               # Reptile: support examples per step, in turn (0: all)
    moments: Optional[AdamMoments] = None  # Reptile's carried Adam moments each task starts from
    rates: Optional[LearnedRates] = None  # MAML: learned step sizes in place of inner_lr
    step_params: Optional[StepParams] = None  # MAML++'s per-step batch-norm weights (BNWB)


def adaptation_step(learner: Learner, loop: InnerLoop, state: InnerState, task: Task, step: int,
                    first_order: bool = True):
    """Inner step `step` of `loop` on the task's support set: (state after it, loss and outputs
    before it). The one inner step of training, evaluation, `MetaModel` and the SavedModel;
    `first_order` False (MAML's meta-gradient) keeps the inner gradient on the outer tape."""
    if loop.optimizer is None:
        lr = loop.inner_lr if loop.rates is None else loop.rates.at(step)
        weights = state.weights if loop.step_params is None else \
            loop.step_params.substitute(state.weights, step)  # kept in the fast weights after
        fast, loss, outputs, model_state = inner_step(
            learner, loop.loss_fn, weights, task.support_x, task.support_y, lr,
            first_order, state=state.model_state)
        return state._replace(weights=fast, model_state=model_state), loss, outputs
    x, y = support_batch(task, step, loop.batch_size)
    return first_order_step(learner, loop.loss_fn, state, x, y, loop.inner_lr, loop.optimizer)


def adapt_task(learner: Learner, loop: InnerLoop, weights: Weights, task: Task, steps: int,
               model_state: Optional[Weights] = None) -> InnerState:
    """`steps` first-order steps of `loop` from `weights` (and the model's state, threaded)."""
    state = initial_state(weights, loop.moments, model_state)
    for step in range(check_steps(steps)):
        state, _, _ = adaptation_step(learner, loop, state, task, step)
    return state


def adapt(learner: Learner, loss_fn, weights: Weights, x, y, inner_lr: float, steps: int,
          first_order: bool = False, mask: Optional[Sequence[bool]] = None) -> Weights:
    """`steps` inner SGD steps of size `inner_lr` on (x, y), from `weights`; returns the fast
    weights. The model's state is threaded through the steps (each draws its own dropout mask)."""
    fast, state, loss_fn = list(weights), learner.state(), get_loss(loss_fn)
    for _ in range(check_steps(steps)):
        fast, _, _, state = inner_step(learner, loss_fn, fast, x, y, inner_lr, first_order, mask,
                                       state)
    return fast


def maml_meta_grads(learner: Learner, loss_fn, weights: Weights, tasks: Task, inner_lr: float,
                    inner_steps: int, first_order: bool = False,
                    metric_fns: Optional[MetricFns] = None, rates: Optional[LearnedRates] = None,
                    step_weights: Optional[tf.Tensor] = None,
                    step_params: Optional[StepParams] = None) -> MetaResult:
    """∇θ of the mean over tasks of the query loss after `inner_steps` steps on the support set.

    Exact second order (nested tapes) unless `first_order`. With `inner_steps=0` it is the
    gradient of the plain query loss: the pretrained baseline, trained jointly on all tasks.
    Metrics: `pre_*` on the support set before adaptation (as the original logs them; the
    query set when there is no inner step) and `post_*` on the query set after it.
    MAML's successors (maml_tf/variants.py): `rates`, learned step sizes used in place of
    inner_lr (Meta-SGD, LSLR), and `step_params`, MAML++'s per-step batch-norm weights, get
    meta-gradient entries after the weights'; `step_weights` [inner_steps]: the meta-loss is
    Σ_i w_i · (query loss after step i+1), MAML++'s multi-step loss.
    """
    check_steps(inner_steps, "inner_steps")
    metric_fns, loss_fn, start = metric_fns or {}, get_loss(loss_fn), learner.state()
    learned = (rates.learned() if rates else []) + (step_params.learned() if step_params else [])
    if step_weights is not None:
        step_weights = tf.cast(step_weights, weights[0].dtype)

    def per_task(args):
        task, index = args
        theta = [tf.identity(w) for w in list(weights) + learned]  # this task's own, for its tape
        state = learner.task_state(start, index)
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(theta)
            own = rates.replace_learned(theta[len(weights):][:len(rates.learned())]) if rates else None
            own_bn = step_params.replace_learned(theta[len(theta) - len(step_params.learned()):]) \
                if step_params else None
            fast, pre, terms = theta[:len(weights)], None, []
            for step in range(inner_steps):
                fast = own_bn.substitute(fast, step) if own_bn else fast
                fast, loss, outputs, state = inner_step(
                    learner, loss_fn, fast, task.support_x, task.support_y,
                    own.at(step) if own else inner_lr, first_order, state=state)
                pre = pre or task_metrics("pre", loss, outputs, task.support_y, metric_fns)
                if step_weights is not None and step < inner_steps - 1:
                    between, state = learner.apply(fast, state, task.query_x)
                    terms.append(step_weights[step] * loss_fn(task.query_y, between))
            outputs, state = learner.apply(fast, state, task.query_x)
            query_loss = objective = loss_fn(task.query_y, outputs)
            if step_weights is not None and inner_steps:
                objective = tf.add_n(terms + [step_weights[inner_steps - 1] * query_loss])
        grads = outer.gradient(objective, theta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        post = task_metrics("post", query_loss, outputs, task.query_y, metric_fns)
        return grads + learner.averaged(state), {
            **(pre or task_metrics("pre", query_loss, outputs, task.query_y, metric_fns)), **post}

    shapes = list(weights) + learned + learner.averaged(start)
    out, mean_metrics = mean_over_tasks(*map_tasks(per_task, indexed_tasks(learner, tasks), shapes,
                                                   metric_names(metric_fns)))
    grads, state = split_state(learner, start, out, len(weights) + len(learned))
    return MetaResult(grads, mean_metrics, state, [])


def reptile_meta_grads(learner: Learner, loss_fn, weights: Weights, tasks: Task, inner_lr: float,
                       inner_steps: int, metric_fns: Optional[MetricFns] = None,
                       optimizer: str = "sgd", batch_size: int = 0,
                       moments: Optional[AdamMoments] = None,
                       num_tasks: Optional[int] = None) -> MetaResult:
    """θ − mean over tasks of W, where W is θ after `inner_steps` steps of `optimizer` on the support set.

    Applied by SGD with learning rate ε this is Reptile's θ ← θ + ε·(mean W − θ). All trainable
    weights adapt (Reptile has no outer-only parameters). Every task's Adam starts from `moments`
    (fresh if None); `carry` is then the moments after the meta-batch (`inner_opt.carried`, as if
    its `num_tasks` tasks, default this call's, had run one after another): v..., step.
    Metrics: `pre_*` on the first inner batch before the first step, `post_*` on the query set with W.
    """
    metric_fns, loss_fn, start = metric_fns or {}, get_loss(loss_fn), learner.state()
    keep_v = moments is not None

    def per_task(args):
        task, index = args
        end, pre = reptile_adapt(learner, loss_fn, weights, task, inner_lr, inner_steps,
                                 optimizer, batch_size, metric_fns, moments,
                                 state=learner.task_state(start, index))
        outputs, state = learner.apply(end.weights, end.model_state, task.query_x)
        post = task_metrics("post", loss_fn(task.query_y, outputs), outputs, task.query_y,
                            metric_fns)
        out = [w - f for w, f in zip(weights, end.weights)]
        return out + (end.v if keep_v else []) + learner.averaged(state), {**pre, **post}

    n = len(weights) * (2 if keep_v else 1)
    shapes = list(weights) * (2 if keep_v else 1) + learner.averaged(start)
    out, mean_metrics = mean_over_tasks(*map_tasks(per_task, indexed_tasks(learner, tasks), shapes,
                                                   metric_names(metric_fns)))
    mean, state = split_state(learner, start, out, n)
    carry = []
    if keep_v:
        count = num_tasks or tasks.support_x.shape[0]
        if count is None:
            raise ValueError("pass num_tasks: the meta-batch size is not known statically")
        new = carried(moments, moment_increments(moments, mean[len(weights):], inner_steps),
                      inner_steps, count)
        carry = [*new.v, new.step]
    return MetaResult(mean[:len(weights)], mean_metrics, state, carry)


def reptile_adapt(learner: Learner, loss_fn, weights: Weights, task: Task, inner_lr: float,
                  steps: int, optimizer: str = "sgd", batch_size: int = 0,
                  metric_fns: Optional[MetricFns] = None, moments: Optional[AdamMoments] = None,
                  state=None):
    """First-order adaptation of every weight with SGD or Adam (starting from `moments`), the
    model state (`state`, default the model's) threaded through the steps.

    Returns (the final InnerState: W is its `weights`, metrics on the first inner batch before
    the first step).
    """
    metric_fns, loss_fn = metric_fns or {}, get_loss(loss_fn)
    loop = InnerLoop(loss_fn, inner_lr, optimizer, batch_size, moments)
    state = initial_state(weights, moments, learner.state() if state is None else state)
    pre = None
    for step in range(check_steps(steps)):
        state, loss, outputs = adaptation_step(learner, loop, state, task, step)
        if pre is None:  # on the first inner batch
            y = support_batch(task, step, batch_size)[1]
            pre = task_metrics("pre", loss, outputs, y, metric_fns)
    if pre is None:
        outputs, _ = learner.apply(state.weights, state.model_state, task.support_x)
        pre = task_metrics("pre", loss_fn(task.support_y, outputs), outputs, task.support_y,
                           metric_fns)
    return state, pre
