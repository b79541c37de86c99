"""Training progress: printed lines and TensorBoard scalars, and a validation history kept in step with the checkpoint."""

import glob
import os
import time
from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from maml_tf.errors import UserError
from maml_tf.workdir.rundir import read_jsonl, warn, write_jsonl

DIVERGED = 1e6  # a loss this many times its first logged value is flagged (once)


def trim_history(path: str, start: int):
    """Drops validation rows written after the checkpoint a run restarts from."""
    if not os.path.exists(path):
        return
    rows = read_jsonl(path)
    for number, row in enumerate(rows, 1):  # numbered as read_jsonl numbers (its torn line is last)
        if not (isinstance(row, dict) and isinstance(row.get("iteration"), int)):
            raise UserError(f"{path} line {number} is not a validation row (a JSON object with an "
                            "integer \"iteration\"): the file is damaged; move it away to continue")
    write_jsonl(path, [r for r in rows if r["iteration"] <= start])


def trim_events(logdir: str, start: int):
    """Drops TensorBoard events logged after the checkpoint a run restarts from: the resumed run
    logs those steps again, and TensorBoard would show both."""
    from tensorflow.core.util import event_pb2

    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        kept, dropped = [], 0
        try:
            for record in tf.data.TFRecordDataset(path):
                raw = record.numpy()
                if event_pb2.Event.FromString(raw).step <= start:
                    kept.append(raw)
                else:
                    dropped += 1
        except tf.errors.DataLossError:  # a record torn by the kill: it goes as well
            dropped += 1
        if dropped:
            tmp = path + ".trim"
            with tf.io.TFRecordWriter(tmp) as writer:
                for raw in kept:
                    writer.write(raw)
            os.replace(tmp, path)


def clock(seconds: float) -> str:
    """h:mm:ss with as many hours as it takes (time.gmtime would wrap at 24 h)."""
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressLog:
    """Averages step metrics over a print interval; prints a line and writes TensorBoard scalars.

    `good_checkpoint()` says which checkpoint a run whose loss became NaN can go back to, and
    `steps` which flags set its steps."""

    def __init__(self, config, workdir: str, good_checkpoint: Optional[Callable[[], str]] = None,
                 steps: str = "the outer step (--meta_lr; --meta_step for Reptile) or --update_lr"):
        self.config, self.sums, self.count, self.steps = config, {}, 0, steps
        # The rate is timed from the end of the process's first step: before it come the data's
        # loading and the step's tracing (a resumed MiniImageNet run printed "0.0 it/s ETA 197 h").
        self.t_last, self.timed = None, 0
        self.writer = tf.summary.create_file_writer(workdir) if config.log else None
        self.good_checkpoint = good_checkpoint
        self.first, self.diverged_at = {}, None

    def add(self, iteration: int, step_metrics: Dict[str, tf.Tensor]):
        values = {k: float(v) for k, v in step_metrics.items()}
        if not all(np.isfinite(v) for v in values.values()):
            note = f"; {self.good_checkpoint()}" if self.good_checkpoint else ""
            if self.diverged_at:
                note += f"; the loss had diverged since iteration {self.diverged_at}"
            raise UserError(f"loss became NaN/inf at iteration {iteration}; lower {self.steps}{note}")
        self._check_divergence(iteration, values)
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        if self.t_last is None:  # float() above waited for the step
            self.t_last = time.time()
        else:
            self.timed += 1

    def _check_divergence(self, iteration: int, values: Dict[str, float]):
        for k, v in values.items():
            if "loss" not in k:
                continue
            first = self.first.setdefault(k, (iteration, abs(v)))
            if self.diverged_at is None and first[1] > 0 and abs(v) > DIVERGED * first[1]:
                self.diverged_at = iteration
                warn(f"{k} {v:.3g} at iteration {iteration} is over {DIVERGED:g} times its "
                     f"{first[1]:.3g} at iteration {first[0]}: the run is diverging; lower "
                     "--meta_lr (--meta_step for Reptile) or --update_lr")

    def flush(self, iteration: int, phase: str):
        if not self.count:
            return
        means = {k: v / self.count for k, v in self.sums.items()}
        now = time.time()
        speed = "-- it/s  ETA --:--:--"  # the first step alone: tracing, not speed
        if self.timed:
            rate = self.timed / max(now - self.t_last, 1e-9)
            eta = (self.config.total_iterations - iteration) / rate
            speed = f"{rate:.3g} it/s  ETA {clock(eta)}"
        shown = "  ".join(f"{k} {v:.4g}" for k, v in sorted(means.items()))
        print(f"[{phase}] iter {iteration}/{self.config.total_iterations}  {speed}  {shown}",
              flush=True)
        self.scalars(iteration, {f"train/{k}": v for k, v in means.items()})
        self.sums, self.count, self.timed, self.t_last = {}, 0, 0, now

    def scalars(self, iteration: int, values: Dict[str, float]):
        if self.writer is None:
            return
        with self.writer.as_default(step=iteration):
            for k, v in values.items():
                tf.summary.scalar(k, v)
        self.writer.flush()
