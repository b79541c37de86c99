"""`load(path)`: a MetaModel from a run directory (its checkpoint) or from a .keras file maml_tf wrote."""

import dataclasses
import os
from typing import Optional

import keras
import tensorflow as tf

from maml_tf import layers  # noqa: F401  (registers maml_tf's layers for keras.models.load_model)
from maml_tf.datasets import module_name, miniimagenet_io, omniglot_data, own_images, sinusoid
from maml_tf.deploy.meta import MetaModel, problem_of
from maml_tf.errors import UserError
from maml_tf.workdir import ckpt_index, identity, model_file
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


def _run_settings(workdir: str):
    """The run's settings as training and evaluation read them (identity.saved_settings: its
    config.json, else, damaged, the copy beside the checkpoints); one UserError if none is readable."""
    path = os.path.join(workdir, identity.CONFIG_FILE)
    if not os.path.exists(path):
        raise UserError(f"{workdir} is not a run directory (no config.json)")
    saved = identity.saved_settings(workdir, ("dataset",))
    if saved is None:
        raise UserError(f"cannot read {path}: damaged, and no readable copy beside the checkpoints")
    return saved


def _load_run(workdir: str, iteration: Optional[int]) -> MetaModel:
    config = config_from_dict(_run_settings(workdir), os.path.join(workdir, identity.CONFIG_FILE))
    if config.baseline != "none":  # its checkpoints hold a classifier over every training class
        raise UserError(f"{workdir} is a transfer baseline's pretraining (--baseline="
                        f"{config.baseline}), not a meta-learned model: evaluate it with "
                        "python -m maml_tf.main --baseline=... --train=False")
    model = _run_network(config, workdir)
    state = {"model": model}
    if config.algorithm == "reptile" and config.inner_optimizer == "adam":
        state["inner_moments"] = InnerMoments(model.trainable_variables)
    learner = make_learner(config, model)
    rates = learned_rates(config, learner, problem_of(config))  # Meta-SGD / LSLR (else None)
    params = step_variables(config, learner)  # MAML++'s BNWB (else None)
    state.update({k: v for k, v in (("inner_rates", rates), ("step_params", params))
                  if v is not None})
    _check_network(model, workdir, iteration)
    restored = Checkpointer(workdir, state).restore_iteration(iteration)
    moments = state["inner_moments"].read() if "inner_moments" in state else None
    return MetaModel(model, config, moments, restored,
                     rates.read() if rates is not None else None,
                     params.read() if params is not None else None)


def _run_network(config: Config, workdir: str) -> keras.Model:
    """The run's network, its weights to come from the checkpoint: the architecture of the
    model.keras the run wrote (the paper's network for its settings, or the user's own Keras
    model it was meta-trained with), else the paper's network rebuilt from the settings."""
    path = os.path.join(workdir, "model.keras")
    if os.path.isfile(path):
        try:
            return _load_keras(path).model
        except UserError:
            if own_images(config.dataset):
                raise
            # damaged: the paper's network rebuilt, which _check_network holds to the checkpoints
    elif own_images(config.dataset):  # its input shape came from its images
        raise UserError(f"{workdir} is a folder run without its model.keras (written with its first "
                        "checkpoint), which holds its input shape: train it, or load a .keras file")
    return build_model(config, NetworkSpec(config))


def _check_network(model: keras.Model, workdir: str, iteration: Optional[int]):
    """UserError if the checkpoint to load holds another network than `model` (a run of a user's
    own model whose model.keras is gone: the paper's network rebuilt would load untrained)."""
    found = ckpt_index.on_disk(os.path.join(workdir, "checkpoints"))
    found = [p for p in found if iteration is None or p.endswith(f"ckpt-{iteration}")]
    if not found:
        return  # the restore says what is missing
    try:
        status = tf.train.Checkpoint(model=model).restore(found[-1]).expect_partial()
        status.assert_existing_objects_matched()  # the model's weights: every one of them
    except (AssertionError, ValueError) as err:
        if isinstance(err, ValueError) and "incompatible" not in str(err):
            return  # a damaged file: the restore falls back to an older one and says so
        raise UserError(f"the checkpoints of {workdir} hold another network than its settings "
                        "build (a run of your own Keras model without its model.keras): load the "
                        "model.keras it wrote, or rebuild your model and restore them into it") from None
    except Exception:  # noqa: BLE001  (any other damage: left to the restore, as above)
        return


def _check_learned(path: str, config: Config, model: keras.Model, extras):
    """UserError unless the file's learned step sizes and per-step batch-norm parameters are
    those its settings give the network, in shape (a wrong one failed inside the inner loop
    with a traceback, or an extra step's rate went unread)."""
    learner = make_learner(config, model)
    shapes = lambda arrays: [None if a is None else tuple(a.shape) for a in arrays]  # noqa: E731
    for found, expected, what in (
            (extras.rates, learned_rates(config, learner, problem_of(config)), "learned step sizes"),
            (extras.step_params, step_variables(config, learner), "per-step batch-norm parameters")):
        if (found is None) != (expected is None):
            raise UserError(f"{path} is damaged: its {what} do not match its settings")
        if found is not None and shapes(found) != shapes(expected.arrays()):
            raise UserError(f"{path} is damaged: its {what} do not match the network's weights")


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
    _check_learned(path, config, model, extras)
    rates = from_arrays(extras.rates, config.learned_inner_lr) if extras.rates is not None else None
    params = step_params_from(extras.step_params) if extras.step_params is not None else None
    return MetaModel(model, config, moments, extras.iteration, rates, params)
