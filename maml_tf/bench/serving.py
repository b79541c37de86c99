"""Size on disk and latency of one `adapt_and_predict` call of exported SavedModels of the paper's networks.

    python -m maml_tf.bench.serving [--calls 20]

The networks are untrained (their weights' values change neither size nor time); the inner loop
is each paper run's: Omniglot 5-way 1-shot (64 filters, alpha 0.4, 10 evaluation steps, 5 queries)
and MiniImageNet 5-way 1-shot (32 filters, max-pool, alpha 0.01, 10 steps, 75 queries).
"""

import os
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from maml_tf.errors import OneLineParser
from maml_tf.deploy import savedmodel
from maml_tf.deploy.loading import NetworkSpec
from maml_tf.deploy.meta import MetaModel
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import build_model

CASES = {
    "omniglot_5w1s": (dict(dataset="omniglot", ways=5, shots=1, inner_lr=0.4, eval_inner_steps=10), 5),
    "miniimagenet_5w1s": (dict(dataset="miniimagenet", ways=5, shots=1, inner_lr=0.01, num_filters=32,
                               max_pool=True, eval_inner_steps=10), 75),
}


def measure(name: str, calls: int, folder: str) -> dict:
    settings, queries = CASES[name]
    config = Config(**settings)
    meta = MetaModel(build_model(config, NetworkSpec(config)), config)
    path = savedmodel.export(meta, os.path.join(folder, name), config.shots)
    serve = tf.saved_model.load(path).signatures[savedmodel.SIGNATURE]
    rng = np.random.default_rng(0)
    n = config.ways * config.shots
    args = dict(support_x=tf.constant(rng.random((n, *meta.input_shape), np.float32)),
                support_y=tf.constant(np.arange(n, dtype=np.int32) % config.ways),
                query_x=tf.constant(rng.random((queries, *meta.input_shape), np.float32)))
    serve(**args)  # the first call builds the kernels
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        serve(**args)["probabilities"].numpy()
        times.append(time.perf_counter() - start)
    return {"name": name, "params": int(sum(np.prod(v.shape) for v in meta.model.trainable_variables)),
            "bytes": savedmodel.size_on_disk(path), "median_ms": 1e3 * statistics.median(times),
            "min_ms": 1e3 * min(times), "max_ms": 1e3 * max(times), "steps": config.eval_inner_steps,
            "queries": queries}


def main():
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    if args.calls < 1:
        sys.exit(f"error: --calls must be at least 1, got {args.calls}")
    with tempfile.TemporaryDirectory() as folder:
        for name in CASES:
            r = measure(name, args.calls, folder)
            print(f"{r['name']}: {r['params']} parameters, SavedModel {r['bytes'] / 1e6:.2f} MB, "
                  f"one call ({r['steps']} inner steps, {r['queries']} queries) median "
                  f"{r['median_ms']:.0f} ms (min {r['min_ms']:.0f}, max {r['max_ms']:.0f}) "
                  f"on {os.cpu_count()} CPU cores", flush=True)


if __name__ == "__main__":
    main()
