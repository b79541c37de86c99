"""Recorded steps: the rule, reading by step value, and a sparse evaluation giving the full one's numbers at its steps."""

import json
import os

import numpy as np
import pytest

from maml_tf.errors import UserError
from maml_tf.experiment import evaluate, recorded, train
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import Experiment


def test_every_step_up_to_ten_then_every_tenth_and_the_last():
    assert recorded.eval_steps(10) == list(range(11))  # the paper's tables: each of 10 steps
    assert recorded.eval_steps(3) == [0, 1, 2, 3] and recorded.eval_steps(0) == [0]
    assert recorded.eval_steps(50) == [0, 10, 20, 30, 40, 50]  # Reptile's 50-step test
    assert recorded.eval_steps(25) == [0, 10, 20, 25]
    assert recorded.eval_steps(50, "all") == list(range(51))
    assert recorded.eval_steps(50, "50, 5,0,5") == [0, 5, 50]


@pytest.mark.parametrize("spec, message", [
    ("0,51", "record_steps must lie in 0..50"), ("-1", "record_steps must lie in 0..50"),
    ("", "record_steps must be auto, all or steps like"),
    ("every", "record_steps must be auto, all or steps like")])
def test_bad_record_steps_are_a_user_error(spec, message):
    with pytest.raises(UserError, match=message):
        recorded.eval_steps(50, spec)
    with pytest.raises(UserError, match=message):  # at config time, before any work
        Config(eval_inner_steps=50, eval_record_steps=spec).validate()


def test_values_are_read_by_step_not_position():
    steps, values = [0, 10, 20], [0.1, 0.5, 0.9]
    assert recorded.at_step(values, steps, 10) == 0.5
    assert recorded.at_step(values, steps, 15) == 0.5  # the last recorded before it
    assert recorded.at_step(values, steps, 99) == 0.9
    assert recorded.steps_of({"loss": [1, 2, 3]}, 3) == [0, 1, 2]  # rows written before "steps"
    assert recorded.validation_steps(10, 5) == [0, 5, 10]
    assert recorded.validation_steps(3, 3) == [0, 3]


def test_curve_fn_is_built_once_per_recorded_steps():
    exp = Experiment(Config(dataset="sinusoid", norm="None", log=False))
    full = exp.curve_fn(5, 5, 0.01, 3)
    assert exp.curve_fn(5, 5, 0.01, 3, [0, 1, 2, 3]) is full
    assert exp.curve_fn(5, 5, 0.01, 3, [3, 0]) is exp.curve_fn(5, 5, 0.01, 3, [0, 3])
    assert exp.curve_fn(5, 5, 0.01, 3, [0, 3]) is not full


TOYS = {  # 12 evaluation steps: the rule records 0, 10 and 12
    "maml_batch_norm_nontransductive": dict(norm="batch_norm", transductive=False),
    "reptile_adam": dict(norm="None", algorithm="reptile", inner_optimizer="adam",
                         inner_steps=3, eval_inner_batch_size=5, shots=10),
}


@pytest.mark.parametrize("name", TOYS)
def test_sparse_evaluation_equals_the_full_one_at_its_steps(tmp_path, name):
    config = Config(dataset="sinusoid", eval_shots=5, eval_queries=5, inner_lr=0.01,
                    eval_inner_lr=0.01, meta_batch_size=4, metatrain_iterations=3,
                    val_interval=3, val_tasks=4, checkpoint_interval=3, eval_inner_steps=12,
                    eval_tasks=6, eval_batch_size=4, log=False, **TOYS[name])
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)
    full = evaluate.evaluate_checkpoint(config.replace(eval_record_steps="all"), workdir)
    sparse = evaluate.evaluate_checkpoint(config, workdir)  # written last: its files remain
    assert full["steps"] == list(range(13)) and sparse["steps"] == [0, 10, 12]
    for metric, stats in sparse["metrics"].items():
        for stat, values in stats.items():
            want = np.asarray(full["metrics"][metric][stat])[[0, 10, 12]]
            np.testing.assert_allclose(values, want, rtol=1e-6, atol=1e-7, err_msg=f"{metric} {stat}")
    assert full["metrics"]["loss"]["mean"][10] != full["metrics"]["loss"]["mean"][0]  # steps moved
    stem = os.path.join(workdir, "eval_val_shots5_lr0.01_iter3" + ("_nontransductive"
                                                                    if not config.transductive else ""))
    written = json.load(open(stem + ".json"))
    assert written["steps"] == [0, 10, 12] and len(written["metrics"]["loss"]["mean"]) == 3
    assert [row.split(",")[0] for row in open(stem + ".csv").read().splitlines()[1:]] == ["0", "10", "12"]
    # meta-validation recorded step 0, the training steps and the last (model selection's)
    (row,) = [json.loads(line) for line in open(os.path.join(workdir, "validation.jsonl"))]
    assert row["steps"] == [0, config.inner_steps, 12] and len(row["loss"]) == 3


def test_the_printed_summary_gives_no_interval_for_one_task(capsys):
    def result(n):
        m = {"mean": np.array([0.2, 0.6]), "ci95": np.array([0.0, 0.0 if n == 1 else 0.05])}
        return {"dataset": "omniglot", "split": "test", "num_tasks": n, "shots": 1, "iteration": 7,
                "steps": [0, 1], "metrics": {"accuracy": m}}
    evaluate.print_summary(result(1))
    one = capsys.readouterr().out
    assert "one task: no interval" in one and "±" not in one and "1: 0.6" in one
    evaluate.print_summary(result(600))
    assert "1: 0.6±0.05" in capsys.readouterr().out
