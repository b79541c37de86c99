"""A toy sinusoid run driven through `python -m maml_tf.main` in a subprocess, and its final state: what the fault and damage benchmarks start, stop and compare."""

import os
import signal
import subprocess
import sys

import numpy as np


def toy_flags(logdir: str, iterations: int, checkpoint_interval: int) -> list:
    return ["--datasource=sinusoid", "--norm=None", "--update_batch_size=5", "--meta_batch_size=4",
            f"--metatrain_iterations={iterations}", f"--checkpoint_interval={checkpoint_interval}",
            "--print_interval=1", "--val_interval=10", "--num_val_tasks=4", f"--logdir={logdir}",
            "--run_name=toy"]


def start(flags) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    # SIGINT as a terminal delivers it, even when this process was started as a background job
    # (whose shell ignores SIGINT, an ignoring every child would inherit).
    return subprocess.Popen([sys.executable, "-m", "maml_tf.main", *flags], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run_to_end(flags) -> subprocess.CompletedProcess:
    proc = start(flags)
    out, err = proc.communicate(timeout=600)
    if proc.returncode:
        raise RuntimeError(f"run failed ({proc.returncode}): {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, 0, out, err)


def last_line(stderr: str) -> str:
    """The last line of maml_tf's own on stderr (TensorFlow's C++ start-up lines left out)."""
    own = [l for l in stderr.strip().splitlines()
           if not l.startswith(("I0000", "W0000", "WARNING: All log messages"))]
    return own[-1] if own else ""


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
