"""`python -m maml_tf.bench.pause COMMAND [ARGS...]`: run COMMAND with the training queue held, for quiet timings.

Every process of the project's training queue -- any `python -m maml_tf.main` process (or the
installed `maml_tf` script), training or evaluating, other than this one and its parents -- is
held with SIGSTOP, COMMAND runs, and they are resumed with SIGCONT when it ends: also when it
fails, cannot be started, or this process is interrupted (SIGINT, SIGTERM or SIGHUP is passed on
to COMMAND, which is waited for; a second one kills it). Exits with COMMAND's exit code (128 + the
signal if a signal ended it). Only a SIGKILL of this process leaves the queue held: the first line
on stderr names the held pids, to resume by hand with `kill -CONT PID...`.

Processes that cannot be signalled (another user's) are named and left running; processes stopped
already (e.g. held by `run_experiments.sh --save` for a copy) are left to whoever stopped them.
COMMAND runs in its own process group (so an interrupt reaches it once, through this process); it
should not read the terminal. `--match REGEX` holds the processes whose command line (arguments joined by spaces)
matches REGEX instead of the queue's (the tests use it, so as not to hold a real queue).

    python -m maml_tf.bench.pause python -m maml_tf.bench.benchmark --benches omniglot_5w1s_q1_o2
    python -m maml_tf.bench.pause bash -c 'first command; second command'
"""

import argparse
import os
import re
import signal
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Sequence

from maml_tf.errors import OneLineParser
from maml_tf.workdir.procstat import parent, state

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Python options that take the next argument as their value.
OPTIONS_WITH_VALUE = {"-W", "-X", "--check-hash-based-pycs"}


def command_line(pid: int) -> Optional[List[str]]:
    """The process's arguments, or None if it is gone or unreadable (or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] or None


def is_queue_process(argv: Sequence[str]) -> bool:
    """Whether `argv` is a python running `-m maml_tf.main` or the installed `maml_tf` script."""
    if not argv or not os.path.basename(argv[0]).startswith("python"):
        return False
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return i + 1 < len(argv) and argv[i + 1] == "maml_tf.main"
        if arg.startswith("-m"):
            return arg[2:] == "maml_tf.main"
        if arg == "-c" or arg == "-" or not arg.startswith("-"):
            return os.path.basename(arg) == "maml_tf"  # a script (or -c): the console script?
        i += 2 if arg in OPTIONS_WITH_VALUE else 1
    return False


def matcher(pattern: Optional[str]) -> Callable[[Sequence[str]], bool]:
    if pattern is None:
        return is_queue_process
    regex = re.compile(pattern)
    return lambda argv: bool(regex.search(" ".join(argv)))


def targets(match: Callable[[Sequence[str]], bool]) -> Dict[int, List[str]]:
    """pid -> command line of every process `match` accepts, but this one and its parents."""
    mine, pid = set(), os.getpid()
    while pid > 0 and pid not in mine:
        mine.add(pid)
        pid = parent(pid)
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in mine:
            argv = command_line(int(name))
            if argv and match(argv):
                found[int(name)] = argv
    return found


def hold(pids: Dict[int, List[str]], held: List[int], log: Callable[[str], None]) -> None:
    """SIGSTOP to each; appends to `held` the pids held (not the ones gone or not ours)."""
    for pid, argv in sorted(pids.items()):
        if state(pid) in ("T", "t"):  # held by someone else (a --save copy): theirs to resume
            log(f"pause: pid {pid} is stopped already; left as it is")
            continue
        try:
            os.kill(pid, signal.SIGSTOP)
            held.append(pid)
        except ProcessLookupError:
            pass
        except PermissionError:
            log(f"pause: cannot hold pid {pid} ({' '.join(argv)[:100]}): not permitted; it keeps running")


def resume(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass


def run(command: Sequence[str], match: Callable[[Sequence[str]], bool],
        log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> int:
    """Holds the matching processes, runs `command`, resumes them; `command`'s exit code."""
    received: List[int] = []  # signals to this process, in order
    child: List[subprocess.Popen] = []
    sent = [0]  # how many of `received` were passed on to the command

    def forward():
        while child and sent[0] < len(received) and child[0].poll() is None:
            try:  # the first signal as it is, then SIGKILL
                os.killpg(child[0].pid, received[0] if sent[0] == 0 else signal.SIGKILL)
            except OSError:
                pass
            sent[0] += 1

    def on_signal(signum, frame):
        received.append(signum)
        forward()

    previous = {s: signal.signal(s, on_signal) for s in FORWARDED}
    held: List[int] = []
    try:
        hold(targets(match), held, log)
        log(f"pause: held {len(held)} process(es) with SIGSTOP"
            + (f" (if this process is killed, resume them with kill -CONT {' '.join(map(str, held))})"
               if held else ""))
        if received:  # interrupted before the command started
            return 128 + received[0]
        try:
            child.append(subprocess.Popen(list(command), process_group=0))
        except OSError as err:
            log(f"pause: cannot run {command[0]}: {err}")
            return 127
        forward()  # a signal that came while it was being started
        code = child[0].wait()
        return 128 - code if code < 0 else code
    finally:
        resume(held)
        if held:
            log(f"pause: resumed {len(held)} process(es) with SIGCONT")
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv=None) -> None:
    parser = OneLineParser(
        description=__doc__.splitlines()[0].split(": ", 1)[1],
        usage="python -m maml_tf.bench.pause [--match REGEX] COMMAND [ARGS...]")
    parser.add_argument("--match", default=None,
                        help="hold the processes whose command line matches REGEX (default: the "
                             "training queue, every `python -m maml_tf.main` process)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run")
    sys.exit(run(command, matcher(args.match)))


if __name__ == "__main__":
    main()
