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


def test_fits_draw_what_the_run_learned_and_refuse_what_they_cannot_draw(tmp_path, capsys, monkeypatch):
    """Fits of a Meta-SGD run adapt with its learned step sizes, under its own name; a run
    without a checkpoint (drawn untrained before) or an oracle run is one error line."""
    import json

    import pytest

    from maml_tf.deploy import meta as deploy_meta
    from maml_tf.experiment import train
    from maml_tf.experiment.config import Config
    from maml_tf.reports import fits

    config = Config(dataset="sinusoid", norm="None", shots=5, queries=5, eval_shots=5, eval_queries=5,
                    meta_batch_size=2, metatrain_iterations=2, checkpoint_interval=2, val_interval=0,
                    learned_inner_lr="per_param", log=False)
    run = tmp_path / "meta_sgd"
    train.train_and_evaluate(config, str(run))
    asked = []
    adapt = deploy_meta.MetaModel.adapt
    monkeypatch.setattr(deploy_meta.MetaModel, "adapt",
                        lambda self, x, y, steps=None, inner_lr=None: asked.append(inner_lr)
                        or adapt(self, x, y, steps, inner_lr))
    titles = []
    monkeypatch.setattr(sinusoid, "label", lambda meta, real=sinusoid.label: titles.append(real(meta))
                        or titles[-1])
    fits.main([str(run)])
    assert (run / "fits.png").exists() and set(asked) == {None} and set(titles) == {"MAML"}
    empty = tmp_path / "untrained"
    empty.mkdir()
    (empty / "config.json").write_text(config.to_json())
    oracle = tmp_path / "oracle"
    oracle.mkdir()
    (oracle / "config.json").write_text(json.dumps({**json.loads(config.to_json()), "oracle": True}))
    for where, said in ((empty, "checkpoint"), (oracle, "is an oracle run")):
        with pytest.raises(SystemExit):
            fits.main([str(where)])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and said in err[0], err
        assert not (where / "fits.png").exists()


def test_the_table_reads_every_model_s_tasks_only(tmp_path):
    """Evaluations of other tasks (`_seed<S>`, `_queries<Q>`) never become a cell: only the
    default seed's evaluation with K queries does, even when the side ones are newer."""
    import json

    def write(name, iteration, **extra):
        (tmp_path / name).write_text(json.dumps(
            {"shots": 5, "inner_lr": 0.01, "iteration": iteration, "queries": 5, **extra}))

    write("eval_test_shots5_lr0.01_iter100.json", 100)
    write("eval_test_shots5_lr0.01_iter200_seed7.json", 200, eval_seed=7)
    write("eval_test_shots5_lr0.01_iter200_queries15.json", 200, queries=15)
    assert sinusoid.load_evals(str(tmp_path))[(5, 0.01)]["iteration"] == 100


def test_the_papers_5_shot_numbers_stand_beside_k_5_and_runs_not_kept_rebuild_from_the_record(
        tmp_path, monkeypatch):
    """The appendix table is "5-shot mean squared error": it stood beside the K=10 rows. Without
    the run directories the tables are rebuilt from the earlier sinusoid.json, numbers unchanged."""
    import json
    import sys

    loss = {"mean": [3.0] + [1.0] * 10, "ci95": [0.1] * 11, "median": [2.0] + [0.5] * 10,
            "nonfinite": [0] * 11}
    ev = lambda k: {"shots": k, "inner_lr": 0.01, "iteration": 70000, "num_tasks": 600,  # noqa: E731
                    "steps": list(range(11)), "metrics": {"loss": loss}}
    info = {"iterations": 70000, "wall_seconds": 60, "segments": [{"hardware": {
        "cpu": "X", "cores": 2, "memory_gib": 1, "gpus": [], "tensorflow": "2", "python": "3"}}]}
    record = {"paper": sinusoid.PAPER, "runs": {n: {"run_dir": n, "runinfo": info,
                                                    "evals": [ev(5), ev(10)]}
                                                for n in ("maml", "pretrained")}}
    (tmp_path / "sinusoid.json").write_text(json.dumps(record))
    monkeypatch.setattr(sys, "argv", ["sinusoid", "--maml", str(tmp_path / "gone"), "--pretrained",
                                      str(tmp_path / "gone"), "--out", str(tmp_path),
                                      "--recorded", str(tmp_path / "sinusoid.json")])
    sinusoid.main()
    text = (tmp_path / "sinusoid.md").read_text()
    assert "| MAML | 5 | 0.01 | 1.000 ± 0.100 (median 0.500) | 1.000 ± 0.100 (median 0.500) | " \
           "1.000 ± 0.100 (median 0.500) | 0.67 / 0.38 / 0.35 |" in text
    assert "| MAML | 10 | 0.01 | 1.000 ± 0.100 (median 0.500) | 1.000 ± 0.100 (median 0.500) | " \
           "1.000 ± 0.100 (median 0.500) | — |" in text and "paper (K=5;" in text
