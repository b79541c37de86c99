"""Fault injection: kills toy sinusoid runs at random points (SIGKILL, SIGINT, SIGTERM), resumes each, checks they end as the uninterrupted run.

Usage: python -m maml_tf.bench.faults [--faults 20] [--faults_per_run 4] [--iterations 200]
                                      [--seed 0] [--out results/reliability.md]
A run ends identical when its final checkpoint (weights, Adam slots, iteration) is bit-for-bit
the uninterrupted run's and its validation.jsonl has the same rows. Iterations lost by a fault:
the last iteration the killed process printed minus the iteration its resume started from.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

SIGNALS = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM)


def toy_flags(logdir: str, iterations: int, checkpoint_interval: int) -> list:
    return ["--datasource=sinusoid", "--norm=None", "--update_batch_size=5", "--meta_batch_size=4",
            f"--metatrain_iterations={iterations}", f"--checkpoint_interval={checkpoint_interval}",
            "--print_interval=1", "--val_interval=10", "--num_val_tasks=4", f"--logdir={logdir}",
            "--run_name=toy"]


def _main(flags) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "maml_tf.main", *flags], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_to_end(flags) -> subprocess.CompletedProcess:
    proc = _main(flags)
    out, err = proc.communicate(timeout=600)
    if proc.returncode:
        raise RuntimeError(f"run failed ({proc.returncode}): {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, 0, out, err)


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


def last_line(stderr: str) -> str:
    """The last line of maml_tf's own on stderr (TensorFlow's C++ start-up lines left out)."""
    own = [l for l in stderr.strip().splitlines()
           if not l.startswith(("I0000", "W0000", "WARNING: All log messages"))]
    return own[-1] if own else ""


def resume_iteration(out: str) -> int:
    for line in out.splitlines():
        if line.startswith("resuming "):
            return int(line.rsplit(" ", 1)[1])
    return 0


def final_state(run_dir: str) -> dict:
    """Every saved tensor of the newest checkpoint but the save counter, and the validation rows."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    names = [n for n, _ in tf.train.list_variables(path)
             if "save_counter" not in n and "OBJECT_GRAPH" not in n]
    with open(os.path.join(run_dir, "validation.jsonl")) as f:
        rows = f.read()
    return {"tensors": {n: reader.get_tensor(n) for n in names}, "validation": rows}


def same(a: dict, b: dict) -> bool:
    return (a["validation"] == b["validation"] and a["tensors"].keys() == b["tensors"].keys()
            and all(np.array_equal(a["tensors"][n], b["tensors"][n]) for n in a["tensors"]))


def saved_iteration(run_dir: str) -> int:
    """The iteration of the newest checkpoint on disk (0: none), where a resume starts."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


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
             f"{args.checkpoint_interval} --seed {args.seed} --out results/reliability.md` "
             f"(commit {args.commit or 'unknown'}; "
             f"{seconds / 60:.1f} min on a shared 2-core machine). A toy sinusoid run ({args.iterations} iterations, a "
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--faults_per_run", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--checkpoint_interval", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the report here (e.g. results/reliability.md)")
    args = parser.parse_args()
    args.commit = subprocess.run(["git", "describe", "--always", "--dirty=+dirty"], text=True,
                                 capture_output=True, cwd=os.path.dirname(__file__)).stdout.strip()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="maml_tf_faults_") as root:
        result = campaign(root, args.faults, args.faults_per_run, args.iterations,
                          args.checkpoint_interval, args.seed, log=lambda m: print(m, flush=True))
    text = report(result, args, time.time() - t0)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    sys.exit(0 if all(r["identical"] for r in result["runs"]) else 1)


if __name__ == "__main__":
    main()
