"""Adaptation to new goals: average return before and after each policy-gradient step (the paper's Fig. 4)."""

import json
import os
from typing import Dict, Optional

import numpy as np

from maml_tf.errors import UserError
from maml_tf.workdir import identity, snapshot
from maml_tf.workdir.rundir import check_replacing, write_atomic
from maml_tf.metrics import mean_and_ci95
from maml_tf.rl import env
from maml_tf.rl.agent import Agent
from maml_tf.rl.config import EVALUATION_FIELDS, RLConfig
from maml_tf.rl.train import TEST_STREAM, VAL_STREAM, checkpointer

TRAJECTORY_GOALS = 4  # kept for the trajectory figure


def kind(config: RLConfig) -> str:
    if config.metatrain_iterations:
        return "maml_fo" if config.first_order else "maml"
    return "pretrained" if config.pretrain_iterations else "random"


def evaluate_agent(agent: Agent, restored: int) -> Dict:
    """Returns on config.eval_tasks goals (from eval_seed) before and after each test-time step.

    Every policy meets the same goals and the same action noise, so differences between
    MAML, pretrained and random initialisation are not sampling luck.
    """
    c = agent.config
    stream = TEST_STREAM if c.eval_split == "test" else VAL_STREAM
    goals = env.sample_goals(np.random.default_rng([c.eval_seed, stream]), c.eval_tasks)
    returns, paths = agent.adaptation_curve(agent.weights(), goals, c.eval_lrs(),
                                            np.random.default_rng([c.eval_seed, stream, 1]),
                                            keep_paths=TRAJECTORY_GOALS)
    stats = mean_and_ci95(returns)
    result = {
        "env": c.env, "kind": kind(c), "split": c.eval_split, "iteration": restored,
        "num_tasks": c.eval_tasks,
        "paths_per_step": c.paths, "step_sizes": list(c.eval_lrs()),
        "steps": list(range(len(c.eval_lrs()) + 1)), "eval_seed": c.eval_seed,
        "return": {k: np.asarray(stats[k]).tolist() for k in ("mean", "std", "ci95")},
        "per_task_return": returns.tolist(),
    }
    # positions: [steps + 1, goals, T + 1, 2], each adapted policy taking its mean action
    return result, {"goals": goals[:TRAJECTORY_GOALS], "positions": paths}


def restore(ckpt, workdir: str, iteration: Optional[int]) -> int:
    """Restores `iteration` (None or -1: the newest) from checkpoints/ or, for an older one the
    CheckpointManager has rotated out, from a copy in `workdir/archive/` (see run_experiments.sh)."""
    archived = os.path.join(workdir, "archive", f"ckpt-{iteration}")
    if iteration is not None and iteration >= 0 and os.path.exists(archived + ".index") and not any(
            p.endswith(f"ckpt-{iteration}") for p in ckpt.manager.checkpoints):
        ckpt._restore(archived)  # the Checkpointer's own error handling
        return int(ckpt.iteration.numpy())
    return ckpt.restore_iteration(iteration)


def evaluate_run(config: RLConfig, workdir: str) -> Dict:
    """Restores the run's checkpoint (`config.test_iter`, -1 the newest; none for random init),
    evaluates, writes files.

    Files: `eval_{split}_goals{N}_lr{first}-{later}_iter{I}.json` (mean/std/ci95 per step) and `.npz`
    (noise-free paths).
    """
    config.validate()
    if config.total_iterations:  # a trained policy: the run's own, evaluated on its own tasks
        stored = snapshot.restore(config.run_store, workdir, identity.as_dict(config),
                                  EVALUATION_FIELDS, "evaluate")
        if stored:
            print(f"evaluating the stored state of the run, {stored}", flush=True)
        if not os.path.isdir(workdir):
            raise UserError(f"no run in {workdir}: train it first (or is it another run directory? "
                            "an evaluation at another --update_lr gives the run's as --train_update_lr)")
        identity.check(workdir, identity.as_dict(config), EVALUATION_FIELDS, "evaluate")
    agent = Agent(config)
    restored = 0
    if config.total_iterations:
        restored = restore(checkpointer(workdir, agent), workdir, config.test_iter)
    stem = os.path.join(workdir, f"eval_{config.eval_split}_goals{config.eval_tasks}_lr"
                                 f"{config.eval_inner_lr:g}-{config.eval_later_lr:g}_iter{restored}")
    # the policy is the run's; a random one's goals and paths are this command's (no identity)
    kept = check_replacing(stem, {"eval_seed": config.eval_seed, "paths_per_step": config.paths},
                           elsewhere="")
    os.makedirs(workdir, exist_ok=True)
    result, trajectories = evaluate_agent(agent, restored)
    if kept:
        print(f"replacing {stem}.json ({kept})", flush=True)
    np.savez(stem + ".tmp.npz", **trajectories)  # the .json, written last, says both are whole
    os.replace(stem + ".tmp.npz", stem + ".npz")
    write_atomic(stem + ".json", json.dumps(result, indent=2))
    one = config.eval_tasks == 1  # one goal has no interval: ±0 would claim certainty
    shown = "  ".join(f"{m:.2f}" + ("" if one else f" ± {ci:.2f}")
                      for m, ci in zip(result["return"]["mean"], result["return"]["ci95"]))
    print(f"{result['kind']} iter {restored}, {config.eval_split} goals, return at steps "
          f"0..{result['steps'][-1]}: {shown}\nwrote {stem}.json and .npz", flush=True)
    return result
