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
