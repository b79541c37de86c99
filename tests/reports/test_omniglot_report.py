"""The Omniglot report: rows from run directories (live or stored), newest and best models, short, stopped and missing runs marked, the plot."""

import json
import os

from maml_tf.reports import omniglot, runs


def write_run(run, evals, history, iterations=None, patience=0):
    os.makedirs(run)
    for prefix, iteration, mean in evals:
        acc = {"mean": [0.2, 0.9, 0.95] + [mean] * 8, "std": [0.1] * 11, "ci95": [0.01] * 11}
        (run / f"{prefix}test_shots1_lr0.4_iter{iteration}.json").write_text(json.dumps(
            {"iteration": iteration, "num_tasks": 600, "metrics": {"accuracy": acc}}))
    (run / "validation.jsonl").write_text("".join(
        json.dumps({"iteration": i, "accuracy": [0.2, a]}) + "\n" for i, a in history))
    if iterations:
        (run / "runinfo.json").write_text(json.dumps({"iterations": iterations, "wall_seconds": 7200}))
    (run / "config.json").write_text(json.dumps({"patience": patience}))


def test_report_marks_short_runs_and_missing_ones(tmp_path):
    run = tmp_path / "logs" / omniglot.SETTINGS[0][1]
    write_run(run, [("eval_", 1000, 0.9), ("eval_", 3000, 0.96), ("eval_best_", 2000, 0.97)],
              [(1000, 0.8), (2000, 0.9), (3000, 0.85)], iterations=3500)
    rows = omniglot.collect([str(tmp_path / "logs")])
    text = omniglot.markdown(rows, "python -m maml_tf.main ...")
    assert ("| 5-way 1-shot | 98.7 ± 0.4 (ours: cut short) | 96.0 ± 1.0 (it. 3,000) | 97.0 ± 1.0 (it. 2,000) | 3 | 600 "
            "| 3,500 | 2.00 h | **cut short** at 3,500 of 60,000 iterations |") in text
    assert text.count("not run yet") == 3
    runs.plot_validation(rows, str(tmp_path / "val.png"), "t")
    assert os.path.getsize(tmp_path / "val.png") > 1000


def test_stored_runs_fill_in_and_the_patience_rule_is_named(tmp_path):
    stored = tmp_path / "store" / omniglot.SETTINGS[2][1]
    write_run(stored, [("eval_", 30000, 0.9)], [(5000, 0.9), (10000, 0.85), (25000, 0.88)],
              iterations=30000, patience=20000)
    rows = omniglot.collect([str(tmp_path / "live"), str(tmp_path / "store")])
    assert rows[2]["run_dir"] == str(stored)
    assert rows[2]["status"].startswith("stopped early at 30,000")


def test_sparse_evaluations_and_validation_rows_are_read_by_step(tmp_path):
    """An evaluation recording steps 0, 1, 3 and validation rows recording 0, 1, 3 (the run's
    train and test steps): the paper's step 3 is the third value, not the fourth; a test that
    did not record step 3 is read at its last step before it, and says so."""
    run = tmp_path / "logs" / omniglot.SETTINGS[0][1]
    os.makedirs(run)
    for prefix, iteration, steps, acc in (("eval_", 3000, [0, 1, 3], [0.2, 0.9, 0.96]),
                                          ("eval_best_", 2000, [0, 2], [0.2, 0.93])):
        (run / f"{prefix}test_shots1_lr0.4_iter{iteration}.json").write_text(json.dumps(
            {"iteration": iteration, "num_tasks": 600, "steps": steps,
             "metrics": {"accuracy": {"mean": acc, "ci95": [0.01] * len(acc)}}}))
    (run / "validation.jsonl").write_text(
        json.dumps({"iteration": 1000, "accuracy": [0.2, 0.7, 0.75, 0.8]}) + "\n"  # an old full row
        + json.dumps({"iteration": 2000, "steps": [0, 1, 3], "accuracy": [0.2, 0.8, 0.9]}) + "\n")
    rows = omniglot.collect([str(tmp_path / "logs")])
    assert rows[0]["newest"]["mean"] == 96.0 and rows[0]["newest"]["step"] == 3
    assert rows[0]["best"]["mean"] == 93.0 and rows[0]["best"]["step"] == 2
    text = omniglot.markdown(rows, "")
    assert "| 96.0 ± 1.0 (it. 3,000) | 93.0 ± 1.0 (it. 2,000, after 2 steps) |" in text
    assert "- 5-way 1-shot, newest (iteration 3,000): step 0: 20.0 ± 1.0, step 1: 90.0 ± 1.0, " \
           "step 3: 96.0 ± 1.0" in text
    plotted = []
    real = runs.at_step
    runs.at_step = lambda values, steps, step: plotted.append(real(values, steps, step)) or plotted[-1]
    try:
        runs.plot_validation(rows, str(tmp_path / "val.png"), "t")
    finally:
        runs.at_step = real
    assert plotted == [0.8, 0.9, 0.2, 0.2]  # after step 3 for both rows, then before adaptation


def test_an_evaluation_at_another_step_size_is_not_the_row(tmp_path):
    """A quick side evaluation at --update_lr=0.8 of a newer checkpoint leaves the row at the
    run's own step size (0.4), as does one of another task seed (its file is `_seed7`) or with
    another query count (`_queries15`)."""
    run = tmp_path / "logs" / omniglot.SETTINGS[0][1]
    write_run(run, [("eval_", 3000, 0.96)], [(3000, 0.85)], iterations=3500)
    (run / "config.json").write_text(json.dumps({"patience": 0, "eval_inner_lr": 0.4}))
    (run / "eval_test_shots1_lr0.8_iter3500.json").write_text(json.dumps(
        {"iteration": 3500, "num_tasks": 10, "inner_lr": 0.8,
         "metrics": {"accuracy": {"mean": [0.2] + [0.5] * 10, "ci95": [0.1] * 11}}}))
    (run / "eval_test_shots1_lr0.4_iter3500_seed7.json").write_text(
        (run / "eval_test_shots1_lr0.8_iter3500.json").read_text().replace("0.8", "0.4"))
    (run / "eval_test_shots1_lr0.4_iter3500_queries15.json").write_text(
        (run / "eval_test_shots1_lr0.4_iter3500_seed7.json").read_text())
    for name in os.listdir(run):  # the row's own evaluation records the run's step size
        if name == "eval_test_shots1_lr0.4_iter3000.json":
            result = json.loads((run / name).read_text())
            (run / name).write_text(json.dumps({**result, "inner_lr": 0.4}))
    rows = omniglot.collect([str(tmp_path / "logs")])
    assert rows[0]["newest"]["mean"] == 96.0 and rows[0]["newest"]["iteration"] == 3000
