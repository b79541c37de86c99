"""The pause wrapper (python -m maml_tf.bench.pause): holds the matching processes while a command runs, resumes them after it, also on failure and interrupt.

The end-to-end tests hold only a sleeper of their own (`--match` with a unique token), never a real
training queue that may be running on the machine.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from maml_tf.bench import pause
from maml_tf.workdir import procstat

PY = sys.executable


def test_the_queue_is_every_python_running_maml_tf_main_or_its_script():
    queue = [[PY, "-m", "maml_tf.main", "--datasource=omniglot"], ["python3", "-u", "-mmaml_tf.main"],
             ["/x/.venv/bin/python3.11", "-W", "ignore", "-m", "maml_tf.main", "--train=False"],
             ["/x/.venv/bin/python", "/x/.venv/bin/maml_tf", "--datasource=sinusoid"]]
    others = [[PY, "-m", "maml_tf.bench.pause", "python", "-m", "maml_tf.main"],
              [PY, "-m", "maml_tf.classify", "--model", "m"], [PY, "-c", "pass", "-m", "maml_tf.main"],
              [PY, "script.py", "-m", "maml_tf.main"], ["bash", "-c", "python -m maml_tf.main"],
              ["grep", "-m", "maml_tf.main"], []]
    assert all(pause.is_queue_process(a) for a in queue)
    assert not any(pause.is_queue_process(a) for a in others)


def test_never_holds_itself_or_its_parents():
    found = pause.targets(lambda argv: True)
    assert os.getpid() not in found and os.getppid() not in found


@pytest.fixture
def sleeper():
    """A process only this test matches (its token), and the `--match` flags that select it."""
    token = f"pause_test_{uuid.uuid4().hex}"
    proc = subprocess.Popen([PY, "-c", "import time, sys; time.sleep(120)", token])
    yield proc, ["--match", token]
    proc.kill()
    proc.wait()


def test_proc_stat_reads_state_parent_and_start_time_of_a_process_until_it_is_gone(sleeper):
    proc, _ = sleeper
    assert procstat.parent(proc.pid) == os.getpid()
    started = procstat.start_time(proc.pid)
    assert started and started.isdigit() and started != procstat.start_time(os.getpid())
    os.kill(proc.pid, signal.SIGSTOP)
    assert wait_state(proc.pid, "T") == "T"
    proc.kill()
    proc.wait()
    assert (procstat.fields(proc.pid), procstat.state(proc.pid), procstat.parent(proc.pid),
            procstat.start_time(proc.pid)) == ([], "", 0, None)


def wait_state(pid, states, timeout=10.0):
    end = time.time() + timeout
    while procstat.state(pid) not in states and time.time() < end:
        time.sleep(0.05)
    return procstat.state(pid)


def wrapper(flags, *command):
    return [PY, "-m", "maml_tf.bench.pause", *flags, *command]


def test_held_while_the_command_runs_and_resumed_after(sleeper):
    proc, flags = sleeper
    check = f"from maml_tf.bench.pause import state; assert state({proc.pid}) == 'T', state({proc.pid})"
    done = subprocess.run(wrapper(flags, "--", PY, "-c", check), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pause: held 1 process(es) with SIGSTOP" in done.stderr
    assert f"kill -CONT {proc.pid}" in done.stderr
    assert wait_state(proc.pid, "SR") in "SR"


def test_a_failing_command_resumes_them_and_its_exit_code_is_passed_on(sleeper):
    proc, flags = sleeper
    done = subprocess.run(wrapper(flags, PY, "-c", "raise SystemExit(3)"), capture_output=True, text=True)
    assert done.returncode == 3
    assert wait_state(proc.pid, "SR") in "SR"
    missing = subprocess.run(wrapper(flags, "/nonexistent/command"), capture_output=True, text=True)
    assert missing.returncode == 127 and "cannot run /nonexistent/command" in missing.stderr
    assert wait_state(proc.pid, "SR") in "SR"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_reaches_the_command_once_and_resumes_them(sleeper, tmp_path, signum):
    proc, flags = sleeper
    marker = tmp_path / "started"
    # The command counts the interrupts it gets and exits after the first.
    script = ("import signal, sys, time, pathlib\n"
              "got = []\n"
              "def h(s, f):\n    got.append(s)\n"
              "signal.signal(signal.SIGINT, h); signal.signal(signal.SIGTERM, h)\n"
              f"pathlib.Path({str(marker)!r}).touch()\n"
              "end = time.time() + 30\n"
              "while not got and time.time() < end: time.sleep(0.02)\n"
              "time.sleep(0.3)\n"
              "sys.exit(40 + len(got))\n")
    wrapped = subprocess.Popen(wrapper(flags, PY, "-c", script), stderr=subprocess.PIPE, text=True)
    end = time.time() + 20
    while not marker.exists() and time.time() < end:
        time.sleep(0.05)
    assert marker.exists() and procstat.state(proc.pid) == "T"
    wrapped.send_signal(signum)
    _, err = wrapped.communicate(timeout=30)
    assert wrapped.returncode == 41, err  # the command got exactly one signal
    assert "pause: resumed 1 process(es) with SIGCONT" in err
    assert wait_state(proc.pid, "SR") in "SR"


def test_a_process_stopped_by_someone_else_is_left_stopped(sleeper):
    proc, flags = sleeper
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert wait_state(proc.pid, "T") == "T"
        done = subprocess.run(wrapper(flags, PY, "-c", "pass"), capture_output=True, text=True)
        assert done.returncode == 0 and "stopped already; left as it is" in done.stderr
        time.sleep(0.2)
        assert procstat.state(proc.pid) == "T"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
