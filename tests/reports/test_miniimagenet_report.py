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
    assert ("| 5-way 1-shot, MAML | 48.7 ± 1.84 | 44.0 ± 1.8 (it. 4,000) | 45.0 ± 1.8 (it. 2,000) "
            "| 10 | 600 | 4,000 | 1.00 h | **cut short** at 4,000 of 60,000 iterations |") in text
    assert text.count("| not run yet |") == 3
