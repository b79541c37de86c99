"""What MAML's successors add to a run's Experiment: ANIL's learner, the learned rates' and per-step parameters' variables, their meta-gradient."""

from typing import Optional

import keras

from maml_tf import algorithms, models, variants
from maml_tf.inner_rates import InnerRates
from maml_tf.per_step import StepVariables, batch_norm_mask


def make_learner(config, model: keras.Model) -> models.Learner:
    """The run's Learner: MAML's inner mask, or ANIL's (the head only)."""
    return models.Learner(model, inner_mask=variants.head_mask(model) if config.anil else None)


def learned_rates(config, learner: models.Learner, problem: str) -> Optional[InnerRates]:
    """The run's learned inner step sizes as variables (None unless --learned_inner_lr), held in
    a mean loss's units: the classification loss is N times the mean cross-entropy."""
    if config.learned_inner_lr == "none":
        return None
    return InnerRates(learner.trainable_variables, learner.inner_mask, config.learned_inner_lr,
                      config.inner_lr, config.inner_steps,
                      unit=config.ways if problem == "classification" else 1)


def step_variables(config, learner: models.Learner) -> Optional[StepVariables]:
    """MAML++'s per-step batch-norm parameters as variables (None unless --per_step_bn_weights)."""
    if not config.per_step_bn_weights:
        return None
    return StepVariables(learner.trainable_variables, batch_norm_mask(learner.model), config.inner_steps)


def meta_grads(exp, first_order: bool, multi_step_loss: bool):
    """`algorithms.maml_meta_grads` with the run's learned rates and per-step parameters (and
    MAML++'s loss weights now), read when the meta-step is traced: their current values."""
    c = exp.config
    return lambda *a, **k: algorithms.maml_meta_grads(
        *a, first_order=first_order, rates=exp.rates(), step_params=exp.step_params(),
        step_weights=variants.msl_weights(exp.optimizer.iterations, c.inner_steps,
                                          c.msl_anneal_iterations) if multi_step_loss else None,
        **k)
