"""Fault injection: kills toy sinusoid runs at random points (SIGKILL, SIGINT, SIGTERM), resumes each, checks they end as the uninterrupted run.

Usage: python -m maml_tf.bench.faults [--faults 20] [--faults_per_run 4] [--iterations 200]
                                      [--seed 0] [--damage] [--out results/reliability.md]
`--damage` adds the damage cases of `bench/damage.py` (the checkpoint index, config.json, a full disk).
A run ends identical when its final checkpoint (weights, Adam slots, iteration) is bit-for-bit
the uninterrupted run's and its validation.jsonl has the same rows. Iterations lost by a fault:
the last iteration the killed process printed minus the iteration its resume started from.
"""

import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from maml_tf.errors import OneLineParser
from maml_tf.bench import damage
from maml_tf.bench.toyrun import (final_state, last_line, run_to_end, same,  # noqa: F401 (tests)
                                  saved_iteration, start as _main, toy_flags)

SIGNALS = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM)


def _iteration(line: str) -> int:
    """The iteration of a progress line '[metatrain] iter 17/200 ...', else -1."""
    if "] iter " not in line or not line.startswith("[metatrain]"):
        return -1
    return int(line.split("] iter ", 1)[1].split("/", 1)[0])


def inject(flags, sig: int, target: int, rng: random.Random) -> dict:
    """Starts the run, sends `sig` once it printed iteration `target` (0: during start-up, after
    a random delay), waits for it to end; returns what happened."""
    proc, reached = _main(flags), 0
    if target == 0:
        time.sleep(rng.uniform(0.0, 4.0))
    else:
        for line in proc.stdout:
            reached = max(reached, _iteration(line))
            if reached >= target:
                break
        time.sleep(rng.uniform(0.0, 0.05))  # somewhere inside the next iteration (or a save)
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=600)
    for line in out.splitlines():
        reached = max(reached, _iteration(line))
    return {"signal": signal.Signals(sig).name, "target": target, "reached": reached,
            "returncode": proc.returncode, "message": last_line(err)}


def campaign(root: str, faults: int, per_run: int, iterations: int, checkpoint_interval: int,
             seed: int, log=print, plan=None) -> dict:
    """The uninterrupted run, then ceil(faults / per_run) runs with `per_run` faults each, each
    fault's run resumed by the next fault's process and finally run to the end. `plan`: a
    list of (signal, iteration) to use instead of random ones (the test's)."""
    rng = random.Random(seed)
    run_to_end(toy_flags(os.path.join(root, "reference"), iterations, checkpoint_interval))
    expected = final_state(os.path.join(root, "reference", "toy"))
    records, runs = [], []
    for r in range((faults + per_run - 1) // per_run):
        logdir = os.path.join(root, f"run{r}")
        flags = toy_flags(logdir, iterations, checkpoint_interval)
        for _ in range(min(per_run, faults - len(records))):
            # Uniform over what is left to do (0 = during the start-up of the resume).
            saved = saved_iteration(os.path.join(logdir, "toy"))
            if saved >= iterations:  # a signal came after the last iteration: nothing left
                break
            sig, target = (plan[len(records)] if plan else
                           (rng.choice(SIGNALS), rng.randrange(saved, iterations)))
            target = 0 if target == saved else target
            rec = inject(flags, sig, target, rng)
            rec["saved"] = saved_iteration(os.path.join(logdir, "toy"))
            rec["lost"] = max(0, rec["reached"] - rec["saved"])
            records.append(rec)
            log(f"run {r}: {rec['signal']} at iteration {rec['reached']} -> exit "
                f"{rec['returncode']}, checkpoint {rec['saved']}, {rec['lost']} lost")
        run_to_end(flags)
        runs.append({"run": r, "identical": same(final_state(os.path.join(logdir, "toy")), expected)})
        log(f"run {r}: ends identical to the uninterrupted run: {runs[-1]['identical']}")
    return {"records": records, "runs": runs}


def report(result: dict, args, seconds: float) -> str:
    """results/reliability.md: the figures, then one row per fault."""
    recs, runs = result["records"], result["runs"]
    lines = ["# Reliability: fault injection", "",
             f"Made by `python -m maml_tf.bench.faults --faults {args.faults} --faults_per_run "
             f"{args.faults_per_run} --iterations {args.iterations} --checkpoint_interval "
             f"{args.checkpoint_interval} --seed {args.seed}{' --damage' if args.damage else ''} "
             "--out results/reliability.md` "
             f"(commit {args.commit or 'unknown'}; "
             f"{seconds / 60:.1f} min on a shared 2-core {cpu_model()}). A toy sinusoid run ({args.iterations} iterations, a "
             f"checkpoint every {args.checkpoint_interval}) is started, killed at a random point "
             "with a random signal, started again (which resumes it) and killed again, "
             f"{args.faults_per_run} times, then run to the end; its final checkpoint (weights, Adam "
             "slots, iteration) and validation.jsonl are compared bit for bit with an "
             "uninterrupted run's. Iterations lost: the last iteration the killed process "
             "printed minus the checkpoint its resume starts from.", "",
             f"- faults injected: {len(recs)} "
             + "(" + ", ".join(f"{sum(r['signal'] == s.name for r in recs)} {s.name}" for s in SIGNALS) + ")",
             f"- runs ending identical to the uninterrupted run: {sum(r['identical'] for r in runs)}"
             f" of {len(runs)}"]
    for s in SIGNALS:
        lost = [r["lost"] for r in recs if r["signal"] == s.name]
        if lost:
            lines.append(f"- iterations lost per {s.name}: mean {np.mean(lost):.1f}, max {max(lost)}")
    lines += ["", "| # | signal | at iteration | exit code | resumes from | lost | last line |",
              "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(recs, 1):
        lines.append(f"| {i} | {r['signal']} | {r['reached'] or 'start-up'} | {r['returncode']} | "
                     f"{r['saved']} | {r['lost']} | {r['message'][:120].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return "machine (CPU unknown)"


def main():
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--faults_per_run", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--checkpoint_interval", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--damage", action="store_true", help="also damage stopped runs' directories")
    parser.add_argument("--out", default=None, help="write the report here (e.g. results/reliability.md)")
    args = parser.parse_args()
    args.commit = subprocess.run(["git", "describe", "--always", "--dirty=+dirty"], text=True,
                                 capture_output=True, cwd=os.path.dirname(__file__)).stdout.strip()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="maml_tf_faults_") as root:
        result = campaign(root, args.faults, args.faults_per_run, args.iterations,
                          args.checkpoint_interval, args.seed, log=lambda m: print(m, flush=True))
        rows = damage.campaign(root, args.iterations, args.checkpoint_interval,
                               log=lambda m: print(m, flush=True)) if args.damage else []
        text = report(result, args, time.time() - t0)
        if rows:
            text += "\n".join(damage.report(rows, args.iterations)) + "\n"
        text = text.replace(root, "$TMP")  # the report names no folder of this machine
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    sys.exit(0 if all(r["identical"] for r in result["runs"] + rows) else 1)


if __name__ == "__main__":
    main()
