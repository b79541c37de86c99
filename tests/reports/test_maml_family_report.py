"""The MAML-family report: one row per variant's run directory (named as run_experiments.sh's family lines name them), published numbers with where each was read, missing runs marked."""

import json
import os
import subprocess
import sys

from maml_tf.reports import maml_family, runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_rows_are_the_family_lines_run_directories(tmp_path):
    flags = ["--datasource=omniglot", "--num_classes=20", "--update_batch_size=1", "--num_updates=5",
             "--meta_batch_size=16", "--update_lr=0.1", "--metatrain_iterations=5000",
             f"--logdir={tmp_path}"]
    full = ["--datasource=omniglot", "--num_classes=20", "--update_batch_size=1", "--num_updates=5",
            "--meta_batch_size=8", "--update_lr=0.005", "--max_pool=True", "--maml_plus_plus",
            "--metatrain_iterations=50000", f"--logdir={tmp_path}"]  # run_experiments.sh's MPP
    lines = [flags, flags + ["--anil"], flags + ["--learned_inner_lr=per_param"],
             flags + ["--learned_inner_lr=per_layer_step"], flags + ["--multi_step_loss"],
             flags + ["--maml_plus_plus"], full]
    assert len(lines) == len(maml_family.SETTINGS)
    for (name, run, *_), line in zip(maml_family.SETTINGS, lines):
        out = subprocess.run([sys.executable, "-m", "maml_tf.main", *line, "--print_run_dir"],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == os.path.join(str(tmp_path), run), name


def test_report_rows(tmp_path):
    run = tmp_path / "logs" / maml_family.SETTINGS[1][1]
    os.makedirs(run)
    acc = {"mean": [0.05, 0.6, 0.8, 0.85, 0.9, 0.93] + [0.93] * 5, "ci95": [0.005] * 11}
    (run / "eval_test_shots1_lr0.1_iter5000.json").write_text(json.dumps(
        {"iteration": 5000, "num_tasks": 600, "metrics": {"accuracy": acc}}))
    (run / "validation.jsonl").write_text(json.dumps({"iteration": 5000, "accuracy": [0.05, 0.9]}) + "\n")
    (run / "runinfo.json").write_text(json.dumps({"iterations": 5000, "wall_seconds": 3600}))
    (run / "config.json").write_text(json.dumps({"patience": 0}))
    rows = maml_family.collect([str(tmp_path / "logs")])
    text = maml_family.markdown(rows, "python -m maml_tf.main ...")
    assert "| ANIL (--anil) | 96.2 ± 0.5 (std) | 93.0 ± 0.5 (it. 5,000) |" in text
    assert "| MAML | 95.8 ± 0.3 | not run yet |" in text and text.count("not run yet") == 6
    # Every published number says where it was read.
    sources = text.split("Published numbers, where each was read:")[1]
    assert all(f"- {name}: " in sources for name, *_ in maml_family.SETTINGS)
    assert "Table 2, row ANIL" in sources and "issue #20" in sources
    runs.plot_validation(rows, str(tmp_path / "val.png"), "t")
    assert os.path.getsize(tmp_path / "val.png") > 1000


def test_report_json_holds_no_path_of_this_machine(tmp_path, monkeypatch):
    """Run directories in a report's JSON: relative to the checkout, or as $LOGDIR/..."""
    from maml_tf.reports import writer

    checkout = tmp_path / "checkout"  # the runs' LOGDIR lies beside it
    os.makedirs(checkout / "out")
    monkeypatch.chdir(checkout)
    monkeypatch.setenv("LOGDIR", str(tmp_path / "logs"))
    rows = [{"run_dir": str(checkout / "results" / "runs" / "g" / "r"),
             "also": [str(tmp_path / "logs" / "g" / "r")]}]
    writer.write_report(str(checkout / "out"), "x", "text", rows)
    saved = json.load(open(checkout / "out" / "x.json"))["rows"][0]
    assert saved == {"run_dir": "results/runs/g/r", "also": ["$LOGDIR/g/r"]}
