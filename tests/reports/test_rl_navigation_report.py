"""The 2D-navigation report reads a run's row from its newest evaluation over the most goals, and compares step sizes on one checkpoint's goals."""

import json

import numpy as np

from maml_tf.reports import rl_navigation


def write(run, name, iteration, goals, first=0.1, mean=1.0):
    (run / f"{name}.json").write_text(json.dumps(
        {"iteration": iteration, "num_tasks": goals, "step_sizes": [first, 0.05],
         "return": {"mean": [0.0, mean], "ci95": [0.1, 0.1]}}))
    np.savez(run / f"{name}.npz", goals=np.zeros((goals, 2)))


def test_a_quick_evaluation_over_a_few_goals_is_not_the_row(tmp_path):
    for goals in (40, 4):  # the quick one written last: it had won a tie on the iteration
        write(tmp_path, f"eval_test_goals{goals}_lr0.1-0.05_iter500", 500, goals)
    assert rl_navigation.load_run(str(tmp_path), "0.1-0.05")["eval"]["num_tasks"] == 40
    write(tmp_path, "eval_test_goals4_lr0.1-0.05_iter600", 600, 4)  # a newer checkpoint wins
    assert rl_navigation.load_run(str(tmp_path), "0.1-0.05")["eval"]["iteration"] == 600


def test_step_sizes_are_compared_on_one_checkpoint_s_goals(tmp_path):
    write(tmp_path, "eval_val_goals40_lr0.1-0.05_iter500", 500, 40, first=0.1, mean=1.0)
    write(tmp_path, "eval_val_goals40_lr0.2-0.05_iter500", 500, 40, first=0.2, mean=2.0)
    write(tmp_path, "eval_val_goals40_lr0.5-0.05_iter100", 100, 40, first=0.5, mean=9.0)  # older
    write(tmp_path, "eval_val_goals4_lr0.3-0.05_iter500", 500, 4, first=0.3, mean=9.0)  # few goals
    assert [row[0] for row in rl_navigation.step_size_sweep(str(tmp_path))] == [0.2, 0.1]


def test_the_trajectory_figure_draws_an_evaluation_of_fewer_than_three_goals(tmp_path):
    from maml_tf.reports.rl_figures import figure_trajectories

    runs = {"maml": {"trajectories": {"positions": np.zeros((4, 2, 5, 2)), "goals": np.zeros((2, 2))}}}
    figure_trajectories(runs, str(tmp_path / "t.png"), ["maml"])  # was: IndexError at goal 3
    assert (tmp_path / "t.png").stat().st_size > 0
