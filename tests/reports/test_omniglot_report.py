"""The Omniglot report: rows from run directories, short and missing runs marked, the validation plot."""

import json
import os

from maml_tf.reports import omniglot


def test_report_marks_short_runs_and_missing_ones(tmp_path):
    run = tmp_path / "logs" / omniglot.SETTINGS[0][1]
    os.makedirs(run)
    acc = {"mean": [0.2, 0.9, 0.95, 0.96], "std": [0.1] * 4, "ci95": [0.01] * 4}
    for iteration in (1000, 3000):
        (run / f"eval_test_shots1_lr0.4_iter{iteration}.json").write_text(json.dumps(
            {"iteration": iteration, "num_tasks": 600, "metrics": {"accuracy": acc}}))
    (run / "validation.jsonl").write_text(json.dumps({"iteration": 500, "accuracy": [0.2, 0.8]}) + "\n")
    rows = omniglot.collect([str(tmp_path / "logs")])
    text = omniglot.markdown(rows, "python -m maml_tf.main ...")
    assert "| 5-way 1-shot | 98.7 ± 0.4 | 96.0 ± 1.0 | 3 | 600 | 3,000 |" in text
    assert "**cut short** at 3,000 of 60,000 iterations" in text
    assert text.count("not run yet") == 6  # three rows, in two columns each
    omniglot.plot(rows, str(tmp_path / "val.png"))
    assert os.path.getsize(tmp_path / "val.png") > 1000
