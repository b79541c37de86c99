"""A damaged pretraining directory: one clear error, or a rebuild that is provably the same, never a traceback or another checkpoint in silence."""

import json
import shutil

import pytest

from maml_tf.errors import UserError
from maml_tf.transfer import baselines, pretrain
from test_transfer import ToySampler, toy_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """One toy pretraining (30 steps, validated at 10, 20, 30), copied by each test that damages it."""
    path, sampler = tmp_path_factory.mktemp("pretrained"), ToySampler()
    pretrain.pretrain(toy_config(), str(path), sampler=sampler, arrays=sampler.arrays())
    return path


def _copy(pretrained, tmp_path):
    return shutil.copytree(pretrained, tmp_path / "run")


def _evaluate(run, **changes):
    return baselines.evaluate_baseline(toy_config(eval_tasks=2, **changes), str(run),
                                       sampler=ToySampler())


@pytest.mark.parametrize("text, said", [
    ("{}", r"pretrain.json is damaged \(no class count\): run the pretraining command again"),
    ('{"classes": 1', "pretrain.json is damaged"),
    ('{"classes": 100}', "says 100 classes, which the classifier of .*ckpt-\\d+ does not have"),
])
def test_a_damaged_pretrain_json_is_named(pretrained, tmp_path, text, said):
    run = _copy(pretrained, tmp_path)
    (run / "pretrain.json").write_text(text)
    with pytest.raises(UserError, match=said):
        _evaluate(run)


def test_a_damaged_best_json_is_rebuilt_from_validation_when_it_resumes(pretrained, tmp_path, capsys):
    run = _copy(pretrained, tmp_path)
    kept = json.loads((run / "best" / "best.json").read_text())
    (run / "best" / "best.json").write_text('{"iteration": 2')  # cut short
    pretrain.pretrain(toy_config(pretrain_iterations=40), str(run), sampler=ToySampler(),
                      arrays=ToySampler().arrays())
    rows = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["best_accuracy"])  # the first of the highest
    assert json.loads((run / "best" / "best.json").read_text())["iteration"] == best["iteration"]
    assert "rebuilt" in capsys.readouterr().err
    if rows[-1]["best_accuracy"] <= kept["best_accuracy"]:  # 40 did not beat it: the same model
        assert best["iteration"] == kept["iteration"]


def test_a_best_json_that_contradicts_best_checkpoints_is_refused(pretrained, tmp_path):
    run = _copy(pretrained, tmp_path)
    (run / "best" / "best.json").unlink()
    (run / "validation.jsonl").write_text("")  # nothing tells which model best/ holds
    with pytest.raises(UserError, match="does not tell which model"):
        pretrain.pretrain(toy_config(pretrain_iterations=40), str(run), sampler=ToySampler(),
                          arrays=ToySampler().arrays())


def test_without_best_the_newest_is_evaluated_only_if_it_never_validated(pretrained, tmp_path, capsys):
    run = _copy(pretrained, tmp_path)
    shutil.rmtree(run / "best")
    with pytest.raises(UserError, match="validated its pretraining but holds no best-validation"):
        _evaluate(run)  # it validated: another checkpoint in silence would be a wrong row
    (run / "validation.jsonl").unlink()
    result = _evaluate(run)
    assert (result["iteration"], result["checkpoint"]) == (30, "newest")
    assert "never validated (--val_interval=0): evaluating its newest checkpoint" in capsys.readouterr().out
    assert _evaluate(pretrained)["checkpoint"] == "best-validation"
    assert _evaluate(pretrained, test_iter=20)["checkpoint"] == "chosen"


def test_a_finished_pretraining_says_there_is_nothing_to_train(pretrained, tmp_path, capsys):
    run = _copy(pretrained, tmp_path)
    pretrain.pretrain(toy_config(pretrain_iterations=20), str(run), sampler=ToySampler(),
                      arrays=ToySampler().arrays())
    out = capsys.readouterr().out
    assert f"{run} had pretrained 30 iterations already (--pretrain_iterations=20): nothing to " \
           "train; best-validation model: iteration" in out
