"""A run directory is resumed or evaluated only with the settings it was made with, whatever state its config.json is in."""

import glob
import json
import os

import pytest

from maml_tf.errors import UserError
from maml_tf.experiment import evaluate, train
from test_rundir import run  # noqa: F401  (the finished toy run fixture)



@pytest.mark.parametrize("change", [dict(norm="batch_norm"), dict(inner_lr=0.01), dict(seed=3)])
def test_evaluation_with_another_network_or_run_is_refused(run, change):
    config, workdir = run
    before = sorted(os.listdir(workdir))
    with pytest.raises(UserError, match="holds a run with other settings") as err:
        evaluate.evaluate_checkpoint(config.replace(eval_tasks=4, **change), workdir)
    (name,) = change
    assert f"({name} " in str(err.value) and "evaluate it with the settings it was trained with" in str(err.value)
    assert sorted(os.listdir(workdir)) == before  # no eval_*.json written under the run's name


def test_evaluation_may_choose_its_own_tasks_steps_and_step_size(run):
    config, workdir = run
    result = evaluate.evaluate_checkpoint(config.replace(eval_tasks=4, eval_inner_steps=3,
                                                         eval_seed=7, eval_inner_lr=0.02), workdir)
    assert result["iteration"] == 20


@pytest.mark.parametrize("content", ["[]", "3", '"text"', "{}", "{not json"])
def test_a_malformed_config_json_does_not_turn_the_check_off(run, content, capsys):
    config, workdir = run
    path = os.path.join(workdir, "config.json")
    with open(path, "w") as f:
        f.write(content)
    with pytest.raises(UserError, match=r"\(inner_lr 0.001 -> 0.01\)"):  # runinfo.json's record
        train.train_and_evaluate(config.replace(metatrain_iterations=30, inner_lr=0.01), workdir)
    assert open(path).read() == content  # nothing rewritten by the refused resume
    # the copy beside the checkpoints still says how the run was made
    os.remove(os.path.join(workdir, "runinfo.json"))
    with pytest.raises(UserError, match=r"\(inner_lr 0.001 -> 0.01\)"):
        train.train_and_evaluate(config.replace(metatrain_iterations=30, inner_lr=0.01), workdir)
    os.remove(os.path.join(workdir, "checkpoints", "config.json"))  # no record left: refused
    with pytest.raises(UserError, match="has checkpoints but no readable config.json"):
        train.train_and_evaluate(config.replace(metatrain_iterations=30), workdir)
    with pytest.raises(UserError, match="has checkpoints but no readable config.json"):
        evaluate.evaluate_checkpoint(config.replace(eval_tasks=4), workdir)
    assert not glob.glob(os.path.join(workdir, "eval_*"))


def test_the_same_settings_resume_and_rewrite_a_damaged_config_json(run):
    config, workdir = run
    path = os.path.join(workdir, "config.json")
    with open(path, "w") as f:
        f.write("[]")
    train.train_and_evaluate(config.replace(metatrain_iterations=30), workdir)
    assert json.load(open(path))["metatrain_iterations"] == 30
