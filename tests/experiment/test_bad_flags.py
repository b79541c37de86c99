"""Flags that would put a run outside --logdir or train with no inner step are refused with one line, before anything is written."""

import os
import resource
import subprocess
import sys

import pytest

from maml_tf.errors import UserError
from maml_tf.experiment.config import Config

GIB = 2 ** 30


def limit_memory():
    """The child's address space capped: were a size not refused, its allocation fails at once
    instead of taking the shared machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (4 * GIB, 4 * GIB))


def run_main(cwd, *flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "maml_tf.main", *flags], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300, preexec_fn=limit_memory)


def refused(proc) -> str:
    """The one line of a refused command (exit 1, no traceback)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


SINE = ["--datasource=sinusoid", "--metatrain_iterations=2", "--val_interval=0", "--log=False"]
NAME = "must be one folder name inside --logdir (no '/', not '.' or '..')"


@pytest.mark.parametrize("run_name", ["../escape", "{tmp}/elsewhere", "a/b", "..", "."])
def test_a_run_name_that_leaves_logdir_or_nests_is_refused(tmp_path, run_name):
    logdir, work = tmp_path / "logs", tmp_path / "work"
    os.makedirs(logdir), os.makedirs(work)
    name = run_name.format(tmp=tmp_path)
    for train in ("True", "False"):
        line = refused(run_main(work, *SINE, f"--logdir={logdir}", f"--run_name={name}", f"--train={train}"))
        assert line == f"error: --run_name={name} {NAME}"
    assert files_under(tmp_path) == []  # nothing written: not ../escape, not elsewhere, not a/b


@pytest.mark.parametrize("datasource", ["sinusoid", "2dnavigation"])
def test_an_empty_logdir_is_refused(tmp_path, datasource):
    line = refused(run_main(tmp_path, f"--datasource={datasource}", "--metatrain_iterations=2",
                            "--logdir="))
    assert line == "error: --logdir is empty: give the folder that holds the run directories"
    assert files_under(tmp_path) == []  # not into the working directory


def test_the_rl_command_refuses_an_escaping_run_name(tmp_path):
    line = refused(run_main(tmp_path, "--datasource=2dnavigation", f"--logdir={tmp_path}/logs",
                            "--run_name=../rl"))
    assert line == f"error: --run_name=../rl {NAME}"


NO_STEP = ("error: inner_steps (--num_updates) must be at least 1 to meta-train; training on the "
           "query loss alone is --pretrain_iterations=N --metatrain_iterations=0")


@pytest.mark.parametrize("algorithm", ["maml", "reptile"])
def test_meta_training_with_no_inner_step_is_refused(tmp_path, algorithm):
    line = refused(run_main(tmp_path, *SINE, f"--logdir={tmp_path}", "--num_updates=0",
                            f"--algorithm={algorithm}"))
    assert line == NO_STEP and files_under(tmp_path) == []


def test_no_inner_step_is_fine_where_nothing_is_meta_trained():
    """The pretrained baselines and an evaluation with no test step keep working."""
    Config(inner_steps=0, metatrain_iterations=0, pretrain_iterations=10).validate()
    Config(eval_inner_steps=0, eval_record_steps="auto").validate()
    with pytest.raises(UserError, match="must be at least 1 to meta-train"):
        Config(inner_steps=0, metatrain_iterations=10, pretrain_iterations=10).validate()
