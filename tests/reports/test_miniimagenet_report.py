"""The MiniImageNet report: its four paper rows, accuracy after the 10 test steps, a stored run read when no live one exists."""

import json
import os

from maml_tf.reports import miniimagenet


def test_rows_read_the_newest_and_best_models_after_ten_steps(tmp_path):
    run = tmp_path / "store" / miniimagenet.SETTINGS[0][1]
    os.makedirs(run)
    for prefix, iteration, final in (("eval_", 4000, 0.44), ("eval_best_", 2000, 0.45)):
        acc = {"mean": [0.2] + [0.4] * 9 + [final], "ci95": [0.018] * 11}
        (run / f"{prefix}test_shots1_lr0.01_iter{iteration}.json").write_text(json.dumps(
            {"iteration": iteration, "num_tasks": 600, "metrics": {"accuracy": acc}}))
    (run / "runinfo.json").write_text(json.dumps({"iterations": 4000, "wall_seconds": 3600}))
    rows = miniimagenet.collect([str(tmp_path / "live"), str(tmp_path / "store")])
    text = miniimagenet.markdown(rows, "")
    assert ("| 5-way 1-shot, MAML | 48.7 ± 1.84 (ours: cut short) | 44.0 ± 1.8 (it. 4,000) | 45.0 ± 1.8 (it. 2,000) "
            "| 10 | 600 | 4,000 | 1.00 h | **cut short** at 4,000 of 60,000 iterations |") in text
    assert text.count("| not run yet |") == 3


def test_a_tested_best_model_that_validation_has_since_passed_says_so():
    """The best-validation column showed checkpoint 32,000 while validation had chosen 46,000
    (untested): the cell now names the newer choice."""
    from maml_tf.reports import runs

    result = {"iteration": 32000, "num_tasks": 600, "step": 10, "mean": 46.3, "ci95": 1.8,
              "by_step": {"steps": [0, 10], "mean": [20.0, 46.3], "ci95": [1.0, 1.8]}}
    validation = [{"iteration": i, "accuracy": [0.2, acc]} for i, acc in
                  ((32000, 0.466), (46000, 0.469), (48000, 0.466))]
    row = {"setting": "5-way 1-shot, MAML", "paper": {"mean": 48.7, "ci95": 1.84}, "paper_steps": 10,
           "newest": result, "best": result, "validation": validation, "iterations": 49012,
           "wall_time_hours": 1.0, "status": "**cut short** at 49,012 of 60,000 iterations"}
    line = next(l for l in runs.table([row]) if l.startswith("| 5-way"))
    assert "46.3 ± 1.8 (it. 32,000); validation's best is now it. 46,000, not tested yet |" in line
    assert "| 48.7 ± 1.84 (ours: cut short) |" in line
