"""A pretraining's network as its run directory keeps it: the class count, the best-validation model (best/) and the checkpoint an evaluation restores."""

import json
import os
from numbers import Real
from typing import Dict, Optional

import keras
import tensorflow as tf

from maml_tf import models
from maml_tf.errors import UserError
from maml_tf.experiment.config import Config
from maml_tf.workdir import ckpt_index, rundir
from maml_tf.workdir.checkpoints import Checkpointer


def pretrain_model(config: Config, input_shape, num_classes: int) -> keras.Model:
    """The dataset's MAML network with a Glorot-initialised classifier over all meta-train classes
    (Omniglot's MAML head is N(0, 1): over 4,400 classes it starts the loss at 12 instead of ln C)."""
    model = models.conv_net(input_shape, num_classes, config.num_filters, config.max_pool,
                            config.norm, seed=config.seed)
    kernel = model.layers[-1].kernel
    kernel.assign(keras.initializers.GlorotUniform(seed=config.seed)(kernel.shape))
    return model


def restore(config: Config, workdir: str, sampler, iteration: Optional[int]):
    """The pretrained network from `workdir`, the iteration restored and which checkpoint it is
    (`iteration` None/-1: the validation-chosen best/, or the newest of a run that never validated)."""
    classes = _pretrained_classes(workdir)
    model = pretrain_model(config, sampler.input_shape, classes)
    chosen = "chosen"
    if iteration is None or iteration < 0:
        chosen = _default_checkpoint(workdir)
    source = os.path.join(workdir, "best") if chosen == "best-validation" else workdir
    paths = ckpt_index.on_disk(os.path.join(source, "checkpoints"))
    target = paths[-1:] if chosen != "chosen" else [p for p in paths if p.endswith(f"-{iteration}")]
    if target and not _head_fits(target[0], classes):
        raise UserError(f"{os.path.join(workdir, 'pretrain.json')} says {classes} classes, which "
                        f"the classifier of {target[0]} does not have: one of them is damaged "
                        "(running the pretraining command again rewrites pretrain.json)")
    return model, Checkpointer(source, {"model": model}).restore_iteration(iteration), chosen


def _pretrained_classes(workdir: str) -> int:
    """The pretraining's class count, from the pretrain.json it wrote at its start."""
    path = os.path.join(workdir, "pretrain.json")
    if not os.path.exists(path):
        raise UserError(f"no pretraining in {workdir}: run it first (--train=True)")
    try:
        with open(path) as f:
            classes = json.load(f).get("classes")
    except (OSError, ValueError, AttributeError):
        classes = None
    if type(classes) is not int or classes < 2:
        raise UserError(f"{path} is damaged (no class count): run the pretraining command again "
                        "(--train=True): it rewrites the file (and trains no further once it has "
                        "reached --pretrain_iterations)")
    return classes


def _default_checkpoint(workdir: str) -> str:
    """"best-validation" (best/), or "newest" for a pretraining that never validated; a run
    that validated but lost best/ is refused rather than evaluated at another checkpoint."""
    if ckpt_index.on_disk(os.path.join(workdir, "best", "checkpoints")):
        return "best-validation"
    if rundir.read_jsonl(os.path.join(workdir, "validation.jsonl")):
        raise UserError(f"{workdir} validated its pretraining but holds no best-validation model "
                        "(best/checkpoints is missing or empty): put it back, or evaluate a "
                        "checkpoint by --test_iter=N")
    print(f"{workdir} never validated (--val_interval=0): evaluating its newest checkpoint",
          flush=True)
    return "newest"


def _head_fits(path: str, classes: int) -> bool:
    """False if the checkpoint `path` holds no [features, classes] kernel, which the network of
    `classes` classes has (one that cannot be read is left to the restore to report)."""
    try:
        shapes = [shape for _, shape in tf.train.list_variables(path)]
    except (tf.errors.OpError, ValueError):
        return True
    return any(len(shape) == 2 and shape[1] == classes for shape in shapes)


def read_best(workdir: str) -> Dict:
    """best/best.json: the validation row of the kept best model ({} before one is kept). A
    damaged or missing one beside a kept model is rebuilt from validation.jsonl, whose first
    row of the highest accuracy is the one best/ kept (a later row kept it only if higher)."""
    path = os.path.join(workdir, "best", "best.json")
    kept = ckpt_index.on_disk(os.path.join(workdir, "best", "checkpoints"))
    row = rundir.read_json(path)
    if _is_best_row(row):
        return row
    if not kept:  # no best model yet: nothing to rebuild
        return {}
    rows = [r for r in rundir.read_jsonl(os.path.join(workdir, "validation.jsonl")) if _is_best_row(r)]
    best = max(rows, key=lambda r: r["best_accuracy"], default=None)  # max: the first of ties
    if best is None or not kept[-1].endswith(f"-{best['iteration']}"):
        raise UserError(f"{path} is missing or damaged and validation.jsonl does not tell which "
                        f"model {os.path.dirname(kept[-1])} holds: move best/ away to continue "
                        "(the next validation keeps a best model again)")
    rundir.warn(f"rebuilt {path} from validation.jsonl (iteration {best['iteration']})")
    write_best(workdir, best)
    return {k: best[k] for k in ("iteration", "best_accuracy", "best_step")}


def _is_best_row(row) -> bool:
    number = lambda v, kind: isinstance(v, kind) and not isinstance(v, bool)  # noqa: E731
    return isinstance(row, dict) and number(row.get("iteration"), int) and \
        number(row.get("best_accuracy"), Real) and number(row.get("best_step"), int)


def write_best(workdir: str, row: Dict):
    rundir.write_json(os.path.join(workdir, "best", "best.json"),
                      {k: row[k] for k in ("iteration", "best_accuracy", "best_step")})
