"""`classify --out` is checked before the work and the predictions are printed before it is written; a damaged `maml_tf/run.json` in a .keras file is one clear error."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

import maml_tf
from maml_tf import classify
from maml_tf.errors import UserError
from maml_tf.workdir import model_file
from test_export_and_classify import toy_run, write_folders


def run_classify(tmp_path, model, out):
    classify.main(["--model", str(model), "--support", str(tmp_path / "support"),
                   "--query", str(tmp_path / "query"), "--out", str(out)])


def one_error(capsys, exit_):
    """The single `error: ...` line of a refused command (exit 1)."""
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), captured.err
    return err[0], captured.out


@pytest.mark.parametrize("out, message", [
    ("missing/p.csv", "error: --out {root}/missing/p.csv: folder {root}/missing does not exist"),
    ("support", "error: --out '{root}/support' is not a file name: give one for the CSV"),
    ("newdir/", "error: --out '{root}/newdir/' is not a file name: give one for the CSV"),
])
def test_a_bad_out_is_refused_before_the_work(tmp_path, capsys, out, message):
    write_folders(tmp_path)
    # No model at all: the --out check comes first, so no work is spent on loading or adapting.
    with pytest.raises(SystemExit) as exit_:
        run_classify(tmp_path, tmp_path / "no_model", f"{tmp_path}/{out}")
    line, printed = one_error(capsys, exit_)
    assert line == message.format(root=tmp_path) and printed == ""
    assert not (tmp_path / "missing").exists() and not (tmp_path / "newdir").exists()


@pytest.mark.parametrize("argv, message", [
    ([], "error: the following arguments are required: --model, --support, --query (see --help)"),
    (["--model", "m", "--support", "s", "--query", "q", "--steps", "x"],
     "error: argument --steps: invalid int value: 'x' (see --help)"),
])
def test_a_command_line_argparse_refuses_is_one_line_and_exit_1(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        classify.main(argv)
    assert one_error(capsys, exit_) == (message, "")


def test_a_bad_out_with_a_real_model_is_one_line(tmp_path, capsys):
    run = toy_run(tmp_path / "run")
    write_folders(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_classify(tmp_path, run, tmp_path / "missing" / "p.csv")
    assert one_error(capsys, exit_)[0].endswith("does not exist")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a disk that is full)")
def test_predictions_are_printed_when_the_csv_cannot_be_written(tmp_path, capsys):
    run = toy_run(tmp_path / "run")
    write_folders(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_classify(tmp_path, run, "/dev/full")  # every write fails: No space left on device
    line, printed = one_error(capsys, exit_)
    assert line == "error: predictions printed above but not written to /dev/full: No space left on device"
    rows = printed.splitlines()
    assert rows[0] == "file,predicted_class,probability" and [r.split(",")[0] for r in rows[1:]] == [
        "q0.png", "q1.png", "q2.png"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A .keras file maml_tf wrote (a toy Omniglot run's model) and its run.json."""
    root = tmp_path_factory.mktemp("model")
    meta = maml_tf.load(toy_run(root / "run"))
    path = str(root / "model.keras")
    model_file.save(path, meta.model, meta.config.to_json(), 7)
    with zipfile.ZipFile(path) as archive:
        return path, json.loads(archive.read("maml_tf/run.json"))


def with_run_json(src, dst, text):
    """A copy of the .keras file `src` whose maml_tf/run.json is `text`."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            if info.filename != "maml_tf/run.json":
                new.writestr(info, old.read(info))
        new.writestr("maml_tf/run.json", text)
    return str(dst)


DAMAGE = {
    "list": (lambda run: "[]", "has a damaged maml_tf/run.json: a JSON list, not an object"),
    "not_json": (lambda run: "{\"format\": 1, \"iter", "has a damaged maml_tf/run.json: "),
    "not_utf8": (lambda run: b"\xff\xfe{}", "has a damaged maml_tf/run.json: "),
    "no_format": (lambda run: {k: v for k, v in run.items() if k != "format"},
                  "has a damaged maml_tf/run.json: no format"),
    "no_config": (lambda run: {k: v for k, v in run.items() if k != "config"},
                  "has a damaged maml_tf/run.json: its config is NoneType, not an object"),
    "config_list": (lambda run: {**run, "config": [1, 2]},
                    "has a damaged maml_tf/run.json: its config is list, not an object"),
    "no_iteration": (lambda run: {k: v for k, v in run.items() if k != "iteration"},
                     "has a damaged maml_tf/run.json: its iteration is None, not a whole number >= 0"),
    "iteration_text": (lambda run: {**run, "iteration": "seven"},
                       "has a damaged maml_tf/run.json: its iteration is 'seven'"),
    "wrong_type": (lambda run: {**run, "config": {**run["config"], "ways": "four"}},
                   "is damaged: settings of the wrong type: ways='four'"),
    "null_setting": (lambda run: {**run, "config": {**run["config"], "inner_lr": None}},
                     "is damaged: settings of the wrong type: inner_lr=None"),
}


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_run_json_is_one_clear_error(model, tmp_path, capsys, how):
    src, run = model
    damage, message = DAMAGE[how]
    text = damage(run)
    path = with_run_json(src, tmp_path / "damaged.keras", text if isinstance(text, (str, bytes))
                         else json.dumps(text))
    with pytest.raises(UserError) as err:
        maml_tf.load(path)
    assert str(err.value).startswith(f"{path} {message}"), str(err.value)
    write_folders(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_classify(tmp_path, path, tmp_path / "p.csv")
    assert one_error(capsys, exit_)[0] == f"error: {err.value}"


def test_the_undamaged_file_loads(model):
    assert maml_tf.load(model[0]).iteration == 7


def test_inner_moments_that_do_not_fit_the_network_are_one_clear_error(tmp_path):
    run = toy_run(tmp_path / "run", algorithm="reptile", inner_optimizer="adam", eval_inner_lr=0.01)
    meta = maml_tf.load(run)
    path = str(tmp_path / "model.keras")
    model_file.save(path, meta.model, meta.config.to_json(), 7, meta.moments)
    assert maml_tf.load(path).moments is not None
    damaged = str(tmp_path / "damaged.keras")
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(damaged, "w") as new:
        for info in old.infolist():
            if info.filename != "maml_tf/inner_moments.npz":
                new.writestr(info, old.read(info))
        buffer = io.BytesIO()
        np.savez(buffer, step=np.asarray(40.0), v0=np.ones(3, np.float32))  # one moment, wrong shape
        new.writestr("maml_tf/inner_moments.npz", buffer.getvalue())
    with pytest.raises(UserError, match="is damaged: its inner Adam moments do not match the network's weights"):
        maml_tf.load(damaged)
