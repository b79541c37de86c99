"""The frozen configuration of a reinforcement-learning run, in the library's vocabulary."""

import dataclasses
import json
from typing import Optional

from maml_tf.errors import UserError
from maml_tf.workdir import identity

ENVIRONMENTS = ("2dnavigation",)


@dataclasses.dataclass(frozen=True)
class RLConfig:
    """Everything that defines an RL run (defaults: the paper's 2D navigation, App. A.2)."""

    env: str = "2dnavigation"
    meta_batch_size: int = 20  # tasks (goals) per meta-update
    paths: int = 20  # trajectories sampled per task for each policy-gradient step
    horizon: int = 100
    discount: float = 0.99
    inner_lr: float = 0.1
    inner_steps: int = 1  # 1 for MAML; the pretrained baseline takes none
    eval_inner_lr: float = 0.1  # first test-time step
    eval_later_lr: float = 0.05  # every later test-time step
    eval_inner_steps: int = 3
    first_order: bool = False
    pretrain_iterations: int = 0  # TRPO on all tasks jointly, no inner step: the pretrained baseline
    metatrain_iterations: int = 500
    max_kl: float = 0.01  # TRPO's trust region
    cg_iters: int = 10
    cg_damping: float = 1e-5
    hidden: tuple = (100, 100)
    seed: int = 0
    eval_seed: int = 1234
    eval_tasks: int = 40
    eval_split: str = "test"  # "val": the validation goals (for choosing test step sizes), "test"
    val_interval: int = 25  # 1-step evaluation on val_tasks fixed goals every N iterations; 0 = off
    val_tasks: int = 40
    checkpoint_interval: int = 10
    print_interval: int = 1
    keep_checkpoints: int = 3
    log: bool = True
    # What is done with the run (main's --train/--resume/--test_iter), never its identity.
    train: bool = True  # False: evaluate a checkpoint
    resume: bool = True
    test_iter: int = -1  # -1: the newest checkpoint
    run_store: Optional[str] = None  # stored runs (results/runs): a run with no checkpoint starts there

    @property
    def total_iterations(self) -> int:
        return self.pretrain_iterations + self.metatrain_iterations

    def eval_lrs(self) -> tuple:
        """The step size of each test-time step: the first, then the later one."""
        return tuple([self.eval_inner_lr] + [self.eval_later_lr] * (self.eval_inner_steps - 1))[
            :self.eval_inner_steps]

    def validate(self) -> "RLConfig":
        """Raises UserError for a value out of range, named as its flag; returns self."""
        name_of = lambda n: f"{n} (--{FLAG_NAMES[n]})" if n in FLAG_NAMES else n  # noqa: E731
        if self.env not in ENVIRONMENTS:
            raise UserError(f"unknown environment {self.env!r}: use one of {ENVIRONMENTS}")
        for name in ["meta_batch_size", "paths", "horizon", "eval_tasks", "val_tasks", "cg_iters",
                     "checkpoint_interval", "print_interval", "keep_checkpoints"]:
            if getattr(self, name) <= 0:
                raise UserError(f"{name_of(name)} must be positive, got {getattr(self, name)}")
        for name in ["inner_lr", "eval_inner_lr", "eval_later_lr", "max_kl"]:
            if not 0 < getattr(self, name) < float("inf"):
                raise UserError(f"{name_of(name)} must be positive and finite, got {getattr(self, name)}")
        for name in ["pretrain_iterations", "metatrain_iterations", "eval_inner_steps",
                     "val_interval", "cg_damping", "seed", "eval_seed"]:  # numpy's seeds: >= 0
            if getattr(self, name) < 0:
                raise UserError(f"{name_of(name)} must be >= 0, got {getattr(self, name)}")
        if self.eval_split not in ("val", "test"):
            raise UserError(f"eval_split must be 'val' or 'test', got {self.eval_split!r}")
        if not 0 < self.discount <= 1:
            raise UserError(f"discount must be in (0, 1], got {self.discount}")
        if self.metatrain_iterations and self.inner_steps != 1:
            # Each further step would need fresh trajectories from the adapted policy, as the
            # paper's RL code does; meta-training here takes the paper's single step.
            raise UserError(f"RL meta-training takes exactly 1 inner step (--num_updates=1), "
                            f"got {self.inner_steps}")
        if self.test_iter < -1:
            raise UserError(f"test_iter must be a checkpoint's iteration or -1 (the newest), got {self.test_iter}")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def replace(self, **changes) -> "RLConfig":
        return dataclasses.replace(self, **changes)


# Fields that change what a checkpoint means: resuming a run with other values is refused.
# The command line's names of the fields whose own names differ (the original code's flags).
FLAG_NAMES = {"paths": "fast_batch_size", "horizon": "max_path_length", "inner_lr": "update_lr",
              "eval_inner_lr": "update_lr", "eval_later_lr": "later_update_lr",
              "eval_tasks": "num_test_tasks", "val_tasks": "num_val_tasks",
              "eval_inner_steps": "test_num_updates"}
IDENTITY_FIELDS = identity.Fields(
    ("env", "meta_batch_size", "paths", "horizon", "discount", "inner_lr", "inner_steps",
     "first_order", "pretrain_iterations", "max_kl", "hidden", "seed", "eval_seed", "val_tasks",
     "cg_iters", "cg_damping"), flags=FLAG_NAMES)
# An evaluation chooses its own step sizes, steps and number of goals; the rest defines the policy
# it restores and the tasks it meets (its file name holds only what it chooses). --update_lr sets
# the training's step and the first test step alike: the pretrained policy's test step sizes are
# chosen by it.
EVALUATION_FIELDS = identity.Fields([f for f in IDENTITY_FIELDS if f != "inner_lr"], flags=FLAG_NAMES)


def run_name(config: RLConfig) -> str:
    """A readable run directory name: 2dnavigation.maml.mbs20.paths20.lr0.1, ...pretrained, ...random."""
    parts = [config.env]
    if config.metatrain_iterations > 0:
        parts += ["maml" + ("_fo" if config.first_order else ""),
                  f"mbs{config.meta_batch_size}.paths{config.paths}.lr{config.inner_lr:g}"]
    elif config.pretrain_iterations > 0:
        parts += ["pretrained", f"mbs{config.meta_batch_size}.paths{config.paths}"]
    else:
        parts.append("random")
    parts.append(f"seed{config.seed}")
    return ".".join(parts)
