"""`train(config, workdir)`: the RL outer loop (sample, adapt, sample, TRPO), logging, validation, checkpoints."""

import dataclasses
import glob
import os
import shutil
from typing import Dict

import numpy as np

from maml_tf.experiment import loop
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.rl import env, policy, trpo
from maml_tf.rl.agent import Agent
from maml_tf.errors import UserError
from maml_tf.rl.config import IDENTITY_FIELDS, RLConfig
from maml_tf.workdir.runinfo import SegmentLog
from maml_tf.experiment.progress import ProgressLog
from maml_tf.workdir.rundir import append_jsonl

VAL_STREAM, TEST_STREAM = 1, 0  # the validation and test goals come from separate RNG streams
MILESTONE = 100  # every 100th checkpoint is also copied to archive/, out of the manager's rotation


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
    for var, value in zip(agent.learner.trainable_variables, new):
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


def train(config: RLConfig, workdir: str) -> Dict:
    """Pretraining iterations (TRPO, no inner step), then MAML meta-training, resuming unless
    `config.resume` is False, through the one training loop (its lock, interrupts and atomic files).

    Writes config.json, TensorBoard events, checkpoints, validation.jsonl and runinfo.json into
    `workdir`; returns the last validation row ({} if none ran).
    """
    config.validate()
    if not config.total_iterations:
        raise UserError("nothing to train: --metatrain_iterations=0 and --pretrain_iterations=0 "
                        "(a random policy is evaluated with --train=False)")
    restore = (lambda: loop.restore_stored(config, workdir, IDENTITY_FIELDS)) if config.resume else None
    with loop.session(workdir, config, IDENTITY_FIELDS, prepare=restore) as stop:
        steps = NavigationTraining(config, workdir, config.resume)
        loop.run(steps, steps.start, config.total_iterations, config.checkpoint_interval,
                 config.print_interval, steps.log, stop, steps.ckpt.directory)
        return steps.last_val


class NavigationTraining:
    """RL meta-training's part of the one loop (`loop.run`): sample, adapt, sample, TRPO."""

    def __init__(self, config: RLConfig, workdir: str, resume: bool):
        self.config, self.workdir, self.agent = config, workdir, Agent(config)
        self.ckpt = checkpointer(workdir, self.agent, config.keep_checkpoints)
        self.start = loop.resume_point(self.ckpt, workdir, resume, workdir)
        self.objective = trpo.MetaObjective(self.agent.learner, config.inner_lr, config.first_order)
        self.log = ProgressLog(config, workdir, steps="the trust region (--max_kl) or --update_lr")
        self.segments = SegmentLog(workdir, self.start, settings=dataclasses.asdict(config))
        self.last_val = {}

    def phase(self, iteration: int) -> str:
        return "pretrain" if iteration <= self.config.pretrain_iterations else "metatrain"

    def step(self, iteration: int):
        steps = 0 if self.phase(iteration) == "pretrain" else self.config.inner_steps
        return meta_iteration(self.agent, self.objective, iteration, steps)

    def after(self, iteration: int) -> bool:
        if self.config.val_interval and iteration % self.config.val_interval == 0:
            self.last_val = validate(self.agent, self.workdir, iteration, self.log)
        return False

    def save(self, iteration: int) -> str:
        path = self.ckpt.save(iteration)
        self.segments.update(iteration)
        if iteration % MILESTONE == 0:
            archive(path, self.workdir)
        return self.ckpt.directory
