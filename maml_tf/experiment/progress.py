"""Training progress: printed lines and TensorBoard scalars, and a validation history kept in step with the checkpoint."""

import json
import os
import time
from typing import Dict

import numpy as np
import tensorflow as tf

from maml_tf.experiment.config import Config
from maml_tf.errors import UserError


def trim_history(path: str, start: int):
    """Drops validation rows written after the checkpoint a run restarts from."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        rows = [line for line in f if line.strip() and json.loads(line)["iteration"] <= start]
    with open(path, "w") as f:
        f.writelines(rows)


class ProgressLog:
    """Averages step metrics over a print interval; prints a line and writes TensorBoard scalars."""

    def __init__(self, config: Config, workdir: str):
        self.config, self.sums, self.count = config, {}, 0
        self.t_last = time.time()
        self.writer = tf.summary.create_file_writer(workdir) if config.log else None

    def add(self, iteration: int, step_metrics: Dict[str, tf.Tensor]):
        values = {k: float(v) for k, v in step_metrics.items()}
        if not all(np.isfinite(v) for v in values.values()):
            raise UserError(f"loss became NaN/inf at iteration {iteration}; lower the outer step "
                            "(--meta_lr; --meta_step for Reptile) or --update_lr (the last checkpoint is still good)")
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def flush(self, iteration: int, phase: str):
        if not self.count:
            return
        means = {k: v / self.count for k, v in self.sums.items()}
        now = time.time()
        rate = self.count / max(now - self.t_last, 1e-9)
        eta = (self.config.total_iterations - iteration) / max(rate, 1e-9)
        shown = "  ".join(f"{k} {v:.4g}" for k, v in sorted(means.items()))
        print(f"[{phase}] iter {iteration}/{self.config.total_iterations}  {rate:.1f} it/s  "
              f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}  {shown}", flush=True)
        self.scalars(iteration, {f"train/{k}": v for k, v in means.items()})
        self.sums, self.count, self.t_last = {}, 0, now

    def scalars(self, iteration: int, values: Dict[str, float]):
        if self.writer is None:
            return
        with self.writer.as_default(step=iteration):
            for k, v in values.items():
                tf.summary.scalar(k, v)
        self.writer.flush()
