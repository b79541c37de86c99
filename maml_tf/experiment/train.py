"""`train_and_evaluate(config, workdir)`: the outer loop, logging, meta-validation and checkpoints."""

import dataclasses
import os
import time
from typing import Dict, List, Optional, Tuple

import keras

from maml_tf import datasets
from maml_tf.errors import UserError
from maml_tf.experiment import distribute, evaluate, loop, recorded, variant_config
from maml_tf.workdir import class_record, identity, model_file, rundir
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.experiment.config import Config
from maml_tf.experiment.run_id import identity_fields
from maml_tf.experiment.experiment import Experiment, task_batches
from maml_tf.workdir.interrupts import Interrupts
from maml_tf.experiment.progress import ProgressLog
from maml_tf.workdir.runinfo import SegmentLog
from maml_tf.workdir.selection import ModelSelection, score


def train_and_evaluate(config: Config, workdir: str, model: Optional[keras.Model] = None) -> Dict:
    """Trains (pretraining, then meta-training) to `config.total_iterations`, resuming from the
    newest checkpoint unless `config.resume` is False.

    `model`: a user's own built Keras model to meta-learn instead of the paper's network for
    `config` (its inputs and outputs must fit the data set; the config's network fields are
    then ignored, and config.json cannot tell two such models apart).

    Writes config.json, TensorBoard events, checkpoints and validation.jsonl into `workdir`;
    returns the last meta-validation result (or {} if none ran). Under multi_worker only the
    chief writes there and validates; the other workers restore from `workdir` (TF's rule).
    SIGINT/SIGTERM stop it after the current iteration and a checkpoint (`Interrupted`).
    """
    config.validate()
    for line in variant_config.notices(config):
        rundir.warn(line, once=True)
    if not config.total_iterations:
        raise UserError("nothing to train: --metatrain_iterations=0 and --pretrain_iterations=0 "
                        "(the pretrained baseline: --pretrain_iterations=N --metatrain_iterations=0)")
    rundir.check_writable(workdir)
    fields = identity_fields(config)
    identity.check(workdir, identity.as_dict(config), fields)  # before the data loads: quick
    datasets.check_task_sizes(config, tasks_read(config))  # not at the first validation
    exp = Experiment(config, model=model)  # the data first: a run that cannot start leaves no directory
    with distribute.write_dir(exp.strategy, workdir) as outdir:
        chief = outdir == workdir
        restore = (lambda: loop.restore_stored(config, workdir, fields)) if chief and config.resume else None
        with loop.session(outdir, config, fields, lock=chief, prepare=restore) as stop:
            return _train(exp, workdir, outdir, config.resume, stop)


def _train(exp: Experiment, workdir: str, outdir: str, resume: bool, stop: Interrupts) -> Dict:
    config, chief = exp.config, outdir == workdir
    ckpt, start = _open(exp, workdir, outdir, resume, chief)
    history = rundir.read_jsonl(os.path.join(outdir, "validation.jsonl"))
    _check_best_recorded(ckpt.best_iteration(), history, start, outdir)
    selection = ModelSelection(history, config.patience)
    if selection.exhausted(start):
        print(f"{workdir} stopped early at iteration {start}: meta-validation has not improved "
              f"since iteration {selection.best_iteration}", flush=True)
        return {}
    t0 = time.time()
    steps = MetaTraining(exp, ckpt, selection, start, outdir, chief, stop)
    iteration = loop.run(steps, start, config.total_iterations, config.checkpoint_interval,
                         config.print_interval, steps.log, stop, ckpt.directory)
    if stop.signum:  # arrived while a finished run started up: it stays finished
        raise stop.stop(f"the run had already finished at iteration {iteration}")
    summary(config, workdir, start, iteration, time.time() - t0)
    return steps.last_val


def _open(exp: Experiment, workdir: str, outdir: str, resume: bool, chief: bool):
    """(Checkpointer, start iteration): the run directory restored (from the run store if it has
    no checkpoint) and its histories cut back to the checkpoint it resumes from."""
    config = exp.config
    data = datasets.class_names_by_split(config, exp.sampler)
    if chief:
        class_record.check_before_restore(outdir, data)
    ckpt = Checkpointer(outdir, exp.state(), config.keep_checkpoints, restore_from=workdir)
    start = loop.resume_point(ckpt, outdir, resume, workdir)
    if chief:  # checked above if it resumed (a folder that gained a class would split differently)
        class_record.record(outdir, data)
    replicas = exp.strategy.num_replicas_in_sync
    if replicas > 1:
        print(f"{config.strategy}: {replicas} replicas, {config.meta_batch_size // replicas} tasks "
              f"each{'' if chief else ' (not the chief: writes nothing)'}", flush=True)
    return ckpt, start


def _check_best_recorded(best: Optional[int], history: List[Dict], start: int, outdir: str):
    """UserError if the kept best model's validation is not in validation.jsonl: model selection
    would start blind and replace it with the next, maybe worse, model. (A best kept after the
    checkpoint resumed from is redone, and so chosen again on its score.)"""
    if best is not None and best <= start and all(r.get("iteration") != best for r in history):
        raise UserError(f"{outdir}/validation.jsonl has no record of the best model's validation "
                        f"(iteration {best}, in checkpoints/best), so the next validation would "
                        "replace it whatever its score: put validation.jsonl back, or move "
                        "checkpoints/best away to let validation choose again")


class MetaTraining:
    """Meta-training's part of the one loop (`loop.run`): its compiled steps, meta-validation,
    model selection and checkpoints."""

    def __init__(self, exp: Experiment, ckpt: Checkpointer, selection: ModelSelection,
                 start: int, outdir: str, chief: bool, stop: Interrupts):
        c = self.config = exp.config
        self.exp, self.ckpt, self.selection, self.outdir, self.chief = exp, ckpt, selection, outdir, chief
        self.stop = stop
        self.train_steps = {0: exp.make_train_step(0), c.inner_steps: exp.make_train_step(c.inner_steps)}
        self.log = ProgressLog(c, outdir, good_checkpoint=ckpt.describe_newest)
        self.segments = SegmentLog(outdir, start, settings=dataclasses.asdict(c))
        self.batches = task_batches(exp.sampler, "train", c.meta_batch_size, c.shots, c.queries,
                                    c.seed, start)
        self.last_val = {}
        self.need_best = ckpt.best_iteration() is None  # a resumed run lacking one keeps its next

    def phase(self, iteration: int) -> str:
        return "pretrain" if iteration <= self.config.pretrain_iterations else "metatrain"

    def step(self, iteration: int):
        inner = 0 if self.phase(iteration) == "pretrain" else self.config.inner_steps
        return self.train_steps[inner](next(self.batches))

    def after(self, iteration: int) -> bool:
        c, selection = self.config, self.selection
        if self.chief and c.val_interval and iteration % c.val_interval == 0:
            self.last_val = validate(self.exp, self.outdir, iteration, self.log)
            better = selection.offer(self.last_val)
            _print_selection(iteration, self.last_val, selection, better)
            if better or self.need_best:
                self.ckpt.save_best(iteration)
                model_file.save_run_model(self.exp, self.outdir, iteration, model_file.BEST_MODEL_FILE)
                self.need_best = False
        early = selection.exhausted(iteration)
        if early:
            print(f"stopping early at iteration {iteration}: meta-validation has not improved for "
                  f"{c.patience} iterations (best at {selection.best_iteration})", flush=True)
        return early

    def save(self, iteration: int) -> str:
        _save(self.exp, self.ckpt, self.segments, iteration, self.stop,
              self.outdir if self.chief else None)
        return self.ckpt.directory


def _print_selection(iteration: int, row: Dict, selection: ModelSelection, better: bool):
    """The score model selection reads (after the last step; `validate` prints training's)."""
    print(f"[val] iter {iteration}  selection score (after {row['steps'][-1]} steps) "
          f"{score(row):.4g}{'  new best' if better else ''}  best {selection.best_score:.4g} "
          f"at {selection.best_iteration}", flush=True)


def _save(exp, ckpt: Checkpointer, segments: SegmentLog, iteration: int, stop: Interrupts,
          model_dir: Optional[str]):
    """A checkpoint, the run's model.keras beside it (`model_dir`: the chief's), the runinfo."""
    if stop.signum and distribute.workers(exp.strategy) > 1 and \
            iteration % exp.config.checkpoint_interval:
        # All workers save together; a signal reaches one of them: it cannot save alone.
        raise stop.stop(f"stopped at iteration {iteration} without saving (multi_worker saves "
                        "only on schedule); run the same commands to resume from the last checkpoint")
    ckpt.save(iteration)
    if model_dir:  # the same weights for keras.models.load_model / maml_tf.load
        model_file.save_run_model(exp, model_dir, iteration)
    segments.update(iteration)


def summary(config: Config, workdir: str, start: int, end: int, seconds: float):
    """The lines a finished run ends with: where it is, what it did, how it validated."""
    print(f"done: {end} iterations in {workdir} (this segment {start} -> {end}, {seconds:.0f} s)",
          flush=True)
    rows = rundir.read_jsonl(os.path.join(workdir, "validation.jsonl"))
    if rows:
        row, post = rows[-1], _post_step(config)
        steps = recorded.steps_of(row, len(row["loss"]))
        shown = "  ".join(f"{k} {recorded.at_step(v, steps, 0):.4g} -> "
                          f"{recorded.at_step(v, steps, post):.4g} ({v[-1]:.4g} after {steps[-1]})"
                          for k, v in row.items() if k not in ("iteration", "steps"))
        print(f"last meta-validation (iteration {row['iteration']}, {config.val_tasks} tasks, "
              f"before -> after {post} step{'s' * (post > 1)}): {shown}", flush=True)


def _post_step(c: Config) -> int:
    """The inner step validation reports as 'after adaptation': as many as in training."""
    return min(max(c.inner_steps, 1), c.eval_inner_steps)


def validation_setting(c: Config) -> Tuple[int, int, float]:
    """(shots, queries, inner_lr) of meta-validation. MAML validates with its training K (as the
    original); Reptile's train shots are only a training-time data setting, so it validates as
    it is evaluated."""
    return ((c.eval_shots, c.eval_queries, c.eval_inner_lr) if c.algorithm == "reptile"
            else (c.shots, c.queries, c.inner_lr))


def tasks_read(c: Config) -> List[Tuple[str, int, int]]:
    """(split, shots, queries) of the tasks training draws: meta-training's and meta-validation's."""
    tasks = [("train", c.shots, c.queries)]
    if c.val_interval and c.val_interval <= c.total_iterations:
        tasks.append(("val", *validation_setting(c)[:2]))
    return tasks


def validate(exp: Experiment, workdir: str, iteration: int, log: ProgressLog) -> Dict:
    """Meta-validation on a fixed set of validation tasks; appended to validation.jsonl."""
    c = exp.config
    shots, queries, lr = validation_setting(c)
    # Only the steps read below and by model selection (the last) are predicted.
    post = _post_step(c)
    steps = recorded.validation_steps(c.eval_inner_steps, post)
    result = evaluate.evaluate_learner(exp, "val", c.val_tasks, shots, queries, lr,
                                       c.eval_inner_steps, c.eval_seed, record_steps=steps)
    row = {"iteration": iteration, "steps": steps,
           **{k: v["mean"].tolist() for k, v in result.items()}}
    rundir.append_jsonl(os.path.join(workdir, "validation.jsonl"), row)
    at = {s: steps.index(s) for s in (0, post)}
    log.scalars(iteration, {f"val/{k}_step{s}": v["mean"][at[s]] for k, v in result.items()
                            for s in (0, post)})
    shown = "  ".join(f"{k} {v['mean'][at[0]]:.4g} -> {v['mean'][at[post]]:.4g}"
                      for k, v in result.items())
    print(f"[val] iter {iteration}  (step 0 -> {post})  {shown}", flush=True)
    return row
