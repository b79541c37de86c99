"""`python -m maml_tf.main` at toy size: SIGINT/SIGTERM save and exit 130/143, a second writer is refused, a run ends with its summary."""

import os
import signal
import subprocess
import sys

import pytest

from maml_tf.bench import faults
from main_probe import refused_before_tensorflow

ITERATIONS = 40


def flags(logdir, iterations=ITERATIONS):
    # Checkpoints only at the end: whatever an interrupted run keeps, its interrupt saved.
    return faults.toy_flags(str(logdir), iterations, 1000)


def start(logdir, iterations=ITERATIONS):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "maml_tf.main", *flags(logdir, iterations)], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_iteration(proc, n):
    for line in proc.stdout:
        if faults._iteration(line) >= n:
            return
    raise AssertionError("the run ended before iteration %d: %s" % (n, proc.stderr.read()[-2000:]))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("reference")
    done = faults.run_to_end(flags(logdir))
    return faults.final_state(os.path.join(logdir, "toy")), done


def test_a_finished_run_ends_with_its_summary(reference):
    out, err = reference[1].stdout, reference[1].stderr
    tail = out.strip().splitlines()[-3:]
    assert tail[0].startswith(f"done: {ITERATIONS} iterations in ") and tail[0].split()[4].endswith("toy")
    assert tail[1].startswith(f"last meta-validation (iteration {ITERATIONS}, 4 tasks, before -> after 1 step): loss ")
    assert tail[2].startswith("evaluate it: python -m maml_tf.main ") and tail[2].endswith(" --train=False")
    if not os.path.exists("/dev/nvidia0"):
        assert "cuInit" not in err and "Traceback" not in err


# SIGTERM (exit 143, nothing lost, the same message, a bit-identical end) is the second fault
# of tests/bench/test_faults.py's campaign, after a SIGKILL.
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130)])
def test_a_signal_saves_the_iteration_and_the_resumed_run_ends_identical(tmp_path, reference, sig, code):
    proc = start(tmp_path)
    wait_for_iteration(proc, 15)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code and "Traceback" not in err, err[-2000:]
    line = faults.last_line(err)
    assert line.startswith(f"interrupted: {sig.name}: stopped after iteration ")
    assert line.endswith("; run the same command to resume")
    saved = faults.saved_iteration(os.path.join(tmp_path, "toy"))
    assert saved >= 15 and f"iteration {saved}/{ITERATIONS}" in line  # nothing done was lost
    resumed = faults.run_to_end(flags(tmp_path))
    assert f"from iteration {saved}" in resumed.stdout
    assert faults.same(faults.final_state(os.path.join(tmp_path, "toy")), reference[0])


def test_a_second_process_on_a_live_run_is_refused_before_tensorflow_loads(tmp_path):
    first = start(tmp_path, 10**6)  # still running when the second has started
    wait_for_iteration(first, 1)
    try:
        second = refused_before_tensorflow(*flags(tmp_path))
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert faults.last_line(second).startswith(
        f"error: {tmp_path / 'toy'} is in use by pid {first.pid} on {os.uname().nodename}")
    assert first.returncode == 130
    other = refused_before_tensorflow(*flags(tmp_path), "--meta_lr=0.01")
    assert "holds a run with other settings (meta_lr 0.001 -> 0.01)" in faults.last_line(other)
    rows = open(tmp_path / "toy" / "validation.jsonl").read().splitlines()
    assert len(rows) == len(set(rows))  # one writer: no row written twice
