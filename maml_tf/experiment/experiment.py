"""The pieces of a run built from a Config: `Experiment` (sampler, network, optimizers, compiled steps) and the task stream."""

from typing import Callable, Dict, Iterator, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from maml_tf import algorithms, datasets, evaluation, metrics, models, variants
from maml_tf.errors import UserError
from maml_tf.experiment import distribute, variant_parts
from maml_tf.experiment.variant_parts import learned_rates, make_learner, step_variables
from maml_tf.experiment.choices import inner_loop, loss_for, outer_optimizer
from maml_tf.experiment.config import Config
from maml_tf.inner_opt import InnerMoments
from maml_tf.inner_rates import LearnedRates
from maml_tf.per_step import StepParams
from maml_tf.types import Task


def build_model(config: Config, sampler) -> keras.Model:
    """The paper's network for a dataset: 1-40-40-1 MLP for regression, conv or fc net for images."""
    if sampler.problem == "regression":
        return models.fc_net(sampler.input_shape[0], sampler.output_dim, (40, 40), config.norm,
                             config.seed)
    if config.conv:
        return models.conv_net(sampler.input_shape, sampler.output_dim, config.num_filters,
                               config.max_pool, config.norm, seed=config.seed)
    flat = int(np.prod(sampler.input_shape))
    inner = models.fc_net(flat, sampler.output_dim, (256, 128, 64, 64), config.norm, config.seed)
    inputs = keras.Input(tuple(sampler.input_shape))
    return keras.Model(inputs, inner(keras.layers.Flatten()(inputs)), name="fc_image_net")


def check_model(model: keras.Model, sampler):
    """UserError unless a user's model (functional, Sequential or subclassed) is built, has
    weights to learn and maps a batch of the sampler's inputs to one float32 output of the
    sampler's size: tried on a batch of zeros, so that no wrong shape is broadcast into the loss."""
    if not model.built:
        raise UserError("build the Keras model (give it an Input shape) before meta-learning it")
    if not model.trainable_variables:
        raise UserError("the model has no trainable weights: nothing to meta-learn")
    shape, width = tuple(sampler.input_shape), sampler.output_dim
    try:
        out = model(np.zeros((2, *shape), np.float32), training=False)
    except Exception as err:  # noqa: BLE001  (whatever Keras raises for inputs it cannot take)
        reason = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise UserError(f"the model cannot take a batch of the data set's inputs {shape}: "
                        f"{reason}") from None
    got = (f"{len(out)} outputs" if isinstance(out, (list, tuple, dict))
           else f"{out.dtype.name if hasattr(out.dtype, 'name') else out.dtype} {list(out.shape)}")
    if got != f"float32 [2, {width}]":
        raise UserError(f"the model maps a batch of 2 inputs {shape} to {got}; the data set needs "
                        f"one float32 output of shape [2, {width}]")


class SeedStates(tf.Module):
    """The model's SeedGenerator states, which Keras leaves out of a model's checkpoint:
    saved beside it so a resumed run draws the dropout masks an uninterrupted one would."""

    def __init__(self, learner: models.Learner):
        super().__init__(name="seed_states")
        self.states = [v for v, seed in zip(learner.state_variables, learner.is_seed) if seed]


class Experiment:
    """The pieces of a run built from a config: sampler, learner, loss, optimizer.

    `sampler`: any TaskSampler in place of the configured data set (the benchmark's); `model`:
    a user's own built Keras model in place of the paper's network (under --strategy, build it
    inside `distribute.strategy_for(config).scope()`).
    """

    def __init__(self, config: Config, sampler=None, model: Optional[keras.Model] = None):
        self.config = config
        self.strategy = distribute.strategy_for(config)  # first: it may configure the devices
        distribute.check(config, self.strategy)
        self.sampler = sampler or datasets.get_sampler(config)
        if model is not None:
            check_model(model, self.sampler)
        with self.strategy.scope():  # variables mirrored on every replica
            self.model = model if model is not None else build_model(config, self.sampler)
            self.learner = make_learner(config, self.model)
            self.optimizer = outer_optimizer(config)
            # Meta-SGD / LSLR: learned step sizes, meta-learned with the weights (else None).
            self.inner_rates = learned_rates(config, self.learner, self.sampler.problem)
            # MAML++'s BNWB: the batch-norm parameters of inner steps 1..n-1 (else None).
            self.step_vars = step_variables(config, self.learner)
            # What the outer optimizer updates: the weights, then any learned step sizes, then
            # any per-step batch-norm parameters.
            rates = self.inner_rates.rates if self.inner_rates is not None else []
            step_params = self.step_vars.params if self.step_vars is not None else []
            self.meta_variables = self.learner.trainable_variables + rates + step_params
            # --grad_clip clips the network's parameters, per-step batch norm's included, not the
            # learned rates: MAML++ clamps its classifier's parameters, which hold its per-step
            # batch-norm weights, and keeps its step sizes in another module.
            self.clipped = ([True] * len(self.learner.trainable_variables) + [False] * len(rates)
                            + [True] * len(step_params))
            # Built now, not lazily, so a checkpoint restores its slots before the first step.
            self.optimizer.build(self.meta_variables)
            # Reptile's inner Adam keeps its moments from task to task (the paper's code).
            adam = config.algorithm == "reptile" and config.inner_optimizer == "adam"
            self.inner_moments = InnerMoments(self.learner.trainable_variables) if adam else None
        # What the algorithm carries from one meta-step to the next (`MetaResult.carry`).
        self.carry_variables = ([*self.inner_moments.v, self.inner_moments.step]
                                if self.inner_moments is not None else [])
        self.loss_fn = loss_for(self.sampler.problem, config.shots, config.algorithm)
        self.metric_fns = metrics.make_metrics(self.sampler.problem)
        self._curve_fns = {}

    def state(self) -> Dict:
        """What a checkpoint holds besides the iteration."""
        extra = {"inner_moments": self.inner_moments} if self.inner_moments is not None else {}
        if any(self.learner.is_seed):
            extra["seed_states"] = SeedStates(self.learner)
        if self.inner_rates is not None:
            extra["inner_rates"] = self.inner_rates
        if self.step_vars is not None:
            extra["step_params"] = self.step_vars
        return {"model": self.model, "optimizer": self.optimizer, **extra}

    def moments(self):
        """The inner Adam's carried moments (None unless Reptile with an inner Adam)."""
        return self.inner_moments.read() if self.inner_moments is not None else None

    def rates(self) -> Optional[LearnedRates]:
        """The learned inner step sizes (None: the run adapts with its fixed inner_lr)."""
        return self.inner_rates.read() if self.inner_rates is not None else None

    def variable_grads(self, grads) -> list:
        """The meta-gradient of `meta_variables` from the algorithm's (of the weights, the rates
        as `rates()` reads them, the per-step parameters)."""
        if self.inner_rates is None:
            return list(grads)
        n, k = len(self.learner.trainable_variables), len(self.inner_rates.rates)
        return [*grads[:n], *self.inner_rates.variable_grads(grads[n:n + k]), *grads[n + k:]]

    def step_params(self) -> Optional[StepParams]:
        """MAML++'s per-step batch-norm parameters (None: every step uses the model's)."""
        return self.step_vars.read() if self.step_vars is not None else None

    def loss(self, shots: int):
        """The loss of a phase with K = `shots` (Reptile's is the same for every K)."""
        return loss_for(self.sampler.problem, shots, self.config.algorithm)

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

    def curve_fn(self, shots: int, queries: int, inner_lr: float, steps: int,
                 record_steps: Optional[Sequence[int]] = None):
        """Compiled evaluation (`evaluation.adaptation_curve`) for one K, built once per setting:
        its arrays hold the `record_steps` (None: every step 0..steps) in increasing order."""
        record = tuple(sorted(set(range(steps + 1) if record_steps is None else record_steps)))
        key = (shots, queries, inner_lr, steps, record)
        if key not in self._curve_fns:
            c, learner = self.config, self.learner

            @tf.function(input_signature=[self.task_signature(shots, queries)])
            def curve(tasks):
                loop = inner_loop(c, self.sampler.problem, shots, inner_lr, self.moments(),
                                  self.rates(), self.step_params())
                return evaluation.adaptation_curve(
                    learner, loop.loss_fn, learner.weights(), tasks, inner_lr, steps,
                    self.metric_fns, transductive=c.transductive, optimizer=loop.optimizer,
                    batch_size=loop.batch_size, moments=loop.moments, record_steps=list(record),
                    rates=loop.rates, step_params=loop.step_params)

            self._curve_fns[key] = curve
        return self._curve_fns[key]

    def algorithm(self, phase: Optional[variants.Phase] = None) -> Callable[..., algorithms.MetaResult]:
        """The configured algorithm's meta-step with its own settings bound (the one place that
        looks at `config.algorithm` for training); `phase`: MAML++'s scheduled parts now."""
        c = self.config
        if c.algorithm == "reptile":
            # The moments after the meta-batch count all its tasks, on every replica.
            return lambda *a, **k: algorithms.reptile_meta_grads(
                *a, optimizer=c.inner_optimizer, batch_size=c.inner_batch_size,
                moments=self.moments(), num_tasks=c.meta_batch_size, **k)
        first_order = c.first_order if phase is None else phase.first_order
        return variant_parts.meta_grads(self, first_order, phase.multi_step_loss if phase else False)

    def replica_meta_grads(self, inner_steps: int, phase: Optional[variants.Phase] = None):
        """fn(tasks) -> MetaResult of the configured algorithm, means over this replica's share
        of the meta-batch (to call inside `strategy.run`)."""
        c, learner, meta_grads = self.config, self.learner, self.algorithm(phase)

        def replica_fn(tasks):
            return meta_grads(learner, self.loss_fn, learner.weights(),
                              distribute.replica_tasks(tasks), c.inner_lr, inner_steps,
                              metric_fns=self.metric_fns)

        return replica_fn

    def make_train_step(self, inner_steps: int):
        """One compiled meta-iteration: each replica's meta-gradient of the configured algorithm,
        then the outer optimizer (Adam for MAML, SGD with step size epsilon for Reptile) applies
        their mean, the same update on every replica and as on one device. With MAML++'s
        scheduled parts, one compiled step per phase, chosen by the meta-updates done (the
        optimizer's checkpointed count, so a resumed run is in the phase it left)."""
        c = self.config
        if not (c.first_order_iterations or c.multi_step_loss) or not inner_steps:
            return self._compiled_step(inner_steps)
        return variants.PhasedStep(
            lambda: variants.phase(int(self.optimizer.iterations.numpy()), c.first_order,
                                   c.first_order_iterations,
                                   c.msl_anneal_iterations if c.multi_step_loss else 0),
            lambda phase: self._compiled_step(inner_steps, phase))

    def _compiled_step(self, inner_steps: int, phase: Optional[variants.Phase] = None):
        c, learner, strategy = self.config, self.learner, self.strategy
        replica_fn = self.replica_meta_grads(inner_steps, phase)

        def replica_step(tasks):
            result = replica_fn(tasks)
            distribute.apply_mean(self.optimizer, self.variable_grads(result.grads),
                                  self.meta_variables, c.grad_clip, clipped=self.clipped)
            return result.metrics, result.state, result.carry

        if c.jit_compile:  # XLA on the replica function, as Keras' Model.fit does
            replica_step = tf.function(replica_step, jit_compile=True)

        @tf.function(input_signature=[self.task_signature(c.shots, c.queries)])
        def train_step(tasks):
            step_metrics, state, carry = strategy.run(replica_step, args=(tasks,))
            # Written once, in cross-replica context: the model's state and the algorithm's.
            learner.assign_state(distribute.agreed(strategy, state))
            for var, value in zip(self.carry_variables, distribute.agreed(strategy, carry)):
                var.assign(tf.cast(value, var.dtype))
            return distribute.mean_over_replicas(strategy, step_metrics)

        return train_step


def task_batches(sampler, split: str, batch_size: int, shots: int, queries: int, seed: int,
                 start: int) -> Iterator[Task]:
    """Task batch i comes from its own RNG seeded by (seed, i): a resumed run sees the same tasks."""
    i = start
    while True:
        yield sampler.sample(split, batch_size, shots, queries, np.random.default_rng([seed, i]))
        i += 1
