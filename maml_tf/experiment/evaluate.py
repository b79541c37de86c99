"""Fixed-seed evaluation over many tasks: metrics before and after each inner step, mean ± 95% CI."""

import csv
import io
import json
import os
from typing import Dict, Optional, Sequence

import numpy as np

from maml_tf import datasets
from maml_tf.errors import UserError
from maml_tf.experiment import recorded, variant_config
from maml_tf.workdir import class_record, identity, model_file, rundir, snapshot
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.experiment.config import Config
from maml_tf.experiment.run_id import evaluation_fields
from maml_tf.experiment.experiment import Experiment
from maml_tf.metrics import mean_and_ci95
from maml_tf.types import Task

STATS = ("mean", "std", "ci95", "median", "nonfinite")


def sample_tasks(sampler, split: str, count: int, shots: int, queries: int, seed: int,
                 first: int = 0) -> Task:
    """Tasks first..first+count-1, task i drawn from its own RNG (seed, i): the same tasks for
    every model and every evaluation batch size."""
    tasks = [sampler.sample(split, 1, shots, queries, np.random.default_rng([seed, i]))
             for i in range(first, first + count)]
    return Task(*[np.concatenate(parts) for parts in zip(*tasks)])


def evaluate_learner(exp, split: str, num_tasks: int, shots: int, queries: int, inner_lr: float,
                     steps: int, seed: int, record_steps: Optional[Sequence[int]] = None
                     ) -> Dict[str, Dict]:
    """{metric: {"mean", "std", "ci95": arrays over the recorded inner steps, "n"}} on `num_tasks`
    tasks; `record_steps` (None: every step 0..steps) in increasing order, as `exp.curve_fn`'s."""
    curve = exp.curve_fn(shots, queries, inner_lr, steps, record_steps)
    batch = exp.config.eval_batch_size
    parts = []
    for first in range(0, num_tasks, batch):
        tasks = sample_tasks(exp.sampler, split, min(batch, num_tasks - first), shots, queries,
                             seed, first)
        parts.append({k: v.numpy() for k, v in curve(tasks).items()})
    return {k: mean_and_ci95(np.concatenate([p[k] for p in parts])) for k in parts[0]}


def evaluate_checkpoint(config, workdir: str, model=None) -> Dict:
    """Restores a checkpoint (`config.test_iter`, -1 the newest; `config.test_best`: the
    best-validation model), evaluates
    `config.eval_tasks` tasks of `config.eval_split` with the evaluation K / step size / steps,
    and writes CSV + JSON. `model`: the user's Keras model the run was trained with (None: the
    paper's network)."""
    config.validate()
    for line in variant_config.notices(config):
        rundir.warn(line, once=True)
    out = config.eval_dir or workdir
    _check_output(config, out)
    datasets.check_task_sizes(config, [(config.eval_split, config.eval_shots, config.eval_queries)])
    exp, restored = _restore(config, workdir, model)
    stem = _stem(config, out, restored)
    kept = rundir.check_replacing(stem, defining(config, workdir))  # before the work, not after it
    steps = recorded.eval_steps(config.eval_inner_steps, config.eval_record_steps)
    stats = evaluate_learner(exp, config.eval_split, config.eval_tasks, config.eval_shots,
                             config.eval_queries, config.eval_inner_lr, config.eval_inner_steps,
                             config.eval_seed, steps)
    result = {
        "dataset": config.dataset, "split": config.eval_split, "iteration": restored,
        "num_tasks": config.eval_tasks, "ways": config.ways, "shots": config.eval_shots,
        "queries": config.eval_queries, "inner_lr": config.eval_inner_lr,
        "steps": steps, **defining(config, workdir),
        "algorithm": config.algorithm, "transductive": config.transductive,
        "checkpoint": "best-validation" if config.test_best
        else "newest" if config.test_iter in (None, -1) else "chosen",
        "metrics": {k: {s: np.asarray(v[s]).tolist() for s in STATS} for k, v in stats.items()},
    }
    os.makedirs(out, exist_ok=True)
    print_summary(result)  # first: the numbers are not lost if writing them fails
    if kept:
        print(f"replacing {stem}.json ({kept})", flush=True)
    write_result(stem, result)
    return result


def _check_output(config, out: str):
    """UserError (before the work, not after it) if the evaluation cannot be written to `out`."""
    try:
        rundir.check_writable(out, "--eval_dir" if config.eval_dir else "--logdir")
    except UserError as err:
        hint = "" if config.eval_dir else "; give --eval_dir=DIR to write the evaluation elsewhere"
        raise UserError(f"{err}{hint}") from None


def _restore(config, workdir: str, model):
    """(experiment, iteration): the run's checkpoint (`test_iter` or `test_best`) restored, once
    its directory is known to hold this run (its settings and class split)."""
    exp = Experiment(config.replace(strategy="default"), model=model)  # not distributed
    fields = evaluation_fields(config)
    stored = snapshot.restore(config.run_store, workdir, identity.as_dict(config), fields, "evaluate")
    if stored:
        print(f"evaluating the stored state of the run, {stored}", flush=True)
    identity.check(workdir, identity.as_dict(config), fields, "evaluate")
    class_record.check(workdir, datasets.class_names_by_split(config, exp.sampler), "evaluate")
    ckpt = Checkpointer(workdir, exp.state())
    restored = ckpt.restore_best() if config.test_best else ckpt.restore_iteration(config.test_iter)
    if config.test_best and not config.eval_dir:
        _write_missing_best_model(exp, workdir, restored)
    return exp, restored


def _stem(config, out: str, iteration: int) -> str:
    """The result's path without .json/.csv. Reports read eval_<split>_* as the newest model's
    and eval_best_* as the best-validation one's; other tasks than every model's get their own
    file (`tasks_suffix`)."""
    prefix = "eval_best_" if config.test_best else "eval_"
    return os.path.join(out, prefix + f"{config.eval_split}_shots{config.eval_shots}"
                        f"_lr{config.eval_inner_lr:g}_iter{iteration}{tasks_suffix(config)}"
                        + ("" if config.transductive else "_nontransductive"))


def tasks_suffix(config) -> str:
    """'' for the tasks every model is tested on (the default --eval_seed, K queries per class
    as the original code tests; Reptile's own count), else `_seed<S>` for another seed and
    `_queries<Q>` for another query count (--num_query): the reports read only the former."""
    seed = "" if config.eval_seed == Config.eval_seed else f"_seed{config.eval_seed}"
    # Reptile's evaluation keeps its run's count (run_id.evaluation_fields): never another.
    own = config.eval_queries == config.eval_shots or config.algorithm == "reptile"
    return seed + ("" if own else f"_queries{config.eval_queries}")


def defining(config, workdir: str) -> Dict:
    """What makes two evaluations under one file name different ones, beside the name's own K,
    step size, iteration, seed and mode (tasks and steps only refine one evaluation)."""
    run = {"run": os.path.basename(os.path.normpath(workdir))}
    if config.eval_dir:  # shared by runs of one name in several --logdirs: the whole path tells them apart
        run["run_dir"] = os.path.realpath(workdir)
    return {"eval_seed": config.eval_seed, "queries": config.eval_queries,
            "eval_inner_batch_size": config.eval_inner_batch_size, **run}


def _write_missing_best_model(exp, workdir: str, iteration: int):
    """A run moved between machines before it finished was stored without its best.keras: the
    best checkpoint, just restored into `exp`, gives it back."""
    path = os.path.join(workdir, model_file.BEST_MODEL_FILE)
    if not os.path.exists(path):  # with the run's settings, not this evaluation's (its K, steps)
        trained = identity.saved_settings(workdir, evaluation_fields(exp.config))
        model_file.save_run_model(exp, workdir, iteration, model_file.BEST_MODEL_FILE,
                                  json.dumps(trained, indent=2, sort_keys=True) if trained else None)
        print(f"wrote {path}, the best-validation model, which the run lacked", flush=True)


def print_summary(result: Dict):
    """One line per metric: mean ± 95% CI before adaptation and after each step."""
    one = result["num_tasks"] == 1  # a single task has no interval: ±0 would claim certainty
    print(f"{result['dataset']} {result['split']}: {result['num_tasks']} tasks, K={result['shots']}, "
          f"checkpoint {result['iteration']}{' (one task: no interval)' if one else ''}", flush=True)
    steps = result["steps"]
    # Every step up to 10, then every 10th and the last: a 50-step Reptile curve stays readable.
    shown = [i for i, s in enumerate(steps) if s <= 10 or s % 10 == 0 or s == steps[-1]]
    for name, m in sorted(result["metrics"].items()):
        cells = "  ".join(f"{steps[i]}: {m['mean'][i]:.4g}" + ("" if one else f"±{m['ci95'][i]:.2g}")
                          for i in shown)
        print(f"  {name} after step  {cells}", flush=True)


def write_result(stem: str, result: Dict):
    """`stem`.json with everything; `stem`.csv with one row per inner step (each atomically)."""
    names = sorted(result["metrics"])
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["step"] + [f"{n}_{s}" for n in names for s in STATS])
    for i, step in enumerate(result["steps"]):
        writer.writerow([step] + [result["metrics"][n][s][i] for n in names for s in STATS])
    try:
        rundir.write_atomic(stem + ".json", json.dumps(result, indent=2))
        rundir.write_atomic(stem + ".csv", table.getvalue())
    except OSError as err:
        raise UserError(f"cannot write {stem}.json/.csv ({err.strerror}); the numbers are above") from None
    print(f"wrote {stem}.json and .csv", flush=True)
