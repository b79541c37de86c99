"""Omniglot 5-way 1-shot, 2nd order, meta-batch 32: `mirrored` (2 logical CPUs) against `default`.

1. Meta-gradients at the same parameters (default's after one step): mirrored - default, next
   to default fed the same tasks in reverse order (only the float summation order changes).
2. The second training step from the same parameters and Adam state: the same comparison.
3. Training for 8 iterations: how far mirrored and the reversed-order default drift from default.
Usage: python -m maml_tf.bench.distributed_drift DATA_DIR CACHE_DIR
"""

import sys

import numpy as np
import tensorflow as tf

from maml_tf.experiment import distribute
from maml_tf.experiment.experiment import Experiment, task_batches
from maml_tf.experiment.config import Config
from maml_tf.types import Task

distribute.strategy_for(Config(strategy="mirrored"))  # before TensorFlow touches the devices
base = Config(dataset="omniglot", data_dir=sys.argv[1], cache_dir=sys.argv[2], ways=5, shots=1,
              queries=1, meta_batch_size=32, inner_lr=0.4, num_filters=64)


def reverse(tasks):
    return Task(*[x[::-1] for x in tasks])


def meta_gradient_fn(exp):
    replica_fn, s = exp.replica_meta_grads(1), exp.strategy

    @tf.function(input_signature=[exp.task_signature(1, 1)])
    def meta_gradient(tasks):
        return distribute.mean_over_replicas(s, s.run(lambda t: replica_fn(t)[:2], args=(tasks,)))[0]

    return meta_gradient


single, split = Experiment(base), Experiment(base.replace(strategy="mirrored"))
batches = task_batches(single.sampler, "train", 32, 1, 1, seed=0, start=0)
single.make_train_step(1)(next(batches))
with split.strategy.scope():
    for v, w in zip(split.learner.trainable_variables, single.learner.trainable_variables):
        v.assign(w)
tasks = next(batches)
g_single, g_split = meta_gradient_fn(single)(tasks), meta_gradient_fn(split)(tasks)
g_reversed = meta_gradient_fn(single)(reverse(tasks))
print("1. meta-gradient at the same parameters: variable, max|g|, max|mirrored - default|, "
      "max|reversed order - default|")
for v, a, b, c in zip(single.learner.trainable_variables, g_single, g_split, g_reversed):
    a, b, c = a.numpy(), b.numpy(), c.numpy()
    print(f"   {v.path:20s} {np.abs(a).max():.2e} {np.abs(b - a).max():.2e} {np.abs(c - a).max():.2e}")

runs = {"default": (single, lambda t: t), "mirrored": (split, lambda t: t),
        "default, tasks reversed": (Experiment(base), reverse)}
for exp, _ in runs.values():
    with exp.strategy.scope():  # default's parameters and Adam state after its first step
        for group in ("variables", "optimizer_variables"):
            ref = single.learner.trainable_variables if group == "variables" else single.optimizer.variables
            mine = exp.learner.trainable_variables if group == "variables" else exp.optimizer.variables
            for v, w in zip(mine, ref):
                v.assign(w)
losses = [float(exp.make_train_step(1)(feed(tasks))["post_loss"]) for exp, feed in runs.values()]
print(f"2. the same second step from the same state: post_loss {losses}; max |parameter - default's|:")
for i, v in enumerate(single.learner.trainable_variables):
    cells = [f"{np.abs(runs[n][0].learner.trainable_variables[i].numpy() - v.numpy()).max():.2e}"
             for n in ("mirrored", "default, tasks reversed")]
    print(f"   {v.path:20s} mirrored {cells[0]}  reversed order {cells[1]}")

runs = {"default": (Experiment(base), lambda t: t),
        "mirrored": (Experiment(base.replace(strategy="mirrored")), lambda t: t),
        "default, tasks reversed": (Experiment(base), reverse)}
steps = {name: exp.make_train_step(1) for name, (exp, _) in runs.items()}
batches = task_batches(single.sampler, "train", 32, 1, 1, seed=0, start=0)
print("3. iteration, post_loss of each run, max |parameter - default's| (worst variable)")
for i in range(1, 9):
    tasks = next(batches)
    losses = [float(steps[n](feed(tasks))["post_loss"]) for n, (_, feed) in runs.items()]
    ref, cells = runs["default"][0].learner.trainable_variables, []
    for name in ("mirrored", "default, tasks reversed"):
        diffs = [float(np.abs(a.numpy() - b.numpy()).max())
                 for a, b in zip(ref, runs[name][0].learner.trainable_variables)]
        worst = int(np.argmax(diffs))
        cells.append(f"{name}: {diffs[worst]:.2e} ({ref[worst].path})")
    print(f"   {i} " + " ".join(f"{x:.5f}" for x in losses) + " | " + "; ".join(cells), flush=True)
