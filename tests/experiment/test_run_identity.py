"""A run directory is resumed or evaluated only with the settings it was made with, whatever state its config.json is in."""

import glob
import json
import os

import pytest

from maml_tf.errors import UserError
from maml_tf.experiment import evaluate, run_id, train
from maml_tf.workdir import identity
from test_rundir import finished_toy_run, run  # noqa: F401  (the finished toy run fixtures)



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


@pytest.mark.parametrize("settings, reason", [
    (dict(cosine_meta_lr=True), "--cosine_meta_lr anneals the meta learning rate over the iteration target"),
    (dict(algorithm="reptile"), "Reptile anneals its outer step size over the iteration target")])
def test_a_refused_longer_run_says_why_its_length_is_part_of_it(run, tmp_path, settings, reason):
    """The iteration target is free for plain MAML but part of an annealed run: the refusal says so."""
    config, _ = run
    saved = config.replace(metatrain_iterations=20, **settings)
    with open(tmp_path / "config.json", "w") as f:
        f.write(saved.to_json())
    longer = saved.replace(metatrain_iterations=30)
    with pytest.raises(UserError, match=f"metatrain_iterations 20 -> 30: {reason}, so a longer run"):
        identity.check(str(tmp_path), identity.as_dict(longer), run_id.identity_fields(longer))
    plain = config.replace(metatrain_iterations=20)
    with open(tmp_path / "config.json", "w") as f:
        f.write(plain.to_json())
    longer = plain.replace(metatrain_iterations=30)  # plain MAML: a longer run is the same run
    identity.check(str(tmp_path), identity.as_dict(longer), run_id.identity_fields(longer))


def test_an_evaluation_chooses_its_query_count_but_reptile_s_keeps_its_own(tmp_path):
    """--num_query at evaluation sets the test tasks' query sets of a MAML run (training's
    count made the run, not its weights); a Reptile run is tested with the count it validated with."""
    from maml_tf.experiment.config import Config

    for algorithm in ("maml", "reptile"):
        saved = Config(dataset="omniglot", algorithm=algorithm, queries=1, eval_queries=1)
        (tmp_path / "config.json").write_text(saved.to_json())
        fifteen = saved.replace(queries=15, eval_queries=15)
        check = lambda: identity.check(str(tmp_path), identity.as_dict(fifteen),  # noqa: E731
                                       run_id.evaluation_fields(fifteen), "evaluate")
        if algorithm == "maml":
            check()
            assert evaluate.tasks_suffix(fifteen) == "_queries15"
            continue
        with pytest.raises(UserError, match="eval_queries 1 -> 15: a Reptile run is tested with"):
            check()
        fifteen = saved.replace(eval_shots=5, eval_queries=5)  # at another K too, --num_query not given
        with pytest.raises(UserError, match="eval_queries 1 -> 5: a Reptile run is tested with"):
            check()


def test_a_reptile_evaluation_at_another_k_takes_the_validated_query_count(tmp_path):
    """Without --num_query the command line took K queries at K=5 and was refused; given, another
    count still is (the rows' protocol)."""
    import subprocess
    import sys

    flags = ["--datasource=sinusoid", "--algorithm=reptile", "--metatrain_iterations=4",
             "--update_batch_size=2", "--train_update_batch_size=5", "--val_interval=0", "--log=False",
             "--checkpoint_interval=2", "--norm=None", f"--logdir={tmp_path}", "--num_test_tasks=4"]
    main = lambda *more: subprocess.run([sys.executable, "-m", "maml_tf.main", *flags, *more],  # noqa: E731
                                        capture_output=True, text=True, timeout=300)
    assert main().returncode == 0
    done = main("--train=False", "--update_batch_size=5")
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = glob.glob(str(tmp_path / "*" / "eval_val_shots5_*.json"))
    assert json.load(open(result))["queries"] == 2
    refused = main("--train=False", "--update_batch_size=5", "--num_query=5")
    assert refused.returncode == 1 and "eval_queries 2 -> 5" in refused.stderr, refused.stderr[-2000:]
