"""RL command lines that would train or evaluate something else than asked are one error line: a
supervised-only flag, an infinite trust region, a negative seed, nothing to train, and an
evaluation with another environment than the run's or of a run that does not exist."""

import os
import subprocess
import sys

import pytest

from maml_tf.errors import UserError
from maml_tf.rl import evaluate, train
from maml_tf.rl.config import RLConfig
from maml_tf.workdir.rundir import write_atomic


def refused(tmp_path, *flags) -> str:
    proc = subprocess.run([sys.executable, "-m", "maml_tf.main", "--datasource=2dnavigation",
                           f"--logdir={tmp_path}/logs", *flags], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert not os.path.exists(tmp_path / "logs")  # nothing written
    return lines[0]


@pytest.mark.parametrize("flags, said", [
    (["--meta_lr=0.01", "--eval_dir=/tmp/x"], "--meta_lr, --eval_dir: not read by --datasource=2dnavigation"),
    (["--max_kl=inf"], "max_kl must be positive and finite, got inf"),
    (["--seed=-1"], "seed must be >= 0, got -1"),
    (["--max_path_length=-5"], "horizon (--max_path_length) must be positive, got -5"),  # named as a flag
    (["--metatrain_iterations=0"], "nothing to train: --metatrain_iterations=0 and --pretrain_iterations=0"),
])
def test_flags_that_would_run_something_else_are_one_line(tmp_path, flags, said):
    assert said in refused(tmp_path, *flags)


def test_an_evaluation_at_another_step_size_names_the_run_by_train_update_lr(tmp_path):
    """The run directory's name holds the training step size: --update_lr alone named no run."""
    name = lambda *flags: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "maml_tf.main", "--datasource=2dnavigation", f"--logdir={tmp_path}",
         "--train=False", *flags, "--print_run_dir"], capture_output=True, text=True, timeout=120).stdout
    assert name("--update_lr=0.2", "--train_update_lr=0.1") == name() != name("--update_lr=0.2")


def test_an_evaluation_meets_the_runs_own_tasks_and_needs_the_run(tmp_path):
    trained = RLConfig(horizon=10, discount=0.9, metatrain_iterations=4)
    workdir = tmp_path / "run"
    os.makedirs(workdir)
    write_atomic(str(workdir / "config.json"), trained.to_json())
    for change, said in ((dict(horizon=100), r"horizon \(--max_path_length\) 10 -> 100"),
                         (dict(discount=0.5), "discount 0.9 -> 0.5"), (dict(eval_seed=7), "eval_seed 1234 -> 7")):
        with pytest.raises(UserError, match=r"holds a run with other settings \(" + said):
            evaluate.evaluate_run(trained.replace(train=False, **change), str(workdir))
    missing = tmp_path / "missing"
    with pytest.raises(UserError, match="no run in .*missing: train it first"):
        evaluate.evaluate_run(trained.replace(train=False), str(missing))
    assert not missing.exists()


def test_a_diverging_rl_run_names_its_own_step_sizes(tmp_path):
    steps = train.NavigationTraining(RLConfig(hidden=(4,), log=False), str(tmp_path), True)
    with pytest.raises(UserError, match=r"lower the trust region \(--max_kl\) or --update_lr") as err:
        steps.log.add(1, {"surrogate": float("nan")})
    assert "--meta_lr" not in str(err.value)


def test_an_evaluation_under_a_taken_name_says_what_it_replaces_or_is_refused(tmp_path, capsys):
    """The file name holds the goals, step sizes and iteration, not the steps or the seed: another
    number of steps replaces the file and says so; another seed or path count is refused."""
    random = RLConfig(metatrain_iterations=0, train=False, hidden=(4,), horizon=5, paths=2,
                      eval_tasks=2, eval_inner_steps=1)
    workdir = str(tmp_path / "random")
    evaluate.evaluate_run(random, workdir)
    assert "replacing" not in capsys.readouterr().out
    evaluate.evaluate_run(random.replace(eval_inner_steps=0), workdir)
    assert "(it held 2 tasks, steps [0, 1])" in capsys.readouterr().out
    for change, said in ((dict(eval_seed=7), "eval_seed 1234 -> 7"), (dict(paths=3), "paths_per_step 2 -> 3")):
        with pytest.raises(UserError, match=rf"holds another evaluation \({said}\): move that file away"):
            evaluate.evaluate_run(random.replace(**change), workdir)
