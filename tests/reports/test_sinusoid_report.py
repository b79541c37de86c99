"""The sinusoid table reads the MSE after 1, 5 and 10 steps by step value, a dash where a sparse evaluation lacks one."""

from maml_tf.reports import sinusoid


def test_table_cells_are_read_by_step_value():
    loss = {"mean": [4.0, 1.0, 0.5], "ci95": [0.1] * 3, "median": [3.0, 0.9, 0.4],
            "nonfinite": [0, 0, 2]}
    evals = {"maml": {(10, 0.01): {"metrics": {"loss": loss}, "steps": [0, 10, 20],
                                   "num_tasks": 600, "iteration": 70000}}}
    text = sinusoid.table(evals, {"maml": {"wall_seconds": 600}})
    assert "| MAML | 10 | 0.01 | – | – | 1.000 ± 0.100 (median 0.900) |" in text
    full = {"mean": [4.0, 1.0], "ci95": [0.1] * 2, "median": [3.0, 0.9], "nonfinite": [0, 1]}
    assert sinusoid.cell(full, [0, 1], 1, 600) == "1.000 ± 0.100 (median 0.900); diverged on 1/600 tasks"


def test_missing_runs_or_evaluations_are_one_error_line(tmp_path, monkeypatch, capsys):
    import json
    import sys

    import pytest

    (tmp_path / "maml").mkdir()
    argv = ["sinusoid", "--maml", str(tmp_path / "maml"), "--pretrained", str(tmp_path / "maml"),
            "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match=r"^error: .*maml holds no trained run \(no runinfo.json\)"):
        sinusoid.main()
    (tmp_path / "maml" / "runinfo.json").write_text(json.dumps({"iterations": 5, "segments": []}))
    with pytest.raises(SystemExit, match=r"^error: .*maml has no test evaluation"):
        sinusoid.main()
    assert not (tmp_path / "out").exists()
