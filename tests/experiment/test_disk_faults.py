"""A disk that fills, and a second Ctrl-C: one line, the last good checkpoint kept, the run directory unlocked."""

import os
import signal
import subprocess
import time

import pytest

from maml_tf.bench import faults
from maml_tf.bench.damage import fill
from test_interrupts import start, wait_for_iteration


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def one_line_error(proc):
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    return faults.last_line(err)


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_gives_one_line_and_keeps_the_last_checkpoint(small_disk):
    proc = faults._main(faults.toy_flags(str(small_disk), 10 ** 6, 5))
    wait_for_iteration(proc, 7)  # ckpt-5 is on disk
    fill(small_disk)
    line = one_line_error(proc)
    assert line.startswith("error: cannot write the run at iteration ") and "No space left" in line
    assert "is intact" in line
    run = small_disk / "toy"
    assert not os.path.exists(run / "lock")
    os.remove(small_disk / "filler")
    assert faults.saved_iteration(str(run)) >= 5  # the last good checkpoint restores


def test_a_full_disk_at_the_start_leaves_no_lock(small_disk):
    fill(small_disk)
    line = one_line_error(faults._main(faults.toy_flags(str(small_disk), 20, 5)))
    assert line.startswith("error: ") and "No space left" in line
    assert not os.path.exists(small_disk / "toy" / "lock")


def test_two_quick_interrupts_say_what_was_kept_and_unlock(tmp_path):
    proc = start(tmp_path, 10 ** 6)
    wait_for_iteration(proc, 3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and faults.last_line(err).startswith("interrupted: SIGINT"), err
    assert not os.path.exists(tmp_path / "toy" / "lock")


def test_a_read_only_run_is_evaluated_into_eval_dir(small_disk, tmp_path):
    from maml_tf.errors import UserError
    from maml_tf.experiment import evaluate, train
    from maml_tf.experiment.config import Config
    from test_rundir import TOY

    config, workdir = Config(**TOY), str(small_disk / "run")
    train.train_and_evaluate(config, workdir)
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_disk)]).returncode == 0
    with pytest.raises(UserError, match="give --eval_dir=DIR"):
        evaluate.evaluate_checkpoint(config.replace(eval_tasks=4), workdir)
    out = tmp_path / "evals"
    result = evaluate.evaluate_checkpoint(config.replace(eval_tasks=4, eval_dir=str(out)), workdir)
    assert result["iteration"] == 20 and os.path.exists(out / "eval_val_shots5_lr0.001_iter20.json")
