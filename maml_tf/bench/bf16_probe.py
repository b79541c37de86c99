"""Exploratory probe (results/performance.md): the Omniglot conv stack's forward + backward in float32 vs bfloat16.

Per task, 4 x [3x3 conv stride 2, 64 filters, ReLU] on `images` 28x28x1 images, forward and
gradient with respect to the filters, mapped over 32 tasks with tf.map_fn as the meta-step does.
bfloat16 casts filters and images inside the step (float32 master weights, as mixed precision).

Usage: TF_ENABLE_ONEDNN_OPTS=0|1 python -m maml_tf.bench.bf16_probe [IMAGES ...]
"""
import os
import statistics
import sys
import time

import numpy as np
import tensorflow as tf


def make_step(dtype, tasks):
    def per_task(x, filters):
        with tf.GradientTape() as tape:
            tape.watch(filters)
            h = tf.cast(x, dtype)
            for f in filters:
                h = tf.nn.relu(tf.nn.conv2d(h, tf.cast(f, dtype), 2, "SAME"))
            loss = tf.reduce_sum(tf.cast(h, tf.float32) ** 2)
        return tape.gradient(loss, filters)

    @tf.function
    def step(xs, filters):
        sig = [tf.TensorSpec(f.shape, tf.float32) for f in filters]
        return tf.map_fn(lambda x: per_task(x, filters), xs, fn_output_signature=sig)
    return step


def main():
    rng = np.random.default_rng(0)
    filters = [tf.constant(rng.normal(0, 0.1, (3, 3, cin, 64)), tf.float32) for cin in (1, 64, 64, 64)]
    for images in [int(a) for a in sys.argv[1:]] or [5, 20, 75]:
        xs = tf.constant(rng.random((32, images, 28, 28, 1)), tf.float32)
        for dtype in (tf.float32, tf.bfloat16):
            step = make_step(dtype, 32)
            step(xs, filters)  # trace
            times = []
            for _ in range(15):
                t = time.perf_counter()
                [g.numpy() for g in step(xs, filters)]
                times.append(time.perf_counter() - t)
            print(f"onednn={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')} images/task={images:3d} "
                  f"{dtype.name:9s} median {statistics.median(times) * 1e3:7.1f} ms  min {min(times) * 1e3:7.1f} ms",
                  flush=True)


if __name__ == "__main__":
    main()
