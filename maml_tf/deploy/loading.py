"""`load(path)`: a MetaModel from a run directory (its checkpoint) or from a .keras file maml_tf wrote."""

import dataclasses
import json
import os
from typing import Optional

import keras
import tensorflow as tf

from maml_tf import layers  # noqa: F401  (registers maml_tf's layers for keras.models.load_model)
from maml_tf.datasets import module_name, miniimagenet_io, omniglot_data, own_images, sinusoid
from maml_tf.deploy.meta import MetaModel
from maml_tf.errors import UserError
from maml_tf.workdir import model_file
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.experiment.config import ALGORITHMS, Config
from maml_tf.experiment.experiment import build_model
from maml_tf.experiment.variant_parts import learned_rates, make_learner, step_variables
from maml_tf.inner_opt import AdamMoments, InnerMoments
from maml_tf.inner_rates import from_arrays
from maml_tf.per_step import from_arrays as step_params_from


class NetworkSpec:
    """What `build_model` reads from a sampler, without loading any data (`input_shape`: a
    folder run's, read from its model.keras: its images chose it, --image_size/--channels 0)."""

    def __init__(self, config: Config, input_shape=None):
        if own_images(config.dataset):
            self.problem, self.input_shape, self.output_dim = "classification", input_shape, config.ways
        elif config.dataset == "sinusoid":
            s = sinusoid.make_sampler(config)
            self.problem, self.input_shape, self.output_dim = s.problem, s.input_shape, s.output_dim
        else:
            size = omniglot_data.SIZE
            self.input_shape = (size, size, 1) if config.dataset == "omniglot" else miniimagenet_io.IMAGE_SHAPE
            self.problem, self.output_dim = "classification", config.ways


def _fits(default, value) -> bool:
    """`value` has the type of the setting whose default is `default` (None: an optional text)."""
    if default is None:
        return value is None or isinstance(value, str)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)) and not isinstance(value, bool):
        return isinstance(value, int) or isinstance(default, float) and isinstance(value, float)
    return isinstance(value, type(default))


def config_from_dict(saved: dict, where: str) -> Config:
    """The Config a run saved; UserError if it is not one (another program's, another version's,
    a damaged one)."""
    if not isinstance(saved, dict):
        raise UserError(f"{where} is not a maml_tf run's configuration (a JSON "
                        f"{type(saved).__name__}, not an object)")
    defaults = {f.name: f.default for f in dataclasses.fields(Config)}
    unknown = sorted(set(saved) - set(defaults))
    if unknown:
        raise UserError(f"{where} is not a maml_tf supervised run's configuration "
                        f"(unknown settings: {', '.join(unknown[:5])})")
    wrong = [f"{k}={v!r}" for k, v in saved.items() if not _fits(defaults[k], v)]
    if wrong:
        raise UserError(f"{where} is damaged: settings of the wrong type: {', '.join(wrong[:5])}")
    config = Config(**saved)
    # Not Config.validate(): it checks the training data is present, which a user need not have.
    try:
        module_name(config.dataset)
    except UserError:
        raise UserError(f"{where}: unknown dataset {config.dataset!r}") from None
    if config.algorithm not in ALGORITHMS:
        raise UserError(f"{where}: unknown algorithm {config.algorithm!r}")
    return config


def load(path: str, iteration: Optional[int] = None) -> MetaModel:
    """A meta-learned model ready to `adapt` / `predict`.

    `path`: a run directory (its newest checkpoint, or that of `iteration`), or a `.keras` file
    written by maml_tf (a run's `model.keras`). The adaptation settings are the run's own.
    """
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        return _load_run(path, iteration)
    if os.path.isfile(path) and path.endswith(".keras"):
        if iteration is not None:
            raise UserError(f"{path} holds one model; `iteration` is for run directories")
        return _load_keras(path)
    raise UserError(f"{path} is neither a run directory nor a .keras file")


def _load_run(workdir: str, iteration: Optional[int]) -> MetaModel:
    path = os.path.join(workdir, "config.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{workdir} is not a run directory (no config.json)") from None
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    config = config_from_dict(saved, path)
    model = build_model(config, NetworkSpec(config, _folder_input_shape(config, workdir)))
    state = {"model": model}
    if config.algorithm == "reptile" and config.inner_optimizer == "adam":
        state["inner_moments"] = InnerMoments(model.trainable_variables)
    learner = make_learner(config, model)
    rates = learned_rates(config, learner)  # Meta-SGD / LSLR (else None)
    params = step_variables(config, learner)  # MAML++'s BNWB (else None)
    state.update({k: v for k, v in (("inner_rates", rates), ("step_params", params))
                  if v is not None})
    restored = Checkpointer(workdir, state).restore_iteration(iteration)
    moments = state["inner_moments"].read() if "inner_moments" in state else None
    return MetaModel(model, config, moments, restored,
                     rates.read() if rates is not None else None,
                     params.read() if params is not None else None)


def _folder_input_shape(config: Config, workdir: str):
    """A folder run's input shape, from the model.keras it wrote (None for other datasets): a
    shape guessed from the settings would load only the weights that fit, a wrong model."""
    if not own_images(config.dataset):
        return None
    path = os.path.join(workdir, "model.keras")
    if not os.path.isfile(path):
        raise UserError(f"{workdir} is a folder run without its model.keras (written with its first "
                        "checkpoint), which holds its input shape: train it, or load a .keras file")
    return tuple(_load_keras(path).model.input_shape[1:])


def _load_keras(path: str) -> MetaModel:
    extras = model_file.read_extras(path)
    config = config_from_dict(extras.config, path)
    try:
        model = keras.models.load_model(path, compile=False)
    except (ValueError, OSError, TypeError) as err:
        raise UserError(f"cannot load the Keras model in {path}: {str(err).splitlines()[0]}") from None
    moments = None
    if extras.moments is not None:
        shapes = [tuple(v.shape) for v in model.trainable_variables]
        if [tuple(v.shape) for v in extras.moments] != shapes:
            raise UserError(f"{path} is damaged: its inner Adam moments do not match the "
                            "network's weights")
        moments = AdamMoments([tf.constant(v) for v in extras.moments],
                              tf.constant(extras.moments_step, tf.float32))
    if (extras.rates is not None) != (config.learned_inner_lr != "none"):
        raise UserError(f"{path} is damaged: its learned step sizes do not match its settings")
    if (extras.step_params is not None) != config.per_step_bn_weights:
        raise UserError(f"{path} is damaged: its per-step batch-norm parameters do not match its settings")
    rates = from_arrays(extras.rates, config.learned_inner_lr) if extras.rates is not None else None
    params = step_params_from(extras.step_params) if extras.step_params is not None else None
    return MetaModel(model, config, moments, extras.iteration, rates, params)
