"""`train_and_evaluate(config, workdir)`: the outer loop, logging, meta-validation and checkpoints."""

import json
import os
from typing import Dict, Iterator

import keras
import numpy as np
import tensorflow as tf

from maml_tf import algorithms, datasets, distribute, evaluate, metrics, models
from maml_tf.checkpoints import Checkpointer
from maml_tf.config import IDENTITY_FIELDS, Config
from maml_tf.errors import UserError
from maml_tf.inner_opt import InnerMoments
from maml_tf.progress import ProgressLog, trim_history
from maml_tf.runinfo import SegmentLog
from maml_tf.types import Task


class Experiment:
    """The pieces of a run built from a config: sampler, learner, loss, optimizer."""

    def __init__(self, config: Config, sampler=None):
        self.config = config
        self.strategy = distribute.strategy_for(config)  # first: it may configure the devices
        distribute.check(config, self.strategy)
        # `sampler`: any TaskSampler in place of the configured data set (the benchmark's).
        self.sampler = sampler or datasets.get_sampler(config)
        with self.strategy.scope():  # variables mirrored on every replica
            self.model = models.build_model(config, self.sampler)
            self.learner = models.Learner(self.model)
            self.optimizer = outer_optimizer(config)
            # Built now, not lazily, so a checkpoint restores its slots before the first step.
            self.optimizer.build(self.learner.variables)
            # Reptile's inner Adam keeps its moments from task to task (the paper's code).
            adam = config.algorithm == "reptile" and config.inner_optimizer == "adam"
            self.inner_moments = InnerMoments(self.learner.variables) if adam else None
        self.loss_fn = loss_for(self.sampler.problem, config.shots)
        self.metric_fns = metrics.make_metrics(self.sampler.problem)
        self._curve_fns = {}

    def state(self) -> Dict:
        """What a checkpoint holds besides the iteration."""
        extra = {"inner_moments": self.inner_moments} if self.inner_moments is not None else {}
        return {"model": self.model, "optimizer": self.optimizer, **extra}

    def moments(self):
        """The inner Adam's carried moments (None unless Reptile with an inner Adam)."""
        return self.inner_moments.read() if self.inner_moments is not None else None

    def task_signature(self, shots: int, queries: int) -> Task:
        """TensorSpecs of a task batch; fixed so the compiled step is traced once per run."""
        s = self.sampler
        if s.problem == "classification":
            n_s, n_q, y, ydtype = s.output_dim * shots, s.output_dim * queries, (), tf.int32
        else:
            n_s, n_q, y, ydtype = shots, queries, (s.output_dim,), tf.float32
        x = tuple(s.input_shape)
        return Task(tf.TensorSpec((None, n_s) + x, tf.float32), tf.TensorSpec((None, n_s) + y, ydtype),
                    tf.TensorSpec((None, n_q) + x, tf.float32), tf.TensorSpec((None, n_q) + y, ydtype))

    def curve_fn(self, shots: int, queries: int, inner_lr: float, steps: int):
        """Compiled evaluation (`algorithms.adaptation_curve`) for one K, built once per setting."""
        key = (shots, queries, inner_lr, steps)
        if key not in self._curve_fns:
            loss_fn, learner, c = loss_for(self.sampler.problem, shots), self.learner, self.config
            reptile = c.algorithm == "reptile"

            @tf.function(input_signature=[self.task_signature(shots, queries)])
            def curve(tasks):
                return algorithms.adaptation_curve(
                    learner, loss_fn, learner.weights(), tasks, inner_lr, steps, self.metric_fns,
                    transductive=c.transductive, optimizer=c.inner_optimizer if reptile else None,
                    batch_size=c.eval_inner_batch_size, moments=self.moments())

            self._curve_fns[key] = curve
        return self._curve_fns[key]

    def replica_meta_grads(self, inner_steps: int):
        """fn(tasks) -> (meta-gradient, metrics, inner Adam's final second moments or None) of the
        configured algorithm, each a mean over this replica's share of the meta-batch (to call
        inside `strategy.run`)."""
        c, learner = self.config, self.learner
        if c.algorithm == "reptile":
            def meta_grads(*a, **k):
                return algorithms.reptile_meta_grads(*a, optimizer=c.inner_optimizer,
                                                     batch_size=c.inner_batch_size,
                                                     moments=self.moments(), **k)
        else:
            def meta_grads(*a, **k):
                return (*algorithms.maml_meta_grads(*a, first_order=c.first_order, **k), None)

        def replica_fn(tasks):
            return meta_grads(learner, self.loss_fn, learner.weights(),
                              distribute.replica_tasks(tasks), c.inner_lr, inner_steps,
                              metric_fns=self.metric_fns)

        return replica_fn

    def make_train_step(self, inner_steps: int):
        """One compiled meta-iteration: each replica's meta-gradient of the configured algorithm,
        then the outer optimizer (Adam for MAML, SGD with step size epsilon for Reptile) applies
        their mean, the same update on every replica and as on one device."""
        c, learner, strategy = self.config, self.learner, self.strategy
        replica_fn = self.replica_meta_grads(inner_steps)

        def replica_step(tasks):
            grads, step_metrics, end_v = replica_fn(tasks)
            distribute.apply_mean(self.optimizer, grads, learner.variables, c.grad_clip)
            if end_v is not None:  # counted as if the whole meta-batch ran here
                self.inner_moments.update(distribute.all_reduce_mean(end_v), inner_steps,
                                          c.meta_batch_size)
            return step_metrics

        if c.jit_compile:  # XLA on the replica function, as Keras' Model.fit does
            replica_step = tf.function(replica_step, jit_compile=True)

        @tf.function(input_signature=[self.task_signature(c.shots, c.queries)])
        def train_step(tasks):
            per_replica = strategy.run(replica_step, args=(tasks,))
            return distribute.mean_over_replicas(strategy, per_replica)

        return train_step


def outer_optimizer(config: Config) -> keras.optimizers.Optimizer:
    """Adam(meta_lr) for MAML; for Reptile SGD, whose step on θ − mean W is θ += ε·(mean W − θ),
    with ε linear from meta_step at iteration 0 to meta_step_final at the last (as the paper)."""
    if config.algorithm == "reptile":
        epsilon = keras.optimizers.schedules.PolynomialDecay(
            config.meta_step, max(config.metatrain_iterations, 1), config.meta_step_final, power=1.0)
        return keras.optimizers.SGD(epsilon)
    # epsilon 1e-8 as TF1's AdamOptimizer in the original (Keras' default is 1e-7).
    return keras.optimizers.Adam(config.meta_lr, epsilon=1e-8)


def loss_for(problem: str, shots: int):
    """MSE for regression; cross-entropy summed and divided by K for classification (as the original)."""
    return metrics.mse if problem == "regression" else metrics.make_xent_over_k(shots)


def task_batches(sampler, split: str, batch_size: int, shots: int, queries: int, seed: int,
                 start: int) -> Iterator[Task]:
    """Task batch i comes from its own RNG seeded by (seed, i): a resumed run sees the same tasks."""
    i = start
    while True:
        yield sampler.sample(split, batch_size, shots, queries, np.random.default_rng([seed, i]))
        i += 1


def _check_same_run(config: Config, workdir: str):
    """Refuses to resume a run directory that holds a run with other defining settings."""
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        diff = [k for k in IDENTITY_FIELDS if k in saved and saved[k] != getattr(config, k)]
        if diff:
            raise UserError(f"{workdir} holds a run with other settings ({', '.join(diff)}); "
                            "use another --logdir or --run_name")
    with open(path, "w") as f:
        f.write(config.to_json())


def train_and_evaluate(config: Config, workdir: str, resume: bool = True) -> Dict:
    """Trains (pretraining, then meta-training) to `config.total_iterations`, resuming by default.

    Writes config.json, TensorBoard events, checkpoints and validation.jsonl into `workdir`;
    returns the last meta-validation result (or {} if none ran). Under multi_worker only the
    chief writes there and validates; the other workers restore from `workdir` (TF's rule).
    """
    config.validate()
    exp = Experiment(config)  # loads the data first: a run that cannot start leaves no directory
    with distribute.write_dir(exp.strategy, workdir) as outdir:
        return _train(exp, workdir, outdir, resume)


def _train(exp: Experiment, workdir: str, outdir: str, resume: bool) -> Dict:
    config, chief = exp.config, outdir == workdir
    os.makedirs(outdir, exist_ok=True)
    _check_same_run(config, outdir)
    ckpt = Checkpointer(outdir, exp.state(), config.keep_checkpoints, restore_from=workdir)
    start = ckpt.restore_latest() if resume else 0
    if start:
        print(f"resuming {workdir} from iteration {start}", flush=True)
    replicas = exp.strategy.num_replicas_in_sync
    if replicas > 1:
        print(f"{config.strategy}: {replicas} replicas, {config.meta_batch_size // replicas} tasks "
              f"each{'' if chief else ' (not the chief: writes nothing)'}", flush=True)
    trim_history(os.path.join(outdir, "validation.jsonl"), start)
    steps = {0: exp.make_train_step(0), config.inner_steps: exp.make_train_step(config.inner_steps)}
    log, segments = ProgressLog(config, outdir), SegmentLog(outdir, start)
    batches = task_batches(exp.sampler, "train", config.meta_batch_size, config.shots,
                           config.queries, config.seed, start)
    last_val = {}
    for iteration in range(start + 1, config.total_iterations + 1):
        pretraining = iteration <= config.pretrain_iterations
        log.add(iteration, steps[0 if pretraining else config.inner_steps](next(batches)))
        phase = "pretrain" if pretraining else "metatrain"
        if iteration % config.print_interval == 0:
            log.flush(iteration, phase)
        if chief and config.val_interval and iteration % config.val_interval == 0:
            last_val = validate(exp, outdir, iteration, log)
        if iteration % config.checkpoint_interval == 0 or iteration == config.total_iterations:
            ckpt.save(iteration)
            segments.update(iteration)
    return last_val


def validate(exp: Experiment, workdir: str, iteration: int, log: ProgressLog) -> Dict:
    """Meta-validation on a fixed set of validation tasks; appended to validation.jsonl."""
    c = exp.config
    # MAML validates with its training K (as the original); Reptile's train shots are only a
    # training-time data setting, so it validates as it is evaluated.
    shots, queries, lr = ((c.eval_shots, c.eval_queries, c.eval_inner_lr) if c.algorithm == "reptile"
                          else (c.shots, c.queries, c.inner_lr))
    result = evaluate.evaluate_learner(exp, "val", c.val_tasks, shots, queries, lr,
                                       c.eval_inner_steps, c.eval_seed)
    row = {"iteration": iteration, **{k: v["mean"].tolist() for k, v in result.items()}}
    with open(os.path.join(workdir, "validation.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")
    post = min(max(c.inner_steps, 1), c.eval_inner_steps)
    log.scalars(iteration, {f"val/{k}_step{s}": v["mean"][s] for k, v in result.items()
                            for s in (0, post)})
    shown = "  ".join(f"{k} {v['mean'][0]:.4g} -> {v['mean'][post]:.4g}" for k, v in result.items())
    print(f"[val] iter {iteration}  (step 0 -> {post})  {shown}", flush=True)
    return row
