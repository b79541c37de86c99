"""The Reptile report reads the 50-step test at step 50 by value, also when only steps 0, 10, ..., 50 were recorded, and a stored run's wall time from its runinfo.json."""

import json

from maml_tf.reports import reptile


def _write(run, steps, acc, transductive=False, tasks=600):
    name = "eval_test_shots1_lr0.001_iter100000" + ("" if transductive else "_nontransductive")
    (run / f"{name}.json").write_text(json.dumps(
        {"iteration": 100000, "num_tasks": tasks, "steps": steps,
         "metrics": {"accuracy": {"mean": acc, "ci95": [0.005] * len(acc)}}}))


def test_fifty_step_accuracy_is_read_at_step_fifty(tmp_path):
    _write(tmp_path, [0, 10, 20, 30, 40, 50], [0.2, 0.8, 0.9, 0.92, 0.94, 0.95])
    _write(tmp_path, list(range(51)), [0.2] * 50 + [0.97], transductive=True)  # a full curve
    rows = {(r["setting"], r["transductive"]): r for r in reptile.collect({"reptile": str(tmp_path)}, {})}
    sparse, full = rows[("Reptile 5-way 1-shot", False)], rows[("Reptile 5-way 1-shot", True)]
    assert sparse["steps"] == 50 and abs(sparse["accuracy"]["mean"] - 95.0) < 1e-9
    assert full["steps"] == 50 and abs(full["accuracy"]["mean"] - 97.0) < 1e-9


def test_the_header_names_the_task_count_of_the_rows_files(tmp_path):
    _write(tmp_path, [0, 50], [0.2, 0.95], tasks=20)
    header = reptile.markdown(reptile.collect({"reptile": str(tmp_path)}, {}), "", "").splitlines()[2]
    assert "on 20 tasks of" in header and "600" not in header
    _write(tmp_path, [0, 50], [0.2, 0.97], transductive=True)  # 600 tasks: the rows differ
    header = reptile.markdown(reptile.collect({"reptile": str(tmp_path)}, {}), "", "").splitlines()[2]
    assert "on tasks (as many as each row names) of" in header


def test_a_stored_run_without_events_has_the_wall_time_of_its_segments_up_to_the_test(tmp_path):
    _write(tmp_path, [0, 50], [0.2, 0.95])
    segments = [{"start_iteration": 0, "end_iteration": 40000, "wall_seconds": 3600.0},
                {"start_iteration": 40000, "end_iteration": 100000, "wall_seconds": 5400.0},
                {"start_iteration": 100000, "end_iteration": 100500, "wall_seconds": 1800.0}]
    (tmp_path / "runinfo.json").write_text(json.dumps({"segments": segments, "iterations": 100500,
                                                       "wall_seconds": 10800.0}))
    row = reptile.collect({"reptile": str(tmp_path)}, {})[0]
    assert row["iterations"] == 100000 and abs(row["wall_time_hours"] - 2.5) < 1e-9


def test_bad_report_arguments_are_one_error_line(tmp_path, monkeypatch):
    """A misspelt --logdir, --run label or run, or an --out that is a file: one line, exit 1,
    where they gave a table of "not run yet" rows (exit 0) or a traceback."""
    import sys

    import pytest

    from maml_tf.reports import omniglot, reptile, writer

    sinusoid_run = tmp_path / "sine"
    sinusoid_run.mkdir()
    (sinusoid_run / "config.json").write_text('{"dataset": "sinusoid"}')
    (tmp_path / "a_file").write_text("")
    cases = [(omniglot.main, ["--logdir", str(tmp_path / "no_such_dir")], "no --logdir is a folder"),
             (reptile.main, ["--run", str(tmp_path)], "give LABEL=PATH with LABEL one of"),
             (reptile.main, ["--run", f"reptil={tmp_path}"], "give LABEL=PATH"),
             (reptile.main, ["--run", f"reptile={sinusoid_run}"], "is a sinusoid run"),
             (lambda: writer.out_dir(str(tmp_path / "a_file")), [], "cannot be a folder")]
    for fn, argv, said in cases:
        monkeypatch.setattr(sys, "argv", ["report", *argv, "--out", str(tmp_path / "out")])
        with pytest.raises(SystemExit) as stop:
            fn()
        assert str(stop.value).startswith("error: ") and said in str(stop.value), str(stop.value)
        assert "\n" not in str(stop.value)
    assert not (tmp_path / "out").exists()
