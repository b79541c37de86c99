"""The run directory is the run: one writer, the run's identity, damaged files survived (in-process, toy size)."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from maml_tf.errors import UserError
from maml_tf.experiment import evaluate, progress, train
from maml_tf.reports import runs
from maml_tf.workdir import rundir, runlock, snapshot
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import Experiment
from maml_tf.experiment.progress import ProgressLog, clock, trim_events, trim_history
from maml_tf.workdir.runinfo import SegmentLog
from maml_tf.workdir.runlock import RunLock
from maml_tf.workdir.selection import ModelSelection

TOY = dict(dataset="sinusoid", shots=5, queries=5, eval_shots=5, eval_queries=5, norm="None",
           meta_batch_size=4, metatrain_iterations=20, checkpoint_interval=10, print_interval=5,
           val_interval=10, val_tasks=4, eval_tasks=8, eval_inner_steps=2)


@pytest.fixture(scope="module")
def finished_toy_run(tmp_path_factory):
    """The finished 20-iteration run, trained once per module: `run` hands each test a copy."""
    path = str(tmp_path_factory.mktemp("finished_toy_run"))
    train.train_and_evaluate(Config(**TOY), path)
    return path


@pytest.fixture
def run(finished_toy_run, tmp_path):
    """A finished 20-iteration run (checkpoints 10 and 20); returns (config, run directory).
    A copy of one trained run (its files name no path of their own), not a training per test."""
    shutil.copytree(finished_toy_run, tmp_path, dirs_exist_ok=True)
    return Config(**TOY), str(tmp_path)


def weights(config, workdir):
    exp = Experiment(config)
    Checkpointer(workdir, exp.state()).restore_latest()
    return [v.numpy() for v in exp.model.variables]


def files(workdir):
    return {n: open(os.path.join(workdir, n)).read()
            for n in ("config.json", "runinfo.json", "validation.jsonl")}


@pytest.mark.parametrize("change", [dict(meta_lr=0.01), dict(seed=1), dict(queries=7),
                                    dict(grad_clip=1.0), dict(val_tasks=8)])
def test_resume_with_a_setting_that_changes_the_run_is_refused(run, change):
    config, workdir = run
    before = files(workdir)
    with pytest.raises(UserError, match="holds a run with other settings") as err:
        train.train_and_evaluate(config.replace(metatrain_iterations=30, **change), workdir)
    (name,) = change
    assert f"({name} " in str(err.value) and "\n" not in str(err.value)
    assert files(workdir) == before  # nothing earlier was lost or rewritten


def test_speed_settings_and_a_longer_target_resume_and_are_recorded(run):
    config, workdir = run
    train.train_and_evaluate(config.replace(metatrain_iterations=30, intra_op_threads=0,
                                            eval_batch_size=3, print_interval=1), workdir)
    segments = json.load(open(os.path.join(workdir, "runinfo.json")))["segments"]
    assert [(s["start_iteration"], s["end_iteration"]) for s in segments] == [(0, 20), (20, 30)]
    assert [s["settings"]["intra_op_threads"] for s in segments] == [1, 0]


def test_a_live_holder_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, capsys):
    with RunLock(str(tmp_path)):
        with pytest.raises(UserError, match=rf"is in use by pid {os.getpid()} on "):
            RunLock(str(tmp_path)).__enter__()
    assert not (tmp_path / "lock").exists()  # released
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                               "start": "1"}))
    with RunLock(str(tmp_path)) as lock:
        assert json.load(open(tmp_path / "lock"))["pid"] == os.getpid() == lock.mine["pid"]
    assert f"took over {tmp_path / 'lock'} from pid {dead.pid}" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"4242\n", b"[1, 2]", b'"me"', b"\xff\xfe not UTF-8"])
def test_a_lock_of_another_shape_is_a_torn_one(tmp_path, capsys, content):
    lock = tmp_path / "lock"
    lock.write_bytes(content)  # a bare pid (echo 4242 > lock), other JSON, binary garbage
    with pytest.raises(UserError, match="is in use by pid [?] on [?]"):  # may be being written
        runlock.check_free(str(tmp_path))
    os.utime(lock, (0, 0))  # left long ago: nobody holds it
    runlock.check_free(str(tmp_path))
    assert runlock.live_holder(str(tmp_path)) is None
    with RunLock(str(tmp_path)):
        assert json.load(open(lock))["pid"] == os.getpid()
    assert f"took over {lock} from pid ? on ?" in capsys.readouterr().err


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(run, capsys):
    config, workdir = run
    ckpts = os.path.join(workdir, "checkpoints")
    (data,) = [f for f in os.listdir(ckpts) if f.startswith("ckpt-20.data")]
    with open(os.path.join(ckpts, data), "r+b") as f:
        f.truncate(10)
    result = evaluate.evaluate_checkpoint(config, workdir)
    assert result["iteration"] == 10
    err = capsys.readouterr().err
    assert "warning: cannot read checkpoint" in err and "ckpt-20" in err and "falling back to ckpt-10" in err
    train.train_and_evaluate(config, workdir)  # resumes from 10 and saves a good 20 again
    assert "resuming" in capsys.readouterr().out
    assert Checkpointer(workdir, Experiment(config).state()).restore_latest() == 20


def test_damaged_small_files_are_survived(run, capsys):
    config, workdir = run
    rows = open(os.path.join(workdir, "validation.jsonl")).read()
    with open(os.path.join(workdir, "validation.jsonl"), "a") as f:
        f.write('{"iteration": 30, "lo')  # torn by a kill mid-write (an older version appended)
    open(os.path.join(workdir, "config.json"), "w").close()
    with open(os.path.join(workdir, "runinfo.json"), "r+") as f:
        f.truncate(40)
    train.train_and_evaluate(config.replace(metatrain_iterations=30), workdir)
    err = capsys.readouterr().err
    assert "dropped the torn last line" in err and "config.json is unreadable" in err
    assert open(os.path.join(workdir, "validation.jsonl")).read().startswith(rows)
    assert json.load(open(os.path.join(workdir, "config.json")))["metatrain_iterations"] == 30
    assert json.load(open(os.path.join(workdir, "runinfo.json")))["iterations"] == 30


@pytest.mark.parametrize("content, said", [
    ('[1]', "holds no JSON object"), ('{"segments": 5}', "holds no list of training segments"),
    ('{"segments": [5]}', "holds no list of training segments"),
    ('{"segments": [{"start_iteration": 0}]}', "holds no list of training segments")])
def test_a_runinfo_of_another_shape_is_rewritten_as_a_torn_one(tmp_path, capsys, content, said):
    (tmp_path / "runinfo.json").write_text(content)
    log = SegmentLog(str(tmp_path), 10)
    log.update(15)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: {tmp_path / 'runinfo.json'} {said}; it will be rewritten"]
    info = json.load(open(tmp_path / "runinfo.json"))
    assert info["iterations"] == 15 and [(s["start_iteration"], s["end_iteration"])
                                         for s in info["segments"]] == [(10, 15)]


@pytest.mark.parametrize("row", ['[1, 2]', '{"it": 1}', '"x"', '{"iteration": "7"}'])
def test_a_validation_row_of_another_shape_is_one_error_line(tmp_path, row):
    path = tmp_path / "validation.jsonl"
    text = '{"iteration": 5, "loss": [1.0]}\n' + row + '\n{"iteration": 10, "loss": [0.5]}\n'
    path.write_text(text)
    with pytest.raises(UserError, match=r"validation.jsonl line 2 is not a validation row") as err:
        trim_history(str(path), 5)
    assert "\n" not in str(err.value) and path.read_text() == text  # nothing dropped


@pytest.mark.parametrize("row", [{"iteration": 7}, {"iteration": 7, "loss": []},
                                 {"iteration": 7, "accuracy": ["x"]}])
def test_a_validation_row_without_a_score_is_one_error_line_for_model_selection(row):
    with pytest.raises(UserError, match="row of iteration 7 has no score") as err:
        ModelSelection([{"iteration": 5, "loss": [1.0]}, row])
    assert "\n" not in str(err.value)


def test_trimming_keeps_every_kind_of_row_rl_returns_included(tmp_path):
    path = tmp_path / "validation.jsonl"
    path.write_text('{"iteration": 25, "return": [-40.1, -30.2]}\n{"iteration": 50, "return": [-9.0]}\n')
    trim_history(str(path), 30)
    assert path.read_text() == '{"iteration": 25, "return": [-40.1, -30.2]}\n'


def test_a_checkpoint_holding_nan_is_never_written(run):
    config, workdir = run
    exp = Experiment(config)
    ckpt = Checkpointer(workdir, exp.state())
    ckpt.restore_latest()
    exp.model.variables[0].assign(np.full(exp.model.variables[0].shape, np.nan, np.float32))
    with pytest.raises(UserError, match="became NaN/inf by iteration 21.*not saved; the newest "
                                        "checkpoint, iteration 20, holds finite weights"):
        ckpt.save(21)
    assert not any("ckpt-21" in f for f in os.listdir(os.path.join(workdir, "checkpoints")))


def test_the_nan_message_says_there_is_no_checkpoint_when_there_is_none(tmp_path):
    config = Config(**{**TOY, "inner_lr": 1e6, "meta_lr": 10.0, "metatrain_iterations": 200,
                       "checkpoint_interval": 1000, "val_interval": 0})
    with pytest.raises(UserError, match="NaN/inf at iteration .*there is no checkpoint"):
        train.train_and_evaluate(config, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints" / "checkpoint")


def test_a_diverging_loss_is_flagged_once(tmp_path, capsys):
    log = ProgressLog(Config(**{**TOY, "log": False}), str(tmp_path))
    for i, loss in enumerate([2.0, 30.0, 3e6, 5e6, 1e12], 1):
        log.add(i, {"post_loss": loss, "pre_loss": 2.0})
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: post_loss 3e+06 at iteration 3 is over")


def test_the_rate_leaves_out_start_up_and_the_first_step(tmp_path, capsys, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: now[0])
    log = ProgressLog(Config(**{**TOY, "log": False, "metatrain_iterations": 1000}), str(tmp_path))
    now[0] += 300.0  # data loading and the first step's tracing
    log.add(1, {"post_loss": 1.0})
    log.flush(1, "metatrain")
    for i in range(2, 12):
        now[0] += 2.0  # 0.5 it/s
        log.add(i, {"post_loss": 1.0})
    log.flush(11, "metatrain")
    first, second = capsys.readouterr().out.splitlines()
    assert "-- it/s  ETA --:--:--" in first
    assert "0.5 it/s  ETA 00:32:58" in second  # 989 iterations left at 0.5 it/s


def test_unwritable_logdir_stops_before_any_work(tmp_path):
    (tmp_path / "file").write_text("")
    for logdir, why in ((tmp_path / "file" / "runs", "is not a directory"),
                        ("/proc/maml_tf_runs", "cannot write in /proc")):
        with pytest.raises(UserError, match=why):
            train.train_and_evaluate(Config(**TOY), str(logdir))
    assert os.listdir(tmp_path) == ["file"]


def test_evaluation_prints_its_numbers_before_a_failed_write(run, monkeypatch, capsys):
    config, workdir = run

    def refuse(path, text):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(rundir, "write_atomic", refuse)
    with pytest.raises(UserError, match="Read-only file system.*the numbers are above"):
        evaluate.evaluate_checkpoint(config, workdir)
    assert "loss after step  0:" in capsys.readouterr().out


def test_an_evaluation_never_silently_replaces_another_one(run, tmp_path, capsys):
    config, workdir = run
    plain = config.replace(eval_tasks=4, test_iter=20)
    evaluate.evaluate_checkpoint(plain, workdir)
    stem = os.path.join(workdir, "eval_val_shots5_lr0.001_iter20")
    assert json.load(open(stem + ".json"))["run"] == os.path.basename(workdir)
    # other tasks: their own file; the same evaluation again: replaced, and said so
    evaluate.evaluate_checkpoint(plain.replace(eval_seed=7), workdir)
    assert json.load(open(stem + "_seed7.json"))["eval_seed"] == 7
    evaluate.evaluate_checkpoint(plain.replace(eval_tasks=6), workdir)
    assert "replacing " + stem + ".json (it held 4 tasks" in capsys.readouterr().out
    # another query count (--num_query at evaluation; the training count is free): its own file
    evaluate.evaluate_checkpoint(plain.replace(queries=3, eval_queries=3), workdir)
    assert json.load(open(stem + "_queries3.json"))["queries"] == 3
    # other query sets under the same name (a file of older code), or another run's file in a
    # shared --eval_dir: refused
    older = json.load(open(stem + ".json"))
    with open(stem + ".json", "w") as f:
        json.dump({**older, "queries": 3}, f)
    with pytest.raises(UserError, match=r"holds another evaluation \(queries 3 -> 5\).*--eval_dir"):
        evaluate.evaluate_checkpoint(plain, workdir)
    with open(stem + ".json", "w") as f:
        json.dump(older, f)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "eval_val_shots5_lr0.001_iter20.json").write_text(json.dumps({"run": "another.run"}))
    with pytest.raises(UserError, match="run another.run -> "):
        evaluate.evaluate_checkpoint(plain.replace(eval_dir=str(shared)), workdir)
    # a run of the same name in another --logdir (a sweep over a setting the name lacks)
    other = tmp_path / "sweep" / os.path.basename(workdir)
    shutil.copytree(workdir, other)
    os.remove(shared / "eval_val_shots5_lr0.001_iter20.json")
    evaluate.evaluate_checkpoint(plain.replace(eval_dir=str(shared)), workdir)
    with pytest.raises(UserError, match="run_dir .* -> .*sweep"):
        evaluate.evaluate_checkpoint(plain.replace(eval_dir=str(shared)), str(other))
    assert json.load(open(stem + ".json"))["num_tasks"] == 6


def test_nothing_to_train_and_the_datasource_list_are_clear(tmp_path):
    with pytest.raises(UserError, match="nothing to train"):
        train.train_and_evaluate(Config(**{**TOY, "metatrain_iterations": 0}), str(tmp_path))
    with pytest.raises(UserError, match="or 2dnavigation"):
        Config(dataset="mnist").validate()
    assert os.listdir(tmp_path) == []


def test_eta_does_not_wrap_at_24_hours():
    assert clock(33 * 3600 + 34 * 60 + 17) == "33:34:17" and clock(59) == "00:00:59"


def test_tensorboard_keeps_no_steps_beyond_the_resumed_checkpoint(run):
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    config, workdir = run
    trim_events(workdir, 10)
    (path,) = [p for p in os.listdir(workdir) if p.startswith("events.out")]
    steps = [event_pb2.Event.FromString(r.numpy()).step
             for r in tf.data.TFRecordDataset(os.path.join(workdir, path))]
    assert max(steps) == 10 and 5 in steps  # later steps gone, earlier ones kept


def test_the_run_store_and_the_reports_read_a_runinfo_of_another_shape_as_none(tmp_path, capsys):
    (tmp_path / "runinfo.json").write_text("[1]")
    (tmp_path / "config.json").write_text('{"metatrain_iterations": 10}')
    assert not snapshot._finished(str(tmp_path))  # was: AttributeError on a list
    assert runs.trained(str(tmp_path))["iterations"] is None
    assert "holds no JSON object" in capsys.readouterr().err
