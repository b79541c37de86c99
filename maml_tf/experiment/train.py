"""`train_and_evaluate(config, workdir)`: the outer loop, logging, meta-validation and checkpoints."""

import json
import os
from typing import Dict, Optional

import keras

from maml_tf.errors import UserError
from maml_tf.experiment import distribute, evaluate
from maml_tf.experiment.checkpoints import Checkpointer
from maml_tf.experiment.config import IDENTITY_FIELDS, Config
from maml_tf.experiment.experiment import Experiment, task_batches
from maml_tf.experiment.progress import ProgressLog, trim_history
from maml_tf.experiment.runinfo import SegmentLog


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


def train_and_evaluate(config: Config, workdir: str, resume: bool = True,
                       model: Optional[keras.Model] = None) -> Dict:
    """Trains (pretraining, then meta-training) to `config.total_iterations`, resuming by default.

    `model`: a user's own built Keras model to meta-learn instead of the paper's network for
    `config` (its inputs and outputs must fit the data set; the config's network fields are
    then ignored, and config.json cannot tell two such models apart).

    Writes config.json, TensorBoard events, checkpoints and validation.jsonl into `workdir`;
    returns the last meta-validation result (or {} if none ran). Under multi_worker only the
    chief writes there and validates; the other workers restore from `workdir` (TF's rule).
    """
    config.validate()
    exp = Experiment(config, model=model)  # loads the data first: a run that cannot start leaves no directory
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
