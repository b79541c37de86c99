"""`train(config, workdir)`: the RL outer loop (sample, adapt, sample, TRPO), logging, validation, checkpoints."""

import glob
import os
import shutil
from typing import Dict

import numpy as np

from maml_tf.experiment import identity
from maml_tf.experiment.checkpoints import Checkpointer
from maml_tf.rl import env, policy, trpo
from maml_tf.rl.agent import Agent
from maml_tf.rl.config import IDENTITY_FIELDS, RLConfig
from maml_tf.experiment.runinfo import SegmentLog
from maml_tf.experiment.progress import ProgressLog, trim_history
from maml_tf.experiment.rundir import append_jsonl

VAL_STREAM, TEST_STREAM = 1, 0  # the validation and test goals come from separate RNG streams
MILESTONE = 100  # every 100th checkpoint is also copied to archive/, out of the manager's rotation


def check_same_run(config: RLConfig, workdir: str):
    """Refuses to resume a run directory that holds a run with other defining settings."""
    identity.check(workdir, identity.as_dict(config), IDENTITY_FIELDS, write=config.to_json())


def checkpointer(workdir: str, agent: Agent, keep: int = 3) -> Checkpointer:
    return Checkpointer(workdir, {"model": agent.model}, keep)  # TRPO keeps no optimizer state


def archive(path: str, workdir: str):
    """Copies a checkpoint's files into workdir/archive/, so evaluating an earlier iteration stays possible."""
    os.makedirs(os.path.join(workdir, "archive"), exist_ok=True)
    for file in glob.glob(path + ".*"):
        shutil.copy(file, os.path.join(workdir, "archive"))


def meta_iteration(agent: Agent, objective: trpo.MetaObjective, iteration: int,
                   inner_steps: int) -> Dict[str, float]:
    """Samples a meta-batch of goals, adapts (unless pretraining), samples again, one TRPO step."""
    c = agent.config
    rng = np.random.default_rng([c.seed, iteration])  # a resumed run sees the same samples
    goals = env.sample_goals(rng, c.meta_batch_size)
    weights = agent.weights()
    stacked = policy.tile_weights(weights, c.meta_batch_size)
    metrics, inner = {}, ()
    if inner_steps:
        first = agent.sample(stacked, goals, rng)
        inner = first.batch
        metrics["pre_return"] = float(first.trajectories.rewards.sum(-1).mean())
        stacked = agent.adapt(stacked, inner, c.inner_lr)
    outer = agent.sample(stacked, goals, rng)
    metrics["post_return" if inner_steps else "return"] = float(
        outer.trajectories.rewards.sum(-1).mean())
    new, info = trpo.trpo_step(objective, weights, trpo.MetaBatch(inner, outer.batch), c.max_kl,
                               c.cg_iters, c.cg_damping)
    for var, value in zip(agent.learner.variables, new):
        var.assign(value)
    return {**metrics, **{k: info[k] for k in ("kl", "backtracks", "accepted", "grad_norm")}}


def validate(agent: Agent, workdir: str, iteration: int, log: ProgressLog) -> Dict:
    """Return before and after one step of size inner_lr on fixed validation goals; to validation.jsonl."""
    c = agent.config
    goals = env.sample_goals(np.random.default_rng([c.eval_seed, VAL_STREAM]), c.val_tasks)
    returns, _ = agent.adaptation_curve(agent.weights(), goals, [c.inner_lr],
                                        np.random.default_rng([c.eval_seed, VAL_STREAM, iteration]))
    row = {"iteration": iteration, "return": returns.mean(axis=0).tolist()}
    append_jsonl(os.path.join(workdir, "validation.jsonl"), row)
    log.scalars(iteration, {f"val/return_step{s}": v for s, v in enumerate(row["return"])})
    print(f"[val] iter {iteration}  return {row['return'][0]:.2f} -> {row['return'][1]:.2f} "
          "after 1 step", flush=True)
    return row


def train(config: RLConfig, workdir: str, resume: bool = True) -> Dict:
    """Pretraining iterations (TRPO, no inner step), then MAML meta-training, resuming by default.

    Writes config.json, TensorBoard events, checkpoints, validation.jsonl and runinfo.json into
    `workdir`; returns the last validation row ({} if none ran).
    """
    config.validate()
    os.makedirs(workdir, exist_ok=True)
    check_same_run(config, workdir)
    agent = Agent(config)
    ckpt = checkpointer(workdir, agent, config.keep_checkpoints)
    start = ckpt.restore_latest() if resume else 0
    if start:
        print(f"resuming {workdir} from iteration {start}", flush=True)
    trim_history(os.path.join(workdir, "validation.jsonl"), start)
    objective = trpo.MetaObjective(agent.learner, config.inner_lr, config.first_order)
    log, segments = ProgressLog(config, workdir), SegmentLog(workdir, start)
    last_val = {}
    for iteration in range(start + 1, config.total_iterations + 1):
        pretraining = iteration <= config.pretrain_iterations
        steps = 0 if pretraining else config.inner_steps
        log.add(iteration, meta_iteration(agent, objective, iteration, steps))
        if iteration % config.print_interval == 0:
            log.flush(iteration, "pretrain" if pretraining else "metatrain")
        if config.val_interval and iteration % config.val_interval == 0:
            last_val = validate(agent, workdir, iteration, log)
        if iteration % config.checkpoint_interval == 0 or iteration == config.total_iterations:
            path = ckpt.save(iteration)
            segments.update(iteration)
            if iteration % MILESTONE == 0:
                archive(path, workdir)
    return last_val
