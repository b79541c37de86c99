"""results/transfer: settings are chosen on validation files only and the test number is read at the chosen step."""

import json

from maml_tf.reports import transfer


def _write(run, split, lr, bn, acc, iteration=100, method="all", ways=5, shots=1):
    stem = run / f"eval_{split}_shots{shots}_lr{lr:g}_iter{iteration}_{ways}way_{method}_bn{bn}"
    result = {"iteration": iteration, "num_tasks": 10, "inner_lr": lr, "finetune_bn": bn,
              "metrics": {"accuracy": {"mean": acc, "ci95": [0.01] * len(acc)}}}
    (run / f"{stem.name}.json").write_text(json.dumps(result))


def test_choice_uses_validation_and_reads_test_at_the_chosen_step(tmp_path):
    _write(tmp_path, "val", 0.1, "batch", [0.2, 0.5, 0.6])
    _write(tmp_path, "val", 0.4, "moving", [0.2, 0.8, 0.7])  # best on val: lr 0.4, moving, step 1
    _write(tmp_path, "val", 0.4, "batch", [0.2, 0.9, 0.9], iteration=50)  # an older checkpoint: ignored
    _write(tmp_path, "test", 0.1, "batch", [0.2, 0.99, 0.99])  # best on test, but not chosen
    _write(tmp_path, "test", 0.4, "moving", [0.2, 0.75, 0.7])
    chosen = transfer.choose(str(tmp_path), "all", 5, 1)
    assert (chosen["inner_lr"], chosen["finetune_bn"], chosen["step"]) == (0.4, "moving", 1)
    row = transfer.baseline_row(str(tmp_path), "all", 5, 1, "x")
    assert row["status"] == "measured" and abs(row["accuracy"]["mean"] - 75.0) < 1e-9
    assert transfer.choose(str(tmp_path), "head", 5, 1) is None  # other methods' files are not mixed in


def test_choice_and_test_number_use_step_values_of_sparse_files(tmp_path):
    """Files that recorded steps 0, 10, 20: the chosen step is 10 (its value), and the test
    number is the one at step 10."""
    for split, acc in (("val", [0.2, 0.8, 0.7]), ("test", [0.3, 0.6, 0.9])):
        _write(tmp_path, split, 0.1, "batch", acc)
        path = next(tmp_path.glob(f"eval_{split}_*.json"))
        result = json.loads(path.read_text())
        path.write_text(json.dumps({**result, "steps": [0, 10, 20]}))
    chosen = transfer.choose(str(tmp_path), "all", 5, 1)
    assert chosen["step"] == 10
    row = transfer.baseline_row(str(tmp_path), "all", 5, 1, "x")
    assert row["step"] == 10 and abs(row["accuracy"]["mean"] - 60.0) < 1e-9
    assert row["steps"] == [0, 10, 20]


def test_maml_row_reads_both_report_formats(tmp_path, monkeypatch):
    """MAML's row comes from results/<dataset>.json: the older rows (accuracy at the top) and the
    newer ones (newest / best-validation results), the best-validation model preferred."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    old = {"setting": "5-way 1-shot", "status": "cut short", "run": "r", "paper_steps": 3,
           "iterations": 900, "accuracy": {"mean": 90.0, "ci95": 1.0},
           "accuracy_by_step": {"mean": [20.0, 90.0]}}
    new = {"setting": "5-way 1-shot, MAML", "status": "cut short", "run": "m", "paper_steps": 10,
           "newest": {"iteration": 1600, "mean": 34.0, "ci95": 1.7,
                      "by_step": {"steps": [0, 10], "mean": [21.0, 34.0]}},
           "best": {"iteration": 1000, "mean": 33.0, "ci95": 1.6,
                    "by_step": {"steps": [0, 10], "mean": [20.0, 33.0]}}}
    (tmp_path / "results" / "omniglot.json").write_text(json.dumps({"rows": [old]}))
    (tmp_path / "results" / "miniimagenet.json").write_text(json.dumps({"rows": [new]}))
    row = transfer.maml_row("omniglot", 5, 1)
    assert (row["iterations"], row["accuracy"]["mean"], row["accuracy_by_step"]) == (900, 90.0, [20.0, 90.0])
    row = transfer.maml_row("miniimagenet", 5, 1)
    assert (row["model"], row["iterations"], row["accuracy"]["mean"]) == ("best", 1000, 33.0)
    assert row["steps"] == [0, 10] and "best-validation" in transfer._how(row)
    del new["best"]
    (tmp_path / "results" / "miniimagenet.json").write_text(json.dumps({"rows": [new]}))
    assert transfer.maml_row("miniimagenet", 5, 1)["iterations"] == 1600
    assert transfer.maml_row("miniimagenet", 5, 5)["status"] == "not measured here"


def test_an_earlier_reports_rows_stand_in_only_for_runs_not_here_and_say_so(tmp_path, monkeypatch):
    """The baselines' runs of an earlier report that were not kept: their rows are carried, marked
    and with the earlier machine, while a run that is here is read from its files."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "pretrained"
    run.mkdir()
    _write(run, "val", 0.1, "batch", [0.2, 0.5])
    _write(run, "test", 0.1, "batch", [0.2, 0.6])  # fine-tune all, 5-way 1-shot: here
    measured = lambda method, mean: {  # noqa: E731
        "method": transfer.METHODS[method], "status": "measured", "accuracy": {"mean": mean, "ci95": 1.0},
        "chosen": {"inner_lr": 0.4, "finetune_bn": "batch", "step": 1, "val_accuracy": 0.5,
                   "val_tasks": 100, "iteration": 7}}
    earlier = {"hardware": "2 cores of an old CPU", "rows": [
        {"dataset": "omniglot", "ways": 5, "shots": 1,
         "methods": [measured("all", 11.0), measured("head", 22.0)]}]}
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    rows = transfer.collect({"omniglot": str(run)}, {}, transfer.earlier_rows("earlier.json"))
    methods = {m["method"]: m for m in rows[0]["methods"]}
    fresh, carried = methods[transfer.METHODS["all"]], methods[transfer.METHODS["head"]]
    assert fresh["status"] == "measured" and abs(fresh["accuracy"]["mean"] - 60.0) < 1e-9
    assert (carried["status"], carried["accuracy"]["mean"]) == (transfer.RECORDED, 22.0)
    assert carried["hardware"] == "2 cores of an old CPU" and transfer.RECORDED in transfer._how(carried)
    assert methods[transfer.METHODS["nearest"]]["status"] == "not run yet"  # nothing earlier either
    assert transfer.earlier_rows("missing.json") == {}
