"""Runs that outlive a machine: a stored run continues to the same weights; best-validation model; early stop."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from maml_tf.experiment import evaluate, train

from maml_tf.workdir import model_file, procstat, runlock, snapshot
from maml_tf.experiment.config import Config
from maml_tf.errors import UserError

TOY = dict(dataset="sinusoid", shots=5, queries=5, eval_shots=5, eval_queries=5, norm="None",
           inner_lr=0.01, eval_inner_lr=0.01, meta_batch_size=4, meta_lr=0.01, print_interval=10,
           checkpoint_interval=10, val_interval=5, val_tasks=4, eval_tasks=8, eval_inner_steps=2,
           log=False)


def weights(run_dir, sub="checkpoints"):
    """Every variable of the newest checkpoint in run_dir/sub, by name."""
    reader = tf.train.load_checkpoint(os.path.join(run_dir, sub))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


def test_stored_run_continues_to_the_same_weights_as_an_uninterrupted_run(tmp_path):
    whole = str(tmp_path / "a" / "omniglot5way" / "run")
    train.train_and_evaluate(Config(metatrain_iterations=30, **TOY), whole)
    # The interrupted machine: 20 iterations, its state kept in the store, then the machine is gone.
    first = str(tmp_path / "b" / "omniglot5way" / "run")
    train.train_and_evaluate(Config(metatrain_iterations=20, **TOY), first)
    store = str(tmp_path / "store")
    kept = snapshot.save(first, store)
    assert sorted(os.listdir(os.path.join(kept, "checkpoints"))) == [
        "best", "checkpoint", "ckpt-20.data-00000-of-00001", "ckpt-20.index"]  # the newest only
    shutil.rmtree(str(tmp_path / "b"))
    again = str(tmp_path / "c" / "omniglot5way" / "run")  # a fresh clone, another logdir
    train.train_and_evaluate(Config(metatrain_iterations=30, run_store=store, **TOY), again)
    a, c = weights(whole), weights(again)
    assert a.keys() == c.keys() and len(a) > 4
    for name in a:
        np.testing.assert_array_equal(a[name], c[name], err_msg=name)
    with open(os.path.join(again, "runinfo.json")) as f:
        assert json.load(f)["iterations"] == 30
    with open(os.path.join(again, "validation.jsonl")) as f:
        assert [json.loads(line)["iteration"] for line in f] == [5, 10, 15, 20, 25, 30]
    # The new machine's state kept, a stale directory of the old lineage must not undo it.
    stale = str(tmp_path / "d" / "omniglot5way" / "run")
    shutil.copytree(kept, stale)  # the state at 20, as the old machine's directory still has it
    snapshot.save(again, store)
    with pytest.raises(UserError, match=r"holds a newer state of run \(checkpoint 30, this directory's 20\)"):
        snapshot.save(stale, store)
    assert snapshot.main(["save", "--store", store, stale, str(tmp_path / "typo")]) == 1
    # A run of other settings under the same name: refused before the stored copy is brought in.
    other = str(tmp_path / "e" / "omniglot5way" / "run")
    for attempt in (lambda: train.train_and_evaluate(Config(metatrain_iterations=30, run_store=store,
                                                            **{**TOY, "seed": 1}), other),
                    lambda: evaluate.evaluate_checkpoint(Config(run_store=store, **{**TOY, "seed": 1}), other)):
        with pytest.raises(UserError, match=r"holds a run with other settings \(seed 0 -> 1\)"):
            attempt()
        assert not os.path.exists(os.path.join(other, "checkpoints"))
    assert os.path.exists(os.path.join(kept, "checkpoints", "ckpt-30.index"))


def test_best_validation_model_is_kept_and_evaluated(tmp_path):
    run = str(tmp_path / "logs" / "run")
    config = Config(metatrain_iterations=30, **TOY)
    train.train_and_evaluate(config, run)
    with open(os.path.join(run, "validation.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    best = min(rows, key=lambda r: r["loss"][-1])["iteration"]
    result = evaluate.evaluate_checkpoint(config.replace(eval_split="test", test_best=True), run)
    assert result["iteration"] == best and result["checkpoint"] == "best-validation"
    assert os.path.exists(os.path.join(run, f"eval_best_test_shots5_lr0.01_iter{best}.json"))
    # Only the model is in the best checkpoint, and it is the weights of that iteration.
    model_only = weights(run, "checkpoints/best")
    assert not any("optimizer" in k for k in model_only)


def test_evaluation_of_a_stored_run_needs_no_training(tmp_path):
    first = str(tmp_path / "m1" / "logs" / "run")
    config = Config(metatrain_iterations=10, **TOY)
    train.train_and_evaluate(config, first)
    store = str(tmp_path / "store")
    snapshot.save(first, store)
    fresh = str(tmp_path / "m2" / "logs" / "run")
    result = evaluate.evaluate_checkpoint(config.replace(run_store=store, eval_split="test"), fresh)
    assert result["iteration"] == 10


def test_run_stops_when_validation_has_not_improved_for_patience_iterations(tmp_path, capsys):
    # An outer step too small to change a float32 weight: validation never improves after the first.
    config = Config(metatrain_iterations=100, patience=15, **{**TOY, "meta_lr": 1e-30})
    run = str(tmp_path / "logs" / "run")
    train.train_and_evaluate(config, run)
    with open(os.path.join(run, "runinfo.json")) as f:
        assert json.load(f)["iterations"] == 20  # best at 5, no progress through 20
    assert "stopping early at iteration 20" in capsys.readouterr().out
    train.train_and_evaluate(config, run)  # started again: it stays stopped
    assert "stopped early at iteration 20" in capsys.readouterr().out
    # Finished by the rule: its snapshot ships the models, as a run that reached its target does.
    kept = snapshot.save(run, str(tmp_path / "store"))
    assert {"model.keras", "best.keras"} <= set(os.listdir(kept))


def test_testing_the_best_model_writes_the_best_keras_a_moved_run_lacks(tmp_path, capsys):
    """A run stored before it finished travels without best.keras; evaluating its best-validation
    model writes it again, with the weights the training loop had written."""
    config = Config(metatrain_iterations=20, **TOY)
    run = str(tmp_path / "logs" / "run")
    train.train_and_evaluate(config, run)
    best = [n for n in os.listdir(os.path.join(run, "checkpoints", "best")) if n.endswith(".index")]
    assert best and best[0] != "ckpt-20.index"  # the best model is not the newest one

    def model_weights(name):
        return [w.numpy() for w in keras.models.load_model(os.path.join(run, name), compile=False).weights]

    written, newest = model_weights("best.keras"), model_weights("model.keras")
    settings = model_file.read_extras(os.path.join(run, "best.keras")).config
    os.remove(os.path.join(run, "best.keras"))
    evaluate.evaluate_checkpoint(config.replace(test_best=True, eval_tasks=2, eval_inner_steps=1,
                                                eval_shots=7, eval_queries=7), run)
    assert "the best-validation model, which the run lacked" in capsys.readouterr().out
    # it adapts as the run does (the training's settings), not as that evaluation did
    assert model_file.read_extras(os.path.join(run, "best.keras")).config == settings
    again = model_weights("best.keras")
    assert len(again) == len(written) and all(np.array_equal(a, b) for a, b in zip(again, written))
    assert not all(np.array_equal(a, b) for a, b in zip(again, newest))


def test_snapshot_of_an_unfinished_run_keeps_the_checkpoint_without_models(tmp_path):
    run = str(tmp_path / "logs" / "run")
    train.train_and_evaluate(Config(metatrain_iterations=10, **TOY), run)
    with open(os.path.join(run, "config.json")) as f:
        config = json.load(f)
    config["metatrain_iterations"] = 1000  # as if cut short
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(config, f)
    kept = snapshot.save(run, str(tmp_path / "store"))
    assert not [name for name in os.listdir(kept) if name.endswith(".keras")]
    assert "checkpoint" in os.listdir(os.path.join(kept, "checkpoints"))


def _holder(run):
    """A stand-in for the process training in `run`: it holds the run's lock."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.path.join(run, runlock.LOCK_NAME), "w") as f:
        json.dump({"pid": holder.pid, "host": socket.gethostname(),
                   "start": procstat.start_time(holder.pid)}, f)
    return holder


def test_save_holds_a_training_process_until_its_state_is_quiet_and_copied(tmp_path, monkeypatch):
    run = str(tmp_path / "logs" / "run")
    train.train_and_evaluate(Config(metatrain_iterations=10, **TOY), run)
    holder = _holder(run)
    try:
        seen = []
        copy = snapshot._copy_checkpoint
        monkeypatch.setattr(snapshot, "_copy_checkpoint",
                            lambda src, dst: (seen.append(procstat.state(holder.pid)), copy(src, dst))[1])
        os.utime(os.path.join(run, "runinfo.json"))  # written just now: the save waits it out
        start = time.time()
        kept = snapshot.save(run, str(tmp_path / "store"), quiet=1.0)
        assert time.time() - start >= 1.0
        assert seen == ["T"] * 3  # stopped through every copy (newest, best, a pretraining's best/)
        assert procstat.state(holder.pid) != "T"  # ...and going on after them
        assert runlock.LOCK_NAME not in os.listdir(kept)
        assert weights(kept).keys() == weights(run).keys()
    finally:
        holder.kill()
        holder.wait()


def test_a_process_stopped_by_someone_else_is_left_stopped(tmp_path, capsys, monkeypatch):
    """A run held already (the pause wrapper's timing window, a user's SIGSTOP) is kept once its
    files are quiet and left stopped, for its holder to resume; caught within the quiet time of
    a write it is not kept this time, and the other runs of the same save still are."""
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # main's handlers: not pytest's
    runs = [str(tmp_path / "logs" / name) for name in ("held", "free")]
    for run in runs:
        train.train_and_evaluate(Config(metatrain_iterations=10, **TOY), run)
    holder = _holder(runs[0])
    try:
        os.kill(holder.pid, signal.SIGSTOP)
        while procstat.state(holder.pid) != "T":
            time.sleep(0.01)
        os.utime(os.path.join(runs[0], "runinfo.json"))  # written just now
        store = str(tmp_path / "store")
        assert snapshot.main(["save", "--store", store, *runs]) == 1
        out, err = capsys.readouterr()
        assert err.strip() == (f"error: {runs[0]}: its training process {holder.pid} was stopped by "
                               "another process within 30 s of a write; not kept this time")
        assert f"kept {runs[1]} in " in out and not os.path.exists(snapshot.store_dir(store, runs[0]))
        time.sleep(0.6)
        kept = snapshot.save(runs[0], store, quiet=0.5)
        assert weights(kept).keys() == weights(runs[0]).keys()
        assert procstat.state(holder.pid) == "T"
    finally:
        holder.kill()
        holder.wait()
