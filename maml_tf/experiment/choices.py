"""The one place a Config's algorithm chooses its outer optimizer, inner loss and inner loop."""

from typing import NamedTuple, Optional

import keras

from maml_tf import algorithms, metrics, variants
from maml_tf.experiment.config import Config
from maml_tf.inner_rates import LearnedRates
from maml_tf.per_step import StepParams


def outer_optimizer(config: Config) -> keras.optimizers.Optimizer:
    """Adam(meta_lr) for MAML; for Reptile SGD, whose step on θ − mean W is θ += ε·(mean W − θ),
    with ε linear from meta_step at iteration 0 to meta_step_final at the last (as the paper)."""
    if config.algorithm == "reptile":
        epsilon = keras.optimizers.schedules.PolynomialDecay(
            config.meta_step, max(config.metatrain_iterations, 1), config.meta_step_final, power=1.0)
        return keras.optimizers.SGD(epsilon)
    # epsilon 1e-8 as TF1's AdamOptimizer in the original (Keras' default is 1e-7).
    if config.cosine_meta_lr:  # MAML++'s annealing of the meta learning rate
        return keras.optimizers.Adam(variants.EpochCosine(
            config.meta_lr, config.min_meta_lr, config.metatrain_iterations), epsilon=1e-8)
    return keras.optimizers.Adam(config.meta_lr, epsilon=1e-8)


class AdaptSettings(NamedTuple):
    """How a run adapts a new task: what maml_tf's own meta-validation of the run does."""
    inner_lr: float  # step size alpha of each inner step
    steps: int  # inner steps
    optimizer: Optional[str]  # None: MAML's SGD steps (norm offsets fixed); "sgd"/"adam": Reptile's
    batch_size: int  # Reptile: support examples per step, taken in turn (0: all)
    transductive: bool  # predict the query set in one batch (batch norm shares its statistics)


def adapt_settings(config: Config) -> AdaptSettings:
    """MAML adapts with its training step size, Reptile with its evaluation one (as `train.validate`)."""
    reptile = config.algorithm == "reptile"
    return AdaptSettings(config.eval_inner_lr if reptile else config.inner_lr,
                         config.eval_inner_steps, config.inner_optimizer if reptile else None,
                         config.eval_inner_batch_size if reptile else 0, config.transductive)


def inner_loop(config: Config, problem: str, shots: float, inner_lr: float,
               moments=None, rates: Optional[LearnedRates] = None,
               step_params: Optional[StepParams] = None) -> algorithms.InnerLoop:
    """The one place that chooses how a run adapts a task outside its meta-gradient (validation,
    evaluation, `MetaModel`, the SavedModel): its algorithm's loss, optimizer and batches, and
    its learned step sizes if it has them (`inner_lr` is then unused) and per-step batch norm."""
    s = adapt_settings(config)
    return algorithms.InnerLoop(loss_for(problem, shots, config.algorithm), inner_lr, s.optimizer,
                                s.batch_size, moments if s.optimizer else None, rates, step_params)


def loss_for(problem: str, shots: float, algorithm: str):
    """The one place that picks a run's inner loss (training, evaluation and `MetaModel` call it;
    `algorithm` has no default, so no caller can fall back to MAML's loss for a Reptile run).

    MSE for regression; for classification MAML's cross-entropy summed and divided by K (as
    the original) and Reptile's summed cross-entropy of the batch (as its paper's code), so a
    Reptile step means the same at training and evaluation whatever their K."""
    if problem == "regression":
        return metrics.mse
    return metrics.summed_xent if algorithm == "reptile" else metrics.make_xent_over_k(shots)
