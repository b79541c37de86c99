"""The run store under faults: a save or a restore killed midway, another run of the same name, a checkpoint cut short, a stray lock, a stale machine, a trainer left stopped."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from maml_tf.errors import UserError
from maml_tf.experiment import train
from maml_tf.experiment.config import Config
from maml_tf.workdir import hold, procstat, snapshot, store_files
from test_run_store import TOY, _holder, weights


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A toy run at 20 iterations (checkpoints 10 and 20) and one at 30 of the same lineage."""
    root = tmp_path_factory.mktemp("trained")
    run = str(root / "logs" / "run")
    train.train_and_evaluate(Config(metatrain_iterations=20, **TOY), run)
    later = str(root / "later" / "logs" / "run")
    shutil.copytree(run, later)
    train.train_and_evaluate(Config(metatrain_iterations=30, **TOY), later)
    return run, later


def _copy(run, tmp_path, machine="a"):
    """`run` as `machine`'s directory <machine>/logs/run (stored as logs/run)."""
    return shutil.copytree(run, str(tmp_path / machine / "logs" / "run"))


def _iteration(run):
    return int(os.path.basename(snapshot.newest_checkpoint(os.path.join(run, "checkpoints"))).split("-")[1])


@pytest.mark.parametrize("dies_at", [("replace", 2), ("remove", 1)])  # the 2nd rename, the marker's removal
def test_a_save_killed_between_its_renames_loses_no_state(trained, tmp_path, monkeypatch, dies_at):
    """Killed after moving the old copy aside, or after the new one's rename: the store was left
    with only .old and .tmp, and a fresh machine started from iteration 0."""
    run, later = trained
    store = str(tmp_path / "store")
    snapshot.save(_copy(run, tmp_path), store)
    name, call = dies_at
    calls, real = [], getattr(os, name)

    def dying(*args):
        calls.append(args) if name == "replace" or os.path.exists(args[0]) else None
        if len(calls) == call:
            raise KeyboardInterrupt  # the process ends here
        return real(*args)
    monkeypatch.setattr(store_files.os, name, dying)
    with pytest.raises(KeyboardInterrupt):
        snapshot.save(_copy(later, tmp_path, "b"), store)
    monkeypatch.setattr(store_files.os, name, real)
    fresh = str(tmp_path / "fresh" / "logs" / "run")
    os.makedirs(fresh)
    assert snapshot.restore(store, fresh) is not None
    assert _iteration(fresh) == 30  # the finished new copy, not the old one nor nothing
    assert sorted(os.listdir(tmp_path / "store" / "logs")) == ["run"]
    assert store_files.COMPLETE not in os.listdir(fresh)


def test_another_run_of_the_same_name_is_not_saved_over(trained, tmp_path):
    run, _ = trained
    store = str(tmp_path / "store")
    snapshot.save(_copy(run, tmp_path), store)
    other = str(tmp_path / "b" / "logs" / "run")
    train.train_and_evaluate(Config(metatrain_iterations=30, **{**TOY, "val_tasks": 6}), other)
    with pytest.raises(UserError, match="holds another run of the name run .*not replaced"):
        snapshot.save(other, store)
    assert _iteration(snapshot.store_dir(store, other)) == 20


def test_a_checkpoint_cut_short_is_not_kept_over_a_good_one(trained, tmp_path):
    _, later = trained
    store, first = str(tmp_path / "store"), _copy(later, tmp_path)
    snapshot.save(first, store)
    data = os.path.join(first, "checkpoints", "ckpt-30.data-00000-of-00001")
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    with pytest.raises(UserError, match=r"checkpoint 30, this directory's 20"):
        snapshot.save(first, store)  # its newest readable is 20: older than the stored 30
    assert weights(snapshot.store_dir(store, first)).keys() == weights(later).keys()


def test_a_restore_takes_the_state_only_and_a_killed_one_is_redone(trained, tmp_path, monkeypatch):
    run, _ = trained
    store = str(tmp_path / "store")
    kept = snapshot.save(_copy(run, tmp_path), store)
    with open(os.path.join(kept, "lock"), "w") as f:
        json.dump({"pid": 4242, "host": "othermachine"}, f)  # a stray file in the store
    fresh = str(tmp_path / "fresh" / "logs" / "run")
    os.makedirs(fresh)
    replace = os.replace
    monkeypatch.setattr(snapshot.os, "replace", lambda src, dst: (_ for _ in ()).throw(
        KeyboardInterrupt) if dst.endswith("checkpoints") else replace(src, dst))
    with pytest.raises(KeyboardInterrupt):
        snapshot.restore(store, fresh)
    assert snapshot.newest_checkpoint(os.path.join(fresh, "checkpoints")) is None
    monkeypatch.setattr(snapshot.os, "replace", replace)
    assert snapshot.restore(store, fresh) == kept  # nothing of it counted as a run: done again
    assert _iteration(fresh) == 20 and "lock" not in os.listdir(fresh)
    assert ".restoring" not in os.listdir(fresh)


def test_a_directory_older_than_the_store_is_refused(trained, tmp_path):
    run, later = trained
    store = str(tmp_path / "store")
    snapshot.save(_copy(later, tmp_path), store)
    stale = _copy(run, tmp_path, "b")
    with pytest.raises(UserError, match=r"holds a newer state of this run .*checkpoint 30.*"
                                        r"\(checkpoint 20\): move this directory away"):
        train.train_and_evaluate(Config(metatrain_iterations=40, run_store=store, **TOY), stale)


def test_a_trainer_left_stopped_by_a_killed_save_goes_on(trained, tmp_path):
    run = _copy(trained[0], tmp_path)
    trainer = _holder(run)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        os.kill(trainer.pid, signal.SIGSTOP)
        while procstat.state(trainer.pid) != "T":
            time.sleep(0.01)
        with open(os.path.join(run, hold.HELD_FILE), "w") as f:
            json.dump({"trainer": trainer.pid, "by": dead.pid}, f)  # the save that stopped it died
        time.sleep(0.3)
        snapshot.save(run, str(tmp_path / "store"), quiet=0.2)
        assert procstat.state(trainer.pid) != "T" and hold.HELD_FILE not in os.listdir(run)
    finally:
        trainer.kill()
        trainer.wait()
    hold._stop_quietly(run, dead.pid, 0.1, 2)  # a trainer that ended meanwhile: no OS error
